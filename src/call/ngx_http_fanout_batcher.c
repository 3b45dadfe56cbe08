/*
 * Micro-batching (fanout_target ... batch=N): concurrent calls to one
 * target in one worker wait up to batch_wait, or until N inputs wait,
 * and go as one upstream call with their inputs combined in the target's
 * protocol (src/core/fanout_microbatch.c); its answer is split back, each call
 * getting its own share.
 *
 * A call's attempt joins a group of calls that may share a batch: the
 * same target, method, URI, headers (but the per-request ones) and body
 * outside the inputs, compared whole, never by a digest.  A group that is
 * full or whose wait is over is sent: the batch's subrequest belongs to a
 * detached request of its own (request.c), so that no caller's client
 * leaving can end it for the others.  The batch's answer reaches each
 * caller from a posted event, in the caller's own context.  A caller that
 * goes away leaves its group, or its batch (then its share is dropped; a
 * batch that nobody waits for any more is cut off).
 *
 * Groups and batches are this worker's: a group lives in the heap for at
 * most batch_wait, a batch in its detached request's pool.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_batcher.h"
#include "ngx_http_fanout_call.h"
#include "ngx_http_fanout_capture.h"
#include "ngx_http_fanout_request.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_trace.h"
#include "ngx_http_fanout_batch.h"
#include "ngx_http_fanout_body.h"


typedef struct ngx_http_fanout_mb_group_s    ngx_http_fanout_mb_group_t;
typedef struct ngx_http_fanout_mb_carrier_s  ngx_http_fanout_mb_carrier_t;


/* open groups: found by their key's hash, and at most so many */
#define NGX_HTTP_FANOUT_MB_BUCKETS  64
#define NGX_HTTP_FANOUT_MB_GROUPS   1024

/* a call with more headers than this goes alone: they are sorted */
#define NGX_HTTP_FANOUT_MB_HEADERS  64


typedef struct {
    ngx_http_fanout_target_t       target;     /* a copy: the location's
                                                  array of them may move */
    ngx_queue_t                    groups[NGX_HTTP_FANOUT_MB_BUCKETS];
    ngx_uint_t                     ngroups;    /* waiting to be sent */
} ngx_http_fanout_batcher_t;


/* a call's attempt in a batch: in the caller's request pool */
typedef struct {
    ngx_queue_t                    queue;      /* in its group */
    ngx_http_fanout_attempt_t     *attempt;
    ngx_http_request_t            *r;          /* the caller's */
    ngx_list_t                    *headers;    /* what its calls send */
    ngx_http_fanout_stats_t       *st;         /* its target's batches */
    ngx_http_fanout_stats_t       *tst;        /* its target's counters */
    ngx_http_fanout_retry_conf_t  *retry;      /* its location's */
    u_char                        *body;
    size_t                         len;
    fanout_mb_doc_t                doc;        /* its inputs, read */
    ngx_http_fanout_mb_group_t    *group;      /* while it waits */
    ngx_http_fanout_mb_carrier_t  *carrier;    /* once sent */
    ngx_uint_t                     slot;       /* its place in it */
    ngx_msec_t                     queued;
    ngx_event_t                    deliver;    /* its answer is ready */

    /* its answer */
    unsigned                       follower:1; /* not its batch's first */
    unsigned                       retried:1;  /* its batch was retried */
    unsigned                       split:1;    /* to be sent alone */
    fanout_kind_e                  kind;
    int                            result;
    int                            status;
    ngx_str_t                      type;
    u_char                        *buf;
    size_t                         buf_len;
} ngx_http_fanout_mb_member_t;


/* calls that may share a batch, waiting: in the heap */
struct ngx_http_fanout_mb_group_s {
    ngx_queue_t                    queue;      /* in the batcher's */
    ngx_http_fanout_batcher_t     *batcher;
    uint32_t                       hash;
    ngx_str_t                      key;
    ngx_queue_t                    members;
    ngx_uint_t                     rows;
    ngx_uint_t                     n;
    ngx_event_t                    timer;      /* batch_wait */
};


/* a batch sent: in its detached request's pool */
struct ngx_http_fanout_mb_carrier_s {
    ngx_http_request_t            *fake;
    ngx_http_fanout_batcher_t     *batcher;
    ngx_http_fanout_stats_t       *st;
    ngx_http_fanout_attempt_t     *attempt;    /* the batch's subrequest */
    ngx_http_fanout_stats_t       *tst;        /* its target's counters */
    ngx_http_fanout_retry_conf_t  *retry;      /* fanout_retry, or NULL */
    ngx_uint_t                     tries;
    ngx_event_t                    again;      /* a retry's backoff */
    ngx_http_fanout_mb_member_t  **members;    /* NULL: gone */
    size_t                        *rows;       /* each one's inputs */
    ngx_uint_t                     n;
    ngx_uint_t                     live;
    size_t                         total;
    ngx_event_t                    reap;
    unsigned                       ended:1;
    unsigned                       cut:1;
    unsigned                       given:1;    /* an outcome went out */
};


