/*
 * Shadow answers compared with the answer the client got: strings, bools
 * and nulls exactly, numbers within an absolute tolerance, arrays element
 * by element and objects key by key with the same rule, plus whether two
 * numeric arrays have the same argmax.  Pure logic on JSON texts already
 * validated by fanout_json_scan(): no nginx headers, unit-tested and
 * fuzzed.  Objects are compared through their members sorted by key, so a
 * comparison costs O(n log n) in the keys of an object and O(n * depth) in
 * the text (depth at most FANOUT_JSON_MAX_DEPTH); memory is freed before it
 * returns.
 */

#ifndef _FANOUT_COMPARE_H_INCLUDED_
#define _FANOUT_COMPARE_H_INCLUDED_


#include <stddef.h>


typedef struct {
    int     agree;     /* 1: the values agree under the tolerance */
    int     argmax;    /* numeric arrays: 1 same argmax, 0 not; -1 n/a */
} fanout_compare_t;


/*
 * a and b are each one valid JSON value (a span found by fanout_json_scan).
 * Object keys may come in any order; escapes in strings are decoded
 * before comparing ("\u0041" equals "A").
 */
void fanout_compare(const char *a, size_t alen, const char *b, size_t blen,
    double tolerance, fanout_compare_t *res);

/* the index of the largest number of a numeric array; -1 when not one */
long fanout_argmax(const char *p, size_t len);


#endif /* _FANOUT_COMPARE_H_INCLUDED_ */
