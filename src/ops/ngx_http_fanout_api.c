
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
#include <jansson.h>

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_api.h"
#include "ngx_http_fanout_health.h"
#include "ngx_http_fanout_request.h"
#include "ngx_http_fanout_response.h"
#include "ngx_http_fanout_runtime.h"
#include "ngx_http_fanout_runtime_change.h"
#include "ngx_http_fanout_runtime_status.h"
#include "ngx_http_fanout_stats.h"
#include "fanout_json.h"


#define NGX_HTTP_FANOUT_API_READ   1
#define NGX_HTTP_FANOUT_API_WRITE  2

/* a change is a few fields: more is not a change */
#define NGX_HTTP_FANOUT_API_MAX_BODY  65536


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


/*
 * A change's body is a document, not the request path: jansson reads it
 * (duplicate keys refused), and each kind of change is checked by its own
 * function below into a ngx_http_fanout_rt_change_t, or refused with the
 * status, error and message of ps.
 */

typedef struct {
    ngx_http_request_t           *request;
    ngx_int_t                     status;
    const char                   *error;
    const char                   *message;
} ngx_http_fanout_api_parse_t;


static ngx_inline ngx_int_t
ngx_http_fanout_api_refuse(ngx_http_fanout_api_parse_t *ps, ngx_int_t status,
    const char *error, const char *message)
{
    ps->status = status;
    ps->error = error;
    ps->message = message;

    return NGX_DECLINED;
}


/* a JSON string into the pool; NGX_DECLINED: not a string */

static ngx_int_t
ngx_http_fanout_api_string(ngx_http_fanout_api_parse_t *ps, json_t *v,
    ngx_str_t *out)
{
    if (!json_is_string(v)) {
        return NGX_DECLINED;
    }

    out->len = json_string_length(v);
    out->data = ngx_pnalloc(ps->request->pool, out->len + 1);

    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, json_string_value(v), out->len);
    out->data[out->len] = '\0';

    return NGX_OK;
}


/* a JSON string equal to s */

static ngx_inline ngx_uint_t
ngx_http_fanout_api_is(json_t *v, const char *s)
{
    return json_is_string(v) && ngx_strcmp(json_string_value(v), s) == 0;
}


/* 0 to 100 with at most two decimals, in hundredths; -1 otherwise */

static ngx_int_t
ngx_http_fanout_api_share(json_t *v)
{
    double     d, x;
    ngx_int_t  n;

    if (!json_is_number(v)) {
        return -1;
    }

    d = json_number_value(v);

    if (!(d >= 0 && d <= 100)) {
        return -1;
    }

    x = d * 100;
    n = (ngx_int_t) (x + 0.5);

    return (x - n < 1e-6 && n - x < 1e-6) ? n : -1;
}


/* {"weights":{"v1":50,...}} or "config" */

static ngx_int_t
ngx_http_fanout_api_weights(ngx_http_fanout_api_parse_t *ps, json_t *v,
    ngx_http_fanout_rt_change_t *ch)
{
    json_t      *share;
    ngx_int_t    n;
    ngx_uint_t   k;
    const char  *name;

    if (ngx_http_fanout_api_is(v, "config")) {
        ch->what = NGX_HTTP_FANOUT_RT_CONFIG;
        return NGX_OK;
    }

    if (!json_is_object(v) || json_object_size(v) == 0
        || json_object_size(v) > FANOUT_SPLIT_MAX_VARIANTS)
    {
        return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                   "bad_value", "\\\"weights\\\" is an object of variants "
                   "and their percentages, or \\\"config\\\"");
    }

    ch->what = NGX_HTTP_FANOUT_RT_WEIGHTS;
    k = 0;

    json_object_foreach(v, name, share) {
        n = ngx_http_fanout_api_share(share);

        if (n < 0) {
            return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                       "bad_value", "a weight is a percentage from 0 to 100 "
                       "with at most two decimals");
        }

        ch->names[k].len = ngx_strlen(name);
        ch->names[k].data = ngx_pnalloc(ps->request->pool,
                                        ch->names[k].len + 1);
        if (ch->names[k].data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(ch->names[k].data, name, ch->names[k].len + 1);
        ch->shares[k++] = (uint32_t) n;
    }

    ch->nshares = k;

    return NGX_OK;
}


