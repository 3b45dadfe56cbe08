/*
 * Cache keys: "fanout:LOCATION[:TARGET]:SHA256" over the location's
 * targets (names and URIs), the vary value (the Authorization header by
 * default), and either key= or the method, URI and canonical body
 * (fanout_cache_key.c makes the canonical form); a batch's items and a
 * level=target location's targets each get their own; a target purged by
 * fanout_api has its purge time in its keys.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_batch.h"
#include "ngx_http_fanout_cache.h"
#include "ngx_http_fanout_cache_key.h"
#include "ngx_http_fanout_body.h"
#include "ngx_http_fanout_call.h"
#include "ngx_http_fanout_request.h"
#include "ngx_http_fanout_split.h"
#include "ngx_http_fanout_stats.h"
#include "fanout_json.h"


/* the client's body in one piece, from memory or its temp file */

ngx_int_t
ngx_http_fanout_cache_body(ngx_http_request_t *r, ngx_str_t *body)
{
    ngx_str_null(body);

    if (ngx_http_fanout_body_size(r) > NGX_HTTP_FANOUT_CACHE_MAX_BODY) {
        return NGX_DECLINED;
    }

    /* read only: the key's canonical form and echo= copy what they keep */
    return ngx_http_fanout_body_memory(r, body);
}


/* a target purged by fanout_api: its entries before are unseen */

static u_char *
ngx_http_fanout_cache_purged(u_char *p, ngx_http_fanout_stats_t *st)
{
    return st->rt.purged ? ngx_sprintf(p, "#%uA", st->rt.purged) : p;
}


/* "fanout:LOCATION[:TARGET]:DIGEST", readable in redis-cli --scan */

static ngx_int_t
ngx_http_fanout_cache_name(ngx_http_fanout_ctx_t *ctx, ngx_str_t *target,
    u_char *material, size_t len, ngx_str_t *key)
{
    u_char      *p;
    char         digest[FANOUT_SHA256_HEX_LEN + 1];
    ngx_uint_t   i;

    fanout_sha256_hex(material, len, digest);

    key->data = ngx_pnalloc(ctx->request->pool,
                            sizeof("fanout:::") + ctx->conf->location.len
                            + (target ? target->len : 0)
                            + FANOUT_SHA256_HEX_LEN);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(key->data, "fanout:", sizeof("fanout:") - 1);

    for (i = 0; i < ctx->conf->location.len; i++) {
        *p++ = (ctx->conf->location.data[i] > ' '
                && ctx->conf->location.data[i] < 0x7f)
               ? ctx->conf->location.data[i] : '_';
    }

    *p++ = ':';

    if (target) {
        p = ngx_cpymem(p, target->data, target->len);
        *p++ = ':';
    }

    p = ngx_cpymem(p, digest, FANOUT_SHA256_HEX_LEN);
    key->len = p - key->data;

    return NGX_OK;
}


/*
 * fanout_batch: the client's body with its batch array as null, so that
 * what is around the items (parameters, a model name) is in every key.
 */

/*
 * level=response: the Redis key from the key's material, once.  The L1
 * keys its entries by the material itself (a few hundred bytes, compared
 * whole): an L1 hit needs no digest of it.
 */

ngx_int_t
ngx_http_fanout_cache_named(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->cache->key.len || ctx->cache->material.len == 0) {
        return NGX_OK;
    }

    return ngx_http_fanout_cache_name(ctx, NULL, ctx->cache->material.data,
                                      ctx->cache->material.len,
                                      &ctx->cache->key);
}


