/*
 * Concurrent SSE streams, each on a keepalive connection of its own: every
 * connection sends a request, reads the chunked text/event-stream answer
 * to its end, and sends the next, for SECONDS.  Each stream's time to its
 * first event (from the request's send) and every gap between two of its
 * events (as they arrived) are recorded.
 *
 * An event counts when a body line begins with 'd' ("data:"); the
 * chunked framing is followed (sizes, CRLFs, the last chunk), so an
 * answer ends exactly where HTTP says and a stream cut short is an error.
 *
 * With SPREAD (ms), connection i sends its first request SPREAD * i /
 * CONNS after the clock starts rather than at once: streams of equal
 * length then keep their places, spread as independent users' would be,
 * rather than all starting, and all being answered, in one burst.
 *
 * usage: sse-client HOST PORT URI CONNS SECONDS [SPREAD]
 * prints: streams errors events ttfe_p50 ttfe_p99 gap_p50 gap_p99 gap_mean
 *         (milliseconds, microsecond precision)
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


enum { HEAD, SIZE, DATA, DATA_CRLF, LAST };

typedef struct {
    int        fd;
    int        state;
    double     sent;         /* this stream's request */
    double     last;         /* its last event, 0: none yet */
    size_t     chunk;        /* bytes of chunk data left */
    int        line_start;   /* the body's next byte begins a line */
    int        events;
    char       head[4096];
    size_t     head_len;
    char       size[32];
    size_t     size_len;
    int        crlf;         /* of a chunk's end or the last's */
} conn_t;


/* the samples: growing arrays of doubles */
typedef struct {
    double  *v;
    size_t   n, cap;
} samples_t;

static samples_t  ttfe, gaps;
static long       streams, errors, events;
static char      *request;
static size_t     request_len;
static struct sockaddr_in  addr;


static double
now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}


static void
add(samples_t *s, double v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 65536;
        s->v = realloc(s->v, s->cap * sizeof(double));
        if (s->v == NULL) {
            perror("realloc");
            exit(1);
        }
    }

    s->v[s->n++] = v;
}


static int
cmp(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}


static double
quantile(samples_t *s, double q)
{
    if (s->n == 0) {
        return -1;
    }

    return s->v[(size_t) (q * (double) (s->n - 1) + 0.5)];
}


static int
open_conn(conn_t *c, int ep)
{
    int                 one = 1;
    struct epoll_event  ev;

    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0
        || connect(c->fd, (struct sockaddr *) &addr, sizeof(addr)) < 0)
    {
        perror("connect");
        return -1;
    }

    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);

    ev.events = EPOLLIN;
    ev.data.ptr = c;

    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}


static int
send_request(conn_t *c)
{
    /* small enough for the socket buffer: written whole at once */
    if (write(c->fd, request, request_len) != (ssize_t) request_len) {
        return -1;
    }

    c->state = HEAD;
    c->head_len = 0;
    c->size_len = 0;
    c->last = 0;
    c->events = 0;
    c->line_start = 1;
    c->sent = now_ms();

    return 0;
}


static void
event(conn_t *c, double t)
{
    if (c->last == 0) {
        add(&ttfe, t - c->sent);

    } else {
        add(&gaps, t - c->last);
    }

    c->last = t;
    c->events++;
    events++;
}


/* the body's bytes: an event at each line that begins "d" (data:) */
static void
body(conn_t *c, const char *p, size_t n, double t)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (c->line_start && p[i] == 'd') {
            event(c, t);
        }

        c->line_start = (p[i] == '\n');
    }
}


