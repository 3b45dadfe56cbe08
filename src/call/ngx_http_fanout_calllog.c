/*
 * fanout_call_log PATH [buffer=SIZE [flush=TIME]] | off: one JSON line per
 * attempt of a target call (the target's, a retry, a hedge, a fallback),
 * written as access_log writes: to a file nginx opens and reopens on
 * USR1, from a buffer of this worker's when buffer= is given (flushed when
 * full, after flush= (1s by default), on USR1, and before the worker
 * quits: its flush timer is not cancelable), else at once.
 * A write is one write(2) to a regular file, as access_log's.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_cache.h"
#include "ngx_http_fanout_call.h"
#include "ngx_http_fanout_calllog.h"
#include "ngx_http_fanout_conf.h"
#include "ngx_http_fanout_capture.h"
#include "ngx_http_fanout_split.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_trace.h"
#include "fanout_merge.h"


struct ngx_http_fanout_call_log_s {
    ngx_open_file_t            *file;
    size_t                      size;      /* buffer=; 0: unbuffered */
    ngx_msec_t                  flush;

    /* this worker's (the configuration is copied into each at fork) */
    u_char                     *start;
    u_char                     *pos;
    ngx_event_t                 timer;
};


static void
ngx_http_fanout_call_log_write(ngx_open_file_t *file, ngx_log_t *log,
    u_char *buf, size_t len)
{
    ssize_t  n;

    n = ngx_write_fd(file->fd, buf, len);

    if (n == (ssize_t) len) {
        return;
    }

    /* rate-limited by nginx's own log rules: a full disk logs each time,
     * at alert, as access_log does */
    ngx_log_error(NGX_LOG_ALERT, log, (n == -1) ? ngx_errno : 0,
                  "fanout_call_log: wrote %z of %uz bytes to \"%s\"", n, len,
                  file->name.data);
}


static void
ngx_http_fanout_call_log_flush(ngx_open_file_t *file, ngx_log_t *log)
{
    ngx_http_fanout_call_log_t *cl = file->data;

    if (cl->start && cl->pos > cl->start) {
        ngx_http_fanout_call_log_write(file, log, cl->start,
                                       cl->pos - cl->start);
        cl->pos = cl->start;
    }

    if (cl->timer.timer_set) {
        ngx_del_timer(&cl->timer);
    }
}


static void
ngx_http_fanout_call_log_timer(ngx_event_t *ev)
{
    ngx_http_fanout_call_log_t *cl = ev->data;

    ngx_http_fanout_call_log_flush(cl->file, ev->log);
}


static const ngx_http_fanout_param_t  ngx_http_fanout_call_log_params[] = {

    ngx_http_fanout_param("buffer", SIZE, ngx_http_fanout_call_log_t, size,
                          4096, NGX_MAX_INT32_VALUE, NULL),
    ngx_http_fanout_param("flush", MSEC, ngx_http_fanout_call_log_t, flush,
                          1, NGX_MAX_INT32_VALUE, NULL),
    ngx_http_fanout_param_null
};


char *
ngx_http_fanout_call_log(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_str_t                   *value;
    ngx_http_fanout_call_log_t  *cl;

    if (flcf->call_log != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts > 2) {
            return "takes no parameters after \"off\"";
        }

        flcf->call_log = NULL;
        return NGX_CONF_OK;
    }

    cl = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_call_log_t));
    if (cl == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_fanout_conf_params(cf, 2, ngx_http_fanout_call_log_params,
                                    cl)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (cl->flush && cl->size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"flush=\" needs \"buffer=\", as with "
                           "access_log");
        return NGX_CONF_ERROR;
    }

    cl->file = ngx_conf_open_file(cf->cycle, &value[1]);
    if (cl->file == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cl->file->data) {
        /* access_log keeps its own buffer there: one file, one writer */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is another log's file: give "
                           "fanout_call_log a file of its own", &value[1]);
        return NGX_CONF_ERROR;
    }

    /* buffered lines wait at most this long (and so does a quitting
     * worker) */
    if (cl->size && cl->flush == 0) {
        cl->flush = 1000;
    }

    if (cl->size) {
        cl->file->data = cl;
        cl->file->flush = ngx_http_fanout_call_log_flush;
    }

    flcf->call_log = cl;

    return NGX_CONF_OK;
}


