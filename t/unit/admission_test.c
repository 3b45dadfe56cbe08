/*
 * Unit tests of fanout_admission.c: the limit learned from latency against
 * simulated models (a known number of slots, a FIFO inside, slowed down
 * and given more slots on the way), and the queue: priorities, FIFO,
 * fairness between keys, eviction, expiry, release.
 */

#include <stdio.h>

#include "fanout_admission.h"
#include "tap.h"


/*
 * A model of `slots` slots taking `service_ms` a call, queueing the rest
 * inside (FIFO): a call made with `inflight` others waits its turn.  The
 * demand always fills the limit (an overload), or stays at `demand`.
 */

static uint32_t
simulate(const fanout_adaptive_conf_t *c, fanout_adaptive_t *a,
    uint64_t *now, uint32_t windows, uint32_t slots, double service_ms,
    uint32_t demand)
{
    uint32_t  w, i, inflight;
    double    rtt_ms;

    for (w = 0; w < windows; w++) {
        inflight = fanout_adaptive_limit(c, a);

        if (demand && demand < inflight) {
            inflight = demand;
        }

        rtt_ms = service_ms * (inflight > slots ? (double) inflight / slots
                                                : 1.0);

        for (i = 0; i < c->window_samples; i++) {
            *now += c->window_ms / c->window_samples;
            (void) fanout_adaptive_sample(c, a, *now,
                                          (uint64_t) (rtt_ms * 1000),
                                          inflight, 0);
        }
    }

    return fanout_adaptive_limit(c, a);
}


