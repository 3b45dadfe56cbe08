/*
 * Admission control for a target: max_inflight= slots shared by the
 * workers of an instance (a number, or with "auto" a limit learned from
 * the model's latency), and with queue=N a queue in the fanout_zone for
 * the calls over the cap (src/core/fanout_admission.c keeps its order:
 * priority=, then turns between fair= keys, then arrival).
 *
 * With a queue or a learned limit, a slot is taken and given back under
 * the zone's lock (the count itself atomic still: after a reload, old and
 * new workers may count one node's calls each their own way): the worker
 * that gives one back grants it to the next waiting call at once,
 * whichever worker that call is in, and counts it in flight for it; each
 * worker with calls waiting looks at their entries every millisecond (and
 * at once when it gave a slot back itself), starts those granted and
 * answers those shed (queue_timeout=, the deadline, evicted).  A call that
 * stops waiting (the answer decided, the client gone) leaves its entry, a
 * slot granted to it and not used goes to the next.  A fixed cap without a
 * queue is an atomic counter, off the lock, as before.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_admission.h"
#include "ngx_http_fanout_stats.h"


#define NGX_HTTP_FANOUT_ADMISSION_POLL  1      /* ms between looks */


/* a target's admission state in the zone, kept in its node across
 * reloads: the learned limit (max_inflight=auto), the queue (queue=) */
typedef struct {
    fanout_adaptive_conf_t          conf;
    fanout_adaptive_t               a;
    ngx_uint_t                      learned;    /* max_inflight=auto */
    fanout_queue_t                  q;
    ngx_msec_t                      expired;    /* the last pass, ms */
    fanout_pace_t                   pace;       /* how fast it moves */
    fanout_queue_entry_t            e[1];
} ngx_http_fanout_admission_sh_t;


/* a call of this worker that waits */
typedef struct {
    ngx_queue_t                     link;
    ngx_http_fanout_admission_sh_t *sh;
    ngx_http_fanout_stats_t        *st;
    ngx_uint_t                      max;        /* max_inflight=N */
    ngx_int_t                       entry;
    uint64_t                        seq;        /* the entry is still its */
    ngx_msec_t                      since;      /* queued at */
    ngx_http_fanout_admitted_pt     handler;
    void                           *data;
    ngx_http_request_t             *request;
    fanout_queue_reason_e           reason;     /* granted (OK), or shed */
    unsigned                        over:1;     /* answered or gone */
} ngx_http_fanout_admission_wait_t;


static void ngx_http_fanout_admission_poll(ngx_event_t *ev);
static void ngx_http_fanout_admission_cleanup(void *data);


static ngx_queue_t                   ngx_http_fanout_admission_waiting;
static ngx_event_t                   ngx_http_fanout_admission_timer;
static ngx_slab_pool_t              *ngx_http_fanout_admission_shpool;


/* the zone: each target's state, made or kept (a reload) */

static ngx_int_t
ngx_http_fanout_admission_zone(ngx_http_fanout_main_conf_t *fmcf,
    ngx_slab_pool_t *shpool, ngx_http_fanout_shctx_t *sh)
{
    size_t                           size;
    uint32_t                         slots;
    ngx_uint_t                       i, j;
    fanout_adaptive_conf_t           conf;
    ngx_http_fanout_stats_loc_t     *loc;
    ngx_http_fanout_stats_target_t  *tgt;
    ngx_http_fanout_admission_sh_t  *q, *old;

    loc = fmcf->locations.elts;

    for (i = 0; i < fmcf->locations.nelts; i++) {
        tgt = loc[i].targets.elts;

        for (j = 0; j < loc[i].targets.nelts; j++) {
            if (tgt[j].queue == 0 && !tgt[j].inflight_auto) {
                continue;
            }

            ngx_memzero(&conf, sizeof(fanout_adaptive_conf_t));
            conf.min_limit = (uint32_t) tgt[j].min_inflight;
            conf.max_limit = (uint32_t) tgt[j].max_inflight;

            if (fanout_adaptive_conf(&conf) != 0) {
                return NGX_ERROR;
            }

            old = tgt[j].node->queue;

            /* the calls waiting may be granted or shed before their
             * owners look: twice the queue, and some, for those */
            slots = tgt[j].queue ? (uint32_t) (2 * tgt[j].queue + 8) : 1;

            if (old == NULL || old->q.slots < slots) {
                /* a larger queue: the old one stays, as the old workers
                 * may still look at it */
                size = offsetof(ngx_http_fanout_admission_sh_t, e)
                       + slots * sizeof(fanout_queue_entry_t);

                q = ngx_slab_calloc_locked(shpool, size);
                if (q == NULL) {
                    return NGX_ERROR;
                }

                fanout_queue_init(&q->q, q->e, (uint32_t) tgt[j].queue,
                                  slots);

                if (old) {
                    /* what was learned goes on */
                    q->a = old->a;
                    q->learned = old->learned;

                } else {
                    q->a.seed = (uint32_t) ngx_random() | 1;
                }

                tgt[j].node->queue = q;

            } else {
                /* kept across the reload: its size follows the file */
                q = old;
                q->q.size = (uint32_t) tgt[j].queue;
            }

            if (tgt[j].inflight_auto && !q->learned) {
                fanout_adaptive_init(&conf, &q->a);
            }

            q->conf = conf;
            q->learned = tgt[j].inflight_auto;
        }
    }

    return NGX_OK;
}


