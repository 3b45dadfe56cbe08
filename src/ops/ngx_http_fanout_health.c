
/*
 * fanout_health: can this instance serve? For load balancers. And the
 * drain: answering on, with the health at 503, for fanout_drain_on_quit
 * after "nginx -s quit", so that the balancer moves away before the
 * listening sockets close.
 *
 * An instance is ready when each checked location can meet its quorum
 * with the targets that may be called now (breaker closed, half-open or
 * due a probe; under max_inflight), when Redis is up if a location cannot
 * serve without it, and when it is not draining. All of it is read from
 * the zone: no model call, no Redis command.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_health.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_response.h"
#include "ngx_http_fanout_stats.h"


struct ngx_http_fanout_health_conf_s {
    ngx_array_t                 names;         /* ngx_str_t, as given */
    ngx_array_t                 locs;          /* ngx_uint_t: stats index */
    u_char                     *file;
    ngx_uint_t                  line;
};


/* why a target cannot be called now */
#define NGX_HTTP_FANOUT_HEALTH_OK            0
#define NGX_HTTP_FANOUT_HEALTH_BREAKER_OPEN  1
#define NGX_HTTP_FANOUT_HEALTH_FULL          2
#define NGX_HTTP_FANOUT_HEALTH_DISABLED      3


typedef struct {
    fanout_breaker_t            breaker;
    ngx_uint_t                  why;
    uint64_t                    retry_in;
} ngx_http_fanout_health_target_t;


static void ngx_http_fanout_drain_wrap(ngx_event_t *ev);
static void ngx_http_fanout_drain_channel(ngx_event_t *ev);
static void ngx_http_fanout_drain_end(ngx_event_t *ev);


/* this worker's drain */
static ngx_event_t            ngx_http_fanout_drain_ev;
static ngx_event_handler_pt   ngx_http_fanout_channel_handler;
static ngx_uint_t             ngx_http_fanout_generation;
static ngx_uint_t             ngx_http_fanout_quit_draining;


/* fanout_health [LOCATION...] */

char *
ngx_http_fanout_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_str_t                      *value, *name;
    ngx_uint_t                      i;
    ngx_http_fanout_health_conf_t  *hc, **slot;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_fanout_main_conf_t    *fmcf;

    if (flcf->health) {
        return "is duplicate";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fanout_health\" cannot be combined with another "
                           "content handler in one location");
        return NGX_CONF_ERROR;
    }

    hc = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_health_conf_t));
    if (hc == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_array_init(&hc->names, cf->pool, cf->args->nelts,
                       sizeof(ngx_str_t))
        != NGX_OK
        || ngx_array_init(&hc->locs, cf->pool, cf->args->nelts + 1,
                          sizeof(ngx_uint_t))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        name = ngx_array_push(&hc->names);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        *name = value[i];
    }

    hc->file = cf->conf_file->file.name.data;
    hc->line = cf->conf_file->line;

    /* the locations are known once the http block is read */
    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);

    if (fmcf->healths == NULL) {
        fmcf->healths = ngx_array_create(cf->pool, 2, sizeof(void *));
        if (fmcf->healths == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    slot = ngx_array_push(fmcf->healths);
    if (slot == NULL) {
        return NGX_CONF_ERROR;
    }

    *slot = hc;
    flcf->health = hc;
    clcf->handler = ngx_http_fanout_health_handler;

    return NGX_CONF_OK;
}


/* from init_main_conf: each name a fan-out location; none: all of them */

ngx_int_t
ngx_http_fanout_health_init_conf(ngx_conf_t *cf,
    ngx_http_fanout_main_conf_t *fmcf)
{
    ngx_str_t                      *name;
    ngx_uint_t                      i, j, k, *idx;
    ngx_http_fanout_stats_loc_t    *loc;
    ngx_http_fanout_health_conf_t **hcs, *hc;

    if (fmcf->healths == NULL) {
        return NGX_OK;
    }

    hcs = fmcf->healths->elts;
    loc = fmcf->locations.elts;

    for (i = 0; i < fmcf->healths->nelts; i++) {
        hc = hcs[i];

        if (fmcf->shm_zone == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"fanout_health\" needs a \"fanout_zone\" in the "
                          "http block in %s:%ui", hc->file, hc->line);
            return NGX_ERROR;
        }

        name = hc->names.elts;

        for (j = 0; j < (hc->names.nelts ? hc->names.nelts
                                         : fmcf->locations.nelts); j++)
        {
            if (hc->names.nelts) {
                for (k = 0; k < fmcf->locations.nelts; k++) {
                    if (loc[k].name.len == name[j].len
                        && ngx_strncmp(loc[k].name.data, name[j].data,
                                       name[j].len) == 0)
                    {
                        break;
                    }
                }

                if (k == fmcf->locations.nelts) {
                    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                                  "\"fanout_health\": no fan-out location "
                                  "\"%V\" in %s:%ui",
                                  &name[j], hc->file, hc->line);
                    return NGX_ERROR;
                }

            } else {
                k = j;
            }

            idx = ngx_array_push(&hc->locs);
            if (idx == NULL) {
                return NGX_ERROR;
            }

            *idx = k;
        }
    }

    return NGX_OK;
}


