/*
 * Configuration helpers that the directives of several subsystems share:
 * the names they give (targets, variants, shadows, limits) and the URIs
 * they call.  A leaf: it calls nothing of the module's.
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