static void
test_limit(void)
{
    char                    name[128];
    uint64_t                now;
    uint32_t                l, before;
    fanout_adaptive_t       a;
    fanout_adaptive_conf_t  c;

    memset(&c, 0, sizeof(c));
    ok(fanout_adaptive_conf(&c) == 0 && c.min_limit == 1
       && c.max_limit == 1000 && c.initial == 10 && c.window_samples == 10
       && c.window_ms == 100 && c.probe_ms == 30000 && c.probe_samples == 5
       && c.buffer_pct == 25,
       "defaults");

    memset(&c, 0, sizeof(c));
    c.min_limit = 10;
    c.max_limit = 5;
    ok(fanout_adaptive_conf(&c) != 0, "min above max refused");

    /* a GPU of 8 slots, 20 ms a call, overloaded */
    memset(&c, 0, sizeof(c));
    (void) fanout_adaptive_conf(&c);
    fanout_adaptive_init(&c, &a);
    now = 1000;

    l = simulate(&c, &a, &now, 300, 8, 20, 0);
    snprintf(name, sizeof(name), "8 slots, overloaded: the limit settles "
             "near them in 30 s (%u)", l);
    ok(l >= 8 && l <= 20, name);
    ok(a.gradient <= 1.0 && a.gradient >= 0.5, "the gradient in [0.5, 1]");

    /* the model slowed down 2x: the limit settles again within 5 s */
    l = simulate(&c, &a, &now, 50, 8, 40, 0);
    snprintf(name, sizeof(name), "slowed 2x: settled within 5 s (%u)", l);
    ok(l >= 4 && l <= 24, name);

    /* twice the slots (a GPU added): the limit grows to use them */
    l = simulate(&c, &a, &now, 300, 16, 40, 0);
    snprintf(name, sizeof(name), "16 slots: the limit grows to them (%u)",
             l);
    ok(l >= 14 && l <= 40, name);

    /* back to 4 slots: it comes down */
    l = simulate(&c, &a, &now, 300, 4, 40, 0);
    snprintf(name, sizeof(name), "4 slots: the limit comes down (%u)", l);
    ok(l >= 4 && l <= 12, name);

    /* demand below the limit: not judged, the limit stays */
    (void) simulate(&c, &a, &now, 3, 4, 40, 1);
    before = (uint32_t) a.limit;
    l = simulate(&c, &a, &now, 100, 4, 40, 1);
    snprintf(name, sizeof(name), "a demand of 1 call: the limit is not "
             "lowered nor raised (%u, %u)", before, (uint32_t) a.limit);
    ok((uint32_t) a.limit == before, name);

    /* 429 or 503: a tenth off (after the first probe) */
    fanout_adaptive_init(&c, &a);
    now += 1000;

    for (l = 0; l < 3 * c.window_samples; l++) {
        now += 10;
        (void) fanout_adaptive_sample(&c, &a, now, 20000, 1, 0);
    }

    ok(a.probes == 1 && a.probing == 0 && a.min_rtt_us == 20000,
       "the first window probes: min_rtt 20 ms");

    /* to the end of the window under way, then a window with a 503 in it;
     * 10 calls in flight, the same latency: nothing else would move it */
    do {
        now += 10;
    } while (fanout_adaptive_sample(&c, &a, now, 20000, 1, 0) == 0);

    l = 0;

    do {
        now += 10;
    } while (fanout_adaptive_sample(&c, &a, now, 20000, 10, ++l == 3) == 0);

    ok(fanout_adaptive_limit(&c, &a) == 9, "a window with a 503: 10 -> 9");

    /* bounds */
    memset(&c, 0, sizeof(c));
    c.min_limit = 5;
    c.max_limit = 6;
    (void) fanout_adaptive_conf(&c);
    ok(c.initial == 6, "the initial limit within max");
    fanout_adaptive_init(&c, &a);
    now = 1000;
    l = simulate(&c, &a, &now, 200, 100, 20, 0);
    ok(l == 6, "max= holds against a model of 100 slots");
    l = simulate(&c, &a, &now, 200, 1, 500, 0);
    snprintf(name, sizeof(name), "min= holds against a model of 1 slot (%u)",
             l);
    ok(l >= 5 && l <= 6, name);

    /* no window ends before window_ms, however many calls */
    memset(&c, 0, sizeof(c));
    (void) fanout_adaptive_conf(&c);
    fanout_adaptive_init(&c, &a);

    for (l = 0; l < 1000; l++) {
        ok(fanout_adaptive_sample(&c, &a, 5000, 1000, 10, 0) == 0 || l == 0,
           l == 999 ? "1000 calls in one millisecond: no window judged"
                    : "in one millisecond");
        if (l < 999) {
            tap_n--;
        }
    }

    ok(fanout_adaptive_sample(&c, &a, 5100, 1000, 10, 0) == 1,
       "then one after window_ms ends it");

    /* absurd latencies do not overflow nor poison the limit */
    fanout_adaptive_init(&c, &a);
    now = 1000;

    for (l = 0; l < 100; l++) {
        now += 10;
        (void) fanout_adaptive_sample(&c, &a, now, UINT64_MAX, 10, 0);
        now += 10;
        (void) fanout_adaptive_sample(&c, &a, now, 0, 10, 0);
    }

    l = fanout_adaptive_limit(&c, &a);
    ok(l >= c.min_limit && l <= c.max_limit, "0 and UINT64_MAX latencies: "
       "the limit stays within bounds");
}


