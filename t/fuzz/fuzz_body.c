/*
 * libFuzzer: set=PATH:JSON on a client's body.  The first byte picks which
 * of a fixed list of sets apply, the rest is the body.  Counting and
 * writing agree; what is written is one valid JSON object, with each set's
 * value at its path when the body had no duplicate key.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_json.h"
#include "fanout_body.h"


static const fanout_body_set_t  sets[] = {
    { "model", 5, "\"m\"", 3 },
    { "parameters.temperature", 22, "0.5", 3 },
    { "parameters.top_p", 16, "[1,{\"a\":2}]", 11 },
    { "a.b.c", 5, "{}", 2 },
    { "x", 1, "null", 4 },
    { "input", 5, "\"\\u00e9\"", 8 },
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                rc1, rc2;
    char              *buf;
    size_t             i, n;
    fanout_out_t       count, o;
    fanout_span_t      found;
    fanout_body_set_t  use[sizeof(sets) / sizeof(sets[0])];

    if (size == 0) {
        return 0;
    }

    n = 0;

    for (i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        if (data[0] & (1u << i)) {
            use[n++] = sets[i];
        }
    }

    count.buf = NULL;
    count.len = 0;
    rc1 = fanout_body_apply((const char *) data + 1, size - 1, use, n,
                            &count);

    buf = malloc(count.len + 1);
    o.buf = buf;
    o.len = 0;
    rc2 = fanout_body_apply((const char *) data + 1, size - 1, use, n, &o);

    if (rc1 != rc2 || (rc1 == 0 && o.len != count.len)) {
        abort();
    }

    if (rc1 == 0) {
        if (fanout_json_scan(buf, o.len, NULL, 0, NULL) != 0
            || buf[0] != '{')
        {
            abort();
        }

        for (i = 0; i < n; i++) {
            /* the value at its path (with duplicates, the last counts) */
            if (fanout_json_scan(buf, o.len, use[i].path, use[i].path_len,
                                 &found) != 0
                || found.p == NULL || found.len != use[i].value_len
                || memcmp(found.p, use[i].value, found.len) != 0)
            {
                abort();
            }
        }
    }

    free(buf);

    return 0;
}
