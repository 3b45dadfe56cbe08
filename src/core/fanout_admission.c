/*
 * Admission control: the limit learned from latency and the queue of
 * calls waiting for a slot (fanout_admission.h).
 */

#include <math.h>
#include <string.h>

#include "fanout_admission.h"


#define FANOUT_ADAPTIVE_DECREASE  0.9       /* a window with 429/503 */
#define FANOUT_ADAPTIVE_FLOOR     3         /* windows at min=: probe */


int
fanout_adaptive_conf(fanout_adaptive_conf_t *c)
{
    if (c->min_limit == 0) {
        c->min_limit = 1;
    }

    if (c->max_limit == 0) {
        c->max_limit = 1000;
    }

    if (c->min_limit > c->max_limit) {
        return -1;
    }

    if (c->initial == 0) {
        c->initial = 10;
    }

    if (c->initial < c->min_limit) {
        c->initial = c->min_limit;
    }

    if (c->initial > c->max_limit) {
        c->initial = c->max_limit;
    }

    if (c->window_samples == 0) {
        c->window_samples = 10;
    }

    if (c->window_ms == 0) {
        c->window_ms = 100;
    }

    if (c->probe_ms == 0) {
        c->probe_ms = 30000;
    }

    if (c->probe_samples == 0) {
        c->probe_samples = 5;
    }

    if (c->buffer_pct == 0) {
        c->buffer_pct = 25;
    }

    return 0;
}


void
fanout_adaptive_init(const fanout_adaptive_conf_t *c, fanout_adaptive_t *a)
{
    uint32_t  seed;

    seed = a->seed;
    memset(a, 0, sizeof(fanout_adaptive_t));

    a->seed = seed ? seed : 2463534242u;
    a->limit = c->initial;
    a->gradient = 1.0;
}


static double
fanout_adaptive_clamp(const fanout_adaptive_conf_t *c, double limit)
{
    if (!(limit >= c->min_limit)) {         /* a NaN too */
        return c->min_limit;
    }

    if (limit > c->max_limit) {
        return c->max_limit;
    }

    return limit;
}


/* the next probe: probe_ms, give or take 15% (xorshift32) */

static void
fanout_adaptive_next_probe(const fanout_adaptive_conf_t *c,
    fanout_adaptive_t *a, uint64_t now_ms)
{
    uint64_t  jitter;

    a->seed ^= a->seed << 13;
    a->seed ^= a->seed >> 17;
    a->seed ^= a->seed << 5;

    jitter = c->probe_ms * 3 / 10;
    a->next_probe_ms = now_ms + c->probe_ms - jitter / 2
                       + (jitter ? a->seed % (jitter + 1) : 0);
}


static void
fanout_adaptive_reset(fanout_adaptive_t *a)
{
    a->window_sum_us = 0;
    a->window_n = 0;
    a->window_max_inflight = 0;
    a->window_overloaded = 0;
}


int
fanout_adaptive_sample(const fanout_adaptive_conf_t *c, fanout_adaptive_t *a,
    uint64_t now_ms, uint64_t rtt_us, uint32_t inflight, int overloaded)
{
    double  shortrtt, gradient;

    /* a latency of an hour at most: the sums cannot overflow */
    if (rtt_us > 3600000000ULL) {
        rtt_us = 3600000000ULL;
    }

    if (rtt_us == 0) {
        rtt_us = 1;
    }

    if (a->probing) {
        /* only calls made at the probe's limit say the unloaded latency */
        if (inflight > c->min_limit) {
            return 0;
        }

        a->window_sum_us += rtt_us;

        if (++a->window_n < c->probe_samples) {
            return 0;
        }

        a->min_rtt_us = (double) a->window_sum_us / a->window_n;
        a->probing = 0;
        a->limit = a->saved;
        a->at_floor = 0;
        fanout_adaptive_next_probe(c, a, now_ms);
        fanout_adaptive_reset(a);

        return 1;
    }

    if (a->window_n == 0) {
        a->window_start_ms = now_ms;
    }

    a->window_sum_us += rtt_us;
    a->window_n++;
    a->window_overloaded += (overloaded != 0);

    if (inflight > a->window_max_inflight) {
        a->window_max_inflight = inflight;
    }

    if (a->window_n < c->window_samples
        || now_ms - a->window_start_ms < c->window_ms)
    {
        return 0;
    }

    shortrtt = (double) a->window_sum_us / a->window_n;
    overloaded = (a->window_overloaded != 0);
    inflight = a->window_max_inflight;

    a->short_rtt_us = shortrtt;
    a->updates++;

    fanout_adaptive_reset(a);

    if (a->min_rtt_us == 0 || now_ms >= a->next_probe_ms
        || a->at_floor >= FANOUT_ADAPTIVE_FLOOR)
    {
        /* min_rtt unknown, due, or stale (the limit sits at min=) */
        a->probing = 1;
        a->probes++;
        a->saved = a->limit;

        return 1;
    }

    if (overloaded) {
        /* the model says so itself */
        a->gradient = FANOUT_ADAPTIVE_DECREASE;
        a->limit = fanout_adaptive_clamp(c,
                                   a->limit * FANOUT_ADAPTIVE_DECREASE);

    } else if (inflight * 2 >= a->limit) {
        /* used enough to judge: not held back by the demand */
        gradient = a->min_rtt_us * (1.0 + c->buffer_pct / 100.0) / shortrtt;
        gradient = gradient < 0.5 ? 0.5 : (gradient > 2.0 ? 2.0 : gradient);

        a->gradient = gradient;
        a->limit = fanout_adaptive_clamp(c, a->limit * gradient
                                            + sqrt(a->limit));
    }

    a->at_floor = (a->limit <= c->min_limit) ? a->at_floor + 1 : 0;

    return 1;
}


