/*
 * fanout_trace and fanout_request_id: the trace context and the request
 * id every target call, retry, hedge, shadow and micro-batch carries.
 *
 * A request's trace id is the client's (its traceparent) or a new one; the
 * calls' parent span is the client's span, or, in a new trace, a root span
 * the module makes for the request ($fanout_span_id either way).  Each
 * attempt gets a span id of its own, in its traceparent (the call log
 * names it); tracestate passes as the client sent it.  The request id is
 * the client's X-Request-ID when trusted, else $request_id, which the
 * module sets itself (16 random bytes in hex, as nginx makes it; in a new
 * trace, the trace id itself) unless it was already made: one id for the
 * access log, the models and the client.
 *
 * Ids come from a xoshiro256** generator seeded from libcrypto's RAND at
 * the worker's start: nginx's own random() is seeded from the pid and the
 * time, which the containers of a fleet share.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_trace.h"

#include <openssl/rand.h>


/* seeded by every process that serves requests (a worker, or nginx with
 * master_process off) before its first request */
static fanout_rng_t  ngx_http_fanout_rng;

static ngx_str_t  ngx_http_fanout_traceparent = ngx_string("traceparent");
static ngx_str_t  ngx_http_fanout_request_id = ngx_string("X-Request-ID");


ngx_int_t
ngx_http_fanout_trace_init_process(ngx_cycle_t *cycle)
{
    unsigned char  seed[32];

    if (RAND_bytes(seed, sizeof(seed)) != 1) {
        /* no entropy source: the time, the pid and nginx's random() */
        ngx_memzero(seed, sizeof(seed));
        *(ngx_msec_t *) seed = ngx_current_msec;
        *(ngx_pid_t *) (seed + 8) = ngx_pid;
        *(long *) (seed + 16) = ngx_random();
        *(time_t *) (seed + 24) = ngx_time();

        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "fanout: RAND_bytes() failed, trace and request ids "
                      "are seeded from the time and the pid");
    }

    fanout_rng_seed(&ngx_http_fanout_rng, seed);

    return NGX_OK;
}


static void
ngx_http_fanout_rng_hex(u_char *out, size_t n)
{
    fanout_rng_hex(&ngx_http_fanout_rng, (char *) out, n);
}


static ngx_table_elt_t *
ngx_http_fanout_trace_find(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            return &h[i];
        }
    }
}


/*
 * At the request's start: its trace and request id, and X-Request-ID on
 * whatever answer it gets.
 */

ngx_int_t
ngx_http_fanout_trace_start(ngx_http_fanout_ctx_t *ctx)
{
    ngx_uint_t                  rid;
    ngx_table_elt_t            *h;
    ngx_http_request_t         *r;
    ngx_http_variable_value_t  *vv;
    ngx_http_fanout_trace_ctx_t *tc;

    r = ctx->request;

    tc = ngx_pcalloc(r->pool, sizeof(ngx_http_fanout_trace_ctx_t));
    if (tc == NULL) {
        return NGX_ERROR;
    }

    ctx->trace = tc;

    if (ctx->conf->trace) {
        h = ngx_http_fanout_trace_find(r, &ngx_http_fanout_traceparent);

        if (h == NULL
            || fanout_traceparent_parse((const char *) h->value.data,
                                        h->value.len, &tc->ids)
               != 0)
        {
            if (h) {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "fanout: invalid traceparent \"%V\", a new "
                              "trace begins", &h->value);
            }

            /*
             * A new trace, sampled: its calls are logged.  Its root span
             * (the calls' parent) is the trace id's second half, as some
             * tracers make it: random, and one draw less.
             */
            ngx_http_fanout_rng_hex((u_char *) tc->ids.trace_id,
                                    FANOUT_TRACE_ID_LEN);
            ngx_memcpy(tc->ids.parent_id,
                       tc->ids.trace_id + FANOUT_SPAN_ID_LEN,
                       FANOUT_SPAN_ID_LEN);

            if (ngx_strncmp(tc->ids.parent_id, "0000000000000000",
                            FANOUT_SPAN_ID_LEN)
                == 0)
            {
                ngx_http_fanout_rng_hex((u_char *) tc->ids.parent_id,
                                        FANOUT_SPAN_ID_LEN);
            }
            tc->ids.flags[0] = '0';
            tc->ids.flags[1] = '1';
            tc->fresh = 1;
        }

        tc->traced = 1;
    }

    if (ctx->conf->request_id == NGX_HTTP_FANOUT_RID_OFF) {
        return NGX_OK;
    }

    h = NULL;

    if (ctx->conf->request_id == NGX_HTTP_FANOUT_RID_TRUST) {
        h = ngx_http_fanout_trace_find(r, &ngx_http_fanout_request_id);

        if (h && !fanout_request_id_valid((const char *) h->value.data,
                                          h->value.len))
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "fanout: X-Request-ID \"%V\" is not an id "
                          "(1 to %d of A-Z a-z 0-9 . _ : / + = @ -), "
                          "replaced", &h->value, FANOUT_REQUEST_ID_MAX);
            h = NULL;
        }
    }

    if (h) {
        tc->request_id = h->value;

    } else {
        /* $request_id: made here, cheaply, unless it is made already */
        rid = ngx_http_fanout_rid(r);
        vv = &r->variables[rid];

        if (!vv->valid || vv->not_found) {
            if (tc->fresh) {
                /* a new trace: its id is the request's, one id to find */
                vv->data = (u_char *) tc->ids.trace_id;

            } else {
                vv->data = ngx_pnalloc(r->pool, 32);
                if (vv->data == NULL) {
                    return NGX_ERROR;
                }

                ngx_http_fanout_rng_hex(vv->data, 32);
            }

            vv->len = 32;
            vv->valid = 1;
            vv->no_cacheable = 0;
            vv->not_found = 0;
        }

        tc->request_id.data = vv->data;
        tc->request_id.len = vv->len;
    }

    /* the client gets it back, on every answer of the location */
    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    h->key = ngx_http_fanout_request_id;
    h->value = tc->request_id;

    return NGX_OK;
}


