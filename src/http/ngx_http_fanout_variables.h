/*
 * The module's variables.
 */

#ifndef _NGX_HTTP_FANOUT_VARIABLES_H_INCLUDED_
#define _NGX_HTTP_FANOUT_VARIABLES_H_INCLUDED_


#include "ngx_http_fanout.h"


ngx_int_t ngx_http_fanout_add_variables(ngx_conf_t *cf);


#endif /* _NGX_HTTP_FANOUT_VARIABLES_H_INCLUDED_ */
