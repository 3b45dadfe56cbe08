/*
 * A body per target: fanout_target set=PATH:JSON (ngx_http_fanout_body.c,
 * the pass itself in src/core/fanout_body.c).
 */

#ifndef _NGX_HTTP_FANOUT_BODY_H_INCLUDED_
#define _NGX_HTTP_FANOUT_BODY_H_INCLUDED_


#include "ngx_http_fanout.h"


/* one set= of a target */
typedef struct {
    ngx_str_t                   path;
    ngx_str_t                   value;         /* JSON, checked; or the
                                                  source of cv */
    ngx_http_complex_value_t   *cv;            /* with variables, else NULL */
} ngx_http_fanout_body_set_t;


/* set=PATH:JSON, one of a target's, read into *sets */
char *ngx_http_fanout_body_set(ngx_conf_t *cf, ngx_str_t *v,
    ngx_array_t **sets);

/* all of a target's read: they must go together (nginx -t says which) */
ngx_int_t ngx_http_fanout_body_sets_check(ngx_conf_t *cf, ngx_array_t *sets);

/*
 * The targets stage: each call of a target with set= gets its own body,
 * the client's (or its batch item's) with the sets applied.  NGX_DECLINED
 * (on to the next stage), or an answer (400: the body cannot take them).
 */
ngx_int_t ngx_http_fanout_body_make(ngx_http_fanout_ctx_t *ctx);

/*
 * The body call i sends before any set=: its fanout_batch item's text (put
 * together once for the item's calls, which are together: *made says which
 * item *item holds, NGX_CONF_UNSET_UINT at first), else the client's (read
 * into memory once, into *client, ngx_str_null at first).
 */
ngx_int_t ngx_http_fanout_body_source(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t i, ngx_str_t *client, ngx_str_t *item, ngx_uint_t *made,
    ngx_str_t **from);

/* a fanout_batch item's body (the k-th call's), in one piece of memory */
ngx_int_t ngx_http_fanout_body_item(ngx_http_fanout_ctx_t *ctx, ngx_uint_t k,
    ngx_str_t *item);

/* what the target's sets give, for a cache key: "\nset:PATH=VALUE"... */
ngx_int_t ngx_http_fanout_body_material(ngx_http_request_t *r,
    ngx_array_t *sets, ngx_str_t *out);


#endif /* _NGX_HTTP_FANOUT_BODY_H_INCLUDED_ */
