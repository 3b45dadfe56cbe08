/*
 * set=PATH:JSON applied to a JSON object in one pass: the objects on the
 * sets' paths are written member by member, their members copied as they
 * came unless a set names them; everything else is copied as one span.
 */

#include "fanout_body.h"


/* a set= on its way down: the segment it looks for at this object */
typedef struct {
    const fanout_body_set_t  *set;
    const char               *seg;
    size_t                    seg_len;
    const char               *rest;       /* after the segment's dot */
    size_t                    rest_len;   /* 0: the segment is the last */
} fanout_body_at_t;


/* an unescaped key longer than this matches no segment (see check) */
#define FANOUT_BODY_MAX_SEGMENT  128


static void
fanout_body_at(fanout_body_at_t *at, const fanout_body_set_t *set,
    const char *path, size_t len)
{
    const char  *dot;

    at->set = set;
    at->seg = path;
    dot = memchr(path, '.', len);

    if (dot == NULL) {
        at->seg_len = len;
        at->rest = NULL;
        at->rest_len = 0;
        return;
    }

    at->seg_len = (size_t) (dot - path);
    at->rest = dot + 1;
    at->rest_len = len - at->seg_len - 1;
}


/* the key (its span, with its quotes) is the segment, escapes and all */

static int
fanout_body_key_is(const fanout_span_t *key, const char *seg, size_t len)
{
    size_t       n;
    const char  *k, *kend;
    char         buf[6 * FANOUT_BODY_MAX_SEGMENT];

    k = key->p + 1;
    kend = key->p + key->len - 1;
    n = (size_t) (kend - k);

    if (memchr(k, '\\', n) == NULL) {
        return n == len && memcmp(k, seg, len) == 0;
    }

    /* an escape is at most 6 characters a byte */
    if (n > sizeof(buf)) {
        return 0;
    }

    n = fanout_json_unescape(k, kend, buf);

    return n == len && memcmp(buf, seg, len) == 0;
}


/*
 * The sets not found in their object: added at its end, those sharing a
 * segment under one object of their own.  first: no member written yet.
 */

static void
fanout_body_missing(fanout_out_t *o, fanout_body_at_t *at, size_t n,
    int first)
{
    size_t            i, j, m;
    unsigned char     done[FANOUT_BODY_MAX_SETS];
    fanout_body_at_t  below[FANOUT_BODY_MAX_SETS];

    memset(done, 0, n);

    for (i = 0; i < n; i++) {
        if (done[i]) {
            continue;
        }

        if (!first) {
            fanout_out_raw(o, ",", 1);
        }

        first = 0;

        fanout_out_string(o, at[i].seg, at[i].seg_len);
        fanout_out_raw(o, ":", 1);

        if (at[i].rest_len == 0) {
            fanout_out_raw(o, at[i].set->value, at[i].set->value_len);
            continue;
        }

        /* every set under this segment, in one new object */
        m = 0;

        for (j = i; j < n; j++) {
            if (!done[j] && at[j].rest_len
                && at[j].seg_len == at[i].seg_len
                && memcmp(at[j].seg, at[i].seg, at[i].seg_len) == 0)
            {
                done[j] = 1;
                fanout_body_at(&below[m++], at[j].set, at[j].rest,
                               at[j].rest_len);
            }
        }

        fanout_out_raw(o, "{", 1);
        fanout_body_missing(o, below, m, 1);
        fanout_out_raw(o, "}", 1);
    }
}


/* the object (from its '{' to its '}') with the sets that go through it */

