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
#include "ngx_http_fanout_call.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_task.h"


#define NGX_HTTP_FANOUT_BREAKER_SYNC    500    /* ms between reads */
#define NGX_HTTP_FANOUT_BREAKER_CLOSED  1000   /* ms a close is told */


static void ngx_http_fanout_breaker_publish(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, fanout_breaker_change_e change,
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


char *
ngx_http_fanout_breaker(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_int_t                     n;
    ngx_str_t                    *value, s;
    ngx_msec_t                    ms;
    ngx_uint_t                    i;
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

    value = cf->args->elts;
    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "failures=", 9) == 0) {
            n = ngx_atoi(value[i].data + 9, value[i].len - 9);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            bc->failures = (uint32_t) n;    /* 0: consecutive failures off */
            continue;
        }

        if (ngx_strncmp(value[i].data, "error_rate=", 11) == 0) {
            if (value[i].data[value[i].len - 1] != '%') {
                goto invalid;
            }

            n = ngx_atoi(value[i].data + 11, value[i].len - 12);
            if (n <= 0 || n > 100) {
                goto invalid;
            }

            bc->error_rate = (uint32_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "min_requests=", 13) == 0) {
            n = ngx_atoi(value[i].data + 13, value[i].len - 13);
            if (n <= 0) {
                goto invalid;
            }

            bc->min_requests = (uint32_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "half_open=", 10) == 0) {
            n = ngx_atoi(value[i].data + 10, value[i].len - 10);
            if (n <= 0) {
                goto invalid;
            }

            bc->half_open = (uint32_t) n;
            continue;
        }

        if (ngx_strcmp(value[i].data, "scope=local") == 0) {
            bc->cluster = 0;
            continue;
        }

        if (ngx_strcmp(value[i].data, "scope=cluster") == 0) {
            bc->cluster = 1;

            if (fmcf->cluster_file == NULL) {
                fmcf->cluster_file = cf->conf_file->file.name.data;
                fmcf->cluster_line = cf->conf_file->line;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "window=", 7) == 0
            || ngx_strncmp(value[i].data, "cooldown=", 9) == 0
            || ngx_strncmp(value[i].data, "max_cooldown=", 13) == 0)
        {
            s.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
            s.len = value[i].data + value[i].len - s.data;

            ms = ngx_parse_time(&s, 0);
            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                goto invalid;
            }

            if (value[i].data[0] == 'w') {
                bc->window_ms = ms;

            } else if (value[i].data[0] == 'c') {
                bc->cooldown_ms = ms;

            } else {
                bc->max_cooldown_ms = ms;
            }

            continue;
        }

        goto invalid;
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

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
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

    if (flcf->breaker == NULL || !flcf->breaker->cluster
        || flcf->targets == NULL)
    {
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
ngx_http_fanout_breaker_publish(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, fanout_breaker_change_e change,
    uint64_t cooldown_ms)
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
        argv[1] = (const char *) sub->target->breaker_key.data;
        len[1] = sub->target->breaker_key.len;
        argv[2] = "0";
        len[2] = 1;
        argv[3] = "PX";
        len[3] = 2;
        argv[4] = (const char *) ms;
        len[4] = ngx_sprintf(ms, "%d", NGX_HTTP_FANOUT_BREAKER_CLOSED) - ms;

        (void) ngx_http_fanout_redis_command(ctx->request->connection->log,
                                             5, argv, len, NULL, NULL);
        return;
    }

    fmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_fanout_module);
    peer = fmcf->breakers->elts;

    /* EVALSHA sha 1 KEY COOLDOWN: argv[0] and argv[1] are the script's */
    argv[2] = "1";
    len[2] = 1;
    argv[3] = (const char *) sub->target->breaker_key.data;
    len[3] = sub->target->breaker_key.len;
    argv[4] = (const char *) ms;
    len[4] = ngx_sprintf(ms, "%uL", cooldown_ms) - ms;

    (void) ngx_http_fanout_redis_eval(ctx->request->connection->log,
                                      &ngx_http_fanout_breaker_open_script,
                                      5, argv, len,
                                      ngx_http_fanout_breaker_opened_reply,
                                      &peer[sub->target->breaker_peer]);
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