static ngx_int_t ngx_http_fanout_batcher_body(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_http_fanout_mb_member_t *m);
static ngx_int_t ngx_http_fanout_batcher_key(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_mb_member_t *m, ngx_str_t *key);
static void ngx_http_fanout_batcher_wait_over(ngx_event_t *ev);
static void ngx_http_fanout_batcher_send(ngx_http_fanout_mb_group_t *g);
static void ngx_http_fanout_batcher_close(ngx_http_fanout_mb_group_t *g);
static void ngx_http_fanout_batcher_leave(ngx_http_fanout_attempt_t *a);
static void ngx_http_fanout_batcher_ended(ngx_http_fanout_attempt_t *a);
static void ngx_http_fanout_batcher_stopped(ngx_http_fanout_attempt_t *a);
static void ngx_http_fanout_batcher_fail(ngx_http_fanout_mb_carrier_t *c,
    fanout_kind_e kind, int result, int status);
static void ngx_http_fanout_batcher_give(ngx_http_fanout_mb_member_t *m,
    fanout_kind_e kind, int result, int status);
static void ngx_http_fanout_batcher_delivered(ngx_event_t *ev);
static void ngx_http_fanout_batcher_reap(ngx_event_t *ev);
static ngx_int_t ngx_http_fanout_batcher_call(
    ngx_http_fanout_mb_carrier_t *c);
static ngx_int_t ngx_http_fanout_batcher_retry(
    ngx_http_fanout_mb_carrier_t *c, ngx_http_fanout_attempt_t *a);
static void ngx_http_fanout_batcher_again(ngx_event_t *ev);
static void ngx_http_fanout_batcher_split(ngx_http_fanout_mb_carrier_t *c);


ngx_int_t
ngx_http_fanout_batcher_init(ngx_conf_t *cf, ngx_http_fanout_target_t *t)
{
    ngx_uint_t                  i;
    ngx_http_fanout_batcher_t  *b;

    b = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_batcher_t));
    if (b == NULL) {
        return NGX_ERROR;
    }

    /* each worker has its own copy of this after the fork */
    b->target = *t;

    for (i = 0; i < NGX_HTTP_FANOUT_MB_BUCKETS; i++) {
        ngx_queue_init(&b->groups[i]);
    }

    t->batcher = b;

    return NGX_OK;
}


/*
 * A call's attempt joins a batch instead of calling alone: NGX_OK, or
 * NGX_DECLINED when its body cannot be batched (not the format, or as
 * many inputs as batch= alone): it is then sent alone, as it came.
 */

