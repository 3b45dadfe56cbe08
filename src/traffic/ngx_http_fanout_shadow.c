/*
 * fanout_shadow: a share of the fan-outs is also sent to a shadow URI,
 * whose answer is compared with the one the client got
 * (src/core/fanout_compare.c), counted, and sampled to a Redis stream.
 *
 * A shadow must never hold the client's connection, not even for its next
 * keepalive request (a mirror subrequest does, since it keeps the main
 * request open).  So the shadow's call is a background subrequest of a
 * request of its own: a copy of the client's (method, headers, body,
 * $request_id) on a connection without a socket, as lua-nginx-module's
 * timers make them.  That request outlives the client's and is freed once
 * the shadow has answered and the client's answer is known.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_call.h"
#include "ngx_http_fanout_capture.h"
#include "ngx_http_fanout_conf.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_request.h"
#include "ngx_http_fanout_shadow.h"
#include "ngx_http_fanout_split.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_trace.h"
#include "fanout_json.h"
#include "fanout_compare.h"
#include "fanout_split.h"


#define NGX_HTTP_FANOUT_SHADOW_ALL  10000          /* 100.00% */


typedef struct {
    ngx_http_fanout_target_t    target;       /* name, URI, max_inflight */
    ngx_uint_t                  percent;      /* hundredths of 1% */
    ngx_str_t                   compare;      /* FIELD in the shadow's */
    ngx_str_t                   against;      /* and in the client's */
    double                      tolerance;
    ngx_msec_t                  timeout;      /* unset: fanout_timeout's */
    ngx_uint_t                  sample;       /* sample=redis */
    ngx_uint_t                  sample_max;
    ngx_str_t                   stream;       /* fanout:shadow:LOC:NAME */
    ngx_uint_t                  stats;
} ngx_http_fanout_shadow_conf_t;


struct ngx_http_fanout_shadow_s {
    ngx_http_fanout_call_t           sub;      /* first: the capture's */
    ngx_http_fanout_shadow_conf_t  *conf;
    ngx_http_request_t             *fake;     /* owns all of this */
    ngx_http_fanout_stats_t        *st;
    ngx_event_t                     reap;

    ngx_str_t                       request_id;
    ngx_str_t                       variant;
    u_char                         *primary;  /* its value at against= */
    size_t                          primary_len;
    ngx_msec_t                      primary_ms;

    unsigned                        answered:1;  /* the client's is known */
    unsigned                        primary_ok:1;
    unsigned                        finished:1;  /* the shadow's is known */
    unsigned                        counted:1;
};


static ngx_int_t ngx_http_fanout_shadow_sampled(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_shadow_conf_t *sc, ngx_http_fanout_stats_t *st);
static void ngx_http_fanout_shadow_timeout(ngx_event_t *ev);
static void ngx_http_fanout_shadow_ended(ngx_http_fanout_attempt_t *a);
static void ngx_http_fanout_shadow_stopped(ngx_http_fanout_attempt_t *a);
static void ngx_http_fanout_shadow_end(ngx_http_fanout_shadow_t *sh,
    fanout_kind_e kind);
static void ngx_http_fanout_shadow_judge(ngx_http_fanout_shadow_t *sh);
static void ngx_http_fanout_shadow_sample(ngx_http_fanout_shadow_t *sh,
    fanout_span_t *primary, fanout_span_t *shadow);
static void ngx_http_fanout_shadow_reap(ngx_event_t *ev);




/* tolerance=X: how far two numbers may be and still agree */

static char *
ngx_http_fanout_shadow_tolerance(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_shadow_conf_t *sc = conf;

    u_char  *end;

    if (v->len == 0 || v->len >= 32) {
        return "a number of 0 or more";
    }

    /* the directive's arguments end with a NUL: strtod stops there */
    errno = 0;
    sc->tolerance = strtod((const char *) v->data, (char **) &end);

    if (end != v->data + v->len || errno || !(sc->tolerance >= 0)) {
        return "a number of 0 or more";
    }

    return NGX_CONF_OK;
}


