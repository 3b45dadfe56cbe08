/*
 * ngx_http_fanout_module: module tables, configuration structures and
 * their merge-time checks.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_admission.h"
#include "ngx_http_fanout_answer.h"
#include "ngx_http_fanout_api.h"
#include "ngx_http_fanout_batch.h"
#include "ngx_http_fanout_breaker.h"
#include "ngx_http_fanout_cache.h"
#include "ngx_http_fanout_cache_conf.h"
#include "ngx_http_fanout_call.h"
#include "ngx_http_fanout_calllog.h"
#include "ngx_http_fanout_capture.h"
#include "ngx_http_fanout_handler.h"
#include "ngx_http_fanout_health.h"
#include "ngx_http_fanout_limit.h"
#include "ngx_http_fanout_pipeline.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_redis_conf.h"
#include "ngx_http_fanout_response.h"
#include "ngx_http_fanout_runtime.h"
#include "ngx_http_fanout_shadow.h"
#include "ngx_http_fanout_split.h"
#include "ngx_http_fanout_target.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_trace.h"
#include "ngx_http_fanout_variables.h"
#include "ngx_http_fanout_status.h"
#include "fanout_cache_key.h"


static ngx_int_t ngx_http_fanout_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_fanout_init_process(ngx_cycle_t *cycle);
static void *ngx_http_fanout_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_fanout_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_fanout_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_fanout_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_fanout_server_id(ngx_conf_t *cf,
    ngx_http_fanout_loc_conf_t *flcf);


static ngx_conf_num_bounds_t  ngx_http_fanout_quorum_bounds = {
    ngx_conf_check_num_bounds, 1, NGX_HTTP_FANOUT_MAX_TARGETS
};


static ngx_conf_enum_t  ngx_http_fanout_request_ids[] = {
    { ngx_string("off"), NGX_HTTP_FANOUT_RID_OFF },
    { ngx_string("on"), NGX_HTTP_FANOUT_RID_ON },
    { ngx_string("trust"), NGX_HTTP_FANOUT_RID_TRUST },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_fanout_commands[] = {

    { ngx_string("fanout_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_fanout_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_target"),
      NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_fanout_target,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_merge"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_fanout_merge,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_quorum"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_fanout_quorum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanout_loc_conf_t, quorum),
      &ngx_http_fanout_quorum_bounds },

    { ngx_string("fanout_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanout_loc_conf_t, timeout),
      NULL },

    { ngx_string("fanout_split"),
      NGX_HTTP_LOC_CONF|NGX_CONF_BLOCK|NGX_CONF_1MORE,
      ngx_http_fanout_split,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_shadow"),
      NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_fanout_shadow,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_fanout_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_fanout_cache,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_cache_bypass"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_set_predicate_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanout_loc_conf_t, cache_bypass),
      NULL },

    { ngx_string("fanout_cache_purge"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_set_predicate_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanout_loc_conf_t, cache_purge),
      NULL },

    { ngx_string("fanout_limit"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_fanout_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_retry"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_ANY,
      ngx_http_fanout_retry,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_hedge"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_fanout_hedge,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_deadline_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_fanout_deadline_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_batch"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_fanout_batch,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_breaker"),
      NGX_HTTP_LOC_CONF|NGX_CONF_ANY,
      ngx_http_fanout_breaker,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_call_log"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_fanout_call_log,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_trace"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanout_loc_conf_t, trace),
      NULL },

    { ngx_string("fanout_request_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanout_loc_conf_t, request_id),
      &ngx_http_fanout_request_ids },

    { ngx_string("fanout_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_ANY,
      ngx_http_fanout_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_fanout_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanout_drain_on_quit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_fanout_main_conf_t, drain_on_quit),
      NULL },

    { ngx_string("fanout_instance"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_fanout_main_conf_t, instance),
      NULL },

    { ngx_string("fanout_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_fanout_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_fanout_module_ctx = {
    ngx_http_fanout_add_variables,         /* preconfiguration */
    ngx_http_fanout_postconfiguration,     /* postconfiguration */

    ngx_http_fanout_create_main_conf,      /* create main configuration */
    ngx_http_fanout_init_main_conf,        /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_fanout_create_loc_conf,       /* create location configuration */
    ngx_http_fanout_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_fanout_module = {
    NGX_MODULE_V1,
    &ngx_http_fanout_module_ctx,           /* module context */
    ngx_http_fanout_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_fanout_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_fanout_redis_exit_process,    /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_fanout_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_fanout_main_conf_t  *fmcf;

    fmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_main_conf_t));
    if (fmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     fmcf->shm_zone = NULL;
     *     fmcf->target_file = NULL;
     *     fmcf->status_file = NULL;
     *     fmcf->cache_file = NULL;
     *     fmcf->redis = NULL;
     *     fmcf->redis_stats = NULL;
     *     fmcf->zone_inits = NULL;
     *     fmcf->instance = { 0, NULL };
     */

    fmcf->drain_on_quit = NGX_CONF_UNSET_MSEC;

    if (ngx_array_init(&fmcf->locations, cf->pool, 4,
                       sizeof(ngx_http_fanout_stats_loc_t))
        != NGX_OK)
    {
        return NULL;
    }

    return fmcf;
}


