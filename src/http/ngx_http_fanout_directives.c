/*
 * Directive handlers: fanout_zone, fanout_target, fanout_merge,
 * fanout_quorum, fanout_retry, fanout_hedge and fanout_status.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_batch.h"
#include "ngx_http_fanout_batcher.h"
#include "ngx_http_fanout_call.h"
#include "ngx_http_fanout_conf.h"
#include "ngx_http_fanout_directives.h"
#include "ngx_http_fanout_handler.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_status.h"
#include "fanout_json.h"


char *
ngx_http_fanout_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_main_conf_t *fmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (fmcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small, at least %uz bytes "
                           "are needed", &value[1], 8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    fmcf->shm_zone = ngx_shared_memory_add(cf, &value[1], size,
                                           &ngx_http_fanout_module);
    if (fmcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (fmcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &value[1]);
        return NGX_CONF_ERROR;
    }

    fmcf->shm_zone->init = ngx_http_fanout_stats_init_zone;
    fmcf->shm_zone->data = fmcf;

    return NGX_CONF_OK;
}


char *
ngx_http_fanout_target(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_int_t                        n;
    ngx_str_t                       *value, s;
    ngx_uint_t                       i, loc_index, formatted;
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
    formatted = 0;

    ngx_http_fanout_split_uri(&value[2], &t->uri, &t->args);

    for (i = 3; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "weight=", 7) == 0) {

            n = ngx_atofp(value[i].data + 7, value[i].len - 7, 3);

            if (n == NGX_ERROR || n == 0 || n > 1000000000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid weight \"%V\": use a positive "
                                   "number with at most 3 decimals",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            t->weight = (ngx_uint_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_inflight=", 13) == 0) {
            n = ngx_atoi(value[i].data + 13, value[i].len - 13);
            if (n <= 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            t->max_inflight = (ngx_uint_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "variant=", 8) == 0) {
            t->variant_name.data = value[i].data + 8;
            t->variant_name.len = value[i].len - 8;

            if (ngx_http_fanout_valid_name(&t->variant_name) != NGX_OK) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "fallback=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            if (s.len == 0 || s.data[0] != '/') {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid fallback URI \"%V\": it must be "
                                   "a local URI that begins with \"/\"", &s);
                return NGX_CONF_ERROR;
            }

            ngx_http_fanout_split_uri(&s, &t->fallback, &t->fallback_args);
            continue;
        }

        if (ngx_strcmp(value[i].data, "breaker=off") == 0) {
            t->no_breaker = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "breaker_key=", 12) == 0) {
            t->breaker_name.data = value[i].data + 12;
            t->breaker_name.len = value[i].len - 12;

            if (ngx_http_fanout_valid_name(&t->breaker_name) != NGX_OK) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid breaker_key \"%V\": use 1 to 64 "
                                   "letters, digits, \"_\", \"-\" or \".\"",
                                   &t->breaker_name);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "batch=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (n < 2 || n > 1024) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": inputs a call, from 2 "
                                   "to 1024", &value[i]);
                return NGX_CONF_ERROR;
            }

            t->batch = (ngx_uint_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "batch_wait=", 11) == 0) {
            s.data = value[i].data + 11;
            s.len = value[i].len - 11;

            n = ngx_parse_time(&s, 0);

            if (n == NGX_ERROR || n > 1000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": a time up to 1s",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            t->batch_wait = (ngx_msec_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "batch_format=", 13) == 0) {
            s.data = value[i].data + 13;
            s.len = value[i].len - 13;

            for (n = FANOUT_MB_INSTANCES; n <= FANOUT_MB_ARRAY; n++) {
                if (ngx_strlen(fanout_mb_format_name(n)) == s.len
                    && ngx_strncmp(fanout_mb_format_name(n), s.data, s.len)
                       == 0)
                {
                    break;
                }
            }

            if (n > FANOUT_MB_ARRAY) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": use instances, v2, "
                                   "openai or array", &value[i]);
                return NGX_CONF_ERROR;
            }

            t->batch_format = (ngx_uint_t) n;
            formatted = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {

            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            t->timeout = ngx_parse_time(&s, 0);

            if (t->timeout == (ngx_msec_t) NGX_ERROR || t->timeout == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid timeout \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if ((t->batch_wait != NGX_CONF_UNSET_MSEC || formatted) && !t->batch) {
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
        if (t->batch_wait == NGX_CONF_UNSET_MSEC) {
            t->batch_wait = 2;
        }

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


char *
ngx_http_fanout_merge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    size_t       name_len;
    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_uint_t   i;
    const char  *name;

    if (flcf->merge != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "all") == 0) {
        flcf->merge = FANOUT_MERGE_ALL;

    } else if (ngx_strcmp(value[1].data, "first") == 0) {
        flcf->merge = FANOUT_MERGE_FIRST;

    } else if (ngx_strcmp(value[1].data, "mean") == 0) {
        flcf->merge = FANOUT_MERGE_MEAN;

    } else if (ngx_strcmp(value[1].data, "vote") == 0) {
        flcf->merge = FANOUT_MERGE_VOTE;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown merge mode \"%V\": use \"all\", "
                           "\"first\", \"mean FIELD\" or \"vote FIELD\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (flcf->merge == FANOUT_MERGE_MEAN || flcf->merge == FANOUT_MERGE_VOTE) {

        if (cf->args->nelts < 3
            || ngx_strncmp(value[2].data, "format=", 7) == 0
            || ngx_strncmp(value[2].data, "model=", 6) == 0
            || ngx_strncmp(value[2].data, "output=", 7) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "merge mode \"%V\" needs a FIELD, a dot path "
                               "such as \"output.scores\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        for (i = 3; i < cf->args->nelts; i++) {
            if (ngx_strcmp(value[i].data, "format=v2") == 0) {
                flcf->merge_v2 = 1;
                continue;
            }

            if (ngx_strncmp(value[i].data, "precision=", 10) == 0
                && flcf->merge == FANOUT_MERGE_MEAN)
            {
                if (ngx_strcmp(value[i].data + 10, "fp32") == 0) {
                    flcf->precision = FANOUT_PRECISION_FP32;
                    continue;
                }

                if (ngx_strcmp(value[i].data + 10, "fp64") == 0) {
                    flcf->precision = FANOUT_PRECISION_FP64;
                    continue;
                }

                n = ngx_atoi(value[i].data + 10, value[i].len - 10);

                if (n < 1 || n > 17) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid \"%V\": significant digits "
                                       "from 1 to 17, fp32 or fp64",
                                       &value[i]);
                    return NGX_CONF_ERROR;
                }

                flcf->precision = n;
                continue;
            }

            if (ngx_strncmp(value[i].data, "model=", 6) == 0
                && value[i].len > 6)
            {
                flcf->merge_model.data = value[i].data + 6;
                flcf->merge_model.len = value[i].len - 6;
                continue;
            }

            if (ngx_strncmp(value[i].data, "output=", 7) == 0
                && value[i].len > 7)
            {
                flcf->merge_output.data = value[i].data + 7;
                flcf->merge_output.len = value[i].len - 7;
                continue;
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": use format=v2, "
                               "model=NAME, output=NAME or (mean) "
                               "precision=", &value[i]);
            return NGX_CONF_ERROR;
        }

        if ((flcf->merge_model.len || flcf->merge_output.len)
            && !flcf->merge_v2)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"model=\" and \"output=\" go with "
                               "\"format=v2\"");
            return NGX_CONF_ERROR;
        }

        if (fanout_json_path_check((char *) value[2].data, value[2].len) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid FIELD \"%V\": use a dot path such as "
                               "\"output.scores\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        flcf->field = value[2];

        if (flcf->merge_v2 && flcf->merge_output.len == 0) {
            fanout_merge_output_name((const char *) value[2].data,
                                     value[2].len, &name, &name_len);
            flcf->merge_output.data = (u_char *) name;
            flcf->merge_output.len = name_len;
        }

    } else if (cf->args->nelts != 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "merge mode \"%V\" takes no FIELD", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_fanout_quorum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    char  *rv;

    rv = ngx_conf_set_num_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    /* checked against the number of targets when the location is merged */

    flcf->quorum_file = cf->conf_file->file.name.data;
    flcf->quorum_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


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


