/*
 * fanout_batch: finding the client's batch, the bodies of its calls, and
 * the answer joined in the items' order; the scanner's array walk and
 * duplicate-path count it uses.
 */

#include <stdlib.h>

#include "fanout_batch.h"
#include "tap.h"


static fanout_span_t  items[1024];


static fanout_batch_rc_e
split(const char *body, const char *path, size_t max, fanout_batch_t *b)
{
    return fanout_batch_split(body, strlen(body), path, strlen(path), max,
                              items, b);
}


/* call k's body, as the pieces say, NUL-terminated in buf */

static const char *
body_of(const char *body, const fanout_batch_t *b, size_t chunk, size_t k,
    char *buf)
{
    size_t         n, i, total;
    char          *p;
    fanout_span_t  piece[FANOUT_BATCH_PIECES];

    n = fanout_batch_pieces(body, strlen(body), b, chunk, k, piece, &total);

    p = buf;

    for (i = 0; i < n; i++) {
        memcpy(p, piece[i].p, piece[i].len);
        p += piece[i].len;
    }

    *p = '\0';

    return ((size_t) (p - buf) == total) ? buf : "(length mismatch)";
}


static void
test_split(void)
{
    char             buf[256];
    fanout_batch_t   b;
    unsigned         matches;
    fanout_span_t    found;

    ok(split("{\"instances\":[1, {\"a\":[2]} ,\"x,]\"],\"p\":1}", "instances",
             16, &b) == FANOUT_BATCH_OK && b.nitems == 3,
       "three items, commas inside a string and an object not counted");
    ok(b.items[1].len == 9 && memcmp(b.items[1].p, "{\"a\":[2]}", 9) == 0,
       "an item's span is its value, without the whitespace around it");
    is_str(body_of("{\"instances\":[1, {\"a\":[2]} ,\"x,]\"],\"p\":1}", &b, 0,
                   1, buf),
           "{\"instances\":{\"a\":[2]},\"p\":1}",
           "chunk 0: the item in the array's place");

    ok(split("{\"in\":{\"b\":[1,2,3,4,5]}}", "in.b", 16, &b)
       == FANOUT_BATCH_OK && b.nitems == 5, "a dot path");
    ok(fanout_batch_calls(&b, 0) == 5 && fanout_batch_calls(&b, 2) == 3
       && fanout_batch_calls(&b, 5) == 1 && fanout_batch_calls(&b, 9) == 1,
       "calls: one per item, or per chunk, the last one short");
    is_str(body_of("{\"in\":{\"b\":[1,2,3,4,5]}}", &b, 2, 0, buf),
           "{\"in\":{\"b\":[1,2]}}", "chunk 2, first");
    is_str(body_of("{\"in\":{\"b\":[1,2,3,4,5]}}", &b, 2, 2, buf),
           "{\"in\":{\"b\":[5]}}", "chunk 2, the short last one");

    ok(split("[[1,2],[3]]", "0", 16, &b) == FANOUT_BATCH_OK
       && b.nitems == 2, "an array inside an array, by index");
    is_str(body_of("[[1,2],[3]]", &b, 0, 1, buf), "[2,[3]]",
           "the body around it kept as it was");

    ok(split("{\"instances\":[1,2,3]}", "instances", 3, &b)
       == FANOUT_BATCH_OK, "max items exactly");
    ok(split("{\"instances\":[1,2,3,4]}", "instances", 3, &b)
       == FANOUT_BATCH_TOO_MANY, "one more: too many");
    ok(split("{\"instances\":[]}", "instances", 3, &b) == FANOUT_BATCH_EMPTY,
       "an empty array");
    ok(split("{\"instances\":[ ]}", "instances", 3, &b) == FANOUT_BATCH_EMPTY,
       "an empty array with a space");
    ok(split("{\"x\":[1]}", "instances", 3, &b) == FANOUT_BATCH_NO_FIELD,
       "no FIELD");
    ok(split("{\"instances\":\"abc\"}", "instances", 3, &b)
       == FANOUT_BATCH_NOT_ARRAY, "FIELD a string");
    ok(split("{\"instances\":[1,2}", "instances", 3, &b)
       == FANOUT_BATCH_NOT_JSON, "not JSON");
    ok(split("{\"instances\":[1,2]} x", "instances", 3, &b)
       == FANOUT_BATCH_NOT_JSON, "junk after the JSON");
    ok(split("", "instances", 3, &b) == FANOUT_BATCH_NOT_JSON, "empty");
    ok(split("{\"instances\":[1],\"instances\":[2]}", "instances", 3, &b)
       == FANOUT_BATCH_AMBIGUOUS, "FIELD twice: parsers disagree");
    ok(split("{\"a\":{\"b\":[1]},\"a\":{\"b\":[2]}}", "a.b", 3, &b)
       == FANOUT_BATCH_AMBIGUOUS, "a key on the path twice");
    ok(split("{\"a\":{\"b\":[1]},\"a\":{\"c\":[2]}}", "a.b", 3, &b)
       == FANOUT_BATCH_AMBIGUOUS,
       "a key on the path twice, FIELD under one: a last-wins parser sees "
       "no batch");
    ok(split("{\"a\":{\"b\":[1]},\"c\":{\"b\":[2]},\"b\":0}", "a.b", 3,
             &b) == FANOUT_BATCH_OK && b.nitems == 1,
       "the same names off the path are not duplicates");
    ok(split("{\"instan\\u0063es\":[1]}", "instances", 3, &b)
       == FANOUT_BATCH_OK && b.nitems == 1,
       "a key written with an escape is the same key");
    ok(split("{\"instan\\u0063es\":[1],\"instances\":[2]}", "instances", 3,
             &b) == FANOUT_BATCH_AMBIGUOUS,
       "and counts as a duplicate");

    ok(fanout_json_find("{\"a\":1,\"a\":2}", 13, "a", 1, &found, &matches)
       == 0 && matches > 1 && found.len == 1 && found.p[0] == '2',
       "find: two matches, the last one kept");
    ok(fanout_json_array("[1,[2,3],{\"k\":4}]", 17, items, 16) == 3
       && items[1].len == 5, "array: elements and spans");
    ok(fanout_json_array("{\"k\":4}", 7, items, 16) == -1,
       "array: not an array");
    ok(fanout_json_array("[1,2,3]", 7, items, 1) == 2,
       "array: counting stops one past max");
    ok(strlen(fanout_batch_error(FANOUT_BATCH_TOO_MANY)) > 0
       && strlen(fanout_batch_error(FANOUT_BATCH_AMBIGUOUS)) > 0,
       "errors have words");
}