/* {"shadow":NAME,"percent":5} or "config" */

static ngx_int_t
ngx_http_fanout_api_percent(ngx_http_fanout_api_parse_t *ps, json_t *name,
    json_t *v, ngx_http_fanout_rt_change_t *ch)
{
    ngx_int_t  rc, n;

    ch->what = NGX_HTTP_FANOUT_RT_PERCENT;

    rc = ngx_http_fanout_api_string(ps, name, &ch->name);
    if (rc != NGX_OK) {
        return rc == NGX_ERROR ? NGX_ERROR
               : ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                     "bad_value", "\\\"shadow\\\" is a string");
    }

    if (ngx_http_fanout_api_is(v, "config")) {
        ch->value = NGX_HTTP_FANOUT_RT_AS_CONFIGURED;
        return NGX_OK;
    }

    n = ngx_http_fanout_api_share(v);

    if (n < 0) {
        return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                   "bad_value", "\\\"percent\\\" is from 0 to 100 with at "
                   "most two decimals, or \\\"config\\\"");
    }

    ch->value = (ngx_uint_t) n;

    return NGX_OK;
}


/* {"target":T,"breaker":"open|closed|auto"} or {"target":T,"enabled":B} */

static ngx_int_t
ngx_http_fanout_api_target(ngx_http_fanout_api_parse_t *ps, json_t *name,
    json_t *breaker, json_t *enabled, ngx_http_fanout_rt_change_t *ch)
{
    ngx_int_t  rc;

    rc = ngx_http_fanout_api_string(ps, name, &ch->name);
    if (rc != NGX_OK) {
        return rc == NGX_ERROR ? NGX_ERROR
               : ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                     "bad_value", "\\\"target\\\" is a string");
    }

    if (enabled) {
        ch->what = NGX_HTTP_FANOUT_RT_TARGET;

        if (!json_is_boolean(enabled)) {
            return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                       "bad_value", "\\\"enabled\\\" is true or false");
        }

        ch->value = json_is_true(enabled);
        return NGX_OK;
    }

    ch->what = NGX_HTTP_FANOUT_RT_BREAKER;

    if (ngx_http_fanout_api_is(breaker, "auto")) {
        ch->value = 0;

    } else if (ngx_http_fanout_api_is(breaker, "open")) {
        ch->value = 1;

    } else if (ngx_http_fanout_api_is(breaker, "closed")) {
        ch->value = 2;

    } else {
        return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                   "bad_value", "\\\"breaker\\\" is \\\"open\\\", "
                   "\\\"closed\\\" or \\\"auto\\\"");
    }

    return NGX_OK;
}


/*
 * {"ramp":"rollback|restart|off"} or a ramp: {"steps":..., "every":...,
 * ["rollback_if":...,] ["candidate":...,] ["min_requests":N]}
 */

