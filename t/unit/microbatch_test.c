/*
 * Micro-batching: requests read, keyed and combined in each format, and
 * answers split back; what cannot be batched, and answers that do not
 * fit their callers.
 */

#include <stdlib.h>

#include "fanout_microbatch.h"
#include "tap.h"


static char  out_buf[65536];


static const char *
key(fanout_mb_format_e fmt, const char *body)
{
    static char      buf[2][4096];
    static int       which;
    fanout_out_t     o;
    fanout_mb_doc_t  d;

    if (fanout_mb_request(fmt, body, strlen(body), &d) != 0) {
        return "(not batchable)";
    }

    which ^= 1;
    o.buf = buf[which];
    o.len = 0;
    fanout_mb_key(body, &d, strlen(body), &o);
    o.buf[o.len] = '\0';

    return o.buf;
}


static const char *
combine(fanout_mb_format_e fmt, const char **bodies, size_t n)
{
    size_t           i, lens[8], len;
    fanout_out_t     o;
    fanout_mb_doc_t  docs[8];

    for (i = 0; i < n; i++) {
        lens[i] = strlen(bodies[i]);

        if (fanout_mb_request(fmt, bodies[i], lens[i], &docs[i]) != 0) {
            return "(not batchable)";
        }
    }

    o.buf = NULL;
    o.len = 0;
    fanout_mb_combine(bodies, lens, docs, n, &o);
    len = o.len;

    o.buf = out_buf;
    o.len = 0;
    fanout_mb_combine(bodies, lens, docs, n, &o);
    out_buf[o.len] = '\0';

    return (o.len == len) ? out_buf : "(length mismatch)";
}


/* caller k of rows[] gets its slice; id: its request's (or NULL) */

static const char *
slice(fanout_mb_format_e fmt, const char *answer, const size_t *rows,
    size_t n, size_t k, const char *id)
{
    size_t            i, first, total;
    unsigned          t;
    fanout_out_t      o;
    fanout_span_t    *items[FANOUT_MB_MAX_TENSORS], sid;
    fanout_mb_doc_t   d;
    static char       buf[65536];

    for (i = 0, total = 0, first = 0; i < n; i++) {
        if (i < k) {
            first += rows[i];
        }

        total += rows[i];
    }

    if (fanout_mb_answer(fmt, answer, strlen(answer), total, &d) != 0) {
        return "(bad_batch)";
    }

    for (t = 0; t < d.ntensors; t++) {
        items[t] = malloc(fanout_mb_items_room(&d, t) * sizeof(fanout_span_t));

        if (fanout_mb_items(&d, t, items[t]) != 0) {
            do {
                free(items[t]);
            } while (t-- > 0);

            return "(items)";
        }
    }

    sid.p = id;
    sid.len = id ? strlen(id) : 0;

    o.buf = buf;
    o.len = 0;

    if (fanout_mb_slice(fmt, answer, strlen(answer), &d, items, first,
                        rows[k], id ? &sid : NULL, &o)
        != 0)
    {
        return "(slice failed)";
    }

    buf[o.len] = '\0';

    for (t = 0; t < d.ntensors; t++) {
        free(items[t]);
    }

    return buf;
}