static void
test_large(void)
{
    size_t          i, n, len;
    char           *body, *p;
    fanout_batch_t  b;

    /* 1000 items of 1 KB: found in one pass, each span right */
    n = 1000;
    len = 32 + n * 1030;
    body = malloc(len);
    p = body;
    p += sprintf(p, "{\"instances\":[");

    for (i = 0; i < n; i++) {
        p += sprintf(p, "%s\"%04zu", i ? "," : "", i);
        memset(p, 'x', 1000);
        p += 1000;
        *p++ = '"';
    }

    p += sprintf(p, "]}");

    ok(fanout_batch_split(body, (size_t) (p - body), "instances", 9, 1000,
                          items, &b) == FANOUT_BATCH_OK && b.nitems == 1000,
       "1000 items of 1 KB");
    ok(items[999].len == 1006 && memcmp(items[999].p, "\"0999", 5) == 0,
       "the last one in its place");

    free(body);
}


static fanout_part_t
part(const char *name, fanout_kind_e kind, int status, const char *body)
{
    fanout_part_t  p;

    memset(&p, 0, sizeof(p));
    p.name = name;
    p.weight = 1;
    p.kind = kind;
    p.status = status;
    p.body = body;
    p.body_len = body ? strlen(body) : 0;

    if (kind == FANOUT_OK) {
        fanout_part_parse(&p, "v", 1);
    }

    return p;
}


static char *
write_answer(fanout_batch_answer_t *a)
{
    char          *buf;
    size_t         len;
    fanout_out_t   o;

    o.buf = NULL;
    o.len = 0;
    fanout_batch_write(a, &o);
    len = o.len;

    buf = malloc(len + 1);
    o.buf = buf;
    o.len = 0;
    fanout_batch_write(a, &o);
    buf[o.len] = '\0';

    return (o.len == len) ? buf : NULL;
}


