/*
 * Circuit breakers:
 *
 *   closed    --N consecutive failures, or the error rate over the window
 *               above P% with at least min_requests-->  open
 *   open      --cooldown passed-->  half-open
 *   half-open --admits exactly half_open probes; a probe's success-->
 *               closed (reset); a probe's failure--> open, with the
 *               cooldown doubled up to max_cooldown
 */

#include <string.h>

#include "fanout_breaker.h"


const char *
fanout_breaker_state_name(uint32_t state)
{
    static const char  *names[] = { "closed", "open", "half_open" };

    return (state <= FANOUT_BREAKER_HALF_OPEN) ? names[state] : "unknown";
}


/* moves the window on to now, clearing the tenths that went by */

static void
fanout_breaker_slide(const fanout_breaker_conf_t *c, fanout_breaker_t *b,
    uint64_t now_ms)
{
    uint64_t  width, n;

    b->window_ms = c->window_ms;

    width = c->window_ms / FANOUT_BREAKER_SLOTS;
    if (width == 0) {
        width = 1;
    }

    if (b->slot_start_ms == 0 || now_ms >= b->slot_start_ms
                                           + width * FANOUT_BREAKER_SLOTS * 2)
    {
        memset(b->requests, 0, sizeof(b->requests));
        memset(b->errors, 0, sizeof(b->errors));
        b->slot = 0;
        b->slot_start_ms = now_ms;
        return;
    }

    for (n = 0; now_ms >= b->slot_start_ms + width
                && n < FANOUT_BREAKER_SLOTS; n++)
    {
        b->slot = (b->slot + 1) % FANOUT_BREAKER_SLOTS;
        b->requests[b->slot] = 0;
        b->errors[b->slot] = 0;
        b->slot_start_ms += width;
    }

    if (now_ms >= b->slot_start_ms + width) {
        /* idle for longer than a window: the loop cleared it all */
        b->slot_start_ms = now_ms;
    }
}


uint32_t
fanout_breaker_rate(const fanout_breaker_conf_t *c, fanout_breaker_t *b,
    uint64_t now_ms, uint32_t *requests)
{
    uint32_t  i, req, err;

    fanout_breaker_slide(c, b, now_ms);

    req = 0;
    err = 0;

    for (i = 0; i < FANOUT_BREAKER_SLOTS; i++) {
        req += b->requests[i];
        err += b->errors[i];
    }

    *requests = req;

    return req ? (uint32_t) ((uint64_t) err * 100 / req) : 0;
}


static void
fanout_breaker_open(const fanout_breaker_conf_t *c, fanout_breaker_t *b,
    uint64_t now_ms, uint64_t cooldown_ms)
{
    b->state = FANOUT_BREAKER_OPEN;
    b->cooldown_ms = cooldown_ms;
    b->retry_at_ms = now_ms + cooldown_ms;
    b->probes = 0;
    b->consecutive = 0;
    b->remote = 0;
}


fanout_breaker_verdict_e
fanout_breaker_allow(const fanout_breaker_conf_t *c, fanout_breaker_t *b,
    uint64_t now_ms)
{
    if (b->state == FANOUT_BREAKER_CLOSED) {
        return FANOUT_BREAKER_PASS;
    }

    if (b->state == FANOUT_BREAKER_OPEN) {
        if (now_ms < b->retry_at_ms) {
            return FANOUT_BREAKER_REJECT;
        }

        b->state = FANOUT_BREAKER_HALF_OPEN;
        b->probes = 0;
    }

    /* half-open: a token per probe, taken under the caller's lock */
    if (b->probes < (c->half_open ? c->half_open : 1)) {
        b->probes++;
        return FANOUT_BREAKER_PROBE;
    }

    return FANOUT_BREAKER_REJECT;
}


fanout_breaker_change_e
fanout_breaker_record(const fanout_breaker_conf_t *c, fanout_breaker_t *b,
    uint64_t now_ms, fanout_breaker_verdict_e verdict, int failure)
{
    uint32_t  rate, requests;
    uint64_t  cooldown;

    if (verdict == FANOUT_BREAKER_PROBE) {
        if (b->state != FANOUT_BREAKER_HALF_OPEN) {
            /* another probe decided already */
            return FANOUT_BREAKER_SAME;
        }

        if (failure) {
            cooldown = b->cooldown_ms ? b->cooldown_ms * 2 : c->cooldown_ms;
            if (cooldown > c->max_cooldown_ms) {
                cooldown = c->max_cooldown_ms;
            }

            fanout_breaker_open(c, b, now_ms, cooldown);
            return FANOUT_BREAKER_REOPENED;
        }

        /* closing resets everything: the window starts anew */
        memset(b, 0, sizeof(fanout_breaker_t));
        return FANOUT_BREAKER_CLOSED_AGAIN;
    }

    if (b->state != FANOUT_BREAKER_CLOSED) {
        return FANOUT_BREAKER_SAME;
    }

    fanout_breaker_slide(c, b, now_ms);

    b->requests[b->slot]++;

    if (!failure) {
        b->consecutive = 0;
        return FANOUT_BREAKER_SAME;
    }

    b->errors[b->slot]++;
    b->consecutive++;

    if (c->failures && b->consecutive >= c->failures) {
        fanout_breaker_open(c, b, now_ms, c->cooldown_ms);
        return FANOUT_BREAKER_OPENED;
    }

    if (c->error_rate) {
        rate = fanout_breaker_rate(c, b, now_ms, &requests);

        if (requests >= c->min_requests && rate > c->error_rate) {
            fanout_breaker_open(c, b, now_ms, c->cooldown_ms);
            return FANOUT_BREAKER_OPENED;
        }
    }

    return FANOUT_BREAKER_SAME;
}