static const char *const  ngx_http_fanout_shadow_samples[] = {
    "off", "redis", NULL
};


static const ngx_http_fanout_param_t  ngx_http_fanout_shadow_params[] = {

    /* 0: off until fanout_api turns it on */
    ngx_http_fanout_param("percent", HUNDREDTHS,
                          ngx_http_fanout_shadow_conf_t,
                          percent, 0, NGX_HTTP_FANOUT_SHADOW_ALL, NULL),
    ngx_http_fanout_param("compare", PATH, ngx_http_fanout_shadow_conf_t,
                          compare, 0, 0, NULL),
    ngx_http_fanout_param("against", PATH, ngx_http_fanout_shadow_conf_t,
                          against, 0, 0, NULL),
    ngx_http_fanout_param_custom("tolerance",
                                 ngx_http_fanout_shadow_tolerance),
    ngx_http_fanout_param("timeout", MSEC, ngx_http_fanout_shadow_conf_t,
                          timeout, 1, NGX_MAX_INT32_VALUE, NULL),
    ngx_http_fanout_param("max_inflight", COUNT,
                          ngx_http_fanout_shadow_conf_t, target.max_inflight,
                          1, 1000000, NULL),
    ngx_http_fanout_param("sample", WORD, ngx_http_fanout_shadow_conf_t,
                          sample, 0, 1, ngx_http_fanout_shadow_samples),
    ngx_http_fanout_param("sample_max", COUNT, ngx_http_fanout_shadow_conf_t,
                          sample_max, 1, NGX_MAX_INT32_VALUE, NULL),
    ngx_http_fanout_param_null
};


/*
 * fanout_shadow NAME URI [percent=P] [compare=FIELD] [against=FIELD]
 *     [tolerance=X] [timeout=T] [max_inflight=N] [sample=redis]
 *     [sample_max=N];
 */

