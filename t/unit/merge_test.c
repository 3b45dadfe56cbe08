/*
 * Unit tests of fanout_merge.c: classification of answers, the merge
 * strategies and the status of a merged answer.
 */

#include <math.h>
#include <stdlib.h>

#include "fanout_merge.h"
#include "tap.h"


static fanout_part_t
part(const char *name, double weight, int status, const char *body)
{
    fanout_part_t  p;

    memset(&p, 0, sizeof(p));
    p.name = name;
    p.weight = weight;
    p.status = status;
    p.body = body;
    p.body_len = body ? strlen(body) : 0;
    p.latency_ms = 7;

    fanout_part_parse(&p);

    return p;
}


static fanout_part_t
failed(const char *name, fanout_kind_e kind, int status)
{
    fanout_part_t  p;

    memset(&p, 0, sizeof(p));
    p.name = name;
    p.weight = 1;
    p.kind = kind;
    p.status = status;

    return p;
}


static json_t *
merge(fanout_merge_mode_e mode, const char *field, unsigned quorum,
    fanout_part_t *parts, size_t n, int *status)
{
    fanout_merge_conf_t  mc;

    mc.mode = mode;
    mc.field = field;
    mc.field_len = field ? strlen(field) : 0;
    mc.quorum = quorum;

    return fanout_merge(&mc, parts, n, status);
}


static void
release(fanout_part_t *parts, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        fanout_part_release(&parts[i]);
    }
}


static double
num(json_t *doc, const char *key, size_t index)
{
    json_t  *v;

    v = json_object_get(json_object_get(doc, "merged"), key);

    if (json_is_array(v)) {
        v = json_array_get(v, index);
    }

    return json_number_value(v);
}


static int
near(double a, double b)
{
    return fabs(a - b) < 1e-12;
}


static void
test_parse(void)
{
    char           buf[16];
    fanout_part_t  p;

    p = part("a", 1, 200, "{\"x\":1}");
    ok(p.kind == FANOUT_OK && json_is_object(p.json), "2xx JSON object: ok");
    fanout_part_release(&p);
    ok(p.json == NULL, "release clears the document");

    p = part("a", 1, 201, "[1,2]");
    ok(p.kind == FANOUT_OK, "201 with an array: ok");
    fanout_part_release(&p);

    p = part("a", 1, 200, "3.5");
    ok(p.kind == FANOUT_OK, "a bare number is JSON");
    fanout_part_release(&p);

    p = part("a", 1, 200, "");
    ok(p.kind == FANOUT_BAD_JSON, "empty body: bad_json");

    p = part("a", 1, 200, "{\"x\":");
    ok(p.kind == FANOUT_BAD_JSON, "truncated body: bad_json");

    p = part("a", 1, 200, "<html>");
    ok(p.kind == FANOUT_BAD_JSON, "HTML: bad_json");

    p = part("a", 1, 200, "{} {}");
    ok(p.kind == FANOUT_BAD_JSON, "trailing garbage: bad_json");

    p = part("a", 1, 503, "{\"x\":1}");
    ok(p.kind == FANOUT_HTTP_5XX && p.json == NULL, "503: http_5xx");
    is_str(fanout_kind_error(&p, buf, sizeof(buf)), "http_503",
           "error text http_503");

    p = part("a", 1, 404, "{}");
    ok(p.kind == FANOUT_HTTP_4XX, "404: http_4xx");
    is_str(fanout_kind_error(&p, buf, sizeof(buf)), "http_404",
           "error text http_404");

    p = failed("a", FANOUT_TIMEOUT, 504);
    is_str(fanout_kind_error(&p, buf, sizeof(buf)), "timeout",
           "error text timeout");
    is_str(fanout_kind_name(FANOUT_TOO_LARGE), "too_large", "kind name");
}


static void
test_status(void)
{
    fanout_part_t  p[3];

    p[0] = failed("a", FANOUT_OK, 200);
    p[1] = failed("b", FANOUT_TIMEOUT, 504);
    p[2] = failed("c", FANOUT_TIMEOUT, 504);

    ok(fanout_merge_status(p, 3, 1) == 200, "quorum 1 met");
    ok(fanout_merge_status(p, 3, 2) == 504, "only timeouts failed: 504");

    p[2] = failed("c", FANOUT_UPSTREAM_ERROR, 502);
    ok(fanout_merge_status(p, 3, 2) == 502, "a non-timeout failure: 502");

    p[0] = failed("a", FANOUT_BAD_JSON, 200);
    ok(fanout_merge_status(p, 3, 1) == 502, "nothing succeeded: 502");
}


