/*
 * Tokens in and out of a call, read with the zero-copy scanner: one
 * validating pass over a request body, then its top-level members; one
 * pass over an answer, or over each event of a stream.
 */

#include "fanout_tokens.h"
#include "fanout_json.h"
#include "fanout_number.h"


/* counts beyond it are not believed: a bound on every sum below */
#define FANOUT_TOKENS_MAX  1000000000000ULL


static int
fanout_tokens_key(const fanout_span_t *k, const char *name)
{
    size_t  n;

    n = strlen(name);

    return k->len == n + 2 && memcmp(k->p + 1, name, n) == 0;
}


static uint64_t
fanout_tokens_count(fanout_span_t *v)
{
    double  d;

    if (fanout_json_number(v, &d) != 0 || !(d > 0)) {
        return 0;
    }

    return d < (double) FANOUT_TOKENS_MAX ? (uint64_t) d : FANOUT_TOKENS_MAX;
}


static const char *
fanout_tokens_skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
    }

    return p;
}


uint64_t
fanout_tokens_estimate(const char *body, size_t len, int *capped)
{
    uint64_t             cap, n;
    const char          *q;
    fanout_span_t        k, v;
    fanout_member_it_t   it;

    *capped = 0;
    cap = 0;

    q = fanout_tokens_skip_ws(body, body + len);

    /* a validated object: its top-level members, not what they hold */
    if (q < body + len && *q == '{'
        && fanout_json_scan(body, len, NULL, 0, NULL) == 0
        && fanout_json_members_start(&it, q, len - (size_t) (q - body)) == 0)
    {
        while (fanout_json_members_next(&it, &k, &v) == 1) {
            if (fanout_tokens_key(&k, "max_tokens")
                || fanout_tokens_key(&k, "max_completion_tokens")
                || fanout_tokens_key(&k, "max_output_tokens"))
            {
                n = fanout_tokens_count(&v);

                if (n > cap) {
                    cap = n;
                }

                *capped = 1;
            }
        }
    }

    return cap + (len + FANOUT_TOKENS_BYTES - 1) / FANOUT_TOKENS_BYTES;
}


/* a "usage" object's members into u */

static void
fanout_tokens_read(const char *p, size_t len, fanout_usage_t *u)
{
    uint64_t             in, out, total;
    fanout_span_t        usage, k, v;
    fanout_member_it_t   it;

    if (fanout_json_scan(p, len, "usage", 5, &usage) != 0
        || usage.p == NULL
        || fanout_json_members_start(&it, usage.p, usage.len) != 0)
    {
        return;
    }

    in = 0;
    out = 0;
    total = 0;

    while (fanout_json_members_next(&it, &k, &v) == 1) {
        if (fanout_tokens_key(&k, "prompt_tokens")
            || fanout_tokens_key(&k, "input_tokens"))
        {
            in = fanout_tokens_count(&v);

        } else if (fanout_tokens_key(&k, "completion_tokens")
                   || fanout_tokens_key(&k, "output_tokens"))
        {
            out = fanout_tokens_count(&v);

        } else if (fanout_tokens_key(&k, "total_tokens")) {
            total = fanout_tokens_count(&v);
        }
    }

    if (total == 0) {
        total = in + out;
    }

    u->input = in;
    u->output = out;
    u->total = total;
    u->found = 1;
}


void
fanout_tokens_usage(const char *body, size_t len, fanout_usage_t *u)
{
    const char  *p, *end, *eol, *d;

    memset(u, 0, sizeof(fanout_usage_t));

    end = body + len;
    p = fanout_tokens_skip_ws(body, end);

    if (p < end && *p == '{') {
        fanout_tokens_read(body, len, u);
        return;
    }

    /* server-sent events: "data:" lines, each read once */

    for (p = body; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t) (end - p));

        if (eol == NULL) {
            eol = end;
        }

        if (eol - p < 5 || memcmp(p, "data:", 5) != 0) {
            continue;
        }

        d = p + 5;

        if (d < eol && *d == ' ') {
            d++;
        }

        if (eol - d >= 6 && memcmp(d, "[DONE]", 6) == 0) {
            continue;
        }

        if (u->events < FANOUT_TOKENS_MAX) {
            u->events++;
        }

        /* most events carry no usage: only those are scanned */
        if (d < eol && *d == '{'
            && fanout_tokens_maybe_usage(d, (size_t) (eol - d)))
        {
            fanout_tokens_read(d, (size_t) (eol - d), u);
        }
    }
}


size_t
fanout_tokens_events(const char *p, size_t len, int *newline)
{
    size_t       n;
    const char  *end, *eol, *q;

    n = 0;
    end = p + len;

    /* a line at a time (memchr), not a byte: a blank line (nothing or
     * only CRs before its LF) after a line's end ends an event */
    while (p < end) {
        eol = memchr(p, '\n', (size_t) (end - p));

        if (eol == NULL) {
            eol = end;
        }

        for (q = p; q < eol && *q == '\r'; q++) { /* void */ }

        if (q < eol) {
            *newline = 0;
        }

        if (eol == end) {
            break;
        }

        n += (size_t) *newline;
        *newline = 1;
        p = eol + 1;
    }

    return n;
}


int
fanout_tokens_maybe_usage(const char *p, size_t len)
{
    const char  *u, *end;

    end = p + len;

    for (u = p + 1; u + 6 <= end; u++) {
        u = memchr(u, 'u', (size_t) (end - u));

        if (u == NULL || u + 6 > end) {
            return 0;
        }

        if (u[-1] == '"' && memcmp(u + 1, "sage\"", 5) == 0) {
            return 1;
        }
    }

    return 0;
}
