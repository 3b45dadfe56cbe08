/*
 * The per-worker Redis client.  Each worker keeps "pool" connections, made
 * in init_process and remade after any failure with a backoff.  A command
 * goes to the next ready connection, pipelined with others; every command
 * has a timer, and a command that times out takes its connection down, so
 * that a stopped Redis costs at most one timeout per request.
 *
 * With sentinel=, the master's address comes from the Sentinels
 * (ngx_http_fanout_redis_sentinel.c): a switch takes the pool's connections
 * down and makes them to the new master (ngx_http_fanout_redis_moved()).
 * A READONLY answer (a master demoted under us), a master that cannot be
 * reached or does not answer asks the Sentinels again.  Errors are counted
 * and logged by ngx_http_fanout_redis_log.c.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_redis_adapter.h"
#include "ngx_http_fanout_redis_log.h"
#include "ngx_http_fanout_redis_sentinel.h"
#include "ngx_http_fanout_stats.h"

#include <openssl/sha.h>

#if (NGX_HTTP_FANOUT_HIREDIS_SSL)
#include <hiredis/hiredis_ssl.h>
#endif


#define NGX_HTTP_FANOUT_REDIS_BACKOFF_MIN   100
#define NGX_HTTP_FANOUT_REDIS_BACKOFF_MAX   5000
#define NGX_HTTP_FANOUT_REDIS_MAX_PENDING   4096


typedef enum {
    NGX_HTTP_FANOUT_REDIS_IDLE = 0,
    NGX_HTTP_FANOUT_REDIS_CONNECTING,
    NGX_HTTP_FANOUT_REDIS_HELLO,         /* AUTH and SELECT sent */
    NGX_HTTP_FANOUT_REDIS_READY
} ngx_http_fanout_redis_state_e;


typedef struct {
    redisAsyncContext                *ac;
    ngx_http_fanout_redis_state_e     state;
    ngx_event_t                       timer;     /* connect or reconnect */
    ngx_msec_t                        backoff;
    ngx_queue_t                       ops;       /* sent, oldest first */
    ngx_uint_t                        pending;
    ngx_uint_t                        hello;     /* AUTH/SELECT replies due */
    ngx_uint_t                        index;
} ngx_http_fanout_redis_conn_t;


struct ngx_http_fanout_redis_op_s {
    ngx_queue_t                       queue;
    ngx_http_fanout_redis_conn_t     *conn;
    ngx_event_t                       timer;
    ngx_msec_t                        sent;
    ngx_http_fanout_redis_handler_pt  handler;   /* NULL: cancelled */
    void                             *data;

    /* EVALSHA: what to send again as EVAL when Redis lacks the script */
    ngx_http_fanout_redis_script_t   *script;
    int                               argc;
    const char                      **argv;
    size_t                           *argvlen;
};


static void ngx_http_fanout_redis_connect(ngx_http_fanout_redis_conn_t *rc);
static ngx_int_t ngx_http_fanout_redis_noscript(ngx_http_fanout_redis_op_t *op,
    redisReply *reply);
static void ngx_http_fanout_redis_reply(redisAsyncContext *ac, void *r,
    void *data);
static void ngx_http_fanout_redis_drop(ngx_http_fanout_redis_conn_t *rc,
    ngx_http_fanout_redis_error_e error, const char *why);



static ngx_http_fanout_redis_conf_t   *ngx_http_fanout_redis_conf;
static ngx_http_fanout_redis_conn_t   *ngx_http_fanout_redis_conns;
static ngx_uint_t                      ngx_http_fanout_redis_next;
static ngx_http_fanout_stats_t        *ngx_http_fanout_redis_stats;

/* the reply of a command, or NULL when the context is being freed */

