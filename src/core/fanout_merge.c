/*
 * Merge strategies: all, first (its failure document), mean and vote.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_merge.h"


static const char  *fanout_kind_names[FANOUT_NKINDS] = {
    "ok", "timeout", "http_4xx", "http_5xx", "bad_json", "too_large",
    "upstream_error", "bad_field", "circuit_open", "overloaded", "bad_batch"
};


const char *
fanout_kind_name(fanout_kind_e kind)
{
    return (kind < FANOUT_NKINDS) ? fanout_kind_names[kind] : "unknown";
}


void
fanout_part_parse(fanout_part_t *p, const char *field, size_t len)
{
    if (p->status < 200 || p->status > 299) {
        p->kind = (p->status >= 500) ? FANOUT_HTTP_5XX : FANOUT_HTTP_4XX;
        return;
    }

    p->kind = (fanout_json_scan(p->body, p->body_len, field,
                                field ? len : 0, &p->field)
               == 0)
              ? FANOUT_OK : FANOUT_BAD_JSON;
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
    size_t  i, ok, timeouts, overloaded;

    ok = 0;
    timeouts = 0;
    overloaded = 0;

    for (i = 0; i < n; i++) {
        if (parts[i].kind == FANOUT_OK) {
            ok++;

        } else if (parts[i].kind == FANOUT_TIMEOUT) {
            timeouts++;

        } else if (parts[i].kind == FANOUT_OVERLOADED) {
            overloaded++;
        }
    }

    if (ok >= quorum && ok > 0) {
        return 200;
    }

    if (timeouts > 0 && timeouts == n - ok) {
        return 504;
    }

    /* shed by the gateway's own admission control: come back later */
    return (overloaded > 0 && overloaded == n - ok) ? 503 : 502;
}


static void
fanout_bad_field(fanout_part_t *p, const char *detail)
{
    p->kind = FANOUT_BAD_FIELD;
    p->detail = detail;
}


/* mean: a number, or arrays of numbers of one shape, nested */

typedef struct {
    char     *shape;
    size_t    shape_len;
    size_t    shape_cap;
    double   *values;
    size_t    nvalues;
    size_t    values_cap;
    unsigned  heap:1;              /* its arrays left the caller's */
} fanout_flat_t;


/* the first arrays are the caller's (on its stack): a small field costs
 * no allocation; a larger one moves to the heap */

#define FANOUT_FLAT_SHAPE   64
#define FANOUT_FLAT_VALUES  16

typedef struct {
    char      shape[FANOUT_FLAT_SHAPE];
    double    values[FANOUT_FLAT_VALUES];
} fanout_flat_room_t;


static void
fanout_flat_init(fanout_flat_t *f, fanout_flat_room_t *room)
{
    memset(f, 0, sizeof(fanout_flat_t));
    f->shape = room->shape;
    f->shape_cap = FANOUT_FLAT_SHAPE;
    f->values = room->values;
    f->values_cap = FANOUT_FLAT_VALUES;
}


static void
fanout_flat_free(fanout_flat_t *f)
{
    if (f->heap) {
        free(f->shape);
        free(f->values);
    }

    f->heap = 0;
}


static int
fanout_flat_grow(fanout_flat_t *f)
{
    char    *shape;
    double  *values;

    shape = malloc(f->shape_cap * 2);
    values = malloc(f->values_cap * 2 * sizeof(double));

    if (shape == NULL || values == NULL) {
        free(shape);
        free(values);
        return -1;
    }

    memcpy(shape, f->shape, f->shape_len);
    memcpy(values, f->values, f->nvalues * sizeof(double));

    fanout_flat_free(f);

    f->shape = shape;
    f->shape_cap *= 2;
    f->values = values;
    f->values_cap *= 2;
    f->heap = 1;

    return 0;
}


static inline int
fanout_flat_push(fanout_flat_t *f, char c, double v)
{
    /* both arrays grow together: one test for either full */
    if ((f->shape_len == f->shape_cap || f->nvalues == f->values_cap)
        && fanout_flat_grow(f) != 0)
    {
        return -1;
    }

    f->shape[f->shape_len++] = c;

    if (c == 'n') {
        f->values[f->nvalues++] = v;
    }

    return 0;
}


