/*
 * A target call's outcome and what it leads to (see fanout_call.h).
 */

#include <string.h>

#include "fanout_call.h"


fanout_kind_e
fanout_capture_kind(const fanout_capture_t *c, int *status)
{
    if (c->too_large) {
        return FANOUT_TOO_LARGE;
    }

    if (c->broken) {
        *status = 502;
        return FANOUT_UPSTREAM_ERROR;
    }

    if (c->header) {
        if (!c->complete) {
            *status = c->read_timeout ? 504 : 502;
            return c->read_timeout ? FANOUT_TIMEOUT : FANOUT_UPSTREAM_ERROR;
        }

        if (c->status < 200 || c->status > 599) {
            /* not a final HTTP answer: the upstream is broken */
            *status = 502;
            return FANOUT_UPSTREAM_ERROR;
        }

        *status = c->status;
        return FANOUT_OK;
    }

    if (c->rc == 504) {
        *status = 504;
        return FANOUT_TIMEOUT;
    }

    if (c->rc >= 300 && c->rc <= 599 && c->rc != 500 && c->rc != 502
        && c->rc != 503)
    {
        /* the target location itself refused: "return 404", deny, ... */
        *status = c->rc;
        return (c->rc >= 500) ? FANOUT_HTTP_5XX : FANOUT_HTTP_4XX;
    }

    /* refused, reset, unresolvable, an invalid header, ... */
    *status = (c->rc >= 300 && c->rc <= 599) ? c->rc : 502;

    return FANOUT_UPSTREAM_ERROR;
}


int
fanout_kind_failure(fanout_kind_e kind)
{
    switch (kind) {
    case FANOUT_TIMEOUT:
    case FANOUT_HTTP_5XX:
    case FANOUT_BAD_JSON:
    case FANOUT_TOO_LARGE:
    case FANOUT_UPSTREAM_ERROR:
    case FANOUT_BAD_BATCH:
        return 1;
    default:
        return 0;
    }
}


int
fanout_kind_falls_back(fanout_kind_e kind)
{
    return fanout_kind_failure(kind) || kind == FANOUT_CIRCUIT_OPEN
           || kind == FANOUT_OVERLOADED;
}


int
fanout_kind_retries(fanout_kind_e kind, int status, unsigned on)
{
    switch (kind) {
    case FANOUT_UPSTREAM_ERROR:
    case FANOUT_BAD_BATCH:
        /* a batch's answer that did not fit: the retry joins another */
        return (on & FANOUT_RETRY_ERROR) != 0;
    case FANOUT_TIMEOUT:
        return (on & FANOUT_RETRY_TIMEOUT) != 0;
    case FANOUT_HTTP_5XX:
        return (on & FANOUT_RETRY_5XX) != 0;
    case FANOUT_BAD_JSON:
        return (on & FANOUT_RETRY_BAD_JSON) != 0;
    case FANOUT_HTTP_4XX:
        /* another try would answer alike, but for "too many requests" */
        return status == 429 && (on & FANOUT_RETRY_429) != 0;
    default:
        /* too_large answers alike; ok, bad_field, open, overloaded are
         * not failures of a try */
        return 0;
    }
}


uint64_t
fanout_backoff(uint64_t base_ms, uint64_t max_ms, unsigned k, uint32_t rnd)
{
    uint64_t  cap;

    cap = base_ms;

    while (k-- && cap < max_ms) {
        cap *= 2;
    }

    if (cap > max_ms) {
        cap = max_ms;
    }

    /* uniform in [0, cap], without the modulo's bias beyond 2^-32 */
    return (uint64_t) (((cap + 1) * (uint64_t) rnd) >> 32);
}


int64_t
fanout_retry_after(const char *p, size_t len)
{
    size_t   i;
    int64_t  s;

    while (len && (*p == ' ' || *p == '\t')) {
        p++;
        len--;
    }

    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
        len--;
    }

    if (len == 0 || len > 9) {
        /* empty, or more than 31 years: not a delay worth waiting for */
        return -1;
    }

    for (s = 0, i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        s = s * 10 + (p[i] - '0');
    }

    return s * 1000;
}


/* the slots of the seconds since the newest one are emptied */

static void
fanout_budget_roll(fanout_budget_t *b, uint64_t now_ms)
{
    uint64_t  now, s;

    now = now_ms / 1000;

    if (now <= b->second) {
        /* the same second, or a clock that went back: the newest slot */
        return;
    }

    for (s = b->second + 1; s <= now && s <= b->second + FANOUT_BUDGET_SLOTS;
         s++)
    {
        b->calls[s % FANOUT_BUDGET_SLOTS] = 0;
        b->extra[s % FANOUT_BUDGET_SLOTS] = 0;
    }

    b->second = now;
}


void
fanout_budget_call(fanout_budget_t *b, uint64_t now_ms)
{
    fanout_budget_roll(b, now_ms);

    b->calls[b->second % FANOUT_BUDGET_SLOTS]++;
}


int
fanout_budget_take(fanout_budget_t *b, uint64_t now_ms, uint32_t ratio,
    uint32_t min_per_s)
{
    size_t    i;
    uint64_t  calls, extra, allowed;

    fanout_budget_roll(b, now_ms);

    calls = 0;
    extra = 0;

    for (i = 0; i < FANOUT_BUDGET_SLOTS; i++) {
        calls += b->calls[i];
        extra += b->extra[i];
    }

    allowed = calls * ratio / 10000 + (uint64_t) min_per_s * FANOUT_BUDGET_SLOTS;

    if (extra >= allowed) {
        return 0;
    }

    b->extra[b->second % FANOUT_BUDGET_SLOTS]++;

    return 1;
}


