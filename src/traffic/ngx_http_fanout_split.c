/*
 * fanout_split: sticky weighted variants for a location, laid out as
 * split_clients does (src/core/fanout_split.c), so that a key gets the same
 * variant on every worker, every instance and after a reload.  Targets
 * tagged variant=NAME run only when NAME is chosen; untagged ones always.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_conf.h"
#include "ngx_http_fanout_split.h"
#include "ngx_http_fanout_stats.h"
#include "fanout_split.h"


struct ngx_http_fanout_split_conf_s {
    ngx_http_complex_value_t    key;
    fanout_split_t              split;
    ngx_str_t                   names[FANOUT_SPLIT_MAX_VARIANTS];
    ngx_uint_t                  stats[FANOUT_SPLIT_MAX_VARIANTS];
    u_char                     *file;      /* where it is, for nginx -t */
    ngx_uint_t                  line;
    fanout_ramp_t              *ramp;      /* ramp=, or NULL */
    ngx_str_t                   candidate; /* candidate=, or the first */
    uint32_t                    fp;        /* for the runtime state */
    unsigned                    registered:1;
};


static char *ngx_http_fanout_split_entry(ngx_conf_t *cf,
    ngx_command_t *dummy, void *conf);
static char *ngx_http_fanout_split_params(ngx_conf_t *cf,
    ngx_http_fanout_split_conf_t *sc);
static ngx_int_t ngx_http_fanout_split_pick(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_split_conf_t *sc, uint32_t hash);
static ngx_int_t ngx_http_fanout_split_register(ngx_conf_t *cf,
    ngx_http_fanout_main_conf_t *fmcf, ngx_http_fanout_split_conf_t *sc,
    ngx_uint_t index, ngx_str_t *location);


char *
ngx_http_fanout_split(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    char                              *rv;
    ngx_str_t                         *value;
    ngx_conf_t                         save;
    ngx_http_fanout_split_conf_t      *sc;
    ngx_http_compile_complex_value_t   ccv;

    if (flcf->split) {
        return "is duplicate";
    }

    sc = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_split_conf_t));
    if (sc == NULL) {
        return NGX_CONF_ERROR;
    }

    fanout_split_init(&sc->split);
    sc->file = cf->conf_file->file.name.data;
    sc->line = cf->conf_file->line;

    value = cf->args->elts;

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = &sc->key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_fanout_split_params(cf, sc) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    save = *cf;
    cf->handler = ngx_http_fanout_split_entry;
    cf->handler_conf = (void *) sc;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (sc->split.n == 0) {
        return "has no variants";
    }

    if (fanout_split_done(&sc->split) != 0) {
        return "has shares over 100%";
    }

    flcf->split = sc;

    return NGX_CONF_OK;
}


/* a ramp's parameters, read before the ramp is kept */

typedef struct {
    fanout_ramp_t                   ramp;
    ngx_str_t                       candidate;
} ngx_http_fanout_ramp_args_t;


/* ramp=5%,25%,50%,100% */

