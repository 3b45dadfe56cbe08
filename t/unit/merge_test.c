/*
 * Unit tests of fanout_merge.c: classification of answers, the merge
 * strategies and the documents they write.
 */

#include <math.h>
#include <stdlib.h>
#include <time.h>
#include <jansson.h>

#include "fanout_merge.h"
#include "tap.h"


static const char  *field;


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

    fanout_part_parse(&p, field, field ? strlen(field) : 0);

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


/* the merged document as text, and its status */

static char  *text;

/* conf's answer written (by fanout_merge_write, or _v2), both passes */

static const char *
written(fanout_merge_conf_t *mc, fanout_part_t *parts, size_t n,
    int *status)
{
    size_t            len;
    fanout_out_t      o;
    fanout_merged_t   m;
    void            (*write)(const fanout_merge_conf_t *conf,
                             const fanout_part_t *parts, size_t n,
                             const fanout_merged_t *m, fanout_out_t *out);

    write = mc->v2 ? fanout_merge_write_v2 : fanout_merge_write;

    if (fanout_merge_prepare(mc, parts, n, &m) != 0) {
        return NULL;
    }

    o.buf = NULL;
    o.len = 0;
    write(mc, parts, n, &m, &o);
    len = o.len;

    text = realloc(text, len + 1);
    o.buf = text;
    o.len = 0;
    write(mc, parts, n, &m, &o);
    text[o.len] = '\0';

    if (status) {
        *status = m.status;
    }

    fanout_merged_free(&m);

    return (len == o.len) ? text : "(sizing pass differs)";
}


static const char *
merge(fanout_merge_mode_e mode, unsigned quorum, fanout_part_t *parts,
    size_t n, int *status)
{
    fanout_merge_conf_t  mc;

    memset(&mc, 0, sizeof(mc));
    mc.mode = mode;
    mc.field = field;
    mc.field_len = field ? strlen(field) : 0;
    mc.quorum = quorum;

    return written(&mc, parts, n, status);
}


/* a value out of the written document, via jansson */

static json_t *
get(const char *doc, const char *a, const char *b, const char *c)
{
    static json_t  *root;
    json_t         *v;

    json_decref(root);
    root = json_loads(doc, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);

    if (root == NULL) {
        printf("# not JSON: %s\n", doc);
    }

    v = json_object_get(root, a);
    v = b ? json_object_get(v, b) : v;
    v = c ? json_object_get(v, c) : v;

    return v;
}


/* compact JSON text of a value, kept until the next call */

static const char *
dump(json_t *v)
{
    static char  *s;

    free(s);
    s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

    return s;
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

    field = NULL;

    p = part("a", 1, 200, "{\"x\":1}");
    ok(p.kind == FANOUT_OK, "2xx JSON object: ok");
    p = part("a", 1, 201, "[1,2]");
    ok(p.kind == FANOUT_OK, "201 with an array: ok");
    p = part("a", 1, 200, "3.5");
    ok(p.kind == FANOUT_OK, "a bare number is JSON");
    p = part("a", 1, 200, "");
    ok(p.kind == FANOUT_BAD_JSON, "empty body: bad_json");
    p = part("a", 1, 200, "{\"x\":");
    ok(p.kind == FANOUT_BAD_JSON, "truncated body: bad_json");
    p = part("a", 1, 200, "<html>");
    ok(p.kind == FANOUT_BAD_JSON, "HTML: bad_json");
    p = part("a", 1, 503, "{\"x\":1}");
    ok(p.kind == FANOUT_HTTP_5XX, "503: http_5xx");
    is_str(fanout_kind_error(&p, buf, sizeof(buf)), "http_503", "http_503");
    p = part("a", 1, 404, "{}");
    ok(p.kind == FANOUT_HTTP_4XX, "404: http_4xx");
    is_str(fanout_kind_error(&p, buf, sizeof(buf)), "http_404", "http_404");
    p = failed("a", FANOUT_TIMEOUT, 504);
    is_str(fanout_kind_error(&p, buf, sizeof(buf)), "timeout", "timeout");
    is_str(fanout_kind_name(FANOUT_TOO_LARGE), "too_large", "kind name");

    field = "o.s";
    p = part("a", 1, 200, "{\"o\":{\"s\":[1, 2]}}");
    ok(p.field.len == 6 && memcmp(p.field.p, "[1, 2]", 6) == 0,
       "the field's span is found while validating");
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

    p[0] = failed("a", FANOUT_OK, 200);
    p[1] = failed("b", FANOUT_OVERLOADED, 503);
    p[2] = failed("c", FANOUT_OVERLOADED, 503);
    ok(fanout_merge_status(p, 3, 2) == 503,
       "only shed as overloaded (max_inflight=): 503");

    p[2] = failed("c", FANOUT_TIMEOUT, 504);
    ok(fanout_merge_status(p, 3, 2) == 502, "overloaded and a timeout: 502");
}