/*
 * The line is written by copies, not ngx_sprintf() (which would cost
 * thousands of instructions a line): its strings escaped, its numbers by
 * a small writer, its time formatted once a millisecond.
 */

#define ngx_http_fanout_cl_lit(p, s)  ngx_cpymem(p, s, sizeof(s) - 1)


static u_char *
ngx_http_fanout_cl_str(u_char *p, const char *key, size_t klen, ngx_str_t *v)
{
    p = ngx_cpymem(p, key, klen);
    p = ngx_http_fanout_escape_json(p, v);
    *p++ = '"';

    return p;
}


static u_char *
ngx_http_fanout_cl_uint(u_char *p, uint64_t v)
{
    u_char   buf[NGX_INT64_LEN], *b;

    b = buf + sizeof(buf);

    do {
        *--b = (u_char) ('0' + v % 10);
        v /= 10;
    } while (v);

    return ngx_cpymem(p, b, buf + sizeof(buf) - b);
}


/* "2026-12-02T05:50:01.123Z", for the cached time of this event */

static u_char *
ngx_http_fanout_cl_time(u_char *p)
{
    ngx_tm_t     tm;
    ngx_time_t  *tp;

    static time_t      sec = -1;
    static ngx_msec_t  msec;
    static u_char      text[sizeof("2026-12-02T05:50:01.123Z") - 1];

    tp = ngx_timeofday();

    if (tp->sec != sec || tp->msec != msec) {
        sec = tp->sec;
        msec = tp->msec;

        ngx_gmtime(sec, &tm);
        (void) ngx_sprintf(text, "%4d-%02d-%02dT%02d:%02d:%02d.%03MZ",
                           tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                           tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                           msec);
    }

    return ngx_cpymem(p, text, sizeof(text));
}


static u_char *
ngx_http_fanout_cl_cstr(u_char *p, const char *s)
{
    return ngx_cpymem(p, s, ngx_strlen(s));
}


