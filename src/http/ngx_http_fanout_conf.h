/*
 * Configuration helpers shared by the directives (ngx_http_fanout_conf.c).
 */

#ifndef _NGX_HTTP_FANOUT_CONF_H_INCLUDED_
#define _NGX_HTTP_FANOUT_CONF_H_INCLUDED_


#include "ngx_http_fanout.h"


ngx_int_t ngx_http_fanout_valid_name(ngx_str_t *name);
void ngx_http_fanout_split_uri(ngx_str_t *value, ngx_str_t *uri,
    ngx_str_t *args);


#endif /* _NGX_HTTP_FANOUT_CONF_H_INCLUDED_ */