static int
fanout_body_object(fanout_out_t *o, const char *p, size_t len,
    fanout_body_at_t *at, size_t n)
{
    int                 rc, first;
    size_t              i, m, left;
    fanout_span_t       key, value;
    fanout_member_it_t  it;
    unsigned char       found[FANOUT_BODY_MAX_SETS];
    fanout_body_at_t    below[FANOUT_BODY_MAX_SETS];
    fanout_body_at_t    missing[FANOUT_BODY_MAX_SETS];

    if (fanout_json_members_start(&it, p, len) != 0) {
        return -1;
    }

    memset(found, 0, n);
    first = 1;

    fanout_out_raw(o, "{", 1);

    while ((rc = fanout_json_members_next(&it, &key, &value)) == 1) {

        if (!first) {
            fanout_out_raw(o, ",", 1);
        }

        first = 0;

        fanout_out_raw(o, key.p, key.len);
        fanout_out_raw(o, ":", 1);

        m = 0;

        for (i = 0; i < n; i++) {
            if (!fanout_body_key_is(&key, at[i].seg, at[i].seg_len)) {
                continue;
            }

            found[i] = 1;

            if (at[i].rest_len == 0) {
                /* this member is the set's (no other set is under it) */
                m = 0;
                fanout_out_raw(o, at[i].set->value, at[i].set->value_len);
                break;
            }

            fanout_body_at(&below[m++], at[i].set, at[i].rest,
                           at[i].rest_len);
        }

        if (i < n) {
            continue;
        }

        if (m == 0) {
            fanout_out_raw(o, value.p, value.len);
            continue;
        }

        /* a path goes on through this member: it must be an object */
        if (fanout_body_object(o, value.p, value.len, below, m) != 0) {
            return -1;
        }
    }

    if (rc != 0) {
        return -1;
    }

    left = 0;

    for (i = 0; i < n; i++) {
        if (!found[i]) {
            missing[left++] = at[i];
        }
    }

    fanout_body_missing(o, missing, left, first);

    fanout_out_raw(o, "}", 1);

    return 0;
}


int
fanout_body_sets_check(const fanout_body_set_t *sets, size_t n,
    size_t *bad)
{
    size_t       i, j, k, segs, seg, shorter;
    const char  *p, *end;

    if (n > FANOUT_BODY_MAX_SETS) {
        *bad = FANOUT_BODY_MAX_SETS;
        return -1;
    }

    for (i = 0; i < n; i++) {
        *bad = i;

        if (fanout_json_path_check(sets[i].path, sets[i].path_len) != 0) {
            return -1;
        }

        /* object keys only, each short enough to compare */
        p = sets[i].path;
        end = p + sets[i].path_len;
        segs = 1;
        seg = 0;

        for (k = 0; p + k <= end; k++) {
            if (p + k == end || p[k] == '.') {
                if (seg > FANOUT_BODY_MAX_SEGMENT
                    || strspn(p + k - seg, "0123456789") >= seg)
                {
                    return -1;
                }

                segs += (p + k < end);
                seg = 0;
                continue;
            }

            seg++;
        }

        if (segs > FANOUT_BODY_MAX_DEPTH) {
            return -1;
        }

        for (j = 0; j < i; j++) {
            shorter = sets[j].path_len < sets[i].path_len
                      ? sets[j].path_len : sets[i].path_len;

            if (memcmp(sets[j].path, sets[i].path, shorter) != 0) {
                continue;
            }

            /* the same path, or one the prefix of the other */
            if (sets[j].path_len == sets[i].path_len
                || (sets[j].path_len > shorter
                    && sets[j].path[shorter] == '.')
                || (sets[i].path_len > shorter
                    && sets[i].path[shorter] == '.'))
            {
                return -1;
            }
        }
    }

    return 0;
}


int
fanout_body_apply(const char *body, size_t len,
    const fanout_body_set_t *sets, size_t n, fanout_out_t *out)
{
    size_t            i;
    const char       *p, *end;
    fanout_body_at_t  at[FANOUT_BODY_MAX_SETS];

    if (n > FANOUT_BODY_MAX_SETS
        || fanout_json_scan(body, len, NULL, 0, NULL) != 0)
    {
        return -1;
    }

    /* the object, without the whitespace around it */
    p = body;
    end = body + len;

    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }

    while (end > p
           && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n'
               || end[-1] == '\r'))
    {
        end--;
    }

    if (p == end || *p != '{') {
        return -1;
    }

    for (i = 0; i < n; i++) {
        fanout_body_at(&at[i], &sets[i], sets[i].path, sets[i].path_len);
    }

    return fanout_body_object(out, p, (size_t) (end - p), at, n);
}