char *
ngx_http_fanout_shadow(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_str_t                      *value;
    ngx_uint_t                      i;
    ngx_http_fanout_main_conf_t    *fmcf;
    ngx_http_fanout_shadow_conf_t  *sc, *shadows;

    value = cf->args->elts;

    if (flcf->shadows == NULL) {
        flcf->shadows = ngx_array_create(cf->pool, 2,
                                         sizeof(ngx_http_fanout_shadow_conf_t));
        if (flcf->shadows == NULL) {
            return NGX_CONF_ERROR;
        }

        /* for the error message if the location has no fanout_target */
        flcf->shadow_file = cf->conf_file->file.name.data;
        flcf->shadow_line = cf->conf_file->line;
    }

    if (ngx_http_fanout_valid_name(&value[1]) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid shadow name \"%V\": use 1 to 64 letters, "
                           "digits, \"_\", \"-\" or \".\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    shadows = flcf->shadows->elts;

    for (i = 0; i < flcf->shadows->nelts; i++) {
        if (shadows[i].target.name.len == value[1].len
            && ngx_strncmp(shadows[i].target.name.data, value[1].data,
                           value[1].len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate shadow name \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (value[2].len == 0 || value[2].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid shadow URI \"%V\": it must be a local "
                           "URI that begins with \"/\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    sc = ngx_array_push(flcf->shadows);
    if (sc == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(sc, sizeof(ngx_http_fanout_shadow_conf_t));

    sc->target.name = value[1];
    sc->target.variant = -1;
    sc->percent = NGX_HTTP_FANOUT_SHADOW_ALL;
    sc->timeout = NGX_CONF_UNSET_MSEC;

    ngx_http_fanout_split_uri(&value[2], &sc->target.uri, &sc->target.args);

    if (ngx_http_fanout_conf_params(cf, 3, ngx_http_fanout_shadow_params, sc)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (sc->sample_max && !sc->sample) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sample_max=\" needs \"sample=redis\"");
        return NGX_CONF_ERROR;
    }

    if (sc->sample) {
        if (sc->sample_max == 0) {
            sc->sample_max = 10000;
        }

        /* fanout_redis is checked once the http block is read */
        fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);

        if (fmcf->sample_file == NULL) {
            fmcf->sample_file = cf->conf_file->file.name.data;
            fmcf->sample_line = cf->conf_file->line;
        }
    }

    if (sc->against.len == 0) {
        sc->against = sc->compare;
    }

    return NGX_CONF_OK;
}


/* merge time: a shadow needs a fan-out to shadow; counters per shadow */

ngx_int_t
ngx_http_fanout_shadow_merge(ngx_conf_t *cf, ngx_http_fanout_loc_conf_t *flcf)
{
    u_char                         *p;
    ngx_str_t                       name;
    ngx_uint_t                      i, loc;
    ngx_http_fanout_main_conf_t    *fmcf;
    ngx_http_fanout_shadow_conf_t  *sc;

    if (flcf->shadows == NULL) {
        return NGX_OK;
    }

    if (flcf->targets == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"fanout_shadow\" works only in a location with "
                      "\"fanout_target\" in %s:%ui",
                      flcf->shadow_file, flcf->shadow_line);
        return NGX_ERROR;
    }

    sc = flcf->shadows->elts;
    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);

    for (i = 0; i < flcf->shadows->nelts; i++) {
        if (sc[i].stream.len) {
            continue;
        }

        name = sc[i].target.name;

        if (ngx_http_fanout_stats_register_extra(cf, fmcf, &flcf->location,
                                                 &name,
                                                 NGX_HTTP_FANOUT_STATS_SHADOW,
                                                 &loc, &sc[i].stats)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        /* the stream of sampled disagreements */
        sc[i].stream.len = sizeof("fanout:shadow::") - 1
                           + flcf->location.len + name.len;
        sc[i].stream.data = ngx_pnalloc(cf->pool, sc[i].stream.len);
        if (sc[i].stream.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_sprintf(sc[i].stream.data, "fanout:shadow:%V:%V",
                        &flcf->location, &name);
        sc[i].stream.len = p - sc[i].stream.data;
    }

    return NGX_OK;
}


/* from the shadows' stage, just before the targets are called */

void
ngx_http_fanout_shadow_start(ngx_http_fanout_ctx_t *ctx)
{
    u_char                          span[FANOUT_SPAN_ID_LEN];
    ngx_int_t                       rc;
    ngx_list_t                     *headers;
    ngx_str_t                      *variant;
    ngx_uint_t                      i;
    ngx_msec_t                      timeout;
    ngx_connection_t               *c;
    ngx_http_request_t             *r, *fake, *sr;
    ngx_http_fanout_stats_t        *st;
    ngx_http_fanout_shadow_t       *sh;
    ngx_http_fanout_shadow_conf_t  *shadows, *sc;
    ngx_http_variable_value_t      *vv;

    r = ctx->request;
    shadows = ctx->conf->shadows->elts;

    ctx->shadows = ngx_pcalloc(r->pool, ctx->conf->shadows->nelts
                                        * sizeof(ngx_http_fanout_shadow_t *));
    if (ctx->shadows == NULL) {
        return;
    }

    for (i = 0; i < ctx->conf->shadows->nelts; i++) {
        sc = &shadows[i];

        st = ngx_http_fanout_stats_extra(r, ctx->conf,
                                         NGX_HTTP_FANOUT_STATS_SHADOW,
                                         sc->stats);

        if (!ngx_http_fanout_shadow_sampled(ctx, sc, st)) {
            continue;
        }

        /*
         * A shadow takes two connections (its own and its upstream's):
         * with under a quarter of worker_connections free, clients come
         * first.
         */
        if (ngx_cycle->free_connection_n < ngx_cycle->connection_n / 4) {
            ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_SHA_SHED);
            continue;
        }

        /* counted always (status shows it), capped with max_inflight */
        if (ngx_atomic_fetch_add(&st->inflight, 1)
               >= (ngx_atomic_uint_t) sc->target.max_inflight
            && sc->target.max_inflight)
        {
            /* shed, never queued: a shadow must not pile up */
            (void) ngx_atomic_fetch_add(&st->inflight, -1);
            ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_SHA_SHED);
            continue;
        }

        /* a span of its own in the client's trace, the request's id */
        ngx_memzero(span, sizeof(span));
        headers = ngx_http_fanout_trace_headers(ctx, ctx->headers, span);

        fake = headers ? ngx_http_fanout_detach(r, headers, "shadowing", 1)
                       : NULL;

        if (fake == NULL) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "fanout shadow \"%V\" could not be started",
                          &sc->target.name);
            goto failed;
        }

        c = fake->connection;

        sh = ngx_pcalloc(fake->pool, sizeof(ngx_http_fanout_shadow_t));
        if (sh == NULL) {
            ngx_http_fanout_detached_free(fake);
            goto failed;
        }

        sh->conf = sc;
        sh->fake = fake;
        sh->st = st;

        sh->sub.timer = ngx_pcalloc(fake->pool, sizeof(ngx_event_t));
        if (sh->sub.timer == NULL) {
            ngx_http_fanout_detached_free(fake);
            goto failed;
        }

        sh->sub.target = &sc->target;
        sh->sub.attempt = &sh->sub.first;
        sh->sub.first.owner = sh;
        sh->sub.first.ended = ngx_http_fanout_shadow_ended;
        sh->sub.first.stopped = ngx_http_fanout_shadow_stopped;
        sh->sub.first.name = &sc->target.name;
        sh->sub.first.what = "shadow";
        ngx_memcpy(sh->sub.first.span, span, FANOUT_SPAN_ID_LEN);
        sh->reap.handler = ngx_http_fanout_shadow_reap;
        sh->reap.data = sh;
        sh->reap.log = c->log;
        sh->reap.cancelable = 1;

        /* what a sample names: the client's request id, its variant */
        vv = ngx_http_get_indexed_variable(fake, ngx_http_fanout_rid(r));
        if (vv && !vv->not_found) {
            sh->request_id.data = vv->data;
            sh->request_id.len = vv->len;
        }

        variant = ngx_http_fanout_split_name(ctx);
        if (variant) {
            sh->variant = *variant;
        }

        rc = ngx_http_fanout_attempt_start(fake, &sh->sub.first,
                                           &sc->target.uri, &sc->target.args);
        if (rc != NGX_OK) {
            ngx_http_fanout_detached_free(fake);
            goto failed;
        }

        sr = sh->sub.first.sr;

        if (r->method != NGX_HTTP_HEAD) {
            sr->method = fake->method;
            sr->method_name = fake->method_name;
        }

        /* the shadow's own deadline: it runs past the client's answer */
        timeout = (sc->timeout != NGX_CONF_UNSET_MSEC) ? sc->timeout
                                                       : ctx->conf->timeout;

        sh->sub.timer->handler = ngx_http_fanout_shadow_timeout;
        sh->sub.timer->data = sh;
        sh->sub.timer->log = c->log;

        ngx_add_timer(sh->sub.timer, timeout);

        ctx->shadows[ctx->nshadows++] = sh;

        ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_SHA_SENT);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "fanout shadow \"%V\" started on *%uA",
                       &sc->target.name, c->number);

        /* the subrequest starts now, on the shadow's own connection */
        ngx_http_run_posted_requests(c);

        continue;

    failed:

        (void) ngx_atomic_fetch_add(&st->inflight, -1);

        ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_SHA_ERROR);
    }
}