static void
test_all(void)
{
    int            status;
    fanout_part_t  p[3];

    field = NULL;

    p[0] = part("a", 1, 200, "{\"label\": \"cat\", \"p\": 0.70}");
    p[1] = failed("b", FANOUT_TIMEOUT, 504);
    p[2] = part("c", 1, 500, "oops");

    is_str(merge(FANOUT_MERGE_ALL, 1, p, 3, &status),
           "{\"results\":{\"a\":{\"label\": \"cat\", \"p\": 0.70}},"
           "\"errors\":{\"b\":{\"status\":504,\"error\":\"timeout\"},"
           "\"c\":{\"status\":500,\"error\":\"http_500\"}},"
           "\"meta\":{\"targets\":3,\"ok\":1,\"failed\":2,\"quorum\":1,"
           "\"latency_ms\":{\"a\":7,\"b\":0,\"c\":7}}}",
           "all: the documented shape, answers byte for byte");
    ok(status == 200, "all: 200 with one success");

    merge(FANOUT_MERGE_ALL, 2, p, 3, &status);
    ok(status == 502, "all: quorum 2 not met: 502");
    is_str(json_string_value(get(text, "error", NULL, NULL)),
           "quorum_not_met", "all: error names the quorum");

    /* meta.cache: which answers came from the per-target cache */
    {
        fanout_merge_conf_t  mc;

        p[0].cached = 1;
        memset(&mc, 0, sizeof(mc));
        mc.mode = FANOUT_MERGE_ALL;
        mc.quorum = 1;
        mc.cache_meta = 1;

        written(&mc, p, 3, NULL);
        is_str(dump(get(text, "meta", "cache", NULL)),
               "{\"a\":\"HIT\",\"b\":\"MISS\",\"c\":\"MISS\"}",
               "all: meta.cache names the cached answers");
        p[0].cached = 0;

        /* the trace and request ids, as they are */
        mc.cache_meta = 0;
        mc.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
        mc.trace_id_len = 32;
        mc.request_id = "req-42:a";
        mc.request_id_len = 8;

        written(&mc, p, 3, NULL);
        is_str(dump(get(text, "meta", "trace_id", NULL)),
               "\"4bf92f3577b34da6a3ce929d0e0e4736\"", "all: meta.trace_id");
        is_str(dump(get(text, "meta", "request_id", NULL)), "\"req-42:a\"",
               "all: meta.request_id");
    }

    p[0] = failed("a \"quoted\"", FANOUT_TIMEOUT, 504);
    merge(FANOUT_MERGE_ALL, 1, p, 1, &status);
    ok(get(text, "errors", "a \"quoted\"", NULL) != NULL,
       "all: names are escaped");
    ok(status == 504, "all: only a timeout: 504");
}


