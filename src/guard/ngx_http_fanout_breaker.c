/*
 * fanout_breaker: a circuit breaker per target (src/core/fanout_breaker.c), its
 * state in the target's node of the fanout_zone, the same for all workers
 * and kept across reloads; changed under the zone's lock.
 *
 * scope=cluster also writes each opening to Redis, as a key that lives as
 * long as the cooldown (unless the fleet has it open already: then this
 * instance takes the fleet's retry time, so that all probe together), and
 * a closing as a marker that lives a second.  Twice a second one worker
 * of each instance reads all such keys, so that every instance learns of
 * an open circuit within a second, and a good probe anywhere closes the
 * breakers that opened before it everywhere.  Redis trouble leaves the
 * local state as it is.
 *
 * breaker_key=NAME: the breaker's state is in a node of its own, shared
 * by every location that calls the model by that name, and its key in
 * Redis is fanout:breaker:key:NAME.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_breaker.h"
#include "ngx_http_fanout_conf.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_task.h"


#define NGX_HTTP_FANOUT_BREAKER_SYNC    500    /* ms between reads */
#define NGX_HTTP_FANOUT_BREAKER_CLOSED  1000   /* ms a close is told */


static void ngx_http_fanout_breaker_publish(ngx_log_t *log,
    ngx_http_fanout_target_t *t, fanout_breaker_change_e change,
    uint64_t cooldown_ms);


/* a target's breaker with scope=cluster */
typedef struct {
    ngx_str_t                   location;
    ngx_str_t                   target;
    ngx_str_t                   key;           /* fanout:breaker:LOC:TARGET */
    ngx_uint_t                  loc;           /* stats indexes */
    ngx_uint_t                  tgt;
    fanout_breaker_conf_t      *conf;
    ngx_http_fanout_main_conf_t  *fmcf;
} ngx_http_fanout_breaker_peer_t;


/*
 * KEYS: the breakers.  Returns two integers per key: its PTTL (-2: none)
 * and the cooldown it was opened with.
 */
static const char  ngx_http_fanout_breaker_lua[] =
    "local out = {}\n"
    "for i, key in ipairs(KEYS) do\n"
    "  out[#out + 1] = redis.call('PTTL', key)\n"
    "  out[#out + 1] = tonumber(redis.call('GET', key) or '0') or 0\n"
    "end\n"
    "return out\n";


/*
 * An opening. KEYS[1]: the breaker; ARGV[1]: its cooldown. When the fleet
 * has it open already (a cooldown, not a close's 0) it stays as it is;
 * returns the key's PTTL and cooldown either way.
 */
static const char  ngx_http_fanout_breaker_open_lua[] =
    "local v = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"
    "if v > 0 then\n"
    "  local ttl = redis.call('PTTL', KEYS[1])\n"
    "  if ttl > 0 then return {ttl, v} end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[1])\n"
    "return {tonumber(ARGV[1]), tonumber(ARGV[1])}\n";


static ngx_http_fanout_redis_script_t  ngx_http_fanout_breaker_script;
static ngx_http_fanout_redis_script_t  ngx_http_fanout_breaker_open_script;
static ngx_http_fanout_task_t          ngx_http_fanout_breaker_task;
static ngx_http_fanout_redis_op_t     *ngx_http_fanout_breaker_sync_op;


static const char *const  ngx_http_fanout_breaker_scopes[] = {
    "local", "cluster", NULL
};


/* fanout_breaker's parameters; failures=0: consecutive failures off */

static const ngx_http_fanout_param_t  ngx_http_fanout_breaker_params[] = {

    ngx_http_fanout_param("failures", COUNT, fanout_breaker_conf_t, failures,
                          0, 1000000, NULL),
    ngx_http_fanout_param("error_rate", PERCENT, fanout_breaker_conf_t,
                          error_rate, 1, 100, NULL),
    ngx_http_fanout_param("min_requests", COUNT, fanout_breaker_conf_t,
                          min_requests, 1, 1000000, NULL),
    ngx_http_fanout_param("half_open", COUNT, fanout_breaker_conf_t,
                          half_open, 1, 1000000, NULL),
    ngx_http_fanout_param("scope", WORD, fanout_breaker_conf_t, cluster,
                          0, 1, ngx_http_fanout_breaker_scopes),
    ngx_http_fanout_param("window", MSEC, fanout_breaker_conf_t, window_ms,
                          1, NGX_MAX_INT_T_VALUE, NULL),
    ngx_http_fanout_param("cooldown", MSEC, fanout_breaker_conf_t,
                          cooldown_ms, 1, NGX_MAX_INT_T_VALUE, NULL),
    ngx_http_fanout_param("max_cooldown", MSEC, fanout_breaker_conf_t,
                          max_cooldown_ms, 1, NGX_MAX_INT_T_VALUE, NULL),
    ngx_http_fanout_param_null
};


