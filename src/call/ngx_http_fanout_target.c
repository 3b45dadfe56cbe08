/*
 * fanout_target: a model the location calls, its parameters read over
 * the parameter table (ngx_http_fanout_conf.c), its counters' nodes and
 * its batcher set up.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_admission.h"
#include "ngx_http_fanout_batcher.h"
#include "ngx_http_fanout_conf.h"
#include "ngx_http_fanout_handler.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_target.h"
#include "ngx_http_fanout_body.h"
#include "fanout_microbatch.h"


static const char *const  ngx_http_fanout_target_onoff[] = {
    "on", "off", NULL
};


/*
 * max_inflight=N, or auto[:MIN:MAX]: a limit learned from the model's
 * latency, from MIN (1) to MAX (1000)
 */

static char *
ngx_http_fanout_target_inflight(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_target_t *t = conf;

    u_char     *p, *colon, *end;
    ngx_int_t   n, min, max;

    end = v->data + v->len;

    if (v->len < 4 || ngx_strncmp(v->data, "auto", 4) != 0) {
        n = ngx_atoi(v->data, v->len);

        if (n < 1 || n > 1000000) {
            return "a number from 1 to 1000000, \"auto\" or \"auto:MIN:MAX\"";
        }

        t->max_inflight = (ngx_uint_t) n;
        return NGX_CONF_OK;
    }

    min = 1;
    max = 1000;

    if (v->len > 4) {
        p = v->data + 4;
        colon = (p + 1 < end) ? ngx_strlchr(p + 1, end, ':') : NULL;

        if (*p != ':' || colon == NULL) {
            return "\"auto:MIN:MAX\", as \"auto:4:256\"";
        }

        min = ngx_atoi(p + 1, colon - p - 1);
        max = ngx_atoi(colon + 1, end - colon - 1);

        if (min < 1 || max < min || max > 1000000) {
            return "\"auto:MIN:MAX\" with 1 <= MIN <= MAX <= 1000000";
        }
    }

    t->inflight_auto = 1;
    t->min_inflight = (ngx_uint_t) min;
    t->max_inflight = (ngx_uint_t) max;

    return NGX_CONF_OK;
}


/* set=PATH:JSON, repeatable: the target's own body (call/body.c) */

static char *
ngx_http_fanout_target_set(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_target_t *t = conf;

    return ngx_http_fanout_body_set(cf, v, &t->sets);
}


static const ngx_http_fanout_param_t  ngx_http_fanout_target_params[] = {

    ngx_http_fanout_param("weight", FIXED, ngx_http_fanout_target_t, weight,
                          1, 1000000000, NULL),
    ngx_http_fanout_param("timeout", MSEC, ngx_http_fanout_target_t, timeout,
                          1, NGX_MAX_INT_T_VALUE, NULL),
    ngx_http_fanout_param_custom("max_inflight",
                                 ngx_http_fanout_target_inflight),
    ngx_http_fanout_param("queue", COUNT, ngx_http_fanout_target_t, queue,
                          1, 65536, NULL),
    ngx_http_fanout_param("queue_timeout", MSEC, ngx_http_fanout_target_t,
                          queue_timeout, 1, NGX_MAX_INT32_VALUE, NULL),
    ngx_http_fanout_param("priority", COMPLEX, ngx_http_fanout_target_t,
                          priority, 0, 0, NULL),
    ngx_http_fanout_param("fair", COMPLEX, ngx_http_fanout_target_t, fair,
                          0, 0, NULL),
    ngx_http_fanout_param("variant", NAME, ngx_http_fanout_target_t,
                          variant_name, 0, 0, NULL),
    ngx_http_fanout_param("fallback", URI, ngx_http_fanout_target_t,
                          fallback, 0, 0, NULL),
    /* breaker=off: the index of "off" */
    ngx_http_fanout_param("breaker", WORD, ngx_http_fanout_target_t,
                          no_breaker, 0, 1, ngx_http_fanout_target_onoff),
    ngx_http_fanout_param("breaker_key", NAME, ngx_http_fanout_target_t,
                          breaker_name, 0, 0, NULL),
    ngx_http_fanout_param("batch", COUNT, ngx_http_fanout_target_t, batch,
                          2, 1024, NULL),
    ngx_http_fanout_param("batch_wait", MSEC, ngx_http_fanout_target_t,
                          batch_wait, 0, 1000, NULL),
    ngx_http_fanout_param("batch_format", WORD, ngx_http_fanout_target_t,
                          batch_format, 0, FANOUT_MB_ARRAY,
                          fanout_mb_formats),
    ngx_http_fanout_param_repeat("set", ngx_http_fanout_target_set),
    ngx_http_fanout_param_null
};