/* "NAME=TIME" from skip on, up to 60s, 0 allowed unless nonzero */

static ngx_int_t
ngx_http_fanout_conf_time(ngx_conf_t *cf, ngx_str_t *v, size_t skip,
    ngx_uint_t nonzero, ngx_msec_t *ms)
{
    ngx_int_t  n;
    ngx_str_t  s;

    s.data = v->data + skip;
    s.len = v->len - skip;

    n = ngx_parse_time(&s, 0);

    if (n == NGX_ERROR || n > 60000 || (nonzero && n == 0)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\": a time up to 60s", v);
        return NGX_ERROR;
    }

    *ms = (ngx_msec_t) n;

    return NGX_OK;
}


/* "budget=P%": hundredths of a percent, up to 100% */

static ngx_int_t
ngx_http_fanout_conf_share(ngx_conf_t *cf, ngx_str_t *v, size_t skip,
    ngx_uint_t *share)
{
    ngx_int_t  n;

    n = NGX_ERROR;

    if (v->len > skip + 1 && v->data[v->len - 1] == '%') {
        n = ngx_atofp(v->data + skip, v->len - skip - 1, 2);
    }

    if (n == NGX_ERROR || n > 10000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\": a share of the calls, 0%% to "
                           "100%%", v);
        return NGX_ERROR;
    }

    *share = (ngx_uint_t) n;

    return NGX_OK;
}