char *
ngx_http_fanout_breaker(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    fanout_breaker_conf_t        *bc;
    ngx_http_fanout_main_conf_t  *fmcf;

    if (flcf->breaker) {
        return "is duplicate";
    }

    bc = ngx_pcalloc(cf->pool, sizeof(fanout_breaker_conf_t));
    if (bc == NULL) {
        return NGX_CONF_ERROR;
    }

    bc->failures = 5;
    bc->min_requests = 20;
    bc->window_ms = 10000;
    bc->cooldown_ms = 10000;
    bc->max_cooldown_ms = 300000;
    bc->half_open = 1;

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);

    if (ngx_http_fanout_conf_params(cf, 1, ngx_http_fanout_breaker_params,
                                    bc)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (bc->cluster && fmcf->cluster_file == NULL) {
        fmcf->cluster_file = cf->conf_file->file.name.data;
        fmcf->cluster_line = cf->conf_file->line;
    }

    if (bc->failures == 0 && bc->error_rate == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fanout_breaker\" with failures=0 needs "
                           "error_rate=");
        return NGX_CONF_ERROR;
    }

    if (bc->max_cooldown_ms < bc->cooldown_ms) {
        bc->max_cooldown_ms = bc->cooldown_ms;
    }

    flcf->breaker = bc;

    return NGX_CONF_OK;
}


/* the zone: breaker_key='s nodes, one per name, for every location
 * calling the model by it */