static char *
ngx_http_fanout_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_fanout_main_conf_t *fmcf = conf;

    static ngx_str_t  request_id = ngx_string("request_id");

    ngx_conf_init_msec_value(fmcf->drain_on_quit, 0);

    if (fmcf->drain_on_quit && fmcf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fanout_drain_on_quit\" needs a \"fanout_zone\" "
                           "in the http block");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_fanout_health_init_conf(cf, fmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* the status and the metrics name the instance: the host's name */
    if (fmcf->instance.data == NULL) {
        fmcf->instance = cf->cycle->hostname;
    }

    /* after preconfiguration, which makes the variables */
    fmcf->request_id = ngx_http_get_variable_index(cf, &request_id);
    if (fmcf->request_id == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    /* the zone may be declared after the locations that need it */

    if (fmcf->target_file && fmcf->shm_zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"fanout_target\" needs a \"fanout_zone\" in the "
                      "http block in %s:%ui",
                      fmcf->target_file, fmcf->target_line);
        return NGX_CONF_ERROR;
    }

    if (fmcf->cache_file && fmcf->redis == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"fanout_cache\" needs a \"fanout_redis\" in the "
                      "http block in %s:%ui",
                      fmcf->cache_file, fmcf->cache_line);
        return NGX_CONF_ERROR;
    }

    if (fmcf->cluster_file && fmcf->redis == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"scope=cluster\" needs a \"fanout_redis\" in the "
                      "http block in %s:%ui",
                      fmcf->cluster_file, fmcf->cluster_line);
        return NGX_CONF_ERROR;
    }

    if (fmcf->sample_file && fmcf->redis == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"sample=redis\" needs a \"fanout_redis\" in the "
                      "http block in %s:%ui",
                      fmcf->sample_file, fmcf->sample_line);
        return NGX_CONF_ERROR;
    }

    if (fmcf->api_file && fmcf->shm_zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"fanout_api\" needs a \"fanout_zone\" in the "
                      "http block in %s:%ui",
                      fmcf->api_file, fmcf->api_line);
        return NGX_CONF_ERROR;
    }

    if (fmcf->status_file && fmcf->shm_zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"fanout_status\" needs a \"fanout_zone\" in the "
                      "http block in %s:%ui",
                      fmcf->status_file, fmcf->status_line);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_fanout_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_fanout_loc_conf_t  *flcf;

    flcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_loc_conf_t));
    if (flcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     flcf->targets = NULL;
     *     flcf->field = { 0, NULL };
     *     flcf->quorum_file = NULL;
     *     flcf->location = { 0, NULL };
     *     flcf->status_format = 0;
     */

    flcf->merge = NGX_CONF_UNSET_UINT;
    flcf->quorum = NGX_CONF_UNSET_UINT;
    flcf->trace = NGX_CONF_UNSET;
    flcf->call_log = NGX_CONF_UNSET_PTR;
    flcf->request_id = NGX_CONF_UNSET_UINT;
    flcf->timeout = NGX_CONF_UNSET_MSEC;
    flcf->cache = NGX_CONF_UNSET_PTR;
    flcf->retry = NGX_CONF_UNSET_PTR;
    flcf->hedge = NGX_CONF_UNSET_PTR;
    flcf->deadline = NGX_CONF_UNSET_PTR;
    flcf->batch = NGX_CONF_UNSET_PTR;
    flcf->cache_bypass = NGX_CONF_UNSET_PTR;
    flcf->cache_purge = NGX_CONF_UNSET_PTR;

    return flcf;
}