static void
ngx_http_fanout_redis_reply(redisAsyncContext *ac, void *r, void *data)
{
    ngx_http_fanout_redis_op_t *op = data;

    redisReply                        *reply;
    ngx_http_fanout_redis_handler_pt   handler;

    reply = r;

    ngx_queue_remove(&op->queue);
    op->conn->pending--;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (reply && ngx_http_fanout_redis_stats) {
        ngx_http_fanout_stats_latency(ngx_http_fanout_redis_stats,
                                      ngx_current_msec - op->sent);
    }

    handler = op->handler;

    if (reply == NULL) {
        if (handler) {
            handler(op->data, NULL, NGX_HTTP_FANOUT_REDIS_CLOSED);
        }

    } else if (reply->type == REDIS_REPLY_ERROR
               && ngx_http_fanout_redis_noscript(op, reply) == NGX_OK)
    {
        /* sent again as EVAL, on the same connection: not over yet */
        return;

    } else if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_fanout_redis_fail(ngx_cycle->log,
                                   NGX_HTTP_FANOUT_REDIS_REPLY_ERROR,
                                   "answered an error", reply->str);
        if (handler) {
            handler(op->data, NULL, NGX_HTTP_FANOUT_REDIS_REPLY_ERROR);
        }

        if (reply->len >= 8 && ngx_strncmp(reply->str, "READONLY", 8) == 0
            && ngx_http_fanout_redis_conf->sentinels)
        {
            /* a replica now: the master moved, ask where to */
            ngx_http_fanout_sentinel_again();
        }

    } else if (handler) {
        handler(op->data, reply, NGX_HTTP_FANOUT_REDIS_OK);
    }

    if (op->argv) {
        ngx_free(op->argv);
    }

    ngx_free(op);
}


static void
ngx_http_fanout_redis_op_timeout(ngx_event_t *ev)
{
    ngx_http_fanout_redis_op_t *op = ev->data;

    ngx_http_fanout_redis_handler_pt   handler;

    handler = op->handler;
    op->handler = NULL;

    ngx_http_fanout_redis_fail(ev->log, NGX_HTTP_FANOUT_REDIS_TIMEOUT,
                               "did not answer in time", NULL);

    if (handler) {
        handler(op->data, NULL, NGX_HTTP_FANOUT_REDIS_TIMEOUT);
    }

    if (ngx_http_fanout_redis_conf->sentinels) {
        /*
         * A master that takes connections but answers nothing (stopped,
         * a stuck host) looks alive to a connect: and its +switch-master
         * may have been missed.  Ask again (at most twice a second).
         */
        ngx_http_fanout_sentinel_again();
    }

    /*
     * Replies come in order: a connection that kept one command waiting
     * that long is stuck (a stopped or overloaded Redis).  Freeing it ends
     * every command on it at once; this op included.
     */

    ngx_http_fanout_redis_drop(op->conn, NGX_HTTP_FANOUT_REDIS_OK, NULL);
}


static ngx_http_fanout_redis_op_t *
ngx_http_fanout_redis_send(ngx_http_fanout_redis_conn_t *rc, ngx_log_t *log,
    int argc, const char **argv, const size_t *argvlen,
    ngx_http_fanout_redis_handler_pt handler, void *data)
{
    ngx_http_fanout_redis_op_t  *op;

    op = ngx_alloc(sizeof(ngx_http_fanout_redis_op_t), log);
    if (op == NULL) {
        return NULL;
    }

    ngx_memzero(op, sizeof(ngx_http_fanout_redis_op_t));

    op->conn = rc;
    op->handler = handler;
    op->data = data;
    op->sent = ngx_current_msec;

    /* the arguments are copied into hiredis's buffer at once */
    if (redisAsyncCommandArgv(rc->ac, ngx_http_fanout_redis_reply, op, argc,
                              argv, argvlen)
        != REDIS_OK)
    {
        ngx_free(op);
        return NULL;
    }

    ngx_queue_insert_tail(&rc->ops, &op->queue);
    rc->pending++;

    op->timer.handler = ngx_http_fanout_redis_op_timeout;
    op->timer.data = op;
    op->timer.log = ngx_cycle->log;

    /*
     * A request waiting on the reply keeps its worker from exiting on a
     * reload or quit until the reply or the timeout, which fails it open;
     * a command nobody waits for (a SET, a sample) does not.
     */
    op->timer.cancelable = (handler == NULL);

    ngx_add_timer(&op->timer, ngx_http_fanout_redis_conf->timeout);

    ngx_http_fanout_redis_count(NGX_HTTP_FANOUT_REDIS_COMMANDS, 1);

    return op;
}


