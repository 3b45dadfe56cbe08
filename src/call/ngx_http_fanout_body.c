/*
 * A body per target: fanout_target ... set=PATH:JSON (repeatable) sends
 * the target the client's body with those members set or replaced, as a
 * fan-out across providers needs (each its own "model").  Made once per
 * call by the targets stage, before the cache (whose per-target keys take
 * the sets' values) and the calls (every attempt, retries and hedges
 * alike, sends it; a micro-batch groups calls by it).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_body.h"
#include "ngx_http_fanout_call.h"
#include "ngx_http_fanout_batch.h"
#include "ngx_http_fanout_request.h"
#include "ngx_http_fanout_response.h"
#include "fanout_body.h"


/* set=PATH:JSON: the path up to the first ':', the value after it */

char *
ngx_http_fanout_body_set(ngx_conf_t *cf, ngx_str_t *v, ngx_array_t **sets)
{
    u_char                            *colon;
    ngx_http_fanout_body_set_t        *s;
    ngx_http_compile_complex_value_t   ccv;

    colon = ngx_strlchr(v->data, v->data + v->len, ':');

    if (colon == NULL || colon == v->data || colon + 1 == v->data + v->len) {
        return "PATH:JSON, as model:\"gpt-4o-mini\"";
    }

    if (*sets == NULL) {
        *sets = ngx_array_create(cf->pool, 2,
                                 sizeof(ngx_http_fanout_body_set_t));
        if (*sets == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if ((*sets)->nelts == FANOUT_BODY_MAX_SETS) {
        return "at most 16 of them a target";
    }

    s = ngx_array_push(*sets);
    if (s == NULL) {
        return NGX_CONF_ERROR;
    }

    s->path.data = v->data;
    s->path.len = colon - v->data;
    s->value.data = colon + 1;
    s->value.len = v->data + v->len - s->value.data;
    s->cv = NULL;

    if (ngx_http_script_variables_count(&s->value) == 0) {
        /* known now: nginx -t says when it is not JSON */
        if (fanout_json_scan((const char *) s->value.data, s->value.len,
                             NULL, 0, NULL)
            != 0)
        {
            return "PATH:JSON, and the value after the colon is not JSON "
                   "(a string needs its quotes: model:\"gpt-4o-mini\")";
        }

        return NGX_CONF_OK;
    }

    /* with variables: checked when a request gives them values */
    s->cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (s->cv == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = &s->value;
    ccv.complex_value = s->cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_fanout_body_sets_check(ngx_conf_t *cf, ngx_array_t *sets)
{
    size_t                       bad;
    ngx_uint_t                   i;
    fanout_body_set_t            fs[FANOUT_BODY_MAX_SETS];
    ngx_http_fanout_body_set_t  *s;

    if (sets == NULL) {
        return NGX_OK;
    }

    s = sets->elts;

    for (i = 0; i < sets->nelts; i++) {
        fs[i].path = (const char *) s[i].path.data;
        fs[i].path_len = s[i].path.len;
        fs[i].value = NULL;
        fs[i].value_len = 0;
    }

    if (fanout_body_sets_check(fs, sets->nelts, &bad) == 0) {
        return NGX_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"set=%V:...\": a path of object "
                       "keys (at most 8, none all digits, no spaces), given "
                       "once, and neither inside another set='s",
                       &s[bad].path);

    return NGX_ERROR;
}


/*
 * The target's sets with this request's values, each checked: NGX_OK,
 * NGX_DECLINED (a value is not JSON, logged), NGX_ERROR.
 */

static ngx_int_t
ngx_http_fanout_body_values(ngx_http_request_t *r, ngx_array_t *sets,
    fanout_body_set_t *fs)
{
    ngx_str_t                    v;
    ngx_uint_t                   i;
    ngx_http_fanout_body_set_t  *s;

    s = sets->elts;

    for (i = 0; i < sets->nelts; i++) {
        fs[i].path = (const char *) s[i].path.data;
        fs[i].path_len = s[i].path.len;

        if (s[i].cv == NULL) {
            v = s[i].value;

        } else {
            if (ngx_http_complex_value(r, s[i].cv, &v) != NGX_OK) {
                return NGX_ERROR;
            }

            if (fanout_json_scan((const char *) v.data, v.len, NULL, 0, NULL)
                != 0)
            {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "fanout target set=%V: \"%V\" is not JSON",
                              &s[i].path, &v);
                return NGX_DECLINED;
            }
        }

        fs[i].value = (const char *) v.data;
        fs[i].value_len = v.len;
    }

    return NGX_OK;
}


/* one call's body: its own copy of the client's (or item's) with the sets */

static ngx_int_t
ngx_http_fanout_body_one(ngx_http_request_t *r, ngx_http_fanout_call_t *sub,
    ngx_str_t *from, fanout_body_set_t *fs, ngx_uint_t n)
{
    fanout_out_t   o;

    o.buf = NULL;
    o.len = 0;

    if (fanout_body_apply((const char *) from->data, from->len, fs, n, &o)
        != 0)
    {
        return NGX_DECLINED;
    }

    sub->body = ngx_palloc(r->pool, sizeof(ngx_str_t));
    if (sub->body == NULL) {
        return NGX_ERROR;
    }

    sub->body->data = ngx_pnalloc(r->pool, o.len);
    if (sub->body->data == NULL) {
        return NGX_ERROR;
    }

    o.buf = (char *) sub->body->data;
    o.len = 0;
    (void) fanout_body_apply((const char *) from->data, from->len, fs, n, &o);
    sub->body->len = o.len;

    sub->request_body = ngx_http_fanout_body_of(r->pool, sub->body->data,
                                                sub->body->len);

    return (sub->request_body == NULL) ? NGX_ERROR : NGX_OK;
}


ngx_int_t
ngx_http_fanout_body_item(ngx_http_fanout_ctx_t *ctx, ngx_uint_t k,
    ngx_str_t *item)
{
    u_char       *p;
    ngx_chain_t  *cl;

    item->len = (size_t) ctx->batch->lengths[k];
    item->data = ngx_pnalloc(ctx->request->pool, item->len ? item->len : 1);
    if (item->data == NULL) {
        return NGX_ERROR;
    }

    p = item->data;

    for (cl = ctx->batch->bodies[k].bufs; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_fanout_body_source(ngx_http_fanout_ctx_t *ctx, ngx_uint_t i,
    ngx_str_t *client, ngx_str_t *item, ngx_uint_t *made, ngx_str_t **from)
{
    ngx_uint_t  k;

    if (ctx->batch) {
        k = i / ctx->batch->ntargets;

        /* an item's calls are together: its text made once for them */
        if (k != *made) {
            if (ngx_http_fanout_body_item(ctx, k, item) != NGX_OK) {
                return NGX_ERROR;
            }

            *made = k;
        }

        *from = item;
        return NGX_OK;
    }

    if (client->data == NULL
        && ngx_http_fanout_body_memory(ctx->request, client) != NGX_OK)
    {
        return NGX_ERROR;
    }

    *from = client;

    return NGX_OK;
}


ngx_int_t
ngx_http_fanout_body_make(ngx_http_fanout_ctx_t *ctx)
{
    ngx_int_t                rc;
    ngx_str_t                client, item, *from;
    ngx_uint_t               i, n, made;
    ngx_http_request_t      *r;
    ngx_http_fanout_call_t  *sub;
    ngx_http_fanout_target_t  *t;
    fanout_body_set_t        fs[FANOUT_BODY_MAX_SETS];

    r = ctx->request;
    ngx_str_null(&client);
    t = NULL;
    n = 0;
    made = NGX_CONF_UNSET_UINT;

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (sub->target->sets == NULL) {
            continue;
        }

        if (sub->target != t) {
            /* a target's values, once (its calls are a batch's items) */
            t = sub->target;
            n = t->sets->nelts;

            rc = ngx_http_fanout_body_values(r, t->sets, fs);
            if (rc == NGX_ERROR) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            if (rc == NGX_DECLINED) {
                return ngx_http_fanout_send_error(r, NGX_HTTP_BAD_REQUEST,
                           "bad_request", "a value for the target's set= is "
                           "not JSON");
            }
        }

        if (ngx_http_fanout_body_source(ctx, i, &client, &item, &made, &from)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_fanout_body_one(r, sub, from, fs, n);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "fanout target \"%V\": the body is not a JSON "
                          "object that its set= can change", &t->name);

            return ngx_http_fanout_send_error(r, NGX_HTTP_BAD_REQUEST,
                       "bad_request", "the body must be a JSON object whose "
                       "members on the targets' set= paths are objects");
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_fanout_body_material(ngx_http_request_t *r, ngx_array_t *sets,
    ngx_str_t *out)
{
    u_char                      *p;
    size_t                       len;
    ngx_str_t                    v[FANOUT_BODY_MAX_SETS];
    ngx_uint_t                   i;
    ngx_http_fanout_body_set_t  *s;

    ngx_str_null(out);

    if (sets == NULL) {
        return NGX_OK;
    }

    s = sets->elts;
    len = 0;

    for (i = 0; i < sets->nelts; i++) {
        v[i] = s[i].value;

        if (s[i].cv && ngx_http_complex_value(r, s[i].cv, &v[i]) != NGX_OK) {
            return NGX_ERROR;
        }

        len += sizeof("\nset:=") - 1 + s[i].path.len + v[i].len;
    }

    out->data = ngx_pnalloc(r->pool, len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    p = out->data;

    for (i = 0; i < sets->nelts; i++) {
        p = ngx_cpymem(p, "\nset:", sizeof("\nset:") - 1);
        p = ngx_cpymem(p, s[i].path.data, s[i].path.len);
        *p++ = '=';
        p = ngx_cpymem(p, v[i].data, v[i].len);
    }

    out->len = p - out->data;

    return NGX_OK;
}
