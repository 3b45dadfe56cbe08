/*
 * What every call of a request gets from the client: its body (from memory
 * or nginx's temp file) and its headers.  Used by the target calls, the
 * shadows and the cache key.
 */

#include "ngx_http_fanout_module.h"


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
 * The targets get the client's headers but Accept-Encoding: the answers
 * must arrive as plain JSON to be merged.
 */

ngx_list_t *
ngx_http_fanout_headers(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_t       *headers;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *copy;

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

        copy = ngx_list_push(headers);
        if (copy == NULL) {
            return NULL;
        }

        *copy = h[i];
    }

    return headers;
}