uint32_t
fanout_adaptive_limit(const fanout_adaptive_conf_t *c,
    const fanout_adaptive_t *a)
{
    return a->probing ? c->min_limit
                      : (uint32_t) fanout_adaptive_clamp(c, a->limit);
}


/* --- the queue */

void
fanout_queue_init(fanout_queue_t *q, fanout_queue_entry_t *e, uint32_t size,
    uint32_t slots)
{
    memset(q, 0, sizeof(fanout_queue_t));
    memset(e, 0, slots * sizeof(fanout_queue_entry_t));

    q->size = size;
    q->slots = slots;
}


void
fanout_pace_grant(fanout_pace_t *p, uint64_t now_ms, int empty)
{
    uint64_t  gap;

    if (p->last_ms && now_ms >= p->last_ms) {
        gap = (now_ms - p->last_ms) * 1024;
        p->gap = p->gap ? p->gap - p->gap / 16 + gap / 16 : gap;
    }

    /* a queue that ran empty: the next grant starts a new busy period */
    p->last_ms = empty ? 0 : now_ms;
}


uint64_t
fanout_pace_wait(const fanout_pace_t *p, uint32_t ahead)
{
    return ((uint64_t) ahead + 1) * p->gap / 1024;
}


int
fanout_pace_standing(fanout_pace_t *p, uint32_t waiting, uint64_t now_ms,
    uint64_t interval_ms)
{
    p->interval_ms = interval_ms;

    if (waiting == 0 || p->busy_ms == 0 || now_ms < p->busy_ms) {
        /* the queue empty: a new busy period starts with this call */
        p->busy_ms = now_ms ? now_ms : 1;

    } else if (now_ms - p->busy_ms >= interval_ms
               && p->shed_ms >= p->busy_ms)
    {
        p->standing_ms = now_ms;
    }

    return p->standing_ms && now_ms < p->standing_ms + interval_ms;
}


void
fanout_pace_shed(fanout_pace_t *p, uint64_t now_ms)
{
    p->shed_ms = now_ms ? now_ms : 1;

    if (p->standing_ms && now_ms < p->standing_ms + p->interval_ms
        && now_ms > p->standing_ms)
    {
        p->standing_ms = now_ms;
    }
}


uint32_t
fanout_queue_position(const fanout_queue_t *q,
    const fanout_queue_entry_t *e, uint32_t priority, uint32_t key)
{
    uint32_t  i, n;
    uint64_t  tag;

    /* the tag push() would give it: after its key's last one */
    tag = q->vtime;

    for (i = 0; i < q->slots; i++) {
        if (e[i].state == FANOUT_QUEUE_WAITING && e[i].key == key
            && e[i].tag + 1 > tag)
        {
            tag = e[i].tag + 1;
        }
    }

    n = 0;

    for (i = 0; i < q->slots; i++) {
        if (e[i].state == FANOUT_QUEUE_WAITING
            && (e[i].priority < priority
                || (e[i].priority == priority && e[i].tag <= tag)))
        {
            n++;
        }
    }

    return n;
}


int
fanout_queue_has_key(const fanout_queue_t *q, const fanout_queue_entry_t *e,
    uint32_t priority, uint32_t key)
{
    uint32_t  i;

    for (i = 0; i < q->slots; i++) {
        if (e[i].state == FANOUT_QUEUE_WAITING && e[i].key == key
            && e[i].priority <= priority)
        {
            return 1;
        }
    }

    return 0;
}


