/*
 * Merge strategies: all, first (its failure document), mean and vote.
 */

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fanout_path.h"
#include "fanout_merge.h"


static const char  *fanout_kind_names[FANOUT_NKINDS] = {
    "ok", "timeout", "http_4xx", "http_5xx", "bad_json", "too_large",
    "upstream_error", "bad_field"
};


const char *
fanout_kind_name(fanout_kind_e kind)
{
    return (kind < FANOUT_NKINDS) ? fanout_kind_names[kind] : "unknown";
}


void
fanout_part_parse(fanout_part_t *p)
{
    json_error_t  err;

    if (p->status < 200 || p->status > 299) {
        p->kind = (p->status >= 500) ? FANOUT_HTTP_5XX : FANOUT_HTTP_4XX;
        return;
    }

    if (p->body_len == 0) {
        p->kind = FANOUT_BAD_JSON;
        return;
    }

    p->json = json_loadb(p->body, p->body_len, JSON_DECODE_ANY, &err);
    p->kind = (p->json != NULL) ? FANOUT_OK : FANOUT_BAD_JSON;
}


void
fanout_part_release(fanout_part_t *p)
{
    if (p->json) {
        json_decref(p->json);
        p->json = NULL;
    }
}


const char *
fanout_kind_error(const fanout_part_t *p, char *buf, size_t size)
{
    if (p->kind == FANOUT_HTTP_4XX || p->kind == FANOUT_HTTP_5XX) {
        snprintf(buf, size, "http_%d", p->status);
        return buf;
    }

    return fanout_kind_name(p->kind);
}


int
fanout_merge_status(const fanout_part_t *parts, size_t n, unsigned quorum)
{
    size_t    i, ok, timeouts;

    ok = 0;
    timeouts = 0;

    for (i = 0; i < n; i++) {
        if (parts[i].kind == FANOUT_OK) {
            ok++;

        } else if (parts[i].kind == FANOUT_TIMEOUT) {
            timeouts++;
        }
    }

    if (ok >= quorum && ok > 0) {
        return 200;
    }

    /* 504 only when every failure was a timeout */
    return (timeouts > 0 && timeouts == n - ok) ? 504 : 502;
}


static int
fanout_set_new(json_t *object, const char *key, json_t *value)
{
    /* json_object_set_new() steals the reference even on failure */
    return (value == NULL) ? -1 : json_object_set_new(object, key, value);
}


static json_t *
fanout_number(double v)
{
    if (isfinite(v) && v == floor(v) && fabs(v) < 9.0e15) {
        return json_integer((json_int_t) v);
    }

    return json_real(isfinite(v) ? v : 0.0);
}


/* mean: a number, or arrays of numbers of one shape, nested */

static int
fanout_same_shape(json_t *a, json_t *b)
{
    size_t  i, n;

    if (json_is_number(a)) {
        return json_is_number(b);
    }

    if (!json_is_array(a) || !json_is_array(b)) {
        return 0;
    }

    n = json_array_size(a);

    if (n != json_array_size(b)) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (!fanout_same_shape(json_array_get(a, i), json_array_get(b, i))) {
            return 0;
        }
    }

    return 1;
}


static int
fanout_numeric(json_t *v)
{
    size_t  i, n;

    if (json_is_number(v)) {
        return 1;
    }

    if (!json_is_array(v) || json_array_size(v) == 0) {
        return 0;
    }

    n = json_array_size(v);

    for (i = 0; i < n; i++) {
        if (!fanout_numeric(json_array_get(v, i))) {
            return 0;
        }
    }

    return 1;
}


/* acc has the shape of v with reals; adds w * v into it */

static json_t *
fanout_mean_zero(json_t *v)
{
    size_t   i, n;
    json_t  *a;

    if (json_is_number(v)) {
        return json_real(0.0);
    }

    n = json_array_size(v);
    a = json_array();

    for (i = 0; a != NULL && i < n; i++) {
        if (json_array_append_new(a, fanout_mean_zero(json_array_get(v, i)))
            != 0)
        {
            json_decref(a);
            return NULL;
        }
    }

    return a;
}


static void
fanout_mean_add(json_t *acc, json_t *v, double w)
{
    size_t  i, n;

    if (json_is_real(acc)) {
        json_real_set(acc, json_real_value(acc) + w * json_number_value(v));
        return;
    }

    n = json_array_size(acc);

    for (i = 0; i < n; i++) {
        fanout_mean_add(json_array_get(acc, i), json_array_get(v, i), w);
    }
}


