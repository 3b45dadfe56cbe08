/*
 * fanout_status: the zone's counters, Redis's and the module's version as
 * JSON or Prometheus text, like nginx-module-vts's display: it reads the
 * nodes (ngx_http_fanout_stats.c) and asks Redis for its own part.
 */

#include <nginx.h>
#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_health.h"
#include "ngx_http_fanout_l1.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_response.h"
#include "ngx_http_fanout_runtime.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_status.h"
#include "ngx_http_fanout_dashboard.h"


static const char  *ngx_http_fanout_loc_counters[] = {
    "requests", "200", "502", "504", "rejected", "aborted",
    "hit", "miss", "bypass", "error", "stored", "skipped", "stale",
    "coalesced", "ambiguous", "l1_hit", "l1_stored", "purged",
    "rejected", "dry_run", "evicted"
};


static const char  *ngx_http_fanout_lim_counters[] = {
    "admitted", "rejected", "dry_run", "redis_errors", "unavailable"
};


static const char  *ngx_http_fanout_var_counters[] = {
    "requests", "200", "502", "504", "other"
};


static const char  *ngx_http_fanout_bat_counters[] = {
    "batches", "inputs", "callers", "errors", "alone", "wait_ms_sum"
};


/* the upper bounds of the batches' buckets: inputs, and ms waited */
static const char  *ngx_http_fanout_bat_sizes[] = {
    "1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024", "+Inf"
};

static const char  *ngx_http_fanout_bat_waits[] = {
    "0", "1", "2", "5", "10", "25", "+Inf"
};

/* the same bounds for Prometheus, which wants seconds */
static const char  *ngx_http_fanout_bat_waits_s[] = {
    "0", "0.001", "0.002", "0.005", "0.01", "0.025", "+Inf"
};


static const char  *ngx_http_fanout_sha_counters[] = {
    "sent", "agree", "disagree", "shadow_error", "shed", "skipped",
    "argmax_agree", "argmax_disagree", "sampled", "sample_errors",
    "pairs", "shadow_ms_sum", "primary_ms_sum", "shadow_slower"
};


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


