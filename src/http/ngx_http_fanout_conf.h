/*
 * Configuration helpers shared by the directives (ngx_http_fanout_conf.c):
 * names, URIs, and parameters' values (times, shares, counts).
 */

#ifndef _NGX_HTTP_FANOUT_CONF_H_INCLUDED_
#define _NGX_HTTP_FANOUT_CONF_H_INCLUDED_


#include "ngx_http_fanout.h"


ngx_int_t ngx_http_fanout_valid_name(ngx_str_t *name);
void ngx_http_fanout_split_uri(ngx_str_t *value, ngx_str_t *uri,
    ngx_str_t *args);
ngx_int_t ngx_http_fanout_conf_time(ngx_conf_t *cf, ngx_str_t *v, size_t skip,
    ngx_uint_t nonzero, ngx_msec_t *ms);
ngx_int_t ngx_http_fanout_conf_share(ngx_conf_t *cf, ngx_str_t *v,
    size_t skip, ngx_uint_t *share);
ngx_int_t ngx_http_fanout_conf_count(ngx_conf_t *cf, ngx_str_t *v,
    size_t skip, ngx_uint_t max, ngx_uint_t *count);


#endif /* _NGX_HTTP_FANOUT_CONF_H_INCLUDED_ */
