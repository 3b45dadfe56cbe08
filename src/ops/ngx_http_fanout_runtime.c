
/*
 * Runtime traffic control: what fanout_api changes in a running fleet (a
 * split's weights, a shadow's percent, a breaker forced, a target taken
 * out) and the guarded ramps of "fanout_split ... ramp=".
 *
 * The state lives in the zone's nodes (ngx_http_fanout_runtime_t): every
 * worker sees a change at once and a reload keeps it.  With fanout_redis it
 * also lives in one Redis hash, "fanout:runtime", whose field "v" is the
 * fleet's version: a change is made here, then written there with the
 * version moved on; one worker per instance asks for the version every
 * 250 ms and reads the whole hash when it moved.  An instance that missed
 * changes, or has just started, so catches up by version: no message can be
 * lost, as none is sent (pub/sub would need a connection of its own, and a
 * catch-up by version all the same).
 *
 * A ramp's state is one field of that hash, named by the ramp's
 * fingerprint (the split and the ramp as configured), so that instances of
 * one configuration share it and a new configuration starts its own ramp.
 * Each instance adds what its candidate answered to the step's counters
 * ("fanout:ramp:FP:AT") and judges the step by the fleet's sums; a step up
 * or a rollback is written only if the state is still the one it judged.
 *
 * Which wins after a reload: a runtime change is bound to the split it was
 * made for (its fingerprint: location, variants, shares).  A reload that
 * keeps the split keeps the change; one that changes the split itself
 * drops it, and the configuration is what runs.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_runtime.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_task.h"


#define NGX_HTTP_FANOUT_RT_SYNC   250
#define NGX_HTTP_FANOUT_RT_SEP    '\x1f'
#define NGX_HTTP_FANOUT_RT_KEY    "fanout:runtime"
#define NGX_HTTP_FANOUT_RT_TAG    NGX_HTTP_FANOUT_RESTORED_LEN  /* "V:N" */


/* write one field, move the version on: the new version */
static const char  ngx_http_fanout_rt_write_lua[] =
    "local v = redis.call('HINCRBY', KEYS[1], 'v', 1) "
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) "
    "return v";

/*
 * The version when it and the last restore's are the ones known (ARGV[1],
 * ARGV[2]), else the whole hash: a restore from an older version than an
 * instance held may give the hash a version that instance has, with
 * other settings.
 */
static const char  ngx_http_fanout_rt_poll_lua[] =
    "local v = redis.call('HGET', KEYS[1], 'v') "
    "if not v then return 0 end "
    "if v == ARGV[1] "
    "   and (redis.call('HGET', KEYS[1], 'restored') or '') == ARGV[2] then "
    "  return tonumber(v) "
    "end "
    "return redis.call('HGETALL', KEYS[1])";

/*
 * A ramp's tick: begun if new; the instance's counts added to the step's
 * when the step is the one it counted for; the state and the step's sums.
 * Every move of a ramp (a step, a rollback, a restart) stamps the time it
 * was made (the state's third word): when Redis lost the state (a restart
 * without persistence, FLUSHALL, an eviction) or holds an older one than
 * this instance, the instance's is written back, so that a ramp never
 * goes back to its first step, nor a rollback undone, because Redis forgot.
 */
static const char  ngx_http_fanout_rt_ramp_lua[] =
    "local cur = redis.call('HGET', KEYS[1], ARGV[1]) "
    "local function at(s) "
    "  return tonumber(string.match(s or '', '^%S+ %d+ (%d+)') or '0') or 0 "
    "end "
    "if ARGV[3] ~= '' and (not cur or at(ARGV[3]) > at(cur)) then "
    "  cur = ARGV[3] "
    "  redis.call('HSET', KEYS[1], ARGV[1], cur) "
    "  redis.call('HINCRBY', KEYS[1], 'v', 1) "
    "end "
    "if not cur then "
    "  cur = 'ramping 0 ' .. ARGV[2] .. ' 0' "
    "  redis.call('HSET', KEYS[1], ARGV[1], cur) "
    "  redis.call('HINCRBY', KEYS[1], 'v', 1) "
    "  return {cur, 0, 0, 0, 0, 0} "
    "end "
    "if cur ~= ARGV[3] then return {cur, 0, 0, 0, 0, 0} end "
    "local k = KEYS[2] .. string.match(cur, '^%S+ %S+ (%d+)') "
    "local n = redis.call('HINCRBY', k, 'n', ARGV[4]) "
    "local e = redis.call('HINCRBY', k, 'e', ARGV[5]) "
    "local s = redis.call('HINCRBY', k, 's', ARGV[6]) "
    "local f = redis.call('HINCRBY', k, 'f', ARGV[7]) "
    "redis.call('PEXPIRE', k, 86400000) "
    "return {cur, n, e, s, 1, f}";

/* a step up or a rollback, if the state is still the one judged */
static const char  ngx_http_fanout_rt_cas_lua[] =
    "if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end "
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) "
    "return redis.call('HINCRBY', KEYS[1], 'v', 1)";


/*
 * Redis lost the fleet's hash (a restart without persistence, FLUSHALL, an
 * eviction, a failover to a replica behind): an instance that knew version
 * ARGV[1] writes back the settings it holds, ARGV[3..] as field, value.
 * The highest version wins: nothing is written when a restore from a
 * higher version was made, nor when Redis has a version as high without
 * a restore (changes made since the loss).  A restore by an instance that
 * knew the same version adds what it lacks; one from an older version
 * (an instance that lagged) is overwritten by this one's.  "restored"
 * says which restore was last made: ARGV[2], its version and a nonce, so
 * that no two restores look alike to the instances that poll; the
 * version moves past both, so that every instance reads the result.
 */
static const char  ngx_http_fanout_rt_restore_lua[] =
    "local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0') or 0 "
    "local r = redis.call('HGET', KEYS[1], 'restored') or '' "
    "local from = tonumber(string.match(r, '^%d+') or '-1') or -1 "
    "local mine = tonumber(ARGV[1]) "
    "if from > mine or (from < 0 and v >= mine) then return 0 end "
    "local cmd = (from >= 0 and from < mine) and 'HSET' or 'HSETNX' "
    "for i = 3, #ARGV - 1, 2 do "
    "  redis.call(cmd, KEYS[1], ARGV[i], ARGV[i + 1]) "
    "end "
    "redis.call('HSET', KEYS[1], 'restored', ARGV[2]) "
    "local nv = math.max(v, mine) + 1 "
    "redis.call('HSET', KEYS[1], 'v', nv) "
    "return nv";


typedef struct {
    ngx_http_fanout_main_conf_t    *fmcf;
    ngx_http_fanout_stats_loc_t    *loc;
    fanout_ramp_counts_t            now;      /* the counters when asked */
    fanout_ramp_counts_t            delta;    /* what was sent */
    u_char                          field[NGX_HTTP_FANOUT_RT_FIELD];
    size_t                          field_len;
    u_char                          value[96];  /* the state judged */
    size_t                          value_len;
} ngx_http_fanout_rt_ramp_t;


typedef struct {
    ngx_http_fanout_rt_done_pt      handler;
    void                           *data;
    ngx_http_fanout_main_conf_t    *fmcf;
} ngx_http_fanout_rt_write_t;


static ngx_str_t  ngx_http_fanout_rt_none = ngx_string("-");

static void ngx_http_fanout_rt_ramp_split(ngx_http_fanout_main_conf_t *fmcf,
    ngx_http_fanout_stats_loc_t *loc);

static ngx_http_fanout_redis_script_t  ngx_http_fanout_rt_write_script;
static ngx_http_fanout_redis_script_t  ngx_http_fanout_rt_poll_script;
static ngx_http_fanout_redis_script_t  ngx_http_fanout_rt_ramp_script;
static ngx_http_fanout_redis_script_t  ngx_http_fanout_rt_cas_script;
static ngx_http_fanout_redis_script_t  ngx_http_fanout_rt_restore_script;
static ngx_http_fanout_task_t          ngx_http_fanout_rt_task;
static ngx_uint_t                      ngx_http_fanout_rt_busy;