static void
test_instances(void)
{
    size_t       rows[3] = { 2, 1, 3 };
    const char  *b[3] = {
        "{\"instances\":[1,2],\"parameters\":{\"t\":1}}",
        "{\"instances\":[ {\"x\":3} ],\"parameters\":{\"t\":1}}",
        "{\"instances\":[4,5,6],\"parameters\":{\"t\":1}}"
    };
    const char  *answer = "{\"predictions\":[10,20,30,40,50,60],"
                          "\"model_version\":\"7\"}";

    is_str(key(FANOUT_MB_INSTANCES, b[0]), key(FANOUT_MB_INSTANCES, b[2]),
           "instances: the same key whatever the rows");
    ok(strcmp(key(FANOUT_MB_INSTANCES, b[0]),
              key(FANOUT_MB_INSTANCES,
                  "{\"instances\":[1],\"parameters\":{\"t\":2}}")) != 0,
       "instances: other parameters, another key");
    is_str(combine(FANOUT_MB_INSTANCES, b, 3),
           "{\"instances\":[1,2, {\"x\":3} ,4,5,6],\"parameters\":{\"t\":1}}",
           "instances: the rows of all, in order, the rest of the first");

    is_str(slice(FANOUT_MB_INSTANCES, answer, rows, 3, 0, NULL),
           "{\"predictions\":[10,20],\"model_version\":\"7\"}",
           "instances: the first caller's two predictions");
    is_str(slice(FANOUT_MB_INSTANCES, answer, rows, 3, 1, NULL),
           "{\"predictions\":[30],\"model_version\":\"7\"}",
           "instances: the second one's");
    is_str(slice(FANOUT_MB_INSTANCES, answer, rows, 3, 2, NULL),
           "{\"predictions\":[40,50,60],\"model_version\":\"7\"}",
           "instances: the third one's");
    is_str(slice(FANOUT_MB_INSTANCES, "{\"predictions\":[10,20,30,40,50]}",
                 rows, 3, 0, NULL), "(bad_batch)",
           "instances: a prediction short: bad_batch");
    is_str(slice(FANOUT_MB_INSTANCES, "{\"predictions\":[1,2,3,4,5,6,7]}",
                 rows, 3, 0, NULL), "(bad_batch)",
           "instances: one too many: bad_batch");
    is_str(slice(FANOUT_MB_INSTANCES, "{\"predictions\":[1,2,3,4,5,6]",
                 rows, 3, 0, NULL), "(bad_batch)",
           "instances: a cut answer: bad_batch");
    is_str(slice(FANOUT_MB_INSTANCES, "{\"error\":\"OOM\"}", rows, 3, 0,
                 NULL), "(bad_batch)", "instances: no predictions");

    is_str(key(FANOUT_MB_INSTANCES, "{\"instances\":[]}"), "(not batchable)",
           "no rows: sent alone");
    is_str(key(FANOUT_MB_INSTANCES, "{\"instances\":7}"), "(not batchable)",
           "not an array: sent alone");
    is_str(key(FANOUT_MB_INSTANCES,
               "{\"instances\":[1],\"instances\":[2]}"), "(not batchable)",
           "a duplicate key: sent alone");
    is_str(key(FANOUT_MB_INSTANCES, "{\"instances\":[1]"), "(not batchable)",
           "not JSON: sent alone");
}


static void
test_array(void)
{
    size_t       rows[2] = { 1, 2 };
    const char  *b[2] = { " [\"a\"] ", "[\"b\",\"c\"]" };

    is_str(combine(FANOUT_MB_ARRAY, b, 2), " [\"a\",\"b\",\"c\"] ",
           "array: one array of all");
    is_str(slice(FANOUT_MB_ARRAY, "[{\"y\":1},{\"y\":2},{\"y\":3}]", rows, 2,
                 1, NULL), "[{\"y\":2},{\"y\":3}]", "array: the second's");
    is_str(key(FANOUT_MB_ARRAY, "{\"a\":1}"), "(not batchable)",
           "array: an object is not");
}


static void
test_openai(void)
{
    size_t       rows[2] = { 1, 2 };
    const char  *b[2] = {
        "{\"model\":\"e5\",\"input\":\"one\"}",
        "{\"model\":\"e5\",\"input\":[\"two\",\"three\"]}"
    };
    const char  *b1[2] = {
        "{\"model\":\"e5\",\"input\":\"one\"}",
        "{\"model\":\"e5\",\"input\":\"two\"}"
    };
    const char  *answer = "{\"object\":\"list\",\"data\":["
        "{\"object\":\"embedding\",\"index\":0,\"embedding\":[0.1]},"
        "{\"object\":\"embedding\",\"index\":1,\"embedding\":[0.2]},"
        "{\"object\":\"embedding\",\"index\":2,\"embedding\":[0.3]}],"
        "\"model\":\"e5\"}";

    ok(strcmp(key(FANOUT_MB_OPENAI, b[0]), key(FANOUT_MB_OPENAI, b[1])) != 0,
       "openai: a lone text and an array are batched apart");
    is_str(combine(FANOUT_MB_OPENAI, b1, 2),
           "{\"model\":\"e5\",\"input\":[\"one\",\"two\"]}",
           "openai: lone texts become an array");
    is_str(key(FANOUT_MB_OPENAI, "{\"input\":[1,2,3]}"),
           key(FANOUT_MB_OPENAI, "{\"input\":\"x\"}"),
           "openai: tokens are one input, like a text");
    is_str(slice(FANOUT_MB_OPENAI, answer, rows, 2, 1, NULL),
           "{\"object\":\"list\",\"data\":["
           "{\"object\":\"embedding\",\"index\":0,\"embedding\":[0.2]},"
           "{\"object\":\"embedding\",\"index\":1,\"embedding\":[0.3]}],"
           "\"model\":\"e5\"}", "openai: the second's, indexes from 0");
    is_str(key(FANOUT_MB_OPENAI, "{\"model\":\"e5\"}"), "(not batchable)",
           "openai: no input");
}


/* openai rows say their input: the model may list them in any order */

