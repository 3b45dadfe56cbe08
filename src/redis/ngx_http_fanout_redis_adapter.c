/*
 * hiredis's async context on nginx's event loop: the Redis socket becomes
 * an nginx connection whose events call hiredis's read and write handlers.
 *
 * Events are level-triggered, as in hiredis's own adapters: hiredis reads
 * at most 16k per call and expects to be called again while data is left,
 * and a command queued while the socket is writable needs a write event.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_redis_adapter.h"
#include "ngx_http_fanout_redis_log.h"

#if (NGX_HTTP_FANOUT_HIREDIS_SSL)
#include <hiredis/hiredis_ssl.h>
#endif


typedef struct {
    redisAsyncContext  *ac;
    ngx_connection_t   *c;
} ngx_http_fanout_redis_ev_t;


static void
ngx_http_fanout_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t            *c;
    ngx_http_fanout_redis_ev_t  *e;

    c = ev->data;
    e = c->data;

    if (e->ac) {
        redisAsyncHandleRead(e->ac);
    }
}


static void
ngx_http_fanout_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t            *c;
    ngx_http_fanout_redis_ev_t  *e;

    c = ev->data;
    e = c->data;

    if (e->ac) {
        redisAsyncHandleWrite(e->ac);
    }
}


static void
ngx_http_fanout_redis_add(ngx_http_fanout_redis_ev_t *e, ngx_uint_t write)
{
    ngx_event_t  *ev;

    if (e->c == NULL) {
        return;
    }

    ev = write ? e->c->write : e->c->read;

    if (!ev->active
        && ngx_add_event(ev, write ? NGX_WRITE_EVENT : NGX_READ_EVENT,
                         NGX_LEVEL_EVENT)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                      "fanout redis: adding an event failed");
    }
}


static void
ngx_http_fanout_redis_del(ngx_http_fanout_redis_ev_t *e, ngx_uint_t write)
{
    ngx_event_t  *ev;

    if (e->c == NULL) {
        return;
    }

    ev = write ? e->c->write : e->c->read;

    /*
     * On epoll the flags of a deletion set the mode of the direction that
     * stays: level, like the rest.  Never NGX_CLOSE_EVENT or
     * NGX_DISABLE_EVENT here.
     */

    if (ev->active
        && ngx_del_event(ev, write ? NGX_WRITE_EVENT : NGX_READ_EVENT,
                         NGX_LEVEL_EVENT)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                      "fanout redis: deleting an event failed");
    }
}


static void
ngx_http_fanout_redis_add_read(void *data)
{
    ngx_http_fanout_redis_add(data, 0);
}


static void
ngx_http_fanout_redis_del_read(void *data)
{
    ngx_http_fanout_redis_del(data, 0);
}


static void
ngx_http_fanout_redis_add_write(void *data)
{
    ngx_http_fanout_redis_add(data, 1);
}


static void
ngx_http_fanout_redis_del_write(void *data)
{
    ngx_http_fanout_redis_del(data, 1);
}


/*
 * hiredis is freeing the context: drop the nginx connection but not the
 * socket, which hiredis closes itself.
 */

static void
ngx_http_fanout_redis_cleanup(void *data)
{
    ngx_http_fanout_redis_ev_t *e = data;

    ngx_connection_t  *c;

    c = e->c;

    if (c) {
        ngx_http_fanout_redis_del(e, 0);
        ngx_http_fanout_redis_del(e, 1);

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;
    }

    e->c = NULL;
    e->ac = NULL;

    ngx_free(e);
}


ngx_int_t
ngx_http_fanout_redis_attach(redisAsyncContext *ac, void *data,
    ngx_log_t *log)
{
    ngx_connection_t            *c;
    ngx_http_fanout_redis_ev_t  *e;

    e = ngx_alloc(sizeof(ngx_http_fanout_redis_ev_t), log);
    if (e == NULL) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(ac->c.fd, log);
    if (c == NULL) {
        ngx_free(e);
        return NGX_ERROR;
    }

    /* ngx_get_connection() leaves the events without a log */
    c->read->log = log;
    c->write->log = log;
    c->read->handler = ngx_http_fanout_redis_read_handler;
    c->write->handler = ngx_http_fanout_redis_write_handler;
    c->data = e;

    e->ac = ac;
    e->c = c;

    ac->ev.data = e;
    ac->ev.addRead = ngx_http_fanout_redis_add_read;
    ac->ev.delRead = ngx_http_fanout_redis_del_read;
    ac->ev.addWrite = ngx_http_fanout_redis_add_write;
    ac->ev.delWrite = ngx_http_fanout_redis_del_write;
    ac->ev.cleanup = ngx_http_fanout_redis_cleanup;

    ac->data = data;

    return NGX_OK;
}


/* tls: the handshake goes with the connection, on the event loop (a
 * client's or a Sentinel's; the context made at configuration) */

ngx_int_t
ngx_http_fanout_redis_tls_start(redisAsyncContext *ac, void *ssl)
{
#if (NGX_HTTP_FANOUT_HIREDIS_SSL)
    if (ssl && redisInitiateSSLWithContext(&ac->c, ssl) != REDIS_OK) {
        ngx_http_fanout_redis_fail(ngx_cycle->log,
                                   NGX_HTTP_FANOUT_REDIS_CONNECT,
                                   "refused TLS", ac->c.errstr);
        return NGX_ERROR;
    }
#endif

    return NGX_OK;
}
