/*
 * Attempts: one subrequest each, of a target call or of a shadow, with
 * its capture (the answer kept in memory, never sent to the client), its
 * outcome as the capture saw it, and the way to cut it off.  Every
 * attempt has the same post_subrequest handler, which hands the ended
 * attempt to its owner (a call, a shadow) through the owner's callback:
 * this file knows no owner.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_capture.h"
#include "fanout_tokens.h"


static ngx_int_t ngx_http_fanout_attempt_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static void ngx_http_fanout_attempt_stopped(ngx_event_t *ev);
static void ngx_http_fanout_upstream_finalize(ngx_http_request_t *r,
    ngx_int_t rc);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


/*
 * One background subrequest of r (the client's request, or a shadow's
 * copy of it) to uri.  The owner has set owner, ended, stopped, name and
 * what; the caller sets the subrequest's method and headers.
 */

ngx_int_t
ngx_http_fanout_attempt_start(ngx_http_request_t *r,
    ngx_http_fanout_attempt_t *a, ngx_str_t *uri, ngx_str_t *args)
{
    ngx_http_request_t  *sr;

    a->ps.handler = ngx_http_fanout_attempt_done;
    a->ps.data = a;


    a->start = ngx_current_msec;
    a->retry_after = -1;

    if (ngx_http_subrequest(r, uri, args->len ? args : &r->args, &sr, &a->ps,
                            NGX_HTTP_SUBREQUEST_BACKGROUND)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanout %s \"%V\": subrequest to \"%V\" failed",
                      a->what, a->name, uri);
        a->done = 1;
        return NGX_ERROR;
    }

    a->sr = sr;

    return NGX_OK;
}


/*
 * Why an upstream_error or a timeout happened, from the upstream's own
 * account of the attempt (ngx_http_upstream_state_t), for the call log.
 */

static const char *
ngx_http_fanout_attempt_cause(ngx_http_request_t *sr, fanout_kind_e kind,
    ngx_uint_t header, ngx_uint_t complete, ngx_uint_t read_timeout)
{
    ngx_http_upstream_t        *u;
    ngx_http_upstream_state_t  *st;

    if (kind != FANOUT_UPSTREAM_ERROR && kind != FANOUT_TIMEOUT) {
        return NULL;
    }

    u = sr->upstream;

    if (u == NULL) {
        return header ? (complete ? "not_http" : "closed_mid_body") : NULL;
    }

    st = u->state;

    if (st == NULL || st->peer == NULL) {
        return "unresolvable_or_no_peer";
    }

    if (st->connect_time == (ngx_msec_t) -1) {
        return read_timeout ? "connect_timed_out" : "connect_failed";
    }

    if (st->header_time == (ngx_msec_t) -1 && !header) {
        return read_timeout ? "timed_out_before_header"
                            : "closed_or_reset_before_header";
    }

    if (header && !complete) {
        return read_timeout ? "timed_out_mid_body" : "closed_mid_body";
    }

    return (st->status == NGX_HTTP_BAD_GATEWAY) ? "invalid_header"
                                                : "upstream_error";
}


/*
 * The post_subrequest handler: may run more than once for one attempt.
 * Never NGX_ERROR here: it would terminate the client's request.
 */

