/*
 * An open-loop HTTP/1.1 load generator: requests are due at a fixed rate
 * whatever the answers do, and each is timed from when it was due (a
 * closed-loop tool such as wrk waits for answers and hides the queueing
 * that makes the tail).  Keepalive connections, opened as needed up to a
 * limit; a request due while all of them are busy waits for one, and its
 * wait counts.
 *
 * With "spread" after MAX_CONNS, all MAX_CONNS connections are opened and
 * established before the clock starts, and the requests go round them in
 * turn (idle connections in a FIFO): a fixed rate over that many keepalive
 * clients, as an inference front end sees them.
 *
 * usage: openloop HOST PORT URI BODY_FILE RATE SECONDS [MAX_CONNS [spread]]
 * prints: sent ok errors p50 p90 p99 p999 max conns good refused_p50
 *         refused_p99  (milliseconds; conns: connections open at the end;
 *         good: the 200s answered within OPENLOOP_SLO_MS of when they were
 *         due, from the environment, all 200s without it; refused_*: of
 *         the answers that were not 200)
 *
 * OPENLOOP_BURST=PERIOD:LENGTH:FACTOR (seconds, seconds, times): the
 * first LENGTH of every PERIOD is offered at FACTOR times RATE (the rest
 * at RATE), the due times laid out before the clock starts.
 */

#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


typedef struct {
    int        fd;
    int        busy;
    int        up;           /* connected: writable once */
    double     due;          /* of the request on it */
    char      *out;
    size_t     out_len, out_sent;
    char       in[65536];
    size_t     in_len;
} conn_t;


static struct sockaddr_in  addr;
static char               *request;
static size_t              request_len;

/* the idle connections, oldest first: each is used in turn */
static conn_t            **idle;
static int                 idle_head, idle_n, idle_cap;


static void
idle_push(conn_t *c)
{
    idle[(idle_head + idle_n++) % idle_cap] = c;
}


static conn_t *
idle_pop(void)
{
    conn_t  *c;

    if (idle_n == 0) {
        return NULL;
    }

    c = idle[idle_head];
    idle_head = (idle_head + 1) % idle_cap;
    idle_n--;

    return c;
}


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static int
cmp(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


static int
open_conn(int ep, conn_t *c)
{
    int                 one = 1;
    struct epoll_event  ev;

    c->up = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        return -1;
    }

    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (connect(c->fd, (struct sockaddr *) &addr, sizeof(addr)) < 0
        && errno != EINPROGRESS)
    {
        close(c->fd);
        c->fd = -1;
        return -1;
    }

    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);

    return 0;
}


static void
send_some(conn_t *c)
{
    ssize_t  n;

    while (c->out_sent < c->out_len) {
        n = write(c->fd, c->out + c->out_sent, c->out_len - c->out_sent);
        if (n <= 0) {
            return;
        }

        c->out_sent += (size_t) n;
    }
}


/* 1: a whole answer is in; its status in *status */

static int
answer_in(conn_t *c, int *status)
{
    char    *end, *cl;
    size_t   head, body;

    c->in[c->in_len < sizeof(c->in) ? c->in_len : sizeof(c->in) - 1] = '\0';

    end = strstr(c->in, "\r\n\r\n");
    if (end == NULL) {
        return 0;
    }

    head = (size_t) (end + 4 - c->in);
    cl = strcasestr(c->in, "\r\nContent-Length:");
    body = (cl && cl < end) ? (size_t) strtoul(cl + 17, NULL, 10) : 0;

    if (c->in_len < head + body) {
        return 0;
    }

    *status = atoi(c->in + 9);
    c->in_len = 0;

    return 1;
}


