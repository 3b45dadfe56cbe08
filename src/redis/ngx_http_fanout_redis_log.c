/*
 * The Redis client's errors, the client's and the Sentinels': counted
 * always (the zone's Redis node), logged at most once a second per worker,
 * naming the master when Sentinels name it.  A leaf: the client and the
 * Sentinel connection both use it, and it calls neither.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_redis_log.h"
#include "ngx_http_fanout_stats.h"


static ngx_http_fanout_redis_conf_t  *ngx_http_fanout_redis_log_conf;
static ngx_http_fanout_stats_t       *ngx_http_fanout_redis_log_stats;
static time_t                         ngx_http_fanout_redis_log_time;
static u_char                        *ngx_http_fanout_redis_log_host;
static in_port_t                      ngx_http_fanout_redis_log_port;


/* this worker's: the configuration and the zone's node */

void
ngx_http_fanout_redis_log_init(ngx_http_fanout_redis_conf_t *rcf,
    ngx_http_fanout_stats_t *stats)
{
    ngx_http_fanout_redis_log_conf = rcf;
    ngx_http_fanout_redis_log_stats = stats;
}


/* where the Sentinels say the master is (host NUL-terminated, kept) */

void
ngx_http_fanout_redis_log_master(u_char *host, in_port_t port)
{
    ngx_http_fanout_redis_log_host = host;
    ngx_http_fanout_redis_log_port = port;
}


/* the next error is logged whatever the last one's time: one that says
 * which directive to look at */

void
ngx_http_fanout_redis_log_next(void)
{
    ngx_http_fanout_redis_log_time = 0;
}


/* errors are counted always, and logged at most once a second per worker */

void
ngx_http_fanout_redis_fail(ngx_log_t *log, ngx_http_fanout_redis_error_e err,
    const char *why, const char *detail)
{
    ngx_http_fanout_redis_conf_t  *rcf;

    rcf = ngx_http_fanout_redis_log_conf;

    if (ngx_http_fanout_redis_log_stats) {
        (void) ngx_atomic_fetch_add(
                   &ngx_http_fanout_redis_log_stats->counters[err], 1);
    }

    if (ngx_http_fanout_redis_log_time == ngx_time()) {
        return;
    }

    ngx_http_fanout_redis_log_time = ngx_time();

    if (rcf->sentinels && ngx_strncmp(why, "has a Sentinel", 14) != 0) {
        /* the master failed, not the Sentinels: name what failed */
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "fanout redis master \"%V\" at %s:%d %s%s%s, failing "
                      "open (logged at most once a second)", &rcf->master,
                      ngx_http_fanout_redis_log_port
                      ? (char *) ngx_http_fanout_redis_log_host : "(unknown)",
                      (int) ngx_http_fanout_redis_log_port,
                      why, detail ? ": " : "", detail ? detail : "");
        return;
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "fanout redis %V %s%s%s, failing open "
                  "(logged at most once a second)", &rcf->address,
                  why, detail ? ": " : "", detail ? detail : "");
}


void
ngx_http_fanout_redis_count(ngx_uint_t counter, ngx_atomic_int_t n)
{
    if (ngx_http_fanout_redis_log_stats) {
        (void) ngx_atomic_fetch_add(
                   &ngx_http_fanout_redis_log_stats->counters[counter], n);
    }
}
