/*
 * Configuration helpers shared by the directives (ngx_http_fanout_conf.c):
 * the table their parameters are read over, names and URIs.
 */

#ifndef _NGX_HTTP_FANOUT_CONF_H_INCLUDED_
#define _NGX_HTTP_FANOUT_CONF_H_INCLUDED_


#include "ngx_http_fanout.h"


/*
 * A directive's "key=value" parameters, read over a table as nginx reads
 * its directives over ngx_command_t: each entry says the key, the kind of
 * its value, where it goes in the directive's struct (offset and size:
 * uint32_t, ngx_uint_t, ngx_msec_t, size_t, time_t or ngx_str_t) and its
 * bounds.  A value out of them fails nginx -t with the file, the line and
 * what a valid value is; a key given twice or unknown too.
 */

typedef enum {
    NGX_HTTP_FANOUT_PARAM_COUNT = 0,    /* an integer, min to max */
    NGX_HTTP_FANOUT_PARAM_FIXED,        /* up to 3 decimals: thousandths */
    NGX_HTTP_FANOUT_PARAM_SHARE,        /* "P%", 2 decimals: hundredths */
    NGX_HTTP_FANOUT_PARAM_HUNDREDTHS,   /* "P", 2 decimals: hundredths */
    NGX_HTTP_FANOUT_PARAM_PERCENT,      /* "P%", a whole percentage */
    NGX_HTTP_FANOUT_PARAM_MSEC,         /* a time, in milliseconds */
    NGX_HTTP_FANOUT_PARAM_SEC,          /* a time, in seconds */
    NGX_HTTP_FANOUT_PARAM_SIZE,         /* a size, in bytes */
    NGX_HTTP_FANOUT_PARAM_WORD,         /* one of post's words: its index */
    NGX_HTTP_FANOUT_PARAM_NAME,         /* ngx_http_fanout_valid_name() */
    NGX_HTTP_FANOUT_PARAM_URI,          /* a local URI, "/..." */
    NGX_HTTP_FANOUT_PARAM_PATH,         /* a dot path into a JSON body */
    NGX_HTTP_FANOUT_PARAM_STRING,       /* as given; min 0: may be empty */
    NGX_HTTP_FANOUT_PARAM_COMPLEX,      /* ngx_http_complex_value_t * */
    NGX_HTTP_FANOUT_PARAM_FLAG,         /* a bare key, no "=": sets 1 */
    NGX_HTTP_FANOUT_PARAM_CUSTOM        /* post: ngx_http_fanout_param_pt */
} ngx_http_fanout_param_kind_e;


/*
 * A CUSTOM value's reader: NGX_CONF_OK; NGX_CONF_ERROR when it logged its
 * own error; else what a valid value is, for the error the parser logs.
 */
typedef char *(*ngx_http_fanout_param_pt)(ngx_conf_t *cf, ngx_str_t *value,
    void *conf);


typedef struct {
    ngx_str_t                      key;
    ngx_http_fanout_param_kind_e   kind;
    size_t                         offset;
    size_t                         size;
    ngx_int_t                      min;
    ngx_int_t                      max;
    const void                    *post;
} ngx_http_fanout_param_t;


#define ngx_http_fanout_param(key, kind, type, field, min, max, post)        \
    { ngx_string(key), NGX_HTTP_FANOUT_PARAM_##kind, offsetof(type, field),   \
      sizeof(((type *) 0)->field), min, max, post }

#define ngx_http_fanout_param_custom(key, handler)                           \
    { ngx_string(key), NGX_HTTP_FANOUT_PARAM_CUSTOM, 0, 0, 0, 0,              \
      (const void *) (handler) }

/* a CUSTOM one that may be given several times (min 1 marks it) */
#define ngx_http_fanout_param_repeat(key, handler)                           \
    { ngx_string(key), NGX_HTTP_FANOUT_PARAM_CUSTOM, 0, 0, 1, 0,              \
      (const void *) (handler) }

#define ngx_http_fanout_param_null                                            \
    { ngx_null_string, 0, 0, 0, 0, 0, NULL }

/* at most this many entries in a table: the keys seen are bits */
#define NGX_HTTP_FANOUT_PARAMS_MAX  64


char *ngx_http_fanout_conf_params(ngx_conf_t *cf, ngx_uint_t first,
    const ngx_http_fanout_param_t *params, void *conf);
ngx_int_t ngx_http_fanout_valid_name(ngx_str_t *name);
void ngx_http_fanout_split_uri(ngx_str_t *value, ngx_str_t *uri,
    ngx_str_t *args);


#endif /* _NGX_HTTP_FANOUT_CONF_H_INCLUDED_ */