static ngx_int_t
ngx_http_fanout_api_ramp(ngx_http_fanout_api_parse_t *ps, json_t *v,
    ngx_http_fanout_rt_change_t *ch)
{
    double       d;
    json_t      *x;
    ngx_str_t    every, *to;
    ngx_int_t    ms;
    const char  *key;

    if (json_is_string(v)) {
        if (ngx_http_fanout_api_is(v, "rollback")) {
            ch->what = NGX_HTTP_FANOUT_RT_ROLLBACK;

        } else if (ngx_http_fanout_api_is(v, "restart")) {
            ch->what = NGX_HTTP_FANOUT_RT_RESTART;

        } else if (ngx_http_fanout_api_is(v, "off")) {
            ch->what = NGX_HTTP_FANOUT_RT_RAMP_OFF;

        } else {
            return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                       "bad_value", "\\\"ramp\\\" is \\\"rollback\\\", "
                       "\\\"restart\\\", \\\"off\\\" or a ramp");
        }

        return NGX_OK;
    }

    if (!json_is_object(v) || json_object_size(v) == 0) {
        return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                   "bad_value", "\\\"ramp\\\" is \\\"rollback\\\", "
                   "\\\"restart\\\", \\\"off\\\" or an object with "
                   "\\\"steps\\\" and \\\"every\\\"");
    }

    ch->what = NGX_HTTP_FANOUT_RT_RAMP_SET;
    ngx_str_null(&every);

    json_object_foreach(v, key, x) {

        if (ngx_strcmp(key, "min_requests") == 0) {
            d = json_is_number(x) ? json_number_value(x) : 0;

            if (!(d >= 1 && d <= 1000000000) || d != (ngx_uint_t) d) {
                return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                           "bad_value",
                           "\\\"min_requests\\\" is a number over 0");
            }

            ch->value = (ngx_uint_t) d;
            continue;
        }

        to = ngx_strcmp(key, "steps") == 0 ? &ch->steps
             : ngx_strcmp(key, "every") == 0 ? &every
             : ngx_strcmp(key, "rollback_if") == 0 ? &ch->rollback
             : ngx_strcmp(key, "candidate") == 0 ? &ch->candidate
             : NULL;

        if (to == NULL) {
            return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                       "unknown_field", "a ramp has \\\"steps\\\", "
                       "\\\"every\\\", \\\"rollback_if\\\", "
                       "\\\"candidate\\\" and \\\"min_requests\\\"");
        }

        switch (ngx_http_fanout_api_string(ps, x, to)) {
        case NGX_OK:
            break;
        case NGX_ERROR:
            return NGX_ERROR;
        default:
            return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                       "bad_value", "a ramp's fields are strings, each once");
        }
    }

    if (every.data) {
        ms = ngx_parse_time(&every, 0);

        if (ms == NGX_ERROR || ms == 0) {
            return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                       "bad_value", "\\\"every\\\" is a time, as \\\"10m\\\"");
        }

        ch->every = (ngx_msec_t) ms;
    }

    if (ch->steps.len == 0 || ch->every == 0) {
        return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                   "bad_value", "a ramp needs \\\"steps\\\" and \\\"every\\\"");
    }

    return NGX_OK;
}


/* {"purge":true} or {"purge":{"target":T}} */

static ngx_int_t
ngx_http_fanout_api_purge(ngx_http_fanout_api_parse_t *ps, json_t *v,
    ngx_http_fanout_rt_change_t *ch)
{
    json_t     *t;
    ngx_int_t   rc;

    ch->what = NGX_HTTP_FANOUT_RT_PURGE;

    if (json_is_true(v)) {
        return NGX_OK;
    }

    t = json_is_object(v) && json_object_size(v) == 1
        ? json_object_get(v, "target") : NULL;

    rc = t ? ngx_http_fanout_api_string(ps, t, &ch->name) : NGX_DECLINED;

    if (rc == NGX_OK && ch->name.len) {
        return NGX_OK;
    }

    return rc == NGX_ERROR ? NGX_ERROR
           : ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                 "bad_value", "\\\"purge\\\" is true (the location's "
                 "entries) or {\\\"target\\\":NAME} (a target's)");
}


#define NGX_HTTP_FANOUT_API_DRAINING  0x001
#define NGX_HTTP_FANOUT_API_LOCATION  0x002
#define NGX_HTTP_FANOUT_API_WEIGHTS   0x004
#define NGX_HTTP_FANOUT_API_SHADOW    0x008
#define NGX_HTTP_FANOUT_API_PERCENT   0x010
#define NGX_HTTP_FANOUT_API_TARGET    0x020
#define NGX_HTTP_FANOUT_API_BREAKER   0x040
#define NGX_HTTP_FANOUT_API_ENABLED   0x080
#define NGX_HTTP_FANOUT_API_RAMP      0x100
#define NGX_HTTP_FANOUT_API_PURGE     0x200

