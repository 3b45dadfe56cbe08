/*
 * Unit tests of fanout_limit.c: GCRA arithmetic, bursts, refill, cost and
 * accuracy at high rates.
 */

#include "fanout_limit.h"

#define max_u64(a, b)  ((a) > (b) ? (a) : (b))
#include "tap.h"


static unsigned
admitted(const fanout_limit_conf_t *c, uint64_t *tat, uint64_t from_us,
    uint64_t to_us, uint64_t step_us)
{
    uint64_t               now;
    unsigned               n;
    fanout_limit_result_t  r;

    n = 0;

    for (now = from_us; now < to_us; now += step_us) {
        fanout_limit_take(c, tat, now, 1, &r);
        n += r.allowed;
    }

    return n;
}


int
main(void)
{
    char                   name[64];
    uint64_t               tat, rate, n;
    unsigned               i, ok_burst;
    fanout_limit_conf_t    c;
    fanout_limit_result_t  r;

    ok(fanout_limit_conf(&c, 0, 1000000, 1) != 0, "rate 0 refused");
    ok(fanout_limit_conf(&c, 2000000, 1000000, 1) != 0,
       "a rate beyond the microsecond refused");

    /* 10 r/s, burst 5: five at once, the sixth waits 100 ms */
    fanout_limit_conf(&c, 10, 1000000, 5);
    ok(c.interval_us == 100000 && c.capacity == 5, "10 r/s: 100 ms apart");

    tat = 0;
    ok_burst = 1;

    for (i = 1; i <= 5; i++) {
        fanout_limit_take(&c, &tat, 1000000000, 1, &r);
        ok_burst &= r.allowed && r.remaining == 5 - i;
    }

    ok(ok_burst, "a burst of 5 admitted, remaining counts down 4..0");

    fanout_limit_take(&c, &tat, 1000000000, 1, &r);
    ok(!r.allowed, "the burst+1-th request is rejected");
    ok(r.retry_after_us == 100000, "retry after one interval");
    ok(r.reset_us == 500000, "full again after five intervals");
    ok(r.remaining == 0, "nothing remaining");

    fanout_limit_take(&c, &tat, 1000000000 + 99999, 1, &r);
    ok(!r.allowed, "not a microsecond early");
    fanout_limit_take(&c, &tat, 1000000000 + 100000, 1, &r);
    ok(r.allowed, "admitted after the refill of one");

    fanout_limit_take(&c, &tat, 1000000000 + 10000000, 1, &r);
    ok(r.allowed && r.remaining == 4, "after idling the bucket is full");

    /* cost */
    tat = 0;
    fanout_limit_take(&c, &tat, 5000000000ULL, 3, &r);
    ok(r.allowed && r.remaining == 2, "cost 3 takes three");
    fanout_limit_take(&c, &tat, 5000000000ULL, 3, &r);
    ok(!r.allowed && r.remaining == 2, "a cost larger than what is left waits");
    ok(r.retry_after_us == 100000, "until the bucket holds three");

    /* without a burst: one at a time */
    fanout_limit_conf(&c, 100, 1000000, 0);
    tat = 0;
    fanout_limit_take(&c, &tat, 1000, 1, &r);
    ok(r.allowed, "burst 0: the first passes");
    fanout_limit_take(&c, &tat, 1000, 1, &r);
    ok(!r.allowed, "burst 0: the second at once does not");

    /* accuracy: offered 4x the rate for 10 s, the rate is what passes */
    for (rate = 10; rate <= 10000; rate *= 10) {
        fanout_limit_conf(&c, rate, 1000000, 1);
        tat = 0;
        n = admitted(&c, &tat, 0, 10000000, 1000000 / (4 * rate));
        snprintf(name, sizeof(name), "%llu r/s for 10 s admits %llu",
                 (unsigned long long) rate, (unsigned long long) n);
        ok(n >= rate * 10 && n <= rate * 10 + 1, name);
    }

    /* r/m */
    fanout_limit_conf(&c, 30, 60000000, 1);
    ok(c.interval_us == 2000000, "30 r/m: one every 2 s");

    /* local_share: three instances, a third each, together the rate */
    {
        fanout_limit_conf_t  s;

        fanout_limit_conf(&c, 90, 1000000, 10);
        fanout_limit_share(&c, 3, &s);
        ok(s.interval_us == 3 * c.interval_us && s.capacity == 4,
           "a third of 90 r/s burst 10: 30 r/s, burst 4 (rounded up)");
        tat = 0;
        n = admitted(&s, &tat, 0, 10000000, 1000);
        ok(n >= 300 && n <= 304, "a share admits a third over 10 s");
        fanout_limit_share(&c, 1, &s);
        ok(s.interval_us == c.interval_us && s.capacity == c.capacity,
           "one instance: the whole limit");
        fanout_limit_share(&c, 0, &s);
        ok(s.capacity == c.capacity, "none known: the whole limit");
        fanout_limit_conf(&c, 10, 1000000, 1);
        fanout_limit_share(&c, 50, &s);
        ok(s.capacity == 1, "a burst never under one request");
    }

    /* delay=: past the burst, a few wait for their token */
    fanout_limit_conf(&c, 10, 1000000, 2);
    c.delay = 3;
    tat = 0;
    fanout_limit_take(&c, &tat, 1000000000, 1, &r);
    ok(r.allowed && r.delay_us == 0, "delay: the burst passes at once (1)");
    fanout_limit_take(&c, &tat, 1000000000, 1, &r);
    ok(r.allowed && r.delay_us == 0, "delay: the burst passes at once (2)");

    for (n = 1; n <= 3; n++) {
        fanout_limit_take(&c, &tat, 1000000000, 1, &r);
        snprintf(name, sizeof(name), "delay: excess %llu waits %llu ms",
                 (unsigned long long) n,
                 (unsigned long long) r.delay_us / 1000);
        ok(r.allowed && r.delay_us == n * 100000 && r.remaining == 0, name);
    }

    fanout_limit_take(&c, &tat, 1000000000, 1, &r);
    ok(!r.allowed && r.delay_us == 0, "delay: past burst + delay, rejected");
    ok(r.retry_after_us == 100000, "delay: retry when one more can wait");
    fanout_limit_take(&c, &tat, 1000000000 + 100000, 1, &r);
    ok(r.allowed && r.delay_us == 300000,
       "delay: a token later, one more waits its turn");

    /* delayed requests still keep the rate exactly */
    tat = 0;
    {
        uint64_t  t, waited, last;

        waited = 0;
        last = 0;
        n = 0;

        for (t = 0; t < 10000000; t += 25000) {
            fanout_limit_take(&c, &tat, t, 1, &r);
            if (r.allowed) {
                n++;
                waited = max_u64(waited, r.delay_us);
                last = t + r.delay_us;
            }
        }

        ok(n >= 100 && n <= 105, "delay: 4x the rate for 10 s admits "
           "the rate (and the burst and delay)");
        ok(waited <= 300000, "delay: no wait longer than delay tokens");
        ok(last <= 10000000 + 300000, "delay: the last conforms in time");
    }

    {
        fanout_limit_conf_t  s;

        fanout_limit_share(&c, 3, &s);
        ok(s.delay == 1, "a share of delay=3 over 3 instances: 1");
    }

    /*
     * A token budget: 1,000 tokens a minute, a bucket of all 1,000.  Fifty
     * concurrent requests reserve 100 each: ten pass, and what they used
     * (60 each) is settled; the 40 given back admit more.
     */
    ok(fanout_limit_conf(&c, 1000, 60000000, 1000) == 0, "1000 tokens/m");
    tat = 0;
    n = 0;

    for (i = 0; i < 50; i++) {
        fanout_limit_take(&c, &tat, 5000000000ULL, 100, &r);
        n += r.allowed;
    }

    ok(n == 10, "50 concurrent reservations of 100: 10 admitted");

    for (i = 0; i < 10; i++) {
        fanout_limit_settle(&c, &tat, 5000000000ULL, 60 - 100);
    }

    fanout_limit_take(&c, &tat, 5000000000ULL, 400, &r);
    ok(r.allowed && r.remaining == 0, "the 400 given back admit 400 more");
    fanout_limit_take(&c, &tat, 5000000000ULL, 1, &r);
    ok(!r.allowed && r.retry_after_us == 60000, "and then one more waits");

    /* a request that used more than it reserved: a debt */
    fanout_limit_settle(&c, &tat, 5000000000ULL, 500);
    fanout_limit_take(&c, &tat, 5000000000ULL + 10000000, 1, &r);
    ok(!r.allowed && r.retry_after_us == 20000000 + 60000,
       "a debt of 500 tokens: half a minute more, 10 s of it gone");

    /* giving back never makes more than a full bucket */
    tat = 0;
    fanout_limit_take(&c, &tat, 7000000000ULL, 10, &r);
    fanout_limit_settle(&c, &tat, 7000000000ULL, -1000000);
    fanout_limit_take(&c, &tat, 7000000000ULL, 1000, &r);
    ok(r.allowed, "given back past the bucket: a full bucket");
    fanout_limit_take(&c, &tat, 7000000000ULL, 1, &r);
    ok(!r.allowed, "and no more than a full bucket");

    /* the largest deltas do not overflow */
    tat = 1;
    fanout_limit_settle(&c, &tat, 1, INT64_MAX);
    ok(tat > 1 && tat <= ((uint64_t) 1 << 62) + 1, "INT64_MAX: bounded");
    fanout_limit_settle(&c, &tat, 1, INT64_MIN);
    ok(tat == 1, "INT64_MIN: a full bucket");

    return done_testing();
}