/* the zone's generation this worker's configuration was loaded in */
static ngx_uint_t                      ngx_http_fanout_rt_generation;


static const char *ngx_http_fanout_rt_ramp_names[] = {
    "waiting", "ramping", "done", "rolled_back"
};


/* EVALSHA with nkeys keys first in a[]: argv's first three are Redis's */

static ngx_http_fanout_redis_op_t *
ngx_http_fanout_rt_eval(ngx_log_t *log, ngx_http_fanout_redis_script_t *script,
    ngx_uint_t nkeys, ngx_uint_t n, const char **a, size_t *l,
    ngx_http_fanout_redis_handler_pt handler, void *data)
{
    size_t       len[3 + 9];
    ngx_uint_t   i;
    const char  *argv[3 + 9];

    argv[2] = nkeys == 1 ? "1" : "2";
    len[2] = 1;

    for (i = 0; i < n && i < 9; i++) {
        argv[3 + i] = a[i];
        len[3 + i] = l[i];
    }

    return ngx_http_fanout_redis_eval(log, script, (int) (3 + i), argv, len,
                                      handler, data);
}


uint64_t
ngx_http_fanout_rt_wall(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}


/*
 * The ramp in force for a location: fanout_api's while it is set for this
 * very split (copied into this process under the zone's lock), else the
 * configuration's.  Called before a ramp is looked at.
 */

void
ngx_http_fanout_rt_ramp_sync(ngx_http_fanout_main_conf_t *fmcf,
    ngx_http_fanout_stats_loc_t *loc)
{
    ngx_http_fanout_runtime_t  *rt;

    if (loc->node == NULL || loc->split == NULL) {
        return;
    }

    rt = &loc->node->rt;

    if (rt->api_ramp_on && rt->api_base == loc->split_fp) {
        ngx_shmtx_lock(&fmcf->shpool->mutex);
        loc->api_ramp = rt->api_ramp;
        loc->candidate = rt->api_candidate;
        loc->ramp_fp = rt->api_ramp_fp;
        ngx_shmtx_unlock(&fmcf->shpool->mutex);

        loc->ramp = &loc->api_ramp;
        return;
    }

    loc->ramp = loc->conf_ramp;
    loc->candidate = loc->conf_candidate;
    loc->ramp_fp = loc->conf_ramp_fp;
}


ngx_http_fanout_stats_loc_t *
ngx_http_fanout_rt_location(ngx_http_fanout_main_conf_t *fmcf, ngx_str_t *name)
{
    ngx_uint_t                    i;
    ngx_http_fanout_stats_loc_t  *loc;

    loc = fmcf->locations.elts;

    for (i = 0; i < fmcf->locations.nelts; i++) {
        if (loc[i].name.len == name->len
            && ngx_strncmp(loc[i].name.data, name->data, name->len) == 0)
        {
            ngx_http_fanout_rt_ramp_sync(fmcf, &loc[i]);
            return &loc[i];
        }
    }

    return NULL;
}


/* a name in a location's targets, or its variants or shadows (whose
 * names in the zone begin with their kind's byte: skip 1) */

ngx_int_t
ngx_http_fanout_rt_index(ngx_array_t *a, u_char *name, size_t len,
    ngx_uint_t skip)
{
    ngx_uint_t                       i;
    ngx_http_fanout_stats_target_t  *t;

    t = a->elts;

    for (i = 0; i < a->nelts; i++) {
        if (t[i].name.len == len + skip
            && ngx_strncmp(t[i].name.data + skip, name, len) == 0)
        {
            return (ngx_int_t) i;
        }
    }

    return -1;
}


/* a location's split in use, written as a seqlock under the zone's lock */

void
ngx_http_fanout_rt_split_write(ngx_http_fanout_main_conf_t *fmcf,
    ngx_http_fanout_stats_loc_t *loc, fanout_split_t *split, ngx_uint_t weights)
{
    ngx_http_fanout_runtime_t  *rt;

    rt = &loc->node->rt;

    ngx_shmtx_lock(&fmcf->shpool->mutex);

    rt->seq++;
    ngx_memory_barrier();

    if (split) {
        rt->split = *split;
        rt->base = loc->split_fp;
    }

    rt->active = (split != NULL);
    rt->weights = weights;

    ngx_memory_barrier();
    rt->seq++;

    ngx_shmtx_unlock(&fmcf->shpool->mutex);
}


/* the split a ramp's state means: the candidate at its step's share */

static void
ngx_http_fanout_rt_ramp_split(ngx_http_fanout_main_conf_t *fmcf,
    ngx_http_fanout_stats_loc_t *loc)
{
    uint32_t                    share;
    fanout_split_t              split;
    ngx_http_fanout_runtime_t  *rt;

    rt = &loc->node->rt;

    switch (rt->ramp_state) {
    case NGX_HTTP_FANOUT_RAMP_RAMPING:
        share = loc->ramp->step[ngx_min(rt->ramp_step,
                                        loc->ramp->nsteps - 1)];
        break;
    case NGX_HTTP_FANOUT_RAMP_DONE:
        share = FANOUT_SPLIT_WHOLE;
        break;
    case NGX_HTTP_FANOUT_RAMP_ROLLED_BACK:
        share = 0;
        break;
    default:
        return;
    }

    if (fanout_split_ramp(loc->split, loc->candidate, share, &split) == 0) {
        ngx_http_fanout_rt_split_write(fmcf, loc, &split, 0);
    }
}


/*
 * fanout_api's ramp: set for the location's split as it is (bound to its
 * fingerprint, as weights are), or off.  The split in use follows: the
 * ramp's state when it has one, else the configuration's split until its
 * first tick.
 */

void
ngx_http_fanout_rt_ramp_install(ngx_http_fanout_main_conf_t *fmcf,
    ngx_http_fanout_stats_loc_t *loc, fanout_ramp_t *ramp,
    ngx_uint_t candidate)
{
    uint32_t                    fp;
    ngx_http_fanout_runtime_t  *rt;

    rt = &loc->node->rt;
    fp = 0;

    if (ramp) {
        /* unlike the configuration's, so that it has a state of its own */
        fp = (loc->split_fp * 31 + fanout_murmur2((u_char *) ramp,
                                                  sizeof(fanout_ramp_t))
              + (uint32_t) candidate) ^ 0x5a5a5a5a;
    }

    ngx_shmtx_lock(&fmcf->shpool->mutex);

    if (ramp) {
        rt->api_ramp = *ramp;
        rt->api_candidate = candidate;
        rt->api_ramp_fp = fp;
        rt->api_base = loc->split_fp;
    }

    rt->api_ramp_on = (ramp != NULL);

    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    ngx_http_fanout_rt_ramp_sync(fmcf, loc);

    if (loc->ramp && rt->ramp_fp == loc->ramp_fp
        && rt->ramp_state != NGX_HTTP_FANOUT_RAMP_NONE)
    {
        ngx_http_fanout_rt_ramp_split(fmcf, loc);

    } else {
        ngx_http_fanout_rt_split_write(fmcf, loc, NULL, 0);
    }
}


/* "CANDIDATE EVERY-MS MIN-REQUESTS STEPS ROLLBACK|-": the fleet's form */

size_t
ngx_http_fanout_rt_ramp_conf_value(u_char *buf, fanout_ramp_t *ramp,
    ngx_uint_t candidate, ngx_str_t *steps, ngx_str_t *rollback)
{
    return ngx_sprintf(buf, "%ui %uL %uL %V %V", candidate, ramp->every,
                       ramp->min_requests, steps,
                       rollback->len ? rollback : &ngx_http_fanout_rt_none)
           - buf;
}


/* a ramp from its parts; NULL, or what is wrong with them */