ngx_http_fanout_redis_op_t *
ngx_http_fanout_redis_command(ngx_log_t *log, int argc, const char **argv,
    const size_t *argvlen, ngx_http_fanout_redis_handler_pt handler,
    void *data)
{
    ngx_uint_t                     i, n;
    ngx_http_fanout_redis_op_t    *op;
    ngx_http_fanout_redis_conn_t  *rc;

    n = ngx_http_fanout_redis_conf ? ngx_http_fanout_redis_conf->pool : 0;

    for (i = 0; i < n; i++) {
        rc = &ngx_http_fanout_redis_conns[ngx_http_fanout_redis_next++ % n];

        if (rc->state != NGX_HTTP_FANOUT_REDIS_READY
            || rc->pending >= NGX_HTTP_FANOUT_REDIS_MAX_PENDING)
        {
            continue;
        }

        op = ngx_http_fanout_redis_send(rc, log, argc, argv, argvlen,
                                        handler, data);
        if (op) {
            return op;
        }

        ngx_http_fanout_redis_fail(log, NGX_HTTP_FANOUT_REDIS_CLOSED,
                                   "refused a command", rc->ac->errstr);
        goto failed;
    }

    ngx_http_fanout_redis_fail(log, NGX_HTTP_FANOUT_REDIS_DOWN,
                               "has no connection ready", NULL);

failed:

    return NULL;
}


void
ngx_http_fanout_redis_cancel(ngx_http_fanout_redis_op_t *op)
{
    /* the reply still comes and frees the op; nobody is told */
    op->handler = NULL;
    op->timer.cancelable = 1;
}


/* scripts: EVALSHA, and EVAL once when Redis answers NOSCRIPT */

void
ngx_http_fanout_redis_script_init(ngx_http_fanout_redis_script_t *script,
    const char *body)
{
    u_char  digest[SHA_DIGEST_LENGTH];

    script->body.data = (u_char *) body;
    script->body.len = ngx_strlen(body);

    /* the name Redis gives the script */
    SHA1(script->body.data, script->body.len, digest);

    ngx_hex_dump(script->sha1, digest, SHA_DIGEST_LENGTH);
}


/* argv[0] and argv[1] are left for "EVALSHA" and the digest */

ngx_http_fanout_redis_op_t *
ngx_http_fanout_redis_eval(ngx_log_t *log,
    ngx_http_fanout_redis_script_t *script, int argc, const char **argv,
    size_t *argvlen, ngx_http_fanout_redis_handler_pt handler, void *data)
{
    u_char                      *p;
    size_t                       size;
    ngx_int_t                    i;
    ngx_http_fanout_redis_op_t  *op;

    argv[0] = "EVALSHA";
    argvlen[0] = sizeof("EVALSHA") - 1;
    argv[1] = (const char *) script->sha1;
    argvlen[1] = 40;

    op = ngx_http_fanout_redis_command(log, argc, argv, argvlen, handler,
                                       data);
    if (op == NULL) {
        return NULL;
    }

    /* a copy of the arguments, for EVAL if the script is not loaded */

    size = argc * (sizeof(char *) + sizeof(size_t));

    for (i = 2; i < argc; i++) {
        size += argvlen[i];
    }

    op->argv = ngx_alloc(size, log);
    if (op->argv == NULL) {
        /* then a NOSCRIPT answer is an error like any other */
        return op;
    }

    op->argvlen = (size_t *) (op->argv + argc);
    p = (u_char *) (op->argvlen + argc);

    op->argv[0] = "EVAL";
    op->argvlen[0] = sizeof("EVAL") - 1;
    op->argv[1] = (const char *) script->body.data;
    op->argvlen[1] = script->body.len;

    for (i = 2; i < argc; i++) {
        op->argv[i] = (const char *) p;
        op->argvlen[i] = argvlen[i];
        p = ngx_cpymem(p, argv[i], argvlen[i]);
    }

    op->argc = argc;
    op->script = script;

    return op;
}


static ngx_int_t
ngx_http_fanout_redis_noscript(ngx_http_fanout_redis_op_t *op,
    redisReply *reply)
{
    ngx_http_fanout_redis_conn_t  *rc;

    if (op->script == NULL || op->argv == NULL
        || reply->len < 8 || ngx_strncmp(reply->str, "NOSCRIPT", 8) != 0)
    {
        return NGX_DECLINED;
    }

    rc = op->conn;
    op->script = NULL;

    if (rc->ac == NULL
        || redisAsyncCommandArgv(rc->ac, ngx_http_fanout_redis_reply, op,
                                 op->argc, op->argv, op->argvlen)
           != REDIS_OK)
    {
        return NGX_DECLINED;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "fanout redis: script not loaded, sent with EVAL");

    ngx_queue_insert_tail(&rc->ops, &op->queue);
    rc->pending++;

    /* the EVAL is a command of its own: it waits no longer than any */
    op->sent = ngx_current_msec;
    ngx_add_timer(&op->timer, ngx_http_fanout_redis_conf->timeout);

    ngx_http_fanout_redis_count(NGX_HTTP_FANOUT_REDIS_COMMANDS, 1);

    return NGX_OK;
}


