/*
 * Micro-batching: requests combined, answers split (fanout_microbatch.h).
 */

#include <stdio.h>
#include <string.h>

#include "fanout_microbatch.h"
#include "fanout_number.h"


#define FANOUT_MB_NO_ROWS  ((size_t) -1)


/* by fanout_mb_format_e; NULL-terminated, for the directive's reader */
const char *const  fanout_mb_formats[] = {
    "instances", "v2", "openai", "array", NULL
};


const char *
fanout_mb_format_name(fanout_mb_format_e fmt)
{
    return (fmt <= FANOUT_MB_ARRAY) ? fanout_mb_formats[fmt] : "unknown";
}


/* the value at path, found once: a duplicate key on the path is refused */

static int
fanout_mb_find(const char *body, size_t len, const char *path,
    fanout_span_t *v)
{
    unsigned  matches;

    if (fanout_json_find(body, len, path, strlen(path), v, &matches) != 0
        || matches > 1)
    {
        return -1;
    }

    return (v->p == NULL) ? 1 : 0;
}


static int
fanout_mb_add_cut(fanout_mb_doc_t *d, fanout_mb_cut_e what, unsigned tensor,
    fanout_span_t *span)
{
    unsigned  i;

    if (d->ncuts == FANOUT_MB_MAX_CUTS) {
        return -1;
    }

    /* in the order of the text: cuts never overlap */
    for (i = d->ncuts; i > 0 && d->cuts[i - 1].span.p > span->p; i--) {
        d->cuts[i] = d->cuts[i - 1];
    }

    d->cuts[i].what = what;
    d->cuts[i].tensor = tensor;
    d->cuts[i].span = *span;
    d->ncuts++;

    return 0;
}


/* an array's elements, counted: -1 when it is not one */

static long
fanout_mb_count(fanout_span_t *v)
{
    return fanout_json_array(v->p, v->len, NULL, (size_t) -1 / 2);
}


/* a non-negative integer, as JSON writes it, that fits */

static int
fanout_mb_uint(fanout_span_t *v, size_t *n)
{
    size_t  i;

    if (v->len == 0 || v->len > 15 || (v->len > 1 && v->p[0] == '0')) {
        return -1;
    }

    *n = 0;

    for (i = 0; i < v->len; i++) {
        if (v->p[i] < '0' || v->p[i] > '9') {
            return -1;
        }

        *n = *n * 10 + (size_t) (v->p[i] - '0');
    }

    return 0;
}


/* v2: the elements of a row, the product of shape[1:] */

#define FANOUT_MB_MAX_DIMS   16
#define FANOUT_MB_MAX_ROW    ((size_t) 1 << 32)

static int
fanout_mb_row_size(fanout_span_t *shape, size_t *per)
{
    long           n, i;
    size_t         d;
    fanout_span_t  dims[FANOUT_MB_MAX_DIMS];

    n = fanout_json_array(shape->p, shape->len, dims, FANOUT_MB_MAX_DIMS);

    if (n < 1 || n > FANOUT_MB_MAX_DIMS) {
        return -1;
    }

    *per = 1;

    for (i = 1; i < n; i++) {
        if (fanout_mb_uint(&dims[i], &d) != 0 || d == 0
            || *per > FANOUT_MB_MAX_ROW / d)
        {
            return -1;
        }

        *per *= d;
    }

    return 0;
}


/*
 * v2: the tensors of "inputs" (or "outputs"), each with the same rows in
 * shape[0] and flat data of as many elements as its shape says.
 */

