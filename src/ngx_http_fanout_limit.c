/*
 * fanout_limit: token buckets (GCRA, src/fanout_limit.c) per key value,
 * kept in the fanout_zone shared memory for all workers, in a red-black
 * tree with an LRU queue: a full zone evicts the least recently used keys
 * (counted), never fails a request.
 */

#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_stats.h"
#include "fanout_limit.h"


#define NGX_HTTP_FANOUT_MAX_LIMITS  8


typedef struct {
    ngx_http_complex_value_t    key;
    fanout_limit_conf_t         gcra;
    ngx_str_t                   rate;          /* as written: "100r/s" */
    ngx_uint_t                  cost;
    ngx_uint_t                  status;
    ngx_uint_t                  id;            /* keys of limits differ */
    unsigned                    dry_run:1;
} ngx_http_fanout_limit_t;


typedef struct {
    u_char                      color;
    u_char                      dummy;
    u_short                     len;
    ngx_queue_t                 queue;
    uint64_t                    tat;
    u_char                      data[1];
} ngx_http_fanout_limit_node_t;


static ngx_uint_t  ngx_http_fanout_limit_ids;


char *
ngx_http_fanout_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    u_char                            *p, *slash;
    ngx_int_t                          n, burst;
    ngx_str_t                         *value, s;
    uint64_t                           period;
    ngx_uint_t                         i;
    ngx_http_fanout_limit_t           *l;
    ngx_http_compile_complex_value_t   ccv;

    if (flcf->limits == NULL) {
        flcf->limits = ngx_array_create(cf->pool, 2,
                                        sizeof(ngx_http_fanout_limit_t));
        if (flcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (flcf->limits->nelts == NGX_HTTP_FANOUT_MAX_LIMITS) {
        return "is used too many times";
    }

    l = ngx_array_push(flcf->limits);
    if (l == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(l, sizeof(ngx_http_fanout_limit_t));

    l->cost = 1;
    l->status = 429;
    l->id = ++ngx_http_fanout_limit_ids;

    burst = 0;
    n = 0;
    period = 0;
    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "key=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
            ccv.cf = cf;
            ccv.value = &s;
            ccv.complex_value = &l->key;

            if (s.len == 0 || ngx_http_compile_complex_value(&ccv) != NGX_OK) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {
            p = value[i].data + 5;
            slash = ngx_strlchr(p, value[i].data + value[i].len, '/');

            if (slash == NULL || slash - p < 2 || slash[-1] != 'r') {
                goto invalid;
            }

            n = ngx_atoi(p, slash - 1 - p);

            if (ngx_strcmp(slash, "/s") == 0) {
                period = 1000000;

            } else if (ngx_strcmp(slash, "/m") == 0) {
                period = 60000000;
            }

            if (n <= 0 || period == 0) {
                goto invalid;
            }

            l->rate.data = p;
            l->rate.len = value[i].data + value[i].len - p;
            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            burst = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (burst <= 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "cost=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);
            if (n <= 0) {
                goto invalid;
            }

            l->cost = (ngx_uint_t) n;
            n = 0;
            continue;
        }

        if (ngx_strncmp(value[i].data, "status=", 7) == 0) {
            n = ngx_atoi(value[i].data + 7, value[i].len - 7);
            if (n < 400 || n > 599) {
                goto invalid;
            }

            l->status = (ngx_uint_t) n;
            n = 0;
            continue;
        }

        if (ngx_strcmp(value[i].data, "dry_run") == 0) {
            l->dry_run = 1;
            continue;
        }

        goto invalid;
    }

    if (l->key.value.data == NULL || l->rate.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fanout_limit\" needs key= and rate=, as in "
                           "\"fanout_limit key=$binary_remote_addr "
                           "rate=10r/s;\"");
        return NGX_CONF_ERROR;
    }

    /* the number before "r/s" or "r/m" */
    n = ngx_atoi(l->rate.data, l->rate.len - 3);

    if (fanout_limit_conf(&l->gcra, (uint64_t) n, period, (uint64_t) burst)
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "rate \"%V\" is too high", &l->rate);
        return NGX_CONF_ERROR;
    }

    if (l->cost > l->gcra.capacity) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cost=%ui is more than the burst of %uL: no "
                           "request could pass", l->cost, l->gcra.capacity);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