static void
test_queue(void)
{
    int                    i, ev, order[16], n;
    char                   got[64], *p;
    fanout_queue_t         q;
    fanout_queue_entry_t   e[16];

    /* priority, then arrival */
    fanout_queue_init(&q, e, 8, 16);
    (void) fanout_queue_push(&q, e, 5, 1, 100, 0, 1000, FANOUT_QUEUE_TIMEOUT,
                             &ev);
    (void) fanout_queue_push(&q, e, 1, 1, 101, 0, 1000, FANOUT_QUEUE_TIMEOUT,
                             &ev);
    (void) fanout_queue_push(&q, e, 5, 1, 102, 0, 1000, FANOUT_QUEUE_TIMEOUT,
                             &ev);
    (void) fanout_queue_push(&q, e, 1, 1, 103, 0, 1000, FANOUT_QUEUE_TIMEOUT,
                             &ev);
    ok(q.waiting == 4, "four wait");

    p = got;
    while ((i = fanout_queue_grant(&q, e)) >= 0) {
        p += sprintf(p, "%u ", e[i].owner);
        fanout_queue_release(&q, e, i);
    }

    is_str(got, "101 103 100 102 ", "lower priority values first, then FIFO");
    ok(q.waiting == 0, "none waits");

    /* fairness: tenant A floods (10), tenant B sends 2, then C 1 */
    fanout_queue_init(&q, e, 16, 16);

    for (i = 0; i < 10; i++) {
        (void) fanout_queue_push(&q, e, 0, 0xA, 'a', 0, 1000,
                                 FANOUT_QUEUE_TIMEOUT, &ev);
    }

    (void) fanout_queue_push(&q, e, 0, 0xB, 'b', 0, 1000,
                             FANOUT_QUEUE_TIMEOUT, &ev);
    (void) fanout_queue_push(&q, e, 0, 0xB, 'b', 0, 1000,
                             FANOUT_QUEUE_TIMEOUT, &ev);

    n = 0;
    p = got;

    for (n = 0; n < 4; n++) {
        i = fanout_queue_grant(&q, e);
        p += sprintf(p, "%c", (char) e[i].owner);
        fanout_queue_release(&q, e, i);
    }

    /* where a newcomer would be: C first, A behind its own, a high
     * priority before all, a low one after all */
    ok(fanout_queue_position(&q, e, 0, 0xC) == 0,
       "position: a new tenant goes first");
    ok(fanout_queue_position(&q, e, 0, 0xA) == 8,
       "position: the flooding tenant behind its 8 waiting");
    ok(fanout_queue_position(&q, e, 0, 0xB) == 0,
       "position: B, its calls served, as new");
    ok(fanout_queue_position(&q, e, 9, 0xC) == 8,
       "position: a lower priority behind every one");

    /* C arrives now: it is served before A's and B's later ones */
    (void) fanout_queue_push(&q, e, 0, 0xC, 'c', 0, 1000,
                             FANOUT_QUEUE_TIMEOUT, &ev);
    ok(fanout_queue_position(&q, e, 0, 0xD) == 1,
       "position: D, new too, after C");

    while ((i = fanout_queue_grant(&q, e)) >= 0) {
        p += sprintf(p, "%c", (char) e[i].owner);
        fanout_queue_release(&q, e, i);
    }

    is_str(got, "abab" "caaaaaaaa", "one tenant's flood does not starve "
           "the others: turns between keys");

    /* full: a higher priority evicts the newest of the lowest */
    fanout_queue_init(&q, e, 3, 6);
    order[0] = fanout_queue_push(&q, e, 5, 1, 1, 0, 1000,
                                 FANOUT_QUEUE_TIMEOUT, &ev);
    order[1] = fanout_queue_push(&q, e, 9, 1, 2, 0, 1000,
                                 FANOUT_QUEUE_TIMEOUT, &ev);
    order[2] = fanout_queue_push(&q, e, 9, 1, 3, 0, 1000,
                                 FANOUT_QUEUE_TIMEOUT, &ev);
    ok(fanout_queue_push(&q, e, 9, 1, 4, 0, 1000, FANOUT_QUEUE_TIMEOUT, &ev)
       == -1 && ev == -1, "full: one of the same priority is refused");
    ok(fanout_queue_push(&q, e, 1, 1, 5, 0, 1000, FANOUT_QUEUE_TIMEOUT, &ev)
       >= 0 && ev == order[2], "a higher priority evicts the newest of the "
       "lowest");
    ok(e[order[2]].state == FANOUT_QUEUE_SHED
       && e[order[2]].reason == FANOUT_QUEUE_EVICTED && q.waiting == 3,
       "  shed as evicted, three still wait");
    ok(fanout_queue_push(&q, e, 0, 1, 6, 0, 1000, FANOUT_QUEUE_TIMEOUT, &ev)
       >= 0 && ev == order[1], "  then the other of the lowest");

    /* entries not given back yet take room */
    fanout_queue_init(&q, e, 2, 3);
    order[0] = fanout_queue_push(&q, e, 9, 1, 1, 0, 1000,
                                 FANOUT_QUEUE_TIMEOUT, &ev);
    order[1] = fanout_queue_push(&q, e, 9, 1, 2, 0, 1000,
                                 FANOUT_QUEUE_TIMEOUT, &ev);
    ok(fanout_queue_push(&q, e, 1, 1, 3, 0, 1000, FANOUT_QUEUE_TIMEOUT, &ev)
       >= 0 && ev == order[1], "a third entry takes the evicted one's place");
    ok(fanout_queue_push(&q, e, 0, 1, 4, 0, 1000, FANOUT_QUEUE_TIMEOUT, &ev)
       == -1 && ev == -1, "every entry taken (waiting, or shed and not "
       "given back): refused, nobody evicted");
    fanout_queue_release(&q, e, order[1]);
    ok(fanout_queue_push(&q, e, 0, 1, 4, 0, 1000, FANOUT_QUEUE_TIMEOUT, &ev)
       >= 0 && ev == order[0], "given back: room again");

    /* expiry, with each entry's reason */
    fanout_queue_init(&q, e, 8, 8);
    order[0] = fanout_queue_push(&q, e, 0, 1, 1, 0, 100,
                                 FANOUT_QUEUE_TIMEOUT, &ev);
    order[1] = fanout_queue_push(&q, e, 0, 1, 2, 0, 50,
                                 FANOUT_QUEUE_DEADLINE, &ev);
    order[2] = fanout_queue_push(&q, e, 0, 1, 3, 0, 500,
                                 FANOUT_QUEUE_TIMEOUT, &ev);
    ok(fanout_queue_expire(&q, e, 49) == 0, "nothing expires early");
    ok(fanout_queue_expire(&q, e, 100) == 2 && q.waiting == 1,
       "two expire at their times");
    ok(e[order[0]].reason == FANOUT_QUEUE_TIMEOUT
       && e[order[1]].reason == FANOUT_QUEUE_DEADLINE,
       "  for their own reasons");
    ok(fanout_queue_grant(&q, e) == order[2], "the one left is granted");

    /* a client that leaves while it waits */
    fanout_queue_init(&q, e, 8, 8);
    order[0] = fanout_queue_push(&q, e, 0, 1, 1, 0, 100,
                                 FANOUT_QUEUE_TIMEOUT, &ev);
    order[1] = fanout_queue_push(&q, e, 0, 1, 2, 0, 100,
                                 FANOUT_QUEUE_TIMEOUT, &ev);
    fanout_queue_release(&q, e, order[0]);
    ok(q.waiting == 1 && fanout_queue_grant(&q, e) == order[1],
       "a caller that left frees its place at once");
    fanout_queue_release(&q, e, -1);
    fanout_queue_release(&q, e, 99);
    ok(q.waiting == 0, "releasing nothing changes nothing");

    /* Retry-After */
    ok(fanout_queue_retry_after(0, 10, 20) == 1, "Retry-After: at least 1 s");
    ok(fanout_queue_retry_after(64, 4, 200) == 4,
       "64 waiting at 4 a time of 200 ms: 4 s");
    ok(fanout_queue_retry_after(UINT32_MAX, 0, UINT64_MAX) == 3600,
       "absurd inputs: an hour at most");

    is_str(fanout_queue_reason_name(FANOUT_QUEUE_EVICTED), "evicted",
           "reason names");
    is_str(fanout_queue_reason_name((fanout_queue_reason_e) 99), "unknown",
           "an unknown reason");
}


