/*
 * A strict JSON scanner (RFC 8259) that records the span of the value at a
 * dot path, and the small writer used to build merged answers.
 */

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_json.h"


typedef struct {
    const char     *p;
    const char     *end;
    unsigned        depth;

    /* the path still to match below the current value, or NULL */
    const char     *path_end;
    fanout_span_t  *found;
    unsigned        matches;       /* values the path matched */
    unsigned        dups;          /* keys on the path met again */
} fanout_scan_t;


static int fanout_scan_value(fanout_scan_t *s, const char *path);
static int fanout_key_is(const char *k, const char *kend, const char *seg,
    size_t n);


int
fanout_json_path_check(const char *path, size_t len)
{
    size_t       i, seg;
    const char  *eq;

    if (len == 0) {
        return -1;
    }

    seg = 0;

    for (i = 0; i < len; i++) {
        if (path[i] == '.') {
            if (seg == 0) {
                return -1;
            }

            seg = 0;
            continue;
        }

        if (path[i] == '[') {
            /* [MEMBER=VALUE]: after a segment, then "." or the end */
            if (seg == 0 && (i == 0 || path[i - 1] != ']')) {
                return -1;
            }

            eq = NULL;

            for (i++; i < len && path[i] != ']'; i++) {
                if (path[i] == '[' || (unsigned char) path[i] < ' '
                    || path[i] == 0x7f)
                {
                    return -1;
                }

                if (path[i] == '=' && eq == NULL) {
                    eq = &path[i];

                } else if (eq == NULL && (path[i] == '.' || path[i] == ' ')) {
                    /* the member is a plain name */
                    return -1;
                }
            }

            if (i == len || eq == NULL || eq == &path[i] - 1
                || path[eq - path - 1] == '[')
            {
                /* unclosed, no "=", no value, or no member */
                return -1;
            }

            if (i + 1 < len && path[i + 1] != '.' && path[i + 1] != '[') {
                return -1;
            }

            seg = 1;

            if (i + 1 < len && path[i + 1] == '.') {
                i++;
                seg = 0;

                if (i + 1 == len) {
                    return -1;
                }
            }

            continue;
        }

        if (path[i] == ']' || (unsigned char) path[i] <= ' '
            || path[i] == 0x7f)
        {
            return -1;
        }

        seg++;
    }

    return (seg == 0 && path[len - 1] != ']') ? -1 : 0;
}


static void
fanout_scan_ws(fanout_scan_t *s)
{
    while (s->p < s->end
           && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n'
               || *s->p == '\r'))
    {
        s->p++;
    }
}


static int
fanout_hex4(const char *p, unsigned *cp)
{
    int       i;
    unsigned  v, c;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = (unsigned char) p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            c = (c | 0x20) - 'a' + 10;

        } else {
            return -1;
        }

        v = (v << 4) | c;
    }

    *cp = v;

    return 0;
}


/* one UTF-8 sequence, well-formed: no overlongs, surrogates or > U+10FFFF */

static int
fanout_scan_utf8(fanout_scan_t *s)
{
    size_t          n, i;
    unsigned        cp, c;
    const unsigned char  *u;

    u = (const unsigned char *) s->p;
    c = u[0];

    if (c < 0x80) {
        s->p++;
        return 0;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        n = 1;
        cp = c & 0x1f;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 2;
        cp = c & 0x0f;

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 3;
        cp = c & 0x07;

    } else {
        return -1;
    }

    if ((size_t) (s->end - s->p) < n + 1) {
        return -1;
    }

    for (i = 1; i <= n; i++) {
        if ((u[i] & 0xc0) != 0x80) {
            return -1;
        }

        cp = (cp << 6) | (u[i] & 0x3f);
    }

    if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
        || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
    {
        return -1;
    }

    s->p += n + 1;

    return 0;
}


/* a string; s->p is at its opening quote */