/*
 * fanout_retry [attempts=N] [on=error,timeout,5xx,429,bad_json]
 *              [backoff=TIME] [max_backoff=TIME] [budget=P%]
 *              [min_retries=N/s];
 * fanout_retry off;
 */

char *
ngx_http_fanout_retry(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    u_char                        *p, *last;
    ngx_int_t                      n;
    ngx_str_t                     *value, w;
    ngx_uint_t                     i;
    ngx_http_fanout_retry_conf_t  *rc;

    if (flcf->retry != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        flcf->retry = NULL;
        return NGX_CONF_OK;
    }

    rc = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_retry_conf_t));
    if (rc == NULL) {
        return NGX_CONF_ERROR;
    }

    rc->attempts = 2;
    rc->on = FANOUT_RETRY_ERROR | FANOUT_RETRY_TIMEOUT | FANOUT_RETRY_5XX
             | FANOUT_RETRY_429;
    rc->backoff = 25;
    rc->max_backoff = 250;
    rc->budget = 2000;
    rc->min_per_s = 3;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "attempts=", 9) == 0) {
            n = ngx_atoi(value[i].data + 9, value[i].len - 9);

            if (n < 2 || n > NGX_HTTP_FANOUT_MAX_ATTEMPTS) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": attempts in all, the "
                                   "first one too, from 2 to %d", &value[i],
                                   NGX_HTTP_FANOUT_MAX_ATTEMPTS);
                return NGX_CONF_ERROR;
            }

            rc->attempts = (ngx_uint_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "on=", 3) == 0) {
            rc->on = 0;
            p = value[i].data + 3;
            last = value[i].data + value[i].len;

            while (p < last) {
                w.data = p;

                while (p < last && *p != ',') {
                    p++;
                }

                w.len = p - w.data;
                p++;

                if (w.len == 5 && ngx_strncmp(w.data, "error", 5) == 0) {
                    rc->on |= FANOUT_RETRY_ERROR;

                } else if (w.len == 7
                           && ngx_strncmp(w.data, "timeout", 7) == 0)
                {
                    rc->on |= FANOUT_RETRY_TIMEOUT;

                } else if (w.len == 3 && ngx_strncmp(w.data, "5xx", 3) == 0) {
                    rc->on |= FANOUT_RETRY_5XX;

                } else if (w.len == 3 && ngx_strncmp(w.data, "429", 3) == 0) {
                    rc->on |= FANOUT_RETRY_429;

                } else if (w.len == 8
                           && ngx_strncmp(w.data, "bad_json", 8) == 0)
                {
                    rc->on |= FANOUT_RETRY_BAD_JSON;

                } else {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid \"%V\": use error, timeout, "
                                       "5xx, 429 or bad_json, separated by "
                                       "commas", &value[i]);
                    return NGX_CONF_ERROR;
                }
            }

            if (rc->on == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "backoff=", 8) == 0
            || ngx_strncmp(value[i].data, "max_backoff=", 12) == 0)
        {
            if (ngx_http_fanout_conf_time(cf, &value[i],
                                          value[i].data[0] == 'b' ? 8 : 12,
                                          0,
                                          value[i].data[0] == 'b'
                                          ? &rc->backoff : &rc->max_backoff)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "budget=", 7) == 0) {
            if (ngx_http_fanout_conf_share(cf, &value[i], 7, &rc->budget)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "min_retries=", 12) == 0) {
            n = NGX_ERROR;

            if (value[i].len > 14
                && ngx_strncmp(value[i].data + value[i].len - 2, "/s", 2)
                   == 0)
            {
                n = ngx_atoi(value[i].data + 12, value[i].len - 14);
            }

            if (n == NGX_ERROR || n > 100000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": retries a second, as "
                                   "\"min_retries=3/s\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            rc->min_per_s = (ngx_uint_t) n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (rc->backoff > rc->max_backoff) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"backoff=\" is more than \"max_backoff=\"");
        return NGX_CONF_ERROR;
    }

    flcf->retry = rc;

    return NGX_CONF_OK;
}


/*
 * fanout_hedge after=TIME|pN [min=TIME] [max=TIME] [budget=P%]
 *              [max_hedges=N] [to=URI];
 * fanout_hedge off;
 */