static ngx_int_t
ngx_http_fanout_breaker_zone(ngx_http_fanout_main_conf_t *fmcf,
    ngx_slab_pool_t *shpool, ngx_http_fanout_shctx_t *sh)
{
    ngx_str_t                        none;
    ngx_uint_t                       i, j;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_stats_target_t  *tgt;

    ngx_str_null(&none);
    none.data = (u_char *) "";

    loc = fmcf->locations.elts;

    for (i = 0; i < fmcf->locations.nelts; i++) {
        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            if (tgt[j].bkey.len == 0) {
                continue;
            }

            tgt[j].bnode = ngx_http_fanout_stats_node(shpool, sh, &none,
                                                      &tgt[j].bkey);
            if (tgt[j].bnode == NULL) {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


/* merge time: the location's targets whose breaker is shared */

ngx_int_t
ngx_http_fanout_breaker_register(ngx_conf_t *cf,
    ngx_http_fanout_loc_conf_t *flcf)
{
    size_t                           len;
    ngx_uint_t                       i, j;
    ngx_http_fanout_target_t        *t;
    ngx_http_fanout_main_conf_t     *fmcf;
    ngx_http_fanout_breaker_peer_t  *peer;

    if (flcf->breaker == NULL || flcf->targets == NULL) {
        return NGX_OK;
    }

    if (ngx_http_fanout_stats_zone_init(cf, ngx_http_fanout_breaker_zone)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!flcf->breaker->cluster) {
        return NGX_OK;
    }

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);

    if (fmcf->breakers == NULL) {
        fmcf->breakers = ngx_array_create(cf->pool, 4,
                                     sizeof(ngx_http_fanout_breaker_peer_t));
        if (fmcf->breakers == NULL) {
            return NGX_ERROR;
        }

        ngx_http_fanout_redis_script_init(&ngx_http_fanout_breaker_script,
                                          ngx_http_fanout_breaker_lua);
        ngx_http_fanout_redis_script_init(
                                    &ngx_http_fanout_breaker_open_script,
                                    ngx_http_fanout_breaker_open_lua);
    }

    t = flcf->targets->elts;

    for (i = 0; i < flcf->targets->nelts; i++) {
        if (t[i].no_breaker) {
            continue;
        }

        /* breaker_key=: one key, one peer, for all its locations */
        if (t[i].breaker_name.len) {
            len = sizeof("fanout:breaker:key:") - 1 + t[i].breaker_name.len;
            peer = fmcf->breakers->elts;

            for (j = 0; j < fmcf->breakers->nelts; j++) {
                if (peer[j].key.len == len
                    && ngx_strncmp(peer[j].key.data + len
                                   - t[i].breaker_name.len,
                                   t[i].breaker_name.data,
                                   t[i].breaker_name.len) == 0
                    && ngx_strncmp(peer[j].key.data, "fanout:breaker:key:",
                                   sizeof("fanout:breaker:key:") - 1) == 0)
                {
                    break;
                }
            }

            if (j < fmcf->breakers->nelts) {
                t[i].breaker_key = peer[j].key;
                t[i].breaker_peer = j;
                continue;
            }
        }

        peer = ngx_array_push(fmcf->breakers);
        if (peer == NULL) {
            return NGX_ERROR;
        }

        peer->location = flcf->location;
        peer->target = t[i].name;
        peer->loc = flcf->stats;
        peer->tgt = t[i].stats;
        peer->conf = flcf->breaker;
        peer->fmcf = fmcf;

        peer->key.len = t[i].breaker_name.len
                        ? sizeof("fanout:breaker:key:") - 1
                          + t[i].breaker_name.len
                        : sizeof("fanout:breaker::") - 1 + flcf->location.len
                          + t[i].name.len;
        peer->key.data = ngx_pnalloc(cf->pool, peer->key.len);
        if (peer->key.data == NULL) {
            return NGX_ERROR;
        }

        if (t[i].breaker_name.len) {
            ngx_sprintf(peer->key.data, "fanout:breaker:key:%V",
                        &t[i].breaker_name);

        } else {
            ngx_sprintf(peer->key.data, "fanout:breaker:%V:%V",
                        &flcf->location, &t[i].name);
        }

        t[i].breaker_key = peer->key;
        t[i].breaker_peer = fmcf->breakers->nelts - 1;
    }

    return NGX_OK;
}


/*
 * The fleet had the circuit open already when this instance opened it:
 * its retry time and cooldown win. The reply outlives the request: its
 * data is the peer, of the configuration.
 */

static void
ngx_http_fanout_breaker_opened_reply(void *data, redisReply *reply,
    ngx_http_fanout_redis_error_e error)
{
    ngx_http_fanout_stats_t         *st;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_main_conf_t     *fmcf;
    ngx_http_fanout_breaker_peer_t  *peer;
    ngx_http_fanout_stats_target_t  *tgt;

    peer = data;
    fmcf = peer->fmcf;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_INTEGER
        || reply->element[0]->integer <= 0)
    {
        return;
    }

    loc = fmcf->locations.elts;
    tgt = loc[peer->loc].targets.elts;
    st = tgt[peer->tgt].bnode;

    ngx_shmtx_lock(&fmcf->shpool->mutex);

    if (fanout_breaker_adopt(&st->breaker, ngx_current_msec,
                             (uint64_t) reply->element[0]->integer,
                             (uint64_t) reply->element[1]->integer))
    {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "fanout breaker \"%V\": the fleet's retry in %L ms",
                       &peer->key, reply->element[0]->integer);
    }

    ngx_shmtx_unlock(&fmcf->shpool->mutex);
}


/* an opening goes to Redis for the cooldown; a closing as a marker */

static void
ngx_http_fanout_breaker_publish(ngx_log_t *log, ngx_http_fanout_target_t *t,
    fanout_breaker_change_e change, uint64_t cooldown_ms)
{
    size_t                           len[5];
    u_char                           ms[NGX_INT64_LEN];
    const char                      *argv[5];
    ngx_http_fanout_main_conf_t     *fmcf;
    ngx_http_fanout_breaker_peer_t  *peer;

    if (change == FANOUT_BREAKER_CLOSED_AGAIN) {
        /* "0" for a second: closed by a good probe, and when */
        argv[0] = "SET";
        len[0] = 3;
        argv[1] = (const char *) t->breaker_key.data;
        len[1] = t->breaker_key.len;
        argv[2] = "0";
        len[2] = 1;
        argv[3] = "PX";
        len[3] = 2;
        argv[4] = (const char *) ms;
        len[4] = ngx_sprintf(ms, "%d", NGX_HTTP_FANOUT_BREAKER_CLOSED) - ms;

        (void) ngx_http_fanout_redis_command(log, 5, argv, len, NULL, NULL);
        return;
    }

    fmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_fanout_module);
    peer = fmcf->breakers->elts;

    /* EVALSHA sha 1 KEY COOLDOWN: argv[0] and argv[1] are the script's */
    argv[2] = "1";
    len[2] = 1;
    argv[3] = (const char *) t->breaker_key.data;
    len[3] = t->breaker_key.len;
    argv[4] = (const char *) ms;
    len[4] = ngx_sprintf(ms, "%uL", cooldown_ms) - ms;

    (void) ngx_http_fanout_redis_eval(log,
                                      &ngx_http_fanout_breaker_open_script,
                                      5, argv, len,
                                      ngx_http_fanout_breaker_opened_reply,
                                      &peer[t->breaker_peer]);
}


