/*
 * Micro-batching (fanout_target ... batch=N): the inputs of several
 * requests to one target combined into one upstream call in the target
 * protocol's own way, and its answer split back, each caller getting what
 * an unbatched call would have returned.  Pure logic: no nginx headers,
 * no allocation (the caller gives the memory), unit-tested in t/unit,
 * fuzzed in t/fuzz.  Every function is linear in the texts it reads.
 *
 * Formats:
 *   instances  KServe v1 / TF Serving: {"instances":[...]} answered by
 *              {"predictions":[...]}, a prediction per instance;
 *   v2         the Open Inference Protocol: {"inputs":[{"name","shape",
 *              "datatype","data"}...]}, data concatenated along the first
 *              dimension (shape[0] summed), answered by "outputs" whose
 *              shape[0] is the rows and whose data is split by rows;
 *              "id" is each caller's own;
 *   openai     embeddings: {"input": "text" | [...]} answered by
 *              {"data":[{"index":i,...}]}, each caller's indexes from 0;
 *   array      a JSON array of inputs answered by an array of outputs.
 */

#ifndef _FANOUT_MICROBATCH_H_INCLUDED_
#define _FANOUT_MICROBATCH_H_INCLUDED_


#include "fanout_json.h"


#define FANOUT_MB_MAX_TENSORS  8
#define FANOUT_MB_MAX_CUTS     (2 + 2 * FANOUT_MB_MAX_TENSORS)


typedef enum {
    FANOUT_MB_INSTANCES = 0,
    FANOUT_MB_V2,
    FANOUT_MB_OPENAI,
    FANOUT_MB_ARRAY
} fanout_mb_format_e;


/* what varies between requests that may share a batch: cut out of it */
typedef enum {
    FANOUT_MB_CUT_ROWS = 0,        /* the rows: an array's contents */
    FANOUT_MB_CUT_COUNT,           /* v2 shape[0] */
    FANOUT_MB_CUT_ID,              /* v2 "id": each caller's own */
    FANOUT_MB_CUT_ONE              /* openai: a lone input, not an array */
} fanout_mb_cut_e;


typedef struct {
    fanout_mb_cut_e     what;
    unsigned            tensor;
    fanout_span_t       span;
} fanout_mb_cut_t;


/* a request (or an answer) read for batching */
typedef struct {
    size_t              rows;      /* its inputs (the first dimension) */
    unsigned            ntensors;  /* v2: its input (or output) tensors */
    size_t              elements[FANOUT_MB_MAX_TENSORS];  /* per tensor */
    fanout_mb_cut_t     cuts[FANOUT_MB_MAX_CUTS];         /* in order */
    unsigned            ncuts;
    fanout_span_t       id;        /* v2: its "id" value, or { NULL, 0 } */
    unsigned            keyed:1;   /* an answer whose rows say their input
                                      (openai "index"): in any order */
} fanout_mb_doc_t;


/*
 * Reads a request: 0, or -1 when it cannot be batched (not JSON, not the
 * format, a duplicate key on a path the batch uses, rows that do not
 * divide its data): such a request is sent alone, as it came.
 */
int fanout_mb_request(fanout_mb_format_e fmt, const char *body, size_t len,
    fanout_mb_doc_t *d);

/*
 * The request with what varies cut out, into out (or only counted): two
 * requests share a batch only when this is the same for both.
 */
void fanout_mb_key(const char *body, const fanout_mb_doc_t *d,
    size_t len, fanout_out_t *out);

/*
 * The combined request of n callers: the first one's body, its rows
 * replaced by everyone's (in order), v2 shape[0] by their sum.
 */
void fanout_mb_combine(const char *const *bodies, const size_t *lens,
    const fanout_mb_doc_t *docs, size_t n, fanout_out_t *out);

/*
 * Reads the combined answer for callers whose rows are given: 0, or -1
 * when it is not a whole answer for them (not JSON, no predictions, data
 * or outputs, fewer or more rows than asked, rows that do not divide an
 * output's data): then each caller fails with bad_batch.
 */
int fanout_mb_answer(fanout_mb_format_e fmt, const char *body, size_t len,
    size_t rows, fanout_mb_doc_t *d);

/*
 * The elements of tensor t's rows in an answer, in the inputs' order:
 * d->elements[t] of them into items, which needs room for
 * fanout_mb_items_room() spans.  Where the protocol keys its rows (openai
 * "index"), by their keys: -1 when a key is missing, repeated or out of
 * range (the answer is not one for these inputs: bad_batch); else by
 * position, which the protocol defines.
 */
size_t fanout_mb_items_room(const fanout_mb_doc_t *d, unsigned tensor);
int fanout_mb_items(const fanout_mb_doc_t *d, unsigned tensor,
    fanout_span_t *items);

/*
 * A caller's answer out of the combined one: its rows (count of them from
 * row first; items[t]: tensor t's elements, by fanout_mb_items()), each
 * output's shape[0] its count, v2 "id" its own (id: its request's, or
 * NULL to keep the answer's), openai indexes from 0.  Of the answer's top
 * level only what an unbatched call would have said alike is kept (the
 * rows, the model's name and version, openai "object"); what speaks of the
 * whole batch is left out (openai "usage", unless the caller's inputs were
 * all of it; v2 "parameters"; anything unknown).  Linear in what it
 * writes.
 */
int fanout_mb_slice(fanout_mb_format_e fmt, const char *body, size_t len,
    const fanout_mb_doc_t *d, fanout_span_t *const *items, size_t first,
    size_t count, const fanout_span_t *id, fanout_out_t *out);

extern const char *const  fanout_mb_formats[];

const char *fanout_mb_format_name(fanout_mb_format_e fmt);


#endif /* _FANOUT_MICROBATCH_H_INCLUDED_ */
