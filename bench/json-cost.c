/*
 * bench/json-cost: what reading one JSON document costs, the module's
 * zero-copy scanner (src/core/fanout_json.c) against jansson, in
 * instructions (bench/json-cost.sh runs it under callgrind).
 *
 * Cases: a model's answer as the request path reads it (validated whole,
 * one field found: "predictions" of a 768-float embedding, 8 KB; and a
 * KServe v2 answer of the same vector), and a fanout_api change body as
 * the API reads it (a small object, each member taken).
 *
 * usage: json-cost CASE N   (CASE: scan-vector, jansson-vector,
 *        scan-v2, jansson-v2, scan-api, jansson-api)
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "fanout_json.h"


static char  vector[16384], v2[16384];

static const char  api[] =
    "{\"location\":\"/predict\",\"ramp\":{\"steps\":\"5%,25%,100%\","
    "\"every\":\"10m\",\"rollback_if\":\"error_rate>2%,p99>500ms\","
    "\"candidate\":\"v2\",\"min_requests\":20}}";


static size_t
numbers(char *p, size_t n)
{
    size_t  i, len;

    len = 0;

    for (i = 0; i < n; i++) {
        len += sprintf(p + len, "%s%.7f", i ? "," : "",
                       (double) ((i * 7919) % 10007) / 10007.0 - 0.5);
    }

    return len;
}


int
main(int argc, char **argv)
{
    long           i, n;
    size_t         len;
    json_t        *doc, *x;
    const char    *which, *key;
    fanout_span_t  found, keys[16], values[16];
    volatile long  sink;

    if (argc != 3) {
        fprintf(stderr, "usage: json-cost CASE N\n");
        return 2;
    }

    which = argv[1];
    n = atol(argv[2]);
    sink = 0;

    len = sprintf(vector, "{\"predictions\":[[");
    len += numbers(vector + len, 768);
    sprintf(vector + len, "]],\"model_version\":\"3\"}");

    len = sprintf(v2, "{\"model_name\":\"m\",\"id\":\"42\",\"outputs\":"
                  "[{\"name\":\"out\",\"datatype\":\"FP32\","
                  "\"shape\":[1,768],\"data\":[");
    len += numbers(v2 + len, 768);
    sprintf(v2 + len, "]}]}");

    for (i = 0; i < n; i++) {

        if (strcmp(which, "scan-vector") == 0) {
            sink += fanout_json_scan(vector, strlen(vector), "predictions",
                                     11, &found);
            sink += found.len;

        } else if (strcmp(which, "jansson-vector") == 0) {
            doc = json_loads(vector, JSON_REJECT_DUPLICATES, NULL);
            sink += json_array_size(json_object_get(doc, "predictions"));
            json_decref(doc);

        } else if (strcmp(which, "scan-v2") == 0) {
            sink += fanout_json_scan(v2, strlen(v2), "outputs", 7, &found);
            sink += found.len;

        } else if (strcmp(which, "jansson-v2") == 0) {
            doc = json_loads(v2, JSON_REJECT_DUPLICATES, NULL);
            sink += json_array_size(json_object_get(doc, "outputs"));
            json_decref(doc);

        } else if (strcmp(which, "scan-api") == 0) {
            sink += fanout_json_scan(api, sizeof(api) - 1, NULL, 0, NULL);
            sink += fanout_json_members(api, sizeof(api) - 1, keys, values,
                                        16);

        } else if (strcmp(which, "jansson-api") == 0) {
            doc = json_loadb(api, sizeof(api) - 1,
                             JSON_REJECT_DUPLICATES|JSON_DECODE_ANY, NULL);
            json_object_foreach(doc, key, x) {
                sink += strlen(key) + json_typeof(x);
            }
            json_decref(doc);

        } else {
            fprintf(stderr, "json-cost: unknown case \"%s\"\n", which);
            return 2;
        }
    }

    return sink == -1;
}
