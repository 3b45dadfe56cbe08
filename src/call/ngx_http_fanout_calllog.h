/*
 * fanout_call_log: a line per attempt.
 */

#ifndef _NGX_HTTP_FANOUT_CALLLOG_H_INCLUDED_
#define _NGX_HTTP_FANOUT_CALLLOG_H_INCLUDED_


#include "ngx_http_fanout.h"


char *ngx_http_fanout_call_log(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_fanout_call_log_attempt(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_http_fanout_attempt_t *a,
    const char *outcome);


#endif /* _NGX_HTTP_FANOUT_CALLLOG_H_INCLUDED_ */
