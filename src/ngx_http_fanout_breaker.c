/*
 * fanout_breaker: a circuit breaker per target (src/fanout_breaker.c), its
 * state in the target's node of the fanout_zone, the same for all workers
 * and kept across reloads; changed under the zone's lock.
 */

#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_stats.h"


char *
ngx_http_fanout_breaker(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_int_t               n;
    ngx_str_t              *value, s;
    ngx_msec_t              ms;
    ngx_uint_t              i;
    fanout_breaker_conf_t  *bc;

    if (flcf->breaker) {
        return "is duplicate";
    }

    bc = ngx_pcalloc(cf->pool, sizeof(fanout_breaker_conf_t));
    if (bc == NULL) {
        return NGX_CONF_ERROR;
    }

    bc->failures = 5;
    bc->min_requests = 20;
    bc->window_ms = 10000;
    bc->cooldown_ms = 10000;
    bc->max_cooldown_ms = 300000;
    bc->half_open = 1;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "failures=", 9) == 0) {
            n = ngx_atoi(value[i].data + 9, value[i].len - 9);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            bc->failures = (uint32_t) n;    /* 0: consecutive failures off */
            continue;
        }

        if (ngx_strncmp(value[i].data, "error_rate=", 11) == 0) {
            if (value[i].data[value[i].len - 1] != '%') {
                goto invalid;
            }

            n = ngx_atoi(value[i].data + 11, value[i].len - 12);
            if (n <= 0 || n > 100) {
                goto invalid;
            }

            bc->error_rate = (uint32_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "min_requests=", 13) == 0) {
            n = ngx_atoi(value[i].data + 13, value[i].len - 13);
            if (n <= 0) {
                goto invalid;
            }

            bc->min_requests = (uint32_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "half_open=", 10) == 0) {
            n = ngx_atoi(value[i].data + 10, value[i].len - 10);
            if (n <= 0) {
                goto invalid;
            }

            bc->half_open = (uint32_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "window=", 7) == 0
            || ngx_strncmp(value[i].data, "cooldown=", 9) == 0
            || ngx_strncmp(value[i].data, "max_cooldown=", 13) == 0)
        {
            s.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
            s.len = value[i].data + value[i].len - s.data;

            ms = ngx_parse_time(&s, 0);
            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                goto invalid;
            }

            if (value[i].data[0] == 'w') {
                bc->window_ms = ms;

            } else if (value[i].data[0] == 'c') {
                bc->cooldown_ms = ms;

            } else {
                bc->max_cooldown_ms = ms;
            }

            continue;
        }

        goto invalid;
    }

    if (bc->failures == 0 && bc->error_rate == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fanout_breaker\" with failures=0 needs "
                           "error_rate=");
        return NGX_CONF_ERROR;
    }

    if (bc->max_cooldown_ms < bc->cooldown_ms) {
        bc->max_cooldown_ms = bc->cooldown_ms;
    }

    flcf->breaker = bc;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


static ngx_uint_t
ngx_http_fanout_breaker_on(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_sub_t *sub)
{
    return ctx->conf->breaker && !sub->target->no_breaker;
}


/* before the calls: an open circuit means no call at all */

void
ngx_http_fanout_breaker_allow(ngx_http_fanout_ctx_t *ctx)
{
    ngx_uint_t                    i;
    ngx_http_fanout_sub_t        *sub;
    ngx_http_fanout_stats_t      *st;
    ngx_http_fanout_main_conf_t  *fmcf;

    fmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_fanout_module);

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (sub->done || !ngx_http_fanout_breaker_on(ctx, sub)) {
            continue;
        }

        st = ngx_http_fanout_stats_target(ctx->request, ctx->conf,
                                          sub->target);

        ngx_shmtx_lock(&fmcf->shpool->mutex);
        sub->verdict = fanout_breaker_allow(ctx->conf->breaker, &st->breaker,
                                            ngx_current_msec);
        ngx_shmtx_unlock(&fmcf->shpool->mutex);

        if (sub->verdict == FANOUT_BREAKER_REJECT) {
            sub->done = 1;
            sub->part.kind = FANOUT_CIRCUIT_OPEN;
            sub->part.status = NGX_HTTP_SERVICE_UNAVAILABLE;
        }
    }
}


/* once the answer is decided: the outcome of each call that was made */

void
ngx_http_fanout_breaker_record(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_sub_t *sub)
{
    int                           failure;
    uint32_t                      old;
    ngx_http_fanout_stats_t      *st;
    fanout_breaker_change_e       change;
    ngx_http_fanout_main_conf_t  *fmcf;

    if (!ngx_http_fanout_breaker_on(ctx, sub) || sub->part.cached
        || sub->verdict == FANOUT_BREAKER_REJECT)
    {
        return;
    }

    fmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_fanout_module);
    st = ngx_http_fanout_stats_target(ctx->request, ctx->conf, sub->target);

    /* the model's fault only: not 4xx, not a call cut off or abandoned */
    failure = (sub->part.kind == FANOUT_TIMEOUT
               || sub->part.kind == FANOUT_HTTP_5XX
               || sub->part.kind == FANOUT_BAD_JSON
               || sub->part.kind == FANOUT_TOO_LARGE
               || sub->part.kind == FANOUT_UPSTREAM_ERROR);

    ngx_shmtx_lock(&fmcf->shpool->mutex);

    old = st->breaker.state;

    /* no call was made, or its outcome is not the model's: a turn back */
    if (sub->cancelled || !sub->done
        || sub->part.kind == FANOUT_OVERLOADED)
    {
        fanout_breaker_release(&st->breaker,
                               (fanout_breaker_verdict_e) sub->verdict);
        change = FANOUT_BREAKER_SAME;

    } else {
        change = fanout_breaker_record(ctx->conf->breaker, &st->breaker,
                                       ngx_current_msec,
                                       (fanout_breaker_verdict_e) sub->verdict,
                                       failure);
    }

    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    if (change == FANOUT_BREAKER_SAME) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                  "fanout breaker of target \"%V\" in location \"%V\": "
                  "%s -> %s (%s)%s",
                  &sub->target->name, &ctx->conf->location,
                  fanout_breaker_state_name(old),
                  fanout_breaker_state_name(st->breaker.state),
                  change == FANOUT_BREAKER_OPENED
                  ? "failures reached the limit"
                  : (change == FANOUT_BREAKER_REOPENED ? "a probe failed"
                                                       : "a probe succeeded"),
                  change == FANOUT_BREAKER_CLOSED_AGAIN ? "" : ", calls stop "
                  "until the cooldown ends");
}