static char *
ngx_http_fanout_split_steps(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_ramp_args_t *ra = conf;

    if (fanout_ramp_parse_steps(&ra->ramp, (char *) v->data, v->len) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"ramp=%V\": use rising shares "
                           "that end at 100%%, as \"ramp=5%%,25%%,50%%,"
                           "100%%\" (at most %d)", v, FANOUT_RAMP_MAX_STEPS);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* rollback_if=error_rate>P%,p99>Nms,ttft_p99>Nms */

static char *
ngx_http_fanout_split_rollback(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_ramp_args_t *ra = conf;

    if (fanout_ramp_parse_rollback(&ra->ramp, (char *) v->data, v->len,
                                   ngx_http_fanout_buckets,
                                   NGX_HTTP_FANOUT_NBUCKETS - 1)
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"rollback_if=%V\": use "
                           "\"error_rate>P%%\", \"p99>Nms\" and "
                           "\"ttft_p99>Nms\" (N one of 5, 10, 25, 50, 100, "
                           "250, 500, 1000, 2500, 5000, 10000: the latency "
                           "histogram's bounds), each once, joined by "
                           "\",\"", v);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static const ngx_http_fanout_param_t  ngx_http_fanout_ramp_params[] = {

    ngx_http_fanout_param_custom("ramp", ngx_http_fanout_split_steps),
    ngx_http_fanout_param("every", MSEC, ngx_http_fanout_ramp_args_t,
                          ramp.every, 1, NGX_MAX_INT32_VALUE, NULL),
    ngx_http_fanout_param_custom("rollback_if",
                                 ngx_http_fanout_split_rollback),
    ngx_http_fanout_param("candidate", STRING, ngx_http_fanout_ramp_args_t,
                          candidate, 0, 0, NULL),
    ngx_http_fanout_param("min_requests", COUNT, ngx_http_fanout_ramp_args_t,
                          ramp.min_requests, 1, NGX_MAX_INT32_VALUE, NULL),
    ngx_http_fanout_param_null
};


/* ramp=5%,25%,100% every=TIME [rollback_if=...] [candidate=] [min_requests=] */

static char *
ngx_http_fanout_split_params(ngx_conf_t *cf, ngx_http_fanout_split_conf_t *sc)
{
    ngx_http_fanout_ramp_args_t  ra;

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    ngx_memzero(&ra, sizeof(ngx_http_fanout_ramp_args_t));
    ra.ramp.min_requests = FANOUT_RAMP_MIN_REQUESTS;

    if (ngx_http_fanout_conf_params(cf, 2, ngx_http_fanout_ramp_params, &ra)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ra.ramp.nsteps == 0 || ra.ramp.every == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a ramp needs \"ramp=\" and \"every=\"");
        return NGX_CONF_ERROR;
    }

    sc->ramp = ngx_palloc(cf->pool, sizeof(fanout_ramp_t));
    if (sc->ramp == NULL) {
        return NGX_CONF_ERROR;
    }

    *sc->ramp = ra.ramp;
    sc->candidate = ra.candidate;

    return NGX_CONF_OK;
}


/* "10% v2;", "0.5% v3;", "* v1;" */

static char *
ngx_http_fanout_split_entry(ngx_conf_t *cf, ngx_command_t *dummy, void *conf)
{
    ngx_http_fanout_split_conf_t *sc = conf;

    ngx_int_t   n;
    ngx_str_t  *value;
    ngx_uint_t  i, rest;

    value = cf->args->elts;

    if (cf->args->nelts != 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a variant is \"SHARE% NAME;\" or \"* NAME;\"");
        return NGX_CONF_ERROR;
    }

    rest = (value[0].len == 1 && value[0].data[0] == '*');
    n = 0;

    if (!rest) {
        if (value[0].len < 2 || value[0].data[value[0].len - 1] != '%') {
            goto invalid;
        }

        n = ngx_atofp(value[0].data, value[0].len - 1, 2);

        if (n == NGX_ERROR || n == 0) {
            goto invalid;
        }
    }

    if (ngx_http_fanout_valid_name(&value[1]) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid variant name \"%V\": use 1 to 64 "
                           "letters, digits, \"_\", \"-\" or \".\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < sc->split.n; i++) {
        if (sc->names[i].len == value[1].len
            && ngx_strncmp(sc->names[i].data, value[1].data, value[1].len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate variant \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (sc->split.rest >= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"*\" must be the last variant");
        return NGX_CONF_ERROR;
    }

    if (fanout_split_add(&sc->split, (uint32_t) n, (int) rest) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many variants, or shares over 100%%");
        return NGX_CONF_ERROR;
    }

    sc->names[sc->split.n - 1] = value[1];

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid share \"%V\": use a percentage with at most "
                       "two decimals, as \"10%%\" or \"0.5%%\", or \"*\"",
                       &value[0]);
    return NGX_CONF_ERROR;
}


/*
 * Every request of every variant must be able to meet the quorum: with its
 * variant's targets and the untagged ones, or with the untagged ones alone
 * when the shares leave it without a variant.
 */

static ngx_int_t
ngx_http_fanout_split_check(ngx_conf_t *cf, ngx_http_fanout_loc_conf_t *flcf)
{
    ngx_int_t                      j;
    ngx_uint_t                     i, n, share;
    ngx_http_fanout_target_t      *t;
    ngx_http_fanout_split_conf_t  *sc;

    sc = flcf->split;
    t = flcf->targets->elts;
    share = 0;

    for (j = -1; j < (ngx_int_t) sc->split.n; j++) {
        n = 0;

        for (i = 0; i < flcf->targets->nelts; i++) {
            n += (t[i].variant < 0 || t[i].variant == j);
        }

        if (j >= 0) {
            share += sc->split.share[j];
        }

        if (j < 0 || n >= flcf->quorum) {
            continue;
        }

        if (flcf->quorum_file) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "variant \"%V\" of location \"%V\" has %ui "
                          "target%s, fewer than \"fanout_quorum %ui\" in "
                          "%s:%ui", &sc->names[j], &flcf->location, n,
                          n == 1 ? "" : "s", flcf->quorum,
                          flcf->quorum_file, flcf->quorum_line);

        } else {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "variant \"%V\" of the \"fanout_split\" in %s:%ui "
                          "has no target", &sc->names[j], sc->file, sc->line);
        }

        return NGX_ERROR;
    }

    if (sc->split.rest >= 0 || share >= FANOUT_SPLIT_WHOLE) {
        return NGX_OK;
    }

    /* (100 - share)% of requests have no variant: untagged targets only */
    for (n = 0, i = 0; i < flcf->targets->nelts; i++) {
        n += (t[i].variant < 0);
    }

    if (n >= flcf->quorum && n > 0) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "the \"fanout_split\" in %s:%ui leaves %ui.%02ui%% of "
                  "requests without a variant, and %s",
                  sc->file, sc->line, (FANOUT_SPLIT_WHOLE - share) / 100,
                  (FANOUT_SPLIT_WHOLE - share) % 100,
                  n == 0 ? "no target runs without one: add \"* VARIANT;\" "
                           "or an untagged target"
                         : "the untagged targets are fewer than the quorum");

    return NGX_ERROR;
}