void
ngx_http_fanout_call_log_attempt(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_http_fanout_attempt_t *a,
    const char *outcome)
{
    u_char                      *line, *p, stack[2048];
    size_t                       len;
    ngx_str_t                    s, none, *variant, *uri, *rid;
    ngx_uint_t                   n;
    const char                  *role;
    ngx_http_request_t          *r;
    ngx_http_fanout_attempt_t   *x;
    ngx_http_fanout_call_log_t  *cl;
    ngx_http_fanout_trace_ctx_t *tc;

    cl = ctx->conf->call_log;
    r = ctx->request;
    ngx_str_null(&none);

    /* its number in the call: attempts are listed from the first */
    for (n = 1, x = &sub->first; x && x != a; x = x->next) {
        n++;
    }

    uri = a->uri ? a->uri : &sub->target->uri;

    if (a->hedge) {
        role = "hedge";

    } else if (uri != &sub->target->uri) {
        role = "fallback";

    } else {
        role = (a == &sub->first) ? "first" : "retry";
    }

    variant = ngx_http_fanout_split_name(ctx);

    tc = ctx->trace;
    rid = tc ? &tc->request_id : &none;

    len = 512 + 6 * (rid->len + ctx->conf->location.len
                     + sub->target->name.len + uri->len
                     + (variant ? variant->len : 0));

    /* on the stack when it fits, as nearly all do: no pool memory a line */
    line = (len <= sizeof(stack)) ? stack : ngx_pnalloc(r->pool, len);
    if (line == NULL) {
        return;
    }

    p = ngx_http_fanout_cl_lit(line, "{\"time\":\"");
    p = ngx_http_fanout_cl_time(p);
    p = ngx_http_fanout_cl_str(p, "\",\"request_id\":\"",
                               sizeof("\",\"request_id\":\"") - 1,
                               rid);

    if (tc && tc->traced) {
        p = ngx_http_fanout_cl_lit(p, ",\"trace_id\":\"");
        p = ngx_cpymem(p, tc->ids.trace_id, FANOUT_TRACE_ID_LEN);
        p = ngx_http_fanout_cl_lit(p, "\",\"span_id\":\"");
        p = ngx_cpymem(p, a->span, FANOUT_SPAN_ID_LEN);
        p = ngx_http_fanout_cl_lit(p, "\",\"parent_id\":\"");
        p = ngx_cpymem(p, tc->ids.parent_id, FANOUT_SPAN_ID_LEN);
        *p++ = '"';
    }

    p = ngx_http_fanout_cl_str(p, ",\"location\":\"",
                               sizeof(",\"location\":\"") - 1,
                               &ctx->conf->location);
    p = ngx_http_fanout_cl_str(p, ",\"variant\":\"",
                               sizeof(",\"variant\":\"") - 1,
                               variant ? variant : &none);
    p = ngx_http_fanout_cl_str(p, ",\"target\":\"",
                               sizeof(",\"target\":\"") - 1,
                               &sub->target->name);
    p = ngx_http_fanout_cl_lit(p, ",\"attempt\":");
    p = ngx_http_fanout_cl_uint(p, n);
    p = ngx_http_fanout_cl_lit(p, ",\"role\":\"");
    p = ngx_http_fanout_cl_cstr(p, role);
    p = ngx_http_fanout_cl_str(p, "\",\"uri\":\"",
                               sizeof("\",\"uri\":\"") - 1, uri);
    p = ngx_http_fanout_cl_lit(p, ",\"status\":");
    p = ngx_http_fanout_cl_uint(p, (uint64_t) (a->status > 0 ? a->status : 0));
    p = ngx_http_fanout_cl_lit(p, ",\"outcome\":\"");
    p = ngx_http_fanout_cl_cstr(p, outcome);
    p = ngx_http_fanout_cl_lit(p, "\",\"bytes\":");
    p = ngx_http_fanout_cl_uint(p, a->len);
    p = ngx_http_fanout_cl_lit(p, ",\"ms\":");
    p = ngx_http_fanout_cl_uint(p, a->latency);

    if (a->got_first) {
        p = ngx_http_fanout_cl_lit(p, ",\"first_ms\":");
        p = ngx_http_fanout_cl_uint(p, a->first);
    }

    if (a->usage) {
        p = ngx_http_fanout_cl_lit(p, ",\"tokens_in\":");
        p = ngx_http_fanout_cl_uint(p, a->tokens_in);
        p = ngx_http_fanout_cl_lit(p, ",\"tokens_out\":");
        p = ngx_http_fanout_cl_uint(p, a->tokens_out);
    }
    p = ngx_http_fanout_cl_lit(p, ",\"breaker\":\"");
    p = ngx_http_fanout_cl_cstr(p, sub->st ? fanout_breaker_state_name(
                                                 sub->bst->breaker.state)
                                           : "none");
    *p++ = '"';

    if (ctx->cache && ctx->cache->status != NGX_HTTP_FANOUT_CACHE_NONE) {
        s = ngx_http_fanout_cache_statuses[ctx->cache->status];
        p = ngx_http_fanout_cl_str(p, ",\"cache\":\"",
                                   sizeof(",\"cache\":\"") - 1, &s);
    }

    if (a->cause) {
        p = ngx_http_fanout_cl_lit(p, ",\"error\":\"");
        p = ngx_http_fanout_cl_cstr(p, a->cause);
        *p++ = '"';
    }

    if (a->batched || a->follower) {
        p = ngx_http_fanout_cl_lit(p, ",\"batched\":true");
    }

    *p++ = '}';
    *p++ = '\n';

    len = p - line;

    if (cl->size == 0) {
        ngx_http_fanout_call_log_write(cl->file, r->connection->log, line,
                                       len);
        return;
    }

    if (cl->start == NULL) {
        cl->start = ngx_alloc(cl->size, ngx_cycle->log);
        if (cl->start == NULL) {
            return;
        }

        cl->pos = cl->start;
        cl->timer.handler = ngx_http_fanout_call_log_timer;
        cl->timer.data = cl;
        cl->timer.log = ngx_cycle->log;

        /* not cancelable: a worker that quits writes what it holds first,
         * at most flush= later */
        cl->timer.cancelable = 0;
    }

    if ((size_t) (cl->start + cl->size - cl->pos) < len) {
        ngx_http_fanout_call_log_flush(cl->file, r->connection->log);
    }

    if (len > cl->size) {
        ngx_http_fanout_call_log_write(cl->file, r->connection->log, line,
                                       len);
        return;
    }

    cl->pos = ngx_cpymem(cl->pos, line, len);

    if (!cl->timer.timer_set) {
        ngx_add_timer(&cl->timer, cl->flush);
    }
}