/*
 * percent=, or fanout_api's percent for it: sticky by the fanout_split
 * key, when there is one
 */

static ngx_int_t
ngx_http_fanout_shadow_sampled(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_shadow_conf_t *sc, ngx_http_fanout_stats_t *st)
{
    u_char      *p;
    uint32_t     hash;
    ngx_str_t    key;
    ngx_uint_t   percent;

    percent = st->rt.percent ? st->rt.percent - 1 : sc->percent;

    if (percent >= NGX_HTTP_FANOUT_SHADOW_ALL) {
        return 1;
    }

    if (percent == 0) {
        return 0;
    }

    key.len = 0;

    if (ctx->conf->split
        && ngx_http_fanout_split_key(ctx, &key) != NGX_OK)
    {
        return 0;
    }

    if (key.len == 0) {
        hash = ((uint32_t) ngx_random() << 16) ^ (uint32_t) ngx_random();

    } else {
        /* NAME:KEY, so that each shadow and the split pick independently */
        p = ngx_pnalloc(ctx->request->pool, sc->target.name.len + 1 + key.len);
        if (p == NULL) {
            return 0;
        }

        ngx_memcpy(p, sc->target.name.data, sc->target.name.len);
        p[sc->target.name.len] = ':';
        ngx_memcpy(p + sc->target.name.len + 1, key.data, key.len);

        hash = fanout_murmur2(p, sc->target.name.len + 1 + key.len);
    }

    return hash % NGX_HTTP_FANOUT_SHADOW_ALL < percent;
}


