/*
 * fanout_batch: a client's batch, an array at a dot path in its JSON body,
 * made into one body per item (or per chunk of items) for every target,
 * and the answers of those calls made into one answer in the items'
 * order.  Pure logic: no nginx headers, no allocation but the merges',
 * unit-tested in t/unit, fuzzed in t/fuzz.
 */

#ifndef _FANOUT_BATCH_H_INCLUDED_
#define _FANOUT_BATCH_H_INCLUDED_


#include "fanout_merge.h"


#define FANOUT_BATCH_MAX_ITEMS  16384
#define FANOUT_BATCH_MAX_CALLS  16384   /* calls x targets, per request:
                                           nginx allows 65535 subrequests */
#define FANOUT_BATCH_PIECES     5


typedef enum {
    FANOUT_BATCH_OK = 0,
    FANOUT_BATCH_NOT_JSON,         /* the body is not one JSON text */
    FANOUT_BATCH_NO_FIELD,         /* FIELD is not in it */
    FANOUT_BATCH_NOT_ARRAY,        /* FIELD is not an array */
    FANOUT_BATCH_AMBIGUOUS,        /* FIELD is there twice (duplicate keys) */
    FANOUT_BATCH_EMPTY,            /* an empty array: nothing to infer */
    FANOUT_BATCH_TOO_MANY          /* more than max_items */
} fanout_batch_rc_e;


/* what the client sent */
typedef struct {
    fanout_span_t        array;    /* FIELD's array, in the body */
    fanout_span_t       *items;    /* its elements (the caller's memory) */
    size_t               nitems;
} fanout_batch_t;


/*
 * Finds the array at path in the body and its elements, at most max
 * (items must hold max).  One pass over the body to validate it and find
 * the array, one over the array: linear in the body.
 */
fanout_batch_rc_e fanout_batch_split(const char *body, size_t len,
    const char *path, size_t path_len, size_t max, fanout_span_t *items,
    fanout_batch_t *b);

/* what the client is told: "FIELD is not an array", ... */
const char *fanout_batch_error(fanout_batch_rc_e rc);

/* how many calls per target: one per item, or per chunk of chunk items */
size_t fanout_batch_calls(const fanout_batch_t *b, size_t chunk);

/*
 * The body of call k as pieces to send in order, pointing into the body
 * (and at static "[" and "]"): the body before the array, the item in
 * the array's place (chunk 0), or "[" and a slice of chunk items and "]",
 * then the body after it.  Returns the number of pieces (at most
 * FANOUT_BATCH_PIECES); *len their total.
 */
size_t fanout_batch_pieces(const char *body, size_t len,
    const fanout_batch_t *b, size_t chunk, size_t k, fanout_span_t *piece,
    size_t *total);


/* the answer of a batch, from the parts of its calls */
typedef struct {
    const fanout_merge_conf_t  *conf;
    fanout_part_t              *parts;     /* ncalls * ntargets, by call */
    size_t                      ncalls;
    size_t                      ntargets;
    size_t                      nitems;    /* the client's items */
    size_t                      chunk;     /* 0: a call per item */
    fanout_merged_t            *merged;    /* ncalls, the caller's */

    /* by fanout_batch_prepare() */
    int                         status;    /* 200, 502 or 504 */
    size_t                      ok;        /* calls that met the quorum */
    size_t                      cached;    /* calls wholly from the cache */
} fanout_batch_answer_t;


/*
 * Merges each call's parts as the location merges a request's (all, mean,
 * vote; "first": the first good answer of the call).  The status: 200 when
 * any call met its quorum (the others are reported in "errors"), 502 when
 * none did (504 when every one of them timed out).  -1 when out of memory.
 */
int fanout_batch_prepare(fanout_batch_answer_t *a);

/*
 * {"items":[...],"errors":{"K":...},"meta":{...}}: items[k] is call k's
 * merged answer, or null when it failed, and then errors["k"] is that
 * merged answer, with its "error".  With out->buf NULL only counts.
 */
void fanout_batch_write(const fanout_batch_answer_t *a, fanout_out_t *out);

void fanout_batch_free(fanout_batch_answer_t *a);


#endif /* _FANOUT_BATCH_H_INCLUDED_ */
