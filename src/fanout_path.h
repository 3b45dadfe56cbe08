/*
 * Dot paths into JSON documents ("output.scores", "choices.0.label").
 * Pure logic: no nginx headers, unit-tested in t/unit.
 */

#ifndef _FANOUT_PATH_H_INCLUDED_
#define _FANOUT_PATH_H_INCLUDED_


#include <stddef.h>
#include <jansson.h>


/* 0 when "path" is a usable dot path: non-empty segments, no spaces */
int fanout_path_check(const char *path, size_t len);

/*
 * The value at "path" inside "root", borrowed, or NULL when absent.
 * An all-digit segment indexes an array; any segment names an object key.
 */
json_t *fanout_path_get(json_t *root, const char *path, size_t len);


#endif /* _FANOUT_PATH_H_INCLUDED_ */
