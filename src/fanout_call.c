/*
 * A target call's outcome and what it leads to (see fanout_call.h).
 */

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