ngx_uint_t
ngx_http_fanout_draining(ngx_http_fanout_main_conf_t *fmcf)
{
    ngx_http_fanout_shctx_t  *sh;

    sh = fmcf->sh;

    if (sh == NULL) {
        return 0;
    }

    return sh->drain || (sh->quit_drain_until
                         && (ngx_msec_int_t) (sh->quit_drain_until
                                              - ngx_current_msec) > 0);
}


ngx_int_t
ngx_http_fanout_health_handler(ngx_http_request_t *r)
{
    size_t                            size;
    u_char                           *p;
    ngx_int_t                         rc;
    ngx_buf_t                        *b;
    ngx_str_t                         type;
    ngx_uint_t                        i, j, n, avail, ready, draining,
                                      redis_needed, redis_up, quorum, *idx;
    ngx_table_elt_t                  *h;
    ngx_http_fanout_stats_loc_t      *loc, *l;
    ngx_http_fanout_stats_target_t   *tgt;
    ngx_http_fanout_loc_conf_t       *flcf;
    ngx_http_fanout_main_conf_t      *fmcf;
    ngx_http_fanout_health_conf_t    *hc;
    ngx_http_fanout_health_target_t  *ht, *t;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fanout_module);
    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fanout_module);
    hc = flcf->health;
    loc = fmcf->locations.elts;
    idx = hc->locs.elts;

    /* first what each target can do, then the answer */

    n = 0;
    size = 512 + 12 * fmcf->instance.len;

    for (i = 0; i < hc->locs.nelts; i++) {
        l = &loc[idx[i]];
        n += l->targets.nelts;
        size += 256 + 12 * l->name.len;

        tgt = l->targets.elts;

        for (j = 0; j < l->targets.nelts; j++) {
            size += 256 + 6 * tgt[j].name.len;
        }
    }

    ht = ngx_palloc(r->pool, (n ? n : 1)
                             * sizeof(ngx_http_fanout_health_target_t));
    b = ngx_create_temp_buf(r->pool, size);

    if (ht == NULL || b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    draining = ngx_http_fanout_draining(fmcf);
    redis_up = fmcf->redis_stats
               ? ngx_http_fanout_redis_ready_now(fmcf->redis_stats) : 0;
    redis_needed = 0;
    ready = !draining;

    t = ht;

    for (i = 0; i < hc->locs.nelts; i++) {
        l = &loc[idx[i]];
        tgt = l->targets.elts;
        avail = 0;

        for (j = 0; j < l->targets.nelts; j++, t++) {
            /* a consistent copy: workers change it under the lock */
            ngx_shmtx_lock(&fmcf->shpool->mutex);
            t->breaker = tgt[j].bnode->breaker;
            ngx_shmtx_unlock(&fmcf->shpool->mutex);

            t->why = NGX_HTTP_FANOUT_HEALTH_OK;
            t->retry_in = 0;

            /* open and not yet due a probe; a learned one counts alike */
            if (tgt[j].node->rt.disabled) {
                t->why = NGX_HTTP_FANOUT_HEALTH_DISABLED;

            } else if (tgt[j].bnode->rt.forced == 1) {
                t->why = NGX_HTTP_FANOUT_HEALTH_BREAKER_OPEN;

            } else if (tgt[j].bnode->rt.forced == 0
                       && t->breaker.state == FANOUT_BREAKER_OPEN
                       && t->breaker.retry_at_ms > ngx_current_msec)
            {
                t->why = NGX_HTTP_FANOUT_HEALTH_BREAKER_OPEN;
                t->retry_in = t->breaker.retry_at_ms - ngx_current_msec;

            } else if (tgt[j].max_inflight
                       && tgt[j].node->inflight
                          >= (ngx_atomic_uint_t) tgt[j].max_inflight)
            {
                t->why = NGX_HTTP_FANOUT_HEALTH_FULL;
            }

            if (t->why == NGX_HTTP_FANOUT_HEALTH_OK) {
                avail++;
            }
        }

        quorum = l->quorum ? l->quorum : 1;

        if (avail < quorum) {
            ready = 0;
        }

        if (l->needs_redis) {
            redis_needed = 1;
        }
    }

    if (redis_needed && redis_up == 0) {
        ready = 0;
    }

    p = ngx_sprintf(b->last, "{\"status\":\"%s\",\"instance\":\"",
                    ready ? "ready" : "not_ready");
    p = ngx_http_fanout_escape_json(p, &fmcf->instance);
    p = ngx_sprintf(p, "\",\"draining\":%s,\"reasons\":[",
                    draining ? "true" : "false");

    /* the reasons, then each location's account */
    n = 0;

    if (draining) {
        p = ngx_sprintf(p, "\"draining\"");
        n++;
    }

    if (redis_needed && redis_up == 0) {
        p = ngx_sprintf(p, "%s\"redis: no connection, and a location needs "
                        "it (fanout_limit on_redis_error=closed)\"",
                        n++ ? "," : "");
    }

    t = ht;

    for (i = 0; i < hc->locs.nelts; i++) {
        l = &loc[idx[i]];
        avail = 0;

        for (j = 0; j < l->targets.nelts; j++) {
            avail += (t[j].why == NGX_HTTP_FANOUT_HEALTH_OK);
        }

        t += l->targets.nelts;
        quorum = l->quorum ? l->quorum : 1;

        if (avail < quorum) {
            p = ngx_sprintf(p, "%s\"", n++ ? "," : "");
            p = ngx_http_fanout_escape_json(p, &l->name);
            p = ngx_sprintf(p, ": %ui of %ui targets can answer, quorum %ui\"",
                            avail, l->targets.nelts, quorum);
        }
    }

    p = ngx_sprintf(p, "],\"locations\":{");

    t = ht;

    for (i = 0; i < hc->locs.nelts; i++) {
        l = &loc[idx[i]];
        tgt = l->targets.elts;
        avail = 0;

        for (j = 0; j < l->targets.nelts; j++) {
            avail += (t[j].why == NGX_HTTP_FANOUT_HEALTH_OK);
        }

        quorum = l->quorum ? l->quorum : 1;

        p = ngx_sprintf(p, "%s\"", i ? "," : "");
        p = ngx_http_fanout_escape_json(p, &l->name);
        p = ngx_sprintf(p, "\":{\"ready\":%s,\"quorum\":%ui,\"available\":%ui,"
                        "\"targets\":{", avail >= quorum ? "true" : "false",
                        quorum, avail);

        for (j = 0; j < l->targets.nelts; j++, t++) {
            p = ngx_sprintf(p, "%s\"", j ? "," : "");
            p = ngx_http_fanout_escape_json(p, &tgt[j].name);
            p = ngx_sprintf(p, "\":{\"available\":%s,\"breaker\":\"%s\","
                            "\"learned\":%s,\"retry_in_ms\":%uL,"
                            "\"inflight\":%uA,\"max_inflight\":%ui",
                            t->why ? "false" : "true",
                            fanout_breaker_state_name(t->breaker.state),
                            t->breaker.remote ? "true" : "false",
                            t->retry_in, tgt[j].node->inflight,
                            tgt[j].max_inflight);

            if (t->why) {
                p = ngx_sprintf(p, ",\"reason\":\"%s\"",
                                t->why == NGX_HTTP_FANOUT_HEALTH_BREAKER_OPEN
                                ? (tgt[j].bnode->rt.forced == 1
                                   ? "breaker_forced_open" : "breaker_open")
                                : t->why == NGX_HTTP_FANOUT_HEALTH_DISABLED
                                ? "disabled" : "max_inflight");
            }

            *p++ = '}';
        }

        p = ngx_sprintf(p, "}}");
    }

    p = ngx_sprintf(p, "}");

    if (fmcf->redis_stats) {
        p = ngx_sprintf(p, ",\"redis\":{\"required\":%s,\"connections\":%ui}",
                        redis_needed ? "true" : "false", redis_up);
    }

    p = ngx_sprintf(p, "}\n");
    b->last = p;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    ngx_str_set(&type, "application/json");

    return ngx_http_fanout_send(r, ready ? NGX_HTTP_OK
                                         : NGX_HTTP_SERVICE_UNAVAILABLE,
                                &type, b->pos, b->last - b->pos);
}