static int
fanout_mb_tensors(const char *body, size_t len, const char *field,
    size_t rows, fanout_mb_doc_t *d)
{
    long           n, m;
    char           path[64];
    size_t         count, per;
    unsigned       k;
    fanout_span_t  v, shape, data;

    if (fanout_mb_find(body, len, field, &v) != 0) {
        return -1;
    }

    n = fanout_mb_count(&v);

    if (n < 1 || n > FANOUT_MB_MAX_TENSORS) {
        return -1;
    }

    d->ntensors = (unsigned) n;
    d->rows = rows;

    for (k = 0; k < d->ntensors; k++) {
        snprintf(path, sizeof(path), "%s.%u.shape.0", field, k);

        if (fanout_mb_find(body, len, path, &shape) != 0
            || fanout_mb_uint(&shape, &count) != 0 || count == 0)
        {
            return -1;
        }

        snprintf(path, sizeof(path), "%s.%u.shape", field, k);

        if (fanout_mb_find(body, len, path, &v) != 0
            || fanout_mb_row_size(&v, &per) != 0)
        {
            return -1;
        }

        snprintf(path, sizeof(path), "%s.%u.data", field, k);

        if (fanout_mb_find(body, len, path, &data) != 0) {
            return -1;
        }

        m = fanout_mb_count(&data);

        /* flat data, as many elements as the shape says */
        if (m < 1 || (size_t) m != count * per) {
            return -1;
        }

        if (d->rows == FANOUT_MB_NO_ROWS) {
            /* a request: its first tensor says its rows */
            d->rows = count;

        } else if (count != d->rows) {
            return -1;
        }

        d->elements[k] = (size_t) m;

        if (fanout_mb_add_cut(d, FANOUT_MB_CUT_COUNT, k, &shape) != 0
            || fanout_mb_add_cut(d, FANOUT_MB_CUT_ROWS, k, &data) != 0)
        {
            return -1;
        }
    }

    switch (fanout_mb_find(body, len, "id", &d->id)) {
    case 0:
        return fanout_mb_add_cut(d, FANOUT_MB_CUT_ID, 0, &d->id);
    case 1:
        return 0;
    default:
        return -1;
    }
}


/* an array of rows at path (NULL: the body itself) */

static int
fanout_mb_rows(const char *body, size_t len, const char *path,
    size_t rows, fanout_mb_doc_t *d)
{
    long           n;
    fanout_span_t  v;

    if (path) {
        if (fanout_mb_find(body, len, path, &v) != 0) {
            return -1;
        }

    } else {
        if (fanout_json_scan(body, len, NULL, 0, NULL) != 0) {
            return -1;
        }

        v.p = body;
        v.len = len;

        /* the array without the whitespace around it */
        while (v.len && (*v.p == ' ' || *v.p == '\t' || *v.p == '\n'
                         || *v.p == '\r'))
        {
            v.p++;
            v.len--;
        }

        while (v.len && (v.p[v.len - 1] == ' ' || v.p[v.len - 1] == '\t'
                         || v.p[v.len - 1] == '\n' || v.p[v.len - 1] == '\r'))
        {
            v.len--;
        }
    }

    n = fanout_mb_count(&v);

    if (n < 1 || (rows != FANOUT_MB_NO_ROWS && (size_t) n != rows)) {
        return -1;
    }

    d->rows = (size_t) n;
    d->ntensors = 1;
    d->elements[0] = (size_t) n;

    return fanout_mb_add_cut(d, FANOUT_MB_CUT_ROWS, 0, &v);
}


int
fanout_mb_request(fanout_mb_format_e fmt, const char *body, size_t len,
    fanout_mb_doc_t *d)
{
    long           n;
    const char    *p;
    fanout_span_t  v;

    memset(d, 0, sizeof(fanout_mb_doc_t));

    switch (fmt) {

    case FANOUT_MB_INSTANCES:
        return fanout_mb_rows(body, len, "instances", FANOUT_MB_NO_ROWS, d);

    case FANOUT_MB_ARRAY:
        return fanout_mb_rows(body, len, NULL, FANOUT_MB_NO_ROWS, d);

    case FANOUT_MB_V2:
        return fanout_mb_tensors(body, len, "inputs", FANOUT_MB_NO_ROWS, d);

    case FANOUT_MB_OPENAI:
        if (fanout_mb_find(body, len, "input", &v) != 0) {
            return -1;
        }

        if (v.p[0] == '"') {
            /* one text: one input */
            d->rows = 1;
            d->ntensors = 1;
            d->elements[0] = 1;
            return fanout_mb_add_cut(d, FANOUT_MB_CUT_ONE, 0, &v);
        }

        n = fanout_mb_count(&v);

        if (n < 1) {
            return -1;
        }

        /* [1,2,3] is one input of tokens; [[1,2],[3]] two */
        for (p = v.p + 1; *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
             p++)
        {
            /* void */
        }

        if (*p == '-' || (*p >= '0' && *p <= '9')) {
            d->rows = 1;
            d->ntensors = 1;
            d->elements[0] = 1;
            return fanout_mb_add_cut(d, FANOUT_MB_CUT_ONE, 0, &v);
        }

        return fanout_mb_rows(body, len, "input", FANOUT_MB_NO_ROWS, d);
    }

    return -1;
}