const char *
ngx_http_fanout_rt_ramp_conf(ngx_str_t *steps, uint64_t every, uint64_t min,
    ngx_str_t *rollback, fanout_ramp_t *ramp)
{
    ngx_memzero(ramp, sizeof(fanout_ramp_t));

    if (fanout_ramp_parse_steps(ramp, (char *) steps->data, steps->len) != 0)
    {
        return "\\\"steps\\\" are rising shares that end at 100%, as "
               "\\\"5%,25%,100%\\\"";
    }

    if (every == 0) {
        return "\\\"every\\\" is a time, as \\\"10m\\\"";
    }

    ramp->every = every;
    ramp->min_requests = min ? min : FANOUT_RAMP_MIN_REQUESTS;

    if (rollback->len
        && (rollback->len == 1 && rollback->data[0] == '-' ? 0
            : fanout_ramp_parse_rollback(ramp, (char *) rollback->data,
                                         rollback->len,
                                         ngx_http_fanout_buckets,
                                         NGX_HTTP_FANOUT_NBUCKETS - 1))
           != 0)
    {
        return "\\\"rollback_if\\\" is error_rate>P%, p99>Nms and "
               "ttft_p99>Nms (N one of the latency histogram's bounds), "
               "joined by \\\",\\\"";
    }

    return NULL;
}


/* "split\x1fLOC", "shadow\x1fNAME\x1fLOC", ...: names have no \x1f */

size_t
ngx_http_fanout_rt_field(u_char *buf, const char *kind, ngx_str_t *name,
    ngx_str_t *location)
{
    u_char  *p;

    p = ngx_cpymem(buf, kind, ngx_strlen(kind));
    *p++ = NGX_HTTP_FANOUT_RT_SEP;

    if (name) {
        p = ngx_cpymem(p, name->data, name->len);
        *p++ = NGX_HTTP_FANOUT_RT_SEP;
    }

    p = ngx_cpymem(p, location->data, location->len);

    return p - buf;
}


/* ramp state: "STATE STEP AT WHY" */

size_t
ngx_http_fanout_rt_ramp_value(u_char *buf, ngx_uint_t state, ngx_uint_t step,
    uint64_t at, ngx_uint_t why)
{
    return ngx_sprintf(buf, "%s %ui %uL %ui",
                       ngx_http_fanout_rt_ramp_names[state], step, at, why)
           - buf;
}


/* the words of a value of the fleet's hash: how many (max at most) */

static ngx_uint_t
ngx_http_fanout_rt_words(u_char *p, size_t len, u_char **w, size_t *wlen,
    ngx_uint_t max)
{
    u_char      *end;
    ngx_uint_t   k;

    end = p + len;

    for (k = 0; k < max && p < end; k++) {
        w[k] = p;

        while (p < end && *p != ' ') {
            p++;
        }

        wlen[k] = p - w[k];

        if (wlen[k] == 0) {
            /* two spaces: not ours */
            return 0;
        }

        p++;
    }

    return k;
}


static ngx_int_t
ngx_http_fanout_rt_ramp_parse(u_char *p, size_t len, ngx_uint_t *state,
    ngx_uint_t *step, uint64_t *at, ngx_uint_t *why)
{
    u_char      *f[4];
    size_t       flen[4];
    ngx_int_t    n;
    ngx_uint_t   i;

    if (ngx_http_fanout_rt_words(p, len, f, flen, 4) != 4) {
        return NGX_ERROR;
    }

    for (i = 1; i < 4; i++) {
        if (ngx_strlen(ngx_http_fanout_rt_ramp_names[i]) == flen[0]
            && ngx_strncmp(ngx_http_fanout_rt_ramp_names[i], f[0], flen[0])
               == 0)
        {
            break;
        }
    }

    if (i == 4) {
        return NGX_ERROR;
    }

    *state = i;

    n = ngx_atoi(f[1], flen[1]);
    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    *step = (ngx_uint_t) n;

    n = ngx_atoi(f[2], flen[2]);
    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    *at = (uint64_t) n;

    n = ngx_atoi(f[3], flen[3]);
    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    *why = (ngx_uint_t) n;

    return NGX_OK;
}


/* a ramp's state taken (from the fleet or decided here): logged if new */

void
ngx_http_fanout_rt_ramp_take(ngx_http_fanout_main_conf_t *fmcf,
    ngx_http_fanout_stats_loc_t *loc, ngx_uint_t state, ngx_uint_t step,
    uint64_t at, ngx_uint_t why, const char *from)
{
    ngx_http_fanout_runtime_t  *rt;

    rt = &loc->node->rt;

    if (step >= loc->ramp->nsteps) {
        step = loc->ramp->nsteps - 1;
    }

    if (rt->ramp_fp == loc->ramp_fp && rt->ramp_state == state
        && rt->ramp_step == step && rt->ramp_at == at)
    {
        return;
    }

    if (state == NGX_HTTP_FANOUT_RAMP_ROLLED_BACK) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "fanout ramp of location \"%V\": rolled back to 0%% "
                      "at step %ui (%s)%s", &loc->name, step + 1,
                      why == FANOUT_RAMP_ROLLBACK_ERRORS ? "error rate over "
                      "its bound" : why == FANOUT_RAMP_ROLLBACK_P99
                      ? "p99 over its bound" : why == FANOUT_RAMP_ROLLBACK_TTFT
                      ? "p99 time to first bytes over its bound"
                      : "by fanout_api", from);

    } else {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "fanout ramp of location \"%V\": %s, step %ui of %uz "
                      "(%ui.%02ui%%)%s", &loc->name,
                      ngx_http_fanout_rt_ramp_names[state], step + 1,
                      loc->ramp->nsteps, loc->ramp->step[step] / 100,
                      loc->ramp->step[step] % 100, from);
    }

    rt->ramp_fp = loc->ramp_fp;
    rt->ramp_state = state;
    rt->ramp_step = step;
    rt->ramp_at = at;
    rt->ramp_why = why;
    ngx_memzero(&rt->ramp_counts, sizeof(fanout_ramp_counts_t));

    ngx_http_fanout_rt_ramp_split(fmcf, loc);
}


/* what a histogram on the latency bounds holds above the bound ms (one of
 * them: a time goes in the first bucket whose bound it does not pass) */

static uint64_t
ngx_http_fanout_rt_over(ngx_atomic_t *buckets, ngx_msec_t ms)
{
    uint64_t    over;
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_FANOUT_NBUCKETS - 1; i++) {
        if (ngx_http_fanout_buckets[i] == ms) {
            break;
        }
    }

    over = 0;

    for (i++; i < NGX_HTTP_FANOUT_NBUCKETS; i++) {
        over += buckets[i];
    }

    return over;
}


/* the candidate's counters: requests ended, 5xx, slower than the bounds */

void
ngx_http_fanout_rt_counts(ngx_http_fanout_stats_loc_t *loc,
    fanout_ramp_counts_t *c)
{
    ngx_atomic_t                    *n;
    ngx_http_fanout_stats_t         *st;
    ngx_http_fanout_stats_target_t  *v;

    v = loc->variants.elts;
    st = v[loc->candidate].node;
    n = st->counters;

    c->errors = n[NGX_HTTP_FANOUT_VAR_502] + n[NGX_HTTP_FANOUT_VAR_504];
    c->requests = n[NGX_HTTP_FANOUT_VAR_200] + n[NGX_HTTP_FANOUT_VAR_OTHER]
                  + c->errors;
    c->slow = 0;
    c->slow_first = 0;

    if (loc->ramp->max_p99) {
        c->slow = ngx_http_fanout_rt_over(st->buckets, loc->ramp->max_p99);
    }

    /* the same bounds for the first answer bytes (stats.h) */
    if (loc->ramp->max_ttft) {
        c->slow_first = ngx_http_fanout_rt_over(
                            &n[NGX_HTTP_FANOUT_VAR_FIRST], loc->ramp->max_ttft);
    }
}


static void
ngx_http_fanout_rt_counts_sub(fanout_ramp_counts_t *d,
    fanout_ramp_counts_t *a, fanout_ramp_counts_t *b)
{
    /* counters only grow; a node made anew (zone lost) reads as none */
    d->requests = a->requests >= b->requests ? a->requests - b->requests : 0;
    d->errors = a->errors >= b->errors ? a->errors - b->errors : 0;
    d->slow = a->slow >= b->slow ? a->slow - b->slow : 0;
    d->slow_first = a->slow_first >= b->slow_first
                    ? a->slow_first - b->slow_first : 0;
}


