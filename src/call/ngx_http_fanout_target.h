/*
 * fanout_target, the directive (ngx_http_fanout_target.c).
 */

#ifndef _NGX_HTTP_FANOUT_TARGET_H_INCLUDED_
#define _NGX_HTTP_FANOUT_TARGET_H_INCLUDED_


#include "ngx_http_fanout.h"


char *ngx_http_fanout_target(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_HTTP_FANOUT_TARGET_H_INCLUDED_ */
