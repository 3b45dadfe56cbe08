/*
 * fanout_redis: the directive.  Its parameters are checked here, once, at
 * configuration: addresses resolved (a Sentinel's too), the TLS context
 * made, the password and database kept for each connection's handshake;
 * what the workers do with them is ngx_http_fanout_redis.c.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_conf.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_redis_conf.h"
#include "ngx_http_fanout_stats.h"

#if (NGX_HTTP_FANOUT_HIREDIS_SSL)
#include <hiredis/hiredis_ssl.h>
#endif


static ngx_int_t ngx_http_fanout_redis_sentinels(ngx_conf_t *cf,
    ngx_http_fanout_redis_conf_t *rcf, ngx_str_t *value);
static ngx_int_t ngx_http_fanout_redis_tls(ngx_conf_t *cf,
    ngx_http_fanout_redis_conf_t *rcf);


/* the parameters after the address, or after sentinel= in its place */

static const ngx_http_fanout_param_t  ngx_http_fanout_redis_params[] = {

    ngx_http_fanout_param("tls", FLAG, ngx_http_fanout_redis_conf_t, tls,
                          0, 1, NULL),
    ngx_http_fanout_param("tls_ca", STRING, ngx_http_fanout_redis_conf_t,
                          tls_ca, 1, 0, NULL),
    ngx_http_fanout_param("tls_cert", STRING, ngx_http_fanout_redis_conf_t,
                          tls_cert, 1, 0, NULL),
    ngx_http_fanout_param("tls_key", STRING, ngx_http_fanout_redis_conf_t,
                          tls_key, 1, 0, NULL),
    ngx_http_fanout_param("tls_server_name", STRING,
                          ngx_http_fanout_redis_conf_t, tls_server_name,
                          1, 0, NULL),
    ngx_http_fanout_param("sentinel_password", STRING,
                          ngx_http_fanout_redis_conf_t, sentinel_password,
                          0, 0, NULL),
    ngx_http_fanout_param("master", STRING, ngx_http_fanout_redis_conf_t,
                          master, 1, 0, NULL),
    ngx_http_fanout_param("db", COUNT, ngx_http_fanout_redis_conf_t, db,
                          0, 1000000, NULL),
    ngx_http_fanout_param("password", STRING, ngx_http_fanout_redis_conf_t,
                          password, 0, 0, NULL),
    /* a Redis 6 ACL user: "AUTH user pass" */
    ngx_http_fanout_param("username", STRING, ngx_http_fanout_redis_conf_t,
                          username, 1, 0, NULL),
    ngx_http_fanout_param("connect_timeout", MSEC,
                          ngx_http_fanout_redis_conf_t, connect_timeout,
                          1, NGX_MAX_INT32_VALUE, NULL),
    ngx_http_fanout_param("timeout", MSEC, ngx_http_fanout_redis_conf_t,
                          timeout, 1, NGX_MAX_INT32_VALUE, NULL),
    ngx_http_fanout_param("pool", COUNT, ngx_http_fanout_redis_conf_t, pool,
                          1, 64, NULL),
    ngx_http_fanout_param_null
};


/* the zone: the client's counters, one node for the instance */

static ngx_int_t
ngx_http_fanout_redis_zone(ngx_http_fanout_main_conf_t *fmcf,
    ngx_slab_pool_t *shpool, ngx_http_fanout_shctx_t *sh)
{
    ngx_str_t  none, name;

    ngx_str_null(&none);
    none.data = (u_char *) "";
    ngx_str_set(&name, "redis");

    fmcf->redis_stats = ngx_http_fanout_stats_node(shpool, sh, &none, &name);

    return fmcf->redis_stats ? NGX_OK : NGX_ERROR;
}


char *
ngx_http_fanout_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_main_conf_t *fmcf = conf;

    ngx_str_t                     *value;
    ngx_url_t                      u;
    ngx_uint_t                     i;
    ngx_http_fanout_redis_conf_t  *rcf;

    if (fmcf->redis) {
        return "is duplicate";
    }

    rcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_redis_conf_t));
    if (rcf == NULL) {
        return NGX_CONF_ERROR;
    }

    rcf->connect_timeout = 100;
    rcf->timeout = 50;
    rcf->pool = 2;

    value = cf->args->elts;

    rcf->address = value[1];
    i = 2;

    if (ngx_strncmp(value[1].data, "sentinel=", 9) == 0) {
        /* no address: the Sentinels name it; parsed with the others */
        i = 1;

    } else if (ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        if (value[1].len < 6) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid Redis address \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        rcf->path.data = value[1].data + 5;
        rcf->path.len = value[1].len - 5;

    } else {
        /* a name is resolved here, once: connecting must not block */
        ngx_memzero(&u, sizeof(ngx_url_t));
        u.url = value[1];
        u.no_resolve = 0;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.no_port
            || u.naddrs == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid Redis address \"%V\"%s%s: use "
                               "\"host:port\" or \"unix:/path\"", &value[1],
                               u.err ? ": " : "", u.err ? u.err : "");
            return NGX_CONF_ERROR;
        }

        rcf->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (rcf->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        /* without a port, ngx_sock_ntop() writes IPv6 without brackets,
         * as hiredis wants it */
        rcf->host.len = ngx_sock_ntop(u.addrs[0].sockaddr,
                                      u.addrs[0].socklen, rcf->host.data,
                                      NGX_SOCKADDR_STRLEN, 0);
        rcf->host.data[rcf->host.len] = '\0';
        rcf->port = u.port;
    }

    if (i == 1) {
        if (ngx_http_fanout_redis_sentinels(cf, rcf, &value[1]) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        i = 2;
    }

    if (ngx_http_fanout_conf_params(cf, i, ngx_http_fanout_redis_params, rcf)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if ((rcf->tls_ca.len || rcf->tls_cert.len || rcf->tls_key.len
         || rcf->tls_server_name.len)
        && !rcf->tls)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tls_ca=\", \"tls_cert=\", \"tls_key=\" and "
                           "\"tls_server_name=\" need \"tls\"");
        return NGX_CONF_ERROR;
    }

    if (rcf->tls
        && ngx_http_fanout_redis_tls(cf, rcf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (rcf->sentinel_password.len && rcf->sentinels == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sentinel_password=\" needs \"sentinel=\"");
        return NGX_CONF_ERROR;
    }

    if ((rcf->sentinels == NULL) != (rcf->master.len == 0)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sentinel=\" and \"master=\" go together, "
                           "and \"sentinel=\" comes first, in place of the "
                           "address");
        return NGX_CONF_ERROR;
    }

    if (rcf->username.len && rcf->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"username=\" needs \"password=\" "
                           "(Redis 6 \"AUTH user pass\")");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_fanout_stats_zone_init(cf, ngx_http_fanout_redis_zone)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    fmcf->redis = rcf;

    return NGX_CONF_OK;
}


