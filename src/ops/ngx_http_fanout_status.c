/*
 * fanout_status: the zone's counters, Redis's and the module's version as
 * JSON or Prometheus text, like nginx-module-vts's display: it reads the
 * nodes (ngx_http_fanout_stats.c) and asks Redis for its own part.
 */

#include <nginx.h>
#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_counters.h"
#include "ngx_http_fanout_health.h"
#include "ngx_http_fanout_l1.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_response.h"
#include "ngx_http_fanout_runtime.h"
#include "ngx_http_fanout_runtime_status.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_status.h"
#include "ngx_http_fanout_dashboard.h"


static u_char *
ngx_http_fanout_status_l1_json(u_char *p, ngx_http_fanout_l1_t *l1)
{
    ngx_http_fanout_l1_usage_t  u;

    ngx_http_fanout_l1_usage(l1, &u);

    return ngx_sprintf(p, ",\"l1\":{\"size\":%uz,\"ttl_ms\":%M,"
                       "\"entries\":%ui,\"bytes\":%ui,\"evicted\":%ui,"
                       "\"expired\":%ui}",
                       u.size, u.ttl, u.entries, u.bytes, u.evicted,
                       u.expired);
}


/* fanout_cache l1=: gauges and counters of each location's zone */

static u_char *
ngx_http_fanout_status_l1_prometheus(u_char *p,
    ngx_http_fanout_main_conf_t *fmcf)
{
    ngx_uint_t                    i, k;
    ngx_http_fanout_l1_usage_t    u;
    ngx_http_fanout_stats_loc_t  *loc;

    static const char  *metrics[] = {
        "# HELP fanout_cache_l1_size_bytes fanout_cache l1=: the zone's "
        "size.\n# TYPE fanout_cache_l1_size_bytes gauge\n",
        "fanout_cache_l1_size_bytes",
        "# HELP fanout_cache_l1_entries Entries in the L1.\n"
        "# TYPE fanout_cache_l1_entries gauge\n",
        "fanout_cache_l1_entries",
        "# HELP fanout_cache_l1_bytes Bytes of keys and values in the L1.\n"
        "# TYPE fanout_cache_l1_bytes gauge\n",
        "fanout_cache_l1_bytes",
        "# HELP fanout_cache_l1_evicted_total L1 entries evicted to make "
        "room.\n# TYPE fanout_cache_l1_evicted_total counter\n",
        "fanout_cache_l1_evicted_total",
        "# HELP fanout_cache_l1_expired_total L1 entries found past their "
        "l1_ttl.\n# TYPE fanout_cache_l1_expired_total counter\n",
        "fanout_cache_l1_expired_total"
    };

    loc = fmcf->locations.elts;

    for (i = 0; i < fmcf->locations.nelts && loc[i].l1 == NULL; i++) {
        /* void */
    }

    if (i == fmcf->locations.nelts) {
        return p;
    }

    for (k = 0; k < sizeof(metrics) / sizeof(metrics[0]); k += 2) {
        p = ngx_sprintf(p, "%s", metrics[k]);

        for (i = 0; i < fmcf->locations.nelts; i++) {
            if (loc[i].l1 == NULL) {
                continue;
            }

            ngx_http_fanout_l1_usage(loc[i].l1, &u);

            p = ngx_sprintf(p, "%s", metrics[k + 1]);
            p = ngx_http_fanout_prom_labels(p, &loc[i].name, NULL);
            p = ngx_sprintf(p, "} %ui\n",
                            k == 0 ? (ngx_uint_t) u.size
                            : k == 2 ? u.entries
                            : k == 4 ? u.bytes
                            : k == 6 ? u.evicted : u.expired);
        }
    }

    return p;
}


/* the zone's pages in use, slab headers included */

static size_t
ngx_http_fanout_zone_used(ngx_http_fanout_main_conf_t *fmcf)
{
    size_t  size, free;

    size = fmcf->shm_zone->shm.size;

    ngx_shmtx_lock(&fmcf->shpool->mutex);
    free = fmcf->shpool->pfree << ngx_pagesize_shift;
    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    return free < size ? size - free : 0;
}


/* "limits", "variants", "shadows", "batches": name: {counters ...} */