static ngx_int_t
ngx_http_fanout_attempt_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
{
    ngx_http_fanout_attempt_t *a = data;

    ngx_http_upstream_t  *u;
    fanout_capture_t     *cap;

    if (a->done || rc == NGX_AGAIN || sr != a->sr) {
        /* ended already: cut off, or its owner gave up on it */
        return NGX_OK;
    }

    a->done = 1;
    a->sr = NULL;
    a->latency = ngx_current_msec - a->start;

    if (a->stop && a->stop->posted) {
        ngx_delete_posted_event(a->stop);
    }

    u = sr->upstream;
    cap = &a->capture;

    cap->rc = (rc >= NGX_HTTP_SPECIAL_RESPONSE && rc <= 599) ? (int) rc : 0;
    cap->status = a->status;
    cap->header = a->header;
    cap->complete = a->complete || sr->header_only;
    cap->too_large = a->too_large;
    cap->broken = a->broken;

    /*
     * The upstream ends a call that timed out with 504, which nginx turns
     * into a plain end once the header is out: the wrapped finalizer keeps
     * it.  A buffering upstream (a cached target location) ends it as 502
     * like a reset: there, a read error after proxy_read_timeout of
     * silence, give or take the lazy re-arming of nginx's timers, is one.
     */
    cap->read_timeout = (rc == NGX_HTTP_GATEWAY_TIME_OUT
                         || a->upstream_rc == NGX_HTTP_GATEWAY_TIME_OUT
                         || (u && u->conf && u->buffering && u->pipe
                             && u->pipe->upstream_error
                             && ngx_current_msec - a->last_read + 1
                                + NGX_TIMER_LAZY_DELAY
                                >= u->conf->read_timeout));

    a->kind = fanout_capture_kind(cap, &a->result);
    a->cause = ngx_http_fanout_attempt_cause(sr, a->kind, a->header,
                                             cap->complete, cap->read_timeout);

    if (a->header && !cap->complete && !a->too_large && !a->broken) {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "fanout %s \"%V\" answered %uz bytes and no more%s: "
                      "the answer is not used", a->what, a->name, a->len,
                      cap->read_timeout ? " (read timed out)" : "");

    } else if (a->header && a->kind == FANOUT_UPSTREAM_ERROR) {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "fanout %s \"%V\" answered with status %d, not a "
                      "final HTTP answer", a->what, a->name, cap->status);
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "fanout %s \"%V\" done: %s, rc:%i", a->what, a->name,
                   fanout_kind_name(a->kind), rc);

    a->ended(a);

    return NGX_OK;
}


/* the capture gave up on the answer: its owner ends it, from an event */

static void
ngx_http_fanout_attempt_stopped(ngx_event_t *ev)
{
    ngx_http_fanout_attempt_t *a = ev->data;

    if (!a->done) {
        a->stopped(a);
    }
}


/*
 * Ends an attempt its owner no longer waits for (a timeout, a lost race,
 * the deadline): the upstream's own cleanup handler, which nginx runs when
 * a client aborts, closes the upstream connection and finalizes the
 * subrequest with NGX_DONE, which releases its reference to the main
 * request without calling the post_subrequest handler.
 */

void
ngx_http_fanout_attempt_cut(ngx_http_fanout_attempt_t *a)
{
    ngx_http_request_t   *sr;
    ngx_http_upstream_t  *u;

    if (a->stop && a->stop->posted) {
        ngx_delete_posted_event(a->stop);
    }

    if (a->leave) {
        /* micro-batched: out of its batch, or its share of the answer */
        a->leave(a);
    }

    sr = a->sr;
    a->done = 1;

    if (sr == NULL || sr->done) {
        return;
    }

    u = sr->upstream;

    if (u == NULL || u->cleanup == NULL) {
        /*
         * Not (or no more) an upstream call, e.g. a location that is still
         * in its access phase: it runs to its end, and its answer is
         * ignored.
         */
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                       "fanout %s \"%V\" cannot be cut off", a->what,
                       a->name);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "fanout %s \"%V\" cut off", a->what, a->name);

    a->sr = NULL;

    sr->write_event_handler = ngx_http_request_empty_handler;

    (*u->cleanup)(sr);
}


/* the request ends: nothing of its attempts may run after it */

void
ngx_http_fanout_attempt_forget(ngx_http_fanout_attempt_t *a)
{
    if (a->stop && a->stop->posted) {
        ngx_delete_posted_event(a->stop);
    }

    if (a->leave) {
        a->leave(a);
    }
}


/*
 * A micro-batched attempt's answer, its share of its batch's: judged as
 * the batch's was (or bad_batch), handed to its owner like any other.
 */

void
ngx_http_fanout_attempt_answered(ngx_http_fanout_attempt_t *a,
    fanout_kind_e kind, int result, int status, ngx_str_t *type,
    u_char *buf, size_t len)
{
    if (a->done) {
        return;
    }

    a->done = 1;
    a->latency = ngx_current_msec - a->start;
    a->kind = kind;
    a->result = result;
    a->status = status;
    a->header = (status != 0);
    a->complete = (kind == FANOUT_OK);
    a->buf = buf;
    a->len = len;

    if (type) {
        a->content_type = *type;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "fanout %s \"%V\" done in its batch: %s", a->what,
                   a->name, fanout_kind_name(kind));

    a->ended(a);
}


