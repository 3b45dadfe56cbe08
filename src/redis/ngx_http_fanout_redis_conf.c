/*
 * fanout_redis: the directive.  Its parameters are checked here, once, at
 * configuration: addresses resolved (a Sentinel's too), the TLS context
 * made, the password and database kept for each connection's handshake;
 * what the workers do with them is ngx_http_fanout_redis.c.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_redis_conf.h"

#if (NGX_HTTP_FANOUT_HIREDIS_SSL)
#include <hiredis/hiredis_ssl.h>
#endif


static ngx_int_t ngx_http_fanout_redis_sentinels(ngx_conf_t *cf,
    ngx_http_fanout_redis_conf_t *rcf, ngx_str_t *value);
static ngx_int_t ngx_http_fanout_redis_tls(ngx_conf_t *cf,
    ngx_http_fanout_redis_conf_t *rcf, u_char *ca, u_char *cert, u_char *key,
    u_char *name);


char *
ngx_http_fanout_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_main_conf_t *fmcf = conf;

    u_char                        *tls_ca, *tls_cert, *tls_key, *tls_name;
    ngx_int_t                      n;
    ngx_str_t                     *value, s;
    ngx_url_t                      u;
    ngx_uint_t                     i;
    ngx_http_fanout_redis_conf_t  *rcf;

    if (fmcf->redis) {
        return "is duplicate";
    }

    tls_ca = NULL;
    tls_cert = NULL;
    tls_key = NULL;
    tls_name = NULL;

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

    for ( /* void */ ; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "sentinel=", 9) == 0 && i == 1) {
            if (ngx_http_fanout_redis_sentinels(cf, rcf, &value[i])
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "tls") == 0) {
            rcf->tls = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "tls_ca=", 7) == 0) {
            tls_ca = value[i].data + 7;
            continue;
        }

        if (ngx_strncmp(value[i].data, "tls_cert=", 9) == 0) {
            tls_cert = value[i].data + 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "tls_key=", 8) == 0) {
            tls_key = value[i].data + 8;
            continue;
        }

        if (ngx_strncmp(value[i].data, "tls_server_name=", 16) == 0) {
            tls_name = value[i].data + 16;
            continue;
        }

        if (ngx_strncmp(value[i].data, "sentinel_password=", 18) == 0) {
            rcf->sentinel_password.data = value[i].data + 18;
            rcf->sentinel_password.len = value[i].len - 18;
            continue;
        }

        if (ngx_strncmp(value[i].data, "master=", 7) == 0) {
            rcf->master.data = value[i].data + 7;
            rcf->master.len = value[i].len - 7;

            if (rcf->master.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR || n > 1000000) {
                goto invalid;
            }

            rcf->db = (ngx_uint_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            rcf->password.data = value[i].data + 9;
            rcf->password.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "username=", 9) == 0) {
            /* a Redis 6 ACL user: "AUTH user pass" */
            rcf->username.data = value[i].data + 9;
            rcf->username.len = value[i].len - 9;

            if (rcf->username.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            s.data = value[i].data + 16;
            s.len = value[i].len - 16;
            rcf->connect_timeout = ngx_parse_time(&s, 0);

            if (rcf->connect_timeout == (ngx_msec_t) NGX_ERROR
                || rcf->connect_timeout == 0)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;
            rcf->timeout = ngx_parse_time(&s, 0);

            if (rcf->timeout == (ngx_msec_t) NGX_ERROR || rcf->timeout == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "pool=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);
            if (n == NGX_ERROR || n < 1 || n > 64) {
                goto invalid;
            }

            rcf->pool = (ngx_uint_t) n;
            continue;
        }

        goto invalid;
    }

    if ((tls_ca || tls_cert || tls_key || tls_name) && !rcf->tls) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tls_ca=\", \"tls_cert=\", \"tls_key=\" and "
                           "\"tls_server_name=\" need \"tls\"");
        return NGX_CONF_ERROR;
    }

    if (rcf->tls
        && ngx_http_fanout_redis_tls(cf, rcf, tls_ca, tls_cert, tls_key,
                                     tls_name)
           != NGX_OK)
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

    fmcf->redis = rcf;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
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
ngx_http_fanout_redis_tls(ngx_conf_t *cf, ngx_http_fanout_redis_conf_t *rcf,
    u_char *ca, u_char *cert, u_char *key, u_char *name)
{
#if (NGX_HTTP_FANOUT_HIREDIS_SSL)
    ngx_str_t              f[3];
    ngx_uint_t             i;
    ngx_pool_cleanup_t    *cln;
    redisSSLContext       *ssl;
    redisSSLContextError   err;

    if ((cert == NULL) != (key == NULL)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tls_cert=\" and \"tls_key=\" go together");
        return NGX_ERROR;
    }

    /* relative to the prefix, as nginx's own certificate paths */
    ngx_str_null(&f[0]);
    ngx_str_null(&f[1]);
    ngx_str_null(&f[2]);

    if (ca) {
        f[0].data = ca;
        f[0].len = ngx_strlen(ca);
    }

    if (cert) {
        f[1].data = cert;
        f[1].len = ngx_strlen(cert);
        f[2].data = key;
        f[2].len = ngx_strlen(key);
    }

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
                                (char *) name, &err);
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