static void
test_all(void)
{
    int            status;
    char          *s;
    json_t        *doc;
    fanout_part_t  p[3];

    p[0] = part("a", 1, 200, "{\"label\":\"cat\"}");
    p[1] = failed("b", FANOUT_TIMEOUT, 504);
    p[2] = part("c", 1, 500, "oops");

    doc = merge(FANOUT_MERGE_ALL, NULL, 1, p, 3, &status);
    ok(doc != NULL && status == 200, "all: 200 with one success");

    s = json_dumps(doc, JSON_COMPACT);
    is_str(s, "{\"results\":{\"a\":{\"label\":\"cat\"}},"
              "\"errors\":{\"b\":{\"status\":504,\"error\":\"timeout\"},"
              "\"c\":{\"status\":500,\"error\":\"http_500\"}},"
              "\"meta\":{\"targets\":3,\"ok\":1,\"failed\":2,\"quorum\":1,"
              "\"latency_ms\":{\"a\":7,\"b\":0,\"c\":7}}}",
           "all: the documented shape");
    free(s);
    json_decref(doc);

    doc = merge(FANOUT_MERGE_ALL, NULL, 2, p, 3, &status);
    ok(status == 502, "all: quorum 2 not met: 502");
    is_str(json_string_value(json_object_get(doc, "error")), "quorum_not_met",
           "all: error names the quorum");
    json_decref(doc);

    release(p, 3);
}


static void
test_mean(void)
{
    int            status;
    json_t        *doc, *merged, *errors;
    fanout_part_t  p[4];

    p[0] = part("a", 2, 200, "{\"o\":{\"s\":[0.1,0.2,0.7]}}");
    p[1] = part("b", 1, 200, "{\"o\":{\"s\":[0.3,0.3,0.4]}}");
    p[2] = part("c", 1, 200, "{\"o\":{\"s\":[1,2]}}");
    p[3] = part("d", 1, 200, "{\"o\":{\"t\":1}}");

    doc = merge(FANOUT_MERGE_MEAN, "o.s", 1, p, 4, &status);
    merged = json_object_get(doc, "merged");

    ok(status == 200, "mean: 200");
    is_str(json_string_value(json_object_get(merged, "field")), "o.s",
           "mean: field");
    ok(json_integer_value(json_object_get(merged, "from")) == 2,
       "mean: from the two usable answers");
    ok(near(num(doc, "value", 0), (2 * 0.1 + 0.3) / 3)
       && near(num(doc, "value", 1), (2 * 0.2 + 0.3) / 3)
       && near(num(doc, "value", 2), (2 * 0.7 + 0.4) / 3),
       "mean: weighted element-wise");

    errors = json_object_get(doc, "errors");
    is_str(json_string_value(json_object_get(json_object_get(errors, "c"),
                                             "error")),
           "bad_field", "mean: another shape is bad_field");
    is_str(json_string_value(json_object_get(json_object_get(errors, "d"),
                                             "error")),
           "bad_field", "mean: a missing field is bad_field");
    ok(p[2].kind == FANOUT_BAD_FIELD && p[2].json == NULL,
       "mean: the part itself is reclassified");
    ok(json_integer_value(json_object_get(json_object_get(doc, "meta"),
                                          "ok")) == 2,
       "mean: meta.ok counts usable answers");
    json_decref(doc);
    release(p, 4);

    /* nested arrays and integers */
    p[0] = part("a", 1, 200, "{\"m\":[[1,2],[3,4]]}");
    p[1] = part("b", 3, 200, "{\"m\":[[5,6],[7,8]]}");

    doc = merge(FANOUT_MERGE_MEAN, "m", 1, p, 2, &status);
    merged = json_object_get(json_object_get(doc, "merged"), "value");
    ok(near(json_number_value(json_array_get(json_array_get(merged, 1), 1)),
            (4 + 3 * 8) / 4.0),
       "mean: nested arrays");
    json_decref(doc);
    release(p, 2);

    /* nothing usable */
    p[0] = part("a", 1, 200, "{\"m\":\"x\"}");
    p[1] = failed("b", FANOUT_TIMEOUT, 504);

    doc = merge(FANOUT_MERGE_MEAN, "m", 1, p, 2, &status);
    merged = json_object_get(doc, "merged");
    ok(json_is_null(json_object_get(merged, "value"))
       && json_integer_value(json_object_get(merged, "from")) == 0,
       "mean: null value from 0");
    ok(status == 502, "mean: no usable answer is 502");
    json_decref(doc);
    release(p, 2);

    /* an empty array is not a numeric value */
    p[0] = part("a", 1, 200, "{\"m\":[]}");

    doc = merge(FANOUT_MERGE_MEAN, "m", 1, p, 1, &status);
    ok(p[0].kind == FANOUT_BAD_FIELD, "mean: an empty array is bad_field");
    json_decref(doc);
    release(p, 1);
}