/*
 * The target's state in the zone, when this configuration gives it a queue
 * or a learned limit: its node keeps an earlier configuration's across a
 * reload, which a target now without them must not follow.
 */

static ngx_inline ngx_http_fanout_admission_sh_t *
ngx_http_fanout_admission_state(ngx_http_fanout_target_t *t,
    ngx_http_fanout_stats_t *st)
{
    return (t->queue || t->inflight_auto) ? st->queue : NULL;
}


/* the queue's length, a gauge of the target's: set with the lock held */

static ngx_inline void
ngx_http_fanout_admission_length(ngx_http_fanout_admission_sh_t *sh,
    ngx_http_fanout_stats_t *st)
{
    st->counters[NGX_HTTP_FANOUT_TGT_QUEUE_LENGTH] = sh->q.waiting;
}


/* the cap now: max_inflight=N, or the limit learned */

static ngx_inline ngx_uint_t
ngx_http_fanout_admission_cap(ngx_http_fanout_admission_sh_t *sh,
    ngx_uint_t max)
{
    return sh->learned ? fanout_adaptive_limit(&sh->conf, &sh->a) : max;
}


ngx_int_t
ngx_http_fanout_admission_conf(ngx_conf_t *cf, ngx_http_fanout_target_t *t)
{
    if (t->queue == 0 && !t->inflight_auto) {
        return NGX_OK;
    }

    if (t->max_inflight == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"queue=\" needs \"max_inflight=\" (target "
                           "\"%V\")", &t->name);
        return NGX_ERROR;
    }

    return ngx_http_fanout_stats_zone_init(cf, ngx_http_fanout_admission_zone);
}


ngx_int_t
ngx_http_fanout_admission_init_process(ngx_cycle_t *cycle)
{
    ngx_http_fanout_main_conf_t  *fmcf;

    ngx_queue_init(&ngx_http_fanout_admission_waiting);

    ngx_http_fanout_admission_timer.handler = ngx_http_fanout_admission_poll;
    ngx_http_fanout_admission_timer.log = cycle->log;
    ngx_http_fanout_admission_timer.cancelable = 1;

    fmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_fanout_module);

    ngx_http_fanout_admission_shpool = fmcf ? fmcf->shpool : NULL;

    return NGX_OK;
}


/* slots free, calls waiting: granted and counted in flight, the lock held */

static ngx_uint_t
ngx_http_fanout_admission_grant(ngx_http_fanout_admission_sh_t *sh,
    ngx_http_fanout_stats_t *st, ngx_uint_t max)
{
    ngx_uint_t  n;

    n = 0;
    max = ngx_http_fanout_admission_cap(sh, max);

    while (st->inflight < max && fanout_queue_grant(&sh->q, sh->e) >= 0) {
        (void) ngx_atomic_fetch_add(&st->inflight, 1);
        /* a probe's pace (the limit at min= on purpose) is not the
         * model's: it starts a new busy period instead */
        fanout_pace_grant(&sh->pace, ngx_current_msec,
                          sh->q.waiting == 0 || sh->a.probing);
        n++;
    }

    ngx_http_fanout_admission_length(sh, st);

    return n;
}