/* a verdict turned into the next state */

static ngx_uint_t
ngx_http_fanout_rt_next(ngx_http_fanout_stats_loc_t *loc,
    fanout_ramp_verdict_e v, ngx_uint_t *step)
{
    if (v == FANOUT_RAMP_ADVANCE) {
        (*step)++;

        return *step + 1 >= loc->ramp->nsteps ? NGX_HTTP_FANOUT_RAMP_DONE
                                              : NGX_HTTP_FANOUT_RAMP_RAMPING;
    }

    return NGX_HTTP_FANOUT_RAMP_ROLLED_BACK;
}


/* without Redis, a ramp is this instance's alone */

static void
ngx_http_fanout_rt_ramp_local(ngx_http_fanout_main_conf_t *fmcf,
    ngx_http_fanout_stats_loc_t *loc)
{
    uint64_t                    now;
    ngx_uint_t                  step, state;
    fanout_ramp_counts_t        c;
    fanout_ramp_verdict_e       v;
    ngx_http_fanout_runtime_t  *rt;

    rt = &loc->node->rt;
    now = ngx_http_fanout_rt_wall();

    ngx_http_fanout_rt_counts(loc, &c);

    if (rt->ramp_fp != loc->ramp_fp
        || rt->ramp_state == NGX_HTTP_FANOUT_RAMP_NONE)
    {
        rt->ramp_seen = c;
        ngx_http_fanout_rt_ramp_take(fmcf, loc, NGX_HTTP_FANOUT_RAMP_RAMPING,
                                     0, now, 0, "");
        return;
    }

    if (rt->ramp_state != NGX_HTTP_FANOUT_RAMP_RAMPING) {
        return;
    }

    ngx_http_fanout_rt_counts_sub(&rt->ramp_counts, &c, &rt->ramp_seen);

    v = fanout_ramp_decide(loc->ramp, now - rt->ramp_at, &rt->ramp_counts);

    if (v == FANOUT_RAMP_HOLD) {
        return;
    }

    step = rt->ramp_step;
    state = ngx_http_fanout_rt_next(loc, v, &step);

    rt->ramp_seen = c;
    ngx_http_fanout_rt_ramp_take(fmcf, loc, state, step, now,
                                 v == FANOUT_RAMP_ADVANCE ? 0 : (ngx_uint_t) v,
                                 "");
}


static void
ngx_http_fanout_rt_cas_reply(void *data, redisReply *reply,
    ngx_http_fanout_redis_error_e error)
{
    ngx_http_fanout_rt_ramp_t *rr = data;

    ngx_uint_t  state, step, why;
    uint64_t    at;

    ngx_http_fanout_rt_busy--;

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0
        && ngx_http_fanout_rt_ramp_parse(rr->value, rr->value_len, &state,
                                         &step, &at, &why) == NGX_OK)
    {
        /* ours went in: taken at once, the others see it by the version */
        ngx_http_fanout_rt_ramp_take(rr->fmcf, rr->loc, state, step, at, why,
                                     "");
        rr->loc->node->rt.ramp_seen = rr->now;
    }

    ngx_free(rr);
}


static void
ngx_http_fanout_rt_ramp_reply(void *data, redisReply *reply,
    ngx_http_fanout_redis_error_e error)
{
    ngx_http_fanout_rt_ramp_t *rr = data;

    size_t                      len[5];
    uint64_t                    now, at;
    ngx_uint_t                  state, step, why;
    const char                 *argv[5];
    redisReply                **e;
    fanout_ramp_verdict_e       v;
    ngx_http_fanout_runtime_t  *rt;
    u_char                      old[96];

    ngx_http_fanout_rt_busy--;

    rt = &rr->loc->node->rt;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 6 || reply->element[0]->type != REDIS_REPLY_STRING
        || ngx_http_fanout_rt_ramp_parse((u_char *) reply->element[0]->str,
                                         reply->element[0]->len, &state,
                                         &step, &at, &why)
           != NGX_OK)
    {
        /* Redis trouble (counted and logged): the ramp holds its step */
        ngx_free(rr);
        return;
    }

    e = reply->element;

    if (e[4]->type == REDIS_REPLY_INTEGER && e[4]->integer == 1) {
        /* our counts went in */
        rt->ramp_seen = rr->now;
        rt->ramp_counts.requests = (uint64_t) ngx_max(e[1]->integer, 0);
        rt->ramp_counts.errors = (uint64_t) ngx_max(e[2]->integer, 0);
        rt->ramp_counts.slow = (uint64_t) ngx_max(e[3]->integer, 0);
        rt->ramp_counts.slow_first = (uint64_t) ngx_max(e[5]->integer, 0);

    } else {
        /* a new step, or a new ramp: counted from now */
        ngx_http_fanout_rt_ramp_take(rr->fmcf, rr->loc, state, step, at, why,
                                     " (the fleet's)");
        rt->ramp_seen = rr->now;
        ngx_free(rr);
        return;
    }

    if (state != NGX_HTTP_FANOUT_RAMP_RAMPING) {
        ngx_free(rr);
        return;
    }

    now = ngx_http_fanout_rt_wall();
    v = fanout_ramp_decide(rr->loc->ramp, now > at ? now - at : 0,
                           &rt->ramp_counts);

    if (v == FANOUT_RAMP_HOLD) {
        ngx_free(rr);
        return;
    }

    if (reply->element[0]->len > sizeof(old)) {
        /* not a state we wrote */
        ngx_free(rr);
        return;
    }

    ngx_memcpy(old, reply->element[0]->str, reply->element[0]->len);
    len[2] = reply->element[0]->len;

    state = ngx_http_fanout_rt_next(rr->loc, v, &step);
    rr->value_len = ngx_http_fanout_rt_ramp_value(rr->value, state, step, now,
                        v == FANOUT_RAMP_ADVANCE ? 0 : (ngx_uint_t) v);

    argv[0] = NGX_HTTP_FANOUT_RT_KEY;
    len[0] = sizeof(NGX_HTTP_FANOUT_RT_KEY) - 1;
    argv[1] = (const char *) rr->field;
    len[1] = rr->field_len;
    argv[2] = (const char *) old;
    argv[3] = (const char *) rr->value;
    len[3] = rr->value_len;

    if (ngx_http_fanout_rt_eval(ngx_cycle->log, &ngx_http_fanout_rt_cas_script,
                                1, 4, argv, len, ngx_http_fanout_rt_cas_reply,
                                rr)
        == NULL)
    {
        ngx_free(rr);
        return;
    }

    ngx_http_fanout_rt_busy++;
}


/* a ramp's tick, with Redis: the fleet's state and counts */

