/*
 * libFuzzer: fanout_batch.  The first byte picks the path and the chunk;
 * the rest is the client's body.  Every call's body must be JSON when the
 * client's was, its pieces must add up, and the joined answer over the
 * calls (the bodies as the models' answers, some failed) must be what the
 * counting pass said, and valid JSON.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_batch.h"


#define MAX_ITEMS  64


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                   *buf, *p, *ans;
    size_t                  i, k, n, chunk, ncalls, total, len;
    uint8_t                 ctl;
    fanout_out_t            out;
    fanout_span_t           items[MAX_ITEMS + 1], piece[FANOUT_BATCH_PIECES];
    fanout_part_t          *parts;
    fanout_batch_t          b;
    fanout_merged_t        *merged;
    fanout_merge_conf_t     mc;
    fanout_batch_answer_t   a;
    static const char      *paths[] = { "instances", "a.b", "0", "inputs.0.data" };

    if (size == 0) {
        return 0;
    }

    ctl = data[0];
    data++;
    size--;

    chunk = (ctl >> 2) & 3;

    if (fanout_batch_split((const char *) data, size, paths[ctl & 3],
                           strlen(paths[ctl & 3]), MAX_ITEMS, items, &b)
        != FANOUT_BATCH_OK)
    {
        return 0;
    }

    if (b.nitems == 0 || b.nitems > MAX_ITEMS) {
        abort();
    }

    ncalls = fanout_batch_calls(&b, chunk);
    buf = malloc(size + 3);
    parts = calloc(ncalls * 2, sizeof(fanout_part_t));
    merged = calloc(ncalls, sizeof(fanout_merged_t));

    for (k = 0; k < ncalls; k++) {
        n = fanout_batch_pieces((const char *) data, size, &b, chunk, k,
                                piece, &total);
        p = buf;

        for (i = 0; i < n; i++) {
            memcpy(p, piece[i].p, piece[i].len);
            p += piece[i].len;
        }

        /* an item in the array's place, or [ a slice ]: still JSON */
        if ((size_t) (p - buf) != total
            || fanout_json_scan(buf, total, NULL, 0, NULL) != 0)
        {
            abort();
        }

        /* the call's body as its first target's answer; the second fails */
        parts[2 * k].name = "a";
        parts[2 * k].weight = 1;
        parts[2 * k].status = 200;
        parts[2 * k].body = (const char *) piece[n > 3 ? 2 : 1].p;
        parts[2 * k].body_len = piece[n > 3 ? 2 : 1].len;
        fanout_part_parse(&parts[2 * k], "v", 1);

        parts[2 * k + 1].name = "b";
        parts[2 * k + 1].weight = 1;
        parts[2 * k + 1].kind = (ctl & 0x10) ? FANOUT_TIMEOUT : FANOUT_HTTP_5XX;
        parts[2 * k + 1].status = 500;
    }

    memset(&mc, 0, sizeof(mc));
    mc.mode = (fanout_merge_mode_e) ((ctl >> 5) & 3);
    mc.field = "v";
    mc.field_len = 1;
    mc.quorum = 1;

    memset(&a, 0, sizeof(a));
    a.conf = &mc;
    a.parts = parts;
    a.ncalls = ncalls;
    a.ntargets = 2;
    a.nitems = b.nitems;
    a.chunk = chunk;
    a.merged = merged;

    if (fanout_batch_prepare(&a) == 0) {
        out.buf = NULL;
        out.len = 0;
        fanout_batch_write(&a, &out);

        len = out.len;
        ans = malloc(len ? len : 1);
        out.buf = ans;
        out.len = 0;
        fanout_batch_write(&a, &out);

        if (out.len != len || fanout_json_scan(ans, len, NULL, 0, NULL) != 0) {
            abort();
        }

        free(ans);
        fanout_batch_free(&a);
    }

    free(merged);
    free(parts);
    free(buf);

    return 0;
}
