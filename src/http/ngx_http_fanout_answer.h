/*
 * The answer stage: the calls' outcomes merged, or the winner's, sent;
 * fanout_merge and fanout_quorum, the merge it makes.
 */

#ifndef _NGX_HTTP_FANOUT_ANSWER_H_INCLUDED_
#define _NGX_HTTP_FANOUT_ANSWER_H_INCLUDED_


#include "ngx_http_fanout.h"


ngx_int_t ngx_http_fanout_answer_stage(ngx_http_fanout_ctx_t *ctx);
char *ngx_http_fanout_merge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_quorum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_HTTP_FANOUT_ANSWER_H_INCLUDED_ */