static void
ngx_http_fanout_rt_ramp_fleet(ngx_http_fanout_main_conf_t *fmcf,
    ngx_http_fanout_stats_loc_t *loc)
{
    u_char                     *p;
    size_t                      len[9];
    uint64_t                    now;
    ngx_str_t                   fp;
    const char                 *argv[9];
    ngx_http_fanout_runtime_t  *rt;
    ngx_http_fanout_rt_ramp_t  *rr;
    u_char                      key[64], fpbuf[16], nbuf[NGX_INT64_LEN],
                                cur[64], d[4][NGX_INT64_LEN];

    rt = &loc->node->rt;

    rr = ngx_alloc(sizeof(ngx_http_fanout_rt_ramp_t), ngx_cycle->log);
    if (rr == NULL) {
        return;
    }

    rr->fmcf = fmcf;
    rr->loc = loc;

    ngx_http_fanout_rt_counts(loc, &rr->now);

    fp.data = fpbuf;
    fp.len = ngx_sprintf(fpbuf, "%08xD", loc->ramp_fp) - fpbuf;

    if (loc->name.len > NGX_HTTP_FANOUT_RT_FIELD - 32) {
        ngx_free(rr);
        return;
    }

    rr->field_len = ngx_http_fanout_rt_field(rr->field, "ramp", &fp,
                                             &loc->name);

    p = ngx_sprintf(key, "fanout:ramp:%V:", &fp);

    now = ngx_http_fanout_rt_wall();

    argv[0] = NGX_HTTP_FANOUT_RT_KEY;
    len[0] = sizeof(NGX_HTTP_FANOUT_RT_KEY) - 1;
    argv[1] = (const char *) key;
    len[1] = p - key;
    argv[2] = (const char *) rr->field;
    len[2] = rr->field_len;
    argv[3] = (const char *) nbuf;
    len[3] = ngx_sprintf(nbuf, "%uL", now) - nbuf;

    /* the state our counts belong to: none when not yet known here */
    argv[4] = (const char *) cur;
    len[4] = 0;

    if (rt->ramp_fp == loc->ramp_fp
        && rt->ramp_state != NGX_HTTP_FANOUT_RAMP_NONE)
    {
        len[4] = ngx_http_fanout_rt_ramp_value(cur, rt->ramp_state,
                                               rt->ramp_step, rt->ramp_at,
                                               rt->ramp_why);
        ngx_http_fanout_rt_counts_sub(&rr->delta, &rr->now, &rt->ramp_seen);

    } else {
        ngx_memzero(&rr->delta, sizeof(fanout_ramp_counts_t));
    }

    argv[5] = (const char *) d[0];
    len[5] = ngx_sprintf(d[0], "%uL", rr->delta.requests) - d[0];
    argv[6] = (const char *) d[1];
    len[6] = ngx_sprintf(d[1], "%uL", rr->delta.errors) - d[1];
    argv[7] = (const char *) d[2];
    len[7] = ngx_sprintf(d[2], "%uL", rr->delta.slow) - d[2];
    argv[8] = (const char *) d[3];
    len[8] = ngx_sprintf(d[3], "%uL", rr->delta.slow_first) - d[3];

    /* 2 keys, then the field, now, the state known here, the counts */
    if (ngx_http_fanout_rt_eval(ngx_cycle->log,
                                &ngx_http_fanout_rt_ramp_script, 2, 9, argv,
                                len, ngx_http_fanout_rt_ramp_reply, rr)
        == NULL)
    {
        ngx_free(rr);
        return;
    }

    ngx_http_fanout_rt_busy++;
}


/* a setting from the fleet's hash: applied when it differs from ours */

static void
ngx_http_fanout_rt_apply(ngx_http_fanout_main_conf_t *fmcf, u_char *f,
    size_t flen, u_char *v, size_t vlen, ngx_int_t version)
{
    u_char                          *p, *end, *name;
    size_t                           nlen;
    uint32_t                         fp, share[FANOUT_SPLIT_MAX_VARIANTS];
    ngx_int_t                        i, n;
    ngx_str_t                        location;
    ngx_uint_t                       k, state, step, why;
    uint64_t                         at;
    fanout_split_t                   split;
    ngx_http_fanout_stats_t         *st;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_stats_target_t  *t;

    end = f + flen;
    p = ngx_strlchr(f, end, NGX_HTTP_FANOUT_RT_SEP);

    if (p == NULL) {
        return;
    }

    name = NULL;
    nlen = 0;

    if (!(p - f == 5 && ngx_strncmp(f, "split", 5) == 0)) {
        name = p + 1;
        p = ngx_strlchr(name, end, NGX_HTTP_FANOUT_RT_SEP);

        if (p == NULL) {
            return;
        }

        nlen = p - name;
    }

    location.data = p + 1;
    location.len = end - location.data;

    loc = ngx_http_fanout_rt_location(fmcf, &location);

    if (loc == NULL) {
        /* a location this configuration does not have */
        return;
    }

    if (name == NULL) {
        /* "FP config" or "FP W0 W1 ...": for the split it was made for */
        p = ngx_strlchr(v, v + vlen, ' ');

        if (p == NULL || loc->split == NULL) {
            return;
        }

        n = ngx_hextoi(v, p - v);

        if (n == NGX_ERROR || (uint32_t) n != loc->split_fp || loc->ramp) {
            return;
        }

        p++;

        if (v + vlen - p == 6 && ngx_strncmp(p, "config", 6) == 0) {
            if (loc->node->rt.weights) {
                ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                              "fanout runtime: location \"%V\": weights as "
                              "configured (the fleet's version %i)",
                              &loc->name, version);
                ngx_http_fanout_rt_split_write(fmcf, loc, NULL, 0);
            }

            return;
        }

        for (k = 0; k < loc->split->n; k++) {
            if (p >= v + vlen) {
                /* fewer weights than variants: not for this split */
                return;
            }

            end = ngx_strlchr(p, v + vlen, ' ');

            if (end == NULL) {
                end = v + vlen;
            }

            i = ngx_atoi(p, end - p);

            if (i == NGX_ERROR) {
                return;
            }

            share[k] = (uint32_t) i;
            p = end + 1;
        }

        if (fanout_split_set(loc->split, share, &split) != 0) {
            return;
        }

        if (loc->node->rt.weights && loc->node->rt.base == loc->split_fp
            && ngx_memcmp(loc->node->rt.split.share, split.share,
                          sizeof(split.share)) == 0)
        {
            return;
        }

        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "fanout runtime: location \"%V\": new weights (the "
                      "fleet's version %i)", &loc->name, version);

        ngx_http_fanout_rt_split_write(fmcf, loc, &split, 1);
        return;
    }

    if (f[0] == 'a') {
        /* "api-ramp\x1f*\x1fLOC": fanout_api's ramp, for this split */
        u_char         *tok[6];
        size_t          tlen[6];
        ngx_uint_t      j;
        ngx_int_t       cand, every, min;
        fanout_ramp_t   ramp;
        ngx_str_t       steps, rollback;

        if (loc->split == NULL || loc->node == NULL) {
            return;
        }

        j = ngx_http_fanout_rt_words(v, vlen, tok, tlen, 6);

        if (j < 2 || (uint32_t) ngx_hextoi(tok[0], tlen[0]) != loc->split_fp)
        {
            return;
        }

        if (tlen[1] == 3 && ngx_strncmp(tok[1], "off", 3) == 0) {
            if (loc->node->rt.api_ramp_on) {
                ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                              "fanout runtime: location \"%V\": fanout_api's "
                              "ramp off (the fleet's version %i)",
                              &loc->name, version);
                ngx_http_fanout_rt_ramp_install(fmcf, loc, NULL, 0);
            }

            return;
        }

        if (j != 6) {
            return;
        }

        cand = ngx_atoi(tok[1], tlen[1]);
        every = ngx_atoi(tok[2], tlen[2]);
        min = ngx_atoi(tok[3], tlen[3]);
        steps.data = tok[4];
        steps.len = tlen[4];
        rollback.data = tok[5];
        rollback.len = tlen[5];

        if (cand < 0 || cand >= (ngx_int_t) loc->split->n || every <= 0
            || min < 0
            || ngx_http_fanout_rt_ramp_conf(&steps, (uint64_t) every,
                                            (uint64_t) min, &rollback, &ramp)
               != NULL)
        {
            return;
        }

        if (loc->node->rt.api_ramp_on && loc->node->rt.api_candidate
                                         == (ngx_uint_t) cand
            && ngx_memcmp(&loc->node->rt.api_ramp, &ramp, sizeof(ramp)) == 0)
        {
            return;
        }

        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "fanout runtime: location \"%V\": fanout_api's ramp "
                      "\"%*s\" (the fleet's version %i)", &loc->name,
                      vlen - tlen[0] - 1, v + tlen[0] + 1, version);

        ngx_http_fanout_rt_ramp_install(fmcf, loc, &ramp, (ngx_uint_t) cand);
        return;
    }

    if (f[0] == 'r') {
        /* "ramp\x1fFP\x1fLOC": the ramp in force only */
        if (loc->ramp == NULL) {
            return;
        }

        fp = (uint32_t) ngx_hextoi(name, nlen);

        if (fp != loc->ramp_fp
            || ngx_http_fanout_rt_ramp_parse(v, vlen, &state, &step, &at,
                                             &why)
               != NGX_OK)
        {
            return;
        }

        ngx_http_fanout_rt_ramp_take(fmcf, loc, state, step, at, why,
                                     " (the fleet's)");
        return;
    }

    if (f[0] == 'p') {
        /* "purge\x1f*\x1fLOC" or "purge\x1fTARGET\x1fLOC": when, in ms */
        n = ngx_atoi(v, vlen);

        if (n <= 0) {
            return;
        }

        if (nlen == 1 && name[0] == '*') {
            st = loc->node;

        } else {
            i = ngx_http_fanout_rt_index(&loc->targets, name, nlen, 0);

            if (i < 0) {
                return;
            }

            t = loc->targets.elts;
            st = t[i].node;
        }

        if (st->rt.purged >= (ngx_atomic_uint_t) n) {
            return;
        }

        st->rt.purged = n;

    } else if (f[0] == 's') {
        i = ngx_http_fanout_rt_index(&loc->shadows, name, nlen, 1);

        if (i < 0) {
            return;
        }

        t = loc->shadows.elts;

        if (vlen == 6 && ngx_strncmp(v, "config", 6) == 0) {
            n = 0;

        } else {
            n = ngx_atoi(v, vlen);

            if (n == NGX_ERROR) {
                return;
            }

            n++;
        }

        if (n < 0 || n > FANOUT_SPLIT_WHOLE + 1
            || t[i].node->rt.percent == (ngx_atomic_uint_t) n)
        {
            return;
        }

        t[i].node->rt.percent = n;

    } else {
        i = ngx_http_fanout_rt_index(&loc->targets, name, nlen, 0);

        if (i < 0) {
            return;
        }

        t = loc->targets.elts;

        if (f[0] == 'b') {
            st = t[i].bnode;
            n = (vlen == 4 && ngx_strncmp(v, "open", 4) == 0) ? 1
                : (vlen == 6 && ngx_strncmp(v, "closed", 6) == 0) ? 2 : 0;

            if (st->rt.forced == (ngx_atomic_uint_t) n) {
                return;
            }

            st->rt.forced = n;

        } else {
            n = (vlen == 8 && ngx_strncmp(v, "disabled", 8) == 0);

            if (t[i].node->rt.disabled == (ngx_atomic_uint_t) n) {
                return;
            }

            t[i].node->rt.disabled = n;
        }
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "fanout runtime: location \"%V\": %*s \"%*s\" is %*s "
                  "(the fleet's version %i)", &loc->name,
                  (size_t) (ngx_strlchr(f, f + flen, NGX_HTTP_FANOUT_RT_SEP)
                            - f), f, nlen, name, vlen, v, version);
}


