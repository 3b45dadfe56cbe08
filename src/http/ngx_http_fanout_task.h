/*
 * Background tasks: work one worker per instance does every period (the
 * breakers' sync, the heartbeat, the runtime poll), on a timer in every
 * worker and a timestamp in the zone that elects who runs it
 * (ngx_http_fanout_task.c).
 */

#ifndef _NGX_HTTP_FANOUT_TASK_H_INCLUDED_
#define _NGX_HTTP_FANOUT_TASK_H_INCLUDED_


#include "ngx_http_fanout.h"


typedef struct ngx_http_fanout_task_s  ngx_http_fanout_task_t;

struct ngx_http_fanout_task_s {
    ngx_event_t                 ev;
    ngx_msec_t                  period;
    ngx_msec_t                 *last;      /* in the zone: its last run, by
                                              any worker of the instance */
    ngx_slab_pool_t            *shpool;    /* the zone's, for its lock */
    void                      (*run)(ngx_http_fanout_task_t *task);
    ngx_uint_t                (*busy)(ngx_http_fanout_task_t *task);
                                           /* its last run still waits
                                              (Redis is slow): skip; or
                                              NULL */
    void                       *data;
};


/* first: ms to the first try, staggered by the caller */
void ngx_http_fanout_task_start(ngx_http_fanout_task_t *task, ngx_log_t *log,
    ngx_msec_t first);


#endif /* _NGX_HTTP_FANOUT_TASK_H_INCLUDED_ */