static ngx_http_fanout_attempt_t *
ngx_http_fanout_capturing(ngx_http_request_t *r)
{
    /* post_subrequest survives internal redirects, unlike module ctx */

    if (r == r->main || r->post_subrequest == NULL) {
        return NULL;
    }

    /* ours: the one post_subrequest handler of every attempt */
    if (r->post_subrequest->handler != ngx_http_fanout_attempt_done) {
        return NULL;
    }

    return r->post_subrequest->data;
}


/*
 * The capture gives up on an answer.  A body filter must not return
 * NGX_ERROR for this: ngx_http_output_filter() would then mark the client's
 * connection as broken.  The rest of the answer is swallowed and the call
 * is cut off from a posted event, outside the upstream's own handlers.
 */

static void
ngx_http_fanout_give_up(ngx_http_request_t *r, ngx_http_fanout_attempt_t *a)
{
    ngx_http_core_loc_conf_t  *clcf;

    if (a->too_large) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanout %s \"%V\" answered more than %uz bytes; "
                      "raise \"subrequest_output_buffer_size\" in location "
                      "\"%V\"", a->what, a->name, a->limit, &clcf->name);
    }

    if (a->stop == NULL) {
        /* only an answer given up on needs it */
        a->stop = ngx_pcalloc(r->pool, sizeof(ngx_event_t));
        if (a->stop == NULL) {
            return;
        }

        a->stop->handler = ngx_http_fanout_attempt_stopped;
        a->stop->data = a;
        a->stop->log = r->connection->log;
    }

    if (!a->stop->posted) {
        ngx_post_event(a->stop, &ngx_posted_events);
    }
}


/* application/json, or a type ending in +json, whatever its parameters */

static ngx_uint_t
ngx_http_fanout_is_json(ngx_str_t *type)
{
    size_t   n;
    u_char  *p;

    p = type->data;

    for (n = 0; n < type->len && p[n] != ';' && p[n] != ' '; n++) {
        /* void */
    }

    return (n == sizeof("application/json") - 1
            && ngx_strncasecmp(p, (u_char *) "application/json", n) == 0)
           || (n > 5
               && ngx_strncasecmp(p + n - 5, (u_char *) "+json", 5) == 0);
}


/* time to the answer's first bytes ("time to first chunk") */

static void
ngx_http_fanout_capture_first(ngx_http_fanout_attempt_t *a)
{
    if (!a->got_first) {
        a->got_first = 1;
        a->first = ngx_current_msec - a->start;
    }
}


/*
 * A stream's bytes on their way: its events ended in them (a blank line
 * each, "\n\n" or "\r\n\r\n") are told to the owner with the time since
 * the last ones, and its last NGX_HTTP_FANOUT_STREAM_TAIL bytes are kept
 * for the usage its last event may carry.  Linear in the bytes, once.
 */

static void
ngx_http_fanout_capture_events(ngx_http_fanout_attempt_t *a, ngx_buf_t *b)
{
    int      newline;
    size_t   size, keep;

    size = b->last - b->pos;

    if (size == 0) {
        return;
    }

    newline = a->newline;

    if (fanout_tokens_events((const char *) b->pos, size, &newline)) {
        if (a->event && a->chunk) {
            a->chunk(a, ngx_current_msec - a->event);
        }

        a->event = ngx_current_msec ? ngx_current_msec : 1;
    }

    a->newline = newline;

    if (a->tail == NULL) {
        a->tail = ngx_pnalloc(a->sink->pool, NGX_HTTP_FANOUT_STREAM_TAIL);
        if (a->tail == NULL) {
            return;
        }
    }

    if (size >= NGX_HTTP_FANOUT_STREAM_TAIL) {
        ngx_memcpy(a->tail, b->last - NGX_HTTP_FANOUT_STREAM_TAIL,
                   NGX_HTTP_FANOUT_STREAM_TAIL);
        a->tail_len = NGX_HTTP_FANOUT_STREAM_TAIL;
        return;
    }

    if (a->tail_len + size > NGX_HTTP_FANOUT_STREAM_TAIL) {
        keep = NGX_HTTP_FANOUT_STREAM_TAIL - size;
        ngx_memmove(a->tail, a->tail + a->tail_len - keep, keep);
        a->tail_len = keep;
    }

    ngx_memcpy(a->tail + a->tail_len, b->pos, size);
    a->tail_len += size;
}


