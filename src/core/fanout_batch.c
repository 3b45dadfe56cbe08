/*
 * fanout_batch: the client's batch split into calls, and their answers
 * joined in the items' order.
 */

#include <stdlib.h>
#include <string.h>

#include "fanout_batch.h"
#include "fanout_number.h"


fanout_batch_rc_e
fanout_batch_split(const char *body, size_t len, const char *path,
    size_t path_len, size_t max, fanout_span_t *items, fanout_batch_t *b)
{
    long      n;
    unsigned  matches;

    memset(b, 0, sizeof(fanout_batch_t));
    b->items = items;

    if (fanout_json_find(body, len, path, path_len, &b->array, &matches)
        != 0)
    {
        return FANOUT_BATCH_NOT_JSON;
    }

    if (matches > 1) {
        /* which array is the batch depends on the parser: none is */
        return FANOUT_BATCH_AMBIGUOUS;
    }

    if (b->array.p == NULL) {
        return FANOUT_BATCH_NO_FIELD;
    }

    n = fanout_json_array(b->array.p, b->array.len, items, max);

    if (n < 0) {
        return FANOUT_BATCH_NOT_ARRAY;
    }

    if (n == 0) {
        return FANOUT_BATCH_EMPTY;
    }

    if ((size_t) n > max) {
        return FANOUT_BATCH_TOO_MANY;
    }

    b->nitems = (size_t) n;

    return FANOUT_BATCH_OK;
}


const char *
fanout_batch_error(fanout_batch_rc_e rc)
{
    switch (rc) {
    case FANOUT_BATCH_OK:
        return "";
    case FANOUT_BATCH_NOT_JSON:
        return "the body is not valid JSON";
    case FANOUT_BATCH_NO_FIELD:
        return "the body has no batch at the fanout_batch field";
    case FANOUT_BATCH_NOT_ARRAY:
        return "the fanout_batch field is not an array";
    case FANOUT_BATCH_AMBIGUOUS:
        return "the fanout_batch field is in the body more than once";
    case FANOUT_BATCH_EMPTY:
        return "the batch is empty";
    case FANOUT_BATCH_TOO_MANY:
        return "the batch has more items than max_items";
    }

    return "bad batch";
}


size_t
fanout_batch_calls(const fanout_batch_t *b, size_t chunk)
{
    return chunk ? (b->nitems + chunk - 1) / chunk : b->nitems;
}


size_t
fanout_batch_pieces(const char *body, size_t len, const fanout_batch_t *b,
    size_t chunk, size_t k, fanout_span_t *piece, size_t *total)
{
    size_t               n, first, last;
    const char          *after;
    static const char    open[] = "[", close[] = "]";

    n = 0;
    after = b->array.p + b->array.len;

    piece[n].p = body;
    piece[n++].len = (size_t) (b->array.p - body);

    if (chunk == 0) {
        piece[n++] = b->items[k];

    } else {
        first = k * chunk;
        last = first + chunk - 1;

        if (last >= b->nitems) {
            last = b->nitems - 1;
        }

        /* the items as they were written, the commas between them too */
        piece[n].p = open;
        piece[n++].len = 1;
        piece[n].p = b->items[first].p;
        piece[n++].len = (size_t) (b->items[last].p + b->items[last].len
                                   - b->items[first].p);
        piece[n].p = close;
        piece[n++].len = 1;
    }

    piece[n].p = after;
    piece[n++].len = (size_t) (body + len - after);

    *total = 0;

    for (k = 0; k < n; k++) {
        *total += piece[k].len;
    }

    return n;
}


/* "first": the call's first good answer, in the order of its targets */

static const fanout_part_t *
fanout_batch_first(const fanout_part_t *parts, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (parts[i].kind == FANOUT_OK && parts[i].body) {
            return &parts[i];
        }
    }

    return NULL;
}


