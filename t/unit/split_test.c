/*
 * Unit tests of fanout_split.c: MurmurHash2 as nginx has it, shares laid
 * out as split_clients does, stickiness when a share grows.
 */

#include <stdio.h>

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

    return done_testing();
}
