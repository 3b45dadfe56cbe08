/*
 * The fan-out's own directives: fanout_target, fanout_merge,
 * fanout_quorum (ngx_http_fanout_directives.c).
 */

#ifndef _NGX_HTTP_FANOUT_DIRECTIVES_H_INCLUDED_
#define _NGX_HTTP_FANOUT_DIRECTIVES_H_INCLUDED_


#include "ngx_http_fanout.h"


char *ngx_http_fanout_target(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_merge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_quorum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_HTTP_FANOUT_DIRECTIVES_H_INCLUDED_ */