ngx_int_t
ngx_http_fanout_batcher_join(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_http_fanout_attempt_t *a)
{
    uint32_t                      hash;
    ngx_str_t                     key;
    ngx_queue_t                  *q, *bucket;
    ngx_http_request_t           *r;
    ngx_http_fanout_target_t     *t;
    ngx_http_fanout_batcher_t    *b;
    ngx_http_fanout_mb_group_t   *g;
    ngx_http_fanout_mb_member_t  *m;

    r = ctx->request;
    t = sub->target;
    b = t->batcher;

    m = ngx_pcalloc(r->pool, sizeof(ngx_http_fanout_mb_member_t));
    if (m == NULL) {
        return NGX_DECLINED;
    }

    m->st = ngx_http_fanout_stats_extra(r, ctx->conf,
                                        NGX_HTTP_FANOUT_STATS_BATCH,
                                        t->batch_stats);
    /* the first member's own traceparent goes with the batch */
    m->headers = ngx_http_fanout_trace_headers(ctx, ctx->headers, a->span);
    if (m->headers == NULL) {
        return NGX_DECLINED;
    }

    m->tst = sub->st;
    m->retry = ctx->conf->retry;

    if (ngx_http_fanout_batcher_body(ctx, sub, m) != NGX_OK
        || fanout_mb_request((fanout_mb_format_e) t->batch_format,
                             (const char *) m->body, m->len, &m->doc)
           != 0
        || m->doc.rows >= t->batch)
    {
        ngx_http_fanout_stats_count(m->st, NGX_HTTP_FANOUT_BAT_ALONE);
        return NGX_DECLINED;
    }

    if (ngx_http_fanout_batcher_key(ctx, m, &key) != NGX_OK) {
        ngx_http_fanout_stats_count(m->st, NGX_HTTP_FANOUT_BAT_ALONE);
        return NGX_DECLINED;
    }

    hash = ngx_murmur_hash2(key.data, key.len);
    bucket = &b->groups[hash % NGX_HTTP_FANOUT_MB_BUCKETS];

    for (q = ngx_queue_head(bucket), g = NULL;
         q != ngx_queue_sentinel(bucket);
         q = ngx_queue_next(q))
    {
        g = ngx_queue_data(q, ngx_http_fanout_mb_group_t, queue);

        if (g->hash == hash && g->key.len == key.len
            && ngx_memcmp(g->key.data, key.data, key.len) == 0)
        {
            break;
        }

        g = NULL;
    }

    if (g && g->rows + m->doc.rows > t->batch) {
        /* no room for it: the group goes now, a new one begins */
        ngx_http_fanout_batcher_send(g);
        g = NULL;
    }

    if (g == NULL) {
        if (b->ngroups >= NGX_HTTP_FANOUT_MB_GROUPS) {
            /* that many distinct kinds of calls waiting: this one goes */
            ngx_http_fanout_stats_count(m->st, NGX_HTTP_FANOUT_BAT_ALONE);
            return NGX_DECLINED;
        }

        g = ngx_alloc(sizeof(ngx_http_fanout_mb_group_t) + key.len,
                      ngx_cycle->log);
        if (g == NULL) {
            return NGX_DECLINED;
        }

        ngx_memzero(g, sizeof(ngx_http_fanout_mb_group_t));

        g->batcher = b;
        g->hash = hash;
        g->key.data = (u_char *) (g + 1);
        g->key.len = key.len;
        ngx_memcpy(g->key.data, key.data, key.len);
        ngx_queue_init(&g->members);

        g->timer.handler = ngx_http_fanout_batcher_wait_over;
        g->timer.data = g;
        g->timer.log = ngx_cycle->log;
        g->timer.cancelable = 1;

        ngx_queue_insert_tail(bucket, &g->queue);
        b->ngroups++;

        if (t->batch_wait) {
            ngx_add_timer(&g->timer, t->batch_wait);

        } else {
            /* batch_wait=0: the calls of this turn of the event loop */
            ngx_post_event(&g->timer, &ngx_posted_events);
        }
    }

    m->attempt = a;
    m->r = r;
    m->group = g;
    m->queued = ngx_current_msec;

    m->deliver.handler = ngx_http_fanout_batcher_delivered;
    m->deliver.data = m;
    m->deliver.log = r->connection->log;

    ngx_queue_insert_tail(&g->members, &m->queue);
    g->rows += m->doc.rows;
    g->n++;

    a->batched = m;
    a->leave = ngx_http_fanout_batcher_leave;
    a->start = ngx_current_msec;
    a->retry_after = -1;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "fanout target \"%V\": %uz inputs wait for a batch of %ui "
                   "(%ui now)", &t->name, m->doc.rows, t->batch, g->rows);

    if (g->rows >= t->batch) {
        ngx_http_fanout_batcher_send(g);
    }

    return NGX_OK;
}


/* the call's body, in one piece: a batch item's, or the client's */

