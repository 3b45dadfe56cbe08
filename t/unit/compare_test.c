/*
 * Unit tests of fanout_compare.c: what counts as agreement between a
 * shadow's answer and the client's.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fanout_compare.h"
#include "tap.h"


static int
agree(const char *a, const char *b, double tolerance)
{
    fanout_compare_t  res;

    fanout_compare(a, strlen(a), b, strlen(b), tolerance, &res);

    return res.agree;
}


static int
argmax(const char *a, const char *b)
{
    fanout_compare_t  res;

    fanout_compare(a, strlen(a), b, strlen(b), 0, &res);

    return res.argmax;
}


int
main(void)
{
    fanout_compare_t  res;

    ok(agree("\"cat\"", "\"cat\"", 0), "equal strings");
    ok(!agree("\"cat\"", "\"dog\"", 0), "unequal strings");
    ok(!agree("\"cat\"", "\"cats\"", 0), "a longer string");
    ok(agree("\"A\\u00e9\"", "\"A\xc3\xa9\"", 0),
       "an escape equals its UTF-8");
    ok(agree("\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"", 0),
       "a surrogate pair equals its UTF-8");
    ok(agree("\"a\\\"b\"", "\"a\\u0022b\"", 0), "two escapes of a quote");
    ok(!agree("\"1\"", "1", 0), "a string is no number");

    ok(agree("true", "true", 0) && agree("null", "null", 0),
       "equal literals");
    ok(!agree("true", "false", 0) && !agree("null", "0", 0),
       "unequal literals");

    ok(agree("1", "1.0", 0), "1 and 1.0 are the same number");
    ok(agree("1e2", "100", 0), "exponents");
    ok(!agree("0.5", "0.51", 0), "tolerance 0 is exact");
    ok(agree("0.5", "0.51", 0.02), "within the tolerance");
    ok(agree("-0.5", "-0.52", 0.02), "within the tolerance, negative");
    ok(!agree("0.5", "0.53", 0.02), "over the tolerance");

    ok(agree("[0.1, 0.9]", "[0.1,0.9]", 0), "equal arrays, any spacing");
    ok(agree("[0.1, 0.9]", "[0.11, 0.89]", 0.02),
       "arrays within the tolerance, element by element");
    ok(!agree("[0.1, 0.9]", "[0.1, 0.9, 0]", 0), "a longer array");
    ok(!agree("[0.1, 0.9]", "[0.1]", 0), "a shorter array");
    ok(agree("[]", "[ ]", 0), "empty arrays");
    ok(agree("[[1,2],[3]]", "[[1,2],[3.0]]", 0), "nested arrays");

    ok(agree("{\"a\":1,\"b\":\"x\"}", "{\"b\":\"x\", \"a\":1.0}", 0),
       "objects: keys in any order");
    ok(!agree("{\"a\":1}", "{\"a\":1,\"b\":2}", 0), "an extra key");
    ok(!agree("{\"a\":1,\"b\":2}", "{\"a\":1}", 0), "a missing key");
    ok(!agree("{\"a\":1}", "{\"a\":2}", 0), "an unequal value");
    ok(agree("{\"a\":1,\"a\":2}", "{\"a\":2}", 0),
       "of duplicate keys the last one counts");
    ok(agree("{\"label\":\"cat\",\"scores\":[0.1,0.9]}",
             "{\"scores\":[0.12,0.88],\"label\":\"cat\"}", 0.05),
       "a whole answer within the tolerance");
    ok(agree("{}", "{ }", 0), "empty objects");
    ok(!agree("{}", "[]", 0), "an object is no array");

    ok(argmax("[0.1, 0.9]", "[0.4, 0.6]") == 1,
       "argmax agrees where the values do not");
    ok(argmax("[0.9, 0.1]", "[0.4, 0.6]") == 0, "argmax disagrees");
    ok(argmax("[0.5, 0.5]", "[0.5, 0.5]") == 1, "ties go to the first");
    ok(argmax("\"cat\"", "\"cat\"") == -1, "no argmax for strings");
    ok(argmax("[1, \"x\"]", "[1, 2]") == -1, "nor for mixed arrays");
    ok(argmax("[]", "[]") == -1, "nor for empty ones");
    ok(fanout_argmax(" [-3, -1, -2] ", 14) == 1, "negative numbers");

    ok(agree("[1e400]", "[1e400]", 0), "the same huge number agrees");
    ok(agree("{\"v\":123456789012345678901234567890123456789012345678901234567890123456789}",
             "{\"v\":1.23456789012345678901234567890e68}", 0),
       "a 69-digit number compares by value");
    ok(!agree("[1e400]", "[2e400]", 0), "two different huge numbers do not");
    ok(agree("{\"a\":{\"x\":1,\"y\":2}}", "{\"a\":{\"y\":2,\"x\":1}}", 0),
       "nested objects in any order");
    ok(agree("{\"\\u0061\":1}", "{\"a\":1}", 0), "keys compared decoded");

    {
        /* 25,000 keys in reverse order: sorted, not looked up one by one */
        size_t   i, n, na, nb;
        char    *a, *b;
        clock_t  t;
        double   secs;

        n = 25000;
        a = malloc(n * 24 + 2);
        b = malloc(n * 24 + 2);
        na = nb = 0;
        a[na++] = '{';
        b[nb++] = '{';

        for (i = 0; i < n; i++) {
            na += (size_t) sprintf(a + na, "\"k%zu\":%zu,", i, i);
            nb += (size_t) sprintf(b + nb, "\"k%zu\":%zu,", n - 1 - i,
                                   n - 1 - i);
        }

        a[na - 1] = '}';
        b[nb - 1] = '}';

        t = clock();
        fanout_compare(a, na, b, nb, 0, &res);
        secs = (double) (clock() - t) / CLOCKS_PER_SEC;
        ok(res.agree == 1, "25,000 keys in another order agree");
        printf("# 25,000 keys compared in %.3f s\n", secs);
        ok(secs < 1.0, "in well under a second (minutes before)");

        b[nb - 2] = '9';
        fanout_compare(a, na, b, nb, 0, &res);
        ok(res.agree == 0, "and one value changed disagrees");

        free(a);
        free(b);
    }

    return done_testing();
}