static void
test_vote(void)
{
    int            status;
    char          *s;
    json_t        *doc, *merged;
    fanout_part_t  p[4];

    p[0] = part("a", 1.5, 200, "{\"l\":\"cat\"}");
    p[1] = part("b", 1, 200, "{\"l\":\"dog\"}");
    p[2] = part("c", 1, 200, "{\"l\":\"dog\"}");
    p[3] = part("d", 1, 200, "{\"l\":{\"no\":1}}");

    doc = merge(FANOUT_MERGE_VOTE, "l", 1, p, 4, &status);
    merged = json_object_get(doc, "merged");

    is_str(json_string_value(json_object_get(merged, "value")), "dog",
           "vote: weighted majority");
    s = json_dumps(json_object_get(merged, "votes"), JSON_COMPACT);
    is_str(s, "{\"cat\":1.5,\"dog\":2}", "vote: tally, integral as integers");
    free(s);
    ok(p[3].kind == FANOUT_BAD_FIELD, "vote: an object is not a ballot");
    json_decref(doc);
    release(p, 4);

    /* ties go to the earlier target */
    p[0] = part("a", 1, 200, "{\"l\":\"x\"}");
    p[1] = part("b", 1, 200, "{\"l\":\"y\"}");
    p[2] = part("c", 1, 200, "{\"l\":\"y\"}");
    p[3] = part("d", 1, 200, "{\"l\":\"x\"}");

    doc = merge(FANOUT_MERGE_VOTE, "l", 1, p, 4, &status);
    is_str(json_string_value(json_object_get(json_object_get(doc, "merged"),
                                             "value")),
           "x", "vote: a tie goes to the earlier target");
    json_decref(doc);
    release(p, 4);

    /* 0.1 + 0.2 against 0.3: a tie despite binary floating point */
    p[0] = part("a", 0.3, 200, "{\"l\":\"x\"}");
    p[1] = part("b", 0.1, 200, "{\"l\":\"y\"}");
    p[2] = part("c", 0.2, 200, "{\"l\":\"y\"}");

    doc = merge(FANOUT_MERGE_VOTE, "l", 1, p, 3, &status);
    is_str(json_string_value(json_object_get(json_object_get(doc, "merged"),
                                             "value")),
           "x", "vote: equal weights in decimals tie");
    json_decref(doc);
    release(p, 3);

    /* types are kept: 1 and "1" and true are different ballots */
    p[0] = part("a", 1, 200, "{\"l\":true}");
    p[1] = part("b", 1, 200, "{\"l\":1}");
    p[2] = part("c", 1, 200, "{\"l\":true}");

    doc = merge(FANOUT_MERGE_VOTE, "l", 1, p, 3, &status);
    ok(json_is_true(json_object_get(json_object_get(doc, "merged"), "value")),
       "vote: booleans win as booleans");
    json_decref(doc);
    release(p, 3);

    /* no ballot at all */
    p[0] = failed("a", FANOUT_TIMEOUT, 504);

    doc = merge(FANOUT_MERGE_VOTE, "l", 1, p, 1, &status);
    ok(json_is_null(json_object_get(json_object_get(doc, "merged"), "value")),
       "vote: null without ballots");
    ok(status == 504, "vote: all timed out: 504");
    json_decref(doc);
}


int
main(void)
{
    test_parse();
    test_status();
    test_all();
    test_mean();
    test_vote();

    return done_testing();
}
