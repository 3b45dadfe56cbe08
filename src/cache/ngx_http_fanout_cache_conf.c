/*
 * fanout_cache: the directive (key=, vary=, ttl=, stale=, coalesce,
 * level=, max_size=, echo=, l1= ...), checked at configuration, and the
 * L1 zone linked at merge time once the server block is known.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_cache.h"
#include "ngx_http_fanout_cache_conf.h"
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


char *
ngx_http_fanout_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ssize_t                        size;
    ngx_str_t                     *value, s, vary, echo;
    ngx_uint_t                     i, n;
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
    ngx_str_set(&vary, "$http_authorization");
    ngx_str_set(&echo, "id");

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;
            cc->ttl = ngx_parse_time(&s, 1);

            if (cc->ttl == (time_t) NGX_ERROR || cc->ttl == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "level=response") == 0
            || ngx_strcmp(value[i].data, "level=target") == 0)
        {
            cc->per_target = (value[i].data[6] == 't');
            continue;
        }

        if (ngx_strcmp(value[i].data, "coalesce=on") == 0
            || ngx_strcmp(value[i].data, "coalesce=off") == 0)
        {
            cc->coalesce = (value[i].data[10] == 'n');
            continue;
        }

        if (ngx_strncmp(value[i].data, "stale=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;
            cc->stale = ngx_parse_time(&s, 1);

            if (cc->stale == (time_t) NGX_ERROR) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "l1=", 3) == 0) {
            s.data = value[i].data + 3;
            s.len = value[i].len - 3;
            size = ngx_parse_size(&s);

            /* a zone that holds a few entries at least */
            if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": l1= is a size of %uzk "
                                   "or more, as in \"l1=16m\"", &value[i],
                                   (8 * ngx_pagesize) >> 10);
                return NGX_CONF_ERROR;
            }

            cc->l1_size = (size_t) size;
            continue;
        }

        if (ngx_strncmp(value[i].data, "l1_ttl=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;
            cc->l1_ttl = ngx_parse_time(&s, 0);

            if (cc->l1_ttl == (ngx_msec_t) NGX_ERROR || cc->l1_ttl == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_size=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;
            size = ngx_parse_size(&s);

            if (size == NGX_ERROR || size == 0) {
                goto invalid;
            }

            cc->max_size = (size_t) size;
            continue;
        }

        if (ngx_strncmp(value[i].data, "key=", 4) == 0
            || ngx_strncmp(value[i].data, "vary=", 5) == 0)
        {
            n = (value[i].data[0] == 'k') ? 4 : 5;
            s.data = value[i].data + n;
            s.len = value[i].len - n;

            if (n == 5) {
                vary = s;
                continue;
            }

            cc->key = s.len ? ngx_http_fanout_cache_value(cf, &s) : NULL;
            if (cc->key == NULL) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "ignore=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;

            if (ngx_http_fanout_cache_paths(cf, &s, FANOUT_CACHE_MAX_IGNORE,
                                            &cc->ignore,
                                            &cc->nignore)
                != NGX_OK)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "echo=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;
            echo = s;
            continue;
        }

        goto invalid;
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
    if (echo.len && ngx_strcmp(echo.data, "off") != 0) {
        if (ngx_http_fanout_cache_paths(cf, &echo, FANOUT_CACHE_MAX_ECHO,
                                        &cc->echo, &cc->necho)
            != NGX_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid echo=\"%V\": at most %d dot paths, "
                               "comma-separated, or \"off\"", &echo,
                               FANOUT_CACHE_MAX_ECHO);
            return NGX_CONF_ERROR;
        }
    }

    /* vary: an empty value is allowed, and means no variation */
    if (vary.len) {
        cc->vary = ngx_http_fanout_cache_value(cf, &vary);
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

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
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