/* merge time: variant= names a variant; each variant gets its counters */

ngx_int_t
ngx_http_fanout_split_merge(ngx_conf_t *cf, ngx_http_fanout_loc_conf_t *flcf)
{
    ngx_uint_t                       i, j, loc;
    ngx_http_fanout_target_t        *t;
    ngx_http_fanout_stats_loc_t     *stl;
    ngx_http_fanout_main_conf_t     *fmcf;
    ngx_http_fanout_split_conf_t    *sc;
    ngx_http_fanout_stats_target_t  *stt;

    sc = flcf->split;

    if (flcf->targets == NULL) {
        if (sc) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"fanout_split\" works only in a location with "
                          "\"fanout_target\"");
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    t = flcf->targets->elts;

    for (i = 0; i < flcf->targets->nelts; i++) {
        t[i].variant = -1;

        if (t[i].variant_name.len == 0) {
            continue;
        }

        if (sc == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "target \"%V\" has variant=%V but location \"%V\" "
                          "has no \"fanout_split\"",
                          &t[i].name, &t[i].variant_name, &flcf->location);
            return NGX_ERROR;
        }

        for (j = 0; j < sc->split.n; j++) {
            if (sc->names[j].len == t[i].variant_name.len
                && ngx_strncmp(sc->names[j].data, t[i].variant_name.data,
                               sc->names[j].len)
                   == 0)
            {
                t[i].variant = (ngx_int_t) j;
                break;
            }
        }

        if (t[i].variant < 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "target \"%V\" has variant=%V, which the "
                          "\"fanout_split\" of location \"%V\" does not list",
                          &t[i].name, &t[i].variant_name, &flcf->location);
            return NGX_ERROR;
        }
    }

    if (sc == NULL) {
        return NGX_OK;
    }

    if (ngx_http_fanout_split_check(cf, flcf) != NGX_OK) {
        return NGX_ERROR;
    }

    /* fanout_api checks a change by the targets each variant has */
    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);
    stl = fmcf->locations.elts;
    stt = stl[flcf->stats].targets.elts;

    for (i = 0; i < flcf->targets->nelts; i++) {
        stt[t[i].stats].variant = t[i].variant;
    }

    if (sc->registered) {
        return NGX_OK;
    }

    for (j = 0; j < sc->split.n; j++) {
        if (ngx_http_fanout_stats_register_extra(cf, fmcf, &flcf->location,
                                                 &sc->names[j],
                                                 NGX_HTTP_FANOUT_STATS_VARIANT,
                                                 &loc, &sc->stats[j])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    sc->registered = 1;

    return ngx_http_fanout_split_register(cf, fmcf, sc, loc, &flcf->location);
}


/*
 * The runtime state of a split (fanout_api weights, ramps) is keyed by the
 * location's name, as its counters are: splits of one name must agree.
 * The fingerprint tells a runtime change made for this very split from one
 * made for an earlier configuration of it.
 */

static ngx_int_t
ngx_http_fanout_split_register(ngx_conf_t *cf,
    ngx_http_fanout_main_conf_t *fmcf, ngx_http_fanout_split_conf_t *sc,
    ngx_uint_t index, ngx_str_t *location)
{
    u_char                       *p, *buf;
    size_t                        len;
    uint32_t                      fp;
    ngx_uint_t                    j;
    ngx_http_fanout_stats_loc_t  *loc;

    len = location->len + 1;

    for (j = 0; j < sc->split.n; j++) {
        len += sc->names[j].len + NGX_INT_T_LEN + 2;
    }

    buf = ngx_pnalloc(cf->temp_pool, len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(buf, location->data, location->len);
    *p++ = '\n';

    for (j = 0; j < sc->split.n; j++) {
        p = ngx_sprintf(p, "%V=%uD;", &sc->names[j], sc->split.share[j]);
    }

    fp = fanout_murmur2(buf, p - buf);
    sc->fp = fp;

    loc = fmcf->locations.elts;
    loc = &loc[index];

    if (loc->split && loc->split_fp != fp) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "the \"fanout_split\" in %s:%ui differs from another "
                      "of location \"%V\": splits of one location name "
                      "share their state (counters, fanout_api weights, "
                      "ramps), so they must list the same variants and "
                      "shares", sc->file, sc->line, location);
        return NGX_ERROR;
    }

    if (loc->split) {
        /* the same split, met again: its ramp must be the same too */
        if ((loc->ramp == NULL) != (sc->ramp == NULL)
            || (sc->ramp && ngx_memcmp(loc->ramp, sc->ramp,
                                       sizeof(fanout_ramp_t)) != 0))
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "the \"fanout_split\" in %s:%ui has another ramp "
                          "than one of the same location \"%V\"",
                          sc->file, sc->line, location);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    loc->split_fp = fp;

    if (sc->ramp) {
        loc->candidate = 0;

        if (sc->candidate.len) {
            for (j = 0; j < sc->split.n; j++) {
                if (sc->names[j].len == sc->candidate.len
                    && ngx_strncmp(sc->names[j].data, sc->candidate.data,
                                   sc->candidate.len) == 0)
                {
                    break;
                }
            }

            if (j == sc->split.n) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "candidate=%V of the \"fanout_split\" in "
                              "%s:%ui is not one of its variants",
                              &sc->candidate, sc->file, sc->line);
                return NGX_ERROR;
            }

            loc->candidate = j;
        }

        /* the ramp's identity: the split's, and the ramp's own shape */
        loc->ramp_fp = fp * 31 + fanout_murmur2((u_char *) sc->ramp,
                                                sizeof(fanout_ramp_t))
                       + (uint32_t) loc->candidate;
    }

    loc->split = &sc->split;
    loc->ramp = sc->ramp;

    /* the configuration's, for when fanout_api's ramp is off */
    loc->conf_ramp = sc->ramp;
    loc->conf_candidate = loc->candidate;
    loc->conf_ramp_fp = loc->ramp_fp;

    return NGX_OK;
}