void
ngx_http_fanout_limit_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t             **p;
    ngx_http_fanout_limit_node_t   *ln, *lnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            ln = (ngx_http_fanout_limit_node_t *) &node->color;
            lnt = (ngx_http_fanout_limit_node_t *) &temp->color;

            p = (ngx_memn2cmp(ln->data, lnt->data, ln->len, lnt->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_http_fanout_limit_node_t *
ngx_http_fanout_limit_find(ngx_http_fanout_shctx_t *sh, ngx_str_t *key,
    uint32_t hash)
{
    ngx_int_t                      rc;
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_fanout_limit_node_t  *ln;

    node = sh->limits.root;
    sentinel = sh->limits.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        ln = (ngx_http_fanout_limit_node_t *) &node->color;

        rc = ngx_memn2cmp(key->data, ln->data, key->len, (size_t) ln->len);

        if (rc == 0) {
            return ln;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* a new key: the least recently used ones go when the zone is full */

static ngx_http_fanout_limit_node_t *
ngx_http_fanout_limit_add(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_main_conf_t *fmcf, ngx_str_t *key, uint32_t hash)
{
    size_t                         size;
    ngx_uint_t                     evicted;
    ngx_queue_t                   *q;
    ngx_rbtree_node_t             *node, *old;
    ngx_http_fanout_limit_node_t  *ln;

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_fanout_limit_node_t, data) + key->len;

    evicted = 0;

    for ( ;; ) {
        node = ngx_slab_alloc_locked(fmcf->shpool, size);

        if (node || ngx_queue_empty(&fmcf->sh->lru) || evicted == 16) {
            break;
        }

        q = ngx_queue_last(&fmcf->sh->lru);
        ln = ngx_queue_data(q, ngx_http_fanout_limit_node_t, queue);
        old = (ngx_rbtree_node_t *)
                  ((u_char *) ln - offsetof(ngx_rbtree_node_t, color));

        ngx_queue_remove(q);
        ngx_rbtree_delete(&fmcf->sh->limits, old);
        ngx_slab_free_locked(fmcf->shpool, old);

        evicted++;
    }

    if (evicted) {
        ngx_http_fanout_stats_count(
            ngx_http_fanout_stats_location(ctx->request, ctx->conf),
            NGX_HTTP_FANOUT_LOC_EVICTED);

        ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                      "fanout_limit: zone \"%V\" is full, %ui least recently "
                      "used keys evicted", &fmcf->shm_zone->shm.name, evicted);
    }

    if (node == NULL) {
        return NULL;
    }

    node->key = hash;

    ln = (ngx_http_fanout_limit_node_t *) &node->color;
    ln->len = (u_short) key->len;
    ln->tat = 0;
    ngx_memcpy(ln->data, key->data, key->len);

    ngx_rbtree_insert(&fmcf->sh->limits, node);
    ngx_queue_insert_head(&fmcf->sh->lru, &ln->queue);

    return ln;
}


static ngx_int_t
ngx_http_fanout_limit_reject(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_limit_t *l, fanout_limit_result_t *res)
{
    u_char              *p, *body;
    ngx_int_t            rc;
    ngx_uint_t           retry_ms;
    ngx_table_elt_t     *h;
    ngx_http_request_t  *r;

    r = ctx->request;
    retry_ms = (ngx_uint_t) ((res->retry_after_us + 999) / 1000);

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    h = ngx_list_push(&r->headers_out.headers);
    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (h == NULL || p == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%ui", (retry_ms + 999) / 1000) - p;

    body = ngx_pnalloc(r->pool, 128 + l->rate.len);
    if (body == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(body, "{\"error\":\"rate_limited\",\"limit\":\"%V\","
                    "\"retry_after_ms\":%ui}", &l->rate, retry_ms);

    return ngx_http_fanout_send_json(r, l->status, body, p - body);
}


/*
 * All limits of the location, in two steps under the zone's lock: every
 * bucket is asked first, and only when all of them admit the request are
 * they all taken from, so a rejected request costs nothing.
 */

ngx_int_t
ngx_http_fanout_limit_check(ngx_http_fanout_ctx_t *ctx)
{
    u_char                        *p;
    uint32_t                       hash;
    uint64_t                       now, tat[NGX_HTTP_FANOUT_MAX_LIMITS];
    ngx_str_t                      value, key;
    ngx_uint_t                     i, n, reject;
    ngx_time_t                    *tp;
    ngx_http_request_t            *r;
    ngx_http_fanout_limit_t       *limits;
    fanout_limit_result_t          res[NGX_HTTP_FANOUT_MAX_LIMITS];
    ngx_http_fanout_main_conf_t   *fmcf;
    ngx_http_fanout_limit_node_t  *ln[NGX_HTTP_FANOUT_MAX_LIMITS];

    r = ctx->request;
    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fanout_module);
    limits = ctx->conf->limits->elts;
    n = ctx->conf->limits->nelts;

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000000 + (uint64_t) tp->msec * 1000;

    ngx_shmtx_lock(&fmcf->shpool->mutex);

    reject = n;

    for (i = 0; i < n; i++) {
        ln[i] = NULL;

        if (ngx_http_complex_value(r, &limits[i].key, &value) != NGX_OK) {
            ngx_shmtx_unlock(&fmcf->shpool->mutex);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (value.len == 0) {
            /* like limit_req: an empty key is not limited */
            continue;
        }

        /* the limit's id, then the value: limits never share a bucket */
        key.len = sizeof(ngx_uint_t) + ngx_min(value.len, 1024);
        key.data = ngx_pnalloc(r->pool, key.len);
        if (key.data == NULL) {
            ngx_shmtx_unlock(&fmcf->shpool->mutex);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_cpymem(key.data, &limits[i].id, sizeof(ngx_uint_t));
        ngx_memcpy(p, value.data, key.len - sizeof(ngx_uint_t));

        hash = ngx_crc32_short(key.data, key.len);

        ln[i] = ngx_http_fanout_limit_find(fmcf->sh, &key, hash);

        if (ln[i] == NULL) {
            ln[i] = ngx_http_fanout_limit_add(ctx, fmcf, &key, hash);

            if (ln[i] == NULL) {
                /* no room even after evicting: admit, it was logged */
                continue;
            }

        } else {
            ngx_queue_remove(&ln[i]->queue);
            ngx_queue_insert_head(&fmcf->sh->lru, &ln[i]->queue);
        }

        tat[i] = ln[i]->tat;
        fanout_limit_take(&limits[i].gcra, &tat[i], now, limits[i].cost,
                          &res[i]);

        if (!res[i].allowed && !limits[i].dry_run && reject == n) {
            reject = i;
        }
    }

    if (reject == n) {
        for (i = 0; i < n; i++) {
            if (ln[i]) {
                ln[i]->tat = tat[i];
            }
        }
    }

    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    /* the headers tell of the tightest limit */
    for (i = 0; i < n; i++) {
        if (ln[i] == NULL) {
            continue;
        }

        if (!res[i].allowed) {
            ngx_http_fanout_stats_count(
                ngx_http_fanout_stats_location(r, ctx->conf),
                limits[i].dry_run ? NGX_HTTP_FANOUT_LOC_DRY_RUN
                                  : NGX_HTTP_FANOUT_LOC_LIMITED);

            if (limits[i].dry_run) {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "fanout_limit %V would reject this request "
                              "(dry_run)", &limits[i].rate);
            }
        }

        if (!ctx->limited || res[i].remaining < ctx->limit_remaining) {
            ctx->limited = 1;
            ctx->limit_limit = (ngx_uint_t) limits[i].gcra.capacity;
            ctx->limit_remaining = (ngx_uint_t) res[i].remaining;
            ctx->limit_reset = (ngx_uint_t) ((res[i].reset_us + 999999)
                                             / 1000000);
        }
    }

    if (reject < n) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanout_limit %V: request rejected", &limits[reject].rate);

        return ngx_http_fanout_limit_reject(ctx, &limits[reject],
                                            &res[reject]);
    }

    return NGX_DECLINED;
}