/*
 * The drain on quit. nginx gives a module no say before a quitting worker
 * closes its listening sockets, so the worker's channel handler (how the
 * master says "quit") is wrapped: a quit that is not a reload's is held
 * for fanout_drain_on_quit, with the health at 503, then let through. A
 * second quit meanwhile goes through at once. A reload bumps the zone's
 * generation: its old workers quit at once, as the new ones serve.
 */

ngx_int_t
ngx_http_fanout_health_init_process(ngx_cycle_t *cycle)
{
    ngx_http_fanout_main_conf_t  *fmcf;

    fmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_fanout_module);

    if (fmcf == NULL || fmcf->drain_on_quit == 0 || fmcf->sh == NULL
        || ngx_process != NGX_PROCESS_WORKER)
    {
        return NGX_OK;
    }

    ngx_http_fanout_generation = fmcf->sh->generation;

    /* the channel's event is added after the modules' init_process */
    ngx_http_fanout_drain_ev.handler = ngx_http_fanout_drain_wrap;
    ngx_http_fanout_drain_ev.data = fmcf;
    ngx_http_fanout_drain_ev.log = cycle->log;
    ngx_http_fanout_drain_ev.cancelable = 1;

    ngx_add_timer(&ngx_http_fanout_drain_ev, 1);

    return NGX_OK;
}


