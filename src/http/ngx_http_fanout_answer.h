/*
 * The answer stage: the calls' outcomes merged, or the winner's, sent.
 */

#ifndef _NGX_HTTP_FANOUT_ANSWER_H_INCLUDED_
#define _NGX_HTTP_FANOUT_ANSWER_H_INCLUDED_


#include "ngx_http_fanout.h"


ngx_int_t ngx_http_fanout_answer_stage(ngx_http_fanout_ctx_t *ctx);


#endif /* _NGX_HTTP_FANOUT_ANSWER_H_INCLUDED_ */
