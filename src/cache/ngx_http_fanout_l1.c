/*
 * fanout_cache l1=: a first-level cache in shared memory, in front of
 * Redis, for all the workers of an instance.  One zone per fanout_cache
 * with l1=, named by its server block and location: entries in a
 * red-black tree by key, in an LRU queue, each with its own expiry.  A
 * full zone evicts the least recently used entries; an entry is never
 * served past its expiry, which is at most l1_ttl after it was stored and
 * never past the entry's own freshness.
 *
 * What is stored is exactly the value kept in Redis (fanout_cache.c reads
 * both the same way), and only once Redis holds it: an instance's L1 is
 * never ahead of the fleet, and behind it by at most l1_ttl.
 *
 * Every operation takes the zone's lock for a tree walk and one copy of
 * one entry: O(log n + size), with size at most l1_max (an eighth of the
 * zone, and the cache's max_size).
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_l1.h"


typedef struct {
    ngx_str_node_t              sn;        /* key: crc32; str: the key */
    ngx_queue_t                 lru;
    ngx_msec_int_t              expires;   /* epoch milliseconds */
    ngx_uint_t                  flags;     /* the caller's, kept with it */
    size_t                      len;
    u_char                      data[1];   /* the key, then the value */
} ngx_http_fanout_l1_node_t;


typedef struct {
    ngx_rbtree_t                tree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 lru;
    ngx_atomic_t                entries;
    ngx_atomic_t                bytes;     /* keys and values stored */
    ngx_atomic_t                evicted;   /* to make room */
    ngx_atomic_t                expired;   /* found past their expiry */
} ngx_http_fanout_l1_sh_t;


struct ngx_http_fanout_l1_s {
    ngx_http_fanout_l1_t       *next;      /* of another server block, shown
                                              under the same location name */
    ngx_shm_zone_t             *zone;
    ngx_http_fanout_l1_sh_t    *sh;
    ngx_slab_pool_t            *shpool;
    size_t                      size;
    size_t                      max;       /* the largest entry kept */
    ngx_msec_t                  ttl;
};


static ngx_int_t
ngx_http_fanout_l1_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_fanout_l1_t *old = data;

    ngx_slab_pool_t       *shpool;
    ngx_http_fanout_l1_t  *l1;

    l1 = shm_zone->data;

    /* a reload keeps the entries: they are the same keys */
    if (old) {
        l1->sh = old->sh;
        l1->shpool = old->shpool;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    l1->shpool = shpool;

    if (shm_zone->shm.exists) {
        l1->sh = shpool->data;
        return NGX_OK;
    }

    l1->sh = ngx_slab_calloc(shpool, sizeof(ngx_http_fanout_l1_sh_t));
    if (l1->sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = l1->sh;

    ngx_rbtree_init(&l1->sh->tree, &l1->sh->sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&l1->sh->lru);

    shpool->log_ctx = ngx_slab_alloc(shpool, sizeof(" in fanout_cache l1 \"\"")
                                             + shm_zone->shm.name.len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in fanout_cache l1 \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone evicts: the slab allocator need not say so */
    shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_http_fanout_l1_t *
ngx_http_fanout_l1_add(ngx_conf_t *cf, ngx_str_t *server_id,
    ngx_str_t *location, size_t size, size_t max_size, ngx_msec_t ttl)
{
    u_char                *p;
    ngx_str_t              name;
    ngx_http_fanout_l1_t  *l1;

    l1 = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_l1_t));
    if (l1 == NULL) {
        return NULL;
    }

    /* kept across reloads: named by what the configuration says */
    name.len = sizeof("fanout_l1::") - 1 + 16 + location->len;
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NULL;
    }

    p = ngx_sprintf(name.data, "fanout_l1:%*s:%V",
                    (size_t) ngx_min(server_id->len, 16), server_id->data,
                    location);
    name.len = p - name.data;

    l1->zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_fanout_module);
    if (l1->zone == NULL) {
        return NULL;
    }

    if (l1->zone->data) {
        /* two server blocks with the same ports and names (nginx warns of
         * the conflict): the same keys, so the same zone */
        return l1->zone->data;
    }

    l1->zone->init = ngx_http_fanout_l1_init_zone;
    l1->zone->data = l1;
    l1->size = size;
    l1->max = ngx_min(size / 8, max_size);
    l1->ttl = ttl;

    return l1;
}


static ngx_http_fanout_l1_node_t *
ngx_http_fanout_l1_find(ngx_http_fanout_l1_t *l1, ngx_str_t *key,
    uint32_t hash)
{
    return (ngx_http_fanout_l1_node_t *)
               ngx_str_rbtree_lookup(&l1->sh->tree, key, hash);
}


static void
ngx_http_fanout_l1_free(ngx_http_fanout_l1_t *l1,
    ngx_http_fanout_l1_node_t *n)
{
    ngx_queue_remove(&n->lru);
    ngx_rbtree_delete(&l1->sh->tree, &n->sn.node);

    l1->sh->entries--;
    l1->sh->bytes -= n->sn.str.len + n->len;

    ngx_slab_free_locked(l1->shpool, n);
}