static json_t *
fanout_mean_result(json_t *acc, double total)
{
    size_t   i, n;
    json_t  *a;

    if (json_is_real(acc)) {
        return json_real(json_real_value(acc) / total);
    }

    n = json_array_size(acc);
    a = json_array();

    for (i = 0; a != NULL && i < n; i++) {
        if (json_array_append_new(a,
                fanout_mean_result(json_array_get(acc, i), total))
            != 0)
        {
            json_decref(a);
            return NULL;
        }
    }

    return a;
}


static void
fanout_bad_field(fanout_part_t *p, const char *detail)
{
    fanout_part_release(p);
    p->kind = FANOUT_BAD_FIELD;
    p->detail = detail;
}


static json_t *
fanout_merge_mean(const fanout_merge_conf_t *conf, fanout_part_t *parts,
    size_t n)
{
    size_t   i, from;
    double   total;
    json_t  *v, *shape, *acc, *merged;

    shape = NULL;

    for (i = 0; i < n; i++) {
        if (parts[i].kind != FANOUT_OK) {
            continue;
        }

        v = fanout_path_get(parts[i].json, conf->field, conf->field_len);

        if (v == NULL) {
            fanout_bad_field(&parts[i], "field is missing");

        } else if (!fanout_numeric(v)) {
            fanout_bad_field(&parts[i], "field is not a number or an array "
                                        "of numbers");

        } else if (shape == NULL) {
            shape = v;

        } else if (!fanout_same_shape(shape, v)) {
            fanout_bad_field(&parts[i], "field has another shape than the "
                                        "first answer's");
        }
    }

    merged = json_object();
    if (merged == NULL) {
        return NULL;
    }

    if (json_object_set_new(merged, "field",
                            json_stringn(conf->field, conf->field_len))
        != 0)
    {
        goto failed;
    }

    if (shape == NULL) {
        if (json_object_set_new(merged, "value", json_null()) != 0
            || fanout_set_new(merged, "from", json_integer(0)) != 0)
        {
            goto failed;
        }

        return merged;
    }

    acc = fanout_mean_zero(shape);
    if (acc == NULL) {
        goto failed;
    }

    total = 0;
    from = 0;

    for (i = 0; i < n; i++) {
        if (parts[i].kind != FANOUT_OK) {
            continue;
        }

        v = fanout_path_get(parts[i].json, conf->field, conf->field_len);
        fanout_mean_add(acc, v, parts[i].weight);
        total += parts[i].weight;
        from++;
    }

    v = fanout_mean_result(acc, total);
    json_decref(acc);

    if (fanout_set_new(merged, "value", v) != 0
        || fanout_set_new(merged, "from", json_integer((json_int_t) from))
           != 0)
    {
        goto failed;
    }

    return merged;

failed:

    json_decref(merged);
    return NULL;
}


/* vote: a weighted majority of scalars; ties go to the earlier target */

static int
fanout_vote_key(json_t *v, char *buf, size_t size, const char **key)
{
    int  n;

    switch (json_typeof(v)) {

    case JSON_STRING:
        *key = json_string_value(v);
        return 0;

    case JSON_TRUE:
        *key = "true";
        return 0;

    case JSON_FALSE:
        *key = "false";
        return 0;

    case JSON_INTEGER:
        n = snprintf(buf, size, "%" JSON_INTEGER_FORMAT,
                     json_integer_value(v));
        break;

    case JSON_REAL:
        n = snprintf(buf, size, "%.17g", json_real_value(v));
        break;

    default:
        return -1;
    }

    if (n < 0 || (size_t) n >= size) {
        return -1;
    }

    *key = buf;

    return 0;
}