static u_char *
ngx_http_fanout_status_extras_json(u_char *p, ngx_http_fanout_stats_loc_t *loc,
    ngx_uint_t group)
{
    ngx_str_t                        name;
    ngx_uint_t                       j, n;
    ngx_array_t                     *a;
    ngx_http_fanout_stats_t         *st;
    ngx_http_fanout_stats_target_t  *x;

    a = ngx_http_fanout_stats_extras(loc, group);
    x = a->elts;
    n = ngx_http_fanout_counter_groups[group].n;

    for (j = 0; j < a->nelts; j++) {
        (void) ngx_http_fanout_stats_extra_name(&name, &x[j]);
        st = x[j].node;

        p = ngx_sprintf(p, "%s\"", j ? "," : "");
        p = ngx_http_fanout_escape_json(p, &name);
        p = ngx_sprintf(p, "\":{");

        switch (group) {

        case NGX_HTTP_FANOUT_GROUP_SHADOW:
            p = ngx_http_fanout_counters_json(p, group, 0,
                                              NGX_HTTP_FANOUT_SHA_SPLIT_PAIRS,
                                              st, 0, 0);
            p = ngx_sprintf(p, ",\"inflight\":%uA", st->inflight);
            p = ngx_http_fanout_counters_json(p, group,
                                              NGX_HTTP_FANOUT_SHA_SPLIT_PAIRS,
                                              n, st, 1, 0);
            *p++ = ',';
            p = ngx_http_fanout_stats_json_histogram(p, st);
            break;

        case NGX_HTTP_FANOUT_GROUP_VARIANT:
            p = ngx_http_fanout_counters_json(p, group, 0, n, st, 0, 0);
            *p++ = ',';
            p = ngx_http_fanout_stats_json_histogram(p, st);
            break;

        default:
            p = ngx_http_fanout_counters_json(p, group, 0, n, st, 0, 0);
        }

        *p++ = '}';
    }

    return p;
}


/* a target's: its counters, then its breaker's and its cap's state */

static u_char *
ngx_http_fanout_status_target_json(u_char *p,
    ngx_http_fanout_main_conf_t *fmcf, ngx_http_fanout_stats_target_t *tgt)
{
    uint32_t                  rate, requests;
    fanout_breaker_t          breaker;
    ngx_http_fanout_stats_t  *st;

    st = tgt->node;

    p = ngx_http_fanout_counters_json(p, NGX_HTTP_FANOUT_GROUP_TARGET, 0,
                     ngx_http_fanout_counter_groups[NGX_HTTP_FANOUT_GROUP_TARGET].n,
                     st, 0, 0);

    /* a consistent copy: workers change it under the lock */
    ngx_shmtx_lock(&fmcf->shpool->mutex);
    breaker = tgt->bnode->breaker;
    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    rate = fanout_breaker_peek(&breaker, ngx_current_msec, &requests);

    p = ngx_sprintf(p, ",\"hedge_delay_ms\":%uA,"
                    "\"breaker\":{\"state\":\"%s\","
                    "\"consecutive_failures\":%uD,\"error_rate\":%uD,"
                    "\"window_requests\":%uD,\"cooldown_ms\":%uL,"
                    "\"retry_in_ms\":%uL,\"learned\":%s},"
                    "\"inflight\":%uA,\"max_inflight\":%ui,",
                    st->hedge_delay,
                    fanout_breaker_state_name(breaker.state),
                    breaker.consecutive, rate, requests,
                    breaker.cooldown_ms,
                    (breaker.state == FANOUT_BREAKER_OPEN
                     && breaker.retry_at_ms > ngx_current_msec)
                    ? breaker.retry_at_ms - ngx_current_msec
                    : (uint64_t) 0,
                    breaker.remote ? "true" : "false",
                    st->inflight, tgt->max_inflight);

    return ngx_http_fanout_stats_json_histogram(p, st);
}