/*
 * Flattens a validated value into its shape and numbers: 1 when it is a
 * number or a non-empty nesting of arrays of numbers, 0 when not, -1 when
 * out of memory.
 */

static int
fanout_flatten(const char **pp, const char *end, fanout_flat_t *f)
{
    int          rc;
    double       v;
    const char  *p;

    p = *pp;

    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }

    if (p < end && *p == '[') {
        if (fanout_flat_push(f, '[', 0) != 0) {
            return -1;
        }

        p++;

        for ( ;; ) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == '\n'
                               || *p == '\r'))
            {
                p++;
            }

            if (p < end && (*p == '-' || (*p >= '0' && *p <= '9'))) {
                /* a number, the common element: read here, no call */
                if (fanout_json_number_at(&p, end, &v) != 0) {
                    return 0;
                }

                if (fanout_flat_push(f, 'n', v) != 0) {
                    return -1;
                }

            } else {
                rc = fanout_flatten(&p, end, f);
                if (rc != 1) {
                    return rc;
                }
            }

            while (p < end && *p != ',' && *p != ']') {
                p++;
            }

            if (p < end && *p == ',') {
                p++;
                continue;
            }

            p++;
            break;
        }

        *pp = p;

        return fanout_flat_push(f, ']', 0) == 0 ? 1 : -1;
    }

    if (fanout_json_number_at(&p, end, &v) != 0) {
        return 0;
    }

    *pp = p;

    return fanout_flat_push(f, 'n', v) == 0 ? 1 : -1;
}


/* the mean in the shape of the answers: '[', ']' and 'n' for numbers */

static void
fanout_mean_format(fanout_flat_t *f, fanout_merged_t *m, int precision)
{
    size_t        i, k;
    fanout_out_t  o;

    o.buf = m->mean;
    o.len = 0;

    for (i = 0, k = 0; i < f->shape_len; i++) {
        if (i > 0 && f->shape[i] != ']' && f->shape[i - 1] != '[') {
            fanout_out_raw(&o, ",", 1);
        }

        if (f->shape[i] == 'n') {
            fanout_out_number(&o, f->values[k++], precision);

        } else {
            fanout_out_raw(&o, &f->shape[i], 1);
        }
    }

    m->mean_len = o.len;
}


static int
fanout_merge_mean(fanout_part_t *parts, size_t n, fanout_merged_t *m,
    int precision)
{
    int                 rc;
    size_t              i, k, need;
    double              total;
    const char         *p;
    fanout_flat_t       f, first;
    fanout_flat_room_t  room[2];
    unsigned            taken;

    /* the first answer's arrays stay in room[0]; the others use room[1] */
    fanout_flat_init(&f, &room[0]);
    memset(&first, 0, sizeof(fanout_flat_t));
    taken = 0;

    total = 0;

    for (i = 0; i < n; i++) {
        if (parts[i].kind != FANOUT_OK) {
            continue;
        }

        if (parts[i].field.p == NULL) {
            fanout_bad_field(&parts[i], "field is missing");
            continue;
        }

        f.shape_len = 0;
        f.nvalues = 0;
        p = parts[i].field.p;

        rc = fanout_flatten(&p, p + parts[i].field.len, &f);

        if (rc < 0) {
            goto failed;
        }

        if (rc == 0) {
            fanout_bad_field(&parts[i], "field is not a number or an array "
                                        "of numbers");
            continue;
        }

        if (!taken) {
            first = f;
            taken = 1;
            fanout_flat_init(&f, &room[1]);

            for (k = 0; k < first.nvalues; k++) {
                first.values[k] *= parts[i].weight;
            }

        } else if (f.shape_len != first.shape_len
                   || memcmp(f.shape, first.shape, f.shape_len) != 0)
        {
            fanout_bad_field(&parts[i], "field has another shape than the "
                                        "first answer's");
            continue;

        } else {
            for (k = 0; k < first.nvalues; k++) {
                first.values[k] += parts[i].weight * f.values[k];
            }
        }

        total += parts[i].weight;
        m->from++;
    }

    fanout_flat_free(&f);

    if (m->from) {
        /* a double takes at most 24 bytes, its comma one more */
        need = first.nvalues * 25 + first.shape_len * 2 + 1;

        m->mean = (need <= sizeof(m->mean_room)) ? m->mean_room
                                                 : malloc(need);
        if (m->mean == NULL) {
            goto failed;
        }

        for (k = 0; k < first.nvalues; k++) {
            first.values[k] /= total;
        }

        fanout_mean_format(&first, m, precision);
    }

    if (taken) {
        fanout_flat_free(&first);
    }

    return 0;

failed:

    fanout_flat_free(&f);

    if (taken) {
        fanout_flat_free(&first);
    }

    return -1;
}


