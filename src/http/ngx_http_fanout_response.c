/*
 * What the client gets: JSON answers and errors, answers as they came (a
 * "first" winner, a cache entry), the RateLimit-* and X-Fanout-* headers,
 * and nginx's own error pages of fan-out locations made JSON.  Everyone
 * answers through here; the answer sent is kept in the ctx for those who
 * compare with it (shadows).
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_response.h"
#include "ngx_http_fanout_stats.h"


static ngx_int_t ngx_http_fanout_send_header(ngx_http_request_t *r,
    ngx_http_fanout_ctx_t *ctx, ngx_uint_t status, ngx_str_t *type, off_t len);
static ngx_int_t ngx_http_fanout_target_header(ngx_http_request_t *r,
    ngx_str_t *target);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_str_t  ngx_http_fanout_json_type = ngx_string("application/json");


ngx_int_t
ngx_http_fanout_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len)
{
    ngx_int_t               rc;
    ngx_buf_t              *b;
    ngx_chain_t             out;
    ngx_http_fanout_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fanout_module);

    if (ctx) {
        /* what the client got: the shadows are compared with it */
        ctx->answer.status = status;
        ctx->answer.body = body;
        ctx->answer.len = len;
        ctx->answer.sent = 1;
    }

    rc = ngx_http_fanout_send_header(r, ctx, status, type, (off_t) len);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    if (len == 0) {
        return ngx_http_send_special(r, NGX_HTTP_LAST);
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * The header of an answer that streams ("first" over a 2xx that is not
 * JSON): the same headers as any answer of ours, no Content-Length.
 */

ngx_int_t
ngx_http_fanout_stream_header(ngx_http_fanout_ctx_t *ctx, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *target)
{
    if (ngx_http_fanout_target_header(ctx->request, target) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_fanout_send_header(ctx->request, ctx, status, type, -1);
}


/* a subsystem's headers for every answer, after those added before */

void
ngx_http_fanout_headers_add(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_headers_t *hw)
{
    ngx_http_fanout_headers_t  **last;

    hw->next = NULL;

    for (last = &ctx->headers_out; *last; last = &(*last)->next) {
        /* a few at most: the cache's, the limits' */
    }

    *last = hw;
}


/* what every answer of ours carries, then nginx's header filters */

static ngx_int_t
ngx_http_fanout_send_header(ngx_http_request_t *r, ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *type, off_t len)
{
    ngx_http_fanout_headers_t  *hw;

    for (hw = ctx ? ctx->headers_out : NULL; hw; hw = hw->next) {
        if (hw->write(r, hw->data) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    r->headers_out.status = status;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    return ngx_http_send_header(r);
}


/* X-Fanout-Target: the target whose answer goes as it came */

static ngx_int_t
ngx_http_fanout_target_header(ngx_http_request_t *r, ngx_str_t *target)
{
    ngx_table_elt_t  *h;

    if (target->len == 0) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Fanout-Target");
    h->value = *target;

    return NGX_OK;
}


/* an answer as it came: a "first" winner, or one from the cache */

ngx_int_t
ngx_http_fanout_send_as_is(ngx_http_fanout_ctx_t *ctx, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *target, u_char *body, size_t len)
{
    if (ngx_http_fanout_target_header(ctx->request, target) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_fanout_send(ctx->request, status, type, body, len);
}


ngx_int_t
ngx_http_fanout_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len)
{
    ngx_str_t  type;

    type = ngx_http_fanout_json_type;

    return ngx_http_fanout_send(r, status, &type, body, len);
}


ngx_int_t
ngx_http_fanout_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, const char *message)
{
    size_t     len;
    u_char    *body, *p;
    ngx_str_t  type;

    /* like nginx's own error pages, do not keep a connection with junk */
    if (status == NGX_HTTP_BAD_REQUEST
        || status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE
        || status == NGX_HTTP_INTERNAL_SERVER_ERROR)
    {
        r->keepalive = 0;
    }

    len = sizeof("{\"error\":\"\",\"message\":\"\"}") - 1
          + ngx_strlen(error) + ngx_strlen(message);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(body, "{\"error\":\"%s\",\"message\":\"%s\"}",
                    error, message);

    type = ngx_http_fanout_json_type;

    return ngx_http_fanout_send(r, status, &type, body, p - body);
}


/*
 * nginx's own error pages (413 for client_max_body_size, 400, 500, ...)
 * in a fan-out location become JSON, with nginx's status and connection
 * handling kept; a location's error_page still wins.
 */

static ngx_int_t
ngx_http_fanout_error_page(ngx_http_request_t *r)
{
    u_char                      *p;
    ngx_buf_t                   *b;
    const char                  *error;
    ngx_http_fanout_ctx_t       *ctx;
    ngx_http_fanout_loc_conf_t  *flcf;

    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fanout_module);

    ctx = ngx_http_get_module_ctx(r, ngx_http_fanout_module);

    if (ctx == NULL) {
        /* refused before the content phase: count it here */
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fanout_ctx_t));
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        ctx->request = r;
        ctx->conf = flcf;
        ctx->finished = 1;
        ngx_http_set_ctx(r, ctx, ngx_http_fanout_module);

        ngx_http_fanout_stats_count(ngx_http_fanout_stats_location(r, flcf),
                                    NGX_HTTP_FANOUT_LOC_REQUESTS);
        ngx_http_fanout_stats_count(ngx_http_fanout_stats_location(r, flcf),
                                    NGX_HTTP_FANOUT_LOC_REJECTED);
    }

    /* otherwise the pipeline's log stage has counted it */

    switch (r->err_status) {
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        error = "body_too_large";
        break;
    case NGX_HTTP_BAD_REQUEST:
        error = "bad_request";
        break;
    case NGX_HTTP_NOT_ALLOWED:
        error = "method_not_allowed";
        break;
    case NGX_HTTP_REQUEST_TIME_OUT:
        error = "body_timeout";
        break;
    default:
        error = "internal";
    }

    b = ngx_create_temp_buf(r->pool, 64 + NGX_INT_T_LEN);
    if (b == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(b->pos, "{\"error\":\"%s\",\"status\":%ui}",
                    error, r->err_status);
    b->last = p;
    b->last_buf = 1;
    b->last_in_chain = 1;

    ctx->error_page = b;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = b->last - b->pos;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    return ngx_http_next_header_filter(r);
}


/* the HTML of nginx's error page is replaced by the JSON made above */

static ngx_int_t
ngx_http_fanout_error_body(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t             *cl, out;
    ngx_http_fanout_ctx_t   *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fanout_module);

    if (ctx == NULL || ctx->error_page == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;

        if (cl->buf->last_buf) {
            out.buf = ctx->error_page;
            out.next = NULL;

            return ngx_http_next_body_filter(r, &out);
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_fanout_response_header_filter(ngx_http_request_t *r)
{
    ngx_http_fanout_loc_conf_t  *flcf;

    /* nginx's own error page is text/html; an answer of ours is not */
    if (r == r->main && r->err_status >= NGX_HTTP_BAD_REQUEST
        && r->headers_out.content_type.len == sizeof("text/html") - 1
        && ngx_strncmp(r->headers_out.content_type.data, "text/html",
                       sizeof("text/html") - 1)
           == 0)
    {
        flcf = ngx_http_get_module_loc_conf(r, ngx_http_fanout_module);

        if (flcf->targets) {
            return ngx_http_fanout_error_page(r);
        }
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_fanout_response_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    if (r == r->main && r->err_status >= NGX_HTTP_BAD_REQUEST) {
        return ngx_http_fanout_error_body(r, in);
    }

    return ngx_http_next_body_filter(r, in);
}


ngx_int_t
ngx_http_fanout_response_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_fanout_response_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_fanout_response_body_filter;

    return NGX_OK;
}