/* the shadow's post_subrequest handler: may run more than once */

static void
ngx_http_fanout_shadow_ended(ngx_http_fanout_attempt_t *a)
{
    ngx_http_fanout_shadow_t *sh = a->owner;

    fanout_kind_e           kind;
    ngx_http_fanout_call_t  *sub;

    sub = &sh->sub;

    if (sub->done) {
        return;
    }

    kind = a->kind;
    sub->part.status = a->result;

    if (kind == FANOUT_OK) {
        sub->part.body = (const char *) a->buf;
        sub->part.body_len = a->len;

        /* 2xx and JSON; the compared field is looked up later */
        fanout_part_parse(&sub->part, NULL, 0);
        kind = sub->part.kind;
    }

    ngx_http_fanout_shadow_end(sh, kind);
}


static void
ngx_http_fanout_shadow_timeout(ngx_event_t *ev)
{
    ngx_http_fanout_shadow_t  *sh;

    sh = ev->data;

    ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                  "fanout shadow \"%V\" timed out", &sh->conf->target.name);

    ngx_http_fanout_shadow_end(sh, FANOUT_TIMEOUT);

    /* cut the call off, as the targets' are: its connection is closed */
    ngx_http_fanout_attempt_cut(&sh->sub.first);
    ngx_http_run_posted_requests(sh->fake->connection);
}


/* the capture gave up on the answer (too large, out of memory) */

static void
ngx_http_fanout_shadow_stopped(ngx_http_fanout_attempt_t *a)
{
    ngx_http_fanout_shadow_t *sh = a->owner;

    ngx_http_fanout_shadow_end(sh, a->too_large ? FANOUT_TOO_LARGE
                                                : FANOUT_UPSTREAM_ERROR);

    ngx_http_fanout_attempt_cut(a);
    ngx_http_run_posted_requests(sh->fake->connection);
}


static void
ngx_http_fanout_shadow_end(ngx_http_fanout_shadow_t *sh, fanout_kind_e kind)
{
    ngx_http_fanout_call_t  *sub;

    sub = &sh->sub;

    if (sub->done) {
        return;
    }

    sub->done = 1;
    sub->part.kind = kind;
    sub->part.latency_ms = ngx_current_msec - sub->first.start;

    if (sub->timer && sub->timer->timer_set) {
        ngx_del_timer(sub->timer);
    }

    ngx_http_fanout_attempt_forget(&sub->first);

    /* the max_inflight slot taken in shadow_start() */
    (void) ngx_atomic_fetch_add(&sh->st->inflight, -1);

    ngx_http_fanout_stats_latency(sh->st, sub->part.latency_ms);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, sh->fake->connection->log, 0,
                   "fanout shadow \"%V\" done: %s",
                   &sh->conf->target.name, fanout_kind_name(kind));

    sh->finished = 1;

    ngx_http_fanout_shadow_judge(sh);
}


/*
 * The client's answer is decided (status 0: the client went away before
 * it was): each shadow keeps a copy of the value it is compared with, not
 * of the whole answer, since it may outlive the client's request.
 */