static u_char *
ngx_http_fanout_status_json(u_char *p, ngx_http_fanout_main_conf_t *fmcf)
{
    uint32_t                         rate, requests;
    ngx_str_t                        name;
    fanout_breaker_t                 breaker;
    ngx_uint_t                       i, j, k;
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
        p = ngx_sprintf(p, "\":{\"requests\":%uA,\"responses\":{",
                        st->counters[NGX_HTTP_FANOUT_LOC_REQUESTS]);

        for (k = NGX_HTTP_FANOUT_LOC_200; k < NGX_HTTP_FANOUT_LOC_ABORTED; k++)
        {
            p = ngx_sprintf(p, "%s\"%s\":%uA",
                            k == NGX_HTTP_FANOUT_LOC_200 ? "" : ",",
                            ngx_http_fanout_loc_counters[k],
                            st->counters[k]);
        }

        p = ngx_sprintf(p, "},\"aborted\":%uA,\"cache\":{",
                        st->counters[NGX_HTTP_FANOUT_LOC_ABORTED]);

        for (k = NGX_HTTP_FANOUT_LOC_CACHE_HIT;
             k < NGX_HTTP_FANOUT_LOC_LIMITED;
             k++)
        {
            p = ngx_sprintf(p, "%s\"%s\":%uA",
                            k == NGX_HTTP_FANOUT_LOC_CACHE_HIT ? "" : ",",
                            ngx_http_fanout_loc_counters[k],
                            st->counters[k]);
        }

        if (loc[i].l1) {
            p = ngx_http_fanout_status_l1_json(p, loc[i].l1);
        }

        p = ngx_sprintf(p, "},\"limit\":{\"rejected\":%uA,\"dry_run\":%uA,"
                        "\"evicted\":%uA,\"limits\":{",
                        st->counters[NGX_HTTP_FANOUT_LOC_LIMITED],
                        st->counters[NGX_HTTP_FANOUT_LOC_DRY_RUN],
                        st->counters[NGX_HTTP_FANOUT_LOC_EVICTED]);

        tgt = loc[i].limits.elts;

        for (j = 0; j < loc[i].limits.nelts; j++) {
            name.data = tgt[j].name.data + 1;      /* after the \1 */
            name.len = tgt[j].name.len - 1;

            p = ngx_sprintf(p, "%s\"", j ? "," : "");
            p = ngx_http_fanout_escape_json(p, &name);
            p = ngx_sprintf(p, "\":{");

            for (k = 0; k < NGX_HTTP_FANOUT_LIM_NCOUNTERS; k++) {
                p = ngx_sprintf(p, "%s\"%s\":%uA", k ? "," : "",
                                ngx_http_fanout_lim_counters[k],
                                tgt[j].node->counters[k]);
            }

            *p++ = '}';
        }

        p = ngx_sprintf(p, "}},\"variants\":{");

        tgt = loc[i].variants.elts;

        for (j = 0; j < loc[i].variants.nelts; j++) {
            name.data = tgt[j].name.data + 1;
            name.len = tgt[j].name.len - 1;

            p = ngx_sprintf(p, "%s\"", j ? "," : "");
            p = ngx_http_fanout_escape_json(p, &name);
            p = ngx_sprintf(p, "\":{");

            for (k = 0; k < NGX_HTTP_FANOUT_VAR_KIND; k++) {
                p = ngx_sprintf(p, "%s\"%s\":%uA", k ? "," : "",
                                ngx_http_fanout_var_counters[k],
                                tgt[j].node->counters[k]);
            }

            p = ngx_sprintf(p, ",\"targets\":{");

            for (k = 0; k < FANOUT_NKINDS; k++) {
                p = ngx_sprintf(p, "%s\"%s\":%uA", k ? "," : "",
                                fanout_kind_name(k),
                                tgt[j].node->counters[NGX_HTTP_FANOUT_VAR_KIND
                                                      + k]);
            }

            p = ngx_sprintf(p, "},");
            p = ngx_http_fanout_stats_json_histogram(p, tgt[j].node);
            *p++ = '}';
        }

        p = ngx_sprintf(p, "},\"shadows\":{");

        tgt = loc[i].shadows.elts;

        for (j = 0; j < loc[i].shadows.nelts; j++) {
            name.data = tgt[j].name.data + 1;
            name.len = tgt[j].name.len - 1;

            p = ngx_sprintf(p, "%s\"", j ? "," : "");
            p = ngx_http_fanout_escape_json(p, &name);
            p = ngx_sprintf(p, "\":{");

            for (k = 0; k < NGX_HTTP_FANOUT_SHA_PAIRS; k++) {
                p = ngx_sprintf(p, "%s\"%s\":%uA", k ? "," : "",
                                ngx_http_fanout_sha_counters[k],
                                tgt[j].node->counters[k]);
            }

            p = ngx_sprintf(p, ",\"inflight\":%uA,\"vs_primary\":{",
                            tgt[j].node->inflight);

            for (k = NGX_HTTP_FANOUT_SHA_PAIRS;
                 k < NGX_HTTP_FANOUT_SHA_NCOUNTERS;
                 k++)
            {
                p = ngx_sprintf(p, "%s\"%s\":%uA",
                                k == NGX_HTTP_FANOUT_SHA_PAIRS ? "" : ",",
                                ngx_http_fanout_sha_counters[k],
                                tgt[j].node->counters[k]);
            }

            p = ngx_sprintf(p, "},");
            p = ngx_http_fanout_stats_json_histogram(p, tgt[j].node);
            *p++ = '}';
        }

        p = ngx_sprintf(p, "},\"batches\":{");

        tgt = loc[i].batches.elts;

        for (j = 0; j < loc[i].batches.nelts; j++) {
            name.data = tgt[j].name.data + 1;
            name.len = tgt[j].name.len - 1;

            p = ngx_sprintf(p, "%s\"", j ? "," : "");
            p = ngx_http_fanout_escape_json(p, &name);
            p = ngx_sprintf(p, "\":{");

            for (k = 0; k < NGX_HTTP_FANOUT_BAT_SIZE; k++) {
                p = ngx_sprintf(p, "%s\"%s\":%uA", k ? "," : "",
                                ngx_http_fanout_bat_counters[k],
                                tgt[j].node->counters[k]);
            }

            p = ngx_sprintf(p, ",\"inputs_per_batch\":{");

            for (k = 0; k < NGX_HTTP_FANOUT_BAT_NSIZES; k++) {
                p = ngx_sprintf(p, "%s\"%s\":%uA", k ? "," : "",
                                ngx_http_fanout_bat_sizes[k],
                                tgt[j].node->counters[NGX_HTTP_FANOUT_BAT_SIZE
                                                      + k]);
            }

            p = ngx_sprintf(p, "},\"wait_ms\":{");

            for (k = 0; k < NGX_HTTP_FANOUT_BAT_NWAITS; k++) {
                p = ngx_sprintf(p, "%s\"%s\":%uA", k ? "," : "",
                                ngx_http_fanout_bat_waits[k],
                                tgt[j].node->counters[NGX_HTTP_FANOUT_BAT_WAIT
                                                      + k]);
            }

            p = ngx_sprintf(p, "}}");
        }

        p = ngx_sprintf(p, "},");
        p = ngx_http_fanout_stats_json_histogram(p, st);
        p = ngx_sprintf(p, ",\"targets\":{");

        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            st = tgt[j].node;

            p = ngx_sprintf(p, "%s\"", j ? "," : "");
            p = ngx_http_fanout_escape_json(p, &tgt[j].name);
            p = ngx_sprintf(p, "\":{\"requests\":%uA",
                            st->counters[NGX_HTTP_FANOUT_TGT_REQUESTS]);

            for (k = 0; k < FANOUT_NKINDS; k++) {
                p = ngx_sprintf(p, ",\"%s\":%uA", fanout_kind_name(k),
                                st->counters[NGX_HTTP_FANOUT_TGT_KIND + k]);
            }

            /* a consistent copy: workers change it under the lock */
            ngx_shmtx_lock(&fmcf->shpool->mutex);
            breaker = tgt[j].bnode->breaker;
            ngx_shmtx_unlock(&fmcf->shpool->mutex);

            rate = fanout_breaker_peek(&breaker, ngx_current_msec, &requests);

            p = ngx_sprintf(p, ",\"cancelled\":%uA,\"cache_hit\":%uA,"
                            "\"cache_miss\":%uA,\"fallback\":%uA,"
                            "\"fallback_ok\":%uA,\"retries\":%uA,"
                            "\"retries_won\":%uA,\"retry_budget_denied\":%uA,"
                            "\"hedges\":%uA,\"hedges_won\":%uA,"
                            "\"hedge_budget_denied\":%uA,\"hedge_delay_ms\":%uA,"
                            "\"breaker\":{\"state\":\"%s\","
                            "\"consecutive_failures\":%uD,\"error_rate\":%uD,"
                            "\"window_requests\":%uD,\"cooldown_ms\":%uL,"
                            "\"retry_in_ms\":%uL,\"learned\":%s},"
                            "\"inflight\":%uA,\"max_inflight\":%ui,",
                            st->counters[NGX_HTTP_FANOUT_TGT_CANCELLED],
                            st->counters[NGX_HTTP_FANOUT_TGT_CACHE_HIT],
                            st->counters[NGX_HTTP_FANOUT_TGT_CACHE_MISS],
                            st->counters[NGX_HTTP_FANOUT_TGT_FALLBACK],
                            st->counters[NGX_HTTP_FANOUT_TGT_FALLBACK_OK],
                            st->counters[NGX_HTTP_FANOUT_TGT_RETRIES],
                            st->counters[NGX_HTTP_FANOUT_TGT_RETRIES_WON],
                            st->counters[NGX_HTTP_FANOUT_TGT_RETRY_DENIED],
                            st->counters[NGX_HTTP_FANOUT_TGT_HEDGES],
                            st->counters[NGX_HTTP_FANOUT_TGT_HEDGES_WON],
                            st->counters[NGX_HTTP_FANOUT_TGT_HEDGE_DENIED],
                            st->hedge_delay,
                            fanout_breaker_state_name(breaker.state),
                            breaker.consecutive, rate, requests,
                            breaker.cooldown_ms,
                            (breaker.state == FANOUT_BREAKER_OPEN
                             && breaker.retry_at_ms > ngx_current_msec)
                            ? breaker.retry_at_ms - ngx_current_msec
                            : (uint64_t) 0,
                            breaker.remote ? "true" : "false",
                            st->inflight, tgt[j].max_inflight);
            p = ngx_http_fanout_stats_json_histogram(p, st);
            *p++ = '}';
        }

        p = ngx_sprintf(p, "}}%s", i + 1 < fmcf->locations.nelts ? "," : "");
    }

    p = ngx_sprintf(p, "}");

    if (fmcf->redis_stats) {
        *p++ = ',';
        p = ngx_http_fanout_redis_status_json(p, fmcf->redis_stats);
    }

    /* fanout_api's and the ramps' state, as fanout_api shows it */
    p = ngx_sprintf(p, ",\"runtime\":{");
    p = ngx_http_fanout_runtime_json(p, fmcf);
    *p++ = '}';

    return ngx_sprintf(p, "}\n");
}


