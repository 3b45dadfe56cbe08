/*
 * A body per target: the client's JSON object with members set or
 * replaced at dot paths (fanout_target set=PATH:JSON), in one pass that
 * copies everything else as it came.  Pure logic: no nginx headers, no
 * allocation, unit-tested in t/unit and fuzzed.
 */

#ifndef _FANOUT_BODY_H_INCLUDED_
#define _FANOUT_BODY_H_INCLUDED_


#include "fanout_json.h"


#define FANOUT_BODY_MAX_SETS   16      /* set= of one target */
#define FANOUT_BODY_MAX_DEPTH  8       /* segments of a set='s path */


/* one set=: where (a dot path of object keys), and a valid JSON value */
typedef struct {
    const char  *path;
    size_t       path_len;
    const char  *value;
    size_t       value_len;
} fanout_body_set_t;


/*
 * 0 when sets can go together: each path usable (fanout_json_path_check,
 * at most FANOUT_BODY_MAX_DEPTH segments, none all digits: objects only),
 * no path given twice, none the prefix of another ("a" and "a.b").
 * Else -1, and *bad the index of the set at fault.
 */
int fanout_body_sets_check(const fanout_body_set_t *sets, size_t n,
    size_t *bad);

/*
 * The body (a JSON object, validated here) with every set applied: a
 * member on a path is replaced wherever it is (every copy of a duplicated
 * key), a missing one is added at the end of its object, with the objects
 * it needs.  The rest is copied byte for byte; only the separators of an
 * object a set changes are rewritten.  With out->buf NULL only out->len
 * is counted (at most len + the sets' lengths and paths + 8 a set).
 * Linear: each member of an object on a path is compared with the sets
 * going through it.  0, or -1: the body is not a JSON object, or a value
 * on a path is not an object.
 */
int fanout_body_apply(const char *body, size_t len,
    const fanout_body_set_t *sets, size_t n, fanout_out_t *out);


#endif /* _FANOUT_BODY_H_INCLUDED_ */
