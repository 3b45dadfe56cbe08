/*
 * Configuration helpers that the directives of several subsystems share:
 * the names they give (targets, variants, shadows, limits), the URIs they
 * call, and their parameters' values (times, shares, counts), each with
 * its error for nginx -t.  A leaf: it calls nothing of the module's.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_conf.h"


/* a name: what the status, the metrics and the headers can carry as is */

ngx_int_t
ngx_http_fanout_valid_name(ngx_str_t *name)
{
    u_char  *p, *end;

    if (name->len == 0 || name->len > 64) {
        return NGX_ERROR;
    }

    end = name->data + name->len;

    for (p = name->data; p < end; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
            || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'
            || *p == '.')
        {
            continue;
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


/* "/uri?args": args NULL when there is no "?", the client's are sent */

void
ngx_http_fanout_split_uri(ngx_str_t *value, ngx_str_t *uri, ngx_str_t *args)
{
    u_char  *q;

    *uri = *value;
    ngx_str_null(args);

    q = ngx_strlchr(value->data, value->data + value->len, '?');

    if (q) {
        uri->len = q - value->data;
        args->data = q + 1;
        args->len = value->data + value->len - q - 1;
    }
}


/* "NAME=TIME" from skip on, up to 60s, 0 allowed unless nonzero */

ngx_int_t
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

ngx_int_t
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


/* "NAME=N" from skip on, from 1 to max */

ngx_int_t
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
