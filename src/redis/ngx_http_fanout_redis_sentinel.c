/*
 * fanout_redis sentinel=: where the master is.  Each worker keeps one
 * connection to one of the Sentinels, asks SENTINEL
 * get-master-addr-by-name, then subscribes to +switch-master; the client
 * (ngx_http_fanout_redis.c) is told of every move through the function it
 * gave, and asks again (ngx_http_fanout_sentinel_again()) when its master
 * answers READONLY, cannot be reached or does not answer.  All of it on
 * the event loop, with timers: a Sentinel that does not answer is left
 * for the next one.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_redis_adapter.h"
#include "ngx_http_fanout_redis_log.h"
#include "ngx_http_fanout_redis_sentinel.h"


#define NGX_HTTP_FANOUT_SENTINEL_BACKOFF  100


/* the Sentinel connection of this worker, and the master it names */
typedef struct {
    redisAsyncContext                *ac;
    ngx_uint_t                        state;
    ngx_uint_t                        next;      /* the Sentinel asked */
    ngx_event_t                       timer;
    ngx_msec_t                        backoff;
    ngx_msec_t                        asked;     /* the last ask began */
    u_char                            host[NGX_SOCKADDR_STRLEN + 1];
    in_port_t                         port;      /* 0: no master known */
} ngx_http_fanout_redis_sentinel_t;

#define NGX_HTTP_FANOUT_SENTINEL_IDLE        0
#define NGX_HTTP_FANOUT_SENTINEL_CONNECTING  1
#define NGX_HTTP_FANOUT_SENTINEL_ASKING      2
#define NGX_HTTP_FANOUT_SENTINEL_LISTENING   3

static void ngx_http_fanout_sentinel_connect(void);
static void ngx_http_fanout_sentinel_timer(ngx_event_t *ev);

static ngx_http_fanout_redis_sentinel_t   ngx_http_fanout_sentinel;
static ngx_http_fanout_redis_conf_t      *ngx_http_fanout_sentinel_conf;
static ngx_http_fanout_sentinel_moved_pt  ngx_http_fanout_sentinel_moved;


static void
ngx_http_fanout_sentinel_schedule(ngx_uint_t advance)
{
    ngx_msec_t  delay;

    ngx_http_fanout_sentinel.state = NGX_HTTP_FANOUT_SENTINEL_IDLE;

    if (ngx_http_fanout_sentinel.timer.timer_set) {
        ngx_del_timer(&ngx_http_fanout_sentinel.timer);
    }

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    /* the next Sentinel; a backoff of at most 2 s: a failover is urgent */
    ngx_http_fanout_sentinel.next += advance;
    delay = ngx_http_fanout_sentinel.backoff
            + ngx_random() % (ngx_http_fanout_sentinel.backoff / 4 + 1);
    ngx_http_fanout_sentinel.backoff =
                        ngx_min(ngx_http_fanout_sentinel.backoff * 2, 2000);

    ngx_add_timer(&ngx_http_fanout_sentinel.timer, delay);
}


static void
ngx_http_fanout_sentinel_drop(ngx_uint_t advance)
{
    redisAsyncContext  *ac;

    ac = ngx_http_fanout_sentinel.ac;

    /* the disconnect callback sees another ac: the drop was ours */
    ngx_http_fanout_sentinel.ac = NULL;

    ngx_http_fanout_sentinel_schedule(advance);

    if (ac) {
        redisAsyncFree(ac);
    }
}


/* the master named: the client is told */

static void
ngx_http_fanout_sentinel_master(u_char *host, size_t hlen, u_char *port,
    size_t plen, const char *how)
{
    ngx_int_t                      n;
    ngx_http_fanout_redis_conf_t  *rcf;

    rcf = ngx_http_fanout_sentinel_conf;
    n = ngx_atoi(port, plen);

    if (n <= 0 || n > 65535 || hlen == 0 || hlen > NGX_SOCKADDR_STRLEN) {
        return;
    }

    if (ngx_http_fanout_sentinel.port == (in_port_t) n
        && ngx_strlen(ngx_http_fanout_sentinel.host) == hlen
        && ngx_strncmp(ngx_http_fanout_sentinel.host, host, hlen) == 0)
    {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "fanout redis: master \"%V\" is at %*s:%i (%s)",
                  &rcf->master, hlen, host, n, how);

    ngx_memcpy(ngx_http_fanout_sentinel.host, host, hlen);
    ngx_http_fanout_sentinel.host[hlen] = '\0';
    ngx_http_fanout_sentinel.port = (in_port_t) n;

    ngx_http_fanout_redis_log_master(ngx_http_fanout_sentinel.host,
                                     ngx_http_fanout_sentinel.port);

    /* the client's connections go there */
    ngx_http_fanout_sentinel_moved();
}


/* +switch-master: "NAME OLD-IP OLD-PORT NEW-IP NEW-PORT" */