/*
 * vote: ballots are compared by what they mean: strings by their decoded
 * bytes ("caf\u00e9" is "café"), numbers by value (1, 1.0 and 1e0 are one
 * ballot), booleans as such; a string never equals a number.  Each voter
 * is hashed once and compared in full only with a ballot of its hash, so
 * the work is linear in the answers' bytes, plus n^2 hash comparisons for
 * n <= 32 targets.  Ties go to the earlier first voter.
 */

static unsigned long
fanout_ballot_hash(char kind, const char *p, size_t len)
{
    size_t         i;
    unsigned long  h;

    h = 2166136261UL ^ (unsigned char) kind;

    for (i = 0; i < len; i++) {
        h = (h ^ (unsigned char) p[i]) * 16777619UL;
    }

    return h;
}


static int
fanout_ballot_same(const fanout_ballot_t *a, const fanout_ballot_t *b)
{
    if (a->kind != b->kind || a->hash != b->hash) {
        return 0;
    }

    if (a->kind == 'n') {
        return a->number == b->number;
    }

    return a->len == b->len
           && (a->len == 0 || memcmp(a->text, b->text, a->len) == 0);
}


/*
 * The keys of "votes": a string ballot is its own key, others their JSON
 * text ("1", "true").  Two ballots of one kind never share a key; when a
 * string would share one with a number or a boolean ("1" and 1), every key
 * is the ballot's JSON text instead ("\"1\"" and "1").  At most 32 x 32
 * comparisons of keys, each stopping at the shorter.
 */

static int
fanout_vote_keys(const fanout_part_t *parts, fanout_merged_t *m)
{
    size_t            a, b, clash;
    fanout_out_t      o;
    fanout_ballot_t  *bl, *x;

    for (b = 0; b < m->nballots; b++) {
        bl = &m->ballots[b];

        if (bl->kind == 's') {
            bl->key = bl->text;
            bl->key_len = bl->len;

        } else {
            bl->key = parts[bl->voter].field.p;
            bl->key_len = parts[bl->voter].field.len;
        }
    }

    clash = 0;

    for (a = 0; a < m->nballots && !clash; a++) {
        x = &m->ballots[a];

        for (b = 0; b < m->nballots && x->kind == 's'; b++) {
            bl = &m->ballots[b];

            if (bl->kind != 's' && bl->key_len == x->key_len
                && memcmp(bl->key, x->key, x->key_len) == 0)
            {
                clash = 1;
                break;
            }
        }
    }

    if (!clash) {
        return 0;
    }

    o.buf = NULL;
    o.len = 0;

    for (b = 0; b < m->nballots; b++) {
        if (m->ballots[b].kind == 's') {
            fanout_out_string(&o, m->ballots[b].text, m->ballots[b].len);
        }
    }

    m->keys = malloc(o.len + 1);
    if (m->keys == NULL) {
        return -1;
    }

    o.buf = m->keys;
    o.len = 0;

    for (b = 0; b < m->nballots; b++) {
        bl = &m->ballots[b];

        if (bl->kind == 's') {
            bl->key = m->keys + o.len;
            fanout_out_string(&o, bl->text, bl->len);
            bl->key_len = (size_t) (m->keys + o.len - bl->key);
        }
    }

    return 0;
}