static json_t *
fanout_merge_vote(const fanout_merge_conf_t *conf, fanout_part_t *parts,
    size_t n)
{
    char         buf[64];
    double       best_weight, w;
    size_t       i;
    json_t      *v, *votes, *merged, *best, *count;
    const char  *key, *best_key;

    votes = json_object();
    merged = json_object();

    if (votes == NULL || merged == NULL) {
        goto failed;
    }

    for (i = 0; i < n; i++) {
        if (parts[i].kind != FANOUT_OK) {
            continue;
        }

        v = fanout_path_get(parts[i].json, conf->field, conf->field_len);

        if (v == NULL) {
            fanout_bad_field(&parts[i], "field is missing");
            continue;
        }

        if (fanout_vote_key(v, buf, sizeof(buf), &key) != 0) {
            fanout_bad_field(&parts[i], "field is not a string, number or "
                                        "boolean");
            continue;
        }

        /* jansson keeps insertion order: the earliest voter comes first */
        count = json_object_get(votes, key);
        w = (count ? json_number_value(count) : 0) + parts[i].weight;

        if (fanout_set_new(votes, key, json_real(w)) != 0) {
            goto failed;
        }
    }

    best = NULL;
    best_key = NULL;
    best_weight = 0;

    json_object_foreach(votes, key, count) {
        if (best_key == NULL || json_real_value(count) > best_weight + 1e-9) {
            best_key = key;
            best_weight = json_real_value(count);
        }
    }

    /* the winning value, with its JSON type */
    for (i = 0; best_key != NULL && i < n; i++) {
        if (parts[i].kind != FANOUT_OK) {
            continue;
        }

        v = fanout_path_get(parts[i].json, conf->field, conf->field_len);

        if (fanout_vote_key(v, buf, sizeof(buf), &key) == 0
            && strcmp(key, best_key) == 0)
        {
            best = v;
            break;
        }
    }

    /* report integral weights as integers */
    json_object_foreach(votes, key, count) {
        json_object_set_new(votes, key,
                            fanout_number(json_real_value(count)));
    }

    if (json_object_set_new(merged, "field",
                            json_stringn(conf->field, conf->field_len))
           != 0
        || json_object_set(merged, "value", best ? best : json_null()) != 0
        || json_object_set(merged, "votes", votes) != 0)
    {
        goto failed;
    }

    json_decref(votes);

    return merged;

failed:

    json_decref(votes);
    json_decref(merged);
    return NULL;
}


json_t *
fanout_merge(const fanout_merge_conf_t *conf, fanout_part_t *parts, size_t n,
    int *status)
{
    char       buf[16];
    size_t     i, ok;
    json_t    *doc, *results, *errors, *meta, *latency, *err, *merged;

    merged = NULL;

    if (conf->mode == FANOUT_MERGE_MEAN) {
        merged = fanout_merge_mean(conf, parts, n);

    } else if (conf->mode == FANOUT_MERGE_VOTE) {
        merged = fanout_merge_vote(conf, parts, n);
    }

    if ((conf->mode == FANOUT_MERGE_MEAN || conf->mode == FANOUT_MERGE_VOTE)
        && merged == NULL)
    {
        return NULL;
    }

    doc = json_object();
    results = json_object();
    errors = json_object();
    meta = json_object();
    latency = json_object();

    if (doc == NULL || results == NULL || errors == NULL || meta == NULL
        || latency == NULL)
    {
        goto failed;
    }

    ok = 0;

    for (i = 0; i < n; i++) {
        if (fanout_set_new(latency, parts[i].name,
                           json_integer((json_int_t) parts[i].latency_ms))
            != 0)
        {
            goto failed;
        }

        if (parts[i].kind == FANOUT_OK) {
            ok++;

            if (json_object_set(results, parts[i].name, parts[i].json) != 0) {
                goto failed;
            }

            continue;
        }

        err = json_pack("{s:i,s:s}", "status", parts[i].status,
                        "error", fanout_kind_error(&parts[i], buf,
                                                   sizeof(buf)));

        if (err != NULL && parts[i].detail != NULL) {
            if (fanout_set_new(err, "detail", json_string(parts[i].detail))
                != 0)
            {
                json_decref(err);
                goto failed;
            }
        }

        if (fanout_set_new(errors, parts[i].name, err) != 0) {
            goto failed;
        }
    }

    *status = fanout_merge_status(parts, n, conf->quorum);

    if (*status != 200
        && fanout_set_new(doc, "error", json_string("quorum_not_met")) != 0)
    {
        goto failed;
    }

    if (merged != NULL) {
        if (json_object_set_new(doc, "merged", merged) != 0) {
            merged = NULL;
            goto failed;
        }

        merged = NULL;
    }

    if (fanout_set_new(meta, "targets", json_integer((json_int_t) n)) != 0
        || fanout_set_new(meta, "ok", json_integer((json_int_t) ok)) != 0
        || fanout_set_new(meta, "failed", json_integer((json_int_t) (n - ok)))
           != 0
        || fanout_set_new(meta, "quorum", json_integer(conf->quorum)) != 0
        || json_object_set(meta, "latency_ms", latency) != 0
        || json_object_set(doc, "results", results) != 0
        || json_object_set(doc, "errors", errors) != 0
        || json_object_set(doc, "meta", meta) != 0)
    {
        goto failed;
    }

    json_decref(results);
    json_decref(errors);
    json_decref(meta);
    json_decref(latency);

    return doc;

failed:

    json_decref(merged);
    json_decref(doc);
    json_decref(results);
    json_decref(errors);
    json_decref(meta);
    json_decref(latency);

    return NULL;
}