static void
ngx_http_fanout_sentinel_message(redisAsyncContext *ac, void *r, void *data)
{
    u_char      *p, *end, *f[5];
    size_t       flen[5];
    ngx_uint_t   k;
    redisReply  *reply, *m;

    reply = r;

    if (reply == NULL || ac != ngx_http_fanout_sentinel.ac
        || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[0]->len != 7
        || ngx_strncmp(reply->element[0]->str, "message", 7) != 0
        || reply->element[2]->type != REDIS_REPLY_STRING)
    {
        /* the subscription's confirmation, or the context being freed */
        return;
    }

    m = reply->element[2];
    p = (u_char *) m->str;
    end = p + m->len;

    for (k = 0; k < 5; k++) {
        f[k] = p;

        while (p < end && *p != ' ') {
            p++;
        }

        flen[k] = p - f[k];
        p++;
    }

    if (flen[0] != ngx_http_fanout_sentinel_conf->master.len
        || ngx_strncmp(f[0], ngx_http_fanout_sentinel_conf->master.data,
                       flen[0])
           != 0)
    {
        /* another master of the same Sentinels */
        return;
    }

    ngx_http_fanout_sentinel_master(f[3], flen[3], f[4], flen[4],
                                    "+switch-master");
}


static void
ngx_http_fanout_sentinel_addr(redisAsyncContext *ac, void *r, void *data)
{
    redisReply  *reply;

    reply = r;

    if (reply == NULL || ac != ngx_http_fanout_sentinel.ac) {
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_http_fanout_redis_fail(ngx_cycle->log,
                                   NGX_HTTP_FANOUT_REDIS_CONNECT,
                                   "has a Sentinel that names no such master",
                                   reply->type == REDIS_REPLY_ERROR
                                   ? reply->str : NULL);
        ngx_http_fanout_sentinel_drop(1);
        return;
    }

    ngx_http_fanout_sentinel_master((u_char *) reply->element[0]->str,
                                    reply->element[0]->len,
                                    (u_char *) reply->element[1]->str,
                                    reply->element[1]->len,
                                    "asked a Sentinel");

    /* then told of every switch; a subscription has no timer */
    if (redisAsyncCommand(ac, ngx_http_fanout_sentinel_message, NULL,
                          "SUBSCRIBE +switch-master")
        != REDIS_OK)
    {
        ngx_http_fanout_sentinel_drop(1);
        return;
    }

    ngx_http_fanout_sentinel.state = NGX_HTTP_FANOUT_SENTINEL_LISTENING;
    ngx_http_fanout_sentinel.backoff = NGX_HTTP_FANOUT_SENTINEL_BACKOFF;

    if (ngx_http_fanout_sentinel.timer.timer_set) {
        ngx_del_timer(&ngx_http_fanout_sentinel.timer);
    }
}


static void
ngx_http_fanout_sentinel_on_connect(const redisAsyncContext *ac, int status)
{
    size_t                         len[3];
    const char                    *argv[3];
    ngx_http_fanout_redis_conf_t  *rcf;

    rcf = ngx_http_fanout_sentinel_conf;

    if (ac != ngx_http_fanout_sentinel.ac) {
        return;
    }

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        ngx_http_fanout_redis_fail(ngx_cycle->log,
                                   NGX_HTTP_FANOUT_REDIS_CONNECT,
                                   "has a Sentinel that cannot be reached",
                                   ac->errstr);
        ngx_http_fanout_sentinel.ac = NULL;
        ngx_http_fanout_sentinel_schedule(1);
        return;
    }

    if (rcf->sentinel_password.len) {
        /* pipelined: a refusal shows in the answer to the question */
        argv[0] = "AUTH";
        len[0] = 4;
        argv[1] = (const char *) rcf->sentinel_password.data;
        len[1] = rcf->sentinel_password.len;

        if (redisAsyncCommandArgv((redisAsyncContext *) ac, NULL, NULL, 2,
                                  argv, len)
            != REDIS_OK)
        {
            ngx_http_fanout_sentinel_drop(1);
            return;
        }
    }

    argv[0] = "SENTINEL";
    len[0] = 8;
    argv[1] = "get-master-addr-by-name";
    len[1] = 23;
    argv[2] = (const char *) rcf->master.data;
    len[2] = rcf->master.len;

    if (redisAsyncCommandArgv((redisAsyncContext *) ac,
                              ngx_http_fanout_sentinel_addr, NULL, 3, argv,
                              len)
        != REDIS_OK)
    {
        ngx_http_fanout_sentinel_drop(1);
        return;
    }

    ngx_http_fanout_sentinel.state = NGX_HTTP_FANOUT_SENTINEL_ASKING;

    if (ngx_http_fanout_sentinel.timer.timer_set) {
        ngx_del_timer(&ngx_http_fanout_sentinel.timer);
    }

    ngx_add_timer(&ngx_http_fanout_sentinel.timer, rcf->timeout);
}


