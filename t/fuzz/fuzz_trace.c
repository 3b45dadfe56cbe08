/*
 * libFuzzer: a client's traceparent and X-Request-ID (src/core/fanout_trace.c).
 * What parses writes back byte for byte with its own parent id, its ids
 * are lowercase hex and not all zeros; a valid request id holds only its
 * characters.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_trace.h"


static int
hex_nonzero(const char *s, size_t n)
{
    size_t  i;
    int     nz;

    for (i = 0, nz = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }

        nz |= (s[i] != '0');
    }

    return nz;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char            out[FANOUT_TRACEPARENT_LEN];
    size_t          i;
    fanout_trace_t  t;
    const char     *s;

    s = (const char *) data;

    if (fanout_traceparent_parse(s, size, &t) == 0) {
        if (!hex_nonzero(t.trace_id, FANOUT_TRACE_ID_LEN)
            || !hex_nonzero(t.parent_id, FANOUT_SPAN_ID_LEN))
        {
            abort();
        }

        fanout_traceparent_write(&t, t.parent_id, out);

        /* a version-00 header is the same, but for spaces around it */
        for (i = 0; i < size && (s[i] == ' ' || s[i] == '\t'); i++) {
            /* void */
        }

        if (s[i] == '0' && s[i + 1] == '0'
            && memcmp(out, s + i, FANOUT_TRACEPARENT_LEN) != 0)
        {
            abort();
        }
    }

    if (fanout_request_id_valid(s, size)) {
        for (i = 0; i < size; i++) {
            if (s[i] == ' ' || s[i] == '"' || s[i] == '\\' || s[i] == ','
                || (unsigned char) s[i] < 0x21 || (unsigned char) s[i] > 0x7e)
            {
                abort();
            }
        }
    }

    return 0;
}
