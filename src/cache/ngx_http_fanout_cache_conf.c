/*
 * fanout_cache: the directive (key=, vary=, ttl=, stale=, coalesce,
 * level=, max_size=, echo=, l1= ...), checked at configuration, and the
 * L1 zone linked at merge time once the server block is known.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_cache.h"
#include "ngx_http_fanout_cache_conf.h"
#include "ngx_http_fanout_conf.h"
#include "ngx_http_fanout_l1.h"
#include "ngx_http_fanout_stats.h"
#include "fanout_json.h"


static ngx_http_complex_value_t *
ngx_http_fanout_cache_value(ngx_conf_t *cf, ngx_str_t *value)
{
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (cv == NULL) {
        return NULL;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = cv;

    return (ngx_http_compile_complex_value(&ccv) == NGX_OK) ? cv : NULL;
}


/* "a,b.c": dot paths, at most max of them */

static ngx_int_t
ngx_http_fanout_cache_paths(ngx_conf_t *cf, ngx_str_t *list, ngx_uint_t max,
    fanout_field_t **paths, ngx_uint_t *n)
{
    u_char          *p, *end, *comma;
    ngx_uint_t       k;
    fanout_field_t  *f;

    p = list->data;
    end = list->data + list->len;

    k = 1;
    for (comma = p; comma < end; comma++) {
        k += (*comma == ',');
    }

    if (k > max) {
        return NGX_ERROR;
    }

    *paths = ngx_palloc(cf->pool, k * sizeof(fanout_field_t));
    if (*paths == NULL) {
        return NGX_ERROR;
    }

    *n = 0;

    while (p <= end) {
        comma = ngx_strlchr(p, end, ',');
        if (comma == NULL) {
            comma = end;
        }

        f = &(*paths)[(*n)++];
        f->path = (const char *) p;
        f->len = comma - p;

        /* dot paths: the canonical form walks them, without selectors */
        if (fanout_json_path_check(f->path, f->len) != 0
            || ngx_strlchr((u_char *) f->path, (u_char *) f->path + f->len,
                           '[')
               != NULL)
        {
            return NGX_ERROR;
        }

        p = comma + 1;
    }

    return NGX_OK;
}


/* l1=SIZE: a zone that holds a few entries at least */

static char *
ngx_http_fanout_cache_l1(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_cache_conf_t *cc = conf;

    ssize_t  size;

    size = ngx_parse_size(v);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"l1=%V\": a size of %uzk or "
                           "more, as in \"l1=16m\"", v,
                           (8 * ngx_pagesize) >> 10);
        return NGX_CONF_ERROR;
    }

    cc->l1_size = (size_t) size;

    return NGX_CONF_OK;
}


/* vary=VALUE: variables allowed; empty, no variation */

static char *
ngx_http_fanout_cache_vary(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_cache_conf_t *cc = conf;

    if (v->len == 0) {
        cc->vary = NULL;
        return NGX_CONF_OK;
    }

    cc->vary = ngx_http_fanout_cache_value(cf, v);

    return cc->vary ? NGX_CONF_OK : NGX_CONF_ERROR;
}


/* ignore=PATH,...: the body's fields the key leaves out */

static char *
ngx_http_fanout_cache_ignore(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_cache_conf_t *cc = conf;

    if (ngx_http_fanout_cache_paths(cf, v, FANOUT_CACHE_MAX_IGNORE,
                                    &cc->ignore, &cc->nignore)
        != NGX_OK)
    {
        return "dot paths, comma-separated";
    }

    return NGX_CONF_OK;
}


/* echo=PATH,...|off: the fields of an answer that are the request's own */

