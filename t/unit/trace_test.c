/* fanout_trace.c: traceparent parsing and writing, request ids, the ids */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "fanout_trace.h"


static int
parse(const char *s, fanout_trace_t *t)
{
    return fanout_traceparent_parse(s, strlen(s), t);
}


int
main(void)
{
    int             i, j, zeros, dup;
    char            out[FANOUT_TRACEPARENT_LEN + 1], a[33], b[33];
    char            longid[FANOUT_REQUEST_ID_MAX + 1];
    char           *seen;
    fanout_rng_t    g;
    fanout_trace_t  t;
    unsigned char   seed[32];

    const char  *good = "00-4bf92f3577b34da6a3ce929d0e0e4736-"
                        "00f067aa0ba902b7-01";

    ok(parse(good, &t) == 0, "the spec's example parses");
    ok(memcmp(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", 32) == 0,
       "its trace id");
    ok(memcmp(t.parent_id, "00f067aa0ba902b7", 16) == 0, "its parent id");
    ok(t.flags[0] == '0' && t.flags[1] == '1', "its flags");

    fanout_traceparent_write(&t, "1111111111111111", out);
    out[FANOUT_TRACEPARENT_LEN] = '\0';
    is_str(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01",
           "written back with another span");

    ok(parse("  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t",
             &t) == 0, "spaces around it are allowed");

    ok(parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01", &t)
       == -1, "an all-zero trace id is invalid");
    ok(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", &t)
       == -1, "an all-zero parent id is invalid");
    ok(parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", &t)
       == -1, "upper case hex is invalid");
    ok(parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t)
       == -1, "version ff is invalid");
    ok(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
             &t) == -1, "version 00 with more after it is invalid");
    ok(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
             &t) == 0, "a later version with more after a dash is read");
    ok(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
             &t) == -1, "but not without the dash");
    ok(parse("00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", &t)
       == -1, "a dash in the wrong place");
    ok(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", &t)
       == -1, "flags that are not hex");
    ok(parse("", &t) == -1 && parse("00-", &t) == -1, "short ones");

    ok(fanout_request_id_valid("abc-123_x.y:z/w+v=u@t", 21),
       "a request id of its characters");
    ok(!fanout_request_id_valid("a b", 3), "not with a space");
    ok(!fanout_request_id_valid("a\"b", 3), "not with a quote");
    ok(!fanout_request_id_valid("", 0), "not empty");

    memset(longid, 'a', sizeof(longid));
    ok(fanout_request_id_valid(longid, FANOUT_REQUEST_ID_MAX)
       && !fanout_request_id_valid(longid, FANOUT_REQUEST_ID_MAX + 1),
       "at most 128 characters");

    /* ids: hex, not all zero, different */
    for (i = 0; i < 32; i++) {
        seed[i] = (unsigned char) i;
    }

    fanout_rng_seed(&g, seed);
    fanout_rng_hex(&g, a, 32);
    fanout_rng_hex(&g, b, 32);
    a[32] = b[32] = '\0';

    for (i = 0, zeros = 0; i < 32; i++) {
        zeros += (a[i] == '0');
        if (!((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f'))) {
            zeros = -1000;
        }
    }

    ok(zeros >= 0 && zeros < 32, "an id is lowercase hex, not all zeros");
    ok(strcmp(a, b) != 0, "two ids differ");

    memset(seed, 0, sizeof(seed));
    fanout_rng_seed(&g, seed);
    fanout_rng_hex(&g, a, 16);
    a[16] = '\0';
    ok(strspn(a, "0") < 16, "an all-zero seed still makes ids");

    /* 20,000 span ids: no two alike */
    seen = malloc(20000 * 17);
    dup = 0;

    for (i = 0; i < 20000; i++) {
        fanout_rng_hex(&g, seen + i * 17, 16);
        seen[i * 17 + 16] = '\0';
    }

    for (i = 0; i < 20000 && !dup; i++) {
        for (j = i + 1; j < 20000 && j < i + 64; j++) {
            if (strcmp(seen + i * 17, seen + j * 17) == 0) {
                dup = 1;
                break;
            }
        }
    }

    free(seen);
    ok(!dup, "20,000 span ids, none alike among neighbours");

    return done_testing();
}