/* 1: the answer ended well, 0: more to come, -1: broken */
static int
feed(conn_t *c, const char *p, size_t n, double t)
{
    size_t  k;
    char   *end;

    while (n) {
        switch (c->state) {

        case HEAD:
            if (c->head_len == sizeof(c->head)) {
                return -1;
            }
            c->head[c->head_len++] = *p++;
            n--;
            if (c->head_len >= 4
                && memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) == 0)
            {
                if (c->head_len < 12 || memcmp(c->head + 9, "200", 3) != 0
                    || memmem(c->head, c->head_len, "chunked", 7) == NULL)
                {
                    return -1;
                }
                c->state = SIZE;
            }
            break;

        case SIZE:
            if (c->size_len == sizeof(c->size) - 1) {
                return -1;
            }
            c->size[c->size_len++] = *p++;
            n--;
            if (c->size_len >= 2 && c->size[c->size_len - 2] == '\r'
                && c->size[c->size_len - 1] == '\n')
            {
                c->size[c->size_len] = '\0';
                c->chunk = strtoul(c->size, &end, 16);
                if (end == c->size) {
                    return -1;
                }
                c->size_len = 0;
                c->crlf = 0;
                c->state = c->chunk ? DATA : LAST;
            }
            break;

        case DATA:
            k = n < c->chunk ? n : c->chunk;
            body(c, p, k, t);
            p += k;
            n -= k;
            c->chunk -= k;
            if (c->chunk == 0) {
                c->state = DATA_CRLF;
            }
            break;

        case DATA_CRLF:
            p++;
            n--;
            if (++c->crlf == 2) {
                c->state = SIZE;
            }
            break;

        case LAST:
            /* no trailers from nginx: the CRLF that ends the body */
            p++;
            n--;
            if (++c->crlf == 2) {
                return n ? -1 : 1;
            }
            break;
        }
    }

    return 0;
}


int
main(int argc, char **argv)
{
    int                 ep, i, k, conns, r, started, wait;
    char                buf[65536];
    double              start, end, t, sum, spread;
    size_t              j;
    ssize_t             n;
    conn_t             *cs, *c;
    struct rlimit       rl;
    struct epoll_event  evs[256];

    if (argc != 6 && argc != 7) {
        fprintf(stderr,
                "usage: sse-client HOST PORT URI CONNS SECONDS [SPREAD]\n");
        return 2;
    }

    conns = atoi(argv[4]);
    spread = (argc == 7) ? atof(argv[6]) : 0;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short) atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &addr.sin_addr);

    request_len = (size_t) asprintf(&request,
        "POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        "Accept: text/event-stream\r\nContent-Length: 31\r\n\r\n"
        "{\"stream\":true,\"max_tokens\":20}", argv[3]);

    ep = epoll_create1(0);
    cs = calloc((size_t) conns, sizeof(conn_t));

    /* every connection up before the clock starts */
    for (i = 0; i < conns; i++) {
        if (open_conn(&cs[i], ep) != 0) {
            return 1;
        }
    }

    start = now_ms();
    end = start + atof(argv[5]) * 1e3;
    started = 0;

    while ((t = now_ms()) < end) {
        /* the first requests that are due; then wait at most until the next */
        while (started < conns && start + spread * started / conns <= t) {
            if (send_request(&cs[started++]) != 0) {
                return 1;
            }
        }

        wait = 100;

        if (started < conns) {
            wait = (int) (start + spread * started / conns - t) + 1;
            wait = wait < 100 ? wait : 100;
        }

        k = epoll_wait(ep, evs, 256, wait);

        for (i = 0; i < k; i++) {
            c = evs[i].data.ptr;
            n = read(c->fd, buf, sizeof(buf));

            if (n < 0 && errno == EAGAIN) {
                continue;
            }

            t = now_ms();
            r = n > 0 ? feed(c, buf, (size_t) n, t) : -1;

            if (r == 0) {
                continue;
            }

            if (r == 1) {
                streams++;

            } else {
                /* broken or closed: counted, and a new connection */
                errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                if (open_conn(c, ep) != 0) {
                    return 1;
                }
            }

            if (t < end && send_request(c) != 0) {
                errors++;
            }
        }
    }

    qsort(ttfe.v, ttfe.n, sizeof(double), cmp);
    qsort(gaps.v, gaps.n, sizeof(double), cmp);

    sum = 0;
    for (j = 0; j < gaps.n; j++) {
        sum += gaps.v[j];
    }

    printf("%ld %ld %ld %.3f %.3f %.3f %.3f %.3f\n", streams, errors, events,
           quantile(&ttfe, 0.5), quantile(&ttfe, 0.99), quantile(&gaps, 0.5),
           quantile(&gaps, 0.99), gaps.n ? sum / (double) gaps.n : -1);

    return 0;
}
