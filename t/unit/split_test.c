/*
 * Unit tests of fanout_split.c: MurmurHash2 as nginx has it, shares laid
 * out as split_clients does, stickiness when a share grows.
 */

#include <stdio.h>
#include <string.h>

#include "fanout_split.h"
#include "tap.h"


int
main(void)
{
    int             v, moved, had, kept, n[3];
    char            key[32];
    size_t          len;
    uint32_t        i;
    fanout_split_t  s, t;

    /* known values of nginx's ngx_murmur_hash2() */
    ok(fanout_murmur2((const unsigned char *) "", 0) == 0, "murmur2 of \"\"");
    ok(fanout_murmur2((const unsigned char *) "abc", 3) == 0x13577c9b,
       "murmur2 of \"abc\"");
    ok(fanout_murmur2((const unsigned char *) "hello world", 11)
       == 0x44a81419, "murmur2 of \"hello world\"");

    /* 10% v2; 0.5% v3; * v1 */
    fanout_split_init(&s);
    ok(fanout_split_add(&s, 1000, 0) == 0 && fanout_split_add(&s, 50, 0) == 0
       && fanout_split_add(&s, 0, 1) == 0 && fanout_split_done(&s) == 0,
       "10%, 0.5% and the rest");
    ok(s.share[2] == 8950, "the rest is 89.5%");
    ok(s.bound[1] == 450971565, "0.5% ends where split_clients ends it");
    ok(fanout_split_pick(&s, 0) == 0 && fanout_split_pick(&s, 0xffffffff) == 2,
       "the ends of the range");
    ok(fanout_split_add(&s, 10, 0) == -1, "nothing after \"*\"");

    fanout_split_init(&t);
    fanout_split_add(&t, 6000, 0);
    ok(fanout_split_add(&t, 5000, 0) == 0 && fanout_split_done(&t) == -1,
       "over 100% is refused");

    fanout_split_init(&t);
    fanout_split_add(&t, 2000, 0);
    fanout_split_done(&t);
    ok(fanout_split_pick(&t, 0xfffffff0) == -1,
       "under 100% without \"*\": some keys get no variant");

    /* 10,000 keys: shares within 1.5 points */
    n[0] = n[1] = n[2] = 0;
    for (i = 0; i < 10000; i++) {
        len = (size_t) snprintf(key, sizeof(key), "user-%u", i);
        v = fanout_split_pick(&s, fanout_murmur2((unsigned char *) key, len));
        n[v]++;
    }
    ok(n[0] >= 850 && n[0] <= 1150, "10% within 1.5 points");
    ok(n[1] >= 0 && n[1] <= 200, "0.5% within 1.5 points");
    ok(n[2] >= 8800 && n[2] <= 9100, "89.5% within 1.5 points");

    /* v2 from 10% to 20%: everyone who had it keeps it */
    fanout_split_init(&t);
    fanout_split_add(&t, 2000, 0);
    fanout_split_add(&t, 50, 0);
    fanout_split_add(&t, 0, 1);
    fanout_split_done(&t);

    had = kept = moved = 0;
    for (i = 0; i < 10000; i++) {
        len = (size_t) snprintf(key, sizeof(key), "user-%u", i);
        v = fanout_split_pick(&s, fanout_murmur2((unsigned char *) key, len));
        if (v == 0) {
            had++;
            kept += fanout_split_pick(&t,
                        fanout_murmur2((unsigned char *) key, len)) == 0;
        } else if (fanout_split_pick(&t,
                       fanout_murmur2((unsigned char *) key, len)) == 0)
        {
            moved++;
        }
    }
    ok(had > 0 && kept == had, "raising a share keeps its holders");
    ok(moved >= 850 && moved <= 1150, "and adds about 10% more");

    /* a ramp: "5% v1; * v2;" with v2 the candidate, listed last */
    {
        int                    stays, in2, left;
        uint32_t               shares[2];
        uintptr_t              bounds[3] = { 100, 250, 500 };
        fanout_split_t         c, r5, r25, w;
        fanout_ramp_t          ramp;
        fanout_ramp_counts_t   cnt;

        fanout_split_init(&c);
        fanout_split_add(&c, 9500, 0);
        fanout_split_add(&c, 0, 1);
        fanout_split_done(&c);

        ok(fanout_split_ramp(&c, 1, 500, &r5) == 0
           && r5.share[1] == 500 && r5.share[0] == 9500
           && r5.order[0] == 1, "the candidate's slice comes first");
        ok(fanout_split_ramp(&c, 1, 2500, &r25) == 0
           && r25.share[0] == 7500, "the others take the rest");

        stays = in2 = left = 0;
        for (i = 0; i < 20000; i++) {
            len = (size_t) snprintf(key, sizeof(key), "u%u", i);
            v = fanout_split_pick(&r5,
                                  fanout_murmur2((unsigned char *) key, len));
            if (v == 1) {
                in2++;
                stays += fanout_split_pick(&r25,
                             fanout_murmur2((unsigned char *) key, len)) == 1;
            }
            left += fanout_split_pick(&r25,
                        fanout_murmur2((unsigned char *) key, len)) == 1;
        }
        ok(in2 > 700 && in2 < 1300, "5% of 20000 keys");
        ok(stays == in2, "a key in the candidate at 5% is in it at 25%");
        ok(left > 4500 && left < 5500, "25% of them at 25%");

        ok(fanout_split_ramp(&c, 1, 10000, &w) == 0
           && fanout_split_pick(&w, 0xffffffff) == 1
           && fanout_split_pick(&w, 0) == 1,
           "at 100% even the top hash is the candidate's");

        ok(fanout_split_ramp(&c, 1, 0, &r5) == 0
           && fanout_split_pick(&r5, 0) == 0
           && fanout_split_pick(&r5, 0xffffffff) == 0,
           "rolled back: none in the candidate");

        /* three variants, proportions kept among the others */
        fanout_split_init(&t);
        fanout_split_add(&t, 6000, 0);
        fanout_split_add(&t, 1000, 0);
        fanout_split_add(&t, 0, 1);
        fanout_split_done(&t);
        ok(fanout_split_ramp(&t, 1, 5000, &w) == 0 && w.share[0] == 3333
           && w.share[2] == 1667 && w.share[1] == 5000,
           "60/10/30 with the second at 50%: 33.33/50/16.67");

        shares[0] = 3000;
        shares[1] = 7000;
        ok(fanout_split_set(&c, shares, &w) == 0 && w.share[1] == 7000
           && fanout_split_pick(&w, 0) == 0, "weights set, in order");
        shares[1] = 6999;
        ok(fanout_split_set(&c, shares, &w) == -1, "weights under 100%");

        memset(&ramp, 0, sizeof(ramp));
        ok(fanout_ramp_parse_steps(&ramp, "5%,25%,50%,100%", 15) == 0
           && ramp.nsteps == 4 && ramp.step[1] == 2500, "steps parsed");
        ok(fanout_ramp_parse_steps(&ramp, "0.5%,100%", 9) == 0
           && ramp.step[0] == 50, "a step of 0.5%");
        ok(fanout_ramp_parse_steps(&ramp, "25%,5%,100%", 11) == -1,
           "steps must rise");
        ok(fanout_ramp_parse_steps(&ramp, "5%,50%", 6) == -1,
           "the last step is 100%");
        ok(fanout_ramp_parse_steps(&ramp, "5%,,100%", 8) == -1
           && fanout_ramp_parse_steps(&ramp, "", 0) == -1
           && fanout_ramp_parse_steps(&ramp, "5,100%", 6) == -1
           && fanout_ramp_parse_steps(&ramp, "101%", 4) == -1,
           "empty, unitless and over 100% refused");

        ok(fanout_ramp_parse_rollback(&ramp, "error_rate>2%,p99>500ms", 23,
                                      bounds, 3) == 0
           && ramp.has_error && ramp.max_error == 200
           && ramp.max_p99 == 500, "rollback_if parsed");
        ok(fanout_ramp_parse_rollback(&ramp, "p99>300ms", 9, bounds, 3) == -1,
           "p99 off the histogram's bounds refused");
        ok(fanout_ramp_parse_rollback(&ramp, "error_rate>2", 12, bounds, 3)
           == -1 && fanout_ramp_parse_rollback(&ramp, "latency>5ms", 11,
                                                bounds, 3) == -1,
           "unknown bounds refused");

        fanout_ramp_parse_rollback(&ramp, "error_rate>2%,p99>500ms", 23,
                                   bounds, 3);
        ramp.every = 1000;
        ramp.min_requests = 10;
        cnt.requests = 5; cnt.errors = 5; cnt.slow = 0;
        ok(fanout_ramp_decide(&ramp, 5000, &cnt) == FANOUT_RAMP_HOLD,
           "too few requests: held");
        cnt.requests = 100; cnt.errors = 2;
        ok(fanout_ramp_decide(&ramp, 500, &cnt) == FANOUT_RAMP_HOLD
           && fanout_ramp_decide(&ramp, 1000, &cnt) == FANOUT_RAMP_ADVANCE,
           "2% errors is inside error_rate>2%: on schedule");
        cnt.errors = 3;
        ok(fanout_ramp_decide(&ramp, 10, &cnt)
           == FANOUT_RAMP_ROLLBACK_ERRORS, "3% errors: rolled back at once");
        cnt.errors = 0; cnt.slow = 2;
        ok(fanout_ramp_decide(&ramp, 10, &cnt) == FANOUT_RAMP_ROLLBACK_P99,
           "2% slower than the bound: p99 over it");

        /* ttft_p99: the time to the first answer bytes */
        ok(fanout_ramp_parse_rollback(&ramp, "ttft_p99>250ms,error_rate>1%",
                                      28, bounds, 3) == 0
           && ramp.max_ttft == 250 && ramp.max_p99 == 0 && ramp.has_error
           && ramp.max_error == 100, "ttft_p99 parsed, in any order");
        ok(fanout_ramp_parse_rollback(&ramp, "ttft_p99>300ms", 14, bounds, 3)
           == -1 && fanout_ramp_parse_rollback(&ramp, "ttft_p99>ms", 11,
                                                bounds, 3) == -1
           && fanout_ramp_parse_rollback(&ramp, "ttft_p99>250", 12, bounds, 3)
           == -1 && fanout_ramp_parse_rollback(&ramp,
                        "ttft_p99>250ms,ttft_p99>500ms", 29, bounds, 3) == -1,
           "ttft_p99 off the bounds, without ms, or twice: refused");
        fanout_ramp_parse_rollback(&ramp, "p99>500ms,ttft_p99>250ms", 24,
                                   bounds, 3);
        ramp.every = 1000;
        ramp.min_requests = 10;
        cnt.requests = 100; cnt.errors = 0; cnt.slow = 0; cnt.slow_first = 1;
        ok(fanout_ramp_decide(&ramp, 1000, &cnt) == FANOUT_RAMP_ADVANCE,
           "1% of first bytes later than the bound: inside it");
        cnt.slow_first = 2;
        ok(fanout_ramp_decide(&ramp, 10, &cnt) == FANOUT_RAMP_ROLLBACK_TTFT,
           "2% later: ttft_p99 over it, rolled back");
        cnt.slow = 2;
        ok(fanout_ramp_decide(&ramp, 10, &cnt) == FANOUT_RAMP_ROLLBACK_P99,
           "both over: p99 named first");
    }

    return done_testing();
}