static ngx_uint_t
ngx_http_fanout_breaker_on(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    return ctx->conf->breaker && !sub->target->no_breaker;
}


/* before the calls: an open circuit means no call at all */

void
ngx_http_fanout_breaker_allow(ngx_http_fanout_ctx_t *ctx, ngx_uint_t from,
    ngx_uint_t to)
{
    ngx_uint_t                    i;
    ngx_http_fanout_call_t        *sub;
    ngx_http_fanout_stats_t      *st;
    ngx_http_fanout_main_conf_t  *fmcf;

    if (ctx->conf->breaker == NULL) {
        return;
    }

    fmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_fanout_module);

    /* one lock for all the targets: this is on every request's path */
    ngx_shmtx_lock(&fmcf->shpool->mutex);

    for (i = from; i < to; i++) {
        sub = &ctx->subs[i];

        if (sub->done || !ngx_http_fanout_breaker_on(ctx, sub)) {
            continue;
        }

        st = sub->bst;

        /* fanout_api forced it: open refuses, closed lets all through */
        sub->verdict = st->rt.forced == 0
                       ? fanout_breaker_allow(ctx->conf->breaker,
                                              &st->breaker, ngx_current_msec)
                       : st->rt.forced == 1 ? FANOUT_BREAKER_REJECT
                                            : FANOUT_BREAKER_PASS;

        if (sub->verdict == FANOUT_BREAKER_REJECT) {
            sub->done = 1;
            sub->part.kind = FANOUT_CIRCUIT_OPEN;
            sub->part.status = NGX_HTTP_SERVICE_UNAVAILABLE;
        }
    }

    ngx_shmtx_unlock(&fmcf->shpool->mutex);
}


/*
 * The outcome of one call, under the zone's lock held by the caller:
 * what changed, with the state before in *old.
 */

static fanout_breaker_change_e
ngx_http_fanout_breaker_locked(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_http_fanout_stats_t *st, uint32_t *old)
{
    int  failure;

    sub->recorded = 1;

    /* the model's fault only: not 4xx, not a call cut off or abandoned */
    failure = fanout_kind_failure(sub->part.kind);

    *old = st->breaker.state;

    /* no call was made, or its outcome is not the model's: a turn back */
    if (sub->cancelled || !sub->done
        || sub->part.kind == FANOUT_OVERLOADED)
    {
        fanout_breaker_release(&st->breaker,
                               (fanout_breaker_verdict_e) sub->verdict);
        return FANOUT_BREAKER_SAME;
    }

    return fanout_breaker_record(ctx->conf->breaker, &st->breaker,
                                 ngx_current_msec,
                                 (fanout_breaker_verdict_e) sub->verdict,
                                 failure);
}


static ngx_uint_t
ngx_http_fanout_breaker_wanted(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    /* a call made (an attempt started) or ended (a timeout): not one the
     * cache answered for the request, nor one a client left before */
    return ngx_http_fanout_breaker_on(ctx, sub) && !sub->part.cached
           && !sub->recorded && sub->verdict != FANOUT_BREAKER_REJECT
           && (sub->attempt != NULL || sub->done);
}


/* a transition: the log, and Redis for scope=cluster */

