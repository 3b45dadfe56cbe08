
/*
 * fanout_api [write]: the instance's runtime state as JSON, and with
 * "write" changes to it (PATCH, PUT or POST of a JSON object). For now the
 * state is the drain: {"draining":true} makes fanout_health answer 503
 * while traffic is served, until {"draining":false}. The state lives in the
 * zone: every worker sees a change at once and a reload keeps it. Each
 * change is checked whole before anything changes, counted in "version"
 * and logged at notice with its old and new values.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_api.h"
#include "ngx_http_fanout_health.h"
#include "ngx_http_fanout_request.h"
#include "ngx_http_fanout_response.h"
#include "ngx_http_fanout_runtime.h"
#include "ngx_http_fanout_stats.h"
#include "fanout_json.h"


#define NGX_HTTP_FANOUT_API_READ   1
#define NGX_HTTP_FANOUT_API_WRITE  2

/* a change is a few fields: more is not a change */
#define NGX_HTTP_FANOUT_API_MAX_BODY  65536
#define NGX_HTTP_FANOUT_API_MAX_KEYS  16


static void ngx_http_fanout_api_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_fanout_api_state(ngx_http_request_t *r,
    const char *written);


char *
ngx_http_fanout_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_str_t                    *value;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_fanout_main_conf_t  *fmcf;

    if (flcf->api) {
        return "is duplicate";
    }

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);

    if (fmcf->api_file == NULL) {
        fmcf->api_file = cf->conf_file->file.name.data;
        fmcf->api_line = cf->conf_file->line;
    }

    value = cf->args->elts;
    flcf->api = NGX_HTTP_FANOUT_API_READ;

    if (cf->args->nelts == 2) {
        if (ngx_strcmp(value[1].data, "write") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": only \"write\"",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

        flcf->api = NGX_HTTP_FANOUT_API_WRITE;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fanout_api\" cannot be combined with another "
                           "content handler in one location");
        return NGX_CONF_ERROR;
    }

    clcf->handler = ngx_http_fanout_api_handler;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_fanout_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_fanout_loc_conf_t  *flcf;

    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fanout_module);

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_fanout_api_state(r, NULL);
    }

    if (!(r->method & (NGX_HTTP_PATCH|NGX_HTTP_PUT|NGX_HTTP_POST))) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_fanout_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                          "method_not_allowed",
                                          "use GET, or PATCH, PUT or POST "
                                          "with a JSON object");
    }

    if (flcf->api != NGX_HTTP_FANOUT_API_WRITE) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_fanout_send_error(r, NGX_HTTP_FORBIDDEN, "read_only",
                                          "this fanout_api is read-only: "
                                          "\\\"fanout_api write\\\" allows "
                                          "changes");
    }

    if (r->headers_in.content_length_n > NGX_HTTP_FANOUT_API_MAX_BODY) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_fanout_send_error(r,
                                          NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                          "too_large",
                                          "a change is at most 64 KB");
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_fanout_api_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* a change waiting for Redis to take it */
typedef struct {
    ngx_http_request_t          *request;
    void                        *pending;  /* the runtime's write */
} ngx_http_fanout_api_wait_t;


static void
ngx_http_fanout_api_cleanup(void *data)
{
    ngx_http_fanout_api_wait_t *w = data;

    if (w->pending) {
        /* the request ends first: the reply is dropped, the change stays */
        ngx_http_fanout_runtime_forget(w->pending);
        w->pending = NULL;
    }
}


static void
ngx_http_fanout_api_written(void *data, ngx_int_t version)
{
    ngx_http_fanout_api_wait_t *w = data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = w->request;
    c = r->connection;
    w->pending = NULL;

    if (version < 0) {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "fanout_api: the change is made on this instance, but "
                      "Redis did not take it: the fleet does not have it");
    }

    ngx_http_finalize_request(r, ngx_http_fanout_api_state(r,
                                     version < 0 ? "local" : "fleet"));
    ngx_http_run_posted_requests(c);
}


/* a JSON string's contents, unescaped into the pool */