static const struct {
    const char  *name;
    ngx_uint_t   bit;
} ngx_http_fanout_api_fields[] = {
    { "draining", NGX_HTTP_FANOUT_API_DRAINING },
    { "location", NGX_HTTP_FANOUT_API_LOCATION },
    { "weights", NGX_HTTP_FANOUT_API_WEIGHTS },
    { "shadow", NGX_HTTP_FANOUT_API_SHADOW },
    { "percent", NGX_HTTP_FANOUT_API_PERCENT },
    { "target", NGX_HTTP_FANOUT_API_TARGET },
    { "breaker", NGX_HTTP_FANOUT_API_BREAKER },
    { "enabled", NGX_HTTP_FANOUT_API_ENABLED },
    { "ramp", NGX_HTTP_FANOUT_API_RAMP },
    { "purge", NGX_HTTP_FANOUT_API_PURGE }
};


/*
 * The body: the drain (NGX_DONE, *draining 0 or 1), or one change of a
 * location (NGX_OK, in ch); NGX_DECLINED refused, as ps says.
 */

static ngx_int_t
ngx_http_fanout_api_parse(ngx_http_fanout_api_parse_t *ps, json_t *doc,
    ngx_http_fanout_rt_change_t *ch, ngx_int_t *draining)
{
    json_t      *v;
    ngx_int_t    rc;
    ngx_uint_t   seen, f;
    const char  *key;

    if (!json_is_object(doc)) {
        return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                   "bad_request", "the body is not a JSON object");
    }

    if (json_object_size(doc) == 0) {
        return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                   "bad_request", "nothing to change");
    }

    /* only known fields (each once: jansson refused duplicates) */
    seen = 0;

    json_object_foreach(doc, key, v) {
        for (f = 0; f < sizeof(ngx_http_fanout_api_fields)
                        / sizeof(ngx_http_fanout_api_fields[0]); f++)
        {
            if (ngx_strcmp(key, ngx_http_fanout_api_fields[f].name) == 0) {
                seen |= ngx_http_fanout_api_fields[f].bit;
                break;
            }
        }

        if (f == sizeof(ngx_http_fanout_api_fields)
                 / sizeof(ngx_http_fanout_api_fields[0]))
        {
            return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                       "unknown_field", "the fields are \\\"draining\\\", "
                       "or \\\"location\\\" with \\\"weights\\\", "
                       "\\\"shadow\\\" and \\\"percent\\\", \\\"target\\\" "
                       "and \\\"breaker\\\" or \\\"enabled\\\", \\\"ramp\\\" "
                       "or \\\"purge\\\"");
        }
    }

    if (seen == NGX_HTTP_FANOUT_API_DRAINING) {
        v = json_object_get(doc, "draining");

        if (!json_is_boolean(v)) {
            return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                       "bad_value", "\\\"draining\\\" is true or false");
        }

        *draining = json_is_true(v);
        return NGX_DONE;
    }

    if (!(seen & NGX_HTTP_FANOUT_API_LOCATION)
        || (seen & NGX_HTTP_FANOUT_API_DRAINING))
    {
        return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                   "bad_request", "a change is \\\"draining\\\" alone, or "
                   "names a \\\"location\\\"");
    }

    rc = ngx_http_fanout_api_string(ps, json_object_get(doc, "location"),
                                    &ch->location);
    if (rc != NGX_OK) {
        return rc == NGX_ERROR ? NGX_ERROR
               : ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
                     "bad_value", "\\\"location\\\" is a string");
    }

    switch (seen & ~NGX_HTTP_FANOUT_API_LOCATION) {

    case NGX_HTTP_FANOUT_API_WEIGHTS:
        return ngx_http_fanout_api_weights(ps,
                                           json_object_get(doc, "weights"),
                                           ch);

    case NGX_HTTP_FANOUT_API_SHADOW|NGX_HTTP_FANOUT_API_PERCENT:
        return ngx_http_fanout_api_percent(ps,
                                           json_object_get(doc, "shadow"),
                                           json_object_get(doc, "percent"),
                                           ch);

    case NGX_HTTP_FANOUT_API_TARGET|NGX_HTTP_FANOUT_API_BREAKER:
    case NGX_HTTP_FANOUT_API_TARGET|NGX_HTTP_FANOUT_API_ENABLED:
        return ngx_http_fanout_api_target(ps, json_object_get(doc, "target"),
                                          json_object_get(doc, "breaker"),
                                          json_object_get(doc, "enabled"),
                                          ch);

    case NGX_HTTP_FANOUT_API_RAMP:
        return ngx_http_fanout_api_ramp(ps, json_object_get(doc, "ramp"), ch);

    case NGX_HTTP_FANOUT_API_PURGE:
        return ngx_http_fanout_api_purge(ps, json_object_get(doc, "purge"),
                                         ch);
    }

    return ngx_http_fanout_api_refuse(ps, NGX_HTTP_BAD_REQUEST,
               "bad_request", "with \\\"location\\\": \\\"weights\\\", "
               "\\\"shadow\\\" and \\\"percent\\\", \\\"target\\\" and "
               "\\\"breaker\\\" or \\\"enabled\\\", or \\\"ramp\\\": one "
               "change at a time");
}