/* a split's weights as the fleet's hash has them: "FP W0 W1 ..." */

u_char *
ngx_http_fanout_rt_weights_value(u_char *p, ngx_http_fanout_stats_loc_t *loc,
    fanout_split_t *split)
{
    ngx_uint_t  k;

    p = ngx_sprintf(p, "%08xD", loc->split_fp);

    for (k = 0; k < loc->split->n; k++) {
        p = ngx_sprintf(p, " %uD", split->share[k]);
    }

    return p;
}


/* a share in hundredths of 1% as fanout_ramp_share() reads it: "12.50%" */

static u_char *
ngx_http_fanout_rt_share(u_char *p, uint32_t share)
{
    return ngx_sprintf(p, "%uD.%02uD%%", share / 100, share % 100);
}


/* fanout_api's ramp as its fleet value: "FP CANDIDATE EVERY MIN STEPS RB" */

static size_t
ngx_http_fanout_rt_api_ramp_value(u_char *buf, ngx_http_fanout_stats_loc_t *loc,
    fanout_ramp_t *ramp, ngx_uint_t candidate)
{
    u_char      *p;
    ngx_uint_t   k;

    p = ngx_sprintf(buf, "%08xD %ui %uL %uL ", loc->split_fp, candidate,
                    ramp->every, ramp->min_requests);

    for (k = 0; k < ramp->nsteps; k++) {
        if (k) {
            *p++ = ',';
        }

        p = ngx_http_fanout_rt_share(p, ramp->step[k]);
    }

    *p++ = ' ';

    if (ramp->has_error) {
        p = ngx_http_fanout_rt_share(ngx_cpymem(p, "error_rate>", 11),
                                     ramp->max_error);
    }

    if (ramp->max_p99) {
        p = ngx_sprintf(p, "%sp99>%uDms", ramp->has_error ? "," : "",
                        ramp->max_p99);
    }

    if (ramp->max_ttft) {
        p = ngx_sprintf(p, "%sttft_p99>%uDms",
                        ramp->has_error || ramp->max_p99 ? "," : "",
                        ramp->max_ttft);
    }

    if (!ramp->has_error && !ramp->max_p99 && !ramp->max_ttft) {
        *p++ = '-';
    }

    return p - buf;
}


/* one field and its value for the restore, copied into its pool */

static ngx_int_t
ngx_http_fanout_rt_hold(ngx_array_t *a, const char *kind, ngx_str_t *name,
    ngx_str_t *location, u_char *value, size_t vlen)
{
    ngx_str_t  *kv;

    kv = ngx_array_push_n(a, 2);
    if (kv == NULL) {
        return NGX_ERROR;
    }

    kv[0].data = ngx_pnalloc(a->pool, ngx_strlen(kind) + 2
                             + (name ? name->len : 0) + location->len);
    kv[1].data = ngx_pnalloc(a->pool, vlen);

    if (kv[0].data == NULL || kv[1].data == NULL) {
        return NGX_ERROR;
    }

    kv[0].len = ngx_http_fanout_rt_field(kv[0].data, kind, name, location);
    kv[1].len = ngx_cpymem(kv[1].data, value, vlen) - kv[1].data;

    return NGX_OK;
}


/* what this instance holds that the configuration does not say */