static void
test_mean(void)
{
    int            status;
    json_t        *v;
    fanout_part_t  p[4];

    field = "o.s";

    p[0] = part("a", 2, 200, "{\"o\":{\"s\":[0.1, 0.2, 0.7]}}");
    p[1] = part("b", 1, 200, "{\"o\":{\"s\":[0.3,0.3,0.4]}}");
    p[2] = part("c", 1, 200, "{\"o\":{\"s\":[1,2]}}");
    p[3] = part("d", 1, 200, "{\"o\":{\"t\":1}}");

    merge(FANOUT_MERGE_MEAN, 1, p, 4, &status);

    ok(status == 200, "mean: 200");
    is_str(json_string_value(get(text, "merged", "field", NULL)), "o.s",
           "mean: field");
    ok(json_integer_value(get(text, "merged", "from", NULL)) == 2,
       "mean: from the two usable answers");
    v = get(text, "merged", "value", NULL);
    ok(near(json_number_value(json_array_get(v, 0)), (2 * 0.1 + 0.3) / 3)
       && near(json_number_value(json_array_get(v, 1)), (2 * 0.2 + 0.3) / 3)
       && near(json_number_value(json_array_get(v, 2)), (2 * 0.7 + 0.4) / 3),
       "mean: weighted element-wise");
    is_str(json_string_value(get(text, "errors", "c", "error")), "bad_field",
           "mean: another shape is bad_field");
    is_str(json_string_value(get(text, "errors", "d", "detail")),
           "field is missing", "mean: a missing field says so");
    ok(p[2].kind == FANOUT_BAD_FIELD, "mean: the part is reclassified");
    ok(json_integer_value(get(text, "meta", "ok", NULL)) == 2,
       "mean: meta.ok counts usable answers");

    field = "m";
    p[0] = part("a", 1, 200, "{\"m\":[[1,2],[3,4]]}");
    p[1] = part("b", 3, 200, "{\"m\": [ [5, 6] , [7, 8] ] }");

    merge(FANOUT_MERGE_MEAN, 1, p, 2, &status);
    ok(strstr(text, "\"value\":[[4,5],[6,7]]") != NULL,
       "mean: nested arrays, integral means as integers");

    p[0] = part("a", 1, 200, "{\"m\":1}");
    p[1] = part("b", 3, 200, "{\"m\":3}");
    merge(FANOUT_MERGE_MEAN, 1, p, 2, &status);
    ok(near(json_number_value(get(text, "merged", "value", NULL)), 2.5),
       "mean: of a number");

    p[0] = part("a", 1, 200, "{\"m\":\"x\"}");
    p[1] = failed("b", FANOUT_TIMEOUT, 504);
    merge(FANOUT_MERGE_MEAN, 1, p, 2, &status);
    ok(json_is_null(get(text, "merged", "value", NULL))
       && json_integer_value(get(text, "merged", "from", NULL)) == 0,
       "mean: null value from 0");
    ok(status == 502, "mean: no usable answer is 502");

    p[0] = part("a", 1, 200, "{\"m\":[]}");
    merge(FANOUT_MERGE_MEAN, 1, p, 1, &status);
    ok(p[0].kind == FANOUT_BAD_FIELD, "mean: an empty array is bad_field");

    p[0] = part("a", 1, 200, "{\"m\":[1,[2]]}");
    merge(FANOUT_MERGE_MEAN, 1, p, 1, &status);
    ok(status == 200, "mean: a ragged array is one shape of its own");

    p[0] = part("a", 1, 200, "{\"m\":[1,\"2\"]}");
    merge(FANOUT_MERGE_MEAN, 1, p, 1, &status);
    ok(p[0].kind == FANOUT_BAD_FIELD, "mean: a string element is bad_field");

    p[0] = part("a", 1, 200, "{\"m\":1e308}");
    p[1] = part("b", 1, 200, "{\"m\":1e308}");
    merge(FANOUT_MERGE_MEAN, 1, p, 2, &status);
    ok(get(text, "merged", NULL, NULL) != NULL,
       "mean: overflow still writes JSON");

    {
        /* 3 answers of 400,000 numbers: exact reads, shortest writes */
        char           *b[3];
        size_t          i, k, len, bad;
        json_t         *v;
        fanout_part_t   q[3];

        for (k = 0; k < 3; k++) {
            b[k] = malloc(400000 * 12 + 16);
            len = (size_t) sprintf(b[k], "{\"m\":[");

            for (i = 0; i < 400000; i++) {
                len += (size_t) sprintf(b[k] + len, "%s0.%06zu",
                                        i ? "," : "", (i * 7 + k) % 1000000);
            }

            memcpy(b[k] + len, "]}", 3);
            q[k] = part(k == 0 ? "a" : k == 1 ? "b" : "c", 1, 200, b[k]);
        }

        merge(FANOUT_MERGE_MEAN, 1, q, 3, &status);
        v = get(text, "merged", "value", NULL);
        bad = 0;

        for (i = 0; i < 400000; i += 997) {
            /* the mean of x, x + 1e-6 and x + 2e-6 is x + 1e-6 */
            if (json_real_value(json_array_get(v, i))
                != ((double) ((i * 7 + 0) % 1000000) / 1e6
                    + (double) ((i * 7 + 1) % 1000000) / 1e6
                    + (double) ((i * 7 + 2) % 1000000) / 1e6) / 3)
            {
                bad++;
            }
        }

        ok(status == 200 && json_array_size(v) == 400000 && bad == 0,
           "mean: 3 answers of 400,000 numbers");

        for (k = 0; k < 3; k++) {
            free(b[k]);
        }
    }
}


