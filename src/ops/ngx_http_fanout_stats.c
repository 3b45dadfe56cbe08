/*
 * Shared-memory counters: their registration at configuration, the zone,
 * counting, and the pieces every display of a node uses (histograms,
 * escaping).  What fanout_status shows is ngx_http_fanout_status.c.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_stats.h"


/* the Redis counters: a node keyed "\0redis", no location has that name */
static void ngx_http_fanout_stats_recent(ngx_http_fanout_stats_t *st,
    ngx_msec_t ms);


/* the wall clock's milliseconds: the same slots in every worker */

static ngx_inline uint64_t
ngx_http_fanout_stats_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}




ngx_msec_t  ngx_http_fanout_buckets[NGX_HTTP_FANOUT_NBUCKETS - 1] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};




static ngx_uint_t
ngx_http_fanout_stats_find(ngx_array_t *a, size_t size, ngx_str_t *name)
{
    u_char     *p;
    ngx_str_t  *s;
    ngx_uint_t  i;

    /* both element types begin with their ngx_str_t name */

    p = a->elts;

    for (i = 0; i < a->nelts; i++) {
        s = (ngx_str_t *) (p + i * size);

        if (s->len == name->len
            && ngx_strncmp(s->data, name->data, name->len) == 0)
        {
            return i;
        }
    }

    return NGX_ERROR;
}