/* what marks a stream's buffers as ours, to be reused */
static u_char  ngx_http_fanout_stream_tag;


/*
 * A stream's buffer for size bytes, with its link: the one the client
 * took last when it is large enough, else a new one, its size rounded up
 * to a power of two so that reads of varying sizes fit the next time.  A
 * free buffer too small for a read is left to the pool rather than looked
 * past, so that no list is walked: the sizes of an upstream's reads are
 * bounded by its buffer, so few are.  A stream then holds what the client
 * has not taken yet, not all it ever sent.  The last, empty buffer is not
 * kept.
 */

static ngx_chain_t *
ngx_http_fanout_stream_link(ngx_http_fanout_attempt_t *a, size_t size)
{
    size_t        cap;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    cl = NULL;

    if (size && a->free) {
        cl = a->free;
        a->free = cl->next;
        cl->next = NULL;
        b = cl->buf;

        if ((size_t) (b->end - b->start) >= size) {
            b->pos = b->start;
            b->last = b->start;
            b->flush = 0;
            b->last_buf = 0;
            b->last_in_chain = 0;

            return cl;
        }

        /* too small: its link serves the new buffer */
    }

    if (cl == NULL) {
        cl = ngx_alloc_chain_link(a->sink->pool);
        if (cl == NULL) {
            return NULL;
        }
    }

    if (size == 0) {
        b = ngx_calloc_buf(a->sink->pool);

    } else {
        /* bounded by the upstream's buffer: a few steps */
        for (cap = 256; cap < size; cap <<= 1) { /* void */ }

        b = ngx_create_temp_buf(a->sink->pool, cap);
        if (b) {
            b->tag = (ngx_buf_tag_t) &ngx_http_fanout_stream_tag;
        }
    }

    if (b == NULL) {
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;

    return cl;
}


/*
 * The filters keep links of their own; our buffers wait in busy, in the
 * order they went out, until the client has them, then go to free for the
 * next reads.  As ngx_chain_update_chains(), but appended at busy's end in
 * one step: a client that stops reading lets busy grow long (up to the
 * stream's bound), and walking it for each read would be quadratic.
 */

static void
ngx_http_fanout_stream_sent(ngx_http_fanout_attempt_t *a, ngx_chain_t *out)
{
    ngx_chain_t  *cl;

    if (a->busy == NULL) {
        a->busy = out;

    } else {
        a->busy_last->next = out;
    }

    for (cl = out; cl->next; cl = cl->next) { /* void */ }

    a->busy_last = cl;

    while (a->busy) {
        cl = a->busy;

        if (cl->buf->tag != (ngx_buf_tag_t) &ngx_http_fanout_stream_tag) {
            /* the last, empty buffer */
            a->busy = cl->next;
            ngx_free_chain(a->sink->pool, cl);
            continue;
        }

        if (ngx_buf_size(cl->buf) != 0) {
            break;
        }

        a->busy = cl->next;
        cl->next = a->free;
        a->free = cl;
    }
}


/*
 * A stream: from the first bytes on, the owner may take the attempt's
 * answer (NGX_OK), which is then forwarded to the client as it comes,
 * each copied since the upstream reuses its buffers (ours are reused in
 * turn once the client has them); the body is not kept.
 * What one call brings (an event is often two chunks: its line and the
 * blank one) goes out in one chain with one flush, so in one writev(), as
 * proxy_pass without buffering does.  Bounded as a captured answer is: by
 * the target location's subrequest_output_buffer_size.
 */

static ngx_int_t
ngx_http_fanout_stream(ngx_http_request_t *r, ngx_http_fanout_attempt_t *a,
    ngx_chain_t *in)
{
    off_t         size;
    ssize_t       n;
    ngx_buf_t    *b, *nb, *lb;
    ngx_uint_t    last, failed;
    ngx_chain_t  *cl, *ln, *out, **ll;

    out = NULL;
    ll = &out;
    lb = NULL;
    failed = a->broken || a->too_large;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;
        size = ngx_buf_size(b);
        last = b->last_buf || b->last_in_chain;

        if (a->done || a->sr != r || a->broken || a->too_large) {
            b->pos = b->last;
            b->file_pos = b->file_last;
            continue;
        }

        if (last) {
            a->complete = 1;
        }

        if (size) {
            a->last_read = ngx_current_msec;
            ngx_http_fanout_capture_first(a);
        }

        if (!a->streaming && size) {
            if (a->streamed(a) != NGX_OK) {
                /* another answer won: this one is cut off soon */
                a->stream = 0;
                b->pos = b->last;
                b->file_pos = b->file_last;
                continue;
            }

            a->streaming = 1;
        }

        if (!a->streaming || (size == 0 && !last)) {
            b->pos = b->last;
            b->file_pos = b->file_last;
            continue;
        }

        if ((off_t) a->limit - a->sent < size) {
            a->too_large = 1;
            b->pos = b->last;
            b->file_pos = b->file_last;
            continue;
        }

        ln = ngx_http_fanout_stream_link(a, (size_t) size);
        if (ln == NULL) {
            a->broken = 1;
            continue;
        }

        nb = ln->buf;

        if (size && ngx_buf_in_memory(b)) {
            nb->last = ngx_cpymem(nb->pos, b->pos, (size_t) size);

        } else if (size) {
            n = ngx_read_file(b->file, nb->pos, (size_t) size, b->file_pos);

            if (n != (ssize_t) size) {
                a->broken = 1;
                b->file_pos = b->file_last;
                continue;
            }

            nb->last = nb->pos + n;
        }

        b->pos = b->last;
        b->file_pos = b->file_last;

        ngx_http_fanout_capture_events(a, nb);

        nb->last_buf = last;
        nb->last_in_chain = last;

        *ll = ln;
        ll = &ln->next;
        lb = nb;

        a->sent += size;
    }

    /* what came before a failure still goes out, then the stream ends */
    if (out) {
        lb->flush = 1;

        if (ngx_http_output_filter(a->sink, out) == NGX_ERROR) {
            /* the client is gone: so is the stream */
            a->broken = 1;
        }

        ngx_http_fanout_stream_sent(a, out);
    }

    /* given up once, when it first fails */
    if (!failed && (a->broken || a->too_large)) {
        ngx_http_fanout_give_up(r, a);
    }

    return NGX_OK;
}