static void
ngx_http_fanout_drain_wrap(ngx_event_t *ev)
{
    ngx_uint_t         i;
    ngx_connection_t  *c;

    c = ngx_cycle->connections;

    for (i = 0; i < ngx_cycle->connection_n; i++) {
        if (c[i].fd == ngx_channel && c[i].read && c[i].read->handler) {
            ngx_http_fanout_channel_handler = c[i].read->handler;
            c[i].read->handler = ngx_http_fanout_drain_channel;
            return;
        }
    }

    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "fanout_drain_on_quit: the worker's channel was not found, "
                  "a quit will not drain");
}


static void
ngx_http_fanout_drain_channel(ngx_event_t *ev)
{
    ngx_uint_t                    quit;
    ngx_http_fanout_main_conf_t  *fmcf;

    fmcf = ngx_http_fanout_drain_ev.data;
    quit = ngx_quit;

    ngx_http_fanout_channel_handler(ev);      /* may close the channel */

    if (!ngx_quit || quit || ngx_exiting) {
        return;
    }

    if (ngx_http_fanout_quit_draining) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "fanout_drain_on_quit: a second quit, shutting down "
                      "now");
        return;
    }

    if (fmcf->sh->generation != ngx_http_fanout_generation) {
        return;                               /* a reload */
    }

    ngx_quit = 0;
    ngx_http_fanout_quit_draining = 1;
    fmcf->sh->quit_drain_until = ngx_current_msec + fmcf->drain_on_quit;

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "fanout_drain_on_quit: serving for %M ms with "
                  "fanout_health at 503 before shutting down",
                  fmcf->drain_on_quit);

    ngx_http_fanout_drain_ev.handler = ngx_http_fanout_drain_end;

    if (ngx_http_fanout_drain_ev.timer_set) {
        ngx_del_timer(&ngx_http_fanout_drain_ev);
    }

    ngx_add_timer(&ngx_http_fanout_drain_ev, fmcf->drain_on_quit);
}


static void
ngx_http_fanout_drain_end(ngx_event_t *ev)
{
    ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                  "fanout_drain_on_quit: drained, shutting down");

    /* the worker's loop reads it once the timers have run */
    ngx_quit = 1;
}