static u_char *
ngx_http_fanout_status_json(u_char *p, ngx_http_fanout_main_conf_t *fmcf)
{
    ngx_uint_t                       i, j;
    ngx_http_fanout_stats_t         *st;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_stats_target_t  *tgt;

    p = ngx_sprintf(p, "{\"version\":\"" NGX_HTTP_FANOUT_VERSION "\","
                    "\"zone\":\"%V\",\"instance\":{\"name\":\"",
                    &fmcf->shm_zone->shm.name);
    p = ngx_http_fanout_escape_json(p, &fmcf->instance);
    p = ngx_sprintf(p, "\",\"nginx_version\":\"" NGINX_VERSION "\","
                    "\"started\":%T,\"uptime_s\":%T,\"loaded\":%T,"
                    "\"zone_size\":%uz,\"zone_used\":%uz,\"draining\":%s,"
                    "\"fleet_instances\":%uA},\"locations\":{",
                    fmcf->sh->started, ngx_time() - fmcf->sh->started,
                    fmcf->loaded, fmcf->shm_zone->shm.size,
                    ngx_http_fanout_zone_used(fmcf),
                    ngx_http_fanout_draining(fmcf) ? "true" : "false",
                    fmcf->sh->fleet_instances);

    loc = fmcf->locations.elts;

    for (i = 0; i < fmcf->locations.nelts; i++) {
        st = loc[i].node;

        *p++ = '"';
        p = ngx_http_fanout_escape_json(p, &loc[i].name);
        p = ngx_sprintf(p, "\":{");

        /* requests, responses, aborted, cache: the L1's state inside */
        p = ngx_http_fanout_counters_json(p, NGX_HTTP_FANOUT_GROUP_LOCATION,
                                          0, NGX_HTTP_FANOUT_LOC_SPLIT_LIMIT,
                                          st, 0, 1);
        if (loc[i].l1) {
            p = ngx_http_fanout_status_l1_json(p, loc[i].l1);
        }

        *p++ = '}';

        /* limit: the location's, then each fanout_limit's */
        p = ngx_http_fanout_counters_json(p, NGX_HTTP_FANOUT_GROUP_LOCATION,
                                          NGX_HTTP_FANOUT_LOC_SPLIT_LIMIT,
                   ngx_http_fanout_counter_groups[NGX_HTTP_FANOUT_GROUP_LOCATION].n,
                                          st, 1, 1);
        p = ngx_sprintf(p, ",\"limits\":{");
        p = ngx_http_fanout_status_extras_json(p, &loc[i],
                                               NGX_HTTP_FANOUT_GROUP_LIMIT);
        p = ngx_sprintf(p, "}},\"variants\":{");
        p = ngx_http_fanout_status_extras_json(p, &loc[i],
                                               NGX_HTTP_FANOUT_GROUP_VARIANT);
        p = ngx_sprintf(p, "},\"shadows\":{");
        p = ngx_http_fanout_status_extras_json(p, &loc[i],
                                               NGX_HTTP_FANOUT_GROUP_SHADOW);
        p = ngx_sprintf(p, "},\"batches\":{");
        p = ngx_http_fanout_status_extras_json(p, &loc[i],
                                               NGX_HTTP_FANOUT_GROUP_BATCH);
        p = ngx_sprintf(p, "},");
        p = ngx_http_fanout_stats_json_histogram(p, st);
        p = ngx_sprintf(p, ",\"targets\":{");

        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            p = ngx_sprintf(p, "%s\"", j ? "," : "");
            p = ngx_http_fanout_escape_json(p, &tgt[j].name);
            p = ngx_sprintf(p, "\":{");
            p = ngx_http_fanout_status_target_json(p, fmcf, &tgt[j]);
            *p++ = '}';
        }

        p = ngx_sprintf(p, "}}%s", i + 1 < fmcf->locations.nelts ? "," : "");
    }

    p = ngx_sprintf(p, "}");

    if (fmcf->redis_stats) {
        p = ngx_sprintf(p, ",\"redis\":{");
        p = ngx_http_fanout_counters_json(p, NGX_HTTP_FANOUT_GROUP_REDIS, 0,
                      ngx_http_fanout_counter_groups[NGX_HTTP_FANOUT_GROUP_REDIS].n,
                                          fmcf->redis_stats, 0, 0);
        *p++ = ',';
        p = ngx_http_fanout_stats_json_histogram(p, fmcf->redis_stats);
        *p++ = '}';
    }

    /* fanout_api's and the ramps' state, as fanout_api shows it */
    p = ngx_sprintf(p, ",\"runtime\":{");
    p = ngx_http_fanout_runtime_json(p, fmcf);
    *p++ = '}';

    return ngx_sprintf(p, "}\n");
}


/* a target's gauges: its breaker, its hedge delay, its calls under way */