int
fanout_queue_push(fanout_queue_t *q, fanout_queue_entry_t *e,
    uint32_t priority, uint32_t key, uint32_t owner, uint64_t now_ms,
    uint64_t expire_ms, fanout_queue_reason_e expire_reason, int *evicted)
{
    int       i, free, victim, same;
    uint64_t  tag;

    *evicted = -1;
    free = -1;
    victim = -1;
    same = -1;

    /* one pass: a free entry, the entry to evict, the key's last tag */

    for (i = 0; i < (int) q->slots; i++) {

        if (e[i].state == FANOUT_QUEUE_FREE) {
            if (free < 0) {
                free = i;
            }

            continue;
        }

        if (e[i].state != FANOUT_QUEUE_WAITING) {
            continue;
        }

        if (victim < 0 || e[i].priority > e[victim].priority
            || (e[i].priority == e[victim].priority
                && e[i].seq > e[victim].seq))
        {
            victim = i;
        }

        if (e[i].key == key && (same < 0 || e[i].tag > e[same].tag)) {
            same = i;
        }
    }

    if (free < 0) {
        /* every entry is taken, waiting or not yet given back */
        return -1;
    }

    if (q->waiting >= q->size) {
        if (victim < 0 || e[victim].priority <= priority) {
            return -1;
        }

        e[victim].state = FANOUT_QUEUE_SHED;
        e[victim].reason = FANOUT_QUEUE_EVICTED;
        q->waiting--;
        *evicted = victim;

        if (same == victim) {
            /* its tag is gone with it: the key's previous one is not known
             * without another pass, and the start tag is fair enough */
            same = -1;
        }
    }

    /* start-time fair queuing: a key's entries a tag apart, from now on */
    tag = q->vtime;

    if (same >= 0 && e[same].tag + 1 > tag) {
        tag = e[same].tag + 1;
    }

    e[free].state = FANOUT_QUEUE_WAITING;
    e[free].reason = FANOUT_QUEUE_OK;
    e[free].priority = priority;
    e[free].key = key;
    e[free].owner = owner;
    e[free].tag = tag;
    e[free].seq = ++q->seq;
    e[free].since_ms = now_ms;
    e[free].expire_ms = expire_ms;
    e[free].expire_reason = expire_reason;

    q->waiting++;

    return free;
}


int
fanout_queue_grant(fanout_queue_t *q, fanout_queue_entry_t *e)
{
    int  i, best;

    if (q->waiting == 0) {
        return -1;
    }

    best = -1;

    for (i = 0; i < (int) q->slots; i++) {

        if (e[i].state != FANOUT_QUEUE_WAITING) {
            continue;
        }

        if (best < 0 || e[i].priority < e[best].priority
            || (e[i].priority == e[best].priority
                && (e[i].tag < e[best].tag
                    || (e[i].tag == e[best].tag && e[i].seq < e[best].seq))))
        {
            best = i;
        }
    }

    if (best < 0) {
        /* the count was wrong: made right */
        q->waiting = 0;
        return -1;
    }

    e[best].state = FANOUT_QUEUE_GRANTED;
    q->waiting--;

    if (e[best].tag > q->vtime) {
        q->vtime = e[best].tag;
    }

    return best;
}


uint32_t
fanout_queue_expire(fanout_queue_t *q, fanout_queue_entry_t *e,
    uint64_t now_ms)
{
    uint32_t  i, n;

    n = 0;

    for (i = 0; q->waiting && i < q->slots; i++) {
        if (e[i].state == FANOUT_QUEUE_WAITING && e[i].expire_ms <= now_ms) {
            e[i].state = FANOUT_QUEUE_SHED;
            e[i].reason = e[i].expire_reason;
            q->waiting--;
            n++;
        }
    }

    return n;
}


void
fanout_queue_release(fanout_queue_t *q, fanout_queue_entry_t *e, int i)
{
    if (i < 0 || (uint32_t) i >= q->slots) {
        return;
    }

    if (e[i].state == FANOUT_QUEUE_WAITING) {
        /* it left while it waited */
        q->waiting--;
    }

    e[i].state = FANOUT_QUEUE_FREE;
}


uint32_t
fanout_queue_retry_after(uint32_t waiting, uint32_t limit, uint64_t p50_ms)
{
    uint64_t  ms;

    if (limit == 0) {
        limit = 1;
    }

    if (p50_ms > 60000) {
        p50_ms = 60000;
    }

    /* the queue drains a limit's worth each typical call */
    ms = ((uint64_t) waiting / limit + 1) * p50_ms;

    if (ms > 3600000) {
        ms = 3600000;
    }

    return ms < 1000 ? 1 : (uint32_t) ((ms + 999) / 1000);
}


const char *
fanout_queue_reason_name(fanout_queue_reason_e reason)
{
    static const char  *names[] = {
        "ok", "full", "timeout", "deadline", "evicted"
    };

    return (unsigned) reason < sizeof(names) / sizeof(names[0])
           ? names[reason] : "unknown";
}
