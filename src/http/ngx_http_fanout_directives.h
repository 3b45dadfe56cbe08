/*
 * The directives without a subsystem of their own: fanout_zone,
 * fanout_target, fanout_merge, fanout_quorum, fanout_status, fanout_retry,
 * fanout_hedge, fanout_batch.
 */

#ifndef _NGX_HTTP_FANOUT_DIRECTIVES_H_INCLUDED_
#define _NGX_HTTP_FANOUT_DIRECTIVES_H_INCLUDED_


#include "ngx_http_fanout.h"


char *ngx_http_fanout_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_target(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_merge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_quorum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_retry(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_hedge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_batch(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_HTTP_FANOUT_DIRECTIVES_H_INCLUDED_ */