static int
fanout_merge_vote(fanout_part_t *parts, size_t n, fanout_merged_t *m)
{
    char             *d;
    size_t            i, b, total;
    fanout_span_t    *v;
    fanout_ballot_t   x;

    total = 0;

    for (i = 0; i < n; i++) {
        if (parts[i].kind == FANOUT_OK && parts[i].field.p != NULL) {
            total += parts[i].field.len;
        }
    }

    m->ballots = malloc(n * sizeof(fanout_ballot_t));
    m->decoded = malloc(total + 1);

    if (m->ballots == NULL || m->decoded == NULL) {
        return -1;
    }

    d = m->decoded;

    for (i = 0; i < n; i++) {
        if (parts[i].kind != FANOUT_OK) {
            continue;
        }

        v = &parts[i].field;

        if (v->p == NULL) {
            fanout_bad_field(&parts[i], "field is missing");
            continue;
        }

        memset(&x, 0, sizeof(fanout_ballot_t));

        switch (v->p[0]) {

        case '"':
            /* validated by the scanner: the escapes are well-formed */
            x.kind = 's';
            x.text = d;
            x.len = fanout_json_unescape(v->p + 1, v->p + v->len - 1, d);
            d += x.len;
            break;

        case 't':
        case 'f':
            x.kind = v->p[0];
            break;

        case '{':
        case '[':
        case 'n':
            fanout_bad_field(&parts[i], "field is not a string, number or "
                                        "boolean");
            continue;

        default:
            if (fanout_json_number(v, &x.number) != 0) {
                fanout_bad_field(&parts[i], "field is a number beyond a "
                                            "double's range");
                continue;
            }

            /* -0 votes with 0 */
            x.number += 0.0;
            x.kind = 'n';
            x.text = (const char *) &x.number;
            x.len = sizeof(double);
        }

        x.hash = fanout_ballot_hash(x.kind, x.text, x.len);

        for (b = 0; b < m->nballots; b++) {
            if (fanout_ballot_same(&m->ballots[b], &x)) {
                break;
            }
        }

        if (b == m->nballots) {
            x.voter = i;
            x.votes = 0;

            if (x.kind == 'n') {
                x.text = NULL;
            }

            m->ballots[b] = x;
            m->nballots++;
        }

        m->ballots[b].votes += parts[i].weight;
    }

    if (fanout_vote_keys(parts, m) != 0) {
        return -1;
    }

    m->winner = 0;

    for (b = 1; b < m->nballots; b++) {
        /* weights are decimals: 0.1 + 0.2 must tie with 0.3 */
        if (m->ballots[b].votes > m->ballots[m->winner].votes + 1e-9) {
            m->winner = b;
        }
    }

    return 0;
}


int
fanout_merge_prepare(const fanout_merge_conf_t *conf, fanout_part_t *parts,
    size_t n, fanout_merged_t *m)
{
    size_t  i;

    memset(m, 0, sizeof(fanout_merged_t));

    if (conf->mode == FANOUT_MERGE_MEAN
        && fanout_merge_mean(parts, n, m, conf->precision) != 0)
    {
        return -1;
    }

    if (conf->mode == FANOUT_MERGE_VOTE
        && fanout_merge_vote(parts, n, m) != 0)
    {
        fanout_merged_free(m);
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (parts[i].kind == FANOUT_OK) {
            m->ok++;
        }
    }

    m->status = fanout_merge_status(parts, n, conf->quorum);

    return 0;
}


void
fanout_merged_free(fanout_merged_t *m)
{
    if (m->mean != m->mean_room) {
        free(m->mean);
    }

    free(m->ballots);
    free(m->decoded);
    free(m->keys);

    memset(m, 0, sizeof(fanout_merged_t));
}


static void
fanout_write_weight(fanout_out_t *o, double w)
{
    /* weights have at most 3 decimals, so sums print exactly as such */
    fanout_out_double(o, round(w * 1000) / 1000);
}


/* a ballot as a value: a string as decoded, others as their first voter */

static void
fanout_write_ballot(const fanout_part_t *parts, const fanout_ballot_t *bl,
    fanout_out_t *o)
{
    const fanout_span_t  *v;

    if (bl->kind == 's') {
        fanout_out_string(o, bl->text, bl->len);
        return;
    }

    v = &parts[bl->voter].field;
    fanout_out_raw(o, v->p, v->len);
}