static ngx_int_t
ngx_http_fanout_rt_held(ngx_http_fanout_main_conf_t *fmcf, ngx_array_t *a)
{
    u_char                          *p;
    ngx_int_t                        rc;
    ngx_uint_t                       i, k, cand;
    ngx_str_t                        name, all = ngx_string("*");
    fanout_ramp_t                    ramp;
    ngx_http_fanout_runtime_t       *rt;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_stats_target_t  *t;
    u_char                           value[FANOUT_SPLIT_MAX_VARIANTS
                                           * (NGX_INT_T_LEN + 1) + 400];

    loc = fmcf->locations.elts;

    for (i = 0; i < fmcf->locations.nelts; i++, loc++) {
        if (loc->node == NULL
            || loc->name.len > NGX_HTTP_FANOUT_RT_FIELD - 80)
        {
            continue;
        }

        rt = &loc->node->rt;
        rc = NGX_OK;

        if (loc->split && rt->weights && rt->base == loc->split_fp
            && !rt->api_ramp_on && loc->ramp == NULL)
        {
            p = ngx_http_fanout_rt_weights_value(value, loc, &rt->split);

            rc = ngx_http_fanout_rt_hold(a, "split", NULL, &loc->name, value,
                                         p - value);
        }

        if (rc == NGX_OK && loc->split && rt->api_ramp_on
            && rt->api_base == loc->split_fp)
        {
            ngx_shmtx_lock(&fmcf->shpool->mutex);
            ramp = rt->api_ramp;
            cand = rt->api_candidate;
            ngx_shmtx_unlock(&fmcf->shpool->mutex);

            rc = ngx_http_fanout_rt_hold(a, "api-ramp", &all, &loc->name,
                     value, ngx_http_fanout_rt_api_ramp_value(value, loc,
                                                              &ramp, cand));
        }

        if (rc == NGX_OK && rt->purged) {
            rc = ngx_http_fanout_rt_hold(a, "purge", &all, &loc->name, value,
                     ngx_sprintf(value, "%uA", rt->purged) - value);
        }

        t = loc->shadows.elts;

        for (k = 0; rc == NGX_OK && k < loc->shadows.nelts; k++) {
            if (t[k].node && t[k].node->rt.percent) {
                rc = ngx_http_fanout_rt_hold(a, "shadow",
                         ngx_http_fanout_stats_extra_name(&name, &t[k]),
                         &loc->name, value,
                         ngx_sprintf(value, "%uA", t[k].node->rt.percent - 1)
                         - value);
            }
        }

        t = loc->targets.elts;

        for (k = 0; rc == NGX_OK && k < loc->targets.nelts; k++) {
            if (t[k].node && t[k].node->rt.disabled) {
                rc = ngx_http_fanout_rt_hold(a, "target", &t[k].name,
                                             &loc->name, (u_char *) "disabled",
                                             8);
            }

            if (rc == NGX_OK && t[k].node && t[k].node->rt.purged) {
                rc = ngx_http_fanout_rt_hold(a, "purge", &t[k].name,
                         &loc->name, value,
                         ngx_sprintf(value, "%uA", t[k].node->rt.purged)
                         - value);
            }

            if (rc == NGX_OK && loc->breaker && t[k].bnode
                && t[k].bnode->rt.forced)
            {
                rc = ngx_http_fanout_rt_hold(a, "breaker", &t[k].name,
                         &loc->name, (u_char *) (t[k].bnode->rt.forced == 1
                                                 ? "open" : "closed"),
                         t[k].bnode->rt.forced == 1 ? 4 : 6);
            }
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_fanout_rt_restored(void *data, redisReply *reply,
    ngx_http_fanout_redis_error_e error)
{
    ngx_http_fanout_rt_busy--;

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "fanout runtime: the fleet's state written back, now "
                      "version %L", (int64_t) reply->integer);
    }
}


/*
 * Redis forgot (fleet: its version, 0 when it has none): write back what
 * this instance holds.  The next poll reads the result, as its version
 * moved on.  Ramps' states are written back by their own ticks.
 */

static void
ngx_http_fanout_rt_restore(ngx_http_fanout_main_conf_t *fmcf,
    ngx_int_t fleet)
{
    size_t        *len;
    ngx_uint_t     i, n;
    ngx_str_t     *kv;
    ngx_pool_t    *pool;
    ngx_array_t    held;
    const char   **argv;
    u_char         vbuf[NGX_ATOMIC_T_LEN];
    u_char         tag[NGX_HTTP_FANOUT_RT_TAG];

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    if (ngx_array_init(&held, pool, 16, sizeof(ngx_str_t)) != NGX_OK
        || ngx_http_fanout_rt_held(fmcf, &held) != NGX_OK)
    {
        goto done;
    }

    /* EVALSHA SHA 1 KEY VERSION TAG FIELD VALUE ... */
    n = 6 + held.nelts;
    argv = ngx_palloc(pool, n * sizeof(char *));
    len = ngx_palloc(pool, n * sizeof(size_t));

    if (argv == NULL || len == NULL) {
        goto done;
    }

    argv[2] = "1";
    len[2] = 1;
    argv[3] = NGX_HTTP_FANOUT_RT_KEY;
    len[3] = sizeof(NGX_HTTP_FANOUT_RT_KEY) - 1;

    argv[4] = (const char *) vbuf;
    len[4] = ngx_sprintf(vbuf, "%uA", fmcf->sh->runtime_version) - vbuf;

    /* the restore's tag: the version and a nonce ("33:1804289383") */
    argv[5] = (const char *) tag;
    len[5] = ngx_sprintf(tag, "%uA:%ui", fmcf->sh->runtime_version,
                         (ngx_uint_t) ngx_random())
             - tag;

    kv = held.elts;

    for (i = 0; i < held.nelts; i++) {
        argv[6 + i] = (const char *) kv[i].data;
        len[6 + i] = kv[i].len;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "fanout runtime: the fleet's state is gone from Redis "
                  "(its version %i, this instance's %uA): writing back %ui "
                  "settings", fleet, fmcf->sh->runtime_version,
                  held.nelts / 2);

    if (ngx_http_fanout_redis_eval(ngx_cycle->log,
                                   &ngx_http_fanout_rt_restore_script,
                                   (int) n, argv, len,
                                   ngx_http_fanout_rt_restored, fmcf)
        != NULL)
    {
        ngx_http_fanout_rt_busy++;
    }

done:

    ngx_destroy_pool(pool);
}


/*
 * The hash was given back by a restore this instance has not seen, made
 * from a version older than the one it holds: an instance that lagged
 * wrote first, and this one knows more.
 */

static ngx_uint_t
ngx_http_fanout_rt_lagged(ngx_http_fanout_main_conf_t *fmcf,
    redisReply *restored)
{
    u_char     *colon;
    ngx_int_t   from;

    if (restored == NULL
        || (restored->len == fmcf->sh->runtime_restored_len
            && ngx_strncmp(restored->str, fmcf->sh->runtime_restored,
                           restored->len) == 0))
    {
        return 0;
    }

    colon = ngx_strlchr((u_char *) restored->str,
                        (u_char *) restored->str + restored->len, ':');

    from = ngx_atoi((u_char *) restored->str,
                    colon ? (size_t) (colon - (u_char *) restored->str)
                          : restored->len);

    return from >= 0 && (ngx_atomic_uint_t) from < fmcf->sh->runtime_version;
}


static void
ngx_http_fanout_rt_poll_reply(void *data, redisReply *reply,
    ngx_http_fanout_redis_error_e error)
{
    ngx_http_fanout_main_conf_t *fmcf = data;

    ngx_int_t                     version;
    ngx_uint_t                    i;
    redisReply                  **e, *restored;
    ngx_http_fanout_stats_loc_t  *loc;

    ngx_http_fanout_rt_busy--;

    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements % 2 == 0)
    {
        e = reply->element;
        version = -1;
        restored = NULL;

        for (i = 0; i < reply->elements; i += 2) {
            if (e[i]->type != REDIS_REPLY_STRING
                || e[i + 1]->type != REDIS_REPLY_STRING)
            {
                continue;
            }

            if (e[i]->len == 1 && e[i]->str[0] == 'v') {
                version = ngx_atoi((u_char *) e[i + 1]->str, e[i + 1]->len);

            } else if (e[i]->len == sizeof("restored") - 1
                       && ngx_strncmp(e[i]->str, "restored", e[i]->len) == 0)
            {
                restored = e[i + 1];
            }
        }

        if (version >= 0
            && ((ngx_atomic_uint_t) version < fmcf->sh->runtime_version
                || ngx_http_fanout_rt_lagged(fmcf, restored)))
        {
            /*
             * Redis forgot, and has changes made since, or was given back
             * the settings of an instance that knew less than this one
             * (its version may even be this one's): the next poll reads
             * the result with what this instance writes back
             */
            ngx_http_fanout_rt_restore(fmcf, version);
            version = -1;
        }

        for (i = 0; version >= 0 && i < reply->elements; i += 2) {
            if (e[i]->type == REDIS_REPLY_STRING
                && e[i + 1]->type == REDIS_REPLY_STRING && e[i]->len > 1)
            {
                ngx_http_fanout_rt_apply(fmcf, (u_char *) e[i]->str,
                                         e[i]->len, (u_char *) e[i + 1]->str,
                                         e[i + 1]->len, version);
            }
        }

        if (version >= 0) {
            fmcf->sh->runtime_version = (ngx_atomic_uint_t) version;
            fmcf->sh->runtime_generation = ngx_http_fanout_rt_generation;

            /* the restore known: polls ask whether it is still the last */
            fmcf->sh->runtime_restored_len =
                (restored && restored->len <= NGX_HTTP_FANOUT_RESTORED_LEN)
                ? restored->len : 0;
            ngx_memcpy(fmcf->sh->runtime_restored,
                       restored ? restored->str : "",
                       fmcf->sh->runtime_restored_len);
        }

    } else if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        /* Redis trouble (counted and logged): the ramps hold */
        return;

    } else if (reply->integer == 0 && fmcf->sh->runtime_version > 0) {
        ngx_http_fanout_rt_restore(fmcf, 0);
    }

    /* then the ramps, with the fleet's state just read */

    loc = fmcf->locations.elts;

    for (i = 0; i < fmcf->locations.nelts; i++) {
        ngx_http_fanout_rt_ramp_sync(fmcf, &loc[i]);

        if (loc[i].ramp && loc[i].node) {
            ngx_http_fanout_rt_ramp_fleet(fmcf, &loc[i]);
        }
    }
}