static ngx_int_t
ngx_http_fanout_cache_rest(ngx_http_fanout_ctx_t *ctx, ngx_str_t *rest)
{
    u_char                   *p;
    size_t                    before, after;
    ngx_http_fanout_batch_t  *b;

    b = ctx->batch;

    before = (u_char *) b->split.array.p - b->body.data;
    after = b->body.len - before - b->split.array.len;

    if (b->body.len > NGX_HTTP_FANOUT_CACHE_MAX_BODY) {
        return NGX_DECLINED;
    }

    rest->data = ngx_pnalloc(ctx->request->pool, before + 4 + after);
    if (rest->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(rest->data, b->body.data, before);
    p = ngx_cpymem(p, "null", 4);
    p = ngx_cpymem(p, b->split.array.p + b->split.array.len, after);

    rest->len = p - rest->data;

    return NGX_OK;
}


/*
 * fanout_batch: a key per call and target, over the request's identity
 * (id, with the digest of the body around the batch), the call's items
 * (their canonical digest) and the target.  Each item's text is digested
 * once: linear in the body.
 */

static ngx_int_t
ngx_http_fanout_cache_batch_keys(ngx_http_fanout_ctx_t *ctx, u_char *id,
    size_t id_len, ngx_str_t *sets)
{
    int                        rc;
    char                       item_digest[FANOUT_SHA256_HEX_LEN + 1];
    u_char                    *start, *p, *scratch;
    size_t                     len, n, max, total;
    ngx_uint_t                 i, k, nt;
    fanout_span_t              piece[FANOUT_BATCH_PIECES];
    ngx_http_request_t        *r;
    ngx_http_fanout_batch_t   *b;
    ngx_http_fanout_target_t  *t;

    r = ctx->request;
    b = ctx->batch;
    nt = b->ntargets;

    len = 0;

    for (i = 0; i < nt; i++) {
        t = ctx->subs[i].target;
        len = ngx_max(len, t->name.len + t->uri.len + t->args.len + 4
                           + NGX_ATOMIC_T_LEN + (sets ? sets[i].len : 0));
    }

    start = ngx_pnalloc(r->pool, id_len + sizeof("\nitems=")
                                 + FANOUT_SHA256_HEX_LEN + len);
    ctx->cache->target_keys = ngx_palloc(r->pool, ctx->nsubs * sizeof(ngx_str_t));

    if (start == NULL || ctx->cache->target_keys == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(start, id, id_len);

    /* the largest call's items (bracketed for a chunk): one scratch */
    max = 0;

    for (k = 0; k < b->ncalls; k++) {
        n = fanout_batch_pieces((const char *) b->body.data, b->body.len,
                                &b->split, ctx->conf->batch->chunk, k, piece,
                                &total);
        max = ngx_max(max, total - piece[0].len - piece[n - 1].len);
    }

    scratch = ngx_pnalloc(r->pool, max);
    if (scratch == NULL) {
        return NGX_ERROR;
    }

    for (k = 0; k < b->ncalls; k++) {
        n = fanout_batch_pieces((const char *) b->body.data, b->body.len,
                                &b->split, ctx->conf->batch->chunk, k, piece,
                                &total);

        /* the pieces but the body around them: the item, or [ slice ] */
        p = scratch;

        for (i = 1; i < n - 1; i++) {
            p = ngx_cpymem(p, piece[i].p, piece[i].len);
        }

        rc = fanout_cache_body_digest((const char *) scratch, p - scratch,
                                      NULL, 0, item_digest);
        if (rc == FANOUT_KEY_NOMEM) {
            return NGX_ERROR;
        }

        for (i = 0; i < nt; i++) {
            t = ctx->subs[k * nt + i].target;

            p = ngx_sprintf(start + id_len, "\nitems=%s\n%V=%V?%V",
                            item_digest, &t->name, &t->uri, &t->args);

            if (sets) {
                /* set=: the target's body is its own */
                p = ngx_cpymem(p, sets[i].data, sets[i].len);
            }

            p = ngx_http_fanout_cache_purged(p, ctx->subs[k * nt + i].st);

            if (ngx_http_fanout_cache_name(ctx, &t->name, start, p - start,
                                           &ctx->cache->target_keys[k * nt + i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    if (b->body.len > NGX_HTTP_FANOUT_LONG_WORK) {
        ngx_time_update();
    }

    /* the location's name stands for the whole, for logs */
    ctx->cache->key = ctx->cache->target_keys[0];

    return NGX_OK;
}


/* s, then sep; an empty s may have no data at all (memcpy's NULL) */

static ngx_inline u_char *
ngx_http_fanout_cache_put(u_char *p, ngx_str_t *s, u_char sep)
{
    if (s->len) {
        p = ngx_cpymem(p, s->data, s->len);
    }

    *p++ = sep;

    return p;
}


/*
 * The keys stand for the targets (names and URIs), the vary value, and
 * key= or the method, URI and canonical body; the raw body is never in
 * them.  level=target: one key per target over that target alone, so that
 * changing one target misses only that target.
 */

ngx_int_t
ngx_http_fanout_cache_key(ngx_http_fanout_ctx_t *ctx)
{
    u_char                        *p, *start;
    char                           body_digest[FANOUT_SHA256_HEX_LEN + 1];
    size_t                         len, id_len;
    ngx_int_t                      rc;
    ngx_str_t                      body, key, vary, id, none, *variant;
    ngx_str_t                     *method, *sets;
    ngx_atomic_uint_t              purged;
    static ngx_str_t               get = ngx_string("GET");
    static ngx_str_t               post = ngx_string("POST");
    ngx_uint_t                     i;
    ngx_http_request_t            *r;
    ngx_http_fanout_target_t      *t;
    ngx_http_fanout_cache_conf_t  *cc;

    r = ctx->request;
    ngx_str_null(&none);
    cc = ctx->conf->cache;

    /* a purge stands for the POST of its body, or the GET of its URI */
    method = &r->method_name;

    if (ctx->cache->purging) {
        method = (ngx_http_fanout_body_size(r) > 0) ? &post : &get;
    }

    ngx_str_null(&key);
    ngx_str_null(&vary);

    if (cc->vary && ngx_http_complex_value(r, cc->vary, &vary) != NGX_OK) {
        return NGX_ERROR;
    }

    if (cc->key) {
        if (ngx_http_complex_value(r, cc->key, &key) != NGX_OK) {
            return NGX_ERROR;
        }

        body_digest[0] = '\0';

    } else if (ctx->batch) {
        /* the body around the batch: the items are keyed one by one */
        rc = ngx_http_fanout_cache_rest(ctx, &body);
        if (rc != NGX_OK) {
            return rc;
        }

        rc = fanout_cache_body_digest((const char *) body.data, body.len,
                                      cc->ignore, cc->nignore, body_digest);

        if (rc == FANOUT_KEY_NOMEM) {
            return NGX_ERROR;
        }

    } else {
        rc = ngx_http_fanout_cache_body(r, &body);
        if (rc != NGX_OK) {
            return rc;
        }

        rc = fanout_cache_body_digest((const char *) body.data, body.len,
                                      cc->ignore, cc->nignore, body_digest);

        if (rc == FANOUT_KEY_NOMEM) {
            return NGX_ERROR;
        }

        if (rc == FANOUT_KEY_AMBIGUOUS) {
            /* its bytes are its key: no other body shares it */
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "fanout cache: the body has a duplicate key, "
                          "keyed by its bytes");
            ngx_http_fanout_stats_count(
                ngx_http_fanout_stats_location(r, ctx->conf),
                NGX_HTTP_FANOUT_LOC_CACHE_AMBIGUOUS);
        }

        if (body.len > NGX_HTTP_FANOUT_LONG_WORK) {
            /* the Redis timers that follow measure from now */
            ngx_time_update();
        }
    }

    /* the request's identity, then what it is asked of (its calls, as the
     * targets' stage planned them) */

    variant = ngx_http_fanout_split_name(ctx);
    if (variant == NULL) {
        variant = &none;
    }

    id_len = sizeof("fanout-key-v2\n\n\n\n") + ctx->conf->server_id.len
             + r->headers_in.server.len + vary.len + key.len
             + sizeof("POST") + r->method_name.len + r->uri.len
             + r->args.len
             + sizeof(body_digest) + 4 + sizeof("\nvariant=") + variant->len
             + sizeof("\npurged=") + NGX_ATOMIC_T_LEN;
    len = id_len;
    sets = NULL;

    if (ctx->conf->bodies) {
        /* set=: each target's values, its body being its own */
        sets = ngx_pcalloc(r->pool, ctx->nsubs * sizeof(ngx_str_t));
        if (sets == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < ctx->nsubs; i++) {
            if (ngx_http_fanout_body_material(r, ctx->subs[i].target->sets,
                                              &sets[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    for (i = 0; i < ctx->nsubs; i++) {
        t = ctx->subs[i].target;
        len += t->name.len + t->uri.len + t->args.len + 4 + NGX_ATOMIC_T_LEN
               + (sets ? sets[i].len : 0);
    }

    start = ngx_pnalloc(r->pool, len);
    if (start == NULL) {
        return NGX_ERROR;
    }

    /*
     * Who answers (the server block, and the Host it may pass on) first.
     * Copied, not printed: ngx_sprintf() would cost more than the L1 hit
     * it serves.
     */
    p = ngx_cpymem(start, "fanout-key-v2\n", sizeof("fanout-key-v2\n") - 1);
    p = ngx_http_fanout_cache_put(p, &ctx->conf->server_id, '\n');
    p = ngx_http_fanout_cache_put(p, &r->headers_in.server, '\n');
    p = ngx_http_fanout_cache_put(p, &vary, '\n');

    if (cc->key) {
        p = ngx_http_fanout_cache_put(p, &key, '\0') - 1;

    } else {
        p = ngx_http_fanout_cache_put(p, method, ' ');
        p = ngx_http_fanout_cache_put(p, &r->uri, '?');
        p = ngx_http_fanout_cache_put(p, &r->args, ' ');
        p = ngx_cpymem(p, body_digest, ngx_strlen(body_digest));
    }

    if (variant->len) {
        /* a variant's answer is its own: a different ensemble, maybe */
        p = ngx_cpymem(p, "\nvariant=", sizeof("\nvariant=") - 1);
        p = ngx_cpymem(p, variant->data, variant->len);
    }

    purged = ngx_http_fanout_stats_location(r, ctx->conf)->rt.purged;

    if (purged) {
        /* fanout_api purged the location: the entries before are unseen */
        p = ngx_sprintf(p, "\npurged=%uA", purged);
    }

    id.data = start;
    id.len = p - start;

    if (ctx->batch) {
        return ngx_http_fanout_cache_batch_keys(ctx, start, p - start, sets);
    }

    if (!cc->per_target) {
        for (i = 0; i < ctx->nsubs; i++) {
            t = ctx->subs[i].target;
            *p++ = '\n';
            p = ngx_http_fanout_cache_put(p, &t->name, '=');
            p = ngx_http_fanout_cache_put(p, &t->uri, '?');
            p = ngx_http_fanout_cache_put(p, &t->args, '\0') - 1;

            if (sets) {
                p = ngx_cpymem(p, sets[i].data, sets[i].len);
            }

            p = ngx_http_fanout_cache_purged(p, ctx->subs[i].st);
        }

        /* named when Redis needs it: an L1 hit goes by the material */
        ctx->cache->material.data = start;
        ctx->cache->material.len = p - start;

        return NGX_OK;
    }

    ctx->cache->target_keys = ngx_palloc(r->pool, ctx->nsubs * sizeof(ngx_str_t));
    if (ctx->cache->target_keys == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < ctx->nsubs; i++) {
        t = ctx->subs[i].target;
        p = ngx_sprintf(start + id.len, "\n%V=%V?%V", &t->name, &t->uri,
                        &t->args);

        if (sets) {
            p = ngx_cpymem(p, sets[i].data, sets[i].len);
        }

        p = ngx_http_fanout_cache_purged(p, ctx->subs[i].st);

        if (ngx_http_fanout_cache_name(ctx, &t->name, start, p - start,
                                       &ctx->cache->target_keys[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /* the location's name stands for the whole, for logs */
    ctx->cache->key = ctx->cache->target_keys[0];

    return NGX_OK;
}