/* connections */

static void
ngx_http_fanout_redis_schedule(ngx_http_fanout_redis_conn_t *rc)
{
    ngx_msec_t  delay;

    if (rc->state == NGX_HTTP_FANOUT_REDIS_READY) {
        ngx_http_fanout_redis_count(NGX_HTTP_FANOUT_REDIS_READY_NOW, -1);
    }

    rc->state = NGX_HTTP_FANOUT_REDIS_IDLE;

    if (rc->timer.timer_set) {
        ngx_del_timer(&rc->timer);
    }

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    /* backoff with jitter, so that workers do not reconnect in step */
    delay = rc->backoff + (ngx_random() % (rc->backoff / 4 + 1));

    rc->backoff = ngx_min(rc->backoff * 2, NGX_HTTP_FANOUT_REDIS_BACKOFF_MAX);

    ngx_add_timer(&rc->timer, delay);
}


/* takes a connection down, ending every command on it, and reconnects */

static void
ngx_http_fanout_redis_drop(ngx_http_fanout_redis_conn_t *rc,
    ngx_http_fanout_redis_error_e error, const char *why)
{
    redisAsyncContext  *ac;

    ac = rc->ac;

    if (error) {
        ngx_http_fanout_redis_fail(ngx_cycle->log, error, why,
                                   ac ? ac->errstr : NULL);
    }

    /* the disconnect callback sees rc->ac != ac: the drop was ours */
    rc->ac = NULL;

    ngx_http_fanout_redis_schedule(rc);

    if (ac) {
        /* deferred by hiredis when called from one of its callbacks */
        redisAsyncFree(ac);
    }
}


static void
ngx_http_fanout_redis_ready(ngx_http_fanout_redis_conn_t *rc)
{
    rc->state = NGX_HTTP_FANOUT_REDIS_READY;
    rc->backoff = NGX_HTTP_FANOUT_REDIS_BACKOFF_MIN;

    if (rc->timer.timer_set) {
        ngx_del_timer(&rc->timer);
    }

    ngx_http_fanout_redis_count(NGX_HTTP_FANOUT_REDIS_READY_NOW, 1);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "fanout redis connection %ui ready", rc->index);
}


static void
ngx_http_fanout_redis_hello(void *data, redisReply *reply,
    ngx_http_fanout_redis_error_e error)
{
    ngx_http_fanout_redis_conn_t *rc = data;

    if (rc->state != NGX_HTTP_FANOUT_REDIS_HELLO) {
        return;
    }

    if (reply == NULL) {
        if (error == NGX_HTTP_FANOUT_REDIS_REPLY_ERROR) {
            /* a wrong password or db: say which directive to look at */
            ngx_http_fanout_redis_log_next();
            ngx_http_fanout_redis_drop(rc, NGX_HTTP_FANOUT_REDIS_AUTH,
                                       "refused AUTH or SELECT, check "
                                       "username=, password= and db= of "
                                       "fanout_redis");
            return;
        }

        ngx_http_fanout_redis_drop(rc, NGX_HTTP_FANOUT_REDIS_OK, NULL);
        return;
    }

    if (--rc->hello == 0) {
        ngx_http_fanout_redis_ready(rc);
    }
}


static void
ngx_http_fanout_redis_hello_send(ngx_http_fanout_redis_conn_t *rc,
    const char *cmd, ngx_str_t *user, ngx_str_t *arg)
{
    int          n;
    size_t       len[3];
    const char  *argv[3];

    n = 0;
    argv[n] = cmd;
    len[n++] = ngx_strlen(cmd);

    if (user && user->len) {
        argv[n] = (const char *) user->data;
        len[n++] = user->len;
    }

    argv[n] = (const char *) arg->data;
    len[n++] = arg->len;

    if (ngx_http_fanout_redis_send(rc, ngx_cycle->log, n, argv, len,
                                   ngx_http_fanout_redis_hello, rc)
        != NULL)
    {
        rc->hello++;
    }
}