static void
ngx_http_fanout_trace_elt(ngx_table_elt_t *h, ngx_str_t *key, u_char *low,
    ngx_uint_t hash, u_char *value, size_t len)
{
    h->hash = hash;
    h->key = *key;
    h->lowcase_key = low;
    h->value.data = value;
    h->value.len = len;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
}


/*
 * What one attempt sends: its own traceparent (a new span id, in span when
 * given) and the request id, before the client's other headers (shared,
 * without the client's traceparent and X-Request-ID: request.c leaves
 * them out).  NULL: no memory.
 */

ngx_list_t *
ngx_http_fanout_trace_headers(ngx_http_fanout_ctx_t *ctx, ngx_list_t *shared,
    u_char *span)
{
    u_char                       *p, id[FANOUT_SPAN_ID_LEN];
    ngx_list_t                   *list;
    ngx_list_part_t              *next;
    ngx_table_elt_t              *h;
    ngx_http_fanout_trace_ctx_t  *tc;

    static u_char      low_tp[] = "traceparent";
    static u_char      low_rid[] = "x-request-id";
    static ngx_uint_t  hash_tp, hash_rid;

    if (hash_tp == 0) {
        hash_tp = ngx_hash_key(low_tp, sizeof(low_tp) - 1);
        hash_rid = ngx_hash_key(low_rid, sizeof(low_rid) - 1);
    }

    tc = ctx->trace;

    if (tc == NULL) {
        /* neither fanout_trace nor fanout_request_id */
        return shared;
    }

    next = &shared->part;

    if (tc->request_id.len) {
        /* X-Request-ID, the same for every call: one part, made once */
        if (tc->rid_list.part.next != &shared->part) {
            ngx_http_fanout_trace_elt(&tc->rid_elt,
                                      &ngx_http_fanout_request_id, low_rid,
                                      hash_rid, tc->request_id.data,
                                      tc->request_id.len);

            tc->rid_list.part.elts = &tc->rid_elt;
            tc->rid_list.part.nelts = 1;
            tc->rid_list.part.next = &shared->part;
            tc->rid_list.last = shared->last;
            tc->rid_list.size = sizeof(ngx_table_elt_t);
            tc->rid_list.nalloc = 1;
            tc->rid_list.pool = ctx->request->pool;
        }

        if (!tc->traced) {
            return &tc->rid_list;
        }

        next = &tc->rid_list.part;
    }

    if (!tc->traced) {
        return shared;
    }

    /* the attempt's own: its traceparent, with its span inside */
    list = ngx_palloc(ctx->request->pool, sizeof(ngx_list_t)
                                          + sizeof(ngx_table_elt_t)
                                          + FANOUT_TRACEPARENT_LEN);
    if (list == NULL) {
        return NULL;
    }

    h = (ngx_table_elt_t *) (list + 1);
    p = (u_char *) (h + 1);

    ngx_http_fanout_rng_hex(id, FANOUT_SPAN_ID_LEN);
    fanout_traceparent_write(&tc->ids, (const char *) id, (char *) p);

    if (span) {
        ngx_memcpy(span, id, FANOUT_SPAN_ID_LEN);
    }

    ngx_http_fanout_trace_elt(h, &ngx_http_fanout_traceparent, low_tp,
                              hash_tp, p, FANOUT_TRACEPARENT_LEN);

    list->part.elts = h;
    list->part.nelts = 1;
    list->part.next = next;
    list->last = shared->last;
    list->size = sizeof(ngx_table_elt_t);
    list->nalloc = 1;
    list->pool = ctx->request->pool;

    return list;
}