static void
fanout_write_vote(const fanout_part_t *parts, const fanout_merged_t *m,
    fanout_out_t *o)
{
    size_t                  b;
    const fanout_ballot_t  *bl;

    fanout_out_cstr(o, ",\"value\":");

    if (m->nballots == 0) {
        fanout_out_cstr(o, "null");

    } else {
        fanout_write_ballot(parts, &m->ballots[m->winner], o);
    }

    fanout_out_cstr(o, ",\"votes\":{");

    for (b = 0; b < m->nballots; b++) {
        bl = &m->ballots[b];

        if (b) {
            fanout_out_raw(o, ",", 1);
        }

        fanout_out_string(o, bl->key, bl->key_len);
        fanout_out_raw(o, ":", 1);
        fanout_write_weight(o, bl->votes);
    }

    fanout_out_raw(o, "}", 1);
}


void
fanout_merge_write(const fanout_merge_conf_t *conf, const fanout_part_t *parts,
    size_t n, const fanout_merged_t *m, fanout_out_t *o)
{
    char      buf[16];
    size_t    i, k;

    fanout_out_raw(o, "{", 1);

    if (m->status != 200) {
        fanout_out_cstr(o, "\"error\":\"quorum_not_met\",");
    }

    if (conf->mode == FANOUT_MERGE_MEAN || conf->mode == FANOUT_MERGE_VOTE) {
        fanout_out_cstr(o, "\"merged\":{\"field\":");
        fanout_out_string(o, conf->field, conf->field_len);

        if (conf->mode == FANOUT_MERGE_MEAN) {
            fanout_out_cstr(o, ",\"value\":");

            if (m->from) {
                fanout_out_raw(o, m->mean, m->mean_len);

            } else {
                fanout_out_cstr(o, "null");
            }
            fanout_out_cstr(o, ",\"from\":");
            fanout_out_uint(o, m->from);

        } else {
            fanout_write_vote(parts, m, o);
        }

        fanout_out_cstr(o, "},");
    }

    /* the answers as they came */
    fanout_out_cstr(o, "\"results\":{");

    for (i = 0, k = 0; i < n; i++) {
        if (parts[i].kind != FANOUT_OK) {
            continue;
        }

        if (k++) {
            fanout_out_raw(o, ",", 1);
        }

        fanout_out_string(o, parts[i].name, strlen(parts[i].name));
        fanout_out_raw(o, ":", 1);
        fanout_out_raw(o, parts[i].body, parts[i].body_len);
    }

    fanout_out_cstr(o, "},\"errors\":{");

    for (i = 0, k = 0; i < n; i++) {
        if (parts[i].kind == FANOUT_OK) {
            continue;
        }

        if (k++) {
            fanout_out_raw(o, ",", 1);
        }

        fanout_out_string(o, parts[i].name, strlen(parts[i].name));
        fanout_out_cstr(o, ":{\"status\":");
        fanout_out_uint(o, (unsigned long) parts[i].status);
        fanout_out_cstr(o, ",\"error\":\"");
        fanout_out_cstr(o, fanout_kind_error(&parts[i], buf, sizeof(buf)));
        fanout_out_raw(o, "\"", 1);

        if (parts[i].detail) {
            fanout_out_cstr(o, ",\"detail\":");
            fanout_out_string(o, parts[i].detail, strlen(parts[i].detail));
        }

        fanout_out_raw(o, "}", 1);
    }

    fanout_out_cstr(o, "},\"meta\":{\"targets\":");
    fanout_out_uint(o, n);
    fanout_out_cstr(o, ",\"ok\":");
    fanout_out_uint(o, m->ok);
    fanout_out_cstr(o, ",\"failed\":");
    fanout_out_uint(o, n - m->ok);
    fanout_out_cstr(o, ",\"quorum\":");
    fanout_out_uint(o, conf->quorum);

    /* ids of hex, or of a request id's characters: nothing to escape */
    if (conf->trace_id_len) {
        fanout_out_cstr(o, ",\"trace_id\":\"");
        fanout_out_raw(o, conf->trace_id, conf->trace_id_len);
        fanout_out_raw(o, "\"", 1);
    }

    if (conf->request_id_len) {
        fanout_out_cstr(o, ",\"request_id\":\"");
        fanout_out_raw(o, conf->request_id, conf->request_id_len);
        fanout_out_raw(o, "\"", 1);
    }

    fanout_out_cstr(o, ",\"latency_ms\":{");

    for (i = 0; i < n; i++) {
        if (i) {
            fanout_out_raw(o, ",", 1);
        }

        fanout_out_string(o, parts[i].name, strlen(parts[i].name));
        fanout_out_raw(o, ":", 1);
        fanout_out_uint(o, parts[i].latency_ms);
    }

    fanout_out_raw(o, "}", 1);

    for (i = 0, k = 0; i < n; i++) {
        if (!parts[i].fallback) {
            continue;
        }

        fanout_out_cstr(o, k++ ? "," : ",\"fallback\":{");
        fanout_out_string(o, parts[i].name, strlen(parts[i].name));
        fanout_out_cstr(o, ":true");
    }

    if (k) {
        fanout_out_raw(o, "}", 1);
    }

    /* fanout_hedge: the calls a backup answered */
    for (i = 0, k = 0; i < n; i++) {
        if (!parts[i].hedged) {
            continue;
        }

        fanout_out_cstr(o, k++ ? "," : ",\"hedged\":{");
        fanout_out_string(o, parts[i].name, strlen(parts[i].name));
        fanout_out_cstr(o, ":true");
    }

    if (k) {
        fanout_out_raw(o, "}", 1);
    }

    /* fanout_retry: the calls that took more than one attempt */
    for (i = 0, k = 0; i < n; i++) {
        if (parts[i].attempts <= 1) {
            continue;
        }

        fanout_out_cstr(o, k++ ? "," : ",\"attempts\":{");
        fanout_out_string(o, parts[i].name, strlen(parts[i].name));
        fanout_out_raw(o, ":", 1);
        fanout_out_uint(o, parts[i].attempts);
    }

    if (k) {
        fanout_out_raw(o, "}", 1);
    }

    if (conf->cache_meta) {
        fanout_out_cstr(o, ",\"cache\":{");

        for (i = 0; i < n; i++) {
            if (i) {
                fanout_out_raw(o, ",", 1);
            }

            fanout_out_string(o, parts[i].name, strlen(parts[i].name));
            fanout_out_cstr(o, parts[i].cached ? ":\"HIT\"" : ":\"MISS\"");
        }

        fanout_out_raw(o, "}", 1);
    }

    fanout_out_cstr(o, "}}");
}