static void
ngx_http_fanout_sentinel_on_disconnect(const redisAsyncContext *ac,
    int status)
{
    if (ac != ngx_http_fanout_sentinel.ac) {
        return;
    }

    ngx_http_fanout_sentinel.ac = NULL;

    ngx_http_fanout_redis_fail(ngx_cycle->log, NGX_HTTP_FANOUT_REDIS_CLOSED,
                               "has a Sentinel that closed the connection",
                               status == REDIS_OK ? NULL : ac->errstr);

    ngx_http_fanout_sentinel_schedule(1);
}


static void
ngx_http_fanout_sentinel_timer(ngx_event_t *ev)
{
    if (ngx_http_fanout_sentinel.state == NGX_HTTP_FANOUT_SENTINEL_IDLE) {
        ngx_http_fanout_sentinel_connect();
        return;
    }

    /* connecting or asking took too long: the next one */
    ngx_http_fanout_redis_fail(ev->log, NGX_HTTP_FANOUT_REDIS_TIMEOUT,
                               "has a Sentinel that did not answer in time",
                               NULL);
    ngx_http_fanout_sentinel_drop(1);
}


static void
ngx_http_fanout_sentinel_connect(void)
{
    redisAsyncContext             *ac;
    ngx_http_fanout_redis_addr_t  *a;
    ngx_http_fanout_redis_conf_t  *rcf;

    rcf = ngx_http_fanout_sentinel_conf;
    a = rcf->sentinels->elts;
    a = &a[ngx_http_fanout_sentinel.next % rcf->sentinels->nelts];

    ngx_http_fanout_sentinel.asked = ngx_current_msec;

    ac = redisAsyncConnect((const char *) a->host.data, a->port);

    if (ac == NULL || ac->err) {
        ngx_http_fanout_redis_fail(ngx_cycle->log,
                                   NGX_HTTP_FANOUT_REDIS_CONNECT,
                                   "has a Sentinel that cannot be reached",
                                   ac ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }

        ngx_http_fanout_sentinel_schedule(1);
        return;
    }

    if (ngx_http_fanout_redis_tls_start(ac, ngx_http_fanout_sentinel_conf->ssl)
        != NGX_OK
        || ngx_http_fanout_redis_attach(ac, &ngx_http_fanout_sentinel,
                                        ngx_cycle->log)
           != NGX_OK)
    {
        redisAsyncFree(ac);
        ngx_http_fanout_sentinel_schedule(1);
        return;
    }

    ngx_http_fanout_sentinel.ac = ac;
    ngx_http_fanout_sentinel.state = NGX_HTTP_FANOUT_SENTINEL_CONNECTING;

    redisAsyncSetConnectCallback(ac, ngx_http_fanout_sentinel_on_connect);
    redisAsyncSetDisconnectCallback(ac,
                                    ngx_http_fanout_sentinel_on_disconnect);

    ngx_add_timer(&ngx_http_fanout_sentinel.timer, rcf->connect_timeout);
}


/* READONLY, or a master that cannot be reached: ask again, twice a second
 * at most (every connection of every request may say so) */

void
ngx_http_fanout_sentinel_again(void)
{
    if (ngx_http_fanout_sentinel.state != NGX_HTTP_FANOUT_SENTINEL_LISTENING
        || ngx_current_msec - ngx_http_fanout_sentinel.asked < 500)
    {
        return;
    }

    ngx_http_fanout_sentinel.backoff = 1;
    ngx_http_fanout_sentinel_drop(0);
}


ngx_int_t
ngx_http_fanout_sentinel_init(ngx_cycle_t *cycle,
    ngx_http_fanout_redis_conf_t *rcf, ngx_http_fanout_sentinel_moved_pt moved)
{
    ngx_http_fanout_sentinel_conf = rcf;
    ngx_http_fanout_sentinel_moved = moved;

    ngx_http_fanout_sentinel.timer.handler = ngx_http_fanout_sentinel_timer;
    ngx_http_fanout_sentinel.timer.data = &ngx_http_fanout_sentinel;
    ngx_http_fanout_sentinel.timer.log = cycle->log;
    ngx_http_fanout_sentinel.timer.cancelable = 1;
    ngx_http_fanout_sentinel.backoff = NGX_HTTP_FANOUT_SENTINEL_BACKOFF;

    ngx_http_fanout_sentinel_connect();

    return NGX_OK;
}


/* the master's address, NUL-terminated; its port 0 while none is known */

in_port_t
ngx_http_fanout_sentinel_where(u_char **host)
{
    *host = ngx_http_fanout_sentinel.host;

    return ngx_http_fanout_sentinel.port;
}


void
ngx_http_fanout_sentinel_exit(void)
{
    redisAsyncContext  *ac;

    if (ngx_http_fanout_sentinel.timer.timer_set) {
        ngx_del_timer(&ngx_http_fanout_sentinel.timer);
    }

    ac = ngx_http_fanout_sentinel.ac;
    ngx_http_fanout_sentinel.ac = NULL;

    if (ac) {
        redisAsyncFree(ac);
    }
}