int
fanout_batch_prepare(fanout_batch_answer_t *a)
{
    size_t          k, i, timeouts;
    fanout_part_t  *parts;

    a->ok = 0;
    a->cached = 0;
    timeouts = 0;

    memset(a->merged, 0, a->ncalls * sizeof(fanout_merged_t));

    for (k = 0; k < a->ncalls; k++) {
        parts = a->parts + k * a->ntargets;

        if (a->conf->mode == FANOUT_MERGE_FIRST) {
            /* the losers were cut off: only a winner counts */
            a->merged[k].status = fanout_batch_first(parts, a->ntargets)
                                  ? 200
                                  : fanout_merge_status(parts, a->ntargets,
                                                        (unsigned) -1);

        } else if (fanout_merge_prepare(a->conf, parts, a->ntargets,
                                        &a->merged[k])
                   != 0)
        {
            fanout_batch_free(a);
            return -1;
        }

        if (a->merged[k].status == 200) {
            a->ok++;

        } else if (a->merged[k].status == 504) {
            timeouts++;
        }

        for (i = 0; i < a->ntargets && parts[i].cached; i++) {
            /* void */
        }

        if (i == a->ntargets) {
            a->cached++;
        }
    }

    a->status = a->ok ? 200
                      : (timeouts == a->ncalls) ? 504 : 502;

    return 0;
}


static void
fanout_batch_call(const fanout_batch_answer_t *a, size_t k, fanout_out_t *o)
{
    const fanout_part_t  *parts, *winner;

    parts = a->parts + k * a->ntargets;

    if (a->conf->mode == FANOUT_MERGE_FIRST
        && (winner = fanout_batch_first(parts, a->ntargets)) != NULL)
    {
        /* as the winner answered it, as an unbatched request gets it */
        fanout_out_raw(o, winner->body, winner->body_len);
        return;
    }

    if (a->conf->v2) {
        fanout_merge_write_v2(a->conf, parts, a->ntargets, &a->merged[k], o);
        return;
    }

    fanout_merge_write(a->conf, parts, a->ntargets, &a->merged[k], o);
}


void
fanout_batch_write(const fanout_batch_answer_t *a, fanout_out_t *o)
{
    size_t  k, n;

    fanout_out_cstr(o, "{\"items\":[");

    for (k = 0; k < a->ncalls; k++) {
        if (k) {
            fanout_out_raw(o, ",", 1);
        }

        if (a->merged[k].status == 200) {
            fanout_batch_call(a, k, o);

        } else {
            fanout_out_cstr(o, "null");
        }
    }

    fanout_out_cstr(o, "],\"errors\":{");

    for (k = 0, n = 0; k < a->ncalls; k++) {
        if (a->merged[k].status == 200) {
            continue;
        }

        fanout_out_cstr(o, n++ ? ",\"" : "\"");
        fanout_out_uint(o, k);
        fanout_out_cstr(o, "\":");
        fanout_batch_call(a, k, o);
    }

    fanout_out_cstr(o, "},\"meta\":{\"items\":");
    fanout_out_uint(o, a->nitems);

    if (a->chunk) {
        fanout_out_cstr(o, ",\"chunk\":");
        fanout_out_uint(o, a->chunk);
        fanout_out_cstr(o, ",\"chunks\":");
        fanout_out_uint(o, a->ncalls);
    }

    fanout_out_cstr(o, ",\"ok\":");
    fanout_out_uint(o, a->ok);
    fanout_out_cstr(o, ",\"failed\":");
    fanout_out_uint(o, a->ncalls - a->ok);
    fanout_out_cstr(o, ",\"targets\":");
    fanout_out_uint(o, a->ntargets);

    if (a->conf->cache_meta) {
        fanout_out_cstr(o, ",\"cached\":");
        fanout_out_uint(o, a->cached);
    }

    fanout_out_raw(o, "}}", 2);
}


void
fanout_batch_free(fanout_batch_answer_t *a)
{
    size_t  k;

    for (k = 0; k < a->ncalls; k++) {
        fanout_merged_free(&a->merged[k]);
    }
}