static void
test_attempts(void)
{
    int            status;
    fanout_part_t  p[3];

    field = NULL;
    p[0] = part("a", 1, 200, "{}");
    p[1] = part("b", 1, 200, "{}");
    p[2] = failed("c", FANOUT_HTTP_5XX, 503);
    p[1].attempts = 3;
    p[2].attempts = 2;
    p[0].attempts = 1;

    merge(FANOUT_MERGE_ALL, 1, p, 3, &status);
    is_str(dump(get(text, "meta", "attempts", NULL)), "{\"b\":3,\"c\":2}",
           "meta.attempts: the calls retried, with their tries");

    p[1].attempts = 0;
    p[2].attempts = 1;
    merge(FANOUT_MERGE_ALL, 1, p, 3, &status);
    ok(get(text, "meta", "attempts", NULL) == NULL,
       "no meta.attempts when nothing was retried");
}


static void
test_vote(void)
{
    int            status;
    fanout_part_t  p[4];

    field = "l";

    p[0] = part("a", 1.5, 200, "{\"l\":\"cat\"}");
    p[1] = part("b", 1, 200, "{\"l\":\"dog\"}");
    p[2] = part("c", 1, 200, "{\"l\": \"dog\"}");
    p[3] = part("d", 1, 200, "{\"l\":{\"no\":1}}");

    merge(FANOUT_MERGE_VOTE, 1, p, 4, &status);
    is_str(json_string_value(get(text, "merged", "value", NULL)), "dog",
           "vote: weighted majority");
    is_str(dump(get(text, "merged", "votes", NULL)),
           "{\"cat\":1.5,\"dog\":2}", "vote: tally in order of first vote");
    ok(p[3].kind == FANOUT_BAD_FIELD, "vote: an object is not a ballot");

    p[0] = part("a", 1, 200, "{\"l\":\"x\"}");
    p[1] = part("b", 1, 200, "{\"l\":\"y\"}");
    p[2] = part("c", 1, 200, "{\"l\":\"y\"}");
    p[3] = part("d", 1, 200, "{\"l\":\"x\"}");
    merge(FANOUT_MERGE_VOTE, 1, p, 4, &status);
    is_str(json_string_value(get(text, "merged", "value", NULL)), "x",
           "vote: a tie goes to the earlier target");

    p[0] = part("a", 0.3, 200, "{\"l\":\"x\"}");
    p[1] = part("b", 0.1, 200, "{\"l\":\"y\"}");
    p[2] = part("c", 0.2, 200, "{\"l\":\"y\"}");
    merge(FANOUT_MERGE_VOTE, 1, p, 3, &status);
    is_str(json_string_value(get(text, "merged", "value", NULL)), "x",
           "vote: 0.1 + 0.2 ties with 0.3");
    is_str(dump(get(text, "merged", "votes", NULL)),
           "{\"x\":0.29999999999999999,\"y\":0.29999999999999999}",
           "vote: decimal weights print as decimals");

    p[0] = part("a", 1, 200, "{\"l\":true}");
    p[1] = part("b", 1, 200, "{\"l\":1}");
    p[2] = part("c", 1, 200, "{\"l\":true}");
    merge(FANOUT_MERGE_VOTE, 1, p, 3, &status);
    ok(json_is_true(get(text, "merged", "value", NULL)),
       "vote: booleans win as booleans");
    ok(json_integer_value(get(text, "merged", "votes", "1")) == 1,
       "vote: a number ballot is a quoted key");

    p[0] = part("a", 1, 200, "{\"l\":null}");
    merge(FANOUT_MERGE_VOTE, 1, p, 1, &status);
    ok(p[0].kind == FANOUT_BAD_FIELD, "vote: null is not a ballot");

    p[0] = failed("a", FANOUT_TIMEOUT, 504);
    merge(FANOUT_MERGE_VOTE, 1, p, 1, &status);
    ok(json_is_null(get(text, "merged", "value", NULL)),
       "vote: null without ballots");
    ok(status == 504, "vote: all timed out: 504");

    /* ballots by what they mean, not how they are written */
    p[0] = part("a", 1, 200, "{\"l\":\"caf\\u00e9\"}");
    p[1] = part("b", 1, 200, "{\"l\":\"caf\xc3\xa9\"}");
    p[2] = part("c", 1.5, 200, "{\"l\":\"tea\"}");
    merge(FANOUT_MERGE_VOTE, 1, p, 3, &status);
    is_str(json_string_value(get(text, "merged", "value", NULL)),
           "caf\xc3\xa9", "vote: an escaped string is the same ballot");
    is_str(dump(get(text, "merged", "votes", NULL)),
           "{\"caf\xc3\xa9\":2,\"tea\":1.5}", "vote: and one key, decoded");

    p[0] = part("a", 1, 200, "{\"l\":1}");
    p[1] = part("b", 1, 200, "{\"l\":1.0}");
    p[2] = part("c", 1, 200, "{\"l\":1e0}");
    p[3] = part("d", 2.5, 200, "{\"l\":-0}");
    merge(FANOUT_MERGE_VOTE, 1, p, 4, &status);
    ok(json_integer_value(get(text, "merged", "value", NULL)) == 1
       && json_integer_value(get(text, "merged", "votes", "1")) == 3,
       "vote: 1, 1.0 and 1e0 are one ballot");

    p[0] = part("a", 1, 200, "{\"l\":\"1\"}");
    p[1] = part("b", 1, 200, "{\"l\":1}");
    p[2] = part("c", 1, 200, "{\"l\":\"true\"}");
    p[3] = part("d", 1, 200, "{\"l\":true}");
    merge(FANOUT_MERGE_VOTE, 1, p, 4, &status);
    is_str(dump(get(text, "merged", "votes", NULL)),
           "{\"\\\"1\\\"\":1,\"1\":1,\"\\\"true\\\"\":1,\"true\":1}",
           "vote: a string sharing a key with a number: all keyed as JSON, "
           "no duplicate key");
    is_str(json_string_value(get(text, "merged", "value", NULL)), "1",
           "vote: the string still wins as a string");

    p[0] = part("a", 1, 200, "{\"l\":\"z\"}");
    p[1] = part("b", 1, 200, "{\"l\":1}");
    p[2] = part("c", 1, 200, "{\"l\":true}");
    merge(FANOUT_MERGE_VOTE, 1, p, 3, &status);
    is_str(dump(get(text, "merged", "votes", NULL)),
           "{\"z\":1,\"1\":1,\"true\":1}",
           "vote: kinds that share no key keep their plain keys");

    p[0] = part("a", 1, 200, "{\"l\":0}");
    p[1] = part("b", 1, 200, "{\"l\":-0.0}");
    p[2] = part("c", 1, 200, "{\"l\":1e400}");
    merge(FANOUT_MERGE_VOTE, 1, p, 3, &status);
    ok(json_integer_value(get(text, "merged", "votes", "0")) == 2
       && p[2].kind == FANOUT_BAD_FIELD,
       "vote: -0 votes with 0, 1e400 is bad_field");

    {
        /* 32 voters of a 1 MB label: linear, one full comparison each */
        char           *big;
        size_t          i, len;
        fanout_part_t   q[32];
        clock_t         t0;

        len = 1024 * 1024;
        big = malloc(len + 16);
        memcpy(big, "{\"l\":\"", 6);
        memset(big + 6, 'x', len);
        memcpy(big + 6 + len, "\"}", 3);

        for (i = 0; i < 32; i++) {
            q[i] = part(i % 2 ? "b" : "a", 1, 200, big);
        }

        t0 = clock();
        merge(FANOUT_MERGE_VOTE, 1, q, 32, &status);
        ok(status == 200 && strstr(text, "\"votes\":{") != NULL
           && clock() - t0 < 20 * CLOCKS_PER_SEC,
           "vote: 32 answers of 1 MB");
        free(big);
    }
}