ngx_int_t
ngx_http_fanout_l1_get(ngx_http_fanout_l1_t *l1, ngx_str_t *key,
    ngx_msec_int_t now, ngx_pool_t *pool, ngx_str_t *value, ngx_uint_t *flags)
{
    uint32_t                    hash;
    ngx_http_fanout_l1_node_t  *n;

    /* keys end in a digest: a fast hash suffices */
    hash = ngx_murmur_hash2(key->data, key->len);

    ngx_shmtx_lock(&l1->shpool->mutex);

    n = ngx_http_fanout_l1_find(l1, key, hash);

    if (n == NULL) {
        ngx_shmtx_unlock(&l1->shpool->mutex);
        return NGX_DECLINED;
    }

    if (n->expires < now) {
        l1->sh->expired++;
        ngx_http_fanout_l1_free(l1, n);
        ngx_shmtx_unlock(&l1->shpool->mutex);
        return NGX_DECLINED;
    }

    value->data = ngx_pnalloc(pool, n->len);
    if (value->data == NULL) {
        ngx_shmtx_unlock(&l1->shpool->mutex);
        return NGX_ERROR;
    }

    ngx_memcpy(value->data, n->data + n->sn.str.len, n->len);
    value->len = n->len;
    *flags = n->flags;

    ngx_queue_remove(&n->lru);
    ngx_queue_insert_head(&l1->sh->lru, &n->lru);

    ngx_shmtx_unlock(&l1->shpool->mutex);

    return NGX_OK;
}


/*
 * Room for one entry: the expired ones at the LRU's tail go first, then
 * the least recently used, a bounded number of times (an entry is at most
 * an eighth of the zone, so a few evictions make room unless the slab's
 * pages are split among smaller sizes).
 */

#define NGX_HTTP_FANOUT_L1_EVICT  64

static ngx_http_fanout_l1_node_t *
ngx_http_fanout_l1_alloc(ngx_http_fanout_l1_t *l1, size_t size)
{
    ngx_uint_t                  i;
    ngx_queue_t                *q;
    ngx_http_fanout_l1_node_t  *n;

    for (i = 0; i < NGX_HTTP_FANOUT_L1_EVICT; i++) {
        n = ngx_slab_alloc_locked(l1->shpool, size);
        if (n) {
            return n;
        }

        if (ngx_queue_empty(&l1->sh->lru)) {
            return NULL;
        }

        q = ngx_queue_last(&l1->sh->lru);
        ngx_http_fanout_l1_free(l1,
                                ngx_queue_data(q, ngx_http_fanout_l1_node_t,
                                               lru));
        l1->sh->evicted++;
    }

    return NULL;
}


ngx_int_t
ngx_http_fanout_l1_put(ngx_http_fanout_l1_t *l1, ngx_str_t *key,
    u_char *value, size_t len, ngx_msec_int_t now, ngx_msec_int_t fresh_until,
    ngx_uint_t flags)
{
    uint32_t                    hash;
    ngx_msec_int_t              expires;
    ngx_http_fanout_l1_node_t  *n;

    if (len + key->len > l1->max) {
        return NGX_DECLINED;
    }

    expires = ngx_min(now + (ngx_msec_int_t) l1->ttl, fresh_until);

    if (expires < now) {
        return NGX_DECLINED;
    }

    /* keys end in a digest: a fast hash suffices */
    hash = ngx_murmur_hash2(key->data, key->len);

    ngx_shmtx_lock(&l1->shpool->mutex);

    /* a newer value for the key replaces the old one */
    n = ngx_http_fanout_l1_find(l1, key, hash);
    if (n) {
        ngx_http_fanout_l1_free(l1, n);
    }

    n = ngx_http_fanout_l1_alloc(l1, offsetof(ngx_http_fanout_l1_node_t, data)
                                     + key->len + len);
    if (n == NULL) {
        ngx_shmtx_unlock(&l1->shpool->mutex);
        return NGX_ERROR;
    }

    n->sn.node.key = hash;
    n->sn.str.data = n->data;
    n->sn.str.len = key->len;
    n->expires = expires;
    n->flags = flags;
    n->len = len;

    ngx_memcpy(n->data, key->data, key->len);
    ngx_memcpy(n->data + key->len, value, len);

    ngx_rbtree_insert(&l1->sh->tree, &n->sn.node);
    ngx_queue_insert_head(&l1->sh->lru, &n->lru);

    l1->sh->entries++;
    l1->sh->bytes += key->len + len;

    ngx_shmtx_unlock(&l1->shpool->mutex);

    return NGX_OK;
}


ngx_int_t
ngx_http_fanout_l1_delete(ngx_http_fanout_l1_t *l1, ngx_str_t *key)
{
    uint32_t                    hash;
    ngx_http_fanout_l1_node_t  *n;

    /* keys end in a digest: a fast hash suffices */
    hash = ngx_murmur_hash2(key->data, key->len);

    ngx_shmtx_lock(&l1->shpool->mutex);

    n = ngx_http_fanout_l1_find(l1, key, hash);
    if (n) {
        ngx_http_fanout_l1_free(l1, n);
    }

    ngx_shmtx_unlock(&l1->shpool->mutex);

    return n ? NGX_OK : NGX_DECLINED;
}


/* the status counts a location name's L1s together, as its counters */

void
ngx_http_fanout_l1_link(ngx_http_fanout_l1_t **head, ngx_http_fanout_l1_t *l1)
{
    ngx_http_fanout_l1_t  *p;

    for (p = *head; p; p = p->next) {
        if (p == l1) {
            return;
        }
    }

    l1->next = *head;
    *head = l1;
}


/* read without the lock: counters, each exact, together nearly so */

void
ngx_http_fanout_l1_usage(ngx_http_fanout_l1_t *l1,
    ngx_http_fanout_l1_usage_t *u)
{
    ngx_memzero(u, sizeof(ngx_http_fanout_l1_usage_t));

    for ( /* void */ ; l1; l1 = l1->next) {
        u->size += l1->size;
        u->ttl = ngx_max(u->ttl, l1->ttl);

        if (l1->sh) {
            u->entries += l1->sh->entries;
            u->bytes += l1->sh->bytes;
            u->evicted += l1->sh->evicted;
            u->expired += l1->sh->expired;
        }
    }
}