static void
ngx_http_fanout_breaker_sync_reply(void *data, redisReply *reply,
    ngx_http_fanout_redis_error_e error)
{
    uint64_t                         now;
    ngx_uint_t                       i;
    redisReply                     **e;
    fanout_breaker_change_e          change;
    ngx_http_fanout_stats_t         *st;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_main_conf_t     *fmcf;
    ngx_http_fanout_breaker_peer_t  *peer;
    ngx_http_fanout_stats_target_t  *tgt;

    ngx_http_fanout_breaker_sync_op = NULL;

    fmcf = data;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2 * fmcf->breakers->nelts)
    {
        /* Redis trouble (counted and logged): local state as it is */
        return;
    }

    e = reply->element;
    peer = fmcf->breakers->elts;
    loc = fmcf->locations.elts;
    now = ngx_current_msec;

    for (i = 0; i < fmcf->breakers->nelts; i++) {
        if (e[2 * i]->type != REDIS_REPLY_INTEGER
            || e[2 * i + 1]->type != REDIS_REPLY_INTEGER)
        {
            continue;
        }

        tgt = loc[peer[i].loc].targets.elts;
        st = tgt[peer[i].tgt].bnode;

        ngx_shmtx_lock(&fmcf->shpool->mutex);

        if (e[2 * i]->integer > 0 && e[2 * i + 1]->integer == 0) {
            /* a good probe elsewhere, so long ago */
            change = fanout_breaker_closed_elsewhere(&st->breaker, now,
                         (uint64_t) ngx_max(NGX_HTTP_FANOUT_BREAKER_CLOSED
                                            - e[2 * i]->integer, 0));

        } else if (e[2 * i]->integer > 0) {
            change = fanout_breaker_learn(peer[i].conf, &st->breaker, now,
                                          (uint64_t) e[2 * i]->integer,
                                          (uint64_t) ngx_max(
                                              e[2 * i + 1]->integer, 0));

        } else {
            change = fanout_breaker_forget(&st->breaker, now,
                                           2 * NGX_HTTP_FANOUT_BREAKER_SYNC);
        }

        ngx_shmtx_unlock(&fmcf->shpool->mutex);

        if (change != FANOUT_BREAKER_SAME) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "fanout breaker of target \"%V\" in location "
                          "\"%V\": %s (%s on another instance)",
                          &peer[i].target, &peer[i].location,
                          change == FANOUT_BREAKER_OPENED
                          ? "closed -> open" : "open -> closed",
                          change == FANOUT_BREAKER_OPENED
                          ? "opened" : "closed by a good probe");
        }
    }
}


/* the last read is still out: Redis is slow, it has a timer */

static ngx_uint_t
ngx_http_fanout_breaker_sync_busy(ngx_http_fanout_task_t *task)
{
    return ngx_http_fanout_breaker_sync_op != NULL;
}


/* one worker of the instance reads the shared breakers, twice a second */

static void
ngx_http_fanout_breaker_sync(ngx_http_fanout_task_t *task)
{
    size_t                          *len;
    ngx_uint_t                       i, n;
    const char                     **argv;
    ngx_http_fanout_main_conf_t     *fmcf;
    ngx_http_fanout_breaker_peer_t  *peer;
    u_char                           nkeys[NGX_INT_T_LEN];

    fmcf = task->data;

    n = fmcf->breakers->nelts;
    peer = fmcf->breakers->elts;

    argv = ngx_alloc((3 + n) * (sizeof(char *) + sizeof(size_t)), task->ev.log);
    if (argv == NULL) {
        return;
    }

    len = (size_t *) (argv + 3 + n);

    argv[2] = (const char *) nkeys;
    len[2] = ngx_sprintf(nkeys, "%ui", n) - nkeys;

    for (i = 0; i < n; i++) {
        argv[3 + i] = (const char *) peer[i].key.data;
        len[3 + i] = peer[i].key.len;
    }

    ngx_http_fanout_breaker_sync_op = ngx_http_fanout_redis_eval(task->ev.log,
                                          &ngx_http_fanout_breaker_script,
                                          3 + n, argv, len,
                                          ngx_http_fanout_breaker_sync_reply,
                                          fmcf);
    ngx_free(argv);
}


