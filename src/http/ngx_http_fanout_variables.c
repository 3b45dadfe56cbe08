/*
 * $fanout_ok, $fanout_failed, $fanout_latency_ms, $fanout_cache_status,
 * $fanout_variant, $fanout_trace_id, $fanout_span_id and
 * $fanout_request_id, for access logs.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_cache.h"
#include "ngx_http_fanout_split.h"
#include "ngx_http_fanout_trace.h"
#include "ngx_http_fanout_variables.h"


static ngx_int_t ngx_http_fanout_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_fanout_variant_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_fanout_cache_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_fanout_trace_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_fanout_vars[] = {

    { ngx_string("fanout_ok"), NULL, ngx_http_fanout_variable,
      offsetof(ngx_http_fanout_ctx_t, ok), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("fanout_failed"), NULL, ngx_http_fanout_variable,
      offsetof(ngx_http_fanout_ctx_t, failed), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("fanout_latency_ms"), NULL, ngx_http_fanout_variable,
      offsetof(ngx_http_fanout_ctx_t, latency), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("fanout_cache_status"), NULL,
      ngx_http_fanout_cache_status_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("fanout_variant"), NULL,
      ngx_http_fanout_variant_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("fanout_trace_id"), NULL, ngx_http_fanout_trace_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("fanout_span_id"), NULL, ngx_http_fanout_trace_variable,
      1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("fanout_request_id"), NULL, ngx_http_fanout_trace_variable,
      2, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_fanout_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_fanout_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_fanout_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                 *p;
    ngx_uint_t              value;
    ngx_http_fanout_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_fanout_module);

    if (ctx == NULL || !ctx->finished) {
        v->not_found = 1;
        return NGX_OK;
    }

    /* ok, failed and latency are all ngx_uint_t-sized */
    value = *(ngx_uint_t *) ((char *) ctx + data);

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%ui", value) - p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_fanout_cache_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_fanout_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_fanout_module);

    if (ctx == NULL || ctx->cache == NULL
        || ctx->cache->status == NGX_HTTP_FANOUT_CACHE_NONE)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_http_fanout_cache_statuses[ctx->cache->status].len;
    v->data = ngx_http_fanout_cache_statuses[ctx->cache->status].data;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * The request's trace id, the span its calls are children of (the
 * client's, or the module's root span of a new trace), its request id.
 */

static ngx_int_t
ngx_http_fanout_trace_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_fanout_ctx_t        *ctx;
    ngx_http_fanout_trace_ctx_t  *tc;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_fanout_module);
    tc = ctx ? ctx->trace : NULL;

    if (tc == NULL || (data < 2 && !tc->traced)
        || (data == 2 && tc->request_id.len == 0))
    {
        v->not_found = 1;
        return NGX_OK;
    }

    if (data == 0) {
        v->data = (u_char *) tc->ids.trace_id;
        v->len = FANOUT_TRACE_ID_LEN;

    } else if (data == 1) {
        v->data = (u_char *) tc->ids.parent_id;
        v->len = FANOUT_SPAN_ID_LEN;

    } else {
        v->data = tc->request_id.data;
        v->len = tc->request_id.len;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/* the fanout_split variant; targets see their main request's */

static ngx_int_t
ngx_http_fanout_variant_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t              *name;
    ngx_http_fanout_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_fanout_module);

    name = ctx ? ngx_http_fanout_split_name(ctx) : NULL;

    if (name == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = name->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = name->data;

    return NGX_OK;
}