int
main(int argc, char **argv)
{
    int                  ep, i, n, status, nconns, maxconns, spread, up;
    long                 total, sent, ok, errors, done, queued, k, good, kr;
    double               rate, secs, start, t, wait, *lat, *due_q, slo;
    double              *rlat, period, blen_s, factor, at;
    const char          *burst;
    FILE                *f;
    char                 body[1 << 20];
    size_t               blen;
    conn_t              *conns, *c;
    struct epoll_event   evs[256];

    if (argc < 7) {
        fprintf(stderr, "usage: openloop HOST PORT URI BODY_FILE RATE "
                        "SECONDS [MAX_CONNS]\n");
        return 2;
    }

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short) atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &addr.sin_addr);

    f = fopen(argv[4], "rb");
    if (f == NULL) {
        perror(argv[4]);
        return 2;
    }

    blen = fread(body, 1, sizeof(body), f);
    fclose(f);

    request = malloc(blen + 512);
    request_len = (size_t) sprintf(request,
                                   "POST %s HTTP/1.1\r\nHost: bench\r\n"
                                   "Content-Type: application/json\r\n"
                                   "Content-Length: %zu\r\n\r\n",
                                   argv[3], blen);
    memcpy(request + request_len, body, blen);
    request_len += blen;

    rate = atof(argv[5]);
    secs = atof(argv[6]);
    maxconns = argc > 7 ? atoi(argv[7]) : 512;
    spread = argc > 8 && strcmp(argv[8], "spread") == 0;

    period = blen_s = 0;
    factor = 1;
    burst = getenv("OPENLOOP_BURST");

    if (burst && sscanf(burst, "%lf:%lf:%lf", &period, &blen_s, &factor) != 3)
    {
        fprintf(stderr, "openloop: OPENLOOP_BURST=PERIOD:LENGTH:FACTOR\n");
        return 2;
    }

    /* every request's due time, from 0: at most factor * rate * secs */
    total = (long) (rate * secs * (factor > 1 ? factor : 1)) + 1;
    lat = calloc((size_t) total + 1, sizeof(double));
    rlat = calloc((size_t) total + 1, sizeof(double));
    due_q = calloc((size_t) total + 1, sizeof(double));

    for (n = 0, at = 0; at < secs && n < total; n++) {
        due_q[n] = at;
        /* where in its period: at - period * whole periods (no libm) */
        at += (period > 0 && at - period * (double) (long) (at / period)
                             < blen_s)
              ? 1 / (rate * factor) : 1 / rate;
    }

    total = n;
    conns = calloc((size_t) maxconns, sizeof(conn_t));

    idle_cap = maxconns;
    idle = calloc((size_t) maxconns, sizeof(conn_t *));

    ep = epoll_create1(0);
    nconns = 0;
    sent = ok = errors = done = queued = good = kr = 0;
    slo = getenv("OPENLOOP_SLO_MS") ? atof(getenv("OPENLOOP_SLO_MS")) : 0;
    k = 0;

    if (spread) {
        /* every connection up before the first request is due, opened 256
         * at a time (a listen backlog drops a larger burst of SYNs) */
        up = 0;
        start = now();

        for (nconns = 0; nconns < maxconns; /* void */) {
            int  batch = nconns + 256 < maxconns ? nconns + 256 : maxconns;

            for (i = nconns; i < batch; i++) {
                if (open_conn(ep, &conns[i]) != 0) {
                    fprintf(stderr, "openloop: connection %d: %s\n", i,
                            strerror(errno));
                    return 1;
                }
            }

            nconns = batch;

            while (up < nconns && now() - start < 60) {
                n = epoll_wait(ep, evs, 256, 100);

                for (i = 0; i < n; i++) {
                    int        err = 0;
                    socklen_t  elen = sizeof(err);

                    c = evs[i].data.ptr;

                    if (!(evs[i].events & EPOLLOUT) || c->up) {
                        continue;
                    }

                    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);

                    if (err) {
                        fprintf(stderr, "openloop: connect: %s\n",
                                strerror(err));
                        return 1;
                    }

                    c->up = 1;
                    up++;
                    idle_push(c);
                }
            }
        }

        if (up < maxconns) {
            fprintf(stderr, "openloop: %d of %d connections up\n", up,
                    maxconns);
            return 1;
        }
    }

    start = now() + 0.01;

    for (n = 0; n < total; n++) {
        due_q[n] += start;
    }

    while (done < total) {
        t = now();

        /* requests falling due join the queue */
        while (queued < total && due_q[queued] <= t) {
            queued++;
        }

        /* each queued one on an idle connection, or a new one */
        while (sent < queued) {
            c = idle_pop();

            if (c && c->fd < 0 && open_conn(ep, c) != 0) {
                /* lost, and cannot be opened again */
                c->fd = -1;
                continue;
            }

            if (c == NULL && nconns < maxconns) {
                c = &conns[nconns];
                if (open_conn(ep, c) != 0) {
                    errors++;
                    done++;
                    sent++;
                    continue;
                }

                nconns++;
            }

            if (c == NULL) {
                break;
            }

            c->busy = 1;
            c->due = due_q[sent++];
            c->out = request;
            c->out_len = request_len;
            c->out_sent = 0;
            c->in_len = 0;
            send_some(c);
        }

        wait = (queued < total) ? due_q[queued] - now() : 0.05;
        if (wait < 0) {
            wait = 0;
        }

        n = epoll_wait(ep, evs, 256, (int) (wait * 1000));

        for (i = 0; i < n; i++) {
            c = evs[i].data.ptr;

            if (evs[i].events & EPOLLOUT && c->busy) {
                send_some(c);
            }

            if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                continue;
            }

            for ( ;; ) {
                ssize_t  r;

                r = read(c->fd, c->in + c->in_len,
                         sizeof(c->in) - 1 - c->in_len);

                if (r > 0) {
                    c->in_len += (size_t) r;

                    if (c->busy && answer_in(c, &status)) {
                        lat[k] = (now() - c->due) * 1000;
                        if (status == 200) {
                            ok++;
                            good += (slo <= 0 || lat[k] <= slo);
                        } else {
                            errors++;
                            rlat[kr++] = lat[k];
                        }

                        k++;
                        c->busy = 0;
                        done++;
                        idle_push(c);
                    }

                    continue;
                }

                if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                    /* closed: a request on it is lost */
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);

                    /* reopened now (an idle one is in the FIFO already) */
                    if (open_conn(ep, c) != 0) {
                        c->fd = -1;
                    }

                    if (c->busy) {
                        errors++;
                        done++;
                        c->busy = 0;
                        idle_push(c);
                    }
                }

                break;
            }
        }
    }

    qsort(lat, (size_t) k, sizeof(double), cmp);
    qsort(rlat, (size_t) kr, sizeof(double), cmp);

#define Q(q) (k ? lat[(long) ((q) * (k - 1) + 0.5)] : 0)

    for (i = 0, up = 0; i < nconns; i++) {
        up += (conns[i].fd >= 0);
    }

#define RQ(q) (kr ? rlat[(long) ((q) * (kr - 1) + 0.5)] : 0)

    printf("%ld %ld %ld %.3f %.3f %.3f %.3f %.3f %d %ld %.3f %.3f\n", sent, ok,
           errors, Q(0.5), Q(0.9), Q(0.99), Q(0.999), k ? lat[k - 1] : 0, up,
           good, RQ(0.5), RQ(0.99));

    return 0;
}
