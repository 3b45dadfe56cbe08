/*
 * libFuzzer: admission control (src/core/fanout_admission.c).  The input
 * is a program of queue operations (push, grant, expire, release) and
 * controller samples; after each step the queue's count matches its
 * entries, a grant is the best waiting entry (priority, tag, arrival),
 * nothing waits past a full queue, and the limit stays within its bounds.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_admission.h"


#define SIZE   8
#define SLOTS  12


static void
check(fanout_queue_t *q, fanout_queue_entry_t *e)
{
    uint32_t  i, n;

    n = 0;

    for (i = 0; i < SLOTS; i++) {
        if (e[i].state > FANOUT_QUEUE_SHED) {
            abort();
        }

        n += (e[i].state == FANOUT_QUEUE_WAITING);
    }

    if (n != q->waiting || n > SIZE) {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                     i, j, ev, held[SLOTS];
    size_t                  k;
    uint32_t                l;
    uint64_t                now, to, w;
    fanout_pace_t           pace;
    fanout_queue_t          q;
    fanout_adaptive_t       a;
    fanout_queue_entry_t    e[SLOTS], best;
    fanout_adaptive_conf_t  c;

    if (size < 2) {
        return 0;
    }

    fanout_queue_init(&q, e, SIZE, SLOTS);

    memset(&c, 0, sizeof(c));
    c.min_limit = 1 + data[0] % 8;
    c.max_limit = c.min_limit + data[1] % 64;
    c.window_samples = 1 + data[0] % 5;
    c.window_ms = data[1] % 50;
    c.probe_ms = 1 + data[0];

    if (fanout_adaptive_conf(&c) != 0) {
        abort();
    }

    fanout_adaptive_init(&c, &a);

    for (i = 0; i < SLOTS; i++) {
        held[i] = 0;
    }

    now = 0;
    memset(&pace, 0, sizeof(pace));

    for (k = 2; k + 2 < size; k += 3) {
        now += data[k + 1] % 16;

        switch (data[k] % 5) {

        case 0:
            /* the standing state: only ever within an interval of a
             * busy period's end or of a shed */
            to = 1 + data[k + 2];
            w = fanout_pace_standing(&pace, q.waiting, now, to);

            if (w && (pace.standing_ms == 0 || now >= pace.standing_ms + to)) {
                abort();
            }

            (void) fanout_queue_has_key(&q, e, data[k + 1] % 4,
                                        data[k + 2] % 3);
            i = fanout_queue_push(&q, e, data[k + 1] % 4, data[k + 2] % 3,
                                  k, now, now + data[k + 2],
                                  FANOUT_QUEUE_TIMEOUT, &ev);
            if (i < 0) {
                fanout_pace_shed(&pace, now);
            }

            if (i >= 0) {
                held[i] = 1;
            }

            break;

        case 1:
            best.state = FANOUT_QUEUE_FREE;

            for (j = 0; j < SLOTS; j++) {
                if (e[j].state == FANOUT_QUEUE_WAITING
                    && (best.state == FANOUT_QUEUE_FREE
                        || e[j].priority < best.priority
                        || (e[j].priority == best.priority
                            && (e[j].tag < best.tag
                                || (e[j].tag == best.tag
                                    && e[j].seq < best.seq)))))
                {
                    best = e[j];
                }
            }

            i = fanout_queue_grant(&q, e);

            if (i >= 0) {
                fanout_pace_grant(&pace, now, q.waiting == 0);
                (void) fanout_pace_wait(&pace, q.waiting);
            }

            if ((i < 0) != (best.state == FANOUT_QUEUE_FREE)
                || (i >= 0 && e[i].seq != best.seq))
            {
                abort();
            }

            break;

        case 2:
            (void) fanout_queue_expire(&q, e, now);
            break;

        case 3:
            j = data[k + 1] % SLOTS;

            if (held[j]) {
                fanout_queue_release(&q, e, j);
                held[j] = 0;
            }

            break;

        default:
            (void) fanout_adaptive_sample(&c, &a, now,
                                          (uint64_t) data[k + 1] << (data[k + 2] % 40),
                                          data[k + 2], data[k + 1] & 1);
            l = fanout_adaptive_limit(&c, &a);

            if (l < c.min_limit || l > c.max_limit) {
                abort();
            }
        }

        check(&q, e);
    }

    (void) fanout_queue_retry_after(q.waiting, fanout_adaptive_limit(&c, &a),
                                    now);

    return 0;
}
