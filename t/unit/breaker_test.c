/*
 * Unit tests of fanout_breaker.c: transitions, probes, cooldowns, the
 * error-rate window.
 */

#include "fanout_breaker.h"
#include "tap.h"


static fanout_breaker_conf_t
conf(uint32_t failures, uint32_t rate, uint32_t min_requests,
    uint32_t half_open)
{
    fanout_breaker_conf_t  c;

    memset(&c, 0, sizeof(c));
    c.failures = failures;
    c.error_rate = rate;
    c.min_requests = min_requests;
    c.window_ms = 10000;
    c.cooldown_ms = 10000;
    c.max_cooldown_ms = 35000;
    c.half_open = half_open;

    return c;
}


static fanout_breaker_change_e
call(fanout_breaker_conf_t *c, fanout_breaker_t *b, uint64_t now, int fail)
{
    fanout_breaker_verdict_e  v;

    v = fanout_breaker_allow(c, b, now);

    if (v == FANOUT_BREAKER_REJECT) {
        return (fanout_breaker_change_e) -1;
    }

    return fanout_breaker_record(c, b, now, v, fail);
}


int
main(void)
{
    int                    all;
    uint32_t               i, n, req;
    fanout_breaker_t       b;
    fanout_breaker_conf_t  c;

    /* N consecutive failures */
    c = conf(5, 0, 0, 1);
    memset(&b, 0, sizeof(b));

    all = 1;
    for (i = 0; i < 4; i++) {
        all &= call(&c, &b, 1000, 1) == FANOUT_BREAKER_SAME;
    }
    ok(all && b.state == FANOUT_BREAKER_CLOSED, "4 failures: still closed");
    ok(call(&c, &b, 1000, 0) == FANOUT_BREAKER_SAME && b.consecutive == 0,
       "a success resets the count");

    for (i = 0; i < 4; i++) {
        call(&c, &b, 1000, 1);
    }
    ok(call(&c, &b, 1000, 1) == FANOUT_BREAKER_OPENED, "the 5th opens it");
    is_str(fanout_breaker_state_name(b.state), "open", "state name");
    ok(fanout_breaker_allow(&c, &b, 1000 + 9999) == FANOUT_BREAKER_REJECT,
       "open: no call during the cooldown");

    /* half-open: exactly one probe */
    ok(fanout_breaker_allow(&c, &b, 11000) == FANOUT_BREAKER_PROBE,
       "after the cooldown: a probe");
    ok(b.state == FANOUT_BREAKER_HALF_OPEN, "half-open");
    ok(fanout_breaker_allow(&c, &b, 11000) == FANOUT_BREAKER_REJECT,
       "one probe at a time");

    ok(fanout_breaker_record(&c, &b, 11100, FANOUT_BREAKER_PROBE, 1)
       == FANOUT_BREAKER_REOPENED, "a failed probe reopens");
    ok(b.cooldown_ms == 20000, "with the cooldown doubled");
    ok(fanout_breaker_allow(&c, &b, 11100 + 19999) == FANOUT_BREAKER_REJECT,
       "for the doubled cooldown");

    ok(fanout_breaker_allow(&c, &b, 31100) == FANOUT_BREAKER_PROBE, "probe");
    fanout_breaker_record(&c, &b, 31100, FANOUT_BREAKER_PROBE, 1);
    ok(b.cooldown_ms == 35000, "doubled again, up to max_cooldown");
    ok(fanout_breaker_allow(&c, &b, 66100) == FANOUT_BREAKER_PROBE, "probe");
    fanout_breaker_record(&c, &b, 66100, FANOUT_BREAKER_PROBE, 1);
    ok(b.cooldown_ms == 35000, "and no further");

    ok(fanout_breaker_allow(&c, &b, 101100) == FANOUT_BREAKER_PROBE, "probe");
    ok(fanout_breaker_record(&c, &b, 101100, FANOUT_BREAKER_PROBE, 0)
       == FANOUT_BREAKER_CLOSED_AGAIN, "a good probe closes it");
    ok(b.state == FANOUT_BREAKER_CLOSED && b.cooldown_ms == 0
       && b.consecutive == 0, "closing resets everything");
    ok(fanout_breaker_allow(&c, &b, 101100) == FANOUT_BREAKER_PASS,
       "closed: calls pass");

    /* half_open=3: exactly three tokens; an aborted probe gives one back */
    c = conf(1, 0, 0, 3);
    memset(&b, 0, sizeof(b));
    call(&c, &b, 1000, 1);

    n = 0;
    for (i = 0; i < 10; i++) {
        n += fanout_breaker_allow(&c, &b, 20000) == FANOUT_BREAKER_PROBE;
    }
    ok(n == 3, "half_open=3: exactly three probes");

    fanout_breaker_release(&b, FANOUT_BREAKER_PROBE);
    ok(fanout_breaker_allow(&c, &b, 20000) == FANOUT_BREAKER_PROBE,
       "a released token is taken again");
    ok(fanout_breaker_record(&c, &b, 20001, FANOUT_BREAKER_PROBE, 0)
       == FANOUT_BREAKER_CLOSED_AGAIN, "the first good probe closes");
    ok(fanout_breaker_record(&c, &b, 20002, FANOUT_BREAKER_PROBE, 1)
       == FANOUT_BREAKER_SAME, "a late probe's failure changes nothing");
    ok(b.state == FANOUT_BREAKER_CLOSED, "still closed");

    /* error rate: above 50% of at least 10 requests in 10 s */
    c = conf(0, 50, 10, 1);
    memset(&b, 0, sizeof(b));

    all = 1;
    for (i = 0; i < 9; i++) {
        all &= call(&c, &b, 1000 + i, 1) == FANOUT_BREAKER_SAME;
    }
    ok(all, "9 failures: fewer than min_requests, still closed");
    ok(call(&c, &b, 1009, 1) == FANOUT_BREAKER_OPENED,
       "the 10th request at 100% opens it");

    memset(&b, 0, sizeof(b));
    for (i = 0; i < 20; i++) {
        call(&c, &b, 1000 + i * 10, i % 2 == 1);
    }
    ok(b.state == FANOUT_BREAKER_CLOSED, "50% is not above 50%");
    ok(fanout_breaker_rate(&c, &b, 1200, &req) == 50 && req == 20,
       "rate and requests over the window");
    ok(fanout_breaker_peek(&b, 1200, &req) == 50 && req == 20
       && fanout_breaker_peek(&b, 1000 + 20000, &req) == 0 && req == 0
       && fanout_breaker_rate(&c, &b, 1200, &req) == 50,
       "peek sees the same and changes nothing");

    /* the window slides: old failures are forgotten */
    memset(&b, 0, sizeof(b));
    for (i = 0; i < 9; i++) {
        call(&c, &b, 1000, 1);
    }
    fanout_breaker_rate(&c, &b, 1000 + 10500, &req);
    ok(req == 0, "after a window they are gone");
    ok(call(&c, &b, 1000 + 10500, 1) == FANOUT_BREAKER_SAME,
       "so one more failure does not open it");

    memset(&b, 0, sizeof(b));
    for (i = 0; i < 5; i++) {
        call(&c, &b, 1000, 1);
    }
    for (i = 0; i < 5; i++) {
        call(&c, &b, 6000, 0);
    }
    fanout_breaker_rate(&c, &b, 11500, &req);
    ok(req == 5, "half a window later only the recent half counts");

    /* scope=cluster: learning of a circuit opened on another instance */
    c = conf(5, 0, 0, 1);
    memset(&b, 0, sizeof(b));
    ok(fanout_breaker_learn(&c, &b, 1000, 0, 0) == FANOUT_BREAKER_SAME
       && b.state == FANOUT_BREAKER_CLOSED, "nothing left: nothing learned");
    ok(fanout_breaker_learn(&c, &b, 1000, 7000, 20000)
       == FANOUT_BREAKER_OPENED && b.state == FANOUT_BREAKER_OPEN
       && b.remote && b.retry_at_ms == 8000 && b.cooldown_ms == 20000,
       "learned: open here until it ends there, with its cooldown");
    ok(call(&c, &b, 7999, 0) == (fanout_breaker_change_e) -1,
       "no call before then");
    ok(fanout_breaker_learn(&c, &b, 2000, 9000, 40000) == FANOUT_BREAKER_SAME
       && b.retry_at_ms == 11000, "reopened there: waits longer here too");
    ok(fanout_breaker_learn(&c, &b, 3000, 1000, 0) == FANOUT_BREAKER_SAME
       && b.retry_at_ms == 11000, "never shorter");
    ok(fanout_breaker_forget(&b, 10500, 1000) == FANOUT_BREAKER_SAME
       && b.state == FANOUT_BREAKER_OPEN,
       "gone near its end: left to probe on its own");
    ok(fanout_breaker_forget(&b, 5000, 1000) == FANOUT_BREAKER_CLOSED_AGAIN
       && b.state == FANOUT_BREAKER_CLOSED && !b.remote,
       "gone early: closed there by a good probe, so closed here");

    /* own evidence: calls that succeed here are not undone by another
     * instance's failures (its network, say) */
    memset(&b, 0, sizeof(b));
    call(&c, &b, 1000, 1);
    call(&c, &b, 1100, 0);
    call(&c, &b, 1200, 0);
    ok(fanout_breaker_learn(&c, &b, 1500, 7000, 20000) == FANOUT_BREAKER_SAME
       && b.state == FANOUT_BREAKER_CLOSED && !b.remote,
       "own calls succeed: an opening elsewhere is not learned");
    ok(call(&c, &b, 1600, 0) == FANOUT_BREAKER_SAME,
       "and the calls go on");
    call(&c, &b, 1700, 1);
    ok(fanout_breaker_learn(&c, &b, 1800, 7000, 20000) == FANOUT_BREAKER_OPENED
       && b.remote, "its latest own call failed: learned");
    memset(&b, 0, sizeof(b));
    call(&c, &b, 1000, 0);
    ok(fanout_breaker_learn(&c, &b, 1000 + 21000, 7000, 20000)
       == FANOUT_BREAKER_OPENED,
       "own successes older than the window: no evidence, learned");

    /* a good probe elsewhere closes every breaker that opened before it */
    memset(&b, 0, sizeof(b));
    for (i = 0; i < 5; i++) {
        call(&c, &b, 1000, 1);
    }
    ok(fanout_breaker_closed_elsewhere(&b, 3000, 500)
       == FANOUT_BREAKER_CLOSED_AGAIN && b.state == FANOUT_BREAKER_CLOSED,
       "closed elsewhere after it opened here: closed here, own or not");
    for (i = 0; i < 5; i++) {
        call(&c, &b, 4000, 1);
    }
    ok(fanout_breaker_closed_elsewhere(&b, 4200, 500) == FANOUT_BREAKER_SAME
       && b.state == FANOUT_BREAKER_OPEN,
       "closed elsewhere before it opened again here: stays open");
    ok(call(&c, &b, 14000, 0) == FANOUT_BREAKER_CLOSED_AGAIN
       && fanout_breaker_closed_elsewhere(&b, 14500, 100) == FANOUT_BREAKER_SAME,
       "a closed one stays as it is");
    for (i = 0; i < 5; i++) {
        call(&c, &b, 20000, 1);
    }
    ok(call(&c, &b, 30000, 1) == FANOUT_BREAKER_REOPENED
       && fanout_breaker_closed_elsewhere(&b, 30600, 800) == FANOUT_BREAKER_SAME,
       "reopened by its own failed probe after the close: stays open");
    ok(fanout_breaker_closed_elsewhere(&b, 30600, 300)
       == FANOUT_BREAKER_CLOSED_AGAIN, "a close after the reopening closes it");

    /* the fleet's schedule */
    memset(&b, 0, sizeof(b));
    for (i = 0; i < 5; i++) {
        call(&c, &b, 1000, 1);
    }
    ok(fanout_breaker_adopt(&b, 1200, 4000, 10000) && b.retry_at_ms == 5200
       && b.cooldown_ms == 10000,
       "opened here while the fleet had it open: the fleet's retry time");
    ok(!fanout_breaker_adopt(&b, 1200, 4000, 10000), "adopted once");
    ok(call(&c, &b, 5100, 0) == (fanout_breaker_change_e) -1
       && call(&c, &b, 5200, 0) == FANOUT_BREAKER_CLOSED_AGAIN,
       "and it probes then");
    ok(!fanout_breaker_adopt(&b, 6000, 4000, 10000),
       "a closed one adopts nothing");

    memset(&b, 0, sizeof(b));
    for (i = 0; i < 5; i++) {
        call(&c, &b, 1000, 1);
    }
    ok(b.state == FANOUT_BREAKER_OPEN && !b.remote
       && fanout_breaker_forget(&b, 1500, 1000) == FANOUT_BREAKER_SAME
       && b.state == FANOUT_BREAKER_OPEN,
       "one opened here is not closed by a missing key");

    memset(&b, 0, sizeof(b));
    for (i = 0; i < 5; i++) {
        call(&c, &b, 1000, 1);
    }
    ok(call(&c, &b, 11000, 1) == FANOUT_BREAKER_REOPENED, "half-open probe");
    ok(fanout_breaker_learn(&c, &b, 11500, 3000, 10000)
       == FANOUT_BREAKER_SAME && b.retry_at_ms == 31000,
       "open here already with a longer wait: unchanged");

    return done_testing();
}