ngx_int_t
ngx_http_fanout_stats_register(ngx_conf_t *cf,
    ngx_http_fanout_main_conf_t *fmcf, ngx_str_t *location, ngx_str_t *target,
    ngx_uint_t *loc_index, ngx_uint_t *target_index)
{
    ngx_uint_t                       i;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_stats_target_t  *tgt;

    i = ngx_http_fanout_stats_find(&fmcf->locations,
                                   sizeof(ngx_http_fanout_stats_loc_t),
                                   location);

    if (i == (ngx_uint_t) NGX_ERROR) {
        loc = ngx_array_push(&fmcf->locations);
        if (loc == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(loc, sizeof(ngx_http_fanout_stats_loc_t));
        loc->name = *location;

        if (ngx_array_init(&loc->targets, cf->pool, 4,
                           sizeof(ngx_http_fanout_stats_target_t))
            != NGX_OK
            || ngx_array_init(&loc->limits, cf->pool, 1,
                              sizeof(ngx_http_fanout_stats_target_t))
               != NGX_OK
            || ngx_array_init(&loc->variants, cf->pool, 1,
                              sizeof(ngx_http_fanout_stats_target_t))
               != NGX_OK
            || ngx_array_init(&loc->shadows, cf->pool, 1,
                              sizeof(ngx_http_fanout_stats_target_t))
               != NGX_OK
            || ngx_array_init(&loc->batches, cf->pool, 1,
                              sizeof(ngx_http_fanout_stats_target_t))
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        i = fmcf->locations.nelts - 1;
    }

    *loc_index = i;

    if (target == NULL) {
        return NGX_OK;
    }

    loc = fmcf->locations.elts;
    loc = &loc[i];

    i = ngx_http_fanout_stats_find(&loc->targets,
                                   sizeof(ngx_http_fanout_stats_target_t),
                                   target);

    if (i == (ngx_uint_t) NGX_ERROR) {
        tgt = ngx_array_push(&loc->targets);
        if (tgt == NULL) {
            return NGX_ERROR;
        }

        /* every field cleared: a subsystem's too (queue=, breaker_key=) */
        ngx_memzero(tgt, sizeof(ngx_http_fanout_stats_target_t));
        tgt->name = *target;
        tgt->variant = -1;

        i = loc->targets.nelts - 1;
    }

    *target_index = i;

    return NGX_OK;
}


/*
 * A limit's, a variant's, a shadow's or a batched target's node is keyed
 * by its name after a \1, \2, \3 or \4: no target has such a name.
 */

ngx_int_t
ngx_http_fanout_stats_register_extra(ngx_conf_t *cf,
    ngx_http_fanout_main_conf_t *fmcf, ngx_str_t *location, ngx_str_t *name,
    ngx_uint_t kind, ngx_uint_t *loc_index, ngx_uint_t *index)
{
    ngx_array_t                     *a;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_stats_target_t  *lim;

    if (ngx_http_fanout_stats_register(cf, fmcf, location, NULL, loc_index,
                                       NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    loc = fmcf->locations.elts;
    loc = &loc[*loc_index];

    a = ngx_http_fanout_stats_extras(loc, kind);

    lim = ngx_array_push(a);
    if (lim == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(lim, sizeof(ngx_http_fanout_stats_target_t));
    lim->variant = -1;
    lim->name.len = name->len + 1;
    lim->name.data = ngx_pnalloc(cf->pool, lim->name.len);
    if (lim->name.data == NULL) {
        return NGX_ERROR;
    }

    lim->name.data[0] = (u_char) kind;
    ngx_memcpy(lim->name.data + 1, name->data, name->len);
    lim->node = NULL;

    *index = a->nelts - 1;

    return NGX_OK;
}


/*
 * A node of the zone, found or made, under the zone's lock: a location's
 * (target NULL), a target's, or one of no location (location empty: the
 * Redis client's, a breaker_key='s).
 */

ngx_http_fanout_stats_t *
ngx_http_fanout_stats_node(ngx_slab_pool_t *shpool,
    ngx_http_fanout_shctx_t *sh, ngx_str_t *location, ngx_str_t *target)
{
    size_t                    len;
    u_char                   *p;
    ngx_http_fanout_stats_t  *node;

    /* key: the location, a NUL, then the target (empty for the location) */

    len = location->len + 1 + (target ? target->len : 0);

    for (node = sh->head; node; node = node->next) {
        if (node->len != len
            || ngx_strncmp(node->key, location->data, location->len) != 0
            || node->key[location->len] != '\0')
        {
            continue;
        }

        if (target == NULL
            || ngx_strncmp(node->key + location->len + 1, target->data,
                           target->len)
               == 0)
        {
            return node;
        }
    }

    node = ngx_slab_calloc_locked(shpool,
                                  offsetof(ngx_http_fanout_stats_t, key) + len);
    if (node == NULL) {
        return NULL;
    }

    p = ngx_cpymem(node->key, location->data, location->len);
    *p++ = '\0';

    if (target) {
        ngx_memcpy(p, target->data, target->len);
    }

    node->len = len;
    node->next = sh->head;
    sh->head = node;

    return node;
}


/* a subsystem's setup in the zone, registered once */

ngx_int_t
ngx_http_fanout_stats_zone_init(ngx_conf_t *cf,
    ngx_http_fanout_zone_init_pt init)
{
    ngx_uint_t                     i;
    ngx_http_fanout_main_conf_t   *fmcf;
    ngx_http_fanout_zone_init_pt  *p;

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);

    if (fmcf->zone_inits == NULL) {
        fmcf->zone_inits = ngx_array_create(cf->pool, 4,
                                         sizeof(ngx_http_fanout_zone_init_pt));
        if (fmcf->zone_inits == NULL) {
            return NGX_ERROR;
        }
    }

    p = fmcf->zone_inits->elts;

    for (i = 0; i < fmcf->zone_inits->nelts; i++) {
        if (p[i] == init) {
            return NGX_OK;
        }
    }

    p = ngx_array_push(fmcf->zone_inits);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *p = init;

    return NGX_OK;
}


ngx_int_t
ngx_http_fanout_stats_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_uint_t                        i, j, k;
    ngx_array_t                      *a;
    ngx_slab_pool_t                  *shpool;
    ngx_http_fanout_shctx_t          *sh;
    ngx_http_fanout_stats_loc_t      *loc;
    ngx_http_fanout_main_conf_t      *fmcf;
    ngx_http_fanout_zone_init_pt     *init;
    ngx_http_fanout_stats_target_t   *tgt;

    fmcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    fmcf->loaded = ngx_time();

    /* a reload or a zone inherited by a new binary keeps the counters */

    if (data || shm_zone->shm.exists) {
        sh = shpool->data;
        sh->generation++;           /* the old workers quit: a reload */

    } else {
        sh = ngx_slab_calloc(shpool, sizeof(ngx_http_fanout_shctx_t));
        if (sh == NULL) {
            return NGX_ERROR;
        }

        shpool->data = sh;

        sh->started = ngx_time();


        shpool->log_ctx = ngx_slab_alloc(shpool,
                                         sizeof(" in fanout_zone \"\"")
                                         + shm_zone->shm.name.len);
        if (shpool->log_ctx == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(shpool->log_ctx, " in fanout_zone \"%V\"%Z",
                    &shm_zone->shm.name);
    }

    ngx_shmtx_lock(&shpool->mutex);

    loc = fmcf->locations.elts;

    for (i = 0; i < fmcf->locations.nelts; i++) {
        loc[i].node = ngx_http_fanout_stats_node(shpool, sh, &loc[i].name,
                                                 NULL);
        if (loc[i].node == NULL) {
            goto failed;
        }

        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            tgt[j].node = ngx_http_fanout_stats_node(shpool, sh, &loc[i].name,
                                                     &tgt[j].name);
            if (tgt[j].node == NULL) {
                goto failed;
            }

            /* its breaker's, unless breaker_key= names a shared one */
            tgt[j].bnode = tgt[j].node;
        }

        /* limits, variants, shadows, batches */
        for (k = NGX_HTTP_FANOUT_STATS_LIMIT;
             k <= NGX_HTTP_FANOUT_STATS_BATCH;
             k++)
        {
            a = ngx_http_fanout_stats_extras(&loc[i], k);
            tgt = a->elts;

            for (j = 0; j < a->nelts; j++) {
                tgt[j].node = ngx_http_fanout_stats_node(shpool, sh,
                                                         &loc[i].name,
                                                         &tgt[j].name);
                if (tgt[j].node == NULL) {
                    goto failed;
                }
            }
        }
    }

    /* then each subsystem's own */
    init = fmcf->zone_inits ? fmcf->zone_inits->elts : NULL;

    for (i = 0; init && i < fmcf->zone_inits->nelts; i++) {
        if (init[i](fmcf, shpool, sh) != NGX_OK) {
            goto failed;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    fmcf->sh = sh;
    fmcf->shpool = shpool;

    /* the limiter evicts and logs on its own when the zone is full */
    shpool->log_nomem = 0;

    return NGX_OK;

failed:

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                  "fanout_zone \"%V\" is too small for the counters of %ui "
                  "locations", &shm_zone->shm.name, fmcf->locations.nelts);

    return NGX_ERROR;
}


ngx_http_fanout_stats_t *
ngx_http_fanout_stats_location(ngx_http_request_t *r,
    ngx_http_fanout_loc_conf_t *flcf)
{
    ngx_http_fanout_stats_loc_t  *loc;
    ngx_http_fanout_main_conf_t  *fmcf;

    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fanout_module);
    loc = fmcf->locations.elts;

    return loc[flcf->stats].node;
}


ngx_http_fanout_stats_t *
ngx_http_fanout_stats_target(ngx_http_request_t *r,
    ngx_http_fanout_loc_conf_t *flcf, ngx_http_fanout_target_t *target)
{
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_main_conf_t     *fmcf;
    ngx_http_fanout_stats_target_t  *tgt;

    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fanout_module);
    loc = fmcf->locations.elts;
    tgt = loc[flcf->stats].targets.elts;

    return tgt[target->stats].node;
}


ngx_http_fanout_stats_t *
ngx_http_fanout_stats_breaker(ngx_http_request_t *r,
    ngx_http_fanout_loc_conf_t *flcf, ngx_http_fanout_target_t *target)
{
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_main_conf_t     *fmcf;
    ngx_http_fanout_stats_target_t  *tgt;

    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fanout_module);
    loc = fmcf->locations.elts;
    tgt = loc[flcf->stats].targets.elts;

    return tgt[target->stats].bnode;
}


ngx_http_fanout_stats_t *
ngx_http_fanout_stats_extra(ngx_http_request_t *r,
    ngx_http_fanout_loc_conf_t *flcf, ngx_uint_t kind, ngx_uint_t index)
{
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_main_conf_t     *fmcf;
    ngx_http_fanout_stats_target_t  *lim;

    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fanout_module);
    loc = fmcf->locations.elts;
    lim = ngx_http_fanout_stats_extras(&loc[flcf->stats], kind)->elts;

    return lim[index].node;
}