static void
test_answer(void)
{
    char                   *out;
    fanout_part_t           parts[6];
    fanout_merged_t         merged[3];
    fanout_merge_conf_t     mc;
    fanout_batch_answer_t   a;

    memset(&mc, 0, sizeof(mc));
    mc.mode = FANOUT_MERGE_MEAN;
    mc.field = "v";
    mc.field_len = 1;
    mc.quorum = 1;

    /* 3 calls x 2 targets; call 1 fails everywhere */
    parts[0] = part("a", FANOUT_OK, 200, "{\"v\":1}");
    parts[1] = part("b", FANOUT_OK, 200, "{\"v\":3}");
    parts[2] = part("a", FANOUT_HTTP_5XX, 500, NULL);
    parts[3] = part("b", FANOUT_TIMEOUT, 504, NULL);
    parts[4] = part("a", FANOUT_OK, 200, "{\"v\":10}");
    parts[5] = part("b", FANOUT_HTTP_5XX, 503, NULL);

    memset(&a, 0, sizeof(a));
    a.conf = &mc;
    a.parts = parts;
    a.ncalls = 3;
    a.ntargets = 2;
    a.nitems = 3;
    a.merged = merged;

    ok(fanout_batch_prepare(&a) == 0 && a.status == 200 && a.ok == 2,
       "two of three calls met the quorum: 200");

    out = write_answer(&a);
    ok(out != NULL, "measured and written alike");
    is_str(out ? strstr(out, "\"meta\":{\"items\"") : NULL,
           "\"meta\":{\"items\":3,\"ok\":2,\"failed\":1,\"targets\":2}}",
           "the batch's meta");
    ok(out && strncmp(out, "{\"items\":[{\"merged\":{\"field\":\"v\","
                           "\"value\":2,", 38) == 0,
       "item 0: its mean");
    ok(out && strstr(out, "},null,{\"merged\"") != NULL,
       "item 1 is null in its place");
    ok(out && strstr(out, "\"errors\":{\"1\":{\"error\":\"quorum_not_met\"")
       != NULL, "and in errors with its own answer");
    ok(out && strstr(out, "\"value\":10,") != NULL,
       "item 2: the mean of its one good answer");
    free(out);
    fanout_batch_free(&a);

    /* first: the good answer as it came; no winner, the failure */
    mc.mode = FANOUT_MERGE_FIRST;
    parts[0] = part("a", FANOUT_OK, 200, "{\"v\":1}");
    ok(fanout_batch_prepare(&a) == 0 && a.ok == 2, "first: two winners");
    out = write_answer(&a);
    ok(out && strncmp(out, "{\"items\":[{\"v\":1},null,{\"v\":10}]", 32) == 0,
       "first: the winners' bodies as they came, in order");
    free(out);
    fanout_batch_free(&a);

    /* nothing met its quorum: 502; all timed out: 504 */
    parts[0] = part("a", FANOUT_TIMEOUT, 504, NULL);
    parts[1] = part("b", FANOUT_TIMEOUT, 504, NULL);
    parts[4] = part("a", FANOUT_HTTP_5XX, 500, NULL);
    mc.mode = FANOUT_MERGE_ALL;
    ok(fanout_batch_prepare(&a) == 0 && a.status == 502 && a.ok == 0,
       "no call met its quorum: 502");
    fanout_batch_free(&a);

    a.ncalls = 1;
    ok(fanout_batch_prepare(&a) == 0 && a.status == 504,
       "every failed call timed out: 504");
    fanout_batch_free(&a);

    /* the cache: a call whose every target was cached */
    parts[0] = part("a", FANOUT_OK, 200, "{\"v\":1}");
    parts[1] = part("b", FANOUT_OK, 200, "{\"v\":2}");
    parts[0].cached = 1;
    parts[1].cached = 1;
    parts[2] = part("a", FANOUT_OK, 200, "{\"v\":1}");
    parts[3] = part("b", FANOUT_OK, 200, "{\"v\":2}");
    parts[2].cached = 1;
    a.ncalls = 2;
    a.chunk = 4;
    a.nitems = 7;
    mc.cache_meta = 1;
    ok(fanout_batch_prepare(&a) == 0 && a.cached == 1,
       "one call wholly from the cache, one half");
    out = write_answer(&a);
    ok(out && strstr(out, "\"meta\":{\"items\":7,\"chunk\":4,\"chunks\":2,"
                          "\"ok\":2,\"failed\":0,\"targets\":2,"
                          "\"cached\":1}}") != NULL,
       "meta with chunks and cached");
    free(out);
    fanout_batch_free(&a);
}


int
main(void)
{
    test_split();
    test_large();
    test_answer();

    return done_testing();
}
