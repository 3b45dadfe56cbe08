/*
 * The runtime state as fanout_api's GET, the status's "runtime" and
 * Prometheus show it: splits (as configured or as set), ramps with their
 * step and the fleet's counts, shadows' percents, breakers forced,
 * targets taken out.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_runtime.h"
#include "ngx_http_fanout_runtime_status.h"
#include "ngx_http_fanout_stats.h"


/* the runtime state, as fanout_api's GET shows it */

size_t
ngx_http_fanout_runtime_json_size(ngx_http_fanout_main_conf_t *fmcf)
{
    size_t                           size;
    ngx_uint_t                       i;
    ngx_http_fanout_stats_loc_t     *loc;

    size = 64;
    loc = fmcf->locations.elts;

    for (i = 0; i < fmcf->locations.nelts; i++) {
        /* and Prometheus repeats the location's name on each line */
        size += 768 + 6 * loc[i].name.len
                + (160 + 2 * loc[i].name.len)
                  * (loc[i].variants.nelts + loc[i].targets.nelts
                     + loc[i].shadows.nelts + 2);
    }

    return size;
}


u_char *
ngx_http_fanout_runtime_json(u_char *p, ngx_http_fanout_main_conf_t *fmcf)
{
    uint64_t                         now;
    ngx_str_t                        name;
    ngx_uint_t                       i, j, active, n, ramp;
    fanout_split_t                  *split;
    ngx_http_fanout_runtime_t       *rt;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_stats_target_t  *t;

    now = ngx_http_fanout_rt_wall();
    loc = fmcf->locations.elts;

    p = ngx_sprintf(p, "\"fleet_version\":%uA,\"locations\":{",
                    fmcf->sh->runtime_version);

    for (n = 0, i = 0; i < fmcf->locations.nelts; i++) {
        if (loc[i].node == NULL || loc[i].targets.nelts == 0) {
            continue;
        }

        ngx_http_fanout_rt_ramp_sync(fmcf, &loc[i]);
        rt = &loc[i].node->rt;

        p = ngx_sprintf(p, "%s\"", n++ ? "," : "");
        p = ngx_http_fanout_escape_json(p, &loc[i].name);
        p = ngx_sprintf(p, "\":{");

        if (loc[i].split) {
            active = rt->active && rt->base == loc[i].split_fp;
            ramp = loc[i].ramp && rt->ramp_fp == loc[i].ramp_fp
                   && rt->ramp_state != NGX_HTTP_FANOUT_RAMP_NONE;
            split = active ? &rt->split : loc[i].split;
            t = loc[i].variants.elts;

            p = ngx_sprintf(p, "\"split\":{\"source\":\"%s\",\"weights\":{",
                            ramp && active ? "ramp"
                            : active ? "api" : "config");

            for (j = 0; j < loc[i].variants.nelts; j++) {
                p = ngx_sprintf(p, "%s\"", j ? "," : "");
                p = ngx_http_fanout_escape_json(p,
                        ngx_http_fanout_stats_extra_name(&name, &t[j]));
                p = ngx_sprintf(p, "\":%uD.%02uD", split->share[j] / 100,
                                split->share[j] % 100);
            }

            p = ngx_sprintf(p, "}");

            if (loc[i].ramp) {
                p = ngx_sprintf(p, ",\"ramp\":{\"candidate\":\"");
                p = ngx_http_fanout_escape_json(p,
                        ngx_http_fanout_stats_extra_name(&name,
                                                      &t[loc[i].candidate]));
                p = ngx_sprintf(p, "\",\"state\":\"%s\",\"step\":%ui,"
                                "\"steps\":%uz,\"share\":%uD.%02uD,"
                                "\"step_age_ms\":%uL,\"every_ms\":%uL,"
                                "\"requests\":%uL,\"errors\":%uL,"
                                "\"slow\":%uL,\"slow_first\":%uL",
                                ngx_http_fanout_rt_ramp_name(
                                    ramp ? rt->ramp_state : 0),
                                ramp ? rt->ramp_step + 1 : 0,
                                loc[i].ramp->nsteps,
                                split->share[loc[i].candidate] / 100,
                                split->share[loc[i].candidate] % 100,
                                ramp && now > rt->ramp_at
                                ? now - rt->ramp_at : 0,
                                loc[i].ramp->every,
                                rt->ramp_counts.requests,
                                rt->ramp_counts.errors, rt->ramp_counts.slow,
                                rt->ramp_counts.slow_first);

                if (ramp && rt->ramp_state == NGX_HTTP_FANOUT_RAMP_ROLLED_BACK)
                {
                    p = ngx_sprintf(p, ",\"reason\":\"%s\"",
                                    rt->ramp_why == FANOUT_RAMP_ROLLBACK_ERRORS
                                    ? "error_rate"
                                    : rt->ramp_why == FANOUT_RAMP_ROLLBACK_P99
                                    ? "p99"
                                    : rt->ramp_why == FANOUT_RAMP_ROLLBACK_TTFT
                                    ? "ttft_p99" : "api");
                }

                p = ngx_sprintf(p, "}");
            }

            p = ngx_sprintf(p, "},");
        }

        if (rt->purged) {
            /* fanout_api's last purge of the location's cache (wall ms) */
            p = ngx_sprintf(p, "\"purged_ms\":%uA,", rt->purged);
        }

        p = ngx_sprintf(p, "\"targets\":{");
        t = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            p = ngx_sprintf(p, "%s\"", j ? "," : "");
            p = ngx_http_fanout_escape_json(p, &t[j].name);
            p = ngx_sprintf(p, "\":{\"enabled\":%s,\"breaker\":\"%s\"",
                            t[j].node->rt.disabled ? "false" : "true",
                            t[j].bnode->rt.forced == 1 ? "open"
                            : t[j].bnode->rt.forced == 2 ? "closed"
                                                         : "auto");

            if (t[j].node->rt.purged) {
                p = ngx_sprintf(p, ",\"purged_ms\":%uA",
                                t[j].node->rt.purged);
            }

            *p++ = '}';
        }

        p = ngx_sprintf(p, "}");

        if (loc[i].shadows.nelts) {
            p = ngx_sprintf(p, ",\"shadows\":{");
            t = loc[i].shadows.elts;

            for (j = 0; j < loc[i].shadows.nelts; j++) {
                p = ngx_sprintf(p, "%s\"", j ? "," : "");
                p = ngx_http_fanout_escape_json(p,
                        ngx_http_fanout_stats_extra_name(&name, &t[j]));

                if (t[j].node->rt.percent) {
                    p = ngx_sprintf(p, "\":{\"percent\":%uA.%02uA}",
                                    (t[j].node->rt.percent - 1) / 100,
                                    (t[j].node->rt.percent - 1) % 100);
                } else {
                    p = ngx_sprintf(p, "\":{\"percent\":\"config\"}");
                }
            }

            p = ngx_sprintf(p, "}");
        }

        p = ngx_sprintf(p, "}");
    }

    return ngx_sprintf(p, "}");
}