/* the last round is still out: Redis is slow, it has timers */

static ngx_uint_t
ngx_http_fanout_rt_sync_busy(ngx_http_fanout_task_t *task)
{
    return ngx_http_fanout_rt_busy != 0;
}


/* one worker per instance, four times a second */

static void
ngx_http_fanout_rt_sync(ngx_http_fanout_task_t *task)
{
    size_t                        len[3];
    ngx_uint_t                    i;
    const char                   *argv[3];
    ngx_http_fanout_stats_loc_t  *loc;
    ngx_http_fanout_main_conf_t  *fmcf;
    u_char                        vbuf[NGX_ATOMIC_T_LEN];
    u_char                        rbuf[NGX_HTTP_FANOUT_RESTORED_LEN];

    fmcf = task->data;

    if (fmcf->redis == NULL) {
        loc = fmcf->locations.elts;

        for (i = 0; i < fmcf->locations.nelts; i++) {
            ngx_http_fanout_rt_ramp_sync(fmcf, &loc[i]);

            if (loc[i].ramp && loc[i].node) {
                ngx_http_fanout_rt_ramp_local(fmcf, &loc[i]);
            }
        }

        return;
    }

    argv[0] = NGX_HTTP_FANOUT_RT_KEY;
    len[0] = sizeof(NGX_HTTP_FANOUT_RT_KEY) - 1;
    argv[1] = (const char *) vbuf;
    len[1] = ngx_sprintf(vbuf, "%uA", fmcf->sh->runtime_version) - vbuf;

    /* the last restore known, as the hash says it ("": none) */
    argv[2] = (const char *) rbuf;
    len[2] = fmcf->sh->runtime_restored_len;
    ngx_memcpy(rbuf, fmcf->sh->runtime_restored, len[2]);

    if (fmcf->sh->runtime_generation != ngx_http_fanout_rt_generation) {
        /*
         * The version was applied by another configuration's workers (a
         * reload's new ones, or its old ones still polling until they
         * quit): the whole hash is read again, whatever the version, as
         * this configuration may take what that one could not.
         */
        argv[1] = "-";
        len[1] = 1;
    }

    if (ngx_http_fanout_rt_eval(task->ev.log, &ngx_http_fanout_rt_poll_script,
                                1, 3, argv, len, ngx_http_fanout_rt_poll_reply,
                                fmcf)
        != NULL)
    {
        ngx_http_fanout_rt_busy++;
    }
}


ngx_int_t
ngx_http_fanout_runtime_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                    i, ramps;
    ngx_http_fanout_stats_loc_t  *loc;
    ngx_http_fanout_main_conf_t  *fmcf;

    fmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_fanout_module);

    if (fmcf == NULL || fmcf->sh == NULL) {
        return NGX_OK;
    }

    loc = fmcf->locations.elts;
    ramps = 0;

    for (i = 0; i < fmcf->locations.nelts; i++) {
        ramps += (loc[i].ramp != NULL);
    }

    /* the fleet's changes come through any instance's fanout_api, and
     * fanout_api may set a ramp */
    if (ramps == 0 && fmcf->api_file == NULL) {
        return NGX_OK;
    }

    ngx_http_fanout_redis_script_init(&ngx_http_fanout_rt_write_script,
                                      ngx_http_fanout_rt_write_lua);
    ngx_http_fanout_redis_script_init(&ngx_http_fanout_rt_poll_script,
                                      ngx_http_fanout_rt_poll_lua);
    ngx_http_fanout_redis_script_init(&ngx_http_fanout_rt_ramp_script,
                                      ngx_http_fanout_rt_ramp_lua);
    ngx_http_fanout_redis_script_init(&ngx_http_fanout_rt_cas_script,
                                      ngx_http_fanout_rt_cas_lua);
    ngx_http_fanout_redis_script_init(&ngx_http_fanout_rt_restore_script,
                                      ngx_http_fanout_rt_restore_lua);

    ngx_http_fanout_rt_generation = fmcf->sh->generation;

    ngx_http_fanout_rt_task.period = NGX_HTTP_FANOUT_RT_SYNC;
    ngx_http_fanout_rt_task.last = &fmcf->sh->runtime_synced;
    ngx_http_fanout_rt_task.shpool = fmcf->shpool;
    ngx_http_fanout_rt_task.run = ngx_http_fanout_rt_sync;
    ngx_http_fanout_rt_task.busy = ngx_http_fanout_rt_sync_busy;
    ngx_http_fanout_rt_task.data = fmcf;

    /* soon, so that a new instance starts from the fleet's state */
    ngx_http_fanout_task_start(&ngx_http_fanout_rt_task, cycle->log,
                               ngx_random() % (NGX_HTTP_FANOUT_RT_SYNC / 5)
                               + 1);

    return NGX_OK;
}


/* fanout_api's changes: checked, made here, then written for the fleet */

static void
ngx_http_fanout_rt_written(void *data, redisReply *reply,
    ngx_http_fanout_redis_error_e error)
{
    ngx_http_fanout_rt_write_t *w = data;

    ngx_int_t  v;

    v = -1;

    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        v = (ngx_int_t) reply->integer;

        /* the next poll reads the hash anyway if others wrote meanwhile */
        (void) ngx_atomic_cmp_set(&w->fmcf->sh->runtime_version,
                                  (ngx_atomic_uint_t) v - 1,
                                  (ngx_atomic_uint_t) v);
    }

    if (w->handler) {
        w->handler(w->data, v);
    }

    ngx_free(w);
}


/* the caller goes away first: the reply, when it comes, is only freed */

void
ngx_http_fanout_runtime_forget(void *pending)
{
    ngx_http_fanout_rt_write_t *w = pending;

    w->handler = NULL;
}


/*
 * A change made here, written for the fleet: the field and its value in
 * one script that moves the version on; handler hears the version (or -1)
 * unless the caller forgets it first (*pending).
 */

ngx_int_t
ngx_http_fanout_rt_write(ngx_http_fanout_main_conf_t *fmcf, ngx_log_t *log,
    u_char *field, size_t flen, u_char *value, size_t vlen,
    ngx_http_fanout_rt_done_pt handler, void *data, void **pending)
{
    size_t                       len[3];
    const char                  *argv[3];
    ngx_http_fanout_redis_op_t  *op;
    ngx_http_fanout_rt_write_t  *w;

    if (fmcf->redis == NULL) {
        return NGX_OK;
    }

    w = ngx_alloc(sizeof(ngx_http_fanout_rt_write_t), log);
    if (w == NULL) {
        return NGX_OK;
    }

    w->handler = handler;
    w->data = data;
    w->fmcf = fmcf;

    argv[0] = NGX_HTTP_FANOUT_RT_KEY;
    len[0] = sizeof(NGX_HTTP_FANOUT_RT_KEY) - 1;
    argv[1] = (const char *) field;
    len[1] = flen;
    argv[2] = (const char *) value;
    len[2] = vlen;

    op = ngx_http_fanout_rt_eval(log, &ngx_http_fanout_rt_write_script, 1, 3,
                                 argv, len, ngx_http_fanout_rt_written, w);

    if (op == NULL) {
        ngx_free(w);
        return NGX_OK;
    }

    *pending = w;

    return NGX_OK;
}


/* a ramp state's name: waiting, ramping, done, rolled_back */

const char *
ngx_http_fanout_rt_ramp_name(ngx_uint_t state)
{
    return ngx_http_fanout_rt_ramp_names[state];
}