static u_char *
ngx_http_fanout_status_target_gauges(u_char *p,
    ngx_http_fanout_main_conf_t *fmcf)
{
    uint32_t                         requests;
    ngx_uint_t                       i, j, k;
    fanout_breaker_t                 breaker;
    ngx_atomic_uint_t                v;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_stats_target_t  *tgt;

    static const char  *gauges[] = {
        "fanout_target_breaker_state",
        "Circuit breaker: 0 closed, 1 open, 2 half-open.",
        "fanout_target_error_rate",
        "Circuit breaker: failures per hundred calls over its window.",
        "fanout_target_hedge_delay_seconds",
        "fanout_hedge after=pN: the latest delay before a backup.",
        "fanout_target_inflight",
        "Calls under way now, over all workers.",
        "fanout_target_max_inflight",
        "The target's max_inflight (0: no cap)."
    };

    loc = fmcf->locations.elts;

    for (k = 0; k < sizeof(gauges) / sizeof(gauges[0]); k += 2) {
        p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s gauge\n",
                        gauges[k], gauges[k + 1], gauges[k]);

        for (i = 0; i < fmcf->locations.nelts; i++) {
            tgt = loc[i].targets.elts;

            for (j = 0; j < loc[i].targets.nelts; j++) {
                p = ngx_sprintf(p, "%s", gauges[k]);
                p = ngx_http_fanout_prom_labels(p, &loc[i].name,
                                                &tgt[j].name);

                switch (k / 2) {
                case 0:
                case 1:
                    ngx_shmtx_lock(&fmcf->shpool->mutex);
                    breaker = tgt[j].bnode->breaker;
                    ngx_shmtx_unlock(&fmcf->shpool->mutex);

                    v = k == 0 ? breaker.state
                               : fanout_breaker_peek(&breaker,
                                                     ngx_current_msec,
                                                     &requests);
                    p = ngx_sprintf(p, "} %uA\n", v);
                    break;

                case 2:
                    v = tgt[j].node->hedge_delay;
                    p = ngx_sprintf(p, "} %uA.%03uA\n", v / 1000, v % 1000);
                    break;

                case 3:
                    p = ngx_sprintf(p, "} %uA\n", tgt[j].node->inflight);
                    break;

                default:
                    p = ngx_sprintf(p, "} %ui\n", tgt[j].max_inflight);
                }
            }
        }
    }

    return p;
}


static u_char *
ngx_http_fanout_status_prometheus(u_char *p, ngx_http_fanout_main_conf_t *fmcf)
{
    ngx_uint_t                       i, j, g;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_stats_target_t  *tgt;

    loc = fmcf->locations.elts;

    p = ngx_sprintf(p,
        "# HELP fanout_module_info The module's version.\n"
        "# TYPE fanout_module_info gauge\n"
        "fanout_module_info{version=\"" NGX_HTTP_FANOUT_VERSION "\"} 1\n"
        "# HELP fanout_build_info The instance (fanout_instance), the "
        "module's and nginx's versions.\n"
        "# TYPE fanout_build_info gauge\n"
        "fanout_build_info{instance_name=\"");
    p = ngx_http_fanout_escape_label(p, &fmcf->instance);
    p = ngx_sprintf(p,
        "\",version=\"" NGX_HTTP_FANOUT_VERSION "\","
        "nginx_version=\"" NGINX_VERSION "\"} 1\n"
        "# HELP fanout_start_time_seconds When nginx started (the zone was "
        "made; reloads keep it), in seconds since the epoch.\n"
        "# TYPE fanout_start_time_seconds gauge\n"
        "fanout_start_time_seconds %T\n"
        "# HELP fanout_config_load_time_seconds When this configuration was "
        "loaded, in seconds since the epoch.\n"
        "# TYPE fanout_config_load_time_seconds gauge\n"
        "fanout_config_load_time_seconds %T\n"
        "# HELP fanout_zone_size_bytes The fanout_zone's size.\n"
        "# TYPE fanout_zone_size_bytes gauge\n"
        "fanout_zone_size_bytes %uz\n"
        "# HELP fanout_zone_used_bytes The fanout_zone's pages in use.\n"
        "# TYPE fanout_zone_used_bytes gauge\n"
        "fanout_zone_used_bytes %uz\n"
        "# HELP fanout_draining 1 while the instance drains (fanout_api, "
        "fanout_drain_on_quit): fanout_health answers 503.\n"
        "# TYPE fanout_draining gauge\n"
        "fanout_draining %ui\n"
        "# HELP fanout_fleet_instances Instances heard from in Redis in the "
        "last 5 s (local_share's divisor; 0: not counted).\n"
        "# TYPE fanout_fleet_instances gauge\n"
        "fanout_fleet_instances %uA\n",
        fmcf->sh->started, fmcf->loaded, fmcf->shm_zone->shm.size,
        ngx_http_fanout_zone_used(fmcf), ngx_http_fanout_draining(fmcf),
        fmcf->sh->fleet_instances);

    /* the counters of every group but Redis, from their tables */
    for (g = 0; g < NGX_HTTP_FANOUT_GROUP_REDIS; g++) {
        p = ngx_http_fanout_counters_prometheus(p, fmcf, g);

        if (g == NGX_HTTP_FANOUT_GROUP_LOCATION) {
            p = ngx_http_fanout_status_l1_prometheus(p, fmcf);
        }
    }

    p = ngx_http_fanout_status_target_gauges(p, fmcf);

    p = ngx_sprintf(p,
        "# HELP fanout_latency_seconds Time from the fan-out's start to "
        "its answer.\n"
        "# TYPE fanout_latency_seconds histogram\n");

    for (i = 0; i < fmcf->locations.nelts; i++) {
        p = ngx_http_fanout_stats_prom_histogram(p, "fanout_latency_seconds",
                                           &loc[i].name, NULL, loc[i].node);
    }

    p = ngx_sprintf(p,
        "# HELP fanout_target_latency_seconds Time a target took to answer.\n"
        "# TYPE fanout_target_latency_seconds histogram\n");

    for (i = 0; i < fmcf->locations.nelts; i++) {
        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            p = ngx_http_fanout_stats_prom_histogram(p,
                                               "fanout_target_latency_seconds",
                                               &loc[i].name, &tgt[j].name,
                                               tgt[j].node);
        }
    }

    p = ngx_http_fanout_runtime_prometheus(p, fmcf);

    if (fmcf->redis_stats) {
        p = ngx_http_fanout_counters_prometheus(p, fmcf,
                                                NGX_HTTP_FANOUT_GROUP_REDIS);
        p = ngx_sprintf(p,
            "# HELP fanout_redis_latency_seconds Time to a Redis reply.\n"
            "# TYPE fanout_redis_latency_seconds histogram\n");
        p = ngx_http_fanout_stats_prom_histogram(p,
                                                 "fanout_redis_latency_seconds",
                                                 NULL, NULL,
                                                 fmcf->redis_stats);
    }

    return p;
}


