/*
 * Cache coalescing (ngx_http_fanout_coalesce.c): leaders in this worker,
 * the Redis lock and its lease, the waits that resume the cache stage.
 */

#ifndef _NGX_HTTP_FANOUT_COALESCE_H_INCLUDED_
#define _NGX_HTTP_FANOUT_COALESCE_H_INCLUDED_


#include "ngx_http_fanout.h"


/* the leader in this worker of a key, or NULL */
ngx_http_fanout_ctx_t *ngx_http_fanout_coalesce_leader(ngx_str_t *key);

/* wait on this worker's leader (NGX_OK), or there is none (NGX_DECLINED) */
ngx_int_t ngx_http_fanout_coalesce_join(ngx_http_fanout_ctx_t *ctx);

/* the request fans out for its key: others in this worker may wait on it */
void ngx_http_fanout_coalesce_add(ngx_http_fanout_ctx_t *ctx);

/* "fanout:lock:LOCATION:SHA256", made once */
ngx_str_t *ngx_http_fanout_coalesce_lock_key(ngx_http_fanout_ctx_t *ctx);

/* the Redis lock won: a lease renewed while the request lives */
void ngx_http_fanout_coalesce_lead(ngx_http_fanout_ctx_t *ctx);

/* another worker or instance leads: poll Redis for its answer */
void ngx_http_fanout_coalesce_wait(ngx_http_fanout_ctx_t *ctx);

/* the answer, to this worker's waiters; the lock given back; gone */
void ngx_http_fanout_coalesce_hand_over(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *type, ngx_str_t *target, u_char *body,
    size_t len);
void ngx_http_fanout_coalesce_unlock(ngx_http_fanout_ctx_t *ctx);
/* the lock given back once an entry is stored, past the request */
void ngx_http_fanout_coalesce_del(ngx_str_t *lock, ngx_log_t *log);
void ngx_http_fanout_coalesce_leave(ngx_http_fanout_ctx_t *ctx);


#endif /* _NGX_HTTP_FANOUT_COALESCE_H_INCLUDED_ */