static int
fanout_scan_string(fanout_scan_t *s)
{
    unsigned  cp, lo;

    s->p++;

    while (s->p < s->end) {

        switch (*s->p) {

        case '"':
            s->p++;
            return 0;

        case '\\':
            if (s->end - s->p < 2) {
                return -1;
            }

            switch (s->p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n':
            case 'r': case 't':
                s->p += 2;
                continue;

            case 'u':
                if (s->end - s->p < 6 || fanout_hex4(s->p + 2, &cp) != 0) {
                    return -1;
                }

                s->p += 6;

                if (cp >= 0xdc00 && cp <= 0xdfff) {
                    return -1;
                }

                if (cp >= 0xd800 && cp <= 0xdbff) {
                    /* a high surrogate needs its low half */
                    if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u'
                        || fanout_hex4(s->p + 2, &lo) != 0
                        || lo < 0xdc00 || lo > 0xdfff)
                    {
                        return -1;
                    }

                    s->p += 6;
                }

                continue;

            default:
                return -1;
            }

        default:
            if ((unsigned char) *s->p < 0x20) {
                return -1;
            }

            if (fanout_scan_utf8(s) != 0) {
                return -1;
            }
        }
    }

    return -1;
}


static int
fanout_scan_number(fanout_scan_t *s)
{
    const char  *p;

    p = s->p;

    if (p < s->end && *p == '-') {
        p++;
    }

    if (p >= s->end) {
        return -1;
    }

    if (*p == '0') {
        p++;

    } else if (*p >= '1' && *p <= '9') {
        while (p < s->end && *p >= '0' && *p <= '9') {
            p++;
        }

    } else {
        return -1;
    }

    if (p < s->end && *p == '.') {
        p++;

        if (p >= s->end || *p < '0' || *p > '9') {
            return -1;
        }

        while (p < s->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < s->end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p >= s->end || *p < '0' || *p > '9') {
            return -1;
        }

        while (p < s->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    s->p = p;

    return 0;
}


static int
fanout_scan_word(fanout_scan_t *s, const char *word, size_t n)
{
    if ((size_t) (s->end - s->p) < n || memcmp(s->p, word, n) != 0) {
        return -1;
    }

    s->p += n;

    return 0;
}


/* the next path segment after "path", and where the rest begins */

static const char *
fanout_segment(fanout_scan_t *s, const char *path, size_t *n)
{
    const char  *p;

    p = path;

    if (*p == '[') {
        /* a selector, "[name=value]": to its "]" */
        while (p < s->path_end && *p != ']') {
            p++;
        }

        if (p < s->path_end) {
            p++;
        }

    } else {
        while (p < s->path_end && *p != '.' && *p != '[') {
            p++;
        }
    }

    *n = (size_t) (p - path);

    /* the rest: after a ".", or a selector that follows at once */
    return (p < s->path_end && *p == '.') ? p + 1 : p;
}


/*
 * One character of a validated string, from k (between the quotes): its
 * UTF-8 bytes in utf8[], their number returned, *k moved past it.
 */

static size_t
fanout_unescape1(const char **k, char utf8[4])
{
    unsigned     cp, lo;
    const char  *p;

    p = *k;
    cp = 0;
    lo = 0;

    if (*p != '\\') {
        utf8[0] = *p;
        *k = p + 1;
        return 1;
    }

    *k = p + 2;

    switch (p[1]) {
    case 'b': utf8[0] = '\b'; return 1;
    case 'f': utf8[0] = '\f'; return 1;
    case 'n': utf8[0] = '\n'; return 1;
    case 'r': utf8[0] = '\r'; return 1;
    case 't': utf8[0] = '\t'; return 1;
    case 'u': break;
    default: utf8[0] = p[1]; return 1;     /* '"', '\\', '/' */
    }

    (void) fanout_hex4(p + 2, &cp);
    *k = p + 6;

    if (cp >= 0xd800 && cp <= 0xdbff) {
        (void) fanout_hex4(p + 8, &lo);
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        *k = p + 12;
    }

    if (cp < 0x80) {
        utf8[0] = (char) cp;
        return 1;
    }

    if (cp < 0x800) {
        utf8[0] = (char) (0xc0 | (cp >> 6));
        utf8[1] = (char) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        utf8[0] = (char) (0xe0 | (cp >> 12));
        utf8[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        utf8[2] = (char) (0x80 | (cp & 0x3f));
        return 3;
    }

    utf8[0] = (char) (0xf0 | (cp >> 18));
    utf8[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
    utf8[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
    utf8[3] = (char) (0x80 | (cp & 0x3f));
    return 4;
}


size_t
fanout_json_unescape(const char *k, const char *kend, char *out)
{
    char  *o;

    o = out;

    while (k < kend) {
        o += fanout_unescape1(&k, o);
    }

    return (size_t) (o - out);
}


const char *
fanout_json_string_end(const char *p, const char *end)
{
    fanout_scan_t  s;

    memset(&s, 0, sizeof(fanout_scan_t));
    s.p = p;
    s.end = end;

    return (p < end && *p == '"' && fanout_scan_string(&s) == 0) ? s.p : NULL;
}


const char *
fanout_json_number_end(const char *p, const char *end)
{
    fanout_scan_t  s;

    memset(&s, 0, sizeof(fanout_scan_t));
    s.p = p;
    s.end = end;

    return (fanout_scan_number(&s) == 0) ? s.p : NULL;
}


/* does the key (raw, between quotes, maybe escaped) equal the segment? */

static int
fanout_key_is(const char *k, const char *kend, const char *seg, size_t n)
{
    char         utf8[4];
    size_t       i, len;
    const char  *end;

    /* most keys have no escape: their bytes are their text */
    if (memchr(k, '\\', (size_t) (kend - k)) == NULL) {
        return (size_t) (kend - k) == n && memcmp(k, seg, n) == 0;
    }

    end = seg + n;

    /* the key was validated: its escapes are well-formed */

    while (k < kend) {
        len = fanout_unescape1(&k, utf8);

        for (i = 0; i < len; i++) {
            if (seg >= end || *seg != utf8[i]) {
                return 0;
            }

            seg++;
        }
    }

    return seg == end;
}


/* after a member: 1 when a comma says more follow, 0 at "close", -1 */

static int
fanout_scan_next(fanout_scan_t *s, char close)
{
    fanout_scan_ws(s);

    if (s->p < s->end && *s->p == ',') {
        s->p++;
        fanout_scan_ws(s);
        return 1;
    }

    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }

    return -1;
}


static int
fanout_scan_object(fanout_scan_t *s, const char *path)
{
    int          rc, on;
    size_t       n;
    unsigned     hits;
    const char  *key, *kend, *seg, *rest;

    seg = NULL;
    rest = NULL;
    n = 0;
    hits = 0;

    if (path) {
        seg = path;
        rest = fanout_segment(s, path, &n);
    }

    s->p++;
    fanout_scan_ws(s);

    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }

    for ( ;; ) {
        if (s->p >= s->end || *s->p != '"') {
            return -1;
        }

        key = s->p + 1;

        if (fanout_scan_string(s) != 0) {
            return -1;
        }

        kend = s->p - 1;

        fanout_scan_ws(s);

        if (s->p >= s->end || *s->p != ':') {
            return -1;
        }

        s->p++;
        fanout_scan_ws(s);

        on = (seg && fanout_key_is(key, kend, seg, n));

        if (on && hits++) {
            /* a key on the path twice: parsers differ on which counts */
            s->dups++;
        }

        if (fanout_scan_value(s, on ? rest : NULL) != 0) {
            return -1;
        }

        rc = fanout_scan_next(s, '}');

        if (rc <= 0) {
            return rc;
        }
    }
}


/*
 * A selector, "[name=value]": of the array's elements, the first object
 * whose member "name" is the string "value".  Each element is validated
 * by the scan, then looked into again (twice at most): linear.  Another
 * element that matches is counted as a duplicate.
 */

static int
fanout_scan_select(fanout_scan_t *s, const char *path)
{
    int            rc;
    size_t         n, mlen;
    unsigned       m;
    const char    *rest, *member, *value, *vend, *start;
    fanout_span_t  v, elem;
    unsigned       hits;

    rest = fanout_segment(s, path, &n);

    member = path + 1;
    value = memchr(member, '=', n - 2);
    mlen = (size_t) (value - member);
    value++;
    vend = path + n - 1;
    hits = 0;

    s->p++;
    fanout_scan_ws(s);

    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }

    for ( ;; ) {
        start = s->p;

        if (fanout_scan_value(s, NULL) != 0) {
            return -1;
        }

        elem.p = start;
        elem.len = (size_t) (s->p - start);

        if (*start == '{'
            && fanout_json_find(elem.p, elem.len, member, mlen, &v, &m) == 0
            && v.p && v.p[0] == '"'
            && fanout_key_is(v.p + 1, v.p + v.len - 1, value,
                             (size_t) (vend - value)))
        {
            if (hits++) {
                s->dups++;

            } else if (rest == s->path_end) {
                if (s->found) {
                    *s->found = elem;
                }

                s->matches++;

            } else if (fanout_json_find(elem.p, elem.len, rest,
                                        (size_t) (s->path_end - rest), &v,
                                        &m)
                       == 0
                       && v.p)
            {
                if (s->found) {
                    *s->found = v;
                }

                s->matches += m;
            }
        }

        rc = fanout_scan_next(s, ']');

        if (rc <= 0) {
            return rc;
        }
    }
}


static int
fanout_scan_array(fanout_scan_t *s, const char *path)
{
    int          rc;
    size_t       n, i, index;
    const char  *rest;

    index = (size_t) -1;
    rest = NULL;

    if (path && *path == '[') {
        return fanout_scan_select(s, path);
    }

    if (path) {
        rest = fanout_segment(s, path, &n);

        if (n > 0 && n < 10) {
            index = 0;

            for (i = 0; i < n; i++) {
                if (path[i] < '0' || path[i] > '9') {
                    index = (size_t) -1;
                    break;
                }

                index = index * 10 + (size_t) (path[i] - '0');
            }
        }
    }

    s->p++;
    fanout_scan_ws(s);

    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }

    for (i = 0; /* void */; i++) {
        if (fanout_scan_value(s, (i == index) ? rest : NULL) != 0) {
            return -1;
        }

        rc = fanout_scan_next(s, ']');

        if (rc <= 0) {
            return rc;
        }
    }
}


/*
 * A value at s->p (after whitespace).  "path" is what remains of the path
 * below this value: NULL when it is off the path, path_end when this very
 * value is the one looked for.
 */

static int
fanout_scan_value(fanout_scan_t *s, const char *path)
{
    int          rc;
    const char  *start;

    if (s->p >= s->end) {
        return -1;
    }

    start = s->p;

    switch (*s->p) {

    case '{':
    case '[':
        if (++s->depth > FANOUT_JSON_MAX_DEPTH) {
            return -1;
        }

        rc = (*s->p == '{')
             ? fanout_scan_object(s, (path && path < s->path_end) ? path : NULL)
             : fanout_scan_array(s, (path && path < s->path_end) ? path : NULL);

        s->depth--;
        break;

    case '"':
        rc = fanout_scan_string(s);
        break;

    case 't':
        rc = fanout_scan_word(s, "true", 4);
        break;

    case 'f':
        rc = fanout_scan_word(s, "false", 5);
        break;

    case 'n':
        rc = fanout_scan_word(s, "null", 4);
        break;

    default:
        rc = fanout_scan_number(s);
    }

    if (rc == 0 && path != NULL && path == s->path_end && s->found) {
        s->found->p = start;
        s->found->len = (size_t) (s->p - start);
        s->matches++;
    }

    return rc;
}


int
fanout_json_scan(const char *p, size_t len, const char *path, size_t path_len,
    fanout_span_t *found)
{
    unsigned  matches;

    return fanout_json_find(p, len, path, path_len, found, &matches);
}


int
fanout_json_find(const char *p, size_t len, const char *path, size_t path_len,
    fanout_span_t *found, unsigned *matches)
{
    fanout_scan_t  s;

    s.p = p;
    s.end = p + len;
    s.depth = 0;
    s.path_end = path ? path + path_len : NULL;
    s.found = found;
    s.matches = 0;
    s.dups = 0;

    *matches = 0;

    if (found) {
        found->p = NULL;
        found->len = 0;
    }

    fanout_scan_ws(&s);

    if (fanout_scan_value(&s, (path && path_len) ? path : NULL) != 0) {
        goto invalid;
    }

    fanout_scan_ws(&s);

    if (s.p != s.end) {
        goto invalid;
    }

    *matches = s.matches + s.dups;

    return 0;

invalid:

    if (found) {
        found->p = NULL;
        found->len = 0;
    }

    return -1;
}


long
fanout_json_array(const char *p, size_t len, fanout_span_t *items, size_t max)
{
    size_t         n;
    const char    *start;
    fanout_scan_t  s;

    if (len < 2 || p[0] != '[') {
        return -1;
    }

    s.p = p + 1;
    s.end = p + len;
    s.depth = 1;
    s.path_end = NULL;
    s.found = NULL;
    s.matches = 0;
    s.dups = 0;

    fanout_scan_ws(&s);

    if (s.p < s.end && *s.p == ']') {
        return 0;
    }

    for (n = 0; /* void */; n++) {
        start = s.p;

        if (fanout_scan_value(&s, NULL) != 0) {
            return -1;
        }

        if (n == max) {
            /* one more than allowed: enough to say so */
            return (long) n + 1;
        }

        if (items) {
            items[n].p = start;
            items[n].len = (size_t) (s.p - start);
        }

        switch (fanout_scan_next(&s, ']')) {
        case 0:
            return (long) n + 1;
        case 1:
            break;
        default:
            return -1;
        }
    }
}


int
fanout_json_members_start(fanout_member_it_t *it, const char *p, size_t len)
{
    fanout_scan_t  s;

    if (len < 2 || p[0] != '{') {
        return -1;
    }

    memset(&s, 0, sizeof(fanout_scan_t));
    s.p = p + 1;
    s.end = p + len;
    fanout_scan_ws(&s);

    it->p = (s.p < s.end && *s.p == '}') ? NULL : s.p;
    it->end = s.end;

    return 0;
}


int
fanout_json_members_next(fanout_member_it_t *it, fanout_span_t *key,
    fanout_span_t *value)
{
    const char     *start, *kend;
    fanout_scan_t   s;

    if (it->p == NULL) {
        return 0;
    }

    s.p = it->p;
    s.end = it->end;
    s.depth = 1;
    s.path_end = NULL;
    s.found = NULL;
    s.matches = 0;
    s.dups = 0;

    kend = fanout_json_string_end(s.p, s.end);
    if (kend == NULL) {
        return -1;
    }

    key->p = s.p;
    key->len = (size_t) (kend - s.p);

    s.p = kend;
    fanout_scan_ws(&s);

    if (s.p >= s.end || *s.p != ':') {
        return -1;
    }

    s.p++;
    fanout_scan_ws(&s);

    start = s.p;

    if (fanout_scan_value(&s, NULL) != 0) {
        return -1;
    }

    value->p = start;
    value->len = (size_t) (s.p - start);

    switch (fanout_scan_next(&s, '}')) {
    case 0:
        it->p = NULL;
        return 1;
    case 1:
        it->p = s.p;
        return 1;
    default:
        return -1;
    }
}


long
fanout_json_members(const char *p, size_t len, fanout_span_t *keys,
    fanout_span_t *values, size_t max)
{
    int               rc;
    size_t            n;
    fanout_span_t     k, v;
    fanout_member_it_t  it;

    if (fanout_json_members_start(&it, p, len) != 0) {
        return -1;
    }

    for (n = 0; /* void */; n++) {
        rc = fanout_json_members_next(&it, &k, &v);

        if (rc <= 0) {
            return (rc == 0) ? (long) n : -1;
        }

        if (n == max) {
            return (long) n + 1;
        }

        if (keys) {
            keys[n] = k;
        }

        if (values) {
            values[n] = v;
        }
    }
}


/* the writer */

void
fanout_out_string(fanout_out_t *o, const char *s, size_t n)
{
    char                  esc[7];
    size_t                i, start;
    unsigned char         c;
    static const char     hex[] = "0123456789abcdef";

    fanout_out_raw(o, "\"", 1);

    start = 0;

    for (i = 0; i < n; i++) {
        c = (unsigned char) s[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }

        fanout_out_raw(o, s + start, i - start);
        start = i + 1;

        esc[0] = '\\';

        if (c == '"' || c == '\\') {
            esc[1] = (char) c;
            fanout_out_raw(o, esc, 2);

        } else {
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            fanout_out_raw(o, esc, 6);
        }
    }

    fanout_out_raw(o, s + start, n - start);
    fanout_out_raw(o, "\"", 1);
}