/*
 * The queue's wait histogram: upper bounds in ms, the last bucket the
 * rest (NGX_HTTP_FANOUT_TGT_NWAITS buckets).
 */

static const ngx_msec_t  ngx_http_fanout_admission_waits[] = {
    1, 5, 10, 25, 50, 100, 250, 500, 1000
};


static void
ngx_http_fanout_admission_waited(ngx_http_fanout_stats_t *st, ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_FANOUT_TGT_NWAITS - 1; i++) {
        if (ms <= ngx_http_fanout_admission_waits[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&st->counters[NGX_HTTP_FANOUT_TGT_WAIT_MS],
                                ms);
    (void) ngx_atomic_fetch_add(&st->counters[NGX_HTTP_FANOUT_TGT_WAIT + i],
                                1);
}


/* CoDel's interval: queue_timeout=, else 100 ms */

static uint64_t
ngx_http_fanout_admission_interval(ngx_http_fanout_target_t *t)
{
    return t->queue_timeout != NGX_CONF_UNSET_MSEC ? t->queue_timeout : 100;
}


static void
ngx_http_fanout_admission_soon(void)
{
    ngx_event_t  *ev;

    ev = &ngx_http_fanout_admission_timer;

    if (ngx_queue_empty(&ngx_http_fanout_admission_waiting)) {
        return;
    }

    if (!ev->timer_set) {
        ngx_add_timer(ev, NGX_HTTP_FANOUT_ADMISSION_POLL);
    }
}


ngx_int_t
ngx_http_fanout_admission_ask(ngx_http_request_t *r,
    ngx_http_fanout_admission_ask_t *ask, void **wait,
    fanout_queue_reason_e *reason)
{
    int                               i, evicted;
    uint32_t                          n;
    uint32_t                          ahead;
    ngx_uint_t                        shed;
    uint64_t                          now, expire, p50, cap, turn;
    ngx_slab_pool_t                  *shpool;
    ngx_pool_cleanup_t               *cln;
    fanout_queue_reason_e             why;
    ngx_http_fanout_target_t         *t;
    ngx_http_fanout_stats_t          *st;
    ngx_http_fanout_admission_sh_t   *sh;
    ngx_http_fanout_admission_wait_t *w;

    t = ask->target;
    st = ask->st;
    *wait = NULL;
    *reason = FANOUT_QUEUE_FULL;

    sh = ngx_http_fanout_admission_state(t, st);
    shpool = ngx_http_fanout_admission_shpool;

    if (sh == NULL || shpool == NULL) {
        /* a fixed cap without a queue: a slot now, or none */
        if (ngx_atomic_fetch_add(&st->inflight, 1)
            >= (ngx_atomic_uint_t) t->max_inflight)
        {
            (void) ngx_atomic_fetch_add(&st->inflight, -1);
            return NGX_DECLINED;
        }

        return NGX_OK;
    }

    w = NULL;
    cln = NULL;

    if (t->queue) {
        /* made before the lock, in case it waits */
        w = ngx_pcalloc(r->pool, sizeof(ngx_http_fanout_admission_wait_t));
        cln = ngx_pool_cleanup_add(r->pool, 0);

        if (w == NULL || cln == NULL) {
            return NGX_ERROR;
        }
    }

    now = ngx_current_msec;

    ngx_shmtx_lock(&shpool->mutex);

    if (st->inflight < ngx_http_fanout_admission_cap(sh, t->max_inflight)
        && sh->q.waiting == 0)
    {
        (void) ngx_atomic_fetch_add(&st->inflight, 1);
        ngx_shmtx_unlock(&shpool->mutex);

        if (cln) {
            cln->handler = NULL;
        }

        return NGX_OK;
    }

    if (t->queue == 0) {
        /* the limit learned, no queue: none now */
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_DECLINED;
    }

    /*
     * It waits until its queue_timeout= or, if sooner, until its deadline
     * less a typical call (the target's recent p50): a call granted later
     * would miss the deadline anyway.
     */

    p50 = fanout_window_quantile(&st->window, now, NGX_HTTP_FANOUT_WINDOW_SLOT,
                                 500, &n);

    if (n < NGX_HTTP_FANOUT_HEDGE_SAMPLES) {
        p50 = 0;
    }

    why = FANOUT_QUEUE_DEADLINE;
    expire = now + (ask->left > p50 ? ask->left - p50 : 0);

    if (t->queue_timeout != NGX_CONF_UNSET_MSEC
        && now + t->queue_timeout <= expire)
    {
        why = FANOUT_QUEUE_TIMEOUT;
        expire = now + t->queue_timeout;
    }

    if (expire <= now) {
        fanout_pace_shed(&sh->pace, now);
        ngx_shmtx_unlock(&shpool->mutex);

        (void) ngx_atomic_fetch_add(
                   &st->counters[NGX_HTTP_FANOUT_TGT_SHED_DEADLINE], 1);
        *reason = FANOUT_QUEUE_DEADLINE;
        cln->handler = NULL;
        return NGX_DECLINED;
    }

    /*
     * Its turn as the queue moves now: behind those served before it, a
     * grant every so often (the pace measured while calls waited, else a
     * typical call over the cap).  A turn after expire is not waited for:
     * it is shed now, in microseconds rather than after its
     * queue_timeout, for the same answer.  The first in line always
     * waits.
     */
    ahead = fanout_queue_position(&sh->q, sh->e, (uint32_t) ask->priority,
                                  ask->key);
    turn = fanout_pace_wait(&sh->pace, ahead);
    cap = ngx_http_fanout_admission_cap(sh, t->max_inflight);

    if (turn == 0 && p50 && cap) {
        turn = (ahead + 1) * p50 / cap;
    }

    /*
     * Shed now: a standing queue's flow that has a call waiting already
     * (CoDel's rule, see fanout_pace_standing(): during a probe too, whose
     * queue would only time out), or a turn past expire (not during a
     * probe: its pace is not the model's).
     */
    shed = (fanout_pace_standing(&sh->pace, sh->q.waiting, now,
                                 ngx_http_fanout_admission_interval(t))
            && fanout_queue_has_key(&sh->q, sh->e, (uint32_t) ask->priority,
                                    ask->key))
           || (!sh->a.probing && now + turn > expire);

    if (ahead && shed) {
        fanout_pace_shed(&sh->pace, now);

        ngx_shmtx_unlock(&shpool->mutex);

        /* SHED_TIMEOUT or _DEADLINE, in the reasons' order */
        (void) ngx_atomic_fetch_add(&st->counters[
                   NGX_HTTP_FANOUT_TGT_SHED_FULL - FANOUT_QUEUE_FULL + why],
                   1);
        *reason = why;
        cln->handler = NULL;
        return NGX_DECLINED;
    }

    i = fanout_queue_push(&sh->q, sh->e, (uint32_t) ask->priority, ask->key,
                          (uint32_t) ngx_pid, now, expire, why, &evicted);

    if (i >= 0) {
        w->seq = sh->e[i].seq;
        w->since = now;

    } else {
        fanout_pace_shed(&sh->pace, now);
    }

    ngx_http_fanout_admission_length(sh, st);

    ngx_shmtx_unlock(&shpool->mutex);

    /* an entry evicted: its owner finds it shed at its next look */

    if (i < 0) {
        (void) ngx_atomic_fetch_add(
                   &st->counters[NGX_HTTP_FANOUT_TGT_SHED_FULL], 1);
        cln->handler = NULL;
        return NGX_DECLINED;
    }

    (void) ngx_atomic_fetch_add(&st->counters[NGX_HTTP_FANOUT_TGT_QUEUED], 1);

    w->sh = sh;
    w->st = st;
    w->max = t->max_inflight;
    w->entry = i;
    w->handler = ask->handler;
    w->data = ask->data;
    w->request = r;

    cln->handler = ngx_http_fanout_admission_cleanup;
    cln->data = w;

    ngx_queue_insert_tail(&ngx_http_fanout_admission_waiting, &w->link);
    ngx_http_fanout_admission_soon();

    *wait = w;

    return NGX_AGAIN;
}


/* a slot given back: to the next call waiting, in any worker */

void
ngx_http_fanout_admission_release(ngx_http_fanout_target_t *t,
    ngx_http_fanout_stats_t *st)
{
    ngx_uint_t                       n;
    ngx_slab_pool_t                 *shpool;
    ngx_http_fanout_admission_sh_t  *sh;

    sh = ngx_http_fanout_admission_state(t, st);
    shpool = ngx_http_fanout_admission_shpool;

    if (sh == NULL || shpool == NULL) {
        (void) ngx_atomic_fetch_add(&st->inflight, -1);
        return;
    }

    ngx_shmtx_lock(&shpool->mutex);

    if (st->inflight) {
        (void) ngx_atomic_fetch_add(&st->inflight, -1);
    }

    n = ngx_http_fanout_admission_grant(sh, st, t->max_inflight);

    ngx_shmtx_unlock(&shpool->mutex);

    if (n && !ngx_queue_empty(&ngx_http_fanout_admission_waiting)) {
        /* maybe one of ours: look now rather than in a millisecond */
        if (ngx_http_fanout_admission_timer.timer_set) {
            ngx_del_timer(&ngx_http_fanout_admission_timer);
        }

        ngx_post_event(&ngx_http_fanout_admission_timer, &ngx_posted_events);
    }
}


/*
 * The entry given back, the lock held: a slot granted to it and not taken
 * goes to the next.
 */

static void
ngx_http_fanout_admission_drop(ngx_http_fanout_admission_wait_t *w)
{
    fanout_queue_entry_t  *e;

    e = &w->sh->e[w->entry];

    if (e->seq != w->seq) {
        return;
    }

    if (e->state == FANOUT_QUEUE_GRANTED) {
        if (w->st->inflight) {
            (void) ngx_atomic_fetch_add(&w->st->inflight, -1);
        }

        fanout_queue_release(&w->sh->q, w->sh->e, (int) w->entry);
        (void) ngx_http_fanout_admission_grant(w->sh, w->st, w->max);
        return;
    }

    fanout_queue_release(&w->sh->q, w->sh->e, (int) w->entry);
    ngx_http_fanout_admission_length(w->sh, w->st);
}


/* the call no longer waits: the answer was decided, or the client left */

void
ngx_http_fanout_admission_leave(void *wait)
{
    ngx_http_fanout_admission_wait_t *w = wait;

    if (w == NULL || w->over) {
        return;
    }

    w->over = 1;
    ngx_queue_remove(&w->link);

    ngx_shmtx_lock(&ngx_http_fanout_admission_shpool->mutex);
    ngx_http_fanout_admission_drop(w);
    ngx_shmtx_unlock(&ngx_http_fanout_admission_shpool->mutex);
}


static void
ngx_http_fanout_admission_cleanup(void *data)
{
    ngx_http_fanout_admission_leave(data);
}


/* this worker's calls that wait: granted ones start, shed ones answer */

static void
ngx_http_fanout_admission_poll(ngx_event_t *ev)
{
    ngx_queue_t                        *q, *next, ready;
    fanout_queue_entry_t               *e;
    ngx_http_fanout_admission_wait_t   *w;

    if (ngx_queue_empty(&ngx_http_fanout_admission_waiting)) {
        return;
    }

    ngx_queue_init(&ready);

    ngx_shmtx_lock(&ngx_http_fanout_admission_shpool->mutex);

    for (q = ngx_queue_head(&ngx_http_fanout_admission_waiting);
         q != ngx_queue_sentinel(&ngx_http_fanout_admission_waiting);
         q = next)
    {
        next = ngx_queue_next(q);
        w = ngx_queue_data(q, ngx_http_fanout_admission_wait_t, link);

        /* once a millisecond per queue, whichever worker looks */
        if (w->sh->expired != ngx_current_msec) {
            w->sh->expired = ngx_current_msec;

            /* their owners answer them at their next look */
            if (fanout_queue_expire(&w->sh->q, w->sh->e, ngx_current_msec)) {
                fanout_pace_shed(&w->sh->pace, ngx_current_msec);
            }
        }

        e = &w->sh->e[w->entry];

        if (e->seq != w->seq || e->state == FANOUT_QUEUE_WAITING) {
            continue;
        }

        /* granted (its slot counted) or shed: the entry is given back */
        w->over = 1;
        w->reason = (e->state == FANOUT_QUEUE_GRANTED)
                    ? FANOUT_QUEUE_OK : (fanout_queue_reason_e) e->reason;
        fanout_queue_release(&w->sh->q, w->sh->e, (int) w->entry);
        ngx_http_fanout_admission_length(w->sh, w->st);

        ngx_queue_remove(q);
        ngx_queue_insert_tail(&ready, q);
    }

    ngx_shmtx_unlock(&ngx_http_fanout_admission_shpool->mutex);

    while (!ngx_queue_empty(&ready)) {
        q = ngx_queue_head(&ready);
        ngx_queue_remove(q);
        w = ngx_queue_data(q, ngx_http_fanout_admission_wait_t, link);

        ngx_http_fanout_admission_waited(w->st, ngx_current_msec - w->since);

        if (w->reason != FANOUT_QUEUE_OK) {
            /* SHED_FULL, _TIMEOUT, _DEADLINE, _EVICTED: in the reasons'
             * order */
            (void) ngx_atomic_fetch_add(&w->st->counters[
                       NGX_HTTP_FANOUT_TGT_SHED_FULL - FANOUT_QUEUE_FULL
                       + w->reason], 1);
        }

        /* may end the request: w is not touched after */
        w->handler(w->data, w->reason);
    }

    ngx_http_fanout_admission_soon();
}


/*
 * max_inflight=auto: a call's attempt came back (or timed out): its
 * latency, and whether the model said it was overloaded, for the limit;
 * a limit that grew lets calls waiting go.
 */

void
ngx_http_fanout_admission_sample(ngx_http_fanout_target_t *t,
    ngx_http_fanout_stats_t *st, ngx_msec_t latency, ngx_uint_t status)
{
    ngx_uint_t                       n;
    ngx_slab_pool_t                 *shpool;
    fanout_adaptive_t               *a;
    ngx_http_fanout_admission_sh_t  *sh;

    sh = ngx_http_fanout_admission_state(t, st);
    shpool = ngx_http_fanout_admission_shpool;

    if (sh == NULL || shpool == NULL || !sh->learned) {
        return;
    }

    a = &sh->a;
    n = 0;

    ngx_shmtx_lock(&shpool->mutex);

    if (fanout_adaptive_sample(&sh->conf, a, ngx_current_msec,
                               (uint64_t) latency * 1000,
                               (uint32_t) st->inflight,
                               status == NGX_HTTP_TOO_MANY_REQUESTS
                               || status == NGX_HTTP_SERVICE_UNAVAILABLE
                               || status == NGX_HTTP_GATEWAY_TIME_OUT))
    {
        /* a window judged: what status and Prometheus show */
        st->counters[NGX_HTTP_FANOUT_TGT_LIMIT] =
                                   fanout_adaptive_limit(&sh->conf, a);
        st->counters[NGX_HTTP_FANOUT_TGT_MIN_RTT] =
                                   (ngx_atomic_uint_t) (a->min_rtt_us / 1000);
        st->counters[NGX_HTTP_FANOUT_TGT_GRADIENT] =
                                   (ngx_atomic_uint_t) (a->gradient * 100);
        st->counters[NGX_HTTP_FANOUT_TGT_PROBES] = a->probes;

        n = ngx_http_fanout_admission_grant(sh, st, t->max_inflight);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (n && !ngx_queue_empty(&ngx_http_fanout_admission_waiting)) {
        if (ngx_http_fanout_admission_timer.timer_set) {
            ngx_del_timer(&ngx_http_fanout_admission_timer);
        }

        ngx_post_event(&ngx_http_fanout_admission_timer, &ngx_posted_events);
    }
}


/* Retry-After for a call shed: the time its queue needs to drain */

ngx_uint_t
ngx_http_fanout_admission_retry_after(ngx_http_fanout_target_t *t,
    ngx_http_fanout_stats_t *st)
{
    uint32_t                         n, waiting, cap;
    uint64_t                         p50;
    ngx_slab_pool_t                 *shpool;
    ngx_http_fanout_admission_sh_t  *sh;

    sh = ngx_http_fanout_admission_state(t, st);
    shpool = ngx_http_fanout_admission_shpool;

    if (sh == NULL || shpool == NULL) {
        return 1;
    }

    ngx_shmtx_lock(&shpool->mutex);

    waiting = sh->q.waiting;
    cap = (uint32_t) ngx_http_fanout_admission_cap(sh, t->max_inflight);
    p50 = fanout_window_quantile(&st->window, ngx_current_msec,
                                 NGX_HTTP_FANOUT_WINDOW_SLOT, 500, &n);

    ngx_shmtx_unlock(&shpool->mutex);

    return fanout_queue_retry_after(waiting, cap, p50);
}