/* format=v2: the shape of the mean: its arrays are regular, so each
 * level's first one says the size of its level */

static void
fanout_v2_shape(const char *p, size_t len, fanout_out_t *o)
{
    long           n;
    unsigned       k;
    fanout_span_t  first;

    fanout_out_raw(o, "[", 1);

    for (k = 0; len && p[0] == '['; k++) {
        n = fanout_json_array(p, len, NULL, (size_t) -1 / 2);

        if (n <= 0) {
            break;
        }

        if (k) {
            fanout_out_raw(o, ",", 1);
        }

        fanout_out_uint(o, (unsigned long) n);

        (void) fanout_json_array(p, len, &first, 1);
        p = first.p;
        len = first.len;
    }

    if (k == 0) {
        /* a number: one element */
        fanout_out_raw(o, "1", 1);
    }

    fanout_out_raw(o, "]", 1);
}


/* format=v2: the numbers of the mean, flat */

static void
fanout_v2_flat(const char *p, size_t len, fanout_out_t *o)
{
    size_t  i, start;

    fanout_out_raw(o, "[", 1);

    for (i = 0, start = 0; i < len; i++) {
        if (p[i] == '[' || p[i] == ']') {
            fanout_out_raw(o, p + start, i - start);
            start = i + 1;
        }
    }

    fanout_out_raw(o, p + start, len - start);
    fanout_out_raw(o, "]", 1);
}


