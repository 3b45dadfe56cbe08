/*
 * make bench-mean: the cost of "fanout_merge mean" over large answers, in
 * the pure core, against the scanner's validation of the same bytes (the
 * peer: what every merge pays).  Three answers of SIZE bytes (default
 * 50 MB) of probabilities; five runs, medians.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fanout_merge.h"


#define RUNS  5


static double
now(void)
{
    struct timespec  t;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);

    return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}


static int
cmp(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


int
main(int argc, char **argv)
{
    int                   r, k;
    char                 *body[3];
    size_t                size, len[3], n;
    double                t0, scan[RUNS], mean[RUNS];
    fanout_out_t          o;
    fanout_span_t         span;
    fanout_part_t         parts[3];
    fanout_merged_t       m;
    fanout_merge_conf_t   c;
    static const char    *names[3] = { "a", "b", "c" };

    size = (argc > 1) ? (size_t) strtoul(argv[1], NULL, 10) : 50 << 20;
    srand(1);

    for (k = 0; k < 3; k++) {
        body[k] = malloc(size + 32);
        len[k] = (size_t) sprintf(body[k], "{\"p\":[");

        for (n = 0; len[k] < size; n++) {
            len[k] += (size_t) sprintf(body[k] + len[k], "%s0.%07d",
                                       n ? "," : "", rand() % 10000000);
        }

        len[k] += (size_t) sprintf(body[k] + len[k], "]}");
    }

    memset(&c, 0, sizeof(c));
    c.mode = FANOUT_MERGE_MEAN;
    c.field = "p";
    c.field_len = 1;
    c.quorum = 1;

    for (r = 0; r < RUNS; r++) {
        t0 = now();

        for (k = 0; k < 3; k++) {
            fanout_json_scan(body[k], len[k], NULL, 0, &span);
        }

        scan[r] = now() - t0;

        t0 = now();

        for (k = 0; k < 3; k++) {
            memset(&parts[k], 0, sizeof(fanout_part_t));
            parts[k].name = names[k];
            parts[k].weight = 1;
            parts[k].status = 200;
            parts[k].body = body[k];
            parts[k].body_len = len[k];
            fanout_part_parse(&parts[k], "p", 1);
        }

        if (fanout_merge_prepare(&c, parts, 3, &m) != 0) {
            return 1;
        }

        o.buf = NULL;
        o.len = 0;
        fanout_merge_write(&c, parts, 3, &m, &o);
        o.buf = malloc(o.len);
        o.len = 0;
        fanout_merge_write(&c, parts, 3, &m, &o);
        free(o.buf);
        fanout_merged_free(&m);

        mean[r] = now() - t0;
    }

    qsort(scan, RUNS, sizeof(double), cmp);
    qsort(mean, RUNS, sizeof(double), cmp);

    printf("3 answers of %zu bytes (%zu numbers each), CPU seconds, "
           "median of %d:\n", len[0], n, RUNS);
    printf("  scan (validation only)  %.3f\n", scan[RUNS / 2]);
    printf("  mean (scan, merge, write) %.3f  = %.1fx the scan, "
           "%.1f ns per input byte\n", mean[RUNS / 2],
           mean[RUNS / 2] / scan[RUNS / 2],
           mean[RUNS / 2] * 1e9 / (double) (len[0] * 3));

    return 0;
}
