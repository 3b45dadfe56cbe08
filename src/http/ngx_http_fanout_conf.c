/*
 * Configuration helpers that the directives of several subsystems share:
 * the table their "key=value" parameters are read over (each kind of value
 * with its bounds and its error for nginx -t), the names they give
 * (targets, variants, shadows, limits) and the URIs they call.  A leaf: it
 * calls nothing of the module's glue, only the core's JSON path check.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_conf.h"
#include "fanout_json.h"


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


/* NGX_CONF_OK is NULL: a value out of its kind's bounds is this */
static char  ngx_http_fanout_param_bad[] = "";

#define NGX_HTTP_FANOUT_PARAM_BAD  ngx_http_fanout_param_bad


static u_char *ngx_http_fanout_param_time(u_char *p, u_char *last,
    ngx_int_t ms);
static u_char *ngx_http_fanout_param_size(u_char *p, u_char *last,
    ngx_int_t n);
static u_char *ngx_http_fanout_param_hint(u_char *p, u_char *last,
    const ngx_http_fanout_param_t *pm);
static char *ngx_http_fanout_param_value(ngx_conf_t *cf,
    const ngx_http_fanout_param_t *pm, ngx_str_t *v, void *conf);


char *
ngx_http_fanout_conf_params(ngx_conf_t *cf, ngx_uint_t first,
    const ngx_http_fanout_param_t *params, void *conf)
{
    char                           *rv;
    u_char                         *eq, *p;
    uint64_t                        seen;
    ngx_str_t                      *value, key, v;
    ngx_uint_t                      i, k;
    const ngx_http_fanout_param_t  *pm;
    u_char                          hint[256];

    value = cf->args->elts;
    seen = 0;

    for (i = first; i < cf->args->nelts; i++) {

        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');

        key.data = value[i].data;
        key.len = eq ? (size_t) (eq - value[i].data) : value[i].len;

        for (k = 0, pm = params; pm->key.len; k++, pm++) {
            if (pm->key.len == key.len
                && ngx_strncmp(pm->key.data, key.data, key.len) == 0
                && (eq == NULL) == (pm->kind == NGX_HTTP_FANOUT_PARAM_FLAG))
            {
                break;
            }
        }

        if (pm->key.len == 0 || k >= NGX_HTTP_FANOUT_PARAMS_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        if ((seen & ((uint64_t) 1 << k))
            && !(pm->kind == NGX_HTTP_FANOUT_PARAM_CUSTOM && pm->min == 1))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        seen |= (uint64_t) 1 << k;

        if (eq) {
            v.data = eq + 1;
            v.len = value[i].data + value[i].len - v.data;

        } else {
            ngx_str_null(&v);
        }

        rv = ngx_http_fanout_param_value(cf, pm, &v, conf);

        if (rv == NGX_CONF_OK) {
            continue;
        }

        if (rv == NGX_CONF_ERROR) {
            return NGX_CONF_ERROR;
        }

        if (rv == NGX_HTTP_FANOUT_PARAM_BAD) {
            p = ngx_http_fanout_param_hint(hint, hint + sizeof(hint), pm);
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": %*s", &value[i],
                               p - hint, hint);

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": %s", &value[i], rv);
        }

        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * One value: NGX_CONF_OK, NGX_CONF_ERROR (logged), NGX_HTTP_FANOUT_PARAM_BAD
 * (out of the kind's bounds: its hint is logged) or a custom reader's hint.
 */

static char *
ngx_http_fanout_param_value(ngx_conf_t *cf, const ngx_http_fanout_param_t *pm,
    ngx_str_t *v, void *conf)
{
    u_char                            *field;
    ngx_int_t                          n;
    const char *const                 *w;
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    field = (u_char *) conf + pm->offset;
    n = NGX_ERROR;

    switch (pm->kind) {

    case NGX_HTTP_FANOUT_PARAM_CUSTOM:
        return ((ngx_http_fanout_param_pt) pm->post)(cf, v, conf);

    case NGX_HTTP_FANOUT_PARAM_FLAG:
        n = 1;
        break;

    case NGX_HTTP_FANOUT_PARAM_COUNT:
        n = ngx_atoi(v->data, v->len);
        break;

    case NGX_HTTP_FANOUT_PARAM_FIXED:
        n = ngx_atofp(v->data, v->len, 3);
        break;

    case NGX_HTTP_FANOUT_PARAM_SHARE:
    case NGX_HTTP_FANOUT_PARAM_PERCENT:
        if (v->len > 1 && v->data[v->len - 1] == '%') {
            n = (pm->kind == NGX_HTTP_FANOUT_PARAM_SHARE)
                ? ngx_atofp(v->data, v->len - 1, 2)
                : ngx_atoi(v->data, v->len - 1);
        }

        break;

    case NGX_HTTP_FANOUT_PARAM_HUNDREDTHS:
        n = ngx_atofp(v->data, v->len, 2);
        break;

    case NGX_HTTP_FANOUT_PARAM_MSEC:
    case NGX_HTTP_FANOUT_PARAM_SEC:
        n = ngx_parse_time(v, pm->kind == NGX_HTTP_FANOUT_PARAM_SEC);
        break;

    case NGX_HTTP_FANOUT_PARAM_SIZE:
        n = ngx_parse_size(v);
        break;

    case NGX_HTTP_FANOUT_PARAM_WORD:
        for (w = pm->post, n = 0; *w; w++, n++) {
            if (ngx_strlen(*w) == v->len
                && ngx_strncmp(*w, v->data, v->len) == 0)
            {
                break;
            }
        }

        if (*w == NULL) {
            return NGX_HTTP_FANOUT_PARAM_BAD;
        }

        break;

    case NGX_HTTP_FANOUT_PARAM_NAME:
        if (ngx_http_fanout_valid_name(v) != NGX_OK) {
            return NGX_HTTP_FANOUT_PARAM_BAD;
        }

        *(ngx_str_t *) field = *v;
        return NGX_CONF_OK;

    case NGX_HTTP_FANOUT_PARAM_URI:
        if (v->len == 0 || v->data[0] != '/') {
            return NGX_HTTP_FANOUT_PARAM_BAD;
        }

        *(ngx_str_t *) field = *v;
        return NGX_CONF_OK;

    case NGX_HTTP_FANOUT_PARAM_PATH:
        if (fanout_json_path_check((const char *) v->data, v->len) != 0) {
            return NGX_HTTP_FANOUT_PARAM_BAD;
        }

        *(ngx_str_t *) field = *v;
        return NGX_CONF_OK;

    case NGX_HTTP_FANOUT_PARAM_STRING:
        if ((ngx_int_t) v->len < pm->min) {
            return NGX_HTTP_FANOUT_PARAM_BAD;
        }

        *(ngx_str_t *) field = *v;
        return NGX_CONF_OK;

    case NGX_HTTP_FANOUT_PARAM_COMPLEX:
        if (v->len == 0) {
            return NGX_HTTP_FANOUT_PARAM_BAD;
        }

        cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
        if (cv == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
        ccv.cf = cf;
        ccv.value = v;
        ccv.complex_value = cv;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        *(ngx_http_complex_value_t **) field = cv;
        return NGX_CONF_OK;
    }

    if (n == NGX_ERROR || n < pm->min || n > pm->max) {
        return NGX_HTTP_FANOUT_PARAM_BAD;
    }

    switch (pm->size) {

    case sizeof(uint8_t):
        *(uint8_t *) field = (uint8_t) n;
        break;

    case sizeof(uint32_t):
        *(uint32_t *) field = (uint32_t) n;
        break;

    case sizeof(uint64_t):
        *(uint64_t *) field = (uint64_t) n;
        break;

    default:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the \"%V=\" parameter's field has no size this "
                           "module reads", &pm->key);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* what a valid value of the kind is, with its bounds */

static u_char *
ngx_http_fanout_param_hint(u_char *p, u_char *last,
    const ngx_http_fanout_param_t *pm)
{
    ngx_uint_t          bounded;
    const char *const  *w;

    bounded = (pm->max != NGX_MAX_INT_T_VALUE);

    switch (pm->kind) {

    case NGX_HTTP_FANOUT_PARAM_COUNT:
        return bounded
               ? ngx_slprintf(p, last, "a number from %i to %i", pm->min,
                              pm->max)
               : ngx_slprintf(p, last, "a number of %i or more", pm->min);

    case NGX_HTTP_FANOUT_PARAM_FIXED:
        return ngx_slprintf(p, last, "a number from %i.%03i to %i.%03i, with "
                            "at most 3 decimals", pm->min / 1000,
                            pm->min % 1000, pm->max / 1000, pm->max % 1000);

    case NGX_HTTP_FANOUT_PARAM_SHARE:
        return ngx_slprintf(p, last, "a share from %i%% to %i%%, with at "
                            "most 2 decimals", pm->min / 100, pm->max / 100);

    case NGX_HTTP_FANOUT_PARAM_HUNDREDTHS:
        return ngx_slprintf(p, last, "a number from %i to %i, with at most "
                            "2 decimals", pm->min / 100, pm->max / 100);

    case NGX_HTTP_FANOUT_PARAM_PERCENT:
        return ngx_slprintf(p, last, "a percentage from %i%% to %i%%",
                            pm->min, pm->max);

    case NGX_HTTP_FANOUT_PARAM_MSEC:
    case NGX_HTTP_FANOUT_PARAM_SEC:
        p = ngx_slprintf(p, last, "a time from ");
        p = ngx_http_fanout_param_time(p, last,
                                       pm->kind == NGX_HTTP_FANOUT_PARAM_SEC
                                       ? pm->min * 1000 : pm->min);
        if (!bounded) {
            return ngx_slprintf(p, last, " on, as \"500ms\" or \"30s\"");
        }

        p = ngx_slprintf(p, last, " to ");
        return ngx_http_fanout_param_time(p, last,
                                          pm->kind == NGX_HTTP_FANOUT_PARAM_SEC
                                          ? pm->max * 1000 : pm->max);

    case NGX_HTTP_FANOUT_PARAM_SIZE:
        p = ngx_slprintf(p, last, "a size from ");
        p = ngx_http_fanout_param_size(p, last, pm->min);

        if (!bounded) {
            return ngx_slprintf(p, last, " on, as \"64k\" or \"16m\"");
        }

        p = ngx_slprintf(p, last, " to ");
        return ngx_http_fanout_param_size(p, last, pm->max);

    case NGX_HTTP_FANOUT_PARAM_WORD:
        p = ngx_slprintf(p, last, "use");

        for (w = pm->post; *w; w++) {
            p = ngx_slprintf(p, last, "%s \"%s\"",
                             w == pm->post ? "" : (w[1] ? "," : " or"), *w);
        }

        return p;

    case NGX_HTTP_FANOUT_PARAM_NAME:
        return ngx_slprintf(p, last, "use 1 to 64 letters, digits, \"_\", "
                            "\"-\" or \".\"");

    case NGX_HTTP_FANOUT_PARAM_URI:
        return ngx_slprintf(p, last, "a local URI that begins with \"/\"");

    case NGX_HTTP_FANOUT_PARAM_PATH:
        return ngx_slprintf(p, last, "a dot path such as \"output.scores\"");

    default:
        return ngx_slprintf(p, last, "a value is needed");
    }
}


static u_char *
ngx_http_fanout_param_time(u_char *p, u_char *last, ngx_int_t ms)
{
    if (ms && ms % 1000 == 0) {
        return ngx_slprintf(p, last, "%is", ms / 1000);
    }

    return ngx_slprintf(p, last, "%ims", ms);
}


static u_char *
ngx_http_fanout_param_size(u_char *p, u_char *last, ngx_int_t n)
{
    if (n && n % (1024 * 1024) == 0) {
        return ngx_slprintf(p, last, "%im", n / (1024 * 1024));
    }

    if (n && n % 1024 == 0) {
        return ngx_slprintf(p, last, "%ik", n / 1024);
    }

    return ngx_slprintf(p, last, "%i", n);
}