void
ngx_http_fanout_shadow_answer(ngx_http_fanout_ctx_t *ctx, ngx_uint_t status,
    u_char *body, size_t len)
{
    ngx_uint_t                      i;
    fanout_span_t                   v;
    ngx_http_fanout_shadow_t       *sh;
    ngx_http_fanout_shadow_conf_t  *sc;

    for (i = 0; i < ctx->nshadows; i++) {
        sh = ctx->shadows[i];
        sc = sh->conf;

        sh->answered = 1;
        sh->primary_ms = ctx->latency;

        v.p = (const char *) body;
        v.len = len;

        /* a failed answer, or one without the field: nothing to compare */
        sh->primary_ok = status == NGX_HTTP_OK && len
                         && (sc->against.len == 0
                             || (fanout_json_scan((const char *) body, len,
                                                  (const char *)
                                                  sc->against.data,
                                                  sc->against.len, &v)
                                 == 0
                                 && v.p != NULL));

        if (sh->primary_ok) {
            sh->primary = ngx_pnalloc(sh->fake->pool, v.len);

            if (sh->primary == NULL) {
                sh->primary_ok = 0;

            } else {
                ngx_memcpy(sh->primary, v.p, v.len);
                sh->primary_len = v.len;
            }
        }

        ngx_http_fanout_shadow_judge(sh);
    }

    ctx->nshadows = 0;
}


/* both answers are known: compare, count, sample, and let go */

static void
ngx_http_fanout_shadow_judge(ngx_http_fanout_shadow_t *sh)
{
    ngx_http_fanout_call_t          *sub;
    ngx_http_fanout_stats_t        *st;
    fanout_compare_t                res;
    fanout_span_t                   a, b;
    ngx_http_fanout_shadow_conf_t  *sc;

    if (!sh->answered || !sh->finished || sh->counted) {
        return;
    }

    sh->counted = 1;
    sub = &sh->sub;
    st = sh->st;
    sc = sh->conf;

    if (sub->part.kind != FANOUT_OK) {
        ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_SHA_ERROR);

    } else if (!sh->primary_ok) {
        /* nothing to compare with: the client's answer failed */
        ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_SHA_SKIPPED);

    } else {
        a.p = (const char *) sh->primary;
        a.len = sh->primary_len;

        if (sc->compare.len == 0) {
            b.p = sub->part.body;
            b.len = sub->part.body_len;

        } else if (fanout_json_scan(sub->part.body, sub->part.body_len,
                                    (const char *) sc->compare.data,
                                    sc->compare.len, &b)
                   != 0)
        {
            b.p = NULL;
        }

        if (b.p == NULL) {
            /* the shadow's answer lacks the field: it disagrees */
            b.len = 0;
            res.agree = 0;
            res.argmax = -1;

        } else {
            fanout_compare(a.p, a.len, b.p, b.len, sc->tolerance, &res);
        }

        ngx_http_fanout_stats_count(st, res.agree
                                        ? NGX_HTTP_FANOUT_SHA_AGREE
                                        : NGX_HTTP_FANOUT_SHA_DISAGREE);

        if (res.argmax >= 0) {
            ngx_http_fanout_stats_count(st, res.argmax
                                       ? NGX_HTTP_FANOUT_SHA_ARGMAX_AGREE
                                       : NGX_HTTP_FANOUT_SHA_ARGMAX_DISAGREE);
        }

        /* latency against the client's, over the pairs that both answered */
        ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_SHA_PAIRS);
        (void) ngx_atomic_fetch_add(&st->counters[NGX_HTTP_FANOUT_SHA_SHADOW_MS],
                                    sub->part.latency_ms);
        (void) ngx_atomic_fetch_add(
                              &st->counters[NGX_HTTP_FANOUT_SHA_PRIMARY_MS],
                              sh->primary_ms);

        if (sub->part.latency_ms > sh->primary_ms) {
            ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_SHA_SLOWER);
        }

        if (!res.agree && sc->sample_max) {
            ngx_http_fanout_shadow_sample(sh, &a, &b);
        }
    }

    /* freed once nginx is done with the subrequest too */
    ngx_post_event(&sh->reap, &ngx_posted_events);
}