/* one sample per location for each location counter in [from, to) */

static u_char *
ngx_http_fanout_prom_loc_counters(u_char *p, ngx_http_fanout_main_conf_t *fmcf,
    const char *metric, const char *label, ngx_uint_t from, ngx_uint_t to)
{
    ngx_uint_t                    i, k;
    ngx_http_fanout_stats_loc_t  *loc;

    loc = fmcf->locations.elts;

    for (i = 0; i < fmcf->locations.nelts; i++) {
        for (k = from; k < to; k++) {
            p = ngx_sprintf(p, "%s", metric);
            p = ngx_http_fanout_prom_labels(p, &loc[i].name, NULL);
            p = ngx_sprintf(p, ",%s=\"%s\"} %uA\n", label,
                            ngx_http_fanout_loc_counters[k],
                            loc[i].node->counters[k]);
        }
    }

    return p;
}


/*
 * One sample per limit or variant of each location for its counters
 * [from, from + n), labelled with its name and the counter's (names[k], or
 * the kind's name when names is NULL).
 */

static u_char *
ngx_http_fanout_prom_extra(u_char *p, ngx_http_fanout_main_conf_t *fmcf,
    const char *metric, ngx_uint_t kind, const char *label,
    const char **names, ngx_uint_t from, ngx_uint_t n)
{
    ngx_str_t                        name;
    ngx_uint_t                       i, j, k;
    ngx_array_t                     *a;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_stats_target_t  *x;

    loc = fmcf->locations.elts;

    for (i = 0; i < fmcf->locations.nelts; i++) {
        a = ngx_http_fanout_stats_extras(&loc[i], kind);
        x = a->elts;

        for (j = 0; j < a->nelts; j++) {
            name.data = x[j].name.data + 1;     /* after the \1 or \2 */
            name.len = x[j].name.len - 1;

            for (k = 0; k < n; k++) {
                p = ngx_sprintf(p, "%s", metric);
                p = ngx_http_fanout_prom_labels(p, &loc[i].name, NULL);
                p = ngx_sprintf(p, ",%s=\"", label);
                p = ngx_http_fanout_escape_label(p, &name);
                p = ngx_sprintf(p, "\",result=\"%s\"} %uA\n",
                                names ? names[k] : fanout_kind_name(k),
                                x[j].node->counters[from + k]);
            }
        }
    }

    return p;
}