static void
test_openai_keyed(void)
{
    size_t       i, rows[3] = { 1, 1, 1 }, two[2] = { 2, 1 };
    char         answer[256];
    static const struct {
        const char  *row;
        const char  *name;
    } lies[] = {
        { "{\"index\":0,\"e\":2}", "openai: an index twice: refused" },
        { "{\"e\":2}", "openai: an index missing: refused" },
        { "{\"index\":3,\"e\":2}", "openai: an index out of range: refused" },
        { "{\"index\":\"1\",\"e\":2}",
          "openai: an index that is not an integer: refused" },
        { "{\"index\":1,\"index\":1,\"e\":2}",
          "openai: an index key twice in one row: refused" },
        { "{\"index\":1.0,\"e\":2}", "openai: 1.0 is not an index: refused" }
    };
    const char  *reversed = "{\"object\":\"list\",\"data\":["
        "{\"index\":2,\"embedding\":[0.3]},"
        "{\"index\":1,\"embedding\":[0.2]},"
        "{\"index\":0,\"embedding\":[0.1]}],"
        "\"model\":\"e5\",\"usage\":{\"prompt_tokens\":42,"
        "\"total_tokens\":42},\"batch_ms\":7}";

    is_str(slice(FANOUT_MB_OPENAI, reversed, rows, 3, 0, NULL),
           "{\"object\":\"list\",\"data\":[{\"index\":0,"
           "\"embedding\":[0.1]}],\"model\":\"e5\"}",
           "openai, listed in reverse: the first caller gets index 0's, "
           "not the first listed; no batch usage, nothing unknown");
    is_str(slice(FANOUT_MB_OPENAI, reversed, rows, 3, 2, NULL),
           "{\"object\":\"list\",\"data\":[{\"index\":0,"
           "\"embedding\":[0.3]}],\"model\":\"e5\"}",
           "openai, in reverse: the third gets index 2's, as its index 0");
    is_str(slice(FANOUT_MB_OPENAI, reversed, two, 2, 0, NULL),
           "{\"object\":\"list\",\"data\":[{\"index\":0,"
           "\"embedding\":[0.1]},{\"index\":1,\"embedding\":[0.2]}],"
           "\"model\":\"e5\"}",
           "openai, in reverse: a caller of two inputs gets them in its order");

    {
        size_t  one[1] = { 3 };

        is_str(slice(FANOUT_MB_OPENAI, reversed, one, 1, 0, NULL),
               "{\"object\":\"list\",\"data\":[{\"index\":0,"
               "\"embedding\":[0.1]},{\"index\":1,\"embedding\":[0.2]},"
               "{\"index\":2,\"embedding\":[0.3]}],\"model\":\"e5\","
               "\"usage\":{\"prompt_tokens\":42,\"total_tokens\":42}}",
               "openai: a caller that was the whole batch keeps its usage");
    }

    /* the middle row lies: each answer must be refused */
    for (i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
        snprintf(answer, sizeof(answer), "{\"data\":[{\"index\":0,\"e\":1},"
                 "%s,{\"index\":2,\"e\":3}]}", lies[i].row);
        is_str(slice(FANOUT_MB_OPENAI, answer, rows, 3, 0, NULL), "(items)",
               lies[i].name);
    }
}


/* the rest of an answer's top level: what speaks of the batch is left out */

static void
test_batch_wide(void)
{
    size_t       rows[2] = { 1, 1 };

    is_str(slice(FANOUT_MB_INSTANCES, "{\"predictions\":[1,2],"
                 "\"batch_size\":2,\"inputs_seen\":[\"alpha\",\"bb\"],"
                 "\"model_name\":\"m\"}", rows, 2, 1, NULL),
           "{\"predictions\":[2],\"model_name\":\"m\"}",
           "instances: fields unknown to the protocol are left out");
    is_str(slice(FANOUT_MB_V2, "{\"model_name\":\"m\",\"parameters\":"
                 "{\"batch\":2},\"outputs\":[{\"name\":\"y\",\"shape\":[2],"
                 "\"datatype\":\"FP32\",\"data\":[1,2]}]}",
                 rows, 2, 0, NULL),
           "{\"model_name\":\"m\",\"outputs\":[{\"name\":\"y\","
           "\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
           "v2: the batch's parameters are left out");
    is_str(slice(FANOUT_MB_INSTANCES, " { \"pre\\u0064ictions\" : [1,2] ,"
                 " \"x\":1 } ", rows, 2, 0, NULL),
           "{\"pre\\u0064ictions\":[1]}",
           "instances: an escaped key is read as every parser reads it");
}


