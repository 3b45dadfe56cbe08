/*
 * libFuzzer: the merges.  The input is up to four answers separated by
 * 0xff bytes; the first byte picks the mode, the quorum, a mean's
 * precision (fp64 or fp32) and the statuses.  The answer
 * written must be what the counting pass said, and valid JSON.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_json.h"
#include "fanout_merge.h"
#include "fanout_number.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t               i, n, start, len;
    uint8_t              ctl;
    fanout_out_t         out;
    fanout_part_t        parts[4];
    fanout_merged_t      m;
    fanout_merge_conf_t  mc;
    static const char   *names[] = { "a", "b", "c", "d" };

    if (size == 0) {
        return 0;
    }

    ctl = data[0];
    data++;
    size--;

    memset(&mc, 0, sizeof(mc));
    mc.mode = (fanout_merge_mode_e) (ctl & 3);
    mc.field = (mc.mode >= FANOUT_MERGE_MEAN) ? "p" : NULL;
    mc.field_len = mc.field ? 1 : 0;
    mc.quorum = 1 + ((ctl >> 2) & 1);
    mc.precision = (ctl & 8) ? FANOUT_PRECISION_FP32 : FANOUT_PRECISION_FP64;

    n = 0;
    start = 0;

    for (i = 0; i <= size && n < 4; i++) {
        if (i < size && data[i] != 0xff) {
            continue;
        }

        memset(&parts[n], 0, sizeof(fanout_part_t));
        parts[n].name = names[n];
        parts[n].weight = 1.0 + n;
        parts[n].status = (ctl & (0x10 << n)) ? 500 : 200;
        parts[n].body = (const char *) data + start;
        parts[n].body_len = i - start;
        fanout_part_parse(&parts[n], mc.field, mc.field_len);
        n++;
        start = i + 1;
    }

    if (fanout_merge_prepare(&mc, parts, n, &m) != 0) {
        return 0;
    }

    out.buf = NULL;
    out.len = 0;
    fanout_merge_write(&mc, parts, n, &m, &out);

    len = out.len;
    out.buf = malloc(len ? len : 1);
    out.len = 0;
    fanout_merge_write(&mc, parts, n, &m, &out);

    if (out.len != len || fanout_json_scan(out.buf, len, NULL, 0, NULL) != 0) {
        abort();
    }

    free(out.buf);

    if (mc.field) {
        /* format=v2 of the same merge: JSON too, and sized alike */
        mc.v2 = 1;
        mc.model = "m";
        mc.model_len = 1;
        mc.output = "p";
        mc.output_len = 1;
        mc.id = (ctl & 0x80) ? "\"id\"" : NULL;
        mc.id_len = mc.id ? 4 : 0;

        out.buf = NULL;
        out.len = 0;
        fanout_merge_write_v2(&mc, parts, n, &m, &out);

        len = out.len;
        out.buf = malloc(len ? len : 1);
        out.len = 0;
        fanout_merge_write_v2(&mc, parts, n, &m, &out);

        if (out.len != len
            || fanout_json_scan(out.buf, len, NULL, 0, NULL) != 0)
        {
            abort();
        }

        free(out.buf);
    }
    fanout_merged_free(&m);

    return 0;
}
