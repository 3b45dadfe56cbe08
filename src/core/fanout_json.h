/*
 * JSON without a tree: a strict validating scanner that finds the value at
 * a dot path, and a writer for the merged answer.  Pure logic: no nginx
 * headers, no allocation, unit-tested in t/unit (against jansson).
 */

#ifndef _FANOUT_JSON_H_INCLUDED_
#define _FANOUT_JSON_H_INCLUDED_


#include <stddef.h>
#include <string.h>


#define FANOUT_JSON_MAX_DEPTH  256


/* a JSON value inside a body, as its bytes */
typedef struct {
    const char  *p;
    size_t       len;
} fanout_span_t;


/* the output: with buf NULL only len is counted */
typedef struct {
    char        *buf;
    size_t       len;
} fanout_out_t;


/* 0 when "path" is a usable dot path: non-empty segments, no spaces */
int fanout_json_path_check(const char *path, size_t len);

/*
 * 0 when the len bytes are one JSON text (RFC 8259, any value, UTF-8,
 * nesting up to FANOUT_JSON_MAX_DEPTH).  With a path, *found is the span of
 * the value at it, or { NULL, 0 }: all-digit segments index arrays, others
 * name object keys, and of duplicate keys the last one counts.
 */
int fanout_json_scan(const char *p, size_t len, const char *path,
    size_t path_len, fanout_span_t *found);

/*
 * The same, and *matches counts the values the path matched and the keys
 * on it met more than once in their object: more than one when a key on
 * the path is duplicated (parsers disagree on which one counts).
 */
int fanout_json_find(const char *p, size_t len, const char *path,
    size_t path_len, fanout_span_t *found, unsigned *matches);

/*
 * The elements of a validated array (len bytes from its '[' to its ']'):
 * their spans into items (unless NULL), at most max of them.  Returns their number
 * (max + 1 when there are more: counting stops there), -1 when it is not
 * an array.
 */
long fanout_json_array(const char *p, size_t len, fanout_span_t *items,
    size_t max);

/*
 * The members of a validated object (len bytes from its '{' to its '}'):
 * each key's span (with its quotes) and its value's, at most max of them.
 * Returns their number (max + 1 when there are more), -1 when it is not an
 * object.
 */
long fanout_json_members(const char *p, size_t len, fanout_span_t *keys,
    fanout_span_t *values, size_t max);

/*
 * The same, one member at a time, for objects of any size: start at its
 * '{' (-1 when it is not an object), then next gives each member's key
 * (with its quotes) and value: 1, or 0 after the last, -1 when invalid.
 */
typedef struct {
    const char         *p;     /* the next member's key; NULL: no more */
    const char         *end;
} fanout_member_it_t;

int fanout_json_members_start(fanout_member_it_t *it, const char *p,
    size_t len);
int fanout_json_members_next(fanout_member_it_t *it, fanout_span_t *key,
    fanout_span_t *value);

/*
 * Pieces of the scanner for other passes over a text: the end of the
 * string (at its opening quote) or number at p, NULL when it is not one;
 * the UTF-8 bytes of a validated string's contents (between its quotes)
 * into out, which needs kend - k bytes at most.
 */
const char *fanout_json_string_end(const char *p, const char *end);
const char *fanout_json_number_end(const char *p, const char *end);
size_t fanout_json_unescape(const char *k, const char *kend, char *out);

void fanout_out_string(fanout_out_t *o, const char *s, size_t n);


/*
 * Inline: a merged answer is written in many small pieces, twice (once
 * to measure it), most of them literals, whose strlen() and memcpy() the
 * compiler then folds into a few stores; a call each cost more.
 */

static inline void
fanout_out_raw(fanout_out_t *o, const char *p, size_t n)
{
    if (o->buf) {
        memcpy(o->buf + o->len, p, n);
    }

    o->len += n;
}


static inline void
fanout_out_cstr(fanout_out_t *o, const char *s)
{
    fanout_out_raw(o, s, strlen(s));
}


#endif /* _FANOUT_JSON_H_INCLUDED_ */