static ngx_int_t
ngx_http_fanout_batcher_body(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_http_fanout_mb_member_t *m)
{
    ngx_str_t            body;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (sub->body) {
        /* set=: its own, which its group's key then takes in */
        m->body = sub->body->data;
        m->len = sub->body->len;
        return NGX_OK;
    }

    if (ctx->batch) {
        /* fanout_batch: the item's pieces, put together */
        if (ngx_http_fanout_body_item(ctx,
                                      (sub - ctx->subs) / ctx->batch->ntargets,
                                      &body)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        m->body = body.data;
        m->len = body.len;

        return NGX_OK;
    }

    if (ngx_http_fanout_body_memory(r, &body) != NGX_OK) {
        return NGX_ERROR;
    }

    m->body = body.data;
    m->len = body.len;

    return (body.len == 0) ? NGX_ERROR : NGX_OK;
}


/* headers that differ from request to request: not in a group's key */

static ngx_str_t  ngx_http_fanout_batcher_own[] = {
    ngx_string("content-length"),
    ngx_string("transfer-encoding"),
    ngx_string("connection"),
    ngx_string("keep-alive"),
    ngx_string("expect"),
    ngx_string("x-request-id"),
    ngx_string("traceparent"),
    ngx_string("tracestate"),
    ngx_null_string
};


static ngx_int_t
ngx_http_fanout_batcher_header_cmp(const void *one, const void *two)
{
    ngx_int_t               rc;
    const ngx_table_elt_t  *a = *(ngx_table_elt_t **) one;
    const ngx_table_elt_t  *b = *(ngx_table_elt_t **) two;

    rc = ngx_memn2cmp(a->lowcase_key, b->lowcase_key, a->key.len, b->key.len);

    return rc ? rc : ngx_memn2cmp(a->value.data, b->value.data, a->value.len,
                                  b->value.len);
}


/*
 * The group's key: what must be the same for two calls to share one
 * upstream call.  The target (the batcher's), the method and the
 * client's URI with its query string, the headers but the per-request
 * ones (sorted: clients order them as they like), and the body with its
 * inputs cut out.
 */

static ngx_int_t
ngx_http_fanout_batcher_key(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_mb_member_t *m, ngx_str_t *key)
{
    u_char              *p;
    size_t               len;
    ngx_str_t           *own;
    ngx_uint_t           i, n;
    fanout_out_t         out;
    ngx_list_part_t     *part;
    ngx_table_elt_t     *h, **sorted;
    ngx_http_request_t  *r;

    r = ctx->request;

    n = 0;
    len = r->method_name.len + r->unparsed_uri.len + 3;

    for (part = &m->headers->part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            n++;
            len += h[i].key.len + h[i].value.len + 2;
        }
    }

    if (n > NGX_HTTP_FANOUT_MB_HEADERS) {
        /* sorting them would cost more than a call: it goes alone */
        return NGX_DECLINED;
    }

    sorted = ngx_palloc(r->pool, (n ? n : 1) * sizeof(ngx_table_elt_t *));
    if (sorted == NULL) {
        return NGX_ERROR;
    }

    n = 0;

    for (part = &m->headers->part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            for (own = ngx_http_fanout_batcher_own; own->len; own++) {
                if (own->len == h[i].key.len
                    && ngx_strncmp(own->data, h[i].lowcase_key, own->len)
                       == 0)
                {
                    break;
                }
            }

            if (own->len == 0) {
                sorted[n++] = &h[i];
            }
        }
    }

    ngx_sort(sorted, n, sizeof(ngx_table_elt_t *),
             ngx_http_fanout_batcher_header_cmp);

    out.buf = NULL;
    out.len = 0;
    fanout_mb_key((const char *) m->body, &m->doc, m->len, &out);

    key->data = ngx_pnalloc(r->pool, len + out.len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    /* the URI and query string too: a target URI without one passes on
     * the client's, which the batch's call then has from its first */
    p = ngx_cpymem(key->data, r->method_name.data, r->method_name.len);
    *p++ = ' ';
    p = ngx_cpymem(p, r->unparsed_uri.data, r->unparsed_uri.len);
    *p++ = '\n';

    for (i = 0; i < n; i++) {
        p = ngx_cpymem(p, sorted[i]->lowcase_key, sorted[i]->key.len);
        *p++ = ':';
        p = ngx_cpymem(p, sorted[i]->value.data, sorted[i]->value.len);
        *p++ = '\n';
    }

    *p++ = '\n';

    out.buf = (char *) p;
    out.len = 0;
    fanout_mb_key((const char *) m->body, &m->doc, m->len, &out);

    key->len = p + out.len - key->data;

    return NGX_OK;
}


static void
ngx_http_fanout_batcher_wait_over(ngx_event_t *ev)
{
    ngx_http_fanout_batcher_send(ev->data);
}


/* the group is out of the batcher, and gone */

static void
ngx_http_fanout_batcher_close(ngx_http_fanout_mb_group_t *g)
{
    if (g->timer.timer_set) {
        ngx_del_timer(&g->timer);
    }

    if (g->timer.posted) {
        ngx_delete_posted_event(&g->timer);
    }

    ngx_queue_remove(&g->queue);
    g->batcher->ngroups--;
    ngx_free(g);
}


static ngx_uint_t
ngx_http_fanout_batcher_bucket(ngx_uint_t v, const ngx_uint_t *bounds,
    ngx_uint_t n)
{
    ngx_uint_t  i;

    for (i = 0; i < n - 1 && v > bounds[i]; i++) {
        /* void */
    }

    return i;
}


static const ngx_uint_t  ngx_http_fanout_batcher_sizes[] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024
};

static const ngx_uint_t  ngx_http_fanout_batcher_waits[] = {
    0, 1, 2, 5, 10, 25
};


/*
 * The group goes as one upstream call: its calls' inputs combined in a
 * body of the first one's, with the first one's headers, on a request of
 * its own.
 */

