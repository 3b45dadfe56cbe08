/*
 * fanout_cache: the directive (ngx_http_fanout_cache_conf.c).
 */

#ifndef _NGX_HTTP_FANOUT_CACHE_CONF_H_INCLUDED_
#define _NGX_HTTP_FANOUT_CACHE_CONF_H_INCLUDED_


#include "ngx_http_fanout.h"


char *ngx_http_fanout_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* at merge time, once the server block is known: the l1= zone */
ngx_int_t ngx_http_fanout_cache_merge(ngx_conf_t *cf,
    ngx_http_fanout_loc_conf_t *conf);


#endif /* _NGX_HTTP_FANOUT_CACHE_CONF_H_INCLUDED_ */
