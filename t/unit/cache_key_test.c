/*
 * Unit tests of fanout_cache_key.c: canonical JSON bodies and digests.
 */

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

    return done_testing();
}
