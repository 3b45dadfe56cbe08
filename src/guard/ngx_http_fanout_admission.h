/*
 * Admission control for a target (ngx_http_fanout_admission.c): a call
 * over max_inflight= (a number, or a limit learned from the model's
 * latency: auto) waits in the target's queue (queue=) for a slot instead
 * of failing, in the order src/core/fanout_admission.c keeps.
 */

#ifndef _NGX_HTTP_FANOUT_ADMISSION_H_INCLUDED_
#define _NGX_HTTP_FANOUT_ADMISSION_H_INCLUDED_


#include "ngx_http_fanout.h"
#include "fanout_admission.h"


/* a wait is over: a slot (FANOUT_QUEUE_OK, the caller holds it) or not */
typedef void (*ngx_http_fanout_admitted_pt)(void *data,
    fanout_queue_reason_e reason);


/* what a call asks with */
typedef struct {
    ngx_http_fanout_target_t       *target;
    ngx_http_fanout_stats_t        *st;
    ngx_msec_t                      left;       /* until the deadline */
    ngx_uint_t                      priority;   /* lower first */
    uint32_t                        key;        /* fair=: its hash */
    ngx_http_fanout_admitted_pt     handler;
    void                           *data;
} ngx_http_fanout_admission_ask_t;


ngx_int_t ngx_http_fanout_admission_conf(ngx_conf_t *cf,
    ngx_http_fanout_target_t *t);
ngx_int_t ngx_http_fanout_admission_ask(ngx_http_request_t *r,
    ngx_http_fanout_admission_ask_t *ask, void **wait,
    fanout_queue_reason_e *reason);
void ngx_http_fanout_admission_release(ngx_http_fanout_target_t *t,
    ngx_http_fanout_stats_t *st);
void ngx_http_fanout_admission_leave(void *wait);
ngx_uint_t ngx_http_fanout_admission_retry_after(ngx_http_fanout_target_t *t,
    ngx_http_fanout_stats_t *st);
void ngx_http_fanout_admission_sample(ngx_http_fanout_target_t *t,
    ngx_http_fanout_stats_t *st, ngx_msec_t latency, ngx_uint_t status);
ngx_int_t ngx_http_fanout_admission_init_process(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_FANOUT_ADMISSION_H_INCLUDED_ */