/*
 * The variant of a hash: by the runtime split when fanout_api or a ramp
 * set one (read by its sequence number, retried if it changed under us),
 * else by the configuration's.
 */

static ngx_int_t
ngx_http_fanout_split_pick(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_split_conf_t *sc, uint32_t hash)
{
    int                         v;
    ngx_uint_t                  seq, tries;
    ngx_http_fanout_runtime_t  *rt;

    rt = &ngx_http_fanout_stats_location(ctx->request, ctx->conf)->rt;

    /* made for this very split: a reload that changed it drops the change */
    if (!rt->active || rt->base != sc->fp) {
        return fanout_split_pick(&sc->split, hash);
    }

    for (tries = 0; tries < 8; tries++) {
        seq = rt->seq;
        ngx_memory_barrier();

        if (seq & 1) {
            continue;
        }

        v = fanout_split_pick(&rt->split, hash);

        ngx_memory_barrier();

        if (rt->seq == seq) {
            return v < (int) sc->split.n ? v : -1;
        }
    }

    /* a writer holds it (the zone's lock, a few instructions): ours */
    return fanout_split_pick(&sc->split, hash);
}


/* before anything else of the request: its variant, and the header */

ngx_int_t
ngx_http_fanout_split_choose(ngx_http_fanout_ctx_t *ctx)
{
    uint32_t                       hash;
    ngx_str_t                      key;
    ngx_table_elt_t               *h;
    ngx_http_request_t            *r;
    ngx_http_fanout_split_conf_t  *sc;

    r = ctx->request;
    sc = ctx->conf->split;

    if (ngx_http_fanout_split_key(ctx, &key) != NGX_OK) {
        return NGX_ERROR;
    }

    if (key.len == 0) {
        /* no key: a variant per request, at random (32 bits of it) */
        hash = ((uint32_t) ngx_random() << 16) ^ (uint32_t) ngx_random();

    } else {
        hash = fanout_murmur2(key.data, key.len);
    }

    ctx->variant = ngx_http_fanout_split_pick(ctx, sc, hash);

    if (ctx->variant < 0) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Fanout-Variant");
    h->value = sc->names[ctx->variant];

    ngx_http_fanout_stats_count(ngx_http_fanout_split_stats(ctx),
                                NGX_HTTP_FANOUT_VAR_REQUESTS);

    return NGX_OK;
}