static void
ngx_http_fanout_batcher_send(ngx_http_fanout_mb_group_t *g)
{
    size_t                         len;
    u_char                        *body;
    ngx_uint_t                     i, n;
    ngx_msec_t                     waited;
    ngx_queue_t                   *q;
    fanout_out_t                   out;
    const char                   **bodies;
    size_t                        *lens;
    fanout_mb_doc_t               *docs;
    ngx_http_request_t            *fake;
    ngx_http_fanout_target_t      *t;
    ngx_http_fanout_mb_member_t   *m, *first;
    ngx_http_fanout_mb_carrier_t  *c;

    t = &g->batcher->target;
    n = g->n;

    q = ngx_queue_head(&g->members);
    first = ngx_queue_data(q, ngx_http_fanout_mb_member_t, queue);

    fake = ngx_http_fanout_detach(first->r, first->headers, "batching", 0);

    c = fake ? ngx_pcalloc(fake->pool, sizeof(ngx_http_fanout_mb_carrier_t))
             : NULL;

    if (c) {
        c->members = ngx_palloc(fake->pool, n * sizeof(void *));
        c->rows = ngx_palloc(fake->pool, n * sizeof(size_t));
    }

    bodies = fake ? ngx_palloc(fake->pool, n * sizeof(char *)) : NULL;
    lens = fake ? ngx_palloc(fake->pool, n * sizeof(size_t)) : NULL;
    docs = fake ? ngx_palloc(fake->pool, n * sizeof(fanout_mb_doc_t)) : NULL;

    if (c == NULL || c->members == NULL || c->rows == NULL
        || bodies == NULL || lens == NULL || docs == NULL)
    {
        goto failed;
    }

    c->fake = fake;
    c->batcher = g->batcher;
    c->st = first->st;
    c->n = n;
    c->live = n;

    i = 0;

    for (q = ngx_queue_head(&g->members);
         q != ngx_queue_sentinel(&g->members);
         q = ngx_queue_next(q))
    {
        m = ngx_queue_data(q, ngx_http_fanout_mb_member_t, queue);

        bodies[i] = (const char *) m->body;
        lens[i] = m->len;
        docs[i] = m->doc;
        c->members[i] = m;
        c->rows[i] = m->doc.rows;
        c->total += m->doc.rows;
        i++;
    }

    out.buf = NULL;
    out.len = 0;
    fanout_mb_combine(bodies, lens, docs, n, &out);
    len = out.len;

    body = ngx_pnalloc(fake->pool, len);
    if (body == NULL) {
        goto failed;
    }

    out.buf = (char *) body;
    out.len = 0;
    fanout_mb_combine(bodies, lens, docs, n, &out);

    fake->request_body = ngx_http_fanout_body_of(fake->pool, body, len);
    if (fake->request_body == NULL) {
        goto failed;
    }

    fake->headers_in.content_length_n = (off_t) len;
    fake->headers_in.chunked = 0;

    /* $content_length reads the header first: the batch's length */
    fake->headers_in.content_length = NULL;
    fake->method = first->r->method;
    fake->method_name = first->r->method_name;

    c->tst = first->tst;
    c->retry = first->retry;
    c->tries = 1;

    c->reap.handler = ngx_http_fanout_batcher_reap;
    c->reap.data = c;
    c->reap.log = fake->connection->log;
    c->reap.cancelable = 1;

    c->again.handler = ngx_http_fanout_batcher_again;
    c->again.data = c;
    c->again.log = fake->connection->log;

    if (ngx_http_fanout_batcher_call(c) != NGX_OK) {
        goto failed;
    }

    /* the counters, and each call now waits in the batch */
    ngx_http_fanout_stats_count(c->st, NGX_HTTP_FANOUT_BAT_BATCHES);
    (void) ngx_atomic_fetch_add(&c->st->counters[NGX_HTTP_FANOUT_BAT_INPUTS],
                                c->total);
    (void) ngx_atomic_fetch_add(&c->st->counters[NGX_HTTP_FANOUT_BAT_CALLERS],
                                n);
    ngx_http_fanout_stats_count(c->st, NGX_HTTP_FANOUT_BAT_SIZE
                                + ngx_http_fanout_batcher_bucket(
                                      c->total, ngx_http_fanout_batcher_sizes,
                                      NGX_HTTP_FANOUT_BAT_NSIZES));

    for (i = 0; i < n; i++) {
        m = c->members[i];
        m->group = NULL;
        m->carrier = c;
        m->slot = i;

        waited = ngx_current_msec - m->queued;

        (void) ngx_atomic_fetch_add(
                   &c->st->counters[NGX_HTTP_FANOUT_BAT_WAIT_MS], waited);
        ngx_http_fanout_stats_count(c->st, NGX_HTTP_FANOUT_BAT_WAIT
                                    + ngx_http_fanout_batcher_bucket(
                                          waited,
                                          ngx_http_fanout_batcher_waits,
                                          NGX_HTTP_FANOUT_BAT_NWAITS));
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, fake->connection->log, 0,
                   "fanout target \"%V\": a batch of %uz inputs from %ui "
                   "calls", &t->name, c->total, n);

    ngx_http_fanout_batcher_close(g);

    /* the subrequest starts now, on the batch's own connection */
    ngx_http_run_posted_requests(fake->connection);

    return;

failed:

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "fanout target \"%V\": a batch of %ui calls could not be "
                  "sent", &t->name, n);

    /* each call fails as if its own call could not be made */
    while (!ngx_queue_empty(&g->members)) {
        q = ngx_queue_head(&g->members);
        m = ngx_queue_data(q, ngx_http_fanout_mb_member_t, queue);
        ngx_queue_remove(q);
        m->group = NULL;
        ngx_http_fanout_batcher_give(m, FANOUT_UPSTREAM_ERROR,
                                     NGX_HTTP_INTERNAL_SERVER_ERROR, 0);
    }

    ngx_http_fanout_batcher_close(g);

    if (fake) {
        ngx_http_fanout_detached_free(fake);
    }
}