static char *
ngx_http_fanout_cache_echo(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_cache_conf_t *cc = conf;

    cc->echo = NULL;
    cc->necho = 0;

    if (v->len == 0 || (v->len == 3 && ngx_strncmp(v->data, "off", 3) == 0))
    {
        return NGX_CONF_OK;
    }

    if (ngx_http_fanout_cache_paths(cf, v, FANOUT_CACHE_MAX_ECHO, &cc->echo,
                                    &cc->necho)
        != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"echo=%V\": at most %d dot "
                           "paths, comma-separated, or \"off\"", v,
                           FANOUT_CACHE_MAX_ECHO);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static const char *const  ngx_http_fanout_cache_levels[] = {
    "response", "target", NULL
};

static const char *const  ngx_http_fanout_cache_onoff[] = {
    "off", "on", NULL
};


static const ngx_http_fanout_param_t  ngx_http_fanout_cache_params[] = {

    ngx_http_fanout_param("ttl", SEC, ngx_http_fanout_cache_conf_t, ttl,
                          1, NGX_MAX_INT32_VALUE, NULL),
    ngx_http_fanout_param("stale", SEC, ngx_http_fanout_cache_conf_t, stale,
                          0, NGX_MAX_INT32_VALUE, NULL),
    ngx_http_fanout_param("level", WORD, ngx_http_fanout_cache_conf_t,
                          per_target, 0, 1, ngx_http_fanout_cache_levels),
    ngx_http_fanout_param("coalesce", WORD, ngx_http_fanout_cache_conf_t,
                          coalesce, 0, 1, ngx_http_fanout_cache_onoff),
    ngx_http_fanout_param_custom("l1", ngx_http_fanout_cache_l1),
    ngx_http_fanout_param("l1_ttl", MSEC, ngx_http_fanout_cache_conf_t,
                          l1_ttl, 1, NGX_MAX_INT32_VALUE, NULL),
    ngx_http_fanout_param("max_size", SIZE, ngx_http_fanout_cache_conf_t,
                          max_size, 1, NGX_MAX_SIZE_T_VALUE / 2, NULL),
    ngx_http_fanout_param("key", COMPLEX, ngx_http_fanout_cache_conf_t, key,
                          0, 0, NULL),
    ngx_http_fanout_param_custom("vary", ngx_http_fanout_cache_vary),
    ngx_http_fanout_param_custom("ignore", ngx_http_fanout_cache_ignore),
    ngx_http_fanout_param_custom("echo", ngx_http_fanout_cache_echo),
    ngx_http_fanout_param_null
};


char *
ngx_http_fanout_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_str_t                     *value, s;
    ngx_http_fanout_main_conf_t   *fmcf;
    ngx_http_fanout_cache_conf_t  *cc;

    if (flcf->cache != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        flcf->cache = NULL;
        return NGX_CONF_OK;
    }

    cc = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_cache_conf_t));
    if (cc == NULL) {
        return NGX_CONF_ERROR;
    }

    cc->max_size = 1024 * 1024;
    cc->coalesce = 1;
    cc->l1_ttl = NGX_CONF_UNSET_MSEC;
    cc->vary = NGX_CONF_UNSET_PTR;
    cc->echo = NGX_CONF_UNSET_PTR;

    if (ngx_http_fanout_conf_params(cf, 1, ngx_http_fanout_cache_params, cc)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (cc->ttl == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fanout_cache\" needs ttl=, as in "
                           "\"fanout_cache ttl=60s;\", or \"off\"");
        return NGX_CONF_ERROR;
    }

    if (cc->l1_ttl != NGX_CONF_UNSET_MSEC && cc->l1_size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"l1_ttl=\" needs \"l1=SIZE\"");
        return NGX_CONF_ERROR;
    }

    /* the L1 is never fresher than Redis: at most ttl=, 5s by default */
    if (cc->l1_ttl == NGX_CONF_UNSET_MSEC) {
        cc->l1_ttl = 5000;
    }

    cc->l1_ttl = ngx_min(cc->l1_ttl, (ngx_msec_t) cc->ttl * 1000);

    /* the fields of an answer that are the request's own (KServe's id) */
    if (cc->echo == NGX_CONF_UNSET_PTR) {
        ngx_str_set(&s, "id");

        if (ngx_http_fanout_cache_echo(cf, &s, cc) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }
    }

    /* who may share an entry: the client's credentials by default */
    if (cc->vary == NGX_CONF_UNSET_PTR) {
        ngx_str_set(&s, "$http_authorization");
        cc->vary = ngx_http_fanout_cache_value(cf, &s);

        if (cc->vary == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);

    if (fmcf->cache_file == NULL) {
        fmcf->cache_file = cf->conf_file->file.name.data;
        fmcf->cache_line = cf->conf_file->line;
    }

    flcf->cache = cc;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_fanout_cache_merge(ngx_conf_t *cf, ngx_http_fanout_loc_conf_t *conf)
{
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_fanout_main_conf_t   *fmcf;
    ngx_http_fanout_stats_loc_t   *loc;
    ngx_http_fanout_cache_conf_t  *cc;

    cc = conf->cache;

    if (cc == NULL || cc->l1_size == 0 || conf->targets == NULL) {
        return NGX_OK;
    }

    /* a location's own, an inherited fanout_cache's too */
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    conf->cache_l1 = ngx_http_fanout_l1_add(cf, &conf->server_id, &clcf->name,
                                            cc->l1_size, cc->max_size,
                                            cc->l1_ttl);
    if (conf->cache_l1 == NULL) {
        return NGX_ERROR;
    }

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);
    loc = fmcf->locations.elts;
    ngx_http_fanout_l1_link(&loc[conf->stats].l1, conf->cache_l1);

    return NGX_OK;
}
