/*
 * Comparing two JSON values that fanout_json_scan() has validated: the
 * walk below trusts the syntax and only finds where values end.
 */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_json.h"
#include "fanout_number.h"
#include "fanout_compare.h"


typedef struct {
    const char  *p;
    const char  *end;
} fanout_cur_t;


static int fanout_equal(const char *a, size_t alen, const char *b,
    size_t blen, double tolerance);


static void
fanout_ws(fanout_cur_t *c)
{
    while (c->p < c->end
           && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n'
               || *c->p == '\r'))
    {
        c->p++;
    }
}


/* at the opening quote; ends past the closing one */
static void
fanout_skip_string(fanout_cur_t *c)
{
    c->p++;

    while (c->p < c->end && *c->p != '"') {
        c->p += (*c->p == '\\') ? 2 : 1;
    }

    c->p++;
}


/* the span of the value at the cursor, which moves past it */
static fanout_span_t
fanout_value(fanout_cur_t *c)
{
    int            depth;
    fanout_span_t  v;

    fanout_ws(c);
    v.p = c->p;

    if (c->p >= c->end) {
        v.len = 0;
        return v;
    }

    switch (*c->p) {

    case '"':
        fanout_skip_string(c);
        break;

    case '{':
    case '[':
        depth = 0;

        while (c->p < c->end) {
            if (*c->p == '"') {
                fanout_skip_string(c);
                continue;
            }

            if (*c->p == '{' || *c->p == '[') {
                depth++;

            } else if (*c->p == '}' || *c->p == ']') {
                if (--depth == 0) {
                    c->p++;
                    break;
                }
            }

            c->p++;
        }

        break;

    default:
        /* a number or a literal */
        while (c->p < c->end && *c->p != ',' && *c->p != ']'
               && *c->p != '}' && *c->p != ' ' && *c->p != '\t'
               && *c->p != '\n' && *c->p != '\r')
        {
            c->p++;
        }
    }

    if (c->p > c->end) {
        c->p = c->end;
    }

    v.len = (size_t) (c->p - v.p);

    return v;
}


/*
 * The members of an array or an object, one per call: 1 with the next
 * element (and its key, for objects), 0 at the end.  The cursor starts
 * just inside the opening bracket.
 */
static int
fanout_next(fanout_cur_t *c, int object, fanout_span_t *key,
    fanout_span_t *value)
{
    fanout_ws(c);

    if (c->p < c->end && *c->p == ',') {
        c->p++;
        fanout_ws(c);
    }

    if (c->p >= c->end || *c->p == ']' || *c->p == '}') {
        return 0;
    }

    if (object) {
        *key = fanout_value(c);
        fanout_ws(c);
        c->p++;                                        /* ':' */
    }

    *value = fanout_value(c);

    return 1;
}


/* the next code point of a string's body: escapes and UTF-8 decoded */
static uint32_t
fanout_codepoint(const char **pp)
{
    uint32_t             cp, lo;
    const unsigned char *p;
    int                  i, n;

    p = (const unsigned char *) *pp;

    if (*p == '\\') {
        p++;

        switch (*p++) {
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            cp = 0;
            for (i = 0; i < 4; i++, p++) {
                cp = cp * 16 + (uint32_t) ((*p <= '9') ? *p - '0'
                                           : (*p | 0x20) - 'a' + 10);
            }

            if (cp >= 0xd800 && cp < 0xdc00 && p[0] == '\\' && p[1] == 'u') {
                lo = 0;
                for (i = 2; i < 6; i++) {
                    lo = lo * 16 + (uint32_t) ((p[i] <= '9') ? p[i] - '0'
                                               : (p[i] | 0x20) - 'a' + 10);
                }

                if (lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                }
            }

            break;
        default:
            cp = p[-1];                                /* " \ / */
        }

        *pp = (const char *) p;
        return cp;
    }

    if (*p < 0x80) {
        n = 0;
        cp = *p;
    } else if (*p < 0xe0) {
        n = 1;
        cp = *p & 0x1f;
    } else if (*p < 0xf0) {
        n = 2;
        cp = *p & 0x0f;
    } else {
        n = 3;
        cp = *p & 0x07;
    }

    for (p++; n > 0; n--, p++) {
        cp = (cp << 6) | (*p & 0x3f);
    }

    *pp = (const char *) p;
    return cp;
}