static void
ngx_http_fanout_breaker_changed(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_http_fanout_stats_t *st, uint32_t old,
    fanout_breaker_change_e change)
{
    if (change == FANOUT_BREAKER_SAME) {
        return;
    }

    if (ctx->conf->breaker->cluster) {
        ngx_http_fanout_breaker_publish(ctx, sub, change,
                                        st->breaker.cooldown_ms);
    }

    ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                  "fanout breaker of target \"%V\" in location \"%V\": "
                  "%s -> %s (%s)%s",
                  &sub->target->name, &ctx->conf->location,
                  fanout_breaker_state_name(old),
                  fanout_breaker_state_name(st->breaker.state),
                  change == FANOUT_BREAKER_OPENED
                  ? "failures reached the limit"
                  : (change == FANOUT_BREAKER_REOPENED ? "a probe failed"
                                                       : "a probe succeeded"),
                  change == FANOUT_BREAKER_CLOSED_AGAIN ? "" : ", calls stop "
                  "until the cooldown ends");
}


/* the outcome of one call (a target replaced by its fallback, an abort) */

void
ngx_http_fanout_breaker_record(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    uint32_t                      old;
    ngx_http_fanout_stats_t      *st;
    fanout_breaker_change_e       change;
    ngx_http_fanout_main_conf_t  *fmcf;

    if (!ngx_http_fanout_breaker_wanted(ctx, sub)) {
        return;
    }

    fmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_fanout_module);
    st = sub->bst;

    ngx_shmtx_lock(&fmcf->shpool->mutex);
    change = ngx_http_fanout_breaker_locked(ctx, sub, st, &old);
    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    ngx_http_fanout_breaker_changed(ctx, sub, st, old, change);
}


/*
 * fanout_retry: the failed attempt of a call that would be tried again is
 * recorded now, each attempt counting, and the next one asks the breaker
 * again: NGX_DECLINED when it opened meanwhile (no retry: the failure
 * stands, and goes to fallback= if there is one).
 */

ngx_int_t
ngx_http_fanout_breaker_retry(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    uint32_t                      old;
    ngx_http_fanout_stats_t      *st;
    fanout_breaker_change_e       change;
    ngx_http_fanout_main_conf_t  *fmcf;

    if (!ngx_http_fanout_breaker_on(ctx, sub) || sub->part.cached) {
        return NGX_OK;
    }

    fmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_fanout_module);
    st = sub->bst;

    ngx_shmtx_lock(&fmcf->shpool->mutex);

    change = FANOUT_BREAKER_SAME;
    old = st->breaker.state;

    if (!sub->recorded && sub->verdict != FANOUT_BREAKER_REJECT) {
        change = ngx_http_fanout_breaker_locked(ctx, sub, st, &old);
    }

    sub->verdict = fanout_breaker_allow(ctx->conf->breaker, &st->breaker,
                                        ngx_current_msec);

    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    ngx_http_fanout_breaker_changed(ctx, sub, st, old, change);

    if (sub->verdict == FANOUT_BREAKER_REJECT) {
        /* nothing more to record for this call */
        sub->recorded = 1;
        return NGX_DECLINED;
    }

    sub->recorded = 0;

    return NGX_OK;
}


/*
 * once the answer is decided: every call's outcome under one lock; what each
 * changed is kept in the call itself, as a request may make up to
 * FANOUT_BATCH_MAX_CALLS of them (items x targets)
 */

void
ngx_http_fanout_breaker_record_all(ngx_http_fanout_ctx_t *ctx)
{
    ngx_uint_t                    i;
    ngx_http_fanout_call_t       *sub;
    ngx_http_fanout_main_conf_t  *fmcf;

    fmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_fanout_module);

    ngx_shmtx_lock(&fmcf->shpool->mutex);

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];
        sub->breaker_change = FANOUT_BREAKER_SAME;

        if (!ngx_http_fanout_breaker_wanted(ctx, sub)) {
            continue;
        }

        sub->breaker_change = ngx_http_fanout_breaker_locked(ctx, sub,
                                                             sub->bst,
                                                             &sub->breaker_old);
    }

    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (sub->breaker_change != FANOUT_BREAKER_SAME) {
            ngx_http_fanout_breaker_changed(ctx, sub, sub->bst,
                                            sub->breaker_old,
                                            sub->breaker_change);
        }
    }
}