int
main(void)
{
    test_limit();
    test_queue();

    {
        /* the pace: a grant every 5 ms while calls wait */
        fanout_pace_t  pace;
        uint64_t       t;

        memset(&pace, 0, sizeof(pace));
        ok(fanout_pace_wait(&pace, 3) == 0, "pace: not known at first");

        for (t = 1000; t < 1500; t += 5) {
            fanout_pace_grant(&pace, t, 0);
        }

        ok(fanout_pace_wait(&pace, 0) == 5, "pace: the next turn in 5 ms");
        ok(fanout_pace_wait(&pace, 9) == 50, "pace: the 10th in 50 ms");

        /* the queue runs empty, then a long idle time: no gap from it */
        fanout_pace_grant(&pace, 1500, 1);
        fanout_pace_grant(&pace, 90000, 0);
        ok(fanout_pace_wait(&pace, 0) == 5, "pace: idle time is not a gap");

        /* the model slows down 2x: the pace follows within 16 grants or so */
        for (t = 90010; t < 90010 + 10 * 40; t += 10) {
            fanout_pace_grant(&pace, t, 0);
        }

        ok(fanout_pace_wait(&pace, 0) >= 9 && fanout_pace_wait(&pace, 0) <= 10,
           "pace: a 2x slowdown followed within 40 grants");

        /* CoDel's rule: an interval of 100 ms */
        ok(!fanout_pace_standing(&pace, 0, 100000, 100),
           "standing: an empty queue starts a busy period");
        ok(!fanout_pace_standing(&pace, 3, 100050, 100),
           "standing: not yet, 50 ms into the busy period");
        ok(!fanout_pace_standing(&pace, 3, 100100, 100),
           "standing: not empty for an interval, but nothing shed: a slow "
           "model's queue, all served");
        fanout_pace_shed(&pace, 100110);
        ok(fanout_pace_standing(&pace, 3, 100120, 100),
           "standing: not empty for an interval, and shedding");
        ok(fanout_pace_standing(&pace, 0, 100121, 100),
           "standing: the queue ran empty, still standing");
        fanout_pace_shed(&pace, 100150);
        ok(fanout_pace_standing(&pace, 0, 100240, 100),
           "standing: calls shed keep it going");
        ok(!fanout_pace_standing(&pace, 0, 100250, 100),
           "standing: an interval without a shed ends it");
        fanout_pace_shed(&pace, 100260);
        ok(!fanout_pace_standing(&pace, 0, 100270, 100),
           "standing: a shed outside the state does not start it");
        ok(!fanout_pace_standing(&pace, 1, 100300, 100)
           && !fanout_pace_standing(&pace, 1, 100370, 100),
           "standing: the shed before this busy period does not count");
        fanout_pace_shed(&pace, 100380);
        ok(fanout_pace_standing(&pace, 1, 100390, 100),
           "standing: a busy interval with a shed in it, once more");
    }

    {
        /* one call per flow: a key at this or a better priority */
        fanout_queue_t        q;
        fanout_queue_entry_t  e[4];
        int                   ev;

        fanout_queue_init(&q, e, 4, 4);
        ok(!fanout_queue_has_key(&q, e, 1, 7), "flow: none waiting");
        (void) fanout_queue_push(&q, e, 1, 7, 1, 0, 100,
                                 FANOUT_QUEUE_TIMEOUT, &ev);
        ok(fanout_queue_has_key(&q, e, 1, 7), "flow: its key waits");
        ok(fanout_queue_has_key(&q, e, 2, 7), "flow: a worse priority too");
        ok(!fanout_queue_has_key(&q, e, 0, 7), "flow: not a better one");
        ok(!fanout_queue_has_key(&q, e, 1, 8), "flow: not another key");
        (void) fanout_queue_grant(&q, e);
        ok(!fanout_queue_has_key(&q, e, 1, 7), "flow: granted, not waiting");
    }

    return done_testing();
}
