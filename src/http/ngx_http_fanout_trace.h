/*
 * fanout_trace and fanout_request_id: W3C trace context and request ids.
 */

#ifndef _NGX_HTTP_FANOUT_TRACE_H_INCLUDED_
#define _NGX_HTTP_FANOUT_TRACE_H_INCLUDED_


#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"


/* a request's trace and request id (ngx_http_fanout_trace.c) */
struct ngx_http_fanout_trace_ctx_s {
    fanout_trace_t              ids;           /* trace id, the calls'
                                                  parent span, flags */
    ngx_str_t                   request_id;    /* empty: not sent */
    ngx_list_t                  rid_list;      /* X-Request-ID, then the
                                                  client's headers */
    ngx_table_elt_t             rid_elt;
    unsigned                    traced:1;
    unsigned                    fresh:1;       /* a new trace, ours */
};


/* $request_id's index: kept in the configuration, as a reload renumbers */
#define ngx_http_fanout_rid(r)                                                \
    ((ngx_uint_t) ((ngx_http_fanout_main_conf_t *)                            \
        ngx_http_get_module_main_conf(r, ngx_http_fanout_module))->request_id)


ngx_int_t ngx_http_fanout_trace_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_fanout_trace_start(ngx_http_fanout_ctx_t *ctx);
ngx_list_t *ngx_http_fanout_trace_headers(ngx_http_fanout_ctx_t *ctx,
    ngx_list_t *shared, u_char *span);


#endif /* _NGX_HTTP_FANOUT_TRACE_H_INCLUDED_ */
