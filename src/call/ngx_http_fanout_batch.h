/*
 * fanout_batch: a client's batch, a call per item or chunk.
 */

#ifndef _NGX_HTTP_FANOUT_BATCH_H_INCLUDED_
#define _NGX_HTTP_FANOUT_BATCH_H_INCLUDED_


#include "ngx_http_fanout.h"


/* fanout_batch: the client's batch, a call per item (or chunk) */
struct ngx_http_fanout_batch_conf_s {
    ngx_str_t                   field;         /* where the array is */
    ngx_uint_t                  max_items;
    ngx_uint_t                  chunk;         /* 0: an item a call */
    ngx_uint_t                  concurrency;   /* calls at once; 0: all */
    u_char                     *file;          /* where it was given */
    ngx_uint_t                  line;
};


/* a request's batch (ngx_http_fanout_batch.c), read by the calls */
struct ngx_http_fanout_batch_s {
    ngx_str_t                   body;          /* the client's, in memory */
    fanout_batch_t              split;         /* its array and items */
    ngx_uint_t                  ncalls;        /* per target */
    ngx_uint_t                  ntargets;      /* per call */
    ngx_http_request_body_t    *bodies;        /* ncalls: what each sends */
    off_t                      *lengths;
};


ngx_int_t ngx_http_fanout_batch_stage(ngx_http_fanout_ctx_t *ctx);
char *ngx_http_fanout_batch(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_HTTP_FANOUT_BATCH_H_INCLUDED_ */