char *
ngx_http_fanout_hedge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_int_t                      n;
    ngx_str_t                     *value, s;
    ngx_uint_t                     i, after;
    ngx_http_fanout_hedge_conf_t  *hc;

    if (flcf->hedge != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        flcf->hedge = NULL;
        return NGX_CONF_OK;
    }

    hc = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_hedge_conf_t));
    if (hc == NULL) {
        return NGX_CONF_ERROR;
    }

    hc->min = 10;
    hc->max = 2000;
    hc->budget = 500;
    hc->max_hedges = 1;
    after = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "after=", 6) == 0) {
            after = 1;

            if (value[i].len > 7 && value[i].data[6] == 'p') {
                /* p95, p99.9: a per-mille of the target's recent calls */
                n = ngx_atofp(value[i].data + 7, value[i].len - 7, 1);

                if (n == NGX_ERROR || n < 1 || n > 999) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid \"%V\": a percentile from "
                                       "p0.1 to p99.9", &value[i]);
                    return NGX_CONF_ERROR;
                }

                hc->per_mille = (ngx_uint_t) n;
                continue;
            }

            s.data = value[i].data + 6;
            s.len = value[i].len - 6;
            n = ngx_parse_time(&s, 0);

            if (n == NGX_ERROR || n == 0 || n > 60000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": a time up to 60s, or a "
                                   "percentile (\"after=p95\")", &value[i]);
                return NGX_CONF_ERROR;
            }

            hc->after = (ngx_msec_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "min=", 4) == 0
            || ngx_strncmp(value[i].data, "max=", 4) == 0)
        {
            if (ngx_http_fanout_conf_time(cf, &value[i], 4, 1,
                                          value[i].data[1] == 'i'
                                          ? &hc->min : &hc->max)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "budget=", 7) == 0) {
            if (ngx_http_fanout_conf_share(cf, &value[i], 7, &hc->budget)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_hedges=", 11) == 0) {
            n = ngx_atoi(value[i].data + 11, value[i].len - 11);

            if (n < 1 || n > NGX_HTTP_FANOUT_MAX_ATTEMPTS - 1) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": from 1 to %d",
                                   &value[i], NGX_HTTP_FANOUT_MAX_ATTEMPTS - 1);
                return NGX_CONF_ERROR;
            }

            hc->max_hedges = (ngx_uint_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "to=", 3) == 0) {
            s.data = value[i].data + 3;
            s.len = value[i].len - 3;

            if (s.len == 0 || s.data[0] != '/') {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": a local URI, as "
                                   "\"to=/_m/replica\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            ngx_http_fanout_split_uri(&s, &hc->to, &hc->to_args);
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (!after) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fanout_hedge\" needs \"after=\"");
        return NGX_CONF_ERROR;
    }

    if (hc->min > hc->max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"min=\" is more than \"max=\"");
        return NGX_CONF_ERROR;
    }

    flcf->hedge = hc;

    return NGX_CONF_OK;
}


/* "NAME=N" from skip on, from 1 to max */

static ngx_int_t
ngx_http_fanout_conf_count(ngx_conf_t *cf, ngx_str_t *v, size_t skip,
    ngx_uint_t max, ngx_uint_t *count)
{
    ngx_int_t  n;

    n = ngx_atoi(v->data + skip, v->len - skip);

    if (n == NGX_ERROR || n < 1 || (ngx_uint_t) n > max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\": a number from 1 to %ui", v, max);
        return NGX_ERROR;
    }

    *count = (ngx_uint_t) n;

    return NGX_OK;
}


/*
 * fanout_batch FIELD [max_items=N] [chunk=N] [concurrency=N];
 * fanout_batch off;
 */

char *
ngx_http_fanout_batch(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_str_t                     *value;
    ngx_uint_t                     i;
    ngx_http_fanout_batch_conf_t  *bc;

    if (flcf->batch != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        flcf->batch = NULL;
        return NGX_CONF_OK;
    }

    /* a dot path; the client is told it in JSON: no quote, no backslash */
    if (fanout_json_path_check((char *) value[1].data, value[1].len) != 0
        || ngx_strlchr(value[1].data, value[1].data + value[1].len, '"')
        || ngx_strlchr(value[1].data, value[1].data + value[1].len, '\\'))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid FIELD \"%V\": use a dot path such as "
                           "\"instances\" or \"inputs.0.data\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    bc = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_batch_conf_t));
    if (bc == NULL) {
        return NGX_CONF_ERROR;
    }

    bc->field = value[1];
    bc->max_items = 256;
    bc->file = cf->conf_file->file.name.data;
    bc->line = cf->conf_file->line;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max_items=", 10) == 0) {
            if (ngx_http_fanout_conf_count(cf, &value[i], 10,
                                           FANOUT_BATCH_MAX_ITEMS,
                                           &bc->max_items)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "chunk=", 6) == 0) {
            if (ngx_http_fanout_conf_count(cf, &value[i], 6,
                                           FANOUT_BATCH_MAX_ITEMS, &bc->chunk)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "concurrency=", 12) == 0) {
            if (ngx_http_fanout_conf_count(cf, &value[i], 12,
                                           FANOUT_BATCH_MAX_CALLS,
                                           &bc->concurrency)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    flcf->batch = bc;

    return NGX_CONF_OK;
}