/*
 * sample=redis: XADD fanout:shadow:LOC:NAME MAXLEN ~ N * ...  Sent and
 * forgotten: the Redis client's timer bounds it, and an error is counted
 * (fail-open).
 */

static void
ngx_http_fanout_shadow_sample(ngx_http_fanout_shadow_t *sh,
    fanout_span_t *primary, fanout_span_t *shadow)
{
    u_char                         *p;
    size_t                          argvlen[20];
    ngx_uint_t                      argc;
    const char                     *argv[20];
    u_char                          num[3][NGX_INT_T_LEN];
    ngx_http_fanout_shadow_conf_t  *sc;

    sc = sh->conf;
    argc = 0;

#define ngx_http_fanout_arg(s, n)                                            \
    argv[argc] = (const char *) (s); argvlen[argc++] = (n)

    ngx_http_fanout_arg("XADD", 4);
    ngx_http_fanout_arg(sc->stream.data, sc->stream.len);
    ngx_http_fanout_arg("MAXLEN", 6);
    ngx_http_fanout_arg("~", 1);
    p = ngx_sprintf(num[0], "%ui", sc->sample_max);
    ngx_http_fanout_arg(num[0], p - num[0]);
    ngx_http_fanout_arg("*", 1);
    ngx_http_fanout_arg("request_id", 10);
    ngx_http_fanout_arg(sh->request_id.data, sh->request_id.len);
    ngx_http_fanout_arg("variant", 7);
    ngx_http_fanout_arg(sh->variant.data, sh->variant.len);
    ngx_http_fanout_arg("field", 5);
    ngx_http_fanout_arg(sc->compare.data, sc->compare.len);
    ngx_http_fanout_arg("primary", 7);
    ngx_http_fanout_arg(primary->p, primary->len);
    ngx_http_fanout_arg("shadow", 6);
    ngx_http_fanout_arg(shadow->p ? shadow->p : "", shadow->len);
    ngx_http_fanout_arg("primary_ms", 10);
    p = ngx_sprintf(num[1], "%M", sh->primary_ms);
    ngx_http_fanout_arg(num[1], p - num[1]);
    ngx_http_fanout_arg("shadow_ms", 9);
    p = ngx_sprintf(num[2], "%M", sh->sub.part.latency_ms);
    ngx_http_fanout_arg(num[2], p - num[2]);

#undef ngx_http_fanout_arg

    /* hiredis copies the arguments into its buffer before this returns */
    if (ngx_http_fanout_redis_command(sh->fake->connection->log, (int) argc,
                                      argv, argvlen, NULL, NULL)
        == NULL)
    {
        ngx_http_fanout_stats_count(sh->st,
                                    NGX_HTTP_FANOUT_SHA_SAMPLE_ERRORS);
        return;
    }

    ngx_http_fanout_stats_count(sh->st, NGX_HTTP_FANOUT_SHA_SAMPLED);
}


/*
 * Posted once both answers are known: by then nginx has usually finished
 * the subrequest too (it holds a reference to the shadow's request until
 * it has); if not, look again a little later.
 */

static void
ngx_http_fanout_shadow_reap(ngx_event_t *ev)
{
    ngx_http_fanout_shadow_t *sh = ev->data;

    if (sh->fake->count > 1) {
        ngx_add_timer(ev, 100);
        return;
    }

    ngx_http_fanout_detached_free(sh->fake);
}




/* before the targets: the shadows start with them */

ngx_int_t
ngx_http_fanout_shadow_stage(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->conf->shadows == NULL) {
        return NGX_DECLINED;
    }

    if (ctx->headers == NULL) {
        ctx->headers = ngx_http_fanout_headers(ctx->request);
        if (ctx->headers == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ngx_http_fanout_shadow_start(ctx);

    return NGX_DECLINED;
}


/* after the answer is out: what the client got is what they compare with */

ngx_int_t
ngx_http_fanout_compare_stage(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->nshadows && ctx->answer.sent) {
        ngx_http_fanout_shadow_answer(ctx, ctx->answer.status,
                                      ctx->answer.body, ctx->answer.len);
    }

    return NGX_DECLINED;
}
