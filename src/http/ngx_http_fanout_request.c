/*
 * What every call of a request gets from the client: its body (from memory
 * or nginx's temp file) and its headers.  Used by the target calls, the
 * shadows and the cache key.  And requests of our own that no client
 * holds (the shadows', the micro-batches'), on connections without a
 * socket, as lua-nginx-module makes its socketless requests.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_request.h"
#include "ngx_http_fanout_trace.h"


static ngx_int_t ngx_http_fanout_detached_headers(ngx_http_request_t *fake,
    ngx_http_request_t *r, ngx_list_t *headers);
static ngx_int_t ngx_http_fanout_detached_body(ngx_http_request_t *fake,
    ngx_http_request_t *r);


/*
 * The client's body, as read, into dst (ngx_http_fanout_body_size() bytes):
 * from memory, or read back from nginx's temp file (a local file read).
 * Empty and special buffers (a chunked body's end) carry nothing.
 */

off_t
ngx_http_fanout_body_size(ngx_http_request_t *r)
{
    off_t         size;
    ngx_chain_t  *cl;

    size = 0;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            size += ngx_buf_size(cl->buf);
        }
    }

    return size;
}


ngx_int_t
ngx_http_fanout_body_copy(ngx_http_request_t *r, u_char *dst, size_t *len)
{
    u_char       *p;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    p = dst;

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        b = cl->buf;

        if (ngx_buf_size(b) == 0) {
            continue;
        }

        if (ngx_buf_in_memory(b)) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        n = ngx_read_file(b->file, p, (size_t) (b->file_last - b->file_pos),
                          b->file_pos);

        if (n != b->file_last - b->file_pos) {
            return NGX_ERROR;
        }

        p += n;
    }

    *len = p - dst;

    return NGX_OK;
}


/*
 * The client's body in one piece of memory: nginx's own buffer when it
 * read the body into one (no copy), else one copy in the request's pool
 * (a body in nginx's temp file is read back).  An empty body is empty.
 */

/* a request body of one buffer over len bytes in memory, not copied */

ngx_http_request_body_t *
ngx_http_fanout_body_of(ngx_pool_t *pool, u_char *data, size_t len)
{
    ngx_buf_t                *b;
    ngx_http_request_body_t  *rb;

    rb = ngx_pcalloc(pool, sizeof(ngx_http_request_body_t));
    b = ngx_calloc_buf(pool);

    if (rb == NULL || b == NULL) {
        return NULL;
    }

    b->pos = data;
    b->last = data + len;
    b->start = data;
    b->end = data + len;
    b->memory = 1;
    b->last_buf = 1;

    rb->bufs = ngx_alloc_chain_link(pool);
    if (rb->bufs == NULL) {
        return NULL;
    }

    rb->bufs->buf = b;
    rb->bufs->next = NULL;

    return rb;
}


ngx_int_t
ngx_http_fanout_body_memory(ngx_http_request_t *r, ngx_str_t *body)
{
    off_t       size;
    ngx_buf_t  *buf;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    buf = r->request_body->bufs->buf;

    if (r->request_body->bufs->next == NULL && ngx_buf_in_memory(buf)
        && !buf->in_file)
    {
        body->data = buf->pos;
        body->len = buf->last - buf->pos;
        return NGX_OK;
    }

    size = ngx_http_fanout_body_size(r);

    if (size == 0) {
        return NGX_OK;
    }

    body->data = ngx_pnalloc(r->pool, (size_t) size);
    if (body->data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_fanout_body_copy(r, body->data, &body->len) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanout: the body could not be read back from its "
                      "temporary file");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The targets get the client's headers but Accept-Encoding: the answers
 * must arrive as plain JSON to be merged.
 */

ngx_list_t *
ngx_http_fanout_headers(ngx_http_request_t *r)
{
    ngx_uint_t                   i, trace, rid;
    ngx_list_t                  *headers;
    ngx_list_part_t             *part;
    ngx_table_elt_t             *h, *copy;
    ngx_http_fanout_loc_conf_t  *flcf;

    /* what each call sends of its own (trace.c) is not the client's */
    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fanout_module);
    trace = flcf->trace;
    rid = (flcf->request_id != NGX_HTTP_FANOUT_RID_OFF);

    headers = ngx_list_create(r->pool, 16, sizeof(ngx_table_elt_t));
    if (headers == NULL) {
        return NULL;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Accept-Encoding") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Accept-Encoding",
                               sizeof("Accept-Encoding") - 1)
               == 0)
        {
            continue;
        }

        if (trace && h[i].key.len == sizeof("traceparent") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "traceparent",
                               sizeof("traceparent") - 1)
               == 0)
        {
            continue;
        }

        if (rid && h[i].key.len == sizeof("X-Request-ID") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "X-Request-ID",
                               sizeof("X-Request-ID") - 1)
               == 0)
        {
            continue;
        }

        copy = ngx_list_push(headers);
        if (copy == NULL) {
            return NULL;
        }

        *copy = h[i];
    }

    return headers;
}