/* the split's KEY for this request; fanout_shadow's percent= uses it too */

ngx_int_t
ngx_http_fanout_split_key(ngx_http_fanout_ctx_t *ctx, ngx_str_t *key)
{
    return ngx_http_complex_value(ctx->request, &ctx->conf->split->key, key);
}


ngx_str_t *
ngx_http_fanout_split_name(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->conf->split == NULL || ctx->variant < 0) {
        return NULL;
    }

    return &ctx->conf->split->names[ctx->variant];
}


/* the target runs in this request's variant */

ngx_uint_t
ngx_http_fanout_split_runs(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_target_t *t)
{
    return t->variant < 0 || t->variant == ctx->variant;
}


ngx_http_fanout_stats_t *
ngx_http_fanout_split_stats(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->conf->split == NULL || ctx->variant < 0) {
        return NULL;
    }

    return ngx_http_fanout_stats_extra(ctx->request, ctx->conf,
                                       NGX_HTTP_FANOUT_STATS_VARIANT,
                                       ctx->conf->split->stats[ctx->variant]);
}


/* the first stage: X-Fanout-Variant goes with every answer */

ngx_int_t
ngx_http_fanout_split_stage(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->conf->split == NULL) {
        return NGX_DECLINED;
    }

    return (ngx_http_fanout_split_choose(ctx) == NGX_OK)
           ? NGX_DECLINED : NGX_HTTP_INTERNAL_SERVER_ERROR;
}
