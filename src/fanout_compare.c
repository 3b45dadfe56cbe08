/*
 * Comparing two JSON values that fanout_json_scan() has validated: the
 * walk below trusts the syntax and only finds where values end.
 */

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fanout_json.h"
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


/* the last member of an object with this key, as nginx's JSON scan does */
static int
fanout_member(fanout_span_t *object, fanout_span_t *key, fanout_span_t *found)
{
    int            seen;
    fanout_cur_t   c;
    fanout_span_t  k, v;

    c.p = object->p + 1;
    c.end = object->p + object->len;
    seen = 0;

    while (fanout_next(&c, 1, &k, &v)) {
        if (fanout_string_equal(&k, key)) {
            *found = v;
            seen = 1;
        }
    }

    return seen;
}


/* every key of a is in b, with an equal value */
static int
fanout_members_in(fanout_span_t *a, fanout_span_t *b, double tolerance,
    int values)
{
    fanout_cur_t   c;
    fanout_span_t  k, v, w, last;

    c.p = a->p + 1;
    c.end = a->p + a->len;

    while (fanout_next(&c, 1, &k, &v)) {
        if (!fanout_member(b, &k, &w)) {
            return 0;
        }

        if (!values) {
            continue;
        }

        /* of duplicate keys in a, only the last one counts */
        (void) fanout_member(a, &k, &last);

        if (last.p == v.p
            && !fanout_equal(v.p, v.len, w.p, w.len, tolerance))
        {
            return 0;
        }
    }

    return 1;
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
        return *sb.p == '{'
               && fanout_members_in(&sa, &sb, tolerance, 1)
               && fanout_members_in(&sb, &sa, tolerance, 0);

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