/* Prometheus: each variant's share in use, each ramp's step and state */

u_char *
ngx_http_fanout_runtime_prometheus(u_char *p,
    ngx_http_fanout_main_conf_t *fmcf)
{
    ngx_str_t                        name;
    ngx_uint_t                       i, j, active, ramp, pass;
    fanout_split_t                  *split;
    ngx_http_fanout_runtime_t       *rt;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_stats_target_t  *t;

    loc = fmcf->locations.elts;

    p = ngx_sprintf(p,
        "# HELP fanout_runtime_version The fleet's runtime state version "
        "applied here (fanout_api, ramps; 0 without Redis).\n"
        "# TYPE fanout_runtime_version gauge\n"
        "fanout_runtime_version %uA\n"
        "# HELP fanout_variant_share_ratio The share of a fanout_split "
        "variant in use, 0 to 1: configured, set by fanout_api or by a "
        "ramp.\n"
        "# TYPE fanout_variant_share_ratio gauge\n",
        fmcf->sh->runtime_version);

    for (pass = 0; pass < 3; pass++) {
        if (pass == 1) {
            p = ngx_sprintf(p,
                "# HELP fanout_ramp_step A ramp's step (1 to its steps; 0: "
                "not begun).\n"
                "# TYPE fanout_ramp_step gauge\n");

        } else if (pass == 2) {
            p = ngx_sprintf(p,
                "# HELP fanout_ramp_rolled_back 1 once a ramp rolled its "
                "candidate back to 0%%.\n"
                "# TYPE fanout_ramp_rolled_back gauge\n");
        }

        for (i = 0; i < fmcf->locations.nelts; i++) {
            ngx_http_fanout_rt_ramp_sync(fmcf, &loc[i]);

            if (loc[i].split == NULL || loc[i].node == NULL
                || (pass && loc[i].ramp == NULL))
            {
                continue;
            }

            rt = &loc[i].node->rt;
            ramp = loc[i].ramp && rt->ramp_fp == loc[i].ramp_fp
                   && rt->ramp_state != NGX_HTTP_FANOUT_RAMP_NONE;

            if (pass) {
                p = ngx_sprintf(p, "%s{location=\"",
                                pass == 1 ? "fanout_ramp_step"
                                          : "fanout_ramp_rolled_back");
                p = ngx_http_fanout_escape_label(p, &loc[i].name);
                p = ngx_sprintf(p, "\"} %ui\n",
                                pass == 1 ? (ramp ? rt->ramp_step + 1 : 0)
                                : (ramp && rt->ramp_state
                                           == NGX_HTTP_FANOUT_RAMP_ROLLED_BACK));
                continue;
            }

            active = rt->active && rt->base == loc[i].split_fp;
            split = active ? &rt->split : loc[i].split;
            t = loc[i].variants.elts;

            for (j = 0; j < loc[i].variants.nelts; j++) {
                p = ngx_sprintf(p, "fanout_variant_share_ratio{location=\"");
                p = ngx_http_fanout_escape_label(p, &loc[i].name);
                p = ngx_sprintf(p, "\",variant=\"");
                p = ngx_http_fanout_escape_label(p,
                        ngx_http_fanout_stats_extra_name(&name, &t[j]));
                p = ngx_sprintf(p, "\"} %uD.%04uD\n",
                                split->share[j] / FANOUT_SPLIT_WHOLE,
                                split->share[j] % FANOUT_SPLIT_WHOLE);
            }
        }
    }

    return p;
}