static void
ngx_http_fanout_redis_on_connect(const redisAsyncContext *ac, int status)
{
    u_char                         db[NGX_INT_T_LEN];
    ngx_str_t                      s;
    ngx_http_fanout_redis_conn_t  *rc;
    ngx_http_fanout_redis_conf_t  *rcf;

    rc = ac->data;
    rcf = ngx_http_fanout_redis_conf;

    if (rc->ac != ac) {
        return;
    }

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        ngx_http_fanout_redis_fail(ngx_cycle->log,
                                   NGX_HTTP_FANOUT_REDIS_CONNECT,
                                   "cannot be reached", ac->errstr);
        rc->ac = NULL;
        ngx_http_fanout_redis_schedule(rc);

        if (rcf->sentinels) {
            /* a dead master: is there another? */
            ngx_http_fanout_sentinel_again();
        }

        return;
    }

    ngx_http_fanout_redis_count(NGX_HTTP_FANOUT_REDIS_CONNECTS, 1);

    /* AUTH and SELECT first; commands wait for their replies */
    rc->state = NGX_HTTP_FANOUT_REDIS_HELLO;
    rc->hello = 0;

    if (rcf->password.len) {
        ngx_http_fanout_redis_hello_send(rc, "AUTH", &rcf->username,
                                         &rcf->password);
    }

    if (rcf->db) {
        s.data = db;
        s.len = ngx_sprintf(db, "%ui", rcf->db) - db;
        ngx_http_fanout_redis_hello_send(rc, "SELECT", NULL, &s);
    }

    if (rc->hello == 0) {
        ngx_http_fanout_redis_ready(rc);
    }
}


static void
ngx_http_fanout_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_http_fanout_redis_conn_t  *rc;

    rc = ac->data;

    if (rc->ac != ac) {
        /* a drop of ours: already taken care of */
        return;
    }

    rc->ac = NULL;

    ngx_http_fanout_redis_fail(ngx_cycle->log, NGX_HTTP_FANOUT_REDIS_CLOSED,
                               "closed the connection",
                               status == REDIS_OK ? NULL : ac->errstr);

    ngx_http_fanout_redis_schedule(rc);
}


static void
ngx_http_fanout_redis_timer(ngx_event_t *ev)
{
    ngx_http_fanout_redis_conn_t *rc = ev->data;

    if (rc->state == NGX_HTTP_FANOUT_REDIS_IDLE) {
        ngx_http_fanout_redis_connect(rc);
        return;
    }

    /* connecting, or AUTH/SELECT, took longer than connect_timeout */
    ngx_http_fanout_redis_drop(rc, NGX_HTTP_FANOUT_REDIS_CONNECT,
                               "did not accept the connection in time");

    if (ngx_http_fanout_redis_conf->sentinels) {
        ngx_http_fanout_sentinel_again();
    }
}


static void
ngx_http_fanout_redis_connect(ngx_http_fanout_redis_conn_t *rc)
{
    u_char                        *host;
    in_port_t                      port;
    redisAsyncContext             *ac;
    ngx_http_fanout_redis_conf_t  *rcf;

    rcf = ngx_http_fanout_redis_conf;

    /* the host is an address already: no DNS here */
    if (rcf->sentinels) {
        port = ngx_http_fanout_sentinel_where(&host);

        if (port == 0) {
            /* no master known yet: the Sentinel's answer connects us */
            ngx_http_fanout_redis_schedule(rc);
            return;
        }

        ac = redisAsyncConnect((const char *) host, port);

    } else if (rcf->path.len) {
        ac = redisAsyncConnectUnix((const char *) rcf->path.data);

    } else {
        ac = redisAsyncConnect((const char *) rcf->host.data, rcf->port);
    }

    if (ac == NULL || ac->err) {
        ngx_http_fanout_redis_fail(ngx_cycle->log,
                                   NGX_HTTP_FANOUT_REDIS_CONNECT,
                                   "cannot be reached",
                                   ac ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }

        ngx_http_fanout_redis_schedule(rc);
        return;
    }

    /* the adapter first: setting the connect callback adds a write event */
    if (ngx_http_fanout_redis_tls_start(ac, rcf->ssl) != NGX_OK
        || ngx_http_fanout_redis_attach(ac, rc, ngx_cycle->log) != NGX_OK)
    {
        redisAsyncFree(ac);
        ngx_http_fanout_redis_schedule(rc);
        return;
    }

    rc->ac = ac;
    rc->state = NGX_HTTP_FANOUT_REDIS_CONNECTING;

    redisAsyncSetConnectCallback(ac, ngx_http_fanout_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_http_fanout_redis_on_disconnect);

    ngx_add_timer(&rc->timer, rcf->connect_timeout);
}

