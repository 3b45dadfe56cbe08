/*
 * Unit tests of fanout_body.c: set=PATH:JSON on a client's body, the rest
 * byte for byte, checked against jansson where a tree helps.
 */

#include <stdlib.h>

#include <jansson.h>

#include "tap.h"
#include "fanout_body.h"


static char  out_buf[1 << 16];


/* "PATH:JSON" each, into sets */

static void
parse(const char *const *spec, size_t n, fanout_body_set_t *sets)
{
    size_t       i;
    const char  *colon;

    for (i = 0; i < n; i++) {
        colon = strchr(spec[i], ':');
        sets[i].path = spec[i];
        sets[i].path_len = (size_t) (colon - spec[i]);
        sets[i].value = colon + 1;
        sets[i].value_len = strlen(colon + 1);
    }
}


/* the body with sets applied ("" when it fails) */

static const char *
apply(const char *body, const char *const *spec, size_t n)
{
    fanout_out_t       count, o;
    fanout_body_set_t  sets[FANOUT_BODY_MAX_SETS + 1];

    parse(spec, n, sets);

    count.buf = NULL;
    count.len = 0;

    if (fanout_body_apply(body, strlen(body), sets, n, &count) != 0) {
        return "";
    }

    o.buf = out_buf;
    o.len = 0;

    if (fanout_body_apply(body, strlen(body), sets, n, &o) != 0
        || o.len != count.len)
    {
        return "(the count and the text differ)";
    }

    out_buf[o.len] = '\0';

    return out_buf;
}


static int
check(const char *const *spec, size_t n)
{
    size_t             bad;
    fanout_body_set_t  sets[FANOUT_BODY_MAX_SETS + 1];

    parse(spec, n, sets);

    return fanout_body_sets_check(sets, n, &bad) == 0 ? -1 : (int) bad;
}


int
main(void)
{
    json_t        *j;
    json_error_t   err;

    {
        const char *s[] = { "model:\"gpt-4o-mini\"" };

        is_str(apply("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\"}]}",
                     s, 1),
               "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\"}]}",
               "a member replaced, the others as they came");
        is_str(apply("{\"messages\":[1, 2 ,3]}", s, 1),
               "{\"messages\":[1, 2 ,3],\"model\":\"gpt-4o-mini\"}",
               "a missing member added at the end; values byte for byte");
        is_str(apply("  { }\n", s, 1), "{\"model\":\"gpt-4o-mini\"}",
               "an empty object, whitespace around it");
        is_str(apply("{\"model\":1,\"x\":2,\"model\":3}", s, 1),
               "{\"model\":\"gpt-4o-mini\",\"x\":2,\"model\":\"gpt-4o-mini\"}",
               "every copy of a duplicated key, whichever a parser reads");
        is_str(apply("{\"mo\\u0064el\":1}", s, 1),
               "{\"mo\\u0064el\":\"gpt-4o-mini\"}",
               "a key with escapes is the same key");
        is_str(apply("[1]", s, 1), "", "not an object: refused");
        is_str(apply("{\"a\":", s, 1), "", "not JSON: refused");
        is_str(apply("", s, 1), "", "empty: refused");
    }

    {
        const char *s[] = { "parameters.temperature:0.2",
                            "parameters.top_p:0.9", "model:\"m\"" };

        is_str(apply("{\"parameters\":{\"temperature\":1,\"n\":2},"
                     "\"input\":\"x\"}", s, 3),
               "{\"parameters\":{\"temperature\":0.2,\"n\":2,\"top_p\":0.9},"
               "\"input\":\"x\",\"model\":\"m\"}",
               "nested: one replaced, one added, in the object found");
        is_str(apply("{\"input\":\"x\"}", s, 3),
               "{\"input\":\"x\",\"parameters\":{\"temperature\":0.2,"
               "\"top_p\":0.9},\"model\":\"m\"}",
               "a missing object made once for the sets under it");
        is_str(apply("{\"parameters\":\"hot\"}", s, 3), "",
               "a value on a path that is not an object: refused");
        is_str(apply("{\"parameters\":null}", s, 3), "",
               "null on a path: refused");
    }

    {
        const char *s[] = { "a.b.c:{\"d\":[1,{\"e\":null}]}" };
        const char *r;

        r = apply("{\"z\":{\"y\":[{\"a\":1}]},\"a\":{\"b\":{\"q\":true}}}",
                  s, 1);
        j = json_loads(r, JSON_REJECT_DUPLICATES, &err);
        ok(j != NULL, "three deep: valid JSON, no duplicate key");
        ok(j && json_is_true(json_object_get(json_object_get(json_object_get(
               j, "a"), "b"), "q")), "  the sibling kept");
        ok(j && json_is_null(json_object_get(json_array_get(json_object_get(
               json_object_get(json_object_get(json_object_get(j, "a"), "b"),
                               "c"), "d"), 1), "e")),
           "  the value set whole");
        ok(strstr(r, "\"z\":{\"y\":[{\"a\":1}]}") != NULL,
           "  an unrelated \"a\" deeper elsewhere untouched");
        json_decref(j);
    }

    {
        /* a long body: the length is the body's plus what the sets add */
        static char  big[40000];
        const char  *s[] = { "model:\"x\"" };
        size_t       k;

        strcpy(big, "{\"input\":[");
        for (k = 0; k < 3000; k++) {
            strcat(big, k ? ",0.5" : "0.5");
        }
        strcat(big, "],\"model\":\"y\"}");

        ok(strlen(apply(big, s, 1)) == strlen(big),
           "a long body: the same length with the model swapped");
    }

    {
        const char *ok1[] = { "model:1", "parameters.t:2", "parameters.u:3" };
        const char *dup[] = { "model:1", "model:2" };
        const char *pre[] = { "a.b:1", "a:2" };
        const char *pre2[] = { "a:2", "a.b:1" };
        const char *idx[] = { "inputs.0.data:1" };
        const char *sp[] = { "a b:1" };
        const char *deep[] = { "a.b.c.d.e.f.g.h.i:1" };
        const char *near[] = { "ab:1", "a:2", "a.c:3" };

        ok(check(ok1, 3) == -1, "sets that go together");
        ok(check(dup, 2) == 1, "a path twice: refused, the second named");
        ok(check(pre, 2) == 1, "a path under another set: refused");
        ok(check(pre2, 2) == 1, "  either way round");
        ok(check(idx, 1) == 0, "an array index on a path: refused");
        ok(check(sp, 1) == 0, "a space in a path: refused");
        ok(check(deep, 1) == 0, "deeper than 8: refused");
        ok(check(near, 3) == 2, "\"ab\" is not under \"a\", \"a.c\" is");
    }

    return done_testing();
}
