/*
 * libFuzzer: micro-batching.  The first byte picks the format; the rest
 * is up to three requests and an answer, separated by 0xff bytes.  What
 * can be batched must combine into JSON (the first request's key also
 * the combined request's shape); an answer read for the callers' rows
 * must split into JSON for each of them, and the counting and writing
 * passes must agree.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_microbatch.h"


static int
same_key(const char *a, size_t alen, const fanout_mb_doc_t *da,
    const char *b, size_t blen, const fanout_mb_doc_t *db)
{
    int           same;
    fanout_out_t  ka, kb;

    ka.buf = NULL;
    ka.len = 0;
    fanout_mb_key(a, da, alen, &ka);
    kb.buf = NULL;
    kb.len = 0;
    fanout_mb_key(b, db, blen, &kb);

    if (ka.len != kb.len) {
        return 0;
    }

    ka.buf = malloc(ka.len + 1);
    kb.buf = malloc(kb.len + 1);
    ka.len = 0;
    kb.len = 0;
    fanout_mb_key(a, da, alen, &ka);
    fanout_mb_key(b, db, blen, &kb);

    same = (memcmp(ka.buf, kb.buf, ka.len) == 0);

    free(ka.buf);
    free(kb.buf);

    return same;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                *buf;
    size_t               i, n, start, len, total, first, lens[3];
    unsigned             t;
    uint8_t              ctl;
    const char          *bodies[3], *answer;
    size_t               answer_len;
    fanout_out_t         out;
    fanout_span_t       *items[FANOUT_MB_MAX_TENSORS];
    fanout_mb_doc_t      docs[3], d;
    fanout_mb_format_e   fmt;

    if (size == 0) {
        return 0;
    }

    ctl = data[0];
    data++;
    size--;

    fmt = (fanout_mb_format_e) (ctl & 3);

    n = 0;
    start = 0;
    answer = NULL;
    answer_len = 0;

    for (i = 0; i <= size; i++) {
        if (i < size && data[i] != 0xff) {
            continue;
        }

        if (n < 3) {
            bodies[n] = (const char *) data + start;
            lens[n] = i - start;
            n++;

        } else if (answer == NULL) {
            answer = (const char *) data + start;
            answer_len = i - start;
        }

        start = i + 1;
    }

    /* the requests that can be batched, with the first one's key */
    for (i = 0, total = 0; i < n; i++) {
        if (fanout_mb_request(fmt, bodies[i], lens[i], &docs[i]) != 0) {
            return 0;
        }

        total += docs[i].rows;
    }

    if (n == 0) {
        return 0;
    }

    /* as the glue: only requests of one key share a batch */
    for (i = 1; i < n; i++) {
        if (!same_key(bodies[0], lens[0], &docs[0], bodies[i], lens[i],
                      &docs[i]))
        {
            return 0;
        }
    }

    out.buf = NULL;
    out.len = 0;
    fanout_mb_combine(bodies, lens, docs, n, &out);
    len = out.len;

    buf = malloc(len ? len : 1);
    out.buf = buf;
    out.len = 0;
    fanout_mb_combine(bodies, lens, docs, n, &out);

    if (out.len != len || fanout_json_scan(buf, len, NULL, 0, NULL) != 0) {
        abort();
    }

    /* the combined request reads back with all the rows */
    if (fanout_mb_request(fmt, buf, len, &d) != 0 || d.rows != total) {
        abort();
    }

    free(buf);

    if (answer == NULL
        || fanout_mb_answer(fmt, answer, answer_len, total, &d) != 0)
    {
        return 0;
    }

    for (t = 0; t < d.ntensors; t++) {
        items[t] = malloc(fanout_mb_items_room(&d, t)
                          * sizeof(fanout_span_t));

        /* only keyed rows (openai "index") may be refused here */
        if (fanout_mb_items(&d, t, items[t]) != 0) {
            if (!d.keyed) {
                abort();
            }

            do {
                free(items[t]);
            } while (t-- > 0);

            return 0;
        }
    }

    for (i = 0, first = 0; i < n; first += docs[i].rows, i++) {
        out.buf = NULL;
        out.len = 0;

        if (fanout_mb_slice(fmt, answer, answer_len, &d, items, first,
                            docs[i].rows, docs[i].id.p ? &docs[i].id : NULL,
                            &out)
            != 0)
        {
            abort();
        }

        len = out.len;
        buf = malloc(len ? len : 1);
        out.buf = buf;
        out.len = 0;

        (void) fanout_mb_slice(fmt, answer, answer_len, &d, items, first,
                               docs[i].rows,
                               docs[i].id.p ? &docs[i].id : NULL, &out);

        if (out.len != len
            || fanout_json_scan(buf, len, NULL, 0, NULL) != 0)
        {
            abort();
        }

        free(buf);
    }

    for (t = 0; t < d.ntensors; t++) {
        free(items[t]);
    }

    return 0;
}
