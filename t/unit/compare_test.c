/*
 * Unit tests of fanout_compare.c: what counts as agreement between a
 * shadow's answer and the client's.
 */

#include <string.h>

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

    return done_testing();
}