/* bucket i holds latencies up to fanout_window_bounds[i] ms */

static const uint64_t  fanout_window_bounds[FANOUT_WINDOW_BUCKETS] = {
    1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 18, 22, 27, 33, 41, 51, 63, 78, 97,
    121, 151, 188, 235, 293, 366, 457, 571, 713, 891, 1113, 1391, 1738,
    2172, 2715, 3393, 4241, 5301, 6626, 8282, 10352, 12940, 16175, 20218,
    25272, 31590, 39487, 49358, 61697, 77121, 96401, 120501, 150626, 188282,
    235352, 294190, 367737, 459671, 574588, 718235,
    UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX
};


uint64_t
fanout_window_bound(size_t bucket)
{
    return fanout_window_bounds[bucket < FANOUT_WINDOW_BUCKETS
                                ? bucket : FANOUT_WINDOW_BUCKETS - 1];
}


size_t
fanout_window_bucket(uint64_t ms)
{
    size_t  lo, hi, mid;

    lo = 0;
    hi = FANOUT_WINDOW_BUCKETS - 1;

    /* the first bound at or above ms */
    while (lo < hi) {
        mid = (lo + hi) / 2;

        if (fanout_window_bounds[mid] >= ms) {
            hi = mid;

        } else {
            lo = mid + 1;
        }
    }

    return lo;
}


static void
fanout_window_roll(fanout_window_t *w, uint64_t now_ms, uint64_t slot_ms)
{
    uint64_t  slot;

    slot = now_ms / slot_ms;

    if (slot <= w->slot) {
        return;
    }

    if (slot == w->slot + 1) {
        /* the current slot becomes the one before; the new one is empty */
        w->n[slot % 2] = 0;
        memset(w->counts[slot % 2], 0, sizeof(w->counts[0]));

    } else {
        memset(w->n, 0, sizeof(w->n));
        memset(w->counts, 0, sizeof(w->counts));
    }

    w->slot = slot;
}


void
fanout_window_add(fanout_window_t *w, uint64_t now_ms, uint64_t slot_ms,
    uint64_t ms)
{
    fanout_window_roll(w, now_ms, slot_ms);

    w->n[w->slot % 2]++;
    w->counts[w->slot % 2][fanout_window_bucket(ms)]++;
}


uint64_t
fanout_window_quantile(fanout_window_t *w, uint64_t now_ms, uint64_t slot_ms,
    unsigned per_mille, uint32_t *samples)
{
    size_t    i;
    uint64_t  n, rank, seen;

    fanout_window_roll(w, now_ms, slot_ms);

    n = (uint64_t) w->n[0] + w->n[1];
    *samples = (uint32_t) n;

    if (n == 0) {
        return 0;
    }

    /* the smallest value with at least per_mille of the samples at or
     * under it */
    rank = (n * per_mille + 999) / 1000;
    rank = rank ? rank : 1;

    for (seen = 0, i = 0; i < FANOUT_WINDOW_BUCKETS; i++) {
        seen += (uint64_t) w->counts[0][i] + w->counts[1][i];

        if (seen >= rank) {
            return fanout_window_bounds[i];
        }
    }

    return fanout_window_bounds[FANOUT_WINDOW_BUCKETS - 1];
}


size_t
fanout_qring_bucket(uint64_t ms)
{
    size_t  b;

    b = fanout_window_bucket(ms);

    return (b < FANOUT_QRING_BUCKETS) ? b : FANOUT_QRING_BUCKETS - 1;
}


void
fanout_qring_quantiles(const uint64_t *stamps, const uint64_t *counts,
    uint64_t now_slot, const unsigned *per_mille, size_t nq, uint64_t *out,
    uint64_t *samples)
{
    size_t    s, b, q;
    uint64_t  n, rank, seen, merged[FANOUT_QRING_BUCKETS];

    memset(merged, 0, sizeof(merged));
    n = 0;

    /* the slots of the window: a stamp from now_slot back SLOTS - 1 */
    for (s = 0; s < FANOUT_QRING_SLOTS; s++) {
        if (stamps[s] > now_slot || stamps[s] + FANOUT_QRING_SLOTS <= now_slot)
        {
            continue;
        }

        for (b = 0; b < FANOUT_QRING_BUCKETS; b++) {
            merged[b] += counts[s * FANOUT_QRING_BUCKETS + b];
            n += counts[s * FANOUT_QRING_BUCKETS + b];
        }
    }

    *samples = n;

    for (q = 0; q < nq; q++) {
        out[q] = 0;

        if (n == 0) {
            continue;
        }

        /* the smallest bound with per_mille of the samples at or under it */
        rank = (n * per_mille[q] + 999) / 1000;
        rank = rank ? rank : 1;

        for (seen = 0, b = 0; b < FANOUT_QRING_BUCKETS; b++) {
            seen += merged[b];

            if (seen >= rank) {
                break;
            }
        }

        out[q] = fanout_window_bound(b < FANOUT_QRING_BUCKETS
                                     ? b : FANOUT_QRING_BUCKETS - 1);
    }
}
