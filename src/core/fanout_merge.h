/*
 * Merging the JSON answers of several targets into one document.  Answers
 * are validated by the scanner and spliced into the result as they came;
 * only merged values are computed and written.  Pure logic: no nginx
 * headers, unit-tested in t/unit.
 */

#ifndef _FANOUT_MERGE_H_INCLUDED_
#define _FANOUT_MERGE_H_INCLUDED_


#include "fanout_json.h"
#include "fanout_number.h"


typedef enum {
    FANOUT_MERGE_ALL = 0,
    FANOUT_MERGE_FIRST,
    FANOUT_MERGE_MEAN,
    FANOUT_MERGE_VOTE
} fanout_merge_mode_e;


/* how a target's call ended; the order is the order of status counters */
typedef enum {
    FANOUT_OK = 0,
    FANOUT_TIMEOUT,
    FANOUT_HTTP_4XX,
    FANOUT_HTTP_5XX,
    FANOUT_BAD_JSON,
    FANOUT_TOO_LARGE,
    FANOUT_UPSTREAM_ERROR,
    FANOUT_BAD_FIELD,
    FANOUT_CIRCUIT_OPEN,           /* not called: its breaker is open */
    FANOUT_OVERLOADED,             /* not called: max_inflight reached */
    FANOUT_BAD_BATCH,              /* batch=: its batch's answer unusable */
    FANOUT_NKINDS
} fanout_kind_e;


typedef struct {
    const char      *name;         /* NUL-terminated */
    double           weight;

    fanout_kind_e    kind;
    int              status;       /* HTTP status of the answer, or ours */
    const char      *body;         /* not NUL-terminated */
    size_t           body_len;
    unsigned long    latency_ms;

    fanout_span_t    field;        /* FIELD's value, by fanout_part_parse() */
    const char      *detail;       /* static text, for bad_field */
    unsigned         attempts;     /* the call's tries: 0 or 1 when one */
    unsigned         cached:1;     /* from the per-target cache */
    unsigned         fallback:1;   /* answered by the target's fallback */
    unsigned         hedged:1;     /* answered by a fanout_hedge backup */
} fanout_part_t;


typedef struct {
    fanout_merge_mode_e   mode;
    const char           *field;   /* dot path for mean and vote */
    size_t                field_len;
    unsigned              quorum;
    unsigned              cache_meta:1;  /* meta.cache: per-target hits */
    unsigned              v2:1;          /* format=v2: the OIP's shape */
    int                   precision;     /* mean's numbers: see
                                            fanout_out_number() */

    /* format=v2: the answer's model_name and output name, and the
     * request's "id" (its JSON text, or NULL) */
    const char           *model;
    size_t                model_len;
    const char           *output;
    size_t                output_len;
    const char           *id;
    size_t                id_len;

    /* meta.trace_id and meta.request_id, when set: written as they are
     * (hex, or fanout_request_id_valid()'s characters) */
    const char           *trace_id;
    size_t                trace_id_len;
    const char           *request_id;
    size_t                request_id_len;
} fanout_merge_conf_t;


/* a distinct vote value, by what it means, not how it was written */
typedef struct {
    size_t                voter;   /* index of its first voter */
    double                votes;
    char                  kind;    /* 's'tring, 'n'umber, 't'rue, 'f'alse */
    const char           *text;    /* a string's decoded bytes */
    size_t                len;
    double                number;
    unsigned long         hash;
    const char           *key;     /* its key in "votes", unescaped */
    size_t                key_len;
} fanout_ballot_t;


/* what fanout_merge_prepare() works out, for fanout_merge_write() */
typedef struct {
    int                   status;  /* 200, 502 or 504 */
    unsigned              ok;

    /* mean: the value, formatted once for both writing passes (a small
     * one in mean_room: the struct is not moved once prepared) */
    char                 *mean;
    size_t                mean_len;
    unsigned              from;
    char                  mean_room[128];

    /* vote: distinct ballots in order of their first voter */
    fanout_ballot_t      *ballots;
    size_t                nballots;
    size_t                winner;  /* index in ballots[] */
    char                 *decoded; /* the strings' bytes */
    char                 *keys;    /* when strings meet other kinds */
} fanout_merged_t;


/*
 * Classify an answer that arrived with an HTTP status: a 2xx body must be
 * JSON (FANOUT_OK), otherwise bad_json or http_4xx/5xx; with a field, its
 * value's span is kept in p->field.
 */
void fanout_part_parse(fanout_part_t *p, const char *field, size_t len);

/* "timeout", "http_503", "bad_json", ...: buf must hold 16 bytes */
const char *fanout_kind_error(const fanout_part_t *p, char *buf, size_t size);

/* the counter name of a kind: "ok", "timeout", "http_4xx", ... */
const char *fanout_kind_name(fanout_kind_e kind);

/* status for a result: 200, or 502 (504 when every failure timed out, 503
 * when every one was overloaded: shed by max_inflight=) */
int fanout_merge_status(const fanout_part_t *parts, size_t n,
    unsigned quorum);

/*
 * Works out the merged value and the status.  For mean and vote, answers
 * whose FIELD is unusable become FANOUT_BAD_FIELD first, so that the quorum
 * counts usable answers.  -1 when out of memory.
 */
int fanout_merge_prepare(const fanout_merge_conf_t *conf,
    fanout_part_t *parts, size_t n, fanout_merged_t *m);

/* writes the answer, or with out->buf NULL counts its length */
void fanout_merge_write(const fanout_merge_conf_t *conf,
    const fanout_part_t *parts, size_t n, const fanout_merged_t *m,
    fanout_out_t *out);

/*
 * format=v2: the merged value as an Open Inference Protocol answer:
 * {"model_name","id","outputs":[{"name","shape","datatype","data"}],
 * "parameters"} (mean: the value's shape, its numbers flat, FP64; vote:
 * one value, BYTES, FP64 or BOOL), or {"error":...} when the quorum is
 * not met.  With out->buf NULL only counts.
 */
void fanout_merge_write_v2(const fanout_merge_conf_t *conf,
    const fanout_part_t *parts, size_t n, const fanout_merged_t *m,
    fanout_out_t *out);

/*
 * The output name format=v2 gives by default: FIELD's selector value
 * (outputs[name=probabilities].data: "probabilities"), or its last key.
 */
void fanout_merge_output_name(const char *field, size_t len,
    const char **name, size_t *name_len);

void fanout_merged_free(fanout_merged_t *m);


#endif /* _FANOUT_MERGE_H_INCLUDED_ */