/* the change, checked whole, then made */

static void
ngx_http_fanout_api_body(ngx_http_request_t *r)
{
    u_char                       *p;
    json_t                       *doc;
    ngx_str_t                     body;
    ngx_int_t                     rc, draining;
    json_error_t                  jerr;
    void                         *pending;
    ngx_pool_cleanup_t           *cln;
    ngx_http_fanout_api_wait_t   *w;
    ngx_http_fanout_api_parse_t   ps;
    ngx_http_fanout_rt_change_t  *ch;
    ngx_http_fanout_main_conf_t  *fmcf;

    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fanout_module);

    if (ngx_http_fanout_body_memory(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ps.request = r;

    if (body.len > NGX_HTTP_FANOUT_API_MAX_BODY) {
        (void) ngx_http_fanout_api_refuse(&ps,
                                          NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                          "too_large",
                                          "a change is at most 64 KB");
        goto refused;
    }

    ch = ngx_pcalloc(r->pool, sizeof(ngx_http_fanout_rt_change_t));
    if (ch == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    doc = json_loadb((const char *) body.data, body.len,
                     JSON_REJECT_DUPLICATES|JSON_DECODE_ANY, &jerr);

    if (doc == NULL) {
        if (json_error_code(&jerr) == json_error_duplicate_key) {
            (void) ngx_http_fanout_api_refuse(&ps, NGX_HTTP_BAD_REQUEST,
                                              "bad_request",
                                              "a field given twice");
        } else {
            (void) ngx_http_fanout_api_refuse(&ps, NGX_HTTP_BAD_REQUEST,
                                              "bad_json",
                                              "the body is not JSON");
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanout_api: body at %d: %s", jerr.position, jerr.text);
        goto refused;
    }

    draining = 0;
    rc = ngx_http_fanout_api_parse(&ps, doc, ch, &draining);
    json_decref(doc);

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (rc == NGX_DECLINED) {
        goto refused;
    }

    if (rc == NGX_DONE) {
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
        (void) ngx_http_fanout_api_refuse(&ps, ch->status, ch->error,
                                          ch->message);

        if (ch->stranded) {
            /* names are letters, digits, '-' and '_': JSON as they are */
            p = ngx_pnalloc(r->pool, ch->name.len + 100);
            if (p == NULL) {
                ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }

            ps.message = (const char *) p;
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
                  "fanout_api: change refused: %s", ps.message);

    ngx_http_finalize_request(r, ngx_http_fanout_send_error(r, ps.status,
                                                            ps.error,
                                                            ps.message));
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