static size_t
ngx_http_fanout_status_size(ngx_http_fanout_main_conf_t *fmcf)
{
    size_t                           size, names;
    ngx_uint_t                       i, j, g, lines;
    ngx_array_t                     *a;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_stats_target_t  *tgt;

    /*
     * An upper bound: every line of either format is under 128 bytes
     * besides its names, and escaping at most sextuples a name (\u00XX).
     * A node writes its table's lines (ngx_http_fanout_counters_lines),
     * its latency histogram's, and the few that are not counters.
     */

    size = 4096 + 12 * fmcf->instance.len
           + 2 * ngx_http_fanout_runtime_json_size(fmcf)
           + 128 * (ngx_http_fanout_counters_lines(NGX_HTTP_FANOUT_GROUP_REDIS)
                    + NGX_HTTP_FANOUT_NBUCKETS + 8);
    loc = fmcf->locations.elts;

    for (i = 0; i < fmcf->locations.nelts; i++) {
        lines = ngx_http_fanout_counters_lines(NGX_HTTP_FANOUT_GROUP_LOCATION)
                + NGX_HTTP_FANOUT_NBUCKETS + 24;
        size += lines * (128 + 6 * loc[i].name.len);

        for (g = NGX_HTTP_FANOUT_GROUP_LIMIT;
             g <= NGX_HTTP_FANOUT_GROUP_TARGET;
             g++)
        {
            a = g == NGX_HTTP_FANOUT_GROUP_TARGET
                ? &loc[i].targets : ngx_http_fanout_stats_extras(&loc[i], g);
            tgt = a->elts;
            lines = ngx_http_fanout_counters_lines(g)
                    + NGX_HTTP_FANOUT_NBUCKETS + 24;

            for (j = 0; j < a->nelts; j++) {
                names = 6 * (loc[i].name.len + tgt[j].name.len);
                size += lines * (128 + names);
            }
        }
    }

    return size;
}