/* a copy in the detached request's pool: non-zero when out of memory */

static ngx_int_t
ngx_http_fanout_copy_str(ngx_pool_t *pool, ngx_str_t *dst, ngx_str_t *src)
{
    dst->len = src->len;

    if (src->len == 0) {
        dst->data = NULL;
        return 0;
    }

    dst->data = ngx_pnalloc(pool, src->len);
    if (dst->data == NULL) {
        return 1;
    }

    ngx_memcpy(dst->data, src->data, src->len);

    return 0;
}


/*
 * A detached request (a shadow's, a micro-batch's): a copy of the
 * client's that the client's end does not touch, on a connection without
 * a socket, with the client's headers and, when body is set, its body.
 * Only ever freed by ngx_http_fanout_detached_free(): it keeps one
 * reference of its own, so that nginx never closes it as a real
 * connection.  action names what it does in the error log.
 */

ngx_http_request_t *
ngx_http_fanout_detach(ngx_http_request_t *r, ngx_list_t *headers,
    const char *action, ngx_uint_t body)
{
    ngx_log_t                  *log;
    ngx_pool_t                 *pool;
    ngx_time_t                 *tp;
    ngx_connection_t           *c, *cc, *saved;
    ngx_http_log_ctx_t         *lctx;
    ngx_http_request_t         *fake;
    ngx_http_connection_t      *hc;
    ngx_http_core_main_conf_t  *cmcf;
    ngx_http_variable_value_t  *vv, *id;

    cc = r->connection;

    /* the client's local address, for $server_addr in the shadow */
    if (ngx_connection_local_sockaddr(cc, NULL, 0) != NGX_OK) {
        return NULL;
    }

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    log = ngx_pcalloc(pool, sizeof(ngx_log_t));
    lctx = ngx_pcalloc(pool, sizeof(ngx_http_log_ctx_t));
    fake = ngx_pcalloc(pool, sizeof(ngx_http_request_t));
    hc = ngx_palloc(pool, sizeof(ngx_http_connection_t));

    if (log == NULL || lctx == NULL || fake == NULL || hc == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    /*
     * A connection slot without a socket: ngx_get_connection() wants a
     * valid descriptor number for its files[] table (poll, select), so 0 is
     * lent and its slot put back.
     */

    saved = ngx_cycle->files ? ngx_cycle->files[0] : NULL;

    c = ngx_get_connection(0, ngx_cycle->log);

    if (ngx_cycle->files) {
        ngx_cycle->files[0] = saved;
    }

    if (c == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    c->fd = (ngx_socket_t) -1;
    c->pool = pool;
    c->data = fake;

    /* enough for ngx_http_fanout_detached_free() from here on */
    fake->connection = c;
    fake->pool = pool;
    fake->logged = 1;                  /* only the subrequest is logged */

    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    c->start_time = ngx_current_msec;
    c->requests = 1;

    *log = *cc->log;
    log->connection = c->number;
    log->data = lctx;
    log->action = (char *) action;
    c->log = log;
    c->log_error = NGX_ERROR_INFO;
    pool->log = log;

    c->listening = cc->listening;
    c->type = cc->type;
    c->socklen = cc->socklen;
    c->local_socklen = cc->local_socklen;
    c->sockaddr = ngx_pnalloc(pool, cc->socklen);
    c->local_sockaddr = ngx_pnalloc(pool, cc->local_socklen);
    c->addr_text.data = ngx_pnalloc(pool, cc->addr_text.len);

    if (c->sockaddr == NULL || c->local_sockaddr == NULL
        || c->addr_text.data == NULL)
    {
        goto failed;
    }

    ngx_memcpy(c->sockaddr, cc->sockaddr, cc->socklen);
    ngx_memcpy(c->local_sockaddr, cc->local_sockaddr, cc->local_socklen);
    ngx_memcpy(c->addr_text.data, cc->addr_text.data, cc->addr_text.len);
    c->addr_text.len = cc->addr_text.len;

    /*
     * Always writable, both events already "registered": the upstream then
     * never adds them to epoll (it watches a client for aborts) nor sets a
     * send timer.  Nothing is ever written to it: the capture filter takes
     * the whole answer, and nothing is read from it.
     */
    c->read->active = 1;
    c->write->ready = 1;
    c->write->active = 1;
    c->tcp_nodelay = NGX_TCP_NODELAY_DISABLED;
    c->tcp_nopush = NGX_TCP_NOPUSH_DISABLED;

    /* the server's configuration, none of the client's buffers */
    ngx_memzero(hc, sizeof(ngx_http_connection_t));

    if (r->http_connection) {
        hc->addr_conf = ((ngx_http_connection_t *) r->http_connection)
                        ->addr_conf;
        hc->conf_ctx = ((ngx_http_connection_t *) r->http_connection)
                       ->conf_ctx;
    }

    lctx->connection = c;
    lctx->request = fake;
    lctx->current_request = fake;

    fake->signature = NGX_HTTP_MODULE;
    fake->http_connection = hc;
    fake->main = fake;
    fake->count = 1;                   /* ours, until shadow_free() */
    fake->main_conf = r->main_conf;
    fake->srv_conf = r->srv_conf;
    fake->loc_conf = r->loc_conf;
    fake->log_handler = r->log_handler;
    fake->read_event_handler = ngx_http_request_empty_handler;
    fake->write_event_handler = ngx_http_request_empty_handler;
    fake->http_state = NGX_HTTP_PROCESS_REQUEST_STATE;
    fake->subrequests = NGX_HTTP_MAX_SUBREQUESTS + 1;
    fake->uri_changes = NGX_HTTP_MAX_URI_CHANGES + 1;
    tp = ngx_timeofday();
    fake->start_sec = tp->sec;
    fake->start_msec = tp->msec;
    fake->internal = 1;

    fake->method = r->method;
    fake->http_version = r->http_version;

    fake->ctx = ngx_pcalloc(pool, sizeof(void *) * ngx_http_max_module);
    fake->header_in = ngx_calloc_buf(pool);

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_core_module);

    fake->variables = ngx_pcalloc(pool, cmcf->variables.nelts
                                        * sizeof(ngx_http_variable_value_t));

    if (fake->ctx == NULL || fake->header_in == NULL
        || fake->variables == NULL
        || ngx_list_init(&fake->headers_out.headers, pool, 1,
                         sizeof(ngx_table_elt_t))
           != NGX_OK)
    {
        goto failed;
    }

    /* the strings the client's request keeps in its own buffers */
    if (ngx_http_fanout_copy_str(pool, &fake->method_name, &r->method_name)
        || ngx_http_fanout_copy_str(pool, &fake->request_line,
                                    &r->request_line)
        || ngx_http_fanout_copy_str(pool, &fake->uri, &r->uri)
        || ngx_http_fanout_copy_str(pool, &fake->args, &r->args)
        || ngx_http_fanout_copy_str(pool, &fake->unparsed_uri,
                                    &r->unparsed_uri)
        || ngx_http_fanout_copy_str(pool, &fake->http_protocol,
                                    &r->http_protocol)
        || ngx_http_fanout_copy_str(pool, &fake->schema, &r->schema)
        || ngx_http_fanout_copy_str(pool, &fake->exten, &r->exten))
    {
        goto failed;
    }

#if (nginx_version >= 1029003)
    /* the port the client asked for: $request_port, $is_request_port */
    fake->port = r->port;
#endif

    /* the same $request_id as the client's, for logs and samples */
    vv = ngx_http_get_indexed_variable(r, ngx_http_fanout_rid(r));

    if (vv && !vv->not_found) {
        id = &fake->variables[ngx_http_fanout_rid(r)];
        *id = *vv;

        if (vv->len) {
            id->data = ngx_pnalloc(pool, vv->len);
            if (id->data == NULL) {
                goto failed;
            }

            ngx_memcpy(id->data, vv->data, vv->len);
        }
    }

    if (ngx_http_fanout_detached_headers(fake, r, headers) != NGX_OK
        || (body && ngx_http_fanout_detached_body(fake, r) != NGX_OK))
    {
        goto failed;
    }

    return fake;

failed:

    ngx_http_fanout_detached_free(fake);
    return NULL;
}


/*
 * The client's headers (less Accept-Encoding), copied, with headers_in's
 * pointers to the known ones set as nginx's parser sets them.
 */

static ngx_int_t
ngx_http_fanout_detached_headers(ngx_http_request_t *fake,
    ngx_http_request_t *r, ngx_list_t *headers)
{
    ngx_uint_t                  i;
    ngx_list_part_t            *part;
    ngx_table_elt_t            *h, *copy, **ph;
    ngx_http_header_t          *hh;
    ngx_http_headers_in_t      *in;
    ngx_http_core_main_conf_t  *cmcf;

    in = &fake->headers_in;
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_core_module);

    if (ngx_list_init(&in->headers, fake->pool, 16, sizeof(ngx_table_elt_t))
        != NGX_OK
        || ngx_http_fanout_copy_str(fake->pool, &in->server,
                                    &r->headers_in.server))
    {
        return NGX_ERROR;
    }

#if (nginx_version < 1023000)
    if (ngx_array_init(&in->cookies, fake->pool, 2, sizeof(ngx_table_elt_t *))
        != NGX_OK)
    {
        return NGX_ERROR;
    }
#if (NGX_HTTP_X_FORWARDED_FOR)
    if (ngx_array_init(&in->x_forwarded_for, fake->pool, 1,
                       sizeof(ngx_table_elt_t *))
        != NGX_OK)
    {
        return NGX_ERROR;
    }
#endif
#endif

    in->content_length_n = r->headers_in.content_length_n;
    in->keep_alive_n = -1;
    in->connection_type = r->headers_in.connection_type;

    part = &headers->part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Transfer-Encoding") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Transfer-Encoding",
                               sizeof("Transfer-Encoding") - 1)
               == 0)
        {
            /* the body goes as one piece of known length */
            continue;
        }

        copy = ngx_list_push(&in->headers);
        if (copy == NULL) {
            return NGX_ERROR;
        }

        *copy = h[i];

        copy->key.data = ngx_pnalloc(fake->pool, h[i].key.len + 1
                                                 + h[i].value.len + 1
                                                 + h[i].key.len);
        if (copy->key.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(copy->key.data, h[i].key.data, h[i].key.len);
        copy->key.data[h[i].key.len] = '\0';

        copy->value.data = copy->key.data + h[i].key.len + 1;
        ngx_memcpy(copy->value.data, h[i].value.data, h[i].value.len);
        copy->value.data[h[i].value.len] = '\0';

        copy->lowcase_key = copy->value.data + h[i].value.len + 1;
        ngx_memcpy(copy->lowcase_key, h[i].lowcase_key, h[i].key.len);

#if (nginx_version >= 1023000)
        copy->next = NULL;
#endif

        hh = ngx_hash_find(&cmcf->headers_in_hash, h[i].hash,
                           h[i].lowcase_key, h[i].key.len);

        if (hh == NULL || hh->offset == 0) {
            continue;
        }

#if (nginx_version < 1023000)
        if (hh->offset == offsetof(ngx_http_headers_in_t, cookies)
#if (NGX_HTTP_X_FORWARDED_FOR)
            || hh->offset == offsetof(ngx_http_headers_in_t, x_forwarded_for)
#endif
           )
        {
            ph = ngx_array_push((ngx_array_t *) ((char *) in + hh->offset));
            if (ph == NULL) {
                return NGX_ERROR;
            }

            *ph = copy;
            continue;
        }

        ph = (ngx_table_elt_t **) ((char *) in + hh->offset);

        if (*ph == NULL) {
            *ph = copy;
        }
#else
        for (ph = (ngx_table_elt_t **) ((char *) in + hh->offset);
             *ph;
             ph = &(*ph)->next)
        {
            /* void */
        }

        *ph = copy;
#endif
    }

    return NGX_OK;
}