/* one attempt of the batch: its first, or a retry of the whole batch */

static ngx_int_t
ngx_http_fanout_batcher_call(ngx_http_fanout_mb_carrier_t *c)
{
    ngx_http_request_t         *sr;
    ngx_http_fanout_target_t   *t;
    ngx_http_fanout_attempt_t  *a;

    t = &c->batcher->target;

    a = ngx_pcalloc(c->fake->pool, sizeof(ngx_http_fanout_attempt_t));
    if (a == NULL) {
        return NGX_ERROR;
    }

    a->owner = c;
    a->ended = ngx_http_fanout_batcher_ended;
    a->stopped = ngx_http_fanout_batcher_stopped;
    a->name = &t->name;
    a->what = "batch";

    if (ngx_http_fanout_attempt_start(c->fake, a, &t->uri, &t->args)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    c->attempt = a;

    sr = a->sr;
    sr->method = c->fake->method;
    sr->method_name = c->fake->method_name;

    return NGX_OK;
}


/*
 * fanout_retry for a batch: a batch is one call, tried again as a whole
 * (when its callers' location retries that failure, within attempts= and
 * the target's budget, after a backoff), so that a failed batch of 32
 * callers is one retry, not 32.  Its callers wait for the last try.
 */

static ngx_int_t
ngx_http_fanout_batcher_retry(ngx_http_fanout_mb_carrier_t *c,
    ngx_http_fanout_attempt_t *a)
{
    int                            status;
    ngx_msec_t                     delay;
    fanout_kind_e                  kind;
    ngx_http_fanout_main_conf_t   *fmcf;
    ngx_http_fanout_retry_conf_t  *rc;

    rc = c->retry;

    if (rc == NULL || c->live == 0 || c->tries >= rc->attempts) {
        return NGX_DECLINED;
    }

    kind = a->kind;
    status = a->result;

    if (kind == FANOUT_OK) {
        /* a whole answer with an error status: as the call would judge it */
        kind = (status >= 500) ? FANOUT_HTTP_5XX : FANOUT_HTTP_4XX;
    }

    if (!fanout_kind_retries(kind, status, rc->on)) {
        return NGX_DECLINED;
    }

    fmcf = ngx_http_get_module_main_conf(c->fake, ngx_http_fanout_module);

    ngx_shmtx_lock(&fmcf->shpool->mutex);

    if (!fanout_budget_take(&c->tst->budget, ngx_current_msec,
                            (uint32_t) rc->budget, (uint32_t) rc->min_per_s))
    {
        ngx_shmtx_unlock(&fmcf->shpool->mutex);
        ngx_http_fanout_stats_count(c->tst, NGX_HTTP_FANOUT_TGT_RETRY_DENIED);
        return NGX_DECLINED;
    }

    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    delay = (ngx_msec_t) fanout_backoff(rc->backoff, rc->max_backoff,
                                        (unsigned) c->tries - 1,
                                        ((uint32_t) ngx_random() << 1)
                                        ^ (uint32_t) ngx_random());

    ngx_http_fanout_stats_count(c->tst, NGX_HTTP_FANOUT_TGT_RETRIES);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->fake->connection->log, 0,
                   "fanout batch of %ui calls %s: retried as a whole",
                   c->n, fanout_kind_name(kind));

    ngx_add_timer(&c->again, delay ? delay : 1);

    return NGX_OK;
}


static void
ngx_http_fanout_batcher_again(ngx_event_t *ev)
{
    ngx_http_fanout_mb_carrier_t *c = ev->data;

    if (c->live == 0) {
        /* nobody waits for it any more */
        ngx_post_event(&c->reap, &ngx_posted_events);
        return;
    }

    c->tries++;

    if (ngx_http_fanout_batcher_call(c) != NGX_OK) {
        c->ended = 1;
        ngx_http_fanout_batcher_fail(c, FANOUT_UPSTREAM_ERROR,
                                     NGX_HTTP_INTERNAL_SERVER_ERROR, 0);
        ngx_post_event(&c->reap, &ngx_posted_events);
        return;
    }

    ngx_http_run_posted_requests(c->fake->connection);
}


/* the batch's answer: each caller's share, or its failure */