/* Retry-After of a 429 or 503, in ms from now (delay-seconds or a date) */

static ngx_msec_int_t
ngx_http_fanout_retry_after(ngx_http_request_t *r)
{
    time_t            t;
    int64_t           ms;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return -1;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0
            || h[i].key.len != sizeof("Retry-After") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Retry-After",
                               sizeof("Retry-After") - 1)
               != 0)
        {
            continue;
        }

        ms = fanout_retry_after((const char *) h[i].value.data,
                                h[i].value.len);
        if (ms >= 0) {
            return (ngx_msec_int_t) ms;
        }

        t = ngx_parse_http_time(h[i].value.data, h[i].value.len);
        if (t == NGX_ERROR) {
            return -1;
        }

        return (t > ngx_time()) ? (ngx_msec_int_t) (t - ngx_time()) * 1000
                                : 0;
    }
}


static ngx_int_t
ngx_http_fanout_header_filter(ngx_http_request_t *r)
{
    ngx_http_fanout_attempt_t       *a;
    ngx_http_core_loc_conf_t    *clcf;

    a = ngx_http_fanout_capturing(r);

    if (a == NULL) {
        return ngx_http_next_header_filter(r);
    }

    r->header_sent = 1;

    if (a->done || a->sr != r) {
        return NGX_OK;
    }

    a->header = 1;
    a->last_read = ngx_current_msec;
    a->status = (int) r->headers_out.status;
    a->content_type = r->headers_out.content_type;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    a->limit = clcf->subrequest_output_buffer_size;

    if (a->status == NGX_HTTP_TOO_MANY_REQUESTS
        || a->status == NGX_HTTP_SERVICE_UNAVAILABLE)
    {
        a->retry_after = ngx_http_fanout_retry_after(r);
    }

    if (a->stream) {
        /* a 2xx that is not JSON races by its first bytes; JSON is whole */
        a->stream = (a->status >= NGX_HTTP_OK && a->status < 300
                     && !ngx_http_fanout_is_json(&a->content_type));
    }

    if (r->headers_out.content_length_n > (off_t) a->limit) {
        a->too_large = 1;
        ngx_http_fanout_give_up(r, a);
        return NGX_OK;
    }

    /*
     * A buffering upstream holds a background subrequest's answer until
     * its end, spilling to temp files: take it as it comes instead, as
     * "X-Accel-Buffering: no" does, unless the location caches it.
     */

    if (r->upstream && !r->upstream->cacheable && !r->upstream->store) {
        r->upstream->buffering = 0;
    }

    if (r->upstream && r->upstream->finalize_request
        && r->upstream->finalize_request != ngx_http_fanout_upstream_finalize)
    {
        a->upstream_finalize = r->upstream->finalize_request;
        r->upstream->finalize_request = ngx_http_fanout_upstream_finalize;
    }

    return NGX_OK;
}