void
ngx_http_fanout_stats_count(ngx_http_fanout_stats_t *st, ngx_uint_t counter)
{
    (void) ngx_atomic_fetch_add(&st->counters[counter], 1);
}


void
ngx_http_fanout_stats_latency(ngx_http_fanout_stats_t *st, ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_FANOUT_NBUCKETS - 1; i++) {
        if (ms <= ngx_http_fanout_buckets[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&st->buckets[i], 1);
    (void) ngx_atomic_fetch_add(&st->latency_sum, ms);
    (void) ngx_atomic_fetch_add(&st->latency_count, 1);

    ngx_http_fanout_stats_recent(st, ms);
}


/* a histogram kept in the counters: its sum at counters[sum], its count
 * in counters[first + the bucket of ms]; bounds[n - 1] of them, the last
 * bucket the rest */

void
ngx_http_fanout_stats_histogram(ngx_http_fanout_stats_t *st, ngx_uint_t sum,
    ngx_uint_t first, const ngx_msec_t *bounds, ngx_uint_t n, ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0; i < n - 1; i++) {
        if (ms <= bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&st->counters[sum], ms);
    (void) ngx_atomic_fetch_add(&st->counters[first + i], 1);
}


/*
 * The last minute's ring (fanout_call.h): the slot of now, emptied first
 * by the one worker that moves its stamp on.  Without a lock: an answer
 * counted by another worker while the slot is emptied may be lost, and
 * none is counted twice.
 */

static void
ngx_http_fanout_stats_recent(ngx_http_fanout_stats_t *st, ngx_msec_t ms)
{
    ngx_uint_t    i, b;
    ngx_atomic_t  old;
    uint64_t      slot;

    slot = (uint64_t) ngx_http_fanout_stats_now() / FANOUT_QRING_SLOT_MS;
    i = slot % FANOUT_QRING_SLOTS;
    old = st->qstamp[i];

    if (old != slot) {
        if (old > slot || !ngx_atomic_cmp_set(&st->qstamp[i], old, slot)) {
            /* another worker moved it on (or the clock went back) */
            if (st->qstamp[i] != slot) {
                return;
            }

        } else {
            for (b = 0; b < FANOUT_QRING_BUCKETS; b++) {
                st->qcounts[i][b] = 0;
            }
        }
    }

    (void) ngx_atomic_fetch_add(&st->qcounts[i][fanout_qring_bucket(ms)], 1);
}


/* the status page */


u_char *
ngx_http_fanout_escape_label(u_char *p, ngx_str_t *s)
{
    u_char  *c, *end;

    end = s->data + s->len;

    for (c = s->data; c < end; c++) {
        if (*c == '\\' || *c == '"') {
            *p++ = '\\';
            *p++ = *c;

        } else if (*c == '\n') {
            *p++ = '\\';
            *p++ = 'n';

        } else {
            *p++ = *c;
        }
    }

    return p;
}


u_char *
ngx_http_fanout_escape_json(u_char *p, ngx_str_t *s)
{
    return (u_char *) ngx_escape_json(p, s->data, s->len);
}


u_char *
ngx_http_fanout_stats_json_histogram(u_char *p, ngx_http_fanout_stats_t *st)
{
    ngx_uint_t  i, s;
    uint64_t    q[4], samples, stamps[FANOUT_QRING_SLOTS],
                counts[FANOUT_QRING_SLOTS * FANOUT_QRING_BUCKETS];

    static const unsigned  per_mille[4] = { 500, 900, 990, 999 };

    p = ngx_sprintf(p, "\"latency_ms\":{\"sum\":%uA,\"count\":%uA,"
                    "\"buckets\":{", st->latency_sum, st->latency_count);

    for (i = 0; i < NGX_HTTP_FANOUT_NBUCKETS; i++) {
        if (i < NGX_HTTP_FANOUT_NBUCKETS - 1) {
            p = ngx_sprintf(p, "\"%M\":%uA,", ngx_http_fanout_buckets[i],
                            st->buckets[i]);

        } else {
            p = ngx_sprintf(p, "\"+Inf\":%uA", st->buckets[i]);
        }
    }

    /* the last minute's quantiles, copied without the lock (ngx_atomic_t
     * is 32 bits on some platforms) */
    for (s = 0; s < FANOUT_QRING_SLOTS; s++) {
        stamps[s] = st->qstamp[s];

        for (i = 0; i < FANOUT_QRING_BUCKETS; i++) {
            counts[s * FANOUT_QRING_BUCKETS + i] = st->qcounts[s][i];
        }
    }

    fanout_qring_quantiles(stamps, counts,
                           ngx_http_fanout_stats_now() / FANOUT_QRING_SLOT_MS,
                           per_mille, 4, q, &samples);

    return ngx_sprintf(p, "},\"recent\":{\"seconds\":%d,\"samples\":%uL,"
                       "\"p50\":%uL,\"p90\":%uL,\"p99\":%uL,"
                       "\"p99.9\":%uL}}",
                       FANOUT_QRING_SLOTS * FANOUT_QRING_SLOT_MS / 1000,
                       samples, q[0], q[1], q[2], q[3]);
}


/* "{location=...,target=..." without the closing brace; "{" alone */

u_char *
ngx_http_fanout_prom_labels(u_char *p, ngx_str_t *loc, ngx_str_t *tgt)
{
    *p++ = '{';

    if (loc == NULL) {
        return p;
    }

    p = ngx_sprintf(p, "location=\"");
    p = ngx_http_fanout_escape_label(p, loc);

    if (tgt) {
        p = ngx_sprintf(p, "\",target=\"");
        p = ngx_http_fanout_escape_label(p, tgt);
    }

    *p++ = '"';

    return p;
}


u_char *
ngx_http_fanout_stats_prom_histogram(u_char *p, const char *metric,
    ngx_str_t *loc, ngx_str_t *tgt, ngx_http_fanout_stats_t *st)
{
    ngx_uint_t    i;
    ngx_atomic_t  total;

    total = 0;

    for (i = 0; i < NGX_HTTP_FANOUT_NBUCKETS; i++) {
        total += st->buckets[i];

        p = ngx_sprintf(p, "%s_bucket", metric);
        p = ngx_http_fanout_prom_labels(p, loc, tgt);

        if (loc) {
            *p++ = ',';
        }

        if (i < NGX_HTTP_FANOUT_NBUCKETS - 1) {
            p = ngx_sprintf(p, "le=\"%M.%03M\"} %uA\n",
                            ngx_http_fanout_buckets[i] / 1000,
                            ngx_http_fanout_buckets[i] % 1000, total);

        } else {
            p = ngx_sprintf(p, "le=\"+Inf\"} %uA\n", total);
        }
    }

    p = ngx_sprintf(p, "%s_sum", metric);
    p = ngx_http_fanout_prom_labels(p, loc, tgt);
    p = ngx_sprintf(p, "} %uA.%03uA\n", st->latency_sum / 1000,
                    st->latency_sum % 1000);

    p = ngx_sprintf(p, "%s_count", metric);
    p = ngx_http_fanout_prom_labels(p, loc, tgt);

    return ngx_sprintf(p, "} %uA\n", st->latency_count);
}


/* fanout_zone NAME SIZE: the zone of every worker's counters and state */

char *
ngx_http_fanout_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_main_conf_t *fmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (fmcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small, at least %uz bytes "
                           "are needed", &value[1], 8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    fmcf->shm_zone = ngx_shared_memory_add(cf, &value[1], size,
                                           &ngx_http_fanout_module);
    if (fmcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (fmcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &value[1]);
        return NGX_CONF_ERROR;
    }

    fmcf->shm_zone->init = ngx_http_fanout_stats_init_zone;
    fmcf->shm_zone->data = fmcf;

    return NGX_CONF_OK;
}