void
fanout_mb_key(const char *body, const fanout_mb_doc_t *d, size_t len,
    fanout_out_t *out)
{
    unsigned     i;
    const char  *p;

    p = body;

    for (i = 0; i < d->ncuts; i++) {
        fanout_out_raw(out, p, (size_t) (d->cuts[i].span.p - p));

        /* what is cut stands as its kind: a lone input is not an array */
        fanout_out_raw(out, d->cuts[i].what == FANOUT_MB_CUT_ONE ? "\x01"
                            : "\x02", 1);

        p = d->cuts[i].span.p + d->cuts[i].span.len;
    }

    fanout_out_raw(out, p, (size_t) (body + len - p));
}


/* an array's contents, between its brackets */

static void
fanout_mb_contents(const fanout_span_t *array, fanout_span_t *inside)
{
    inside->p = array->p + 1;
    inside->len = array->len - 2;
}


void
fanout_mb_combine(const char *const *bodies, const size_t *lens,
    const fanout_mb_doc_t *docs, size_t n, fanout_out_t *out)
{
    size_t                  j, rows;
    unsigned                i;
    const char             *p;
    fanout_span_t           inside;
    const fanout_mb_cut_t  *cut;

    p = bodies[0];

    for (i = 0; i < docs[0].ncuts; i++) {
        cut = &docs[0].cuts[i];

        fanout_out_raw(out, p, (size_t) (cut->span.p - p));
        p = cut->span.p + cut->span.len;

        switch (cut->what) {

        case FANOUT_MB_CUT_ROWS:
        case FANOUT_MB_CUT_ONE:
            fanout_out_raw(out, "[", 1);

            for (j = 0; j < n; j++) {
                if (j) {
                    fanout_out_raw(out, ",", 1);
                }

                if (docs[j].cuts[i].what == FANOUT_MB_CUT_ONE) {
                    fanout_out_raw(out, docs[j].cuts[i].span.p,
                                   docs[j].cuts[i].span.len);

                } else {
                    fanout_mb_contents(&docs[j].cuts[i].span, &inside);
                    fanout_out_raw(out, inside.p, inside.len);
                }
            }

            fanout_out_raw(out, "]", 1);
            break;

        case FANOUT_MB_CUT_COUNT:
            for (j = 0, rows = 0; j < n; j++) {
                rows += docs[j].rows;
            }

            fanout_out_uint(out, rows);
            break;

        case FANOUT_MB_CUT_ID:
            /* nobody's: each caller gets its own back */
            fanout_out_cstr(out, "\"fanout-batch\"");
            break;
        }
    }

    fanout_out_raw(out, p, (size_t) (bodies[0] + lens[0] - p));
}


int
fanout_mb_answer(fanout_mb_format_e fmt, const char *body, size_t len,
    size_t rows, fanout_mb_doc_t *d)
{
    memset(d, 0, sizeof(fanout_mb_doc_t));

    switch (fmt) {

    case FANOUT_MB_INSTANCES:
        return fanout_mb_rows(body, len, "predictions", rows, d);

    case FANOUT_MB_ARRAY:
        return fanout_mb_rows(body, len, NULL, rows, d);

    case FANOUT_MB_OPENAI:
        /* each element says its input by "index": no order is promised */
        d->keyed = 1;
        return fanout_mb_rows(body, len, "data", rows, d);

    case FANOUT_MB_V2:
        return fanout_mb_tensors(body, len, "outputs", rows, d);
    }

    return -1;
}


/* openai: an embedding with its index from the caller's first */