static char *
ngx_http_fanout_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_fanout_loc_conf_t *prev = parent;
    ngx_http_fanout_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_fanout_stats_loc_t  *sloc;
    ngx_http_fanout_main_conf_t  *fmcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (conf->merge == NGX_CONF_UNSET_UINT) {
        conf->merge = (prev->merge == NGX_CONF_UNSET_UINT)
                      ? FANOUT_MERGE_ALL : prev->merge;
        conf->field = prev->field;
        conf->merge_v2 = prev->merge_v2;
        conf->precision = prev->precision;
        conf->merge_model = prev->merge_model;
        conf->merge_output = prev->merge_output;
    }

    if (conf->merge_v2 && conf->merge_model.len == 0) {
        /* the location's name, without its first "/" */
        conf->merge_model = clcf->name;

        if (conf->merge_model.len && conf->merge_model.data[0] == '/') {
            conf->merge_model.data++;
            conf->merge_model.len--;
        }

        if (conf->merge_model.len == 0) {
            ngx_str_set(&conf->merge_model, "fanout");
        }
    }

    if (conf->quorum == NGX_CONF_UNSET_UINT) {
        conf->quorum = (prev->quorum == NGX_CONF_UNSET_UINT)
                       ? 1 : prev->quorum;
        conf->quorum_file = prev->quorum_file;
        conf->quorum_line = prev->quorum_line;
    }

    ngx_conf_merge_msec_value(conf->timeout, prev->timeout, 60000);
    ngx_conf_merge_value(conf->trace, prev->trace, 1);
    ngx_conf_merge_ptr_value(conf->call_log, prev->call_log, NULL);
    ngx_conf_merge_uint_value(conf->request_id, prev->request_id,
                              NGX_HTTP_FANOUT_RID_ON);
    ngx_conf_merge_ptr_value(conf->cache, prev->cache, NULL);
    ngx_conf_merge_ptr_value(conf->retry, prev->retry, NULL);
    ngx_conf_merge_ptr_value(conf->hedge, prev->hedge, NULL);
    ngx_conf_merge_ptr_value(conf->deadline, prev->deadline, NULL);
    ngx_conf_merge_ptr_value(conf->batch, prev->batch, NULL);
    ngx_conf_merge_ptr_value(conf->cache_bypass, prev->cache_bypass, NULL);
    ngx_conf_merge_ptr_value(conf->cache_purge, prev->cache_purge, NULL);

    /* targets belong to their own location: they are not inherited */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (conf->targets && clcf->handler != ngx_http_fanout_handler) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"fanout_target\" cannot be combined with another "
                      "content handler (\"proxy_pass\" or similar) in "
                      "location \"%V\"", &conf->location);
        return NGX_CONF_ERROR;
    }

    /* fanout_health reads these per location name */
    if (conf->targets) {
        fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);
        sloc = fmcf->locations.elts;
        sloc = &sloc[conf->stats];

        if (conf->quorum > sloc->quorum) {
            sloc->quorum = conf->quorum;
        }

        sloc->needs_redis |= conf->needs_redis;
        sloc->breaker |= (conf->breaker != NULL);
        sloc->cache |= (conf->cache != NULL);
    }

    if (conf->batch && conf->targets == NULL) {
        if (conf->batch != prev->batch) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"fanout_batch\" works only in a location with "
                          "\"fanout_target\" (location \"%V\") in %s:%ui",
                          &clcf->name, conf->batch->file, conf->batch->line);
            return NGX_CONF_ERROR;
        }

        /* inherited by a location without targets: nothing to batch */
        conf->batch = NULL;
    }

    if (conf->batch && conf->targets
        && (conf->batch->chunk ? (conf->batch->max_items
                                  + conf->batch->chunk - 1)
                                 / conf->batch->chunk
                               : conf->batch->max_items)
           * conf->targets->nelts > FANOUT_BATCH_MAX_CALLS)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"fanout_batch\" max_items=%ui with %ui targets "
                      "makes more than %d calls a request (location \"%V\") "
                      "in %s:%ui", conf->batch->max_items,
                      conf->targets->nelts, FANOUT_BATCH_MAX_CALLS,
                      &clcf->name, conf->batch->file, conf->batch->line);
        return NGX_CONF_ERROR;
    }

    if (conf->batch && conf->shadows) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"fanout_batch\" cannot be combined with "
                      "\"fanout_shadow\" (location \"%V\"): a shadow "
                      "would compare the whole batch with one item, in "
                      "%s:%ui", &clcf->name, conf->batch->file,
                      conf->batch->line);
        return NGX_CONF_ERROR;
    }

    if ((conf->limits || conf->breaker) && conf->targets == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"%s\" works only in a location with "
                      "\"fanout_target\" (location \"%V\")",
                      conf->limits ? "fanout_limit" : "fanout_breaker",
                      &clcf->name);
        return NGX_CONF_ERROR;
    }

    /* the stages of its requests: those of what it uses, and the core */
    conf->stages = (1 << NGX_HTTP_FANOUT_STAGE_BODY)
                   | (1 << NGX_HTTP_FANOUT_STAGE_TARGETS)
                   | (1 << NGX_HTTP_FANOUT_STAGE_CALLS)
                   | (1 << NGX_HTTP_FANOUT_STAGE_ANSWER)
                   | (1 << NGX_HTTP_FANOUT_STAGE_LOG);

    if (conf->split) {
        conf->stages |= 1 << NGX_HTTP_FANOUT_STAGE_VARIANT;
    }

    if (conf->limits) {
        conf->stages |= 1 << NGX_HTTP_FANOUT_STAGE_LIMIT;
    }

    if (conf->batch) {
        conf->stages |= 1 << NGX_HTTP_FANOUT_STAGE_BATCH;
    }

    if (conf->cache) {
        conf->stages |= (1 << NGX_HTTP_FANOUT_STAGE_CACHE)
                        | (1 << NGX_HTTP_FANOUT_STAGE_STORE);
    }

    if (conf->shadows) {
        conf->stages |= (1 << NGX_HTTP_FANOUT_STAGE_SHADOWS)
                        | (1 << NGX_HTTP_FANOUT_STAGE_COMPARE);
    }

    if (ngx_http_fanout_split_merge(cf, conf) != NGX_OK
        || ngx_http_fanout_shadow_merge(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_fanout_server_id(cf, conf) != NGX_OK
        || ngx_http_fanout_limit_merge(cf, conf) != NGX_OK
        || ngx_http_fanout_cache_merge(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_fanout_breaker_register(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->targets && conf->quorum > conf->targets->nelts) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"fanout_quorum %ui\" is more than the %ui targets "
                      "of location \"%V\" in %s:%ui",
                      conf->quorum, conf->targets->nelts, &conf->location,
                      conf->quorum_file, conf->quorum_line);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The server block's identity: the ports it listens on and its server
 * names, as written.  Two server blocks of one configuration never share
 * both (name-based virtual hosts differ in names, the others in ports);
 * the instances of a fleet do, whatever their addresses, and so does the
 * same configuration after a reload.  Cache keys and limiter buckets are
 * keyed by it.
 */

#define NGX_HTTP_FANOUT_CACHE_MAX_PORTS  64

static ngx_int_t
ngx_http_fanout_server_id(ngx_conf_t *cf, ngx_http_fanout_loc_conf_t *flcf)
{
    u_char                     *p, *material;
    size_t                      len;
    in_port_t                   ports[NGX_HTTP_FANOUT_CACHE_MAX_PORTS];
    ngx_uint_t                  i, j, k, n, known;
    ngx_http_conf_port_t       *port;
    ngx_http_conf_addr_t       *addr;
    ngx_http_server_name_t     *sn;
    ngx_http_core_srv_conf_t   *cscf, **servers;
    ngx_http_core_main_conf_t  *cmcf;

    if (flcf->targets == NULL) {
        return NGX_OK;
    }

    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);
    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /* its ports, once each, in order: [::]:80 and 80 are one port */
    n = 0;

    for (i = 0; cmcf->ports && i < cmcf->ports->nelts; i++) {
        port = &((ngx_http_conf_port_t *) cmcf->ports->elts)[i];
        addr = port->addrs.elts;
        known = 0;

        for (j = 0; j < port->addrs.nelts && !known; j++) {
            servers = addr[j].servers.elts;

            for (k = 0; k < addr[j].servers.nelts; k++) {
                if (servers[k] == cscf) {
                    known = 1;
                    break;
                }
            }
        }

        for (k = 0; known && k < n; k++) {
            known = (ports[k] != port->port);
        }

        if (known && n < NGX_HTTP_FANOUT_CACHE_MAX_PORTS) {
            for (k = n++; k > 0 && ports[k - 1] > port->port; k--) {
                ports[k] = ports[k - 1];
            }

            ports[k] = port->port;
        }
    }

    sn = cscf->server_names.elts;
    len = n * (NGX_INT_T_LEN + 1);

    for (i = 0; i < cscf->server_names.nelts; i++) {
        len += sn[i].name.len + 2;
    }

    material = ngx_pnalloc(cf->pool, len + 1);
    if (material == NULL) {
        return NGX_ERROR;
    }

    p = material;

    for (i = 0; i < n; i++) {
        p = ngx_sprintf(p, "%ui\n", (ngx_uint_t) ports[i]);
    }

    for (i = 0; i < cscf->server_names.nelts; i++) {
        *p++ = '=';
        p = ngx_cpymem(p, sn[i].name.data, sn[i].name.len);
        *p++ = '\n';
    }

    flcf->server_id.data = ngx_pnalloc(cf->pool, FANOUT_SHA256_HEX_LEN + 1);
    if (flcf->server_id.data == NULL) {
        return NGX_ERROR;
    }

    fanout_sha256_hex(material, p - material, (char *) flcf->server_id.data);
    flcf->server_id.len = FANOUT_SHA256_HEX_LEN;

    return NGX_OK;
}


static ngx_int_t
ngx_http_fanout_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_fanout_stage_pt  *st;

    /* the request's stages, in order, as modules register phase handlers */
    st = ngx_http_fanout_stages;
    st[NGX_HTTP_FANOUT_STAGE_VARIANT] = ngx_http_fanout_split_stage;
    st[NGX_HTTP_FANOUT_STAGE_LIMIT] = ngx_http_fanout_limit_stage;
    st[NGX_HTTP_FANOUT_STAGE_BODY] = ngx_http_fanout_body_stage;
    st[NGX_HTTP_FANOUT_STAGE_BATCH] = ngx_http_fanout_batch_stage;
    st[NGX_HTTP_FANOUT_STAGE_TARGETS] = ngx_http_fanout_targets_stage;
    st[NGX_HTTP_FANOUT_STAGE_CACHE] = ngx_http_fanout_cache_stage;
    st[NGX_HTTP_FANOUT_STAGE_TOKENS] = ngx_http_fanout_limit_tokens_stage;
    st[NGX_HTTP_FANOUT_STAGE_SHADOWS] = ngx_http_fanout_shadow_stage;
    st[NGX_HTTP_FANOUT_STAGE_CALLS] = ngx_http_fanout_calls_stage;
    st[NGX_HTTP_FANOUT_STAGE_ANSWER] = ngx_http_fanout_answer_stage;
    st[NGX_HTTP_FANOUT_STAGE_LOG] = ngx_http_fanout_log_stage;
    st[NGX_HTTP_FANOUT_STAGE_STORE] = ngx_http_fanout_store_stage;
    st[NGX_HTTP_FANOUT_STAGE_COMPARE] = ngx_http_fanout_compare_stage;

    /* the capture first: it sees subrequests before the error pages do */
    if (ngx_http_fanout_response_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_fanout_capture_init(cf);
}


static ngx_int_t
ngx_http_fanout_init_process(ngx_cycle_t *cycle)
{
    if (ngx_http_fanout_redis_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    /* workers only, like the Redis client */
    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (ngx_http_fanout_admission_init_process(cycle) != NGX_OK
        || ngx_http_fanout_trace_init_process(cycle) != NGX_OK
        || ngx_http_fanout_runtime_init_process(cycle) != NGX_OK
        || ngx_http_fanout_health_init_process(cycle) != NGX_OK
        || ngx_http_fanout_limit_init_process(cycle) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_fanout_breaker_init_process(cycle);
}