/* two string values, with their quotes */
static int
fanout_string_equal(fanout_span_t *a, fanout_span_t *b)
{
    const char  *p, *q, *pe, *qe;

    if (a->len == b->len && memcmp(a->p, b->p, a->len) == 0) {
        return 1;
    }

    p = a->p + 1;
    pe = a->p + a->len - 1;
    q = b->p + 1;
    qe = b->p + b->len - 1;

    while (p < pe && q < qe) {
        if (fanout_codepoint(&p) != fanout_codepoint(&q)) {
            return 0;
        }
    }

    return p >= pe && q >= qe;
}


/*
 * Objects are compared through their members sorted by decoded key: O(k log
 * k) for k keys, where looking each key up in the other object was O(k^2)
 * (2,000 keys took seconds).  Of duplicate keys the last one counts, as in
 * the scanner.
 */

typedef struct {
    const char     *key;          /* decoded, in the object's key buffer */
    size_t          key_len;
    size_t          order;        /* in the object */
    fanout_span_t   value;
} fanout_pair_t;


typedef struct {
    fanout_pair_t  *pairs;
    size_t          n;
    char           *keys;
} fanout_members_t;


static int
fanout_pair_cmp(const void *x, const void *y)
{
    int                   r;
    size_t                n;
    const fanout_pair_t  *a = x, *b = y;

    n = a->key_len < b->key_len ? a->key_len : b->key_len;
    r = memcmp(a->key, b->key, n);

    if (r != 0) {
        return r;
    }

    if (a->key_len != b->key_len) {
        return a->key_len < b->key_len ? -1 : 1;
    }

    return (a->order > b->order) - (a->order < b->order);
}


/* the members of an object, sorted; -1 when out of memory */
static int
fanout_members(fanout_span_t *object, fanout_members_t *m)
{
    char           *k;
    size_t          n, i, j;
    fanout_cur_t    c;
    fanout_span_t   key, value;

    m->pairs = NULL;
    m->keys = NULL;
    m->n = 0;

    c.p = object->p + 1;
    c.end = object->p + object->len;

    for (n = 0; fanout_next(&c, 1, &key, &value); n++) { /* void */ }

    if (n == 0) {
        return 0;
    }

    m->pairs = malloc(n * sizeof(fanout_pair_t));
    m->keys = malloc(object->len);

    if (m->pairs == NULL || m->keys == NULL) {
        free(m->pairs);
        free(m->keys);
        return -1;
    }

    c.p = object->p + 1;
    k = m->keys;

    for (i = 0; fanout_next(&c, 1, &key, &value); i++) {
        m->pairs[i].key = k;
        m->pairs[i].key_len = fanout_json_unescape(key.p + 1,
                                                   key.p + key.len - 1, k);
        m->pairs[i].order = i;
        m->pairs[i].value = value;
        k += m->pairs[i].key_len;
    }

    qsort(m->pairs, n, sizeof(fanout_pair_t), fanout_pair_cmp);

    /* of each run of one key, keep the last one */
    for (i = 0, j = 0; i < n; i++) {
        if (i + 1 < n && m->pairs[i].key_len == m->pairs[i + 1].key_len
            && memcmp(m->pairs[i].key, m->pairs[i + 1].key,
                      m->pairs[i].key_len) == 0)
        {
            continue;
        }

        m->pairs[j++] = m->pairs[i];
    }

    m->n = j;

    return 0;
}


