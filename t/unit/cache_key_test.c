/*
 * Unit tests of fanout_cache_key.c: canonical JSON bodies and digests.
 */

#include <stdlib.h>
#include <time.h>

#include "fanout_cache_key.h"
#include "tap.h"


static char  a[FANOUT_SHA256_HEX_LEN + 1], b[FANOUT_SHA256_HEX_LEN + 1];


static int
digest(const char *body, const char *ignore, char *hex)
{
    size_t          n;
    fanout_field_t  f[4];
    const char     *p, *comma;

    n = 0;

    for (p = ignore; p && *p && n < 4; p = comma ? comma + 1 : NULL) {
        comma = strchr(p, ',');
        f[n].path = p;
        f[n].len = comma ? (size_t) (comma - p) : strlen(p);
        n++;
    }

    return fanout_cache_body_digest(body, strlen(body), f, n, hex);
}


static int
digest_n(const char *body, size_t n, char *hex)
{
    return fanout_cache_body_digest(body, n, NULL, 0, hex);
}


static int
same(const char *x, const char *y, const char *ignore)
{
    digest(x, ignore, a);
    digest(y, ignore, b);

    return strcmp(a, b) == 0;
}


int
main(void)
{
    fanout_sha256_hex("abc", 3, a);
    is_str(a, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
           "SHA-256 of \"abc\"");

    ok(digest("{\"a\":1}", NULL, a) == 1, "JSON is canonicalized");

    {
        /* past the canonicalizer's first arrays (16 open members, 32
         * closed, 8 objects, 512 bytes of keys): the same digest for the
         * same object in two key orders */
        char    x[16384], y[16384], *px, *py;
        int     i, j;

        px = x;
        py = y;
        px += sprintf(px, "[");
        py += sprintf(py, "[");

        for (j = 0; j < 12; j++) {
            px += sprintf(px, "%s{", j ? "," : "");
            py += sprintf(py, "%s{", j ? "," : "");

            for (i = 0; i < 40; i++) {
                px += sprintf(px, "%s\"key_%02d_with_a_long_name_%02d\":%d",
                              i ? "," : "", i, j, i * j);
                py += sprintf(py, "%s\"key_%02d_with_a_long_name_%02d\":%d",
                              i ? "," : "", 39 - i, j, (39 - i) * j);
            }

            px += sprintf(px, "}");
            py += sprintf(py, "}");
        }

        sprintf(px, "]");
        sprintf(py, "]");

        ok(digest(x, NULL, a) == 1 && digest(y, NULL, b) == 1
           && strcmp(a, b) == 0,
           "a body past the first arrays: canonical, key order ignored");

        y[strlen(y) - 3] = '9';
        digest(y, NULL, b);
        ok(strcmp(a, b) != 0, "and one value changed changes it");
    }
    ok(digest("not json", NULL, a) == 0, "anything else is hashed raw");
    ok(digest("", NULL, a) == 0, "an empty body is hashed raw");

    ok(same("{\"a\":1,\"b\":[1,2]}", " { \"b\" : [ 1 , 2 ] , \"a\" : 1 } ",
            NULL), "key order and whitespace do not matter");
    ok(same("{\"x\":{\"b\":1,\"a\":2}}", "{\"x\":{\"a\":2,\"b\":1}}", NULL),
       "nested objects are sorted too");
    ok(!same("{\"a\":[1,2]}", "{\"a\":[2,1]}", NULL), "array order matters");
    ok(!same("{\"a\":1}", "{\"a\":2}", NULL), "values matter");
    ok(!same("{\"a\":\"1\"}", "{\"a\":1}", NULL), "types matter");

    ok(same("{\"a\":1,\"id\":\"x\"}", "{\"a\":1,\"id\":\"y\"}", "id"),
       "ignored top-level field");
    ok(same("{\"a\":1,\"m\":{\"ts\":1,\"k\":2}}",
            "{\"m\":{\"k\":2,\"ts\":7},\"a\":1}", "id,m.ts"),
       "ignored nested field");
    ok(same("{\"a\":1}", "{\"a\":1,\"id\":3}", "id"),
       "an ignored field may be absent");
    ok(!same("{\"a\":1,\"m\":{\"ts\":1,\"k\":2}}",
             "{\"a\":1,\"m\":{\"ts\":1,\"k\":3}}", "m.ts"),
       "the rest of an object with an ignored field still counts");
    ok(same("{\"l\":[{\"id\":1,\"v\":2}]}", "{\"l\":[{\"id\":9,\"v\":2}]}",
            "l.0.id"), "ignore through an array index");
    ok(same("not json", "not json", "id"), "ignore= leaves raw bodies alone");
    ok(!same("not json", "not json!", NULL), "raw bodies: bytes matter");

    /* what every parser reads alike, and only that, shares a key */
    ok(digest("{\"q\":\"evil\",\"q\":\"victim\"}", NULL, a)
       == FANOUT_KEY_AMBIGUOUS, "a duplicate key is ambiguous");
    ok(!same("{\"q\":\"evil\",\"q\":\"victim\"}", "{\"q\":\"victim\"}", NULL),
       "a body with a duplicate key never shares the key of its last value");
    ok(!same("{\"q\":\"evil\",\"q\":\"victim\"}", "{\"q\":\"evil\"}", NULL),
       "nor that of its first");
    ok(digest("{\"a\":{\"x\":1,\"\\u0078\":2}}", NULL, a)
       == FANOUT_KEY_AMBIGUOUS, "keys are compared decoded: x and \\u0078");
    ok(digest("{\"id\":1,\"id\":0},2]", NULL, a) == FANOUT_KEY_RAW,
       "a duplicate key in a text that is no JSON: raw, not ambiguous (fuzzer)");
    ok(digest("[{\"a\":1},{\"a\":2}]", NULL, a) == FANOUT_KEY_CANONICAL,
       "the same key in two objects is no duplicate");
    ok(same("{\"s\":\"caf\\u00e9\"}", "{\"s\":\"caf\xc3\xa9\"}", NULL),
       "escapes are decoded");
    ok(same("{\"s\":\"a\\/b\\n\"}", "{\"s\":\"a/b\\u000a\"}", NULL),
       "short and long escapes alike");
    ok(same("{\"s\":\"\\ud83d\\ude00\"}", "{\"s\":\"\xf0\x9f\x98\x80\"}", NULL),
       "surrogate pairs decoded");
    ok(digest("{\"s\":\"\\ud83d\"}", NULL, a) == FANOUT_KEY_RAW,
       "a lone surrogate is not canonicalised");
    ok(!same("{\"n\":1.0}", "{\"n\":1}", NULL), "numbers keep their text");
    ok(!same("{\"n\":0.1}", "{\"n\":0.10000000000000001}", NULL),
       "numbers that one parser reads alike and another not differ");
    ok(digest("{\"n\":1e400}", NULL, a) == FANOUT_KEY_CANONICAL,
       "a huge number is still canonical text");
    ok(!same("{\"a\":1}", "{\"a\":1}x", NULL), "trailing junk is raw");
    ok(same("{\"l\":[1,{\"id\":5},3]}", "{\"l\":[1,{\"id\":6},3]}", "l.1.id"),
       "ignore inside an array element");
    ok(same("{\"l\":[1,2,3]}", "{\"l\":[1,9,3]}", "l.1"),
       "ignore an array element");
    ok(!same("{\"l\":[1,2,3]}", "{\"l\":[1,2,4]}", "l.1"),
       "the other elements still count");
    ok(same("{\"a\":{\"b\":{\"c\":1,\"d\":2}}}", "{\"a\":{\"b\":{\"d\":2,\"c\":7}}}",
            "a.b.c"), "ignore three levels down");
    ok(same("{\"\\u0069d\":1,\"a\":1}", "{\"a\":1}", "id"),
       "ignore matches decoded keys");
    ok(same("{\"z\":{},\"a\":[]}", "{\"a\":[],\"z\":{}}", NULL),
       "empty containers");

    {
        /* deep, wide and big inputs: linear, and fast */
        size_t   i, n;
        char    *big;
        clock_t  t;
        double   secs;

        n = 4 * 1024 * 1024;
        big = malloc(n + 64);
        i = 0;
        big[i++] = '{';

        while (i < n) {
            i += (size_t) sprintf(big + i, "\"k%zu\":%zu.%03zu,",
                                  i, i * 7, i % 1000);
        }

        big[i - 1] = '}';

        t = clock();
        ok(digest_n(big, i, a) == FANOUT_KEY_CANONICAL,
           "a 4 MB object of 200k numbers is canonical");
        secs = (double) (clock() - t) / CLOCKS_PER_SEC;
        printf("# 4 MB canonicalised in %.3f s\n", secs);
        ok(secs < 2.0, "in well under 2 s (even under ASan)");

        /* 50,000 copies of one key: sorted, found, not quadratic */
        i = 0;
        big[i++] = '{';

        for (n = 0; n < 50000; n++) {
            i += (size_t) sprintf(big + i, "\"k\":%zu,", n);
        }

        big[i - 1] = '}';

        t = clock();
        ok(digest_n(big, i, a) == FANOUT_KEY_AMBIGUOUS,
           "50,000 duplicates of one key");
        ok((double) (clock() - t) / CLOCKS_PER_SEC < 1.0, "quickly");

        for (i = 0; i < 300; i++) {
            big[i] = '[';
            big[600 - 1 - i] = ']';
        }

        ok(digest_n(big, 600, a) == FANOUT_KEY_RAW,
           "nesting beyond the scanner's depth is raw");

        free(big);
    }

    {
        char           out[256];
        size_t         n;
        fanout_field_t f[2] = { { "id", 2 }, { "m.id", 4 } };
        fanout_span_t  v[2] = { { "\"new\"", 5 }, { "7", 1 } };
        const char    *ans = "{\"id\":\"old\",\"m\":{\"id\":1,\"x\":[1]},\"y\":2}";

        n = fanout_cache_echo(ans, strlen(ans), f, v, 2, out);
        out[n == (size_t) -1 ? 0 : n] = '\0';
        is_str(out, "{\"id\":\"new\",\"m\":{\"id\":7,\"x\":[1]},\"y\":2}",
               "echo: both fields replaced");

        n = fanout_cache_echo("{\"y\":2}", 7, f, v, 2, out);
        out[n == (size_t) -1 ? 0 : n] = '\0';
        is_str(out, "{\"y\":2}", "echo: absent fields are left alone");

        ok(fanout_cache_echo("{\"id\":", 6, f, v, 2, out) == (size_t) -1,
           "echo: not JSON, not touched");

        f[1].path = "id.x";
        f[1].len = 4;
        n = fanout_cache_echo("{\"id\":{\"x\":1}}", 14, f, v, 2, out);
        out[n == (size_t) -1 ? 0 : n] = '\0';
        is_str(out, "{\"id\":\"new\"}", "echo: a path inside another");
    }

    return done_testing();
}