ngx_uint_t
ngx_http_fanout_status_format(ngx_str_t *name)
{
    if (name->len == 4 && ngx_strncmp(name->data, "json", 4) == 0) {
        return NGX_HTTP_FANOUT_STATUS_JSON;
    }

    if (name->len == 10 && ngx_strncmp(name->data, "prometheus", 10) == 0) {
        return NGX_HTTP_FANOUT_STATUS_PROMETHEUS;
    }

    if (name->len == 4 && ngx_strncmp(name->data, "html", 4) == 0) {
        return NGX_HTTP_FANOUT_STATUS_HTML;
    }

    return 0;
}


/*
 * The dashboard: one static page that polls this location's JSON. Its
 * policy allows only its own inline script and style (by their hashes)
 * and fetches to its own origin.
 */

static ngx_int_t
ngx_http_fanout_status_html(ngx_http_request_t *r)
{
    ngx_str_t         type;
    ngx_table_elt_t  *h;

    static ngx_str_t  headers[] = {
        ngx_string("Content-Security-Policy"),
        ngx_string(NGX_HTTP_FANOUT_DASHBOARD_CSP),
        ngx_string("X-Content-Type-Options"), ngx_string("nosniff"),
        ngx_string("Cache-Control"), ngx_string("no-store"),
        ngx_string("Referrer-Policy"), ngx_string("no-referrer")
    };

    ngx_uint_t  i;

    for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i += 2) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        h->key = headers[i];
        h->value = headers[i + 1];
    }

    ngx_str_set(&type, "text/html; charset=utf-8");

    return ngx_http_fanout_send(r, NGX_HTTP_OK, &type,
                                (u_char *) ngx_http_fanout_dashboard,
                                sizeof(ngx_http_fanout_dashboard) - 1);
}


static ngx_int_t
ngx_http_fanout_status_fields(ngx_http_request_t *r)
{
    ngx_str_t  type, doc;

    if (ngx_http_fanout_counters_fields(r->pool, &doc) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&type, "application/json");

    return ngx_http_fanout_send(r, NGX_HTTP_OK, &type, doc.data, doc.len);
}


ngx_int_t
ngx_http_fanout_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                     arg;
    ngx_uint_t                    format;
    ngx_buf_t                    *b;
    ngx_chain_t                   out;
    ngx_http_fanout_loc_conf_t   *flcf;
    ngx_http_fanout_main_conf_t  *fmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    /* nginx -t made sure that the zone exists */
    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fanout_module);
    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fanout_module);

    /* ?format= picks another view of the same counters */
    format = flcf->status_format;

    if (ngx_http_arg(r, (u_char *) "format", 6, &arg) == NGX_OK) {

        /* what each counter is: the tables the views are printed from */
        if (arg.len == 6 && ngx_strncmp(arg.data, "fields", 6) == 0) {
            return ngx_http_fanout_status_fields(r);
        }

        format = ngx_http_fanout_status_format(&arg);

        if (format == 0) {
            return ngx_http_fanout_send_error(r, NGX_HTTP_BAD_REQUEST,
                                              "bad_format",
                                              "format= is json, prometheus, "
                                              "html or fields");
        }
    }

    if (format == NGX_HTTP_FANOUT_STATUS_HTML) {
        return ngx_http_fanout_status_html(r);
    }

    b = ngx_create_temp_buf(r->pool, ngx_http_fanout_status_size(fmcf));
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (format == NGX_HTTP_FANOUT_STATUS_PROMETHEUS) {
        b->last = ngx_http_fanout_status_prometheus(b->last, fmcf);
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");

    } else {
        b->last = ngx_http_fanout_status_json(b->last, fmcf);
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* fanout_status [json|prometheus|html] */

char *
ngx_http_fanout_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_str_t                    *value;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_fanout_main_conf_t  *fmcf;

    if (flcf->status_format) {
        return "is duplicate";
    }

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);

    if (fmcf->status_file == NULL) {
        fmcf->status_file = cf->conf_file->file.name.data;
        fmcf->status_line = cf->conf_file->line;
    }

    value = cf->args->elts;
    flcf->status_format = NGX_HTTP_FANOUT_STATUS_JSON;

    if (cf->args->nelts == 2) {
        flcf->status_format = ngx_http_fanout_status_format(&value[1]);

        if (flcf->status_format == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid format \"%V\": use \"json\", "
                               "\"prometheus\" or \"html\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fanout_status\" cannot be combined with another "
                           "content handler in one location");
        return NGX_CONF_ERROR;
    }

    clcf->handler = ngx_http_fanout_status_handler;

    return NGX_CONF_OK;
}