void
fanout_merge_write_v2(const fanout_merge_conf_t *conf,
    const fanout_part_t *parts, size_t n, const fanout_merged_t *m,
    fanout_out_t *o)
{
    char                    buf[16];
    size_t                  i, k;
    const char             *type;
    const fanout_ballot_t  *bl;

    if (m->status != 200 || (conf->mode == FANOUT_MERGE_MEAN && !m->from)
        || (conf->mode == FANOUT_MERGE_VOTE && m->nballots == 0))
    {
        /* the protocol's error: a message, the status says the rest */
        fanout_out_cstr(o, "{\"error\":\"quorum_not_met: ");
        fanout_out_uint(o, m->ok);
        fanout_out_cstr(o, " of ");
        fanout_out_uint(o, n);
        fanout_out_cstr(o, " targets answered, ");
        fanout_out_uint(o, conf->quorum);
        fanout_out_cstr(o, " needed\"}");
        return;
    }

    fanout_out_cstr(o, "{\"model_name\":");
    fanout_out_string(o, conf->model, conf->model_len);

    if (conf->id) {
        fanout_out_cstr(o, ",\"id\":");
        fanout_out_raw(o, conf->id, conf->id_len);
    }

    fanout_out_cstr(o, ",\"outputs\":[{\"name\":");
    fanout_out_string(o, conf->output, conf->output_len);
    fanout_out_cstr(o, ",\"shape\":");

    if (conf->mode == FANOUT_MERGE_MEAN) {
        fanout_v2_shape(m->mean, m->mean_len, o);
        fanout_out_cstr(o, ",\"datatype\":\"FP64\",\"data\":");
        fanout_v2_flat(m->mean, m->mean_len, o);

    } else {
        bl = &m->ballots[m->winner];
        type = (bl->kind == 's') ? "BYTES" : (bl->kind == 'n') ? "FP64"
                                                               : "BOOL";
        fanout_out_cstr(o, "[1],\"datatype\":\"");
        fanout_out_cstr(o, type);
        fanout_out_cstr(o, "\",\"data\":[");
        fanout_write_ballot(parts, bl, o);
        fanout_out_raw(o, "]", 1);
    }

    /* the per-target details, as the protocol's scalar parameters */
    fanout_out_cstr(o, "}],\"parameters\":{\"fanout_targets\":");
    fanout_out_uint(o, n);
    fanout_out_cstr(o, ",\"fanout_ok\":");
    fanout_out_uint(o, m->ok);
    fanout_out_cstr(o, ",\"fanout_quorum\":");
    fanout_out_uint(o, conf->quorum);
    fanout_out_cstr(o, ",\"fanout_failed\":\"");

    for (i = 0, k = 0; i < n; i++) {
        if (parts[i].kind == FANOUT_OK) {
            continue;
        }

        if (k++) {
            fanout_out_raw(o, ",", 1);
        }

        /* target names are letters, digits, "_", "-", ".": no escapes */
        fanout_out_cstr(o, parts[i].name);
        fanout_out_raw(o, ":", 1);
        fanout_out_cstr(o, fanout_kind_error(&parts[i], buf, sizeof(buf)));
    }

    fanout_out_cstr(o, "\"}}");
}


void
fanout_merge_output_name(const char *field, size_t len, const char **name,
    size_t *name_len)
{
    size_t       i, start, end;
    const char  *eq;

    /* a selector's value, the last one */
    for (i = len; i > 0; i--) {
        if (field[i - 1] == ']') {
            end = i - 1;

            for (start = end; start > 0 && field[start - 1] != '['; start--) {
                /* void */
            }

            eq = memchr(field + start, '=', end - start);

            if (eq) {
                *name = eq + 1;
                *name_len = (size_t) (field + end - eq - 1);
                return;
            }
        }
    }

    /* else the last segment that is not an index */
    end = len;

    for (i = len; ; i--) {
        if (i == 0 || field[i - 1] == '.') {
            for (start = i; start < end && field[start] >= '0'
                            && field[start] <= '9'; start++)
            {
                /* void */
            }

            if (start < end || i == 0) {
                *name = field + i;
                *name_len = end - i;
                return;
            }

            end = i - 1;
        }

        if (i == 0) {
            break;
        }
    }

    *name = field;
    *name_len = len;
}