ngx_int_t
ngx_http_fanout_breaker_init_process(ngx_cycle_t *cycle)
{
    ngx_http_fanout_main_conf_t  *fmcf;

    fmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_fanout_module);

    if (fmcf == NULL || fmcf->breakers == NULL || fmcf->redis == NULL
        || fmcf->sh == NULL)
    {
        return NGX_OK;
    }

    ngx_http_fanout_breaker_task.period = NGX_HTTP_FANOUT_BREAKER_SYNC;
    ngx_http_fanout_breaker_task.last = &fmcf->sh->breakers_synced;
    ngx_http_fanout_breaker_task.shpool = fmcf->shpool;
    ngx_http_fanout_breaker_task.run = ngx_http_fanout_breaker_sync;
    ngx_http_fanout_breaker_task.busy = ngx_http_fanout_breaker_sync_busy;
    ngx_http_fanout_breaker_task.data = fmcf;

    /* staggered, so that workers do not all ask at once */
    ngx_http_fanout_task_start(&ngx_http_fanout_breaker_task, cycle->log,
                               ngx_random() % NGX_HTTP_FANOUT_BREAKER_SYNC
                               + 1);

    return NGX_OK;
}


/*
 * A verdict for one call to the breaker's node, under the zone's lock held
 * by the caller (one lock for all of a request's calls: this is on every
 * request's path).
 */

ngx_uint_t
ngx_http_fanout_breaker_allow(fanout_breaker_conf_t *conf,
    ngx_http_fanout_stats_t *node)
{
    /* fanout_api forced it: open refuses, closed lets all through */
    switch (node->rt.forced) {

    case 0:
        return fanout_breaker_allow(conf, &node->breaker, ngx_current_msec);

    case 1:
        return FANOUT_BREAKER_REJECT;

    default:
        return FANOUT_BREAKER_PASS;
    }
}


/*
 * The outcome of a call the node allowed, under the zone's lock held by the
 * caller: what changed, with the state before in *old.  No outcome (no
 * call was made, or its end is not the model's doing) gives the turn back.
 */

fanout_breaker_change_e
ngx_http_fanout_breaker_record(fanout_breaker_conf_t *conf,
    ngx_http_fanout_stats_t *node, ngx_uint_t verdict,
    ngx_http_fanout_breaker_outcome_e outcome, uint32_t *old)
{
    *old = node->breaker.state;

    if (outcome == NGX_HTTP_FANOUT_BREAKER_NONE) {
        fanout_breaker_release(&node->breaker,
                               (fanout_breaker_verdict_e) verdict);
        return FANOUT_BREAKER_SAME;
    }

    return fanout_breaker_record(conf, &node->breaker, ngx_current_msec,
                                 (fanout_breaker_verdict_e) verdict,
                                 outcome == NGX_HTTP_FANOUT_BREAKER_FAILURE);
}


/* after the lock: a transition logged, and told the fleet (scope=cluster) */

void
ngx_http_fanout_breaker_changed(ngx_log_t *log,
    ngx_http_fanout_loc_conf_t *flcf, ngx_http_fanout_target_t *t,
    ngx_http_fanout_stats_t *node, uint32_t old,
    fanout_breaker_change_e change)
{
    if (change == FANOUT_BREAKER_SAME) {
        return;
    }

    if (flcf->breaker->cluster) {
        ngx_http_fanout_breaker_publish(log, t, change,
                                        node->breaker.cooldown_ms);
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "fanout breaker of target \"%V\" in location \"%V\": "
                  "%s -> %s (%s)%s",
                  &t->name, &flcf->location,
                  fanout_breaker_state_name(old),
                  fanout_breaker_state_name(node->breaker.state),
                  change == FANOUT_BREAKER_OPENED
                  ? "failures reached the limit"
                  : (change == FANOUT_BREAKER_REOPENED ? "a probe failed"
                                                       : "a probe succeeded"),
                  change == FANOUT_BREAKER_CLOSED_AGAIN ? "" : ", calls stop "
                  "until the cooldown ends");
}