static void
fanout_mb_reindex(const fanout_span_t *item, size_t index, fanout_out_t *out)
{
    unsigned       matches;
    fanout_span_t  v;

    if (fanout_json_find(item->p, item->len, "index", 5, &v, &matches) != 0
        || v.p == NULL || matches != 1)
    {
        fanout_out_raw(out, item->p, item->len);
        return;
    }

    fanout_out_raw(out, item->p, (size_t) (v.p - item->p));
    fanout_out_uint(out, index);
    fanout_out_raw(out, v.p + v.len, (size_t) (item->p + item->len
                                                - (v.p + v.len)));
}


size_t
fanout_mb_items_room(const fanout_mb_doc_t *d, unsigned tensor)
{
    size_t  n;

    n = d->elements[tensor] ? d->elements[tensor] : 1;

    /* keyed: read in the answer's order, then put in the inputs' */
    return d->keyed ? 2 * n : n;
}


/* openai: the elements, as the model listed them, put in their "index"
 * order: each index an integer below n, each once */

static int
fanout_mb_by_index(const fanout_span_t *listed, size_t n,
    fanout_span_t *items)
{
    size_t         i, index;
    unsigned       matches;
    fanout_span_t  v;

    for (i = 0; i < n; i++) {
        items[i].p = NULL;
        items[i].len = 0;
    }

    for (i = 0; i < n; i++) {
        if (fanout_json_find(listed[i].p, listed[i].len, "index", 5, &v,
                             &matches) != 0
            || v.p == NULL || matches != 1
            || fanout_mb_uint(&v, &index) != 0
            || index >= n || items[index].p != NULL)
        {
            return -1;
        }

        items[index] = listed[i];
    }

    return 0;
}


int
fanout_mb_items(const fanout_mb_doc_t *d, unsigned tensor,
    fanout_span_t *items)
{
    long            n;
    size_t          want;
    unsigned        i;
    fanout_span_t  *listed;

    want = d->elements[tensor];
    listed = d->keyed ? items + (want ? want : 1) : items;

    for (i = 0; i < d->ncuts; i++) {
        if (d->cuts[i].what == FANOUT_MB_CUT_ROWS
            && d->cuts[i].tensor == tensor)
        {
            n = fanout_json_array(d->cuts[i].span.p, d->cuts[i].span.len,
                                  listed, want);

            if ((size_t) n != want) {
                return -1;
            }

            return d->keyed ? fanout_mb_by_index(listed, want, items) : 0;
        }
    }

    return -1;
}


/*
 * What of an answer's top level a caller gets, per format: what any call
 * of the model would say alike, and its rows.  Anything else may speak of
 * the batch (its size, another caller's inputs) and is left out: openai's
 * "usage" counts every caller's tokens, v2's "parameters" are the batch's.
 */

static const char  *fanout_mb_kept_instances[] = {
    "\"predictions\"", "\"model\"", "\"model_name\"", "\"model_version\"",
    NULL
};

static const char  *fanout_mb_kept_v2[] = {
    "\"model_name\"", "\"model_version\"", "\"id\"", "\"outputs\"", NULL
};

static const char  *fanout_mb_kept_openai[] = {
    "\"object\"", "\"model\"", "\"data\"", NULL
};


static int
fanout_mb_kept(fanout_mb_format_e fmt, const fanout_span_t *raw, int alone)
{
    char           buf[32];
    const char   **k;
    fanout_span_t  decoded, *key;

    key = (fanout_span_t *) raw;

    if (memchr(raw->p, '\\', raw->len) != NULL) {
        /* "pre\u0064ictions" is "predictions" to every parser */
        if (raw->len > sizeof(buf)) {
            return 0;
        }

        buf[0] = '"';
        decoded.len = 1 + fanout_json_unescape(raw->p + 1,
                                               raw->p + raw->len - 1,
                                               buf + 1);
        buf[decoded.len++] = '"';
        decoded.p = buf;
        key = &decoded;
    }

    switch (fmt) {
    case FANOUT_MB_INSTANCES:
        k = fanout_mb_kept_instances;
        break;
    case FANOUT_MB_V2:
        k = fanout_mb_kept_v2;
        break;
    case FANOUT_MB_OPENAI:
        /* the batch's usage is a lone caller's own */
        if (alone && key->len == 7 && memcmp(key->p, "\"usage\"", 7) == 0) {
            return 1;
        }

        k = fanout_mb_kept_openai;
        break;
    default:
        return 1;
    }

    for (/* void */; *k; k++) {
        if (key->len == strlen(*k) && memcmp(key->p, *k, key->len) == 0) {
            return 1;
        }
    }

    return 0;
}