/*
 * tls: the context is made here, from files read once, so that a bad file
 * fails nginx -t; workers inherit it.  Without hiredis_ssl (Debian
 * bookworm's hiredis 0.14) "tls" is refused.
 */

#if (NGX_HTTP_FANOUT_HIREDIS_SSL)

static void
ngx_http_fanout_redis_tls_free(void *data)
{
    redisFreeSSLContext(data);
}

#endif


static ngx_int_t
ngx_http_fanout_redis_tls(ngx_conf_t *cf, ngx_http_fanout_redis_conf_t *rcf)
{
#if (NGX_HTTP_FANOUT_HIREDIS_SSL)
    ngx_str_t              f[3];
    ngx_uint_t             i;
    ngx_pool_cleanup_t    *cln;
    redisSSLContext       *ssl;
    redisSSLContextError   err;

    if ((rcf->tls_cert.len == 0) != (rcf->tls_key.len == 0)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tls_cert=\" and \"tls_key=\" go together");
        return NGX_ERROR;
    }

    /* relative to the prefix, as nginx's own certificate paths */
    f[0] = rcf->tls_ca;
    f[1] = rcf->tls_cert;
    f[2] = rcf->tls_key;

    for (i = 0; i < 3; i++) {
        if (f[i].len && ngx_conf_full_name(cf->cycle, &f[i], 1) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    (void) redisInitOpenSSL();

    err = REDIS_SSL_CTX_NONE;
    ssl = redisCreateSSLContext(f[0].len ? (char *) f[0].data : NULL, NULL,
                                f[1].len ? (char *) f[1].data : NULL,
                                f[2].len ? (char *) f[2].data : NULL,
                                rcf->tls_server_name.len
                                ? (char *) rcf->tls_server_name.data : NULL,
                                &err);
    if (ssl == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "fanout_redis tls: %s",
                           redisSSLContextGetError(err));
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        redisFreeSSLContext(ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_fanout_redis_tls_free;
    cln->data = ssl;
    rcf->ssl = ssl;

    return NGX_OK;

#else

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"tls\" needs the module built with hiredis_ssl "
                       "(hiredis 1.x, USE_SSL=1); this build has none "
                       "(Debian bookworm's hiredis 0.14 has no TLS)");
    return NGX_ERROR;

#endif
}


/* "sentinel=HOST:PORT,HOST:PORT": resolved here, once, as the address */

static ngx_int_t
ngx_http_fanout_redis_sentinels(ngx_conf_t *cf,
    ngx_http_fanout_redis_conf_t *rcf, ngx_str_t *value)
{
    u_char                        *p, *end, *comma;
    ngx_url_t                      u;
    ngx_http_fanout_redis_addr_t  *a;

    rcf->sentinels = ngx_array_create(cf->pool, 3,
                                      sizeof(ngx_http_fanout_redis_addr_t));
    if (rcf->sentinels == NULL) {
        return NGX_ERROR;
    }

    p = value->data + 9;
    end = value->data + value->len;

    while (p < end) {
        comma = ngx_strlchr(p, end, ',');

        if (comma == NULL) {
            comma = end;
        }

        ngx_memzero(&u, sizeof(ngx_url_t));
        u.url.data = p;
        u.url.len = comma - p;

        if (u.url.len == 0 || ngx_parse_url(cf->pool, &u) != NGX_OK
            || u.no_port || u.naddrs == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid Sentinel \"%V\" in \"%V\": use "
                               "HOST:PORT, joined by \",\"", &u.url, value);
            return NGX_ERROR;
        }

        a = ngx_array_push(rcf->sentinels);
        if (a == NULL) {
            return NGX_ERROR;
        }

        a->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (a->host.data == NULL) {
            return NGX_ERROR;
        }

        a->host.len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                                    a->host.data, NGX_SOCKADDR_STRLEN, 0);
        a->host.data[a->host.len] = '\0';
        a->port = u.port;

        p = comma + 1;
    }

    if (rcf->sentinels->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" names no Sentinel", value);
        return NGX_ERROR;
    }

    return NGX_OK;
}
