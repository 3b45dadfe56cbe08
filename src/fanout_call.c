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