/*
 * The client's body in one buffer of the shadow's pool.  A body that
 * nginx spilled to a temp file is read back: a local file read, as for
 * the cache key.
 */

static ngx_int_t
ngx_http_fanout_detached_body(ngx_http_request_t *fake, ngx_http_request_t *r)
{
    off_t         size;
    size_t        len;
    ngx_buf_t    *b;

    fake->request_body = ngx_pcalloc(fake->pool,
                                     sizeof(ngx_http_request_body_t));
    if (fake->request_body == NULL) {
        return NGX_ERROR;
    }

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        if (r->headers_in.chunked) {
            fake->headers_in.content_length_n = 0;
        }

        return NGX_OK;
    }

    size = ngx_http_fanout_body_size(r);

    fake->headers_in.content_length_n = size;

    if (size == 0) {
        return NGX_OK;
    }

    b = ngx_create_temp_buf(fake->pool, (size_t) size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_fanout_body_copy(r, b->pos, &len) != NGX_OK) {
        return NGX_ERROR;
    }

    b->last = b->pos + len;
    b->last_buf = 1;

    fake->request_body->bufs = ngx_alloc_chain_link(fake->pool);
    if (fake->request_body->bufs == NULL) {
        return NGX_ERROR;
    }

    fake->request_body->bufs->buf = b;
    fake->request_body->bufs->next = NULL;

    return NGX_OK;
}


void
ngx_http_fanout_detached_free(ngx_http_request_t *fake)
{
    ngx_connection_t  *c, *saved;

    c = fake->connection;

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

    c->destroyed = 1;
    c->read->closed = 1;
    c->write->closed = 1;

    /* the request's cleanups run, and its pool (the connection's) goes */
    ngx_http_free_request(fake, 0);

    /* 0 is lent to ngx_free_connection() as to ngx_get_connection() */
    saved = ngx_cycle->files ? ngx_cycle->files[0] : NULL;
    c->fd = 0;

    ngx_free_connection(c);

    c->fd = (ngx_socket_t) -1;

    if (ngx_cycle->files) {
        ngx_cycle->files[0] = saved;
    }
}