/* the text from p to end with the cuts in it replaced by the caller's */

static int
fanout_mb_write(fanout_mb_format_e fmt, const char *p, const char *end,
    const fanout_mb_doc_t *d, unsigned *next, fanout_span_t *const *items,
    size_t first, size_t count, const fanout_span_t *id, fanout_out_t *out)
{
    size_t                  per, j;
    fanout_span_t          *it;
    const fanout_mb_cut_t  *cut;

    for (/* void */; *next < d->ncuts; (*next)++) {
        cut = &d->cuts[*next];

        if (cut->span.p < p) {
            /* in a member left out */
            continue;
        }

        if (cut->span.p + cut->span.len > end) {
            break;
        }

        fanout_out_raw(out, p, (size_t) (cut->span.p - p));
        p = cut->span.p + cut->span.len;

        switch (cut->what) {

        case FANOUT_MB_CUT_ROWS:
            it = items[cut->tensor];
            per = d->elements[cut->tensor] / d->rows;

            fanout_out_raw(out, "[", 1);

            for (j = first * per; j < (first + count) * per; j++) {
                if (j > first * per) {
                    fanout_out_raw(out, ",", 1);
                }

                if (fmt == FANOUT_MB_OPENAI) {
                    fanout_mb_reindex(&it[j], j - first * per, out);

                } else {
                    fanout_out_raw(out, it[j].p, it[j].len);
                }
            }

            fanout_out_raw(out, "]", 1);
            break;

        case FANOUT_MB_CUT_COUNT:
            fanout_out_uint(out, count);
            break;

        case FANOUT_MB_CUT_ID:
            if (id && id->p) {
                fanout_out_raw(out, id->p, id->len);

            } else {
                fanout_out_raw(out, cut->span.p, cut->span.len);
            }

            break;

        case FANOUT_MB_CUT_ONE:
            return -1;
        }
    }

    fanout_out_raw(out, p, (size_t) (end - p));

    return 0;
}


int
fanout_mb_slice(fanout_mb_format_e fmt, const char *body, size_t len,
    const fanout_mb_doc_t *d, fanout_span_t *const *items, size_t first,
    size_t count, const fanout_span_t *id, fanout_out_t *out)
{
    int                 rc, alone, sep;
    unsigned            next;
    const char         *p, *end;
    fanout_span_t       key, value;
    fanout_member_it_t  it;

    if (first + count > d->rows || count == 0) {
        return -1;
    }

    next = 0;
    alone = (first == 0 && count == d->rows);

    /* the answer's own whitespace around its value */
    for (p = body, end = body + len;
         p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r');
         p++)
    {
        /* void */
    }

    if (fmt == FANOUT_MB_ARRAY || p == end || *p != '{') {
        /* an array is all rows */
        return fanout_mb_write(fmt, body, body + len, d, &next, items, first,
                               count, id, out);
    }

    if (fanout_json_members_start(&it, p, (size_t) (end - p)) != 0) {
        return -1;
    }

    fanout_out_raw(out, "{", 1);

    for (sep = 0; /* void */; /* void */) {
        rc = fanout_json_members_next(&it, &key, &value);

        if (rc < 0) {
            return -1;
        }

        if (rc == 0) {
            break;
        }

        if (!fanout_mb_kept(fmt, &key, alone)) {
            continue;
        }

        if (sep) {
            fanout_out_raw(out, ",", 1);
        }

        sep = 1;

        fanout_out_raw(out, key.p, key.len);
        fanout_out_raw(out, ":", 1);

        if (fanout_mb_write(fmt, value.p, value.p + value.len, d, &next,
                            items, first, count, id, out)
            != 0)
        {
            return -1;
        }
    }

    fanout_out_raw(out, "}", 1);

    return 0;
}