static ngx_int_t
ngx_http_fanout_api_string(ngx_http_request_t *r, fanout_span_t *v,
    ngx_str_t *out)
{
    if (v->len < 2 || v->p[0] != '"') {
        return NGX_DECLINED;
    }

    out->data = ngx_pnalloc(r->pool, v->len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = fanout_json_unescape(v->p + 1, v->p + v->len - 1,
                                    (char *) out->data);

    return NGX_OK;
}


/* 0 to 100 with at most two decimals, in hundredths; -1 otherwise */

static ngx_int_t
ngx_http_fanout_api_share(fanout_span_t *v)
{
    double     d, x;
    ngx_int_t  n;

    if (fanout_json_number(v, &d) != 0 || !(d >= 0 && d <= 100)) {
        return -1;
    }

    x = d * 100;
    n = (ngx_int_t) (x + 0.5);

    return (x - n < 1e-6 && n - x < 1e-6) ? n : -1;
}


#define NGX_HTTP_FANOUT_API_DRAINING  0
#define NGX_HTTP_FANOUT_API_LOCATION  1
#define NGX_HTTP_FANOUT_API_WEIGHTS   2
#define NGX_HTTP_FANOUT_API_SHADOW    3
#define NGX_HTTP_FANOUT_API_PERCENT   4
#define NGX_HTTP_FANOUT_API_TARGET    5
#define NGX_HTTP_FANOUT_API_BREAKER   6
#define NGX_HTTP_FANOUT_API_ENABLED   7
#define NGX_HTTP_FANOUT_API_RAMP      8
#define NGX_HTTP_FANOUT_API_PURGE     9
#define NGX_HTTP_FANOUT_API_NFIELDS   10

static ngx_str_t  ngx_http_fanout_api_fields[] = {
    ngx_string("\"draining\""),
    ngx_string("\"location\""),
    ngx_string("\"weights\""),
    ngx_string("\"shadow\""),
    ngx_string("\"percent\""),
    ngx_string("\"target\""),
    ngx_string("\"breaker\""),
    ngx_string("\"enabled\""),
    ngx_string("\"ramp\""),
    ngx_string("\"purge\"")
};


/* the change, checked whole, then made */

static void
ngx_http_fanout_api_body(ngx_http_request_t *r)
{
    long                          n, i, k, m;
    u_char                       *p;
    ngx_str_t                     body, s;
    ngx_int_t                     rc, draining, share;
    ngx_uint_t                    seen, f;
    const char                   *error, *message;
    fanout_span_t                 keys[NGX_HTTP_FANOUT_API_MAX_KEYS],
                                  values[NGX_HTTP_FANOUT_API_MAX_KEYS],
                                  field[NGX_HTTP_FANOUT_API_NFIELDS],
                                  wkeys[FANOUT_SPLIT_MAX_VARIANTS],
                                  wvalues[FANOUT_SPLIT_MAX_VARIANTS];
    void                         *pending;
    ngx_pool_cleanup_t           *cln;
    ngx_http_fanout_api_wait_t   *w;
    ngx_http_fanout_rt_change_t  *ch;
    ngx_http_fanout_main_conf_t  *fmcf;

    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fanout_module);

    if (ngx_http_fanout_body_memory(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    draining = -1;
    error = NULL;
    message = NULL;

    if (body.len > NGX_HTTP_FANOUT_API_MAX_BODY) {
        rc = NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
        error = "too_large";
        message = "a change is at most 64 KB";
        goto refused;
    }

    rc = NGX_HTTP_BAD_REQUEST;

    if (fanout_json_scan((char *) body.data, body.len, NULL, 0, NULL) != 0) {
        error = "bad_json";
        message = "the body is not JSON";
        goto refused;
    }

    /* the object itself, without the spaces around it */
    while (body.len && (body.data[0] == ' ' || body.data[0] == '\t'
                        || body.data[0] == '\r' || body.data[0] == '\n'))
    {
        body.data++;
        body.len--;
    }

    while (body.len && (body.data[body.len - 1] == ' '
                        || body.data[body.len - 1] == '\t'
                        || body.data[body.len - 1] == '\r'
                        || body.data[body.len - 1] == '\n'))
    {
        body.len--;
    }

    n = fanout_json_members((char *) body.data, body.len, keys, values,
                            NGX_HTTP_FANOUT_API_MAX_KEYS);

    if (n < 0) {
        error = "bad_request";
        message = "the body is not a JSON object";
        goto refused;
    }

    if (n == 0 || n > NGX_HTTP_FANOUT_API_MAX_KEYS) {
        error = "bad_request";
        message = n ? "too many fields" : "nothing to change";
        goto refused;
    }

    /* each known field once; anything else is refused */
    seen = 0;

    for (i = 0; i < n; i++) {
        for (f = 0; f < NGX_HTTP_FANOUT_API_NFIELDS; f++) {
            if (keys[i].len == ngx_http_fanout_api_fields[f].len
                && ngx_strncmp(keys[i].p, ngx_http_fanout_api_fields[f].data,
                               keys[i].len) == 0)
            {
                break;
            }
        }

        if (f == NGX_HTTP_FANOUT_API_NFIELDS) {
            error = "unknown_field";
            message = "the fields are \\\"draining\\\", or \\\"location\\\" "
                      "with \\\"weights\\\", \\\"shadow\\\" and "
                      "\\\"percent\\\", \\\"target\\\" and \\\"breaker\\\" or "
                      "\\\"enabled\\\", \\\"ramp\\\" or \\\"purge\\\"";
            goto refused;
        }

        if (seen & (1 << f)) {
            error = "bad_request";
            message = "a field given twice";
            goto refused;
        }

        seen |= 1 << f;
        field[f] = values[i];
    }

    if (seen == (1 << NGX_HTTP_FANOUT_API_DRAINING)) {
        if (field[0].len == 4 && ngx_strncmp(field[0].p, "true", 4) == 0) {
            draining = 1;

        } else if (field[0].len == 5
                   && ngx_strncmp(field[0].p, "false", 5) == 0)
        {
            draining = 0;

        } else {
            error = "bad_value";
            message = "\\\"draining\\\" is true or false";
            goto refused;
        }

        if ((ngx_int_t) fmcf->sh->drain != draining) {
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                          "fanout_api: draining %s -> %s (version %uA)",
                          fmcf->sh->drain ? "true" : "false",
                          draining ? "true" : "false",
                          fmcf->sh->api_version + 1);

            fmcf->sh->drain = draining;
            (void) ngx_atomic_fetch_add(&fmcf->sh->api_version, 1);
        }

        ngx_http_finalize_request(r, ngx_http_fanout_api_state(r, NULL));
        return;
    }

    /* a location's change: one of them */

    ngx_str_null(&s);

    ch = ngx_pcalloc(r->pool, sizeof(ngx_http_fanout_rt_change_t));
    if (ch == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    error = "bad_request";

    if (!(seen & (1 << NGX_HTTP_FANOUT_API_LOCATION))
        || (seen & (1 << NGX_HTTP_FANOUT_API_DRAINING)))
    {
        message = "a change is \\\"draining\\\" alone, or names a "
                  "\\\"location\\\"";
        goto refused;
    }

    seen &= ~(1 << NGX_HTTP_FANOUT_API_LOCATION);

    if (ngx_http_fanout_api_string(r, &field[NGX_HTTP_FANOUT_API_LOCATION],
                                   &ch->location)
        != NGX_OK)
    {
        error = "bad_value";
        message = "\\\"location\\\" is a string";
        goto refused;
    }

    if (seen == (1 << NGX_HTTP_FANOUT_API_WEIGHTS)) {
        fanout_span_t  *v = &field[NGX_HTTP_FANOUT_API_WEIGHTS];

        error = "bad_value";

        if (v->len == 8 && ngx_strncmp(v->p, "\"config\"", 8) == 0) {
            ch->what = NGX_HTTP_FANOUT_RT_CONFIG;
            goto change;
        }

        m = fanout_json_members(v->p, v->len, wkeys, wvalues,
                                FANOUT_SPLIT_MAX_VARIANTS);

        if (m <= 0 || m > FANOUT_SPLIT_MAX_VARIANTS) {
            message = "\\\"weights\\\" is an object of variants and their "
                      "percentages, or \\\"config\\\"";
            goto refused;
        }

        ch->what = NGX_HTTP_FANOUT_RT_WEIGHTS;
        ch->nshares = m;

        for (k = 0; k < m; k++) {
            share = ngx_http_fanout_api_share(&wvalues[k]);

            if (share < 0
                || ngx_http_fanout_api_string(r, &wkeys[k], &ch->names[k])
                   != NGX_OK)
            {
                message = "a weight is a percentage from 0 to 100 with at "
                          "most two decimals";
                goto refused;
            }

            for (i = 0; i < k; i++) {
                if (ch->names[i].len == ch->names[k].len
                    && ngx_strncmp(ch->names[i].data, ch->names[k].data,
                                   ch->names[k].len) == 0)
                {
                    error = "bad_weights";
                    message = "a variant given twice";
                    goto refused;
                }
            }

            ch->shares[k] = (uint32_t) share;
        }

        goto change;
    }

    if (seen == ((1 << NGX_HTTP_FANOUT_API_SHADOW)
                 | (1 << NGX_HTTP_FANOUT_API_PERCENT)))
    {
        fanout_span_t  *v = &field[NGX_HTTP_FANOUT_API_PERCENT];

        error = "bad_value";
        ch->what = NGX_HTTP_FANOUT_RT_PERCENT;

        if (ngx_http_fanout_api_string(r, &field[NGX_HTTP_FANOUT_API_SHADOW],
                                       &ch->name)
            != NGX_OK)
        {
            message = "\\\"shadow\\\" is a string";
            goto refused;
        }

        if (v->len == 8 && ngx_strncmp(v->p, "\"config\"", 8) == 0) {
            ch->value = NGX_HTTP_FANOUT_RT_AS_CONFIGURED;
            goto change;
        }

        share = ngx_http_fanout_api_share(v);

        if (share < 0) {
            message = "\\\"percent\\\" is from 0 to 100 with at most two "
                      "decimals, or \\\"config\\\"";
            goto refused;
        }

        ch->value = (ngx_uint_t) share;
        goto change;
    }

    if (seen == ((1 << NGX_HTTP_FANOUT_API_TARGET)
                 | (1 << NGX_HTTP_FANOUT_API_BREAKER))
        || seen == ((1 << NGX_HTTP_FANOUT_API_TARGET)
                    | (1 << NGX_HTTP_FANOUT_API_ENABLED)))
    {
        error = "bad_value";

        if (ngx_http_fanout_api_string(r, &field[NGX_HTTP_FANOUT_API_TARGET],
                                       &ch->name)
            != NGX_OK)
        {
            message = "\\\"target\\\" is a string";
            goto refused;
        }

        if (seen & (1 << NGX_HTTP_FANOUT_API_ENABLED)) {
            fanout_span_t  *v = &field[NGX_HTTP_FANOUT_API_ENABLED];

            ch->what = NGX_HTTP_FANOUT_RT_TARGET;

            if (v->len == 4 && ngx_strncmp(v->p, "true", 4) == 0) {
                ch->value = 1;

            } else if (v->len == 5 && ngx_strncmp(v->p, "false", 5) == 0) {
                ch->value = 0;

            } else {
                message = "\\\"enabled\\\" is true or false";
                goto refused;
            }

            goto change;
        }

        ch->what = NGX_HTTP_FANOUT_RT_BREAKER;

        if (ngx_http_fanout_api_string(r, &field[NGX_HTTP_FANOUT_API_BREAKER],
                                       &s)
            == NGX_OK)
        {
            if (s.len == 4 && ngx_strncmp(s.data, "auto", 4) == 0) {
                ch->value = 0;
                goto change;
            }

            if (s.len == 4 && ngx_strncmp(s.data, "open", 4) == 0) {
                ch->value = 1;
                goto change;
            }

            if (s.len == 6 && ngx_strncmp(s.data, "closed", 6) == 0) {
                ch->value = 2;
                goto change;
            }
        }

        message = "\\\"breaker\\\" is \\\"open\\\", \\\"closed\\\" or "
                  "\\\"auto\\\"";
        goto refused;
    }

    if (seen == (1 << NGX_HTTP_FANOUT_API_RAMP)) {
        error = "bad_value";

        if (ngx_http_fanout_api_string(r, &field[NGX_HTTP_FANOUT_API_RAMP], &s)
            == NGX_OK)
        {
            if (s.len == 8 && ngx_strncmp(s.data, "rollback", 8) == 0) {
                ch->what = NGX_HTTP_FANOUT_RT_ROLLBACK;
                goto change;
            }

            if (s.len == 7 && ngx_strncmp(s.data, "restart", 7) == 0) {
                ch->what = NGX_HTTP_FANOUT_RT_RESTART;
                goto change;
            }

            if (s.len == 3 && ngx_strncmp(s.data, "off", 3) == 0) {
                ch->what = NGX_HTTP_FANOUT_RT_RAMP_OFF;
                goto change;
            }

            message = "\\\"ramp\\\" is \\\"rollback\\\", \\\"restart\\\", "
                      "\\\"off\\\" or a ramp";
            goto refused;
        }

        /* a ramp: {"steps":..., "every":..., ["rollback_if":...,]
         * ["candidate":...,] ["min_requests":N]} */
        m = fanout_json_members(field[NGX_HTTP_FANOUT_API_RAMP].p,
                                field[NGX_HTTP_FANOUT_API_RAMP].len,
                                wkeys, wvalues, FANOUT_SPLIT_MAX_VARIANTS);

        if (m <= 0 || m > 5) {
            message = "\\\"ramp\\\" is \\\"rollback\\\", \\\"restart\\\", "
                      "\\\"off\\\" or an object with \\\"steps\\\" and "
                      "\\\"every\\\"";
            goto refused;
        }

        ch->what = NGX_HTTP_FANOUT_RT_RAMP_SET;

        for (k = 0; k < m; k++) {
            ngx_str_t  *to;

            to = NULL;

            if (wkeys[k].len == 7 && ngx_strncmp(wkeys[k].p, "\"steps\"", 7)
                == 0)
            {
                to = &ch->steps;

            } else if (wkeys[k].len == 7
                       && ngx_strncmp(wkeys[k].p, "\"every\"", 7) == 0)
            {
                to = &s;

            } else if (wkeys[k].len == 13
                       && ngx_strncmp(wkeys[k].p, "\"rollback_if\"", 13) == 0)
            {
                to = &ch->rollback;

            } else if (wkeys[k].len == 11
                       && ngx_strncmp(wkeys[k].p, "\"candidate\"", 11) == 0)
            {
                to = &ch->candidate;

            } else if (wkeys[k].len == 14
                       && ngx_strncmp(wkeys[k].p, "\"min_requests\"", 14)
                          == 0)
            {
                double  d;

                if (fanout_json_number(&wvalues[k], &d) != 0
                    || !(d >= 1 && d <= 1000000000) || d != (ngx_uint_t) d)
                {
                    message = "\\\"min_requests\\\" is a number over 0";
                    goto refused;
                }

                ch->value = (ngx_uint_t) d;
                continue;

            } else {
                error = "unknown_field";
                message = "a ramp has \\\"steps\\\", \\\"every\\\", "
                          "\\\"rollback_if\\\", \\\"candidate\\\" and "
                          "\\\"min_requests\\\"";
                goto refused;
            }

            if (to->data != NULL
                || ngx_http_fanout_api_string(r, &wvalues[k], to) != NGX_OK)
            {
                message = "a ramp's fields are strings, each once";
                goto refused;
            }

            if (to == &s) {
                share = ngx_parse_time(&s, 0);

                if (share == NGX_ERROR || share == 0) {
                    message = "\\\"every\\\" is a time, as \\\"10m\\\"";
                    goto refused;
                }

                ch->every = (ngx_msec_t) share;
            }
        }

        if (ch->steps.len == 0 || ch->every == 0) {
            message = "a ramp needs \\\"steps\\\" and \\\"every\\\"";
            goto refused;
        }

        goto change;
    }

    if (seen == (1 << NGX_HTTP_FANOUT_API_PURGE)) {
        fanout_span_t  *v = &field[NGX_HTTP_FANOUT_API_PURGE];

        error = "bad_value";
        ch->what = NGX_HTTP_FANOUT_RT_PURGE;

        if (v->len == 4 && ngx_strncmp(v->p, "true", 4) == 0) {
            goto change;
        }

        m = fanout_json_members(v->p, v->len, wkeys, wvalues,
                                FANOUT_SPLIT_MAX_VARIANTS);

        if (m == 1 && wkeys[0].len == 8
            && ngx_strncmp(wkeys[0].p, "\"target\"", 8) == 0
            && ngx_http_fanout_api_string(r, &wvalues[0], &ch->name)
               == NGX_OK
            && ch->name.len)
        {
            goto change;
        }

        message = "\\\"purge\\\" is true (the location's entries) or "
                  "{\\\"target\\\":NAME} (a target's)";
        goto refused;
    }

    message = "with \\\"location\\\": \\\"weights\\\", \\\"shadow\\\" and "
              "\\\"percent\\\", \\\"target\\\" and \\\"breaker\\\" or "
              "\\\"enabled\\\", or \\\"ramp\\\": one change at a time";
    goto refused;

change:

    w = NULL;
    cln = NULL;

    if (fmcf->redis) {
        cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_fanout_api_wait_t));
        if (cln == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        w = cln->data;
        w->request = r;
        w->pending = NULL;
    }

    rc = ngx_http_fanout_runtime_change(fmcf, r->connection->log, ch,
                                        ngx_http_fanout_api_written, w,
                                        w ? &w->pending : &pending);

    if (rc == NGX_DECLINED) {
        rc = ch->status;
        error = ch->error;
        message = ch->message;

        if (ch->stranded) {
            /* names are letters, digits, '-' and '_': JSON as they are */
            p = ngx_pnalloc(r->pool, ch->name.len + 100);
            if (p == NULL) {
                ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }

            message = (const char *) p;
            p = ngx_sprintf(p, "variant \\\"%V\\\" would be left with too "
                            "few enabled targets for the location's "
                            "quorum%Z", &ch->name);
        }

        goto refused;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (w && w->pending) {
        /* answered once Redis has it (or its timer ran out) */
        cln->handler = ngx_http_fanout_api_cleanup;
        return;
    }

    ngx_http_finalize_request(r, ngx_http_fanout_api_state(r,
                                     fmcf->redis ? "local" : NULL));
    return;

refused:

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "fanout_api: change refused: %s", message);

    ngx_http_finalize_request(r, ngx_http_fanout_send_error(r, rc, error,
                                                            message));
}


static ngx_int_t
ngx_http_fanout_api_state(ngx_http_request_t *r, const char *written)
{
    u_char                       *body, *p;
    ngx_msec_int_t                left;
    ngx_http_fanout_shctx_t      *sh;
    ngx_http_fanout_main_conf_t  *fmcf;

    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fanout_module);
    sh = fmcf->sh;

    body = ngx_pnalloc(r->pool, 320 + 6 * fmcf->instance.len
                                + ngx_http_fanout_runtime_json_size(fmcf));
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    left = sh->quit_drain_until
           ? (ngx_msec_int_t) (sh->quit_drain_until - ngx_current_msec) : 0;

    p = ngx_sprintf(body, "{\"version\":%uA,\"instance\":\"",
                    sh->api_version);
    p = ngx_http_fanout_escape_json(p, &fmcf->instance);
    p = ngx_sprintf(p, "\",");

    if (written) {
        /* "fleet": Redis has the change; "local": this instance only */
        p = ngx_sprintf(p, "\"written\":\"%s\",", written);
    }

    p = ngx_sprintf(p, "\"draining\":%s,\"drain\":{\"api\":%s,"
                    "\"on_quit_ms\":%M,\"quit_left_ms\":%M},",
                    ngx_http_fanout_draining(fmcf) ? "true" : "false",
                    sh->drain ? "true" : "false", fmcf->drain_on_quit,
                    (ngx_msec_t) (left > 0 ? left : 0));
    p = ngx_http_fanout_runtime_json(p, fmcf);
    p = ngx_sprintf(p, "}\n");

    return ngx_http_fanout_send_json(r, NGX_HTTP_OK, body, p - body);
}