char *
ngx_http_fanout_target(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_str_t                       *value, s;
    ngx_uint_t                       i, loc_index;
    ngx_http_fanout_target_t        *t, *targets;
    ngx_http_core_loc_conf_t        *clcf;
    ngx_http_fanout_stats_loc_t     *sloc;
    ngx_http_fanout_main_conf_t     *fmcf;
    ngx_http_fanout_stats_target_t  *stgt;

    value = cf->args->elts;
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);

    if (flcf->targets == NULL) {
        if (clcf->handler != NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"fanout_target\" cannot be combined with "
                               "another content handler in one location");
            return NGX_CONF_ERROR;
        }

        flcf->targets = ngx_array_create(cf->pool, 4,
                                         sizeof(ngx_http_fanout_target_t));
        if (flcf->targets == NULL) {
            return NGX_CONF_ERROR;
        }

        flcf->location = clcf->name;
        clcf->handler = ngx_http_fanout_handler;

        if (fmcf->target_file == NULL) {
            fmcf->target_file = cf->conf_file->file.name.data;
            fmcf->target_line = cf->conf_file->line;
        }
    }

    if (flcf->targets->nelts == NGX_HTTP_FANOUT_MAX_TARGETS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many targets, at most %d in a location",
                           NGX_HTTP_FANOUT_MAX_TARGETS);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_fanout_valid_name(&value[1]) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid target name \"%V\": use 1 to 64 letters, "
                           "digits, \"_\", \"-\" or \".\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    targets = flcf->targets->elts;

    for (i = 0; i < flcf->targets->nelts; i++) {
        if (targets[i].name.len == value[1].len
            && ngx_strncmp(targets[i].name.data, value[1].data, value[1].len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate target name \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (value[2].len == 0 || value[2].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid target URI \"%V\": it must be a local "
                           "URI that begins with \"/\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    t = ngx_array_push(flcf->targets);
    if (t == NULL) {
        return NGX_CONF_ERROR;
    }

    /* ngx_array_push() does not zero: flags must start cleared */
    ngx_memzero(t, sizeof(ngx_http_fanout_target_t));

    t->name = value[1];
    t->weight = NGX_HTTP_FANOUT_WEIGHT_ONE;
    t->timeout = NGX_CONF_UNSET_MSEC;
    t->batch_wait = NGX_CONF_UNSET_MSEC;
    t->batch_format = NGX_CONF_UNSET_UINT;
    t->queue_timeout = NGX_CONF_UNSET_MSEC;

    ngx_http_fanout_split_uri(&value[2], &t->uri, &t->args);

    if (ngx_http_fanout_conf_params(cf, 3, ngx_http_fanout_target_params, t)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (t->fallback.len) {
        s = t->fallback;
        ngx_http_fanout_split_uri(&s, &t->fallback, &t->fallback_args);
    }

    if (ngx_http_fanout_body_sets_check(cf, t->sets) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (t->sets) {
        flcf->bodies = 1;
    }

    if ((t->batch_wait != NGX_CONF_UNSET_MSEC
         || t->batch_format != NGX_CONF_UNSET_UINT)
        && !t->batch)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"batch_wait=\" and \"batch_format=\" need "
                           "\"batch=N\" (target \"%V\")", &t->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_fanout_stats_register(cf, fmcf, &flcf->location, &t->name,
                                       &loc_index, &t->stats)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    flcf->stats = loc_index;

    /* two server blocks' targets of one name share a node: the larger cap */
    sloc = fmcf->locations.elts;
    stgt = sloc[loc_index].targets.elts;

    if (t->max_inflight > stgt[t->stats].max_inflight) {
        stgt[t->stats].max_inflight = t->max_inflight;
    }

    if (t->inflight_auto) {
        stgt[t->stats].inflight_auto = 1;
        stgt[t->stats].min_inflight = t->min_inflight;
    }

    if (t->queue_timeout != NGX_CONF_UNSET_MSEC && t->queue == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"queue_timeout=\" needs \"queue=\" (target "
                           "\"%V\")", &t->name);
        return NGX_CONF_ERROR;
    }

    if ((t->priority || t->fair) && t->queue == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"priority=\" and \"fair=\" need \"queue=\" "
                           "(target \"%V\")", &t->name);
        return NGX_CONF_ERROR;
    }

    if (t->queue > stgt[t->stats].queue) {
        stgt[t->stats].queue = t->queue;
    }

    if (ngx_http_fanout_admission_conf(cf, t) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* breaker_key=: the breaker's state in a node of its own, by name */
    if (t->breaker_name.len && stgt[t->stats].bkey.len == 0) {
        stgt[t->stats].bkey.len = t->breaker_name.len + 1;
        stgt[t->stats].bkey.data = ngx_pnalloc(cf->pool,
                                               stgt[t->stats].bkey.len);
        if (stgt[t->stats].bkey.data == NULL) {
            return NGX_CONF_ERROR;
        }

        stgt[t->stats].bkey.data[0] = '\5';
        ngx_memcpy(stgt[t->stats].bkey.data + 1, t->breaker_name.data,
                   t->breaker_name.len);
    }

    if (t->batch) {
        ngx_conf_init_msec_value(t->batch_wait, 2);
        ngx_conf_init_uint_value(t->batch_format, FANOUT_MB_INSTANCES);

        if (ngx_http_fanout_stats_register_extra(cf, fmcf, &flcf->location,
                                                 &t->name,
                                                 NGX_HTTP_FANOUT_STATS_BATCH,
                                                 &loc_index, &t->batch_stats)
            != NGX_OK
            || ngx_http_fanout_batcher_init(cf, t) != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}