static void
ngx_http_fanout_batcher_ended(ngx_http_fanout_attempt_t *a)
{
    ngx_http_fanout_mb_carrier_t *c = a->owner;

    size_t                        first;
    unsigned                      k;
    ngx_uint_t                    i;
    fanout_out_t                  out;
    fanout_span_t                *items[FANOUT_MB_MAX_TENSORS], *id;
    fanout_mb_doc_t               d;
    ngx_http_fanout_target_t     *t;
    ngx_http_fanout_mb_member_t  *m;
    fanout_mb_format_e            fmt;

    t = &c->batcher->target;
    fmt = (fanout_mb_format_e) t->batch_format;

    if ((a->kind != FANOUT_OK || a->result < 200 || a->result > 299)
        && ngx_http_fanout_batcher_retry(c, a) == NGX_OK)
    {
        /* tried again as a whole: its callers go on waiting */
        return;
    }

    c->ended = 1;

    if (a->kind == FANOUT_OK && (a->result == NGX_HTTP_BAD_REQUEST
                                 || a->result == 422)
        && c->n > 1)
    {
        /*
         * The model refused the batch for an input: each caller goes
         * again alone, so that one bad input fails only its own call.
         * Whoever is still there: a caller is blamed for a 4xx only when
         * its own inputs were refused alone, never because the one whose
         * input it was has left.  Not for a 5xx or a timeout: a model
         * that is down would be asked once per caller.
         */
        ngx_http_fanout_stats_count(c->st, NGX_HTTP_FANOUT_BAT_ERRORS);
        ngx_http_fanout_batcher_split(c);
        goto done;
    }

    if (a->kind != FANOUT_OK || a->result < 200 || a->result > 299) {
        /*
         * Failed, or answered with an error status: each caller has that
         * outcome (a 503 is each one's http_503), not the body, which may
         * speak of the others' inputs.
         */
        ngx_http_fanout_batcher_fail(c, a->kind, a->result, a->status);
        goto done;
    }

    if (fanout_mb_answer(fmt, (const char *) a->buf, a->len, c->total, &d)
        != 0)
    {
        ngx_log_error(NGX_LOG_ERR, c->fake->connection->log, 0,
                      "fanout target \"%V\": the answer of a batch of %uz "
                      "inputs from %ui calls is not a whole %s answer for "
                      "them: each call fails with bad_batch", &t->name,
                      c->total, c->n, fanout_mb_format_name(fmt));

        ngx_http_fanout_batcher_fail(c, FANOUT_BAD_BATCH,
                                     NGX_HTTP_BAD_GATEWAY, a->status);
        goto done;
    }

    for (k = 0; k < d.ntensors; k++) {
        items[k] = ngx_palloc(c->fake->pool, fanout_mb_items_room(&d, k)
                                             * sizeof(fanout_span_t));

        if (items[k] == NULL) {
            ngx_http_fanout_batcher_fail(c, FANOUT_UPSTREAM_ERROR,
                                         NGX_HTTP_INTERNAL_SERVER_ERROR, 0);
            goto done;
        }

        if (fanout_mb_items(&d, k, items[k]) != 0) {
            ngx_log_error(NGX_LOG_ERR, c->fake->connection->log, 0,
                          "fanout target \"%V\": the answer of a batch of "
                          "%uz inputs from %ui calls says its rows' inputs "
                          "wrong (an index missing, repeated or out of "
                          "range): each call fails with bad_batch",
                          &t->name, c->total, c->n);

            ngx_http_fanout_batcher_fail(c, FANOUT_BAD_BATCH,
                                         NGX_HTTP_BAD_GATEWAY, a->status);
            goto done;
        }
    }

    for (i = 0, first = 0; i < c->n; first += c->rows[i], i++) {
        m = c->members[i];

        if (m == NULL) {
            /* gone: its share is dropped */
            continue;
        }

        id = m->doc.id.p ? &m->doc.id : NULL;

        out.buf = NULL;
        out.len = 0;

        if (fanout_mb_slice(fmt, (const char *) a->buf, a->len, &d, items,
                            first, c->rows[i], id, &out)
            != 0)
        {
            ngx_http_fanout_batcher_give(m, FANOUT_BAD_BATCH,
                                         NGX_HTTP_BAD_GATEWAY, a->status);
            continue;
        }

        /* in the caller's pool: its answer outlives the batch */
        m->buf = ngx_pnalloc(m->r->pool, out.len ? out.len : 1);
        m->type.data = ngx_pnalloc(m->r->pool, a->content_type.len + 1);

        if (m->buf == NULL || m->type.data == NULL) {
            ngx_http_fanout_batcher_give(m, FANOUT_UPSTREAM_ERROR,
                                         NGX_HTTP_INTERNAL_SERVER_ERROR, 0);
            continue;
        }

        m->type.len = a->content_type.len;
        ngx_memcpy(m->type.data, a->content_type.data, a->content_type.len);

        out.buf = (char *) m->buf;
        out.len = 0;

        (void) fanout_mb_slice(fmt, (const char *) a->buf, a->len, &d, items,
                               first, c->rows[i], id, &out);

        m->buf_len = out.len;

        ngx_http_fanout_batcher_give(m, FANOUT_OK, a->result, a->status);
    }

done:

    /* freed once its subrequest has let go of it */
    ngx_post_event(&c->reap, &ngx_posted_events);
}


/* the capture gave up on the batch's answer: too large, out of memory */

