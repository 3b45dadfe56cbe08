/*
 * The per-worker Redis client: a small pool of hiredis async connections
 * driven by nginx's event loop, a timer on every command, reconnects with
 * backoff, AUTH and SELECT on every new connection, and fail-open errors.
 */

#ifndef _NGX_HTTP_FANOUT_REDIS_H_INCLUDED_
#define _NGX_HTTP_FANOUT_REDIS_H_INCLUDED_


#include "ngx_http_fanout.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>


/* why a command got no answer: each is a status counter */
typedef enum {
    NGX_HTTP_FANOUT_REDIS_OK = 0,
    NGX_HTTP_FANOUT_REDIS_DOWN,          /* no connection ready */
    NGX_HTTP_FANOUT_REDIS_TIMEOUT,
    NGX_HTTP_FANOUT_REDIS_REPLY_ERROR,   /* an error reply: OOM, NOAUTH... */
    NGX_HTTP_FANOUT_REDIS_CONNECT,       /* connecting failed */
    NGX_HTTP_FANOUT_REDIS_AUTH,          /* AUTH or SELECT refused */
    NGX_HTTP_FANOUT_REDIS_CLOSED,        /* the connection went away */
    NGX_HTTP_FANOUT_REDIS_NERRORS
} ngx_http_fanout_redis_error_e;


/* the "redis" node's counters after the errors' */
#define NGX_HTTP_FANOUT_REDIS_COMMANDS   NGX_HTTP_FANOUT_REDIS_NERRORS
#define NGX_HTTP_FANOUT_REDIS_CONNECTS   (NGX_HTTP_FANOUT_REDIS_NERRORS + 1)
#define NGX_HTTP_FANOUT_REDIS_READY_NOW  (NGX_HTTP_FANOUT_REDIS_NERRORS + 2)


typedef struct {
    ngx_str_t                   host;      /* an address, NUL-terminated */
    in_port_t                   port;
} ngx_http_fanout_redis_addr_t;


struct ngx_http_fanout_redis_conf_s {
    ngx_str_t                   address;   /* as configured, for logs */
    ngx_array_t                *sentinels; /* ngx_http_fanout_redis_addr_t */
    ngx_str_t                   master;    /* master=, with sentinel= */
    ngx_str_t                   sentinel_password;
    ngx_str_t                   host;      /* NUL-terminated */
    in_port_t                   port;
    ngx_str_t                   path;      /* unix socket, NUL-terminated */
    ngx_str_t                   username;  /* ACL user, with password */
    ngx_str_t                   password;
    ngx_uint_t                  db;
    ngx_flag_t                  tls;       /* tls: hiredis_ssl */
    void                       *ssl;       /* its redisSSLContext */
    ngx_str_t                   tls_ca;    /* files, NUL-terminated */
    ngx_str_t                   tls_cert;
    ngx_str_t                   tls_key;
    ngx_str_t                   tls_server_name;
    ngx_msec_t                  connect_timeout;
    ngx_msec_t                  timeout;
    ngx_uint_t                  pool;
};


/*
 * Called once per command: with the reply (borrowed, valid during the
 * call), or with NULL and the reason.
 */
typedef void (*ngx_http_fanout_redis_handler_pt)(void *data,
    redisReply *reply, ngx_http_fanout_redis_error_e error);


/* a Lua script, run with EVALSHA */
typedef struct {
    ngx_str_t                   body;
    u_char                      sha1[40];
} ngx_http_fanout_redis_script_t;


ngx_int_t ngx_http_fanout_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_fanout_redis_exit_process(ngx_cycle_t *cycle);

/*
 * Sends a command; the handler is called exactly once, later, unless the
 * op is cancelled first.  NULL when the command could not be sent (counted
 * and logged): the handler is not called.  A NULL handler just counts.
 */
ngx_http_fanout_redis_op_t *ngx_http_fanout_redis_command(ngx_log_t *log,
    int argc, const char **argv, const size_t *argvlen,
    ngx_http_fanout_redis_handler_pt handler, void *data);

void ngx_http_fanout_redis_script_init(
    ngx_http_fanout_redis_script_t *script, const char *body);

/*
 * EVALSHA, and EVAL on NOSCRIPT.  argv[0] and argv[1] are filled in here;
 * argv[2] is the number of keys, then the keys and the arguments.
 */
ngx_http_fanout_redis_op_t *ngx_http_fanout_redis_eval(ngx_log_t *log,
    ngx_http_fanout_redis_script_t *script, int argc, const char **argv,
    size_t *argvlen, ngx_http_fanout_redis_handler_pt handler, void *data);

/* the requester gives up (its request ends): the handler is not called */
void ngx_http_fanout_redis_cancel(ngx_http_fanout_redis_op_t *op);

ngx_uint_t ngx_http_fanout_redis_ready_now(ngx_http_fanout_stats_t *st);



#endif /* _NGX_HTTP_FANOUT_REDIS_H_INCLUDED_ */