static int
fanout_objects_equal(fanout_span_t *a, fanout_span_t *b, double tolerance)
{
    int               equal;
    size_t            i;
    fanout_members_t  ma, mb;

    if (fanout_members(a, &ma) != 0) {
        return 0;
    }

    if (fanout_members(b, &mb) != 0) {
        free(ma.pairs);
        free(ma.keys);
        return 0;
    }

    equal = (ma.n == mb.n);

    for (i = 0; equal && i < ma.n; i++) {
        equal = ma.pairs[i].key_len == mb.pairs[i].key_len
                && memcmp(ma.pairs[i].key, mb.pairs[i].key,
                          ma.pairs[i].key_len) == 0
                && fanout_equal(ma.pairs[i].value.p, ma.pairs[i].value.len,
                                mb.pairs[i].value.p, mb.pairs[i].value.len,
                                tolerance);
    }

    free(ma.pairs);
    free(ma.keys);
    free(mb.pairs);
    free(mb.keys);

    return equal;
}


static int
fanout_equal(const char *a, size_t alen, const char *b, size_t blen,
    double tolerance)
{
    int            more_a, more_b;
    double         x, y;
    fanout_cur_t   ca, cb;
    fanout_span_t  sa, sb, k, va, vb;

    ca.p = a;
    ca.end = a + alen;
    cb.p = b;
    cb.end = b + blen;

    sa = fanout_value(&ca);
    sb = fanout_value(&cb);

    if (sa.len == 0 || sb.len == 0) {
        return sa.len == sb.len;
    }

    /* the same text is the same value, even 1e400 or 70 digits */
    if (sa.len == sb.len && memcmp(sa.p, sb.p, sa.len) == 0) {
        return 1;
    }

    switch (*sa.p) {

    case '"':
        return *sb.p == '"' && fanout_string_equal(&sa, &sb);

    case '[':
        if (*sb.p != '[') {
            return 0;
        }

        ca.p = sa.p + 1;
        ca.end = sa.p + sa.len;
        cb.p = sb.p + 1;
        cb.end = sb.p + sb.len;

        for ( ;; ) {
            more_a = fanout_next(&ca, 0, &k, &va);
            more_b = fanout_next(&cb, 0, &k, &vb);

            if (!more_a || !more_b) {
                return more_a == more_b;
            }

            if (!fanout_equal(va.p, va.len, vb.p, vb.len, tolerance)) {
                return 0;
            }
        }

    case '{':
        return *sb.p == '{' && fanout_objects_equal(&sa, &sb, tolerance);

    case 't':
    case 'f':
    case 'n':
        return sa.len == sb.len && memcmp(sa.p, sb.p, sa.len) == 0;

    default:
        if (fanout_json_number(&sa, &x) != 0
            || fanout_json_number(&sb, &y) != 0)
        {
            return 0;
        }

        /* 0.52 - 0.5 is 0.0200...02 in binary: forgive the last digits */
        return x == y
               || fabs(x - y) - tolerance
                  <= 1e-9 * (fabs(x) + fabs(y) + tolerance);
    }
}


long
fanout_argmax(const char *p, size_t len)
{
    long           i, best;
    double         x, max;
    fanout_cur_t   c;
    fanout_span_t  v, k;

    c.p = p;
    c.end = p + len;

    v = fanout_value(&c);

    if (v.len == 0 || *v.p != '[') {
        return -1;
    }

    c.p = v.p + 1;
    c.end = v.p + v.len;
    best = -1;
    max = 0;

    for (i = 0; fanout_next(&c, 0, &k, &v); i++) {
        if (fanout_json_number(&v, &x) != 0) {
            return -1;
        }

        if (best < 0 || x > max) {
            best = i;
            max = x;
        }
    }

    return best;
}


void
fanout_compare(const char *a, size_t alen, const char *b, size_t blen,
    double tolerance, fanout_compare_t *res)
{
    long  x, y;

    res->agree = fanout_equal(a, alen, b, blen, tolerance);

    x = fanout_argmax(a, alen);
    y = fanout_argmax(b, blen);

    res->argmax = (x < 0 || y < 0) ? -1 : (x == y);
}