/*
 * A histogram of the batched targets' counters: n buckets from first
 * (non-cumulative in the zone, cumulative here), its sum at counter sum;
 * its count is the last cumulative bucket.
 */

static u_char *
ngx_http_fanout_prom_buckets(u_char *p, ngx_http_fanout_main_conf_t *fmcf,
    const char *metric, const char **bounds, ngx_uint_t first, ngx_uint_t n,
    ngx_uint_t sum, ngx_uint_t ms)
{
    ngx_atomic_uint_t                v;
    ngx_str_t                        name;
    ngx_uint_t                       i, j, k;
    ngx_atomic_uint_t                total;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_stats_target_t  *x;

    loc = fmcf->locations.elts;

    for (i = 0; i < fmcf->locations.nelts; i++) {
        x = loc[i].batches.elts;

        for (j = 0; j < loc[i].batches.nelts; j++) {
            name.data = x[j].name.data + 1;
            name.len = x[j].name.len - 1;
            total = 0;

            for (k = 0; k < n; k++) {
                total += x[j].node->counters[first + k];

                p = ngx_sprintf(p, "%s_bucket", metric);
                p = ngx_http_fanout_prom_labels(p, &loc[i].name, &name);
                p = ngx_sprintf(p, ",le=\"%s\"} %uA\n", bounds[k], total);
            }

            p = ngx_sprintf(p, "%s_sum", metric);
            p = ngx_http_fanout_prom_labels(p, &loc[i].name, &name);
            v = x[j].node->counters[sum];
            p = ms ? ngx_sprintf(p, "} %uA.%03uA\n", v / 1000, v % 1000)
                   : ngx_sprintf(p, "} %uA\n", v);

            p = ngx_sprintf(p, "%s_count", metric);
            p = ngx_http_fanout_prom_labels(p, &loc[i].name, &name);
            p = ngx_sprintf(p, "} %uA\n", total);
        }
    }

    return p;
}


