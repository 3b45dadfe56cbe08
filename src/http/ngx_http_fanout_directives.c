/*
 * The fan-out's own directives: fanout_target, fanout_merge and
 * fanout_quorum.  Every other directive is parsed by its subsystem.
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
#include "fanout_number.h"


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
