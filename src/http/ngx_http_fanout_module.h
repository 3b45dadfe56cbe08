/*
 * The module: its directives, its configuration's life, its workers' start
 * and end (ngx_http_fanout_module.c).
 */

#ifndef _NGX_HTTP_FANOUT_MODULE_H_INCLUDED_
#define _NGX_HTTP_FANOUT_MODULE_H_INCLUDED_


#include "ngx_http_fanout.h"


extern ngx_module_t  ngx_http_fanout_module;


#endif /* _NGX_HTTP_FANOUT_MODULE_H_INCLUDED_ */
