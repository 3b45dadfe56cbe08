/*
 * Background tasks: every worker has the timer, and at each tick the first
 * worker of the instance to find the period over since the zone's
 * timestamp takes it, under the zone's lock, and runs the task; the others
 * go back to sleep.  So the work is done once per period per instance,
 * whichever workers live, and a quitting worker hands it on by stopping.
 * A leaf: it calls nothing of the module's.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_task.h"


static void
ngx_http_fanout_task_tick(ngx_event_t *ev)
{
    ngx_http_fanout_task_t *task = ev->data;

    ngx_uint_t  go;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(ev, task->period);

    if (task->busy && task->busy(task)) {
        return;
    }

    ngx_shmtx_lock(&task->shpool->mutex);

    /* a fifth early: the workers' timers drift apart */
    go = (ngx_current_msec - *task->last >= task->period - task->period / 5);

    if (go) {
        *task->last = ngx_current_msec;
    }

    ngx_shmtx_unlock(&task->shpool->mutex);

    if (go) {
        task->run(task);
    }
}


void
ngx_http_fanout_task_start(ngx_http_fanout_task_t *task, ngx_log_t *log,
    ngx_msec_t first)
{
    task->ev.handler = ngx_http_fanout_task_tick;
    task->ev.data = task;
    task->ev.log = log;
    task->ev.cancelable = 1;

    ngx_add_timer(&task->ev, first);
}