static const char *
write_v2(fanout_merge_mode_e mode, fanout_part_t *parts, size_t n,
    const char *id)
{
    fanout_merge_conf_t  mc;

    memset(&mc, 0, sizeof(mc));
    mc.mode = mode;
    mc.field = field;
    mc.field_len = strlen(field);
    mc.quorum = 1;
    mc.v2 = 1;
    mc.model = "ens";
    mc.model_len = 3;
    fanout_merge_output_name(field, strlen(field), &mc.output,
                             &mc.output_len);
    mc.id = id;
    mc.id_len = id ? strlen(id) : 0;

    return written(&mc, parts, n, NULL);
}


static void
test_v2(void)
{
    const char     *name;
    size_t          len;
    fanout_part_t   p[3];

    fanout_merge_output_name("outputs[name=probabilities].data", 32, &name,
                             &len);
    ok(len == 13 && strncmp(name, "probabilities", 13) == 0,
       "v2: the output named by the selector");
    fanout_merge_output_name("output.scores.0", 15, &name, &len);
    ok(len == 6 && strncmp(name, "scores", 6) == 0,
       "v2: else the last key, not an index");
    fanout_merge_output_name("p", 1, &name, &len);
    ok(len == 1 && name[0] == 'p', "v2: a one-key path");

    field = "outputs[name=p].data";
    p[0] = part("a", 1, 200, "{\"outputs\":[{\"name\":\"p\",\"data\":"
                             "[[1,2],[3,4],[5,6]]}]}");
    p[1] = part("b", 1, 200, "{\"outputs\":[{\"data\":[[3,4],[5,6],[7,8]],"
                             "\"name\":\"p\"}]}");
    p[2] = failed("c", FANOUT_TIMEOUT, 504);

    is_str(write_v2(FANOUT_MERGE_MEAN, p, 3, "\"r1\""),
           "{\"model_name\":\"ens\",\"id\":\"r1\",\"outputs\":[{\"name\":"
           "\"p\",\"shape\":[3,2],\"datatype\":\"FP64\",\"data\":"
           "[2,3,4,5,6,7]}],\"parameters\":{\"fanout_targets\":3,"
           "\"fanout_ok\":2,\"fanout_quorum\":1,\"fanout_failed\":"
           "\"c:timeout\"}}",
           "v2 mean: shape [3,2], data flat, the id, the failures");

    field = "outputs[name=p].data.0";
    p[0] = part("a", 1, 200, "{\"outputs\":[{\"name\":\"p\",\"data\":[\"cat\"]}]}");
    p[1] = part("b", 1, 200, "{\"outputs\":[{\"name\":\"p\",\"data\":[\"cat\"]}]}");
    is_str(write_v2(FANOUT_MERGE_VOTE, p, 3, NULL),
           "{\"model_name\":\"ens\",\"outputs\":[{\"name\":\"p\",\"shape\":"
           "[1],\"datatype\":\"BYTES\",\"data\":[\"cat\"]}],\"parameters\":"
           "{\"fanout_targets\":3,\"fanout_ok\":2,\"fanout_quorum\":1,"
           "\"fanout_failed\":\"c:timeout\"}}",
           "v2 vote: a string is BYTES, no id when none came");

    p[0] = failed("a", FANOUT_HTTP_5XX, 503);
    p[1] = failed("b", FANOUT_HTTP_5XX, 503);
    is_str(write_v2(FANOUT_MERGE_VOTE, p, 3, NULL),
           "{\"error\":\"quorum_not_met: 0 of 3 targets answered, 1 "
           "needed\"}", "v2: the protocol's error object");

    field = NULL;
}


int
main(void)
{
    test_parse();
    test_status();
    test_all();
    test_mean();
    test_vote();
    test_v2();
    test_attempts();

    /* free what the helpers keep */
    get("{}", "x", NULL, NULL);
    dump(NULL);

    return done_testing();
}