static void
ngx_http_fanout_batcher_stopped(ngx_http_fanout_attempt_t *a)
{
    ngx_http_fanout_mb_carrier_t *c = a->owner;

    c->ended = 1;
    c->cut = 1;

    ngx_http_fanout_attempt_cut(a);

    ngx_http_fanout_batcher_fail(c, a->too_large ? FANOUT_TOO_LARGE
                                                 : FANOUT_UPSTREAM_ERROR,
                                 NGX_HTTP_BAD_GATEWAY, a->status);

    ngx_post_event(&c->reap, &ngx_posted_events);
}


static void
ngx_http_fanout_batcher_fail(ngx_http_fanout_mb_carrier_t *c,
    fanout_kind_e kind, int result, int status)
{
    ngx_uint_t  i;

    ngx_http_fanout_stats_count(c->st, NGX_HTTP_FANOUT_BAT_ERRORS);

    for (i = 0; i < c->n; i++) {
        if (c->members[i]) {
            ngx_http_fanout_batcher_give(c->members[i], kind, result, status);
        }
    }
}


/* the batch's callers, each to be sent alone */

static void
ngx_http_fanout_batcher_split(ngx_http_fanout_mb_carrier_t *c)
{
    ngx_uint_t                    i;
    ngx_http_fanout_mb_member_t  *m;

    ngx_log_error(NGX_LOG_INFO, c->fake->connection->log, 0,
                  "fanout target \"%V\": a batch of %ui calls was refused "
                  "(%d): each is sent alone", &c->batcher->target.name,
                  c->n, c->attempt->result);

    for (i = 0; i < c->n; i++) {
        m = c->members[i];

        if (m) {
            m->split = 1;
            ngx_http_fanout_batcher_give(m, FANOUT_BAD_BATCH,
                                         NGX_HTTP_BAD_GATEWAY, 0);
        }
    }
}


/* a caller's answer: handed over from an event in its own context */

static void
ngx_http_fanout_batcher_give(ngx_http_fanout_mb_member_t *m,
    fanout_kind_e kind, int result, int status)
{
    m->kind = kind;
    m->result = result;
    m->status = status;

    if (m->carrier) {
        /* its batch was tried as often as the call would have been */
        m->retried = (m->carrier->retry != NULL);

        /* the breaker learns a batch's outcome once, from its first */
        m->follower = m->carrier->given;
        m->carrier->given = 1;

        m->carrier->members[m->slot] = NULL;
        m->carrier->live--;
        m->carrier = NULL;
    }

    ngx_post_event(&m->deliver, &ngx_posted_events);
}


static void
ngx_http_fanout_batcher_delivered(ngx_event_t *ev)
{
    ngx_http_fanout_mb_member_t *m = ev->data;

    ngx_connection_t           *c;
    ngx_http_fanout_attempt_t  *a;

    a = m->attempt;
    c = m->r->connection;

    a->leave = NULL;
    a->batched = NULL;
    a->follower = m->follower;
    a->retried = m->retried;
    a->split = m->split;

    ngx_http_set_log_request(c->log, m->r);

    ngx_http_fanout_attempt_answered(a, m->kind, m->result, m->status,
                                     &m->type, m->buf, m->buf_len);

    ngx_http_run_posted_requests(c);
}


/* a caller that no longer waits (cut off, or gone) leaves */

static void
ngx_http_fanout_batcher_leave(ngx_http_fanout_attempt_t *a)
{
    ngx_http_fanout_mb_member_t *m = a->batched;

    ngx_http_fanout_mb_group_t    *g;
    ngx_http_fanout_mb_carrier_t  *c;

    a->leave = NULL;
    a->batched = NULL;

    if (m->deliver.posted) {
        ngx_delete_posted_event(&m->deliver);
    }

    g = m->group;

    if (g) {
        /* before its batch was sent: the others go without it */
        ngx_queue_remove(&m->queue);
        g->rows -= m->doc.rows;
        g->n--;
        m->group = NULL;

        if (g->n == 0) {
            ngx_http_fanout_batcher_close(g);
        }
    }

    c = m->carrier;

    if (c) {
        /* after: its share will be dropped */
        c->members[m->slot] = NULL;
        c->live--;
        m->carrier = NULL;

        if (c->live == 0 && !c->ended) {
            /* nobody waits for it: cut off, from an event of its own */
            ngx_post_event(&c->reap, &ngx_posted_events);
        }
    }
}


static void
ngx_http_fanout_batcher_reap(ngx_event_t *ev)
{
    ngx_http_fanout_mb_carrier_t *c = ev->data;

    if (!c->ended) {
        if (c->live) {
            return;
        }

        c->ended = 1;
        c->cut = 1;

        if (c->again.timer_set) {
            ngx_del_timer(&c->again);
        }

        ngx_http_fanout_attempt_cut(c->attempt);
    }

    if (c->fake->count > 1) {
        /* its subrequest still finishes */
        ngx_add_timer(ev, 10);
        return;
    }

    ngx_http_fanout_detached_free(c->fake);
}