void
fanout_breaker_release(fanout_breaker_t *b, fanout_breaker_verdict_e verdict)
{
    if (verdict == FANOUT_BREAKER_PROBE
        && b->state == FANOUT_BREAKER_HALF_OPEN && b->probes > 0)
    {
        b->probes--;
    }
}


int
fanout_breaker_own_success(const fanout_breaker_conf_t *c, fanout_breaker_t *b,
    uint64_t now_ms)
{
    uint32_t  rate, requests;

    if (b->state != FANOUT_BREAKER_CLOSED || b->consecutive != 0) {
        return 0;
    }

    /* more successes than failures: under 50 failures per hundred */
    rate = fanout_breaker_rate(c, b, now_ms, &requests);

    return requests > 0 && rate < 50;
}


fanout_breaker_change_e
fanout_breaker_learn(const fanout_breaker_conf_t *c, fanout_breaker_t *b,
    uint64_t now_ms, uint64_t remaining_ms, uint64_t cooldown_ms)
{
    if (remaining_ms == 0) {
        return FANOUT_BREAKER_SAME;
    }

    if (b->state == FANOUT_BREAKER_OPEN) {
        /* reopened elsewhere with a longer cooldown: wait as long */
        if (b->retry_at_ms < now_ms + remaining_ms) {
            b->retry_at_ms = now_ms + remaining_ms;
        }

        return FANOUT_BREAKER_SAME;
    }

    if (fanout_breaker_own_success(c, b, now_ms)) {
        /*
         * This instance's own calls succeed, the latest one included: what
         * failed elsewhere (that instance's network, say) is not evidence
         * against what this one sees.  One broken member must not take
         * the fleet's calls, nor its readiness, with it.
         */
        return FANOUT_BREAKER_SAME;
    }

    fanout_breaker_open(c, b, now_ms, cooldown_ms ? cooldown_ms
                                                  : c->cooldown_ms);
    b->retry_at_ms = now_ms + remaining_ms;
    b->remote = 1;

    return FANOUT_BREAKER_OPENED;
}


fanout_breaker_change_e
fanout_breaker_closed_elsewhere(fanout_breaker_t *b, uint64_t now_ms,
    uint64_t age_ms)
{
    uint64_t  opened;

    if (b->state == FANOUT_BREAKER_CLOSED) {
        return FANOUT_BREAKER_SAME;
    }

    /* when this opening began: its retry time less its cooldown */
    opened = b->retry_at_ms > b->cooldown_ms ? b->retry_at_ms - b->cooldown_ms
                                             : 0;

    if (now_ms < age_ms || opened >= now_ms - age_ms) {
        return FANOUT_BREAKER_SAME;
    }

    memset(b, 0, sizeof(fanout_breaker_t));

    return FANOUT_BREAKER_CLOSED_AGAIN;
}


int
fanout_breaker_adopt(fanout_breaker_t *b, uint64_t now_ms,
    uint64_t remaining_ms, uint64_t cooldown_ms)
{
    if (b->state != FANOUT_BREAKER_OPEN || remaining_ms == 0
        || b->retry_at_ms == now_ms + remaining_ms)
    {
        return 0;
    }

    b->retry_at_ms = now_ms + remaining_ms;

    if (cooldown_ms) {
        b->cooldown_ms = cooldown_ms;
    }

    return 1;
}


fanout_breaker_change_e
fanout_breaker_forget(fanout_breaker_t *b, uint64_t now_ms,
    uint64_t margin_ms)
{
    if (b->state == FANOUT_BREAKER_OPEN && b->remote
        && b->retry_at_ms > now_ms + margin_ms)
    {
        memset(b, 0, sizeof(fanout_breaker_t));
        return FANOUT_BREAKER_CLOSED_AGAIN;
    }

    return FANOUT_BREAKER_SAME;
}


uint32_t
fanout_breaker_peek(const fanout_breaker_t *b, uint64_t now_ms,
    uint32_t *requests)
{
    fanout_breaker_t       copy;
    fanout_breaker_conf_t  c;

    if (b->window_ms == 0) {
        /* nothing recorded yet */
        *requests = 0;
        return 0;
    }

    memset(&c, 0, sizeof(c));
    c.window_ms = b->window_ms;
    copy = *b;

    return fanout_breaker_rate(&c, &copy, now_ms, requests);
}
