
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

#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_stats.h"
#include "fanout_json.h"


#define NGX_HTTP_FANOUT_API_READ   1
#define NGX_HTTP_FANOUT_API_WRITE  2

/* a change is a few fields: more is not a change */
#define NGX_HTTP_FANOUT_API_MAX_BODY  65536
#define NGX_HTTP_FANOUT_API_MAX_KEYS  16


static void ngx_http_fanout_api_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_fanout_api_state(ngx_http_request_t *r);


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

        return ngx_http_fanout_api_state(r);
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


/* the change, checked whole, then made */

static void
ngx_http_fanout_api_body(ngx_http_request_t *r)
{
    long                          n, i;
    ngx_str_t                     body;
    ngx_int_t                     rc, draining;
    const char                   *error, *message;
    fanout_span_t                 keys[NGX_HTTP_FANOUT_API_MAX_KEYS],
                                  values[NGX_HTTP_FANOUT_API_MAX_KEYS];
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

    for (i = 0; i < n; i++) {
        if (keys[i].len == sizeof("\"draining\"") - 1
            && ngx_strncmp(keys[i].p, "\"draining\"", keys[i].len) == 0)
        {
            if (draining != -1) {
                error = "bad_request";
                message = "\\\"draining\\\" twice";
                goto refused;
            }

            if (values[i].len == 4 && ngx_strncmp(values[i].p, "true", 4) == 0)
            {
                draining = 1;

            } else if (values[i].len == 5
                       && ngx_strncmp(values[i].p, "false", 5) == 0)
            {
                draining = 0;

            } else {
                error = "bad_value";
                message = "\\\"draining\\\" is true or false";
                goto refused;
            }

            continue;
        }

        error = "unknown_field";
        message = "the known field is \\\"draining\\\"";
        goto refused;
    }

    /* checked: now the change */

    if ((ngx_int_t) fmcf->sh->drain != draining) {
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "fanout_api: draining %s -> %s (version %uA)",
                      fmcf->sh->drain ? "true" : "false",
                      draining ? "true" : "false",
                      fmcf->sh->api_version + 1);

        fmcf->sh->drain = draining;
        (void) ngx_atomic_fetch_add(&fmcf->sh->api_version, 1);
    }

    ngx_http_finalize_request(r, ngx_http_fanout_api_state(r));
    return;

refused:

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "fanout_api: change refused: %s", message);

    ngx_http_finalize_request(r, ngx_http_fanout_send_error(r, rc, error,
                                                            message));
}


static ngx_int_t
ngx_http_fanout_api_state(ngx_http_request_t *r)
{
    u_char                       *body, *p;
    ngx_msec_int_t                left;
    ngx_http_fanout_shctx_t      *sh;
    ngx_http_fanout_main_conf_t  *fmcf;

    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fanout_module);
    sh = fmcf->sh;

    body = ngx_pnalloc(r->pool, 256 + 6 * fmcf->instance.len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    left = sh->quit_drain_until
           ? (ngx_msec_int_t) (sh->quit_drain_until - ngx_current_msec) : 0;

    p = ngx_sprintf(body, "{\"version\":%uA,\"instance\":\"",
                    sh->api_version);
    p = ngx_http_fanout_escape_json(p, &fmcf->instance);
    p = ngx_sprintf(p, "\",\"draining\":%s,\"drain\":{\"api\":%s,"
                    "\"on_quit_ms\":%M,\"quit_left_ms\":%M}}\n",
                    ngx_http_fanout_draining(fmcf) ? "true" : "false",
                    sh->drain ? "true" : "false", fmcf->drain_on_quit,
                    (ngx_msec_t) (left > 0 ? left : 0));

    return ngx_http_fanout_send_json(r, NGX_HTTP_OK, body, p - body);
}