/*
 * How the upstream ended the call: nginx finalizes a subrequest whose
 * header is out with 0 whatever happened, so a read timeout after part of
 * the body would look like any other cut.  The upstream modules' own
 * finalizers (proxy, fastcgi, grpc...) only log; they still run.
 */

static void
ngx_http_fanout_upstream_finalize(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_fanout_attempt_t  *a;

    a = ngx_http_fanout_capturing(r);

    if (a == NULL || a->upstream_finalize == NULL) {
        return;
    }

    if (a->sr == r) {
        a->upstream_rc = rc;
    }

    a->upstream_finalize(r, rc);
}


static ngx_int_t
ngx_http_fanout_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    off_t                   size;
    u_char                 *p;
    size_t                  cap;
    ssize_t                 n;
    ngx_buf_t              *b;
    ngx_chain_t            *cl;
    ngx_http_fanout_attempt_t  *a;

    a = ngx_http_fanout_capturing(r);

    if (a == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    if (a->stream && a->sr == r) {
        return ngx_http_fanout_stream(r, a, in);
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;
        size = ngx_buf_size(b);

        if (a->sr == r && !a->done) {
            /* only the end of the answer says it is whole */
            if (b->last_buf || b->last_in_chain) {
                a->complete = 1;
            }

            if (size) {
                /* not the flush that ends a broken answer */
                a->last_read = ngx_current_msec;
                ngx_http_fanout_capture_first(a);
            }
        }

        if (size == 0 || a->done || a->sr != r || a->too_large
            || a->broken)
        {
            /* consumed: let the upstream reuse its buffers */
            b->pos = b->last;
            b->file_pos = b->file_last;
            continue;
        }

        if ((off_t) (a->limit - a->len) < size) {
            a->too_large = 1;
            ngx_http_fanout_give_up(r, a);
            b->pos = b->last;
            b->file_pos = b->file_last;
            continue;
        }

        if (a->len + size > a->cap) {
            cap = ngx_max(a->cap * 2, 4096);

            if (r->headers_out.content_length_n > 0) {
                cap = ngx_max(cap, (size_t) r->headers_out.content_length_n);
            }

            cap = ngx_max(cap, a->len + (size_t) size);
            cap = ngx_min(cap, a->limit);

            p = ngx_pnalloc(r->pool, cap);
            if (p == NULL) {
                a->broken = 1;
                ngx_http_fanout_give_up(r, a);
                b->pos = b->last;
                b->file_pos = b->file_last;
                continue;
            }

            if (a->len) {
                ngx_memcpy(p, a->buf, a->len);
            }

            if (a->buf) {
                ngx_pfree(r->pool, a->buf);
            }

            a->buf = p;
            a->cap = cap;
        }

        if (ngx_buf_in_memory(b)) {
            ngx_memcpy(a->buf + a->len, b->pos, (size_t) size);
            b->pos = b->last;

        } else {
            /* the upstream spilled to a temp file */
            n = ngx_read_file(b->file, a->buf + a->len, (size_t) size,
                              b->file_pos);

            if (n != (ssize_t) size) {
                a->broken = 1;
                ngx_http_fanout_give_up(r, a);
                b->file_pos = b->file_last;
                continue;
            }

            b->file_pos = b->file_last;
        }

        a->len += (size_t) size;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_fanout_capture_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_fanout_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_fanout_body_filter;

    return NGX_OK;
}
