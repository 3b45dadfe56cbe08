/*
 * Merging the JSON answers of several targets into one document.
 * Pure logic: jansson only, no nginx headers, unit-tested in t/unit.
 */

#ifndef _FANOUT_MERGE_H_INCLUDED_
#define _FANOUT_MERGE_H_INCLUDED_


#include <stddef.h>
#include <jansson.h>


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

    json_t          *json;         /* owned, set by fanout_part_parse() */
    const char      *detail;       /* static text, for bad_field */
} fanout_part_t;


typedef struct {
    fanout_merge_mode_e   mode;
    const char           *field;   /* dot path for mean and vote */
    size_t                field_len;
    unsigned              quorum;
} fanout_merge_conf_t;


/*
 * Classify an answer that arrived with an HTTP status: a 2xx body must be
 * JSON (kind FANOUT_OK, p->json set), otherwise bad_json or http_4xx/5xx.
 */
void fanout_part_parse(fanout_part_t *p);

void fanout_part_release(fanout_part_t *p);

/* "timeout", "http_503", "bad_json", ...: buf must hold 16 bytes */
const char *fanout_kind_error(const fanout_part_t *p, char *buf, size_t size);

/* the counter name of a kind: "ok", "timeout", "http_4xx", ... */
const char *fanout_kind_name(fanout_kind_e kind);

/*
 * The merged document and its HTTP status (200, 502 or 504).  For mean and
 * vote, successful parts whose FIELD is unusable become FANOUT_BAD_FIELD
 * before the quorum is counted.  Returns NULL only when out of memory.
 */
json_t *fanout_merge(const fanout_merge_conf_t *conf, fanout_part_t *parts,
    size_t n, int *status);

/* status for a result with "ok" usable parts: 200, 502 or 504 */
int fanout_merge_status(const fanout_part_t *parts, size_t n,
    unsigned quorum);


#endif /* _FANOUT_MERGE_H_INCLUDED_ */