/* sentinel=: the master moved, or was found; the pool's connections go
 * there (those to the old one: their commands fail open, they are remade) */

static void
ngx_http_fanout_redis_moved(void)
{
    ngx_uint_t                     i;
    ngx_http_fanout_redis_conn_t  *rc;

    for (i = 0; i < ngx_http_fanout_redis_conf->pool; i++) {
        rc = &ngx_http_fanout_redis_conns[i];
        rc->backoff = NGX_HTTP_FANOUT_REDIS_BACKOFF_MIN;

        if (rc->ac) {
            ngx_http_fanout_redis_drop(rc, NGX_HTTP_FANOUT_REDIS_OK, NULL);

        } else if (rc->state == NGX_HTTP_FANOUT_REDIS_IDLE) {
            if (rc->timer.timer_set) {
                ngx_del_timer(&rc->timer);
            }

            ngx_add_timer(&rc->timer, 1);
        }
    }
}


ngx_int_t
ngx_http_fanout_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                     i;
    ngx_http_fanout_main_conf_t   *fmcf;
    ngx_http_fanout_redis_conn_t  *rc;

    /* workers only: not the cache manager, loader or helpers */
    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    fmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_fanout_module);

    if (fmcf == NULL || fmcf->redis == NULL) {
        return NGX_OK;
    }

    ngx_http_fanout_redis_conf = fmcf->redis;
    ngx_http_fanout_redis_stats = fmcf->redis_stats;
    ngx_http_fanout_redis_log_init(fmcf->redis, fmcf->redis_stats);

    ngx_http_fanout_redis_conns = ngx_pcalloc(cycle->pool,
                                      fmcf->redis->pool
                                      * sizeof(ngx_http_fanout_redis_conn_t));
    if (ngx_http_fanout_redis_conns == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < fmcf->redis->pool; i++) {
        rc = &ngx_http_fanout_redis_conns[i];

        rc->index = i;
        rc->backoff = NGX_HTTP_FANOUT_REDIS_BACKOFF_MIN;
        ngx_queue_init(&rc->ops);

        rc->timer.handler = ngx_http_fanout_redis_timer;
        rc->timer.data = rc;
        rc->timer.log = cycle->log;
        rc->timer.cancelable = 1;

        ngx_http_fanout_redis_connect(rc);
    }

    if (fmcf->redis->sentinels) {
        return ngx_http_fanout_sentinel_init(cycle, fmcf->redis,
                                             ngx_http_fanout_redis_moved);
    }

    return NGX_OK;
}


void
ngx_http_fanout_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                     i;
    ngx_queue_t                   *q;
    redisAsyncContext             *ac;
    ngx_http_fanout_redis_op_t    *op;
    ngx_http_fanout_redis_conn_t  *rc;

    if (ngx_http_fanout_redis_conf == NULL) {
        return;
    }

    for (i = 0; i < ngx_http_fanout_redis_conf->pool; i++) {
        rc = &ngx_http_fanout_redis_conns[i];

        if (rc->timer.timer_set) {
            ngx_del_timer(&rc->timer);
        }

        /*
         * A fast shutdown leaves requests unfinalized: nobody is to be
         * called back while the contexts are freed.
         */

        for (q = ngx_queue_head(&rc->ops);
             q != ngx_queue_sentinel(&rc->ops);
             q = ngx_queue_next(q))
        {
            op = ngx_queue_data(q, ngx_http_fanout_redis_op_t, queue);
            op->handler = NULL;
        }

        ac = rc->ac;
        rc->ac = NULL;

        if (ac) {
            if (rc->state == NGX_HTTP_FANOUT_REDIS_READY) {
                ngx_http_fanout_redis_count(NGX_HTTP_FANOUT_REDIS_READY_NOW,
                                            -1);
            }

            rc->state = NGX_HTTP_FANOUT_REDIS_IDLE;
            redisAsyncFree(ac);
        }
    }

    if (ngx_http_fanout_redis_conf->sentinels) {
        ngx_http_fanout_sentinel_exit();
    }

    ngx_http_fanout_redis_conf = NULL;
}


/* fanout_health: connections ready now, over all workers */

ngx_uint_t
ngx_http_fanout_redis_ready_now(ngx_http_fanout_stats_t *st)
{
    return (ngx_uint_t) st->counters[NGX_HTTP_FANOUT_REDIS_READY_NOW];
}