static u_char *
ngx_http_fanout_status_prometheus(u_char *p, ngx_http_fanout_main_conf_t *fmcf)
{
    uint32_t                         requests;
    fanout_breaker_t                 breaker;
    ngx_uint_t                       i, j, k;
    ngx_http_fanout_stats_t         *st;
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

    p = ngx_sprintf(p,
        "# HELP fanout_requests_total Client requests to a fan-out location.\n"
        "# TYPE fanout_requests_total counter\n");

    for (i = 0; i < fmcf->locations.nelts; i++) {
        p = ngx_sprintf(p, "fanout_requests_total");
        p = ngx_http_fanout_prom_labels(p, &loc[i].name, NULL);
        p = ngx_sprintf(p, "} %uA\n",
                     loc[i].node->counters[NGX_HTTP_FANOUT_LOC_REQUESTS]);
    }

    p = ngx_sprintf(p,
        "# HELP fanout_responses_total Answers by status: 200, 502, 504, "
        "rejected (bad input), aborted (client gone).\n"
        "# TYPE fanout_responses_total counter\n");

    p = ngx_http_fanout_prom_loc_counters(p, fmcf, "fanout_responses_total",
                                          "status", NGX_HTTP_FANOUT_LOC_200,
                                          NGX_HTTP_FANOUT_LOC_ABORTED + 1);

    p = ngx_sprintf(p,
        "# HELP fanout_cache_total Cache lookups (hit, miss, bypass, error, "
        "stale, coalesced), stores (stored, skipped over max_size), "
        "bodies keyed by their bytes (ambiguous: duplicate keys), the L1's "
        "hits and stores, and purges.\n"
        "# TYPE fanout_cache_total counter\n");

    p = ngx_http_fanout_prom_loc_counters(p, fmcf, "fanout_cache_total",
                                          "result",
                                          NGX_HTTP_FANOUT_LOC_CACHE_HIT,
                                          NGX_HTTP_FANOUT_LOC_LIMITED);

    p = ngx_http_fanout_status_l1_prometheus(p, fmcf);

    p = ngx_sprintf(p,
        "# HELP fanout_limit_total fanout_limit: requests rejected, found "
        "over a limit in dry_run, and keys evicted from a full zone.\n"
        "# TYPE fanout_limit_total counter\n");

    p = ngx_http_fanout_prom_loc_counters(p, fmcf, "fanout_limit_total",
                                          "result",
                                          NGX_HTTP_FANOUT_LOC_LIMITED,
                                          NGX_HTTP_FANOUT_LOC_NCOUNTERS);

    p = ngx_sprintf(p,
        "# HELP fanout_limit_requests_total Per fanout_limit (its key and "
        "rate): admitted, rejected, dry_run, redis_errors, unavailable.\n"
        "# TYPE fanout_limit_requests_total counter\n");

    p = ngx_http_fanout_prom_extra(p, fmcf, "fanout_limit_requests_total",
                                   NGX_HTTP_FANOUT_STATS_LIMIT, "limit",
                                   ngx_http_fanout_lim_counters, 0,
                                   NGX_HTTP_FANOUT_LIM_NCOUNTERS);

    p = ngx_sprintf(p,
        "# HELP fanout_variant_requests_total Per fanout_split variant: "
        "requests, and answers by status (200, 502, 504, other).\n"
        "# TYPE fanout_variant_requests_total counter\n");

    p = ngx_http_fanout_prom_extra(p, fmcf, "fanout_variant_requests_total",
                                   NGX_HTTP_FANOUT_STATS_VARIANT, "variant",
                                   ngx_http_fanout_var_counters, 0,
                                   NGX_HTTP_FANOUT_VAR_KIND);

    p = ngx_sprintf(p,
        "# HELP fanout_variant_target_results_total Outcomes of the target "
        "calls of a fanout_split variant.\n"
        "# TYPE fanout_variant_target_results_total counter\n");

    p = ngx_http_fanout_prom_extra(p, fmcf,
                                   "fanout_variant_target_results_total",
                                   NGX_HTTP_FANOUT_STATS_VARIANT, "variant",
                                   NULL, NGX_HTTP_FANOUT_VAR_KIND,
                                   FANOUT_NKINDS);

    p = ngx_sprintf(p,
        "# HELP fanout_shadow_results_total Per fanout_shadow: sent, agree, "
        "disagree, shadow_error, shed, skipped, argmax_agree, "
        "argmax_disagree, sampled, sample_errors.\n"
        "# TYPE fanout_shadow_results_total counter\n");

    p = ngx_http_fanout_prom_extra(p, fmcf, "fanout_shadow_results_total",
                                   NGX_HTTP_FANOUT_STATS_SHADOW, "shadow",
                                   ngx_http_fanout_sha_counters, 0,
                                   NGX_HTTP_FANOUT_SHA_PAIRS);

    p = ngx_sprintf(p,
        "# HELP fanout_shadow_vs_primary_total Per fanout_shadow, over the "
        "requests where both answered: pairs, the sums of both latencies "
        "in ms, and how often the shadow was slower.\n"
        "# TYPE fanout_shadow_vs_primary_total counter\n");

    p = ngx_http_fanout_prom_extra(p, fmcf, "fanout_shadow_vs_primary_total",
                                   NGX_HTTP_FANOUT_STATS_SHADOW, "shadow",
                                   ngx_http_fanout_sha_counters
                                   + NGX_HTTP_FANOUT_SHA_PAIRS,
                                   NGX_HTTP_FANOUT_SHA_PAIRS,
                                   NGX_HTTP_FANOUT_SHA_NCOUNTERS
                                   - NGX_HTTP_FANOUT_SHA_PAIRS);

    p = ngx_sprintf(p,
        "# HELP fanout_batch_total Per batch= target: upstream calls made "
        "of several calls' inputs, the inputs and calls in them, batches "
        "that failed their calls, calls sent alone, ms waited (sum).\n"
        "# TYPE fanout_batch_total counter\n");

    p = ngx_http_fanout_prom_extra(p, fmcf, "fanout_batch_total",
                                   NGX_HTTP_FANOUT_STATS_BATCH, "target",
                                   ngx_http_fanout_bat_counters, 0,
                                   NGX_HTTP_FANOUT_BAT_SIZE);

    p = ngx_sprintf(p,
        "# HELP fanout_batch_inputs Inputs per micro-batch.\n"
        "# TYPE fanout_batch_inputs histogram\n");

    p = ngx_http_fanout_prom_buckets(p, fmcf, "fanout_batch_inputs",
                                     ngx_http_fanout_bat_sizes,
                                     NGX_HTTP_FANOUT_BAT_SIZE,
                                     NGX_HTTP_FANOUT_BAT_NSIZES,
                                     NGX_HTTP_FANOUT_BAT_INPUTS, 0);

    p = ngx_sprintf(p,
        "# HELP fanout_batch_wait_seconds Time a call waited for its "
        "batch.\n"
        "# TYPE fanout_batch_wait_seconds histogram\n");

    p = ngx_http_fanout_prom_buckets(p, fmcf, "fanout_batch_wait_seconds",
                                     ngx_http_fanout_bat_waits_s,
                                     NGX_HTTP_FANOUT_BAT_WAIT,
                                     NGX_HTTP_FANOUT_BAT_NWAITS,
                                     NGX_HTTP_FANOUT_BAT_WAIT_MS, 1);

    p = ngx_sprintf(p,
        "# HELP fanout_latency_seconds Time from the fan-out's start to "
        "its answer.\n"
        "# TYPE fanout_latency_seconds histogram\n");

    for (i = 0; i < fmcf->locations.nelts; i++) {
        p = ngx_http_fanout_stats_prom_histogram(p, "fanout_latency_seconds",
                                           &loc[i].name, NULL, loc[i].node);
    }

    p = ngx_sprintf(p,
        "# HELP fanout_target_requests_total Calls made to a target.\n"
        "# TYPE fanout_target_requests_total counter\n");

    for (i = 0; i < fmcf->locations.nelts; i++) {
        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            p = ngx_sprintf(p, "fanout_target_requests_total");
            p = ngx_http_fanout_prom_labels(p, &loc[i].name, &tgt[j].name);
            p = ngx_sprintf(p, "} %uA\n",
                        tgt[j].node->counters[NGX_HTTP_FANOUT_TGT_REQUESTS]);
        }
    }

    p = ngx_sprintf(p,
        "# HELP fanout_target_results_total Target calls by outcome.\n"
        "# TYPE fanout_target_results_total counter\n");

    for (i = 0; i < fmcf->locations.nelts; i++) {
        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            for (k = 0; k < FANOUT_NKINDS; k++) {
                p = ngx_sprintf(p, "fanout_target_results_total");
                p = ngx_http_fanout_prom_labels(p, &loc[i].name,
                                                &tgt[j].name);
                p = ngx_sprintf(p, ",result=\"%s\"} %uA\n",
                             fanout_kind_name(k),
                             tgt[j].node->counters[NGX_HTTP_FANOUT_TGT_KIND
                                                   + k]);
            }
        }
    }

    p = ngx_sprintf(p,
        "# HELP fanout_target_cancelled_total Calls cut off after their "
        "timeout or once the answer was sent.\n"
        "# TYPE fanout_target_cancelled_total counter\n");

    for (i = 0; i < fmcf->locations.nelts; i++) {
        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            p = ngx_sprintf(p, "fanout_target_cancelled_total");
            p = ngx_http_fanout_prom_labels(p, &loc[i].name, &tgt[j].name);
            p = ngx_sprintf(p, "} %uA\n",
                       tgt[j].node->counters[NGX_HTTP_FANOUT_TGT_CANCELLED]);
        }
    }

    p = ngx_sprintf(p,
        "# HELP fanout_target_breaker_state Circuit breaker: 0 closed, "
        "1 open, 2 half-open.\n"
        "# TYPE fanout_target_breaker_state gauge\n");

    for (i = 0; i < fmcf->locations.nelts; i++) {
        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            p = ngx_sprintf(p, "fanout_target_breaker_state");
            p = ngx_http_fanout_prom_labels(p, &loc[i].name, &tgt[j].name);
            p = ngx_sprintf(p, "} %uD\n", tgt[j].bnode->breaker.state);
        }
    }

    p = ngx_sprintf(p,
        "# HELP fanout_target_error_rate Circuit breaker: failures per "
        "hundred calls over its window.\n"
        "# TYPE fanout_target_error_rate gauge\n");

    for (i = 0; i < fmcf->locations.nelts; i++) {
        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            ngx_shmtx_lock(&fmcf->shpool->mutex);
            breaker = tgt[j].bnode->breaker;
            ngx_shmtx_unlock(&fmcf->shpool->mutex);

            p = ngx_sprintf(p, "fanout_target_error_rate");
            p = ngx_http_fanout_prom_labels(p, &loc[i].name, &tgt[j].name);
            p = ngx_sprintf(p, "} %uD\n",
                            fanout_breaker_peek(&breaker, ngx_current_msec,
                                                &requests));
        }
    }

    p = ngx_sprintf(p,
        "# HELP fanout_target_fallback_total Calls to a target's fallback= "
        "(called) and those that answered (ok).\n"
        "# TYPE fanout_target_fallback_total counter\n");

    for (i = 0; i < fmcf->locations.nelts; i++) {
        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            for (k = 0; k < 2; k++) {
                p = ngx_sprintf(p, "fanout_target_fallback_total");
                p = ngx_http_fanout_prom_labels(p, &loc[i].name,
                                                &tgt[j].name);
                p = ngx_sprintf(p, ",result=\"%s\"} %uA\n",
                       k ? "ok" : "called",
                       tgt[j].node->counters[NGX_HTTP_FANOUT_TGT_FALLBACK
                                             + k]);
            }
        }
    }

    p = ngx_sprintf(p,
        "# HELP fanout_target_retries_total fanout_retry: attempts tried "
        "again (tried), calls a retry answered (won), retries the budget "
        "refused (denied).\n"
        "# TYPE fanout_target_retries_total counter\n");

    for (i = 0; i < fmcf->locations.nelts; i++) {
        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            for (k = 0; k < 3; k++) {
                p = ngx_sprintf(p, "fanout_target_retries_total");
                p = ngx_http_fanout_prom_labels(p, &loc[i].name,
                                                &tgt[j].name);
                p = ngx_sprintf(p, ",result=\"%s\"} %uA\n",
                       k == 0 ? "tried" : k == 1 ? "won" : "denied",
                       tgt[j].node->counters[NGX_HTTP_FANOUT_TGT_RETRIES
                                             + k]);
            }
        }
    }

    p = ngx_sprintf(p,
        "# HELP fanout_target_hedges_total fanout_hedge: backup attempts "
        "sent (sent), calls a backup answered (won), backups the budget "
        "refused (denied).\n"
        "# TYPE fanout_target_hedges_total counter\n");

    for (i = 0; i < fmcf->locations.nelts; i++) {
        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            for (k = 0; k < 3; k++) {
                p = ngx_sprintf(p, "fanout_target_hedges_total");
                p = ngx_http_fanout_prom_labels(p, &loc[i].name,
                                                &tgt[j].name);
                p = ngx_sprintf(p, ",result=\"%s\"} %uA\n",
                       k == 0 ? "sent" : k == 1 ? "won" : "denied",
                       tgt[j].node->counters[NGX_HTTP_FANOUT_TGT_HEDGES
                                             + k]);
            }
        }
    }

    p = ngx_sprintf(p,
        "# HELP fanout_target_hedge_delay_seconds fanout_hedge after=pN: "
        "the latest delay before a backup.\n"
        "# TYPE fanout_target_hedge_delay_seconds gauge\n");

    for (i = 0; i < fmcf->locations.nelts; i++) {
        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            p = ngx_sprintf(p, "fanout_target_hedge_delay_seconds");
            p = ngx_http_fanout_prom_labels(p, &loc[i].name, &tgt[j].name);
            p = ngx_sprintf(p, "} %uA.%03uA\n",
                            tgt[j].node->hedge_delay / 1000,
                            tgt[j].node->hedge_delay % 1000);
        }
    }

    for (k = 0; k < 2; k++) {
        p = ngx_sprintf(p, "%s",
            k == 0
            ? "# HELP fanout_target_inflight Calls under way now, over all "
              "workers.\n# TYPE fanout_target_inflight gauge\n"
            : "# HELP fanout_target_max_inflight The target's max_inflight "
              "(0: no cap).\n# TYPE fanout_target_max_inflight gauge\n");

        for (i = 0; i < fmcf->locations.nelts; i++) {
            tgt = loc[i].targets.elts;

            for (j = 0; j < loc[i].targets.nelts; j++) {
                p = ngx_sprintf(p, "%s", k == 0 ? "fanout_target_inflight"
                                                : "fanout_target_max_inflight");
                p = ngx_http_fanout_prom_labels(p, &loc[i].name,
                                                &tgt[j].name);
                p = ngx_sprintf(p, "} %uA\n",
                                k == 0 ? tgt[j].node->inflight
                                       : (ngx_atomic_uint_t)
                                         tgt[j].max_inflight);
            }
        }
    }

    p = ngx_sprintf(p,
        "# HELP fanout_target_cache_total Per-target cache lookups "
        "(level=target).\n"
        "# TYPE fanout_target_cache_total counter\n");

    for (i = 0; i < fmcf->locations.nelts; i++) {
        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            for (k = 0; k < 2; k++) {
                p = ngx_sprintf(p, "fanout_target_cache_total");
                p = ngx_http_fanout_prom_labels(p, &loc[i].name,
                                                &tgt[j].name);
                p = ngx_sprintf(p, ",result=\"%s\"} %uA\n",
                       k ? "miss" : "hit",
                       tgt[j].node->counters[NGX_HTTP_FANOUT_TGT_CACHE_HIT
                                             + k]);
            }
        }
    }

    p = ngx_sprintf(p,
        "# HELP fanout_target_latency_seconds Time a target took to answer.\n"
        "# TYPE fanout_target_latency_seconds histogram\n");

    for (i = 0; i < fmcf->locations.nelts; i++) {
        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            st = tgt[j].node;
            p = ngx_http_fanout_stats_prom_histogram(p,
                                               "fanout_target_latency_seconds",
                                               &loc[i].name, &tgt[j].name, st);
        }
    }

    p = ngx_http_fanout_runtime_prometheus(p, fmcf);

    if (fmcf->redis_stats) {
        p = ngx_http_fanout_redis_status_prometheus(p, fmcf->redis_stats);
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


/* the most lines a limit's, variant's, shadow's or batch's node writes */
static const ngx_uint_t  ngx_http_fanout_extra_lines[] = {
    0,
    NGX_HTTP_FANOUT_LIM_NCOUNTERS + 2,
    NGX_HTTP_FANOUT_VAR_NCOUNTERS + NGX_HTTP_FANOUT_NBUCKETS + 6,
    NGX_HTTP_FANOUT_SHA_NCOUNTERS + NGX_HTTP_FANOUT_NBUCKETS + 6,
    NGX_HTTP_FANOUT_BAT_NCOUNTERS + 4
};


static size_t
ngx_http_fanout_status_size(ngx_http_fanout_main_conf_t *fmcf)
{
    size_t                           size, names;
    ngx_uint_t                       i, j, k;
    ngx_array_t                     *a;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_stats_target_t  *tgt;

    /*
     * An upper bound: every line of either format is under 128 bytes
     * besides its names, and escaping at most sextuples a name (\u00XX).
     */

    size = 4096 + ngx_http_fanout_redis_status_size()
           + 12 * fmcf->instance.len
           + 2 * ngx_http_fanout_runtime_json_size(fmcf);
    loc = fmcf->locations.elts;

    for (i = 0; i < fmcf->locations.nelts; i++) {
        size += (NGX_HTTP_FANOUT_NBUCKETS + NGX_HTTP_FANOUT_NCOUNTERS + 24)
                * (128 + 6 * loc[i].name.len);

        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            names = 6 * (loc[i].name.len + tgt[j].name.len);
            size += (NGX_HTTP_FANOUT_NBUCKETS + FANOUT_NKINDS + 34)
                    * (128 + names);
        }

        /* limits, variants, shadows, batches: their lines each */
        for (k = NGX_HTTP_FANOUT_STATS_LIMIT;
             k <= NGX_HTTP_FANOUT_STATS_BATCH;
             k++)
        {
            a = ngx_http_fanout_stats_extras(&loc[i], k);
            tgt = a->elts;

            for (j = 0; j < a->nelts; j++) {
                names = 6 * (loc[i].name.len + tgt[j].name.len);
                size += ngx_http_fanout_extra_lines[k] * (128 + names);
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
        format = ngx_http_fanout_status_format(&arg);

        if (format == 0) {
            return ngx_http_fanout_send_error(r, NGX_HTTP_BAD_REQUEST,
                                              "bad_format",
                                              "format= is json, prometheus "
                                              "or html");
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