static void
test_v2(void)
{
    size_t       rows[2] = { 1, 2 };
    const char  *b[2] = {
        "{\"id\":\"r1\",\"inputs\":[{\"name\":\"x\",\"shape\":[1,2],"
        "\"datatype\":\"FP32\",\"data\":[1,2]}]}",
        "{\"id\":\"r2\",\"inputs\":[{\"name\":\"x\",\"shape\":[2,2],"
        "\"datatype\":\"FP32\",\"data\":[3,4,5,6]}]}"
    };
    const char  *answer = "{\"model_name\":\"m\",\"id\":\"fanout-batch\","
        "\"outputs\":[{\"name\":\"y\",\"shape\":[3],\"datatype\":\"FP32\","
        "\"data\":[0.1,0.2,0.3]},{\"name\":\"p\",\"shape\":[3,2],"
        "\"datatype\":\"FP32\",\"data\":[1,2,3,4,5,6]}]}";

    is_str(key(FANOUT_MB_V2, b[0]), key(FANOUT_MB_V2, b[1]),
           "v2: ids and rows aside, the same key");
    ok(strcmp(key(FANOUT_MB_V2, b[0]),
              key(FANOUT_MB_V2, "{\"id\":\"r1\",\"inputs\":[{\"name\":\"x\","
                  "\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,3]}]}"))
       != 0, "v2: another inner shape, another key");
    ok(strcmp(key(FANOUT_MB_V2, b[0]),
              key(FANOUT_MB_V2, "{\"inputs\":[{\"name\":\"x\","
                  "\"shape\":[1,2],\"datatype\":\"FP32\",\"data\":[1,2]}]}"))
       != 0, "v2: with an id and without, batched apart");
    is_str(combine(FANOUT_MB_V2, b, 2),
           "{\"id\":\"fanout-batch\",\"inputs\":[{\"name\":\"x\",\"shape\":"
           "[3,2],\"datatype\":\"FP32\",\"data\":[1,2,3,4,5,6]}]}",
           "v2: data concatenated, shape[0] summed, nobody's id");
    is_str(slice(FANOUT_MB_V2, answer, rows, 2, 1, "\"r2\""),
           "{\"model_name\":\"m\",\"id\":\"r2\",\"outputs\":[{\"name\":\"y\","
           "\"shape\":[2],\"datatype\":\"FP32\",\"data\":[0.2,0.3]},"
           "{\"name\":\"p\",\"shape\":[2,2],\"datatype\":\"FP32\","
           "\"data\":[3,4,5,6]}]}",
           "v2: the second caller's rows of each output, its own id");
    is_str(slice(FANOUT_MB_V2, answer, rows, 2, 0, "\"r1\""),
           "{\"model_name\":\"m\",\"id\":\"r1\",\"outputs\":[{\"name\":\"y\","
           "\"shape\":[1],\"datatype\":\"FP32\",\"data\":[0.1]},"
           "{\"name\":\"p\",\"shape\":[1,2],\"datatype\":\"FP32\","
           "\"data\":[1,2]}]}", "v2: the first caller's");
    is_str(slice(FANOUT_MB_V2, "{\"outputs\":[{\"name\":\"y\",\"shape\":[2],"
                 "\"data\":[1,2]}]}", rows, 2, 0, NULL), "(bad_batch)",
           "v2: an output of 2 rows for 3: bad_batch");
    is_str(slice(FANOUT_MB_V2, "{\"outputs\":[{\"name\":\"y\",\"shape\":[3],"
                 "\"data\":[1,2,3,4]}]}", rows, 2, 0, NULL), "(bad_batch)",
           "v2: data the rows do not divide: bad_batch");
    is_str(key(FANOUT_MB_V2, "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],"
                             "\"data\":[1,2,3]}]}"), "(not batchable)",
           "v2: 3 elements in 2 rows: sent alone");
    is_str(key(FANOUT_MB_V2, "{\"inputs\":[{\"name\":\"a\",\"shape\":[1],"
                             "\"data\":[1]},{\"name\":\"b\",\"shape\":[2],"
                             "\"data\":[1,2]}]}"), "(not batchable)",
           "v2: tensors of different rows: sent alone");
    is_str(key(FANOUT_MB_V2, "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2],"
                             "\"data\":[1,2,3,4]}]}"), "(not batchable)",
           "v2: data the shape does not say (4 for 1x2): sent alone, it "
           "would spoil a batch");
    is_str(key(FANOUT_MB_V2, "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,2],"
                             "\"data\":[[1,2],[3,4]]}]}"), "(not batchable)",
           "v2: nested data: sent alone");
    is_str(slice(FANOUT_MB_V2, "{\"outputs\":[{\"name\":\"y\",\"shape\":[3,2],"
                 "\"data\":[1,2,3]}]}", rows, 2, 0, NULL), "(bad_batch)",
           "v2: an output shorter than its shape: bad_batch");
    ok(strcmp(fanout_mb_format_name(FANOUT_MB_V2), "v2") == 0, "names");
}


int
main(void)
{
    test_instances();
    test_array();
    test_openai();
    test_openai_keyed();
    test_batch_wide();
    test_v2();

    return done_testing();
}
