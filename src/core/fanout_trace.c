/*
 * Trace context and request ids: see fanout_trace.h.  Every function is
 * linear in its input, which is at most a header value.
 */

#include <string.h>

#include "fanout_trace.h"


static int
fanout_hex_digits(const char *s, size_t n)
{
    size_t  i;
    int     nonzero;

    nonzero = 0;

    for (i = 0; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            nonzero |= (s[i] != '0');

        } else if (s[i] >= 'a' && s[i] <= 'f') {
            nonzero = 1;

        } else {
            return -1;
        }
    }

    return nonzero ? 0 : -1;
}


int
fanout_traceparent_parse(const char *s, size_t len, fanout_trace_t *t)
{
    /* leading and trailing spaces and tabs are allowed in a header */
    while (len && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        len--;
    }

    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
        len--;
    }

    if (len < FANOUT_TRACEPARENT_LEN
        || s[2] != '-' || s[35] != '-' || s[52] != '-')
    {
        return -1;
    }

    /* the version: two hex digits, "ff" forbidden; 00 is exactly 55 bytes,
     * a later version may go on after a '-' and is read as 00 */
    if (!((s[0] >= '0' && s[0] <= '9') || (s[0] >= 'a' && s[0] <= 'f'))
        || !((s[1] >= '0' && s[1] <= '9') || (s[1] >= 'a' && s[1] <= 'f'))
        || (s[0] == 'f' && s[1] == 'f'))
    {
        return -1;
    }

    if (s[0] == '0' && s[1] == '0') {
        if (len != FANOUT_TRACEPARENT_LEN) {
            return -1;
        }

    } else if (len > FANOUT_TRACEPARENT_LEN && s[55] != '-') {
        return -1;
    }

    if (fanout_hex_digits(s + 3, FANOUT_TRACE_ID_LEN) != 0
        || fanout_hex_digits(s + 36, FANOUT_SPAN_ID_LEN) != 0)
    {
        return -1;
    }

    /* flags: two hex digits, zeros allowed */
    if (!((s[53] >= '0' && s[53] <= '9') || (s[53] >= 'a' && s[53] <= 'f'))
        || !((s[54] >= '0' && s[54] <= '9') || (s[54] >= 'a' && s[54] <= 'f')))
    {
        return -1;
    }

    memcpy(t->trace_id, s + 3, FANOUT_TRACE_ID_LEN);
    memcpy(t->parent_id, s + 36, FANOUT_SPAN_ID_LEN);
    t->flags[0] = s[53];
    t->flags[1] = s[54];

    return 0;
}


void
fanout_traceparent_write(const fanout_trace_t *t, const char *span,
    char *out)
{
    memcpy(out, "00-", 3);
    memcpy(out + 3, t->trace_id, FANOUT_TRACE_ID_LEN);
    out[35] = '-';
    memcpy(out + 36, span, FANOUT_SPAN_ID_LEN);
    out[52] = '-';
    out[53] = t->flags[0];
    out[54] = t->flags[1];
}


int
fanout_request_id_valid(const char *s, size_t len)
{
    size_t  i;
    char    c;

    if (len == 0 || len > FANOUT_REQUEST_ID_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':'
              || c == '/' || c == '+' || c == '=' || c == '@' || c == '-'))
        {
            return 0;
        }
    }

    return 1;
}


static uint64_t
fanout_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}


void
fanout_rng_seed(fanout_rng_t *g, const unsigned char seed[32])
{
    int  i;

    memcpy(g->s, seed, sizeof(g->s));

    /* all zeros is the one state it cannot leave */
    for (i = 0; i < 4; i++) {
        if (g->s[i]) {
            return;
        }
    }

    g->s[0] = 0x9e3779b97f4a7c15ULL;
}


uint64_t
fanout_rng_next(fanout_rng_t *g)
{
    uint64_t  r, t;

    r = fanout_rotl(g->s[1] * 5, 7) * 9;
    t = g->s[1] << 17;

    g->s[2] ^= g->s[0];
    g->s[3] ^= g->s[1];
    g->s[1] ^= g->s[2];
    g->s[0] ^= g->s[3];
    g->s[2] ^= t;
    g->s[3] = fanout_rotl(g->s[3], 45);

    return r;
}


/*
 * 16 hex digits from 64 random bits, eight at a time in a word (SWAR): each
 * byte holds a nibble, '0' is added, and 'a' - '9' - 1 more where the
 * nibble is over 9.  The digits' order is the bits' own business: any
 * order of random nibbles is as random.
 */

static void
fanout_hex16(uint64_t x, char *out)
{
    uint64_t  v[2];
    int       i;

    v[0] = x & 0x0f0f0f0f0f0f0f0fULL;
    v[1] = (x >> 4) & 0x0f0f0f0f0f0f0f0fULL;

    for (i = 0; i < 2; i++) {
        v[i] += 0x3030303030303030ULL
                + (((v[i] + 0x0606060606060606ULL) >> 4)
                   & 0x0101010101010101ULL) * 0x27;
    }

    memcpy(out, v, 16);
}


void
fanout_rng_hex(fanout_rng_t *g, char *out, size_t n)
{
    size_t    i;
    uint64_t  x, any;

    do {
        any = 0;

        for (i = 0; i < n; i += 16) {
            x = fanout_rng_next(g);
            any |= x;
            fanout_hex16(x, out + i);
        }

        /* all zeros is not an id: astronomically rare, but never sent */

    } while (any == 0);
}
