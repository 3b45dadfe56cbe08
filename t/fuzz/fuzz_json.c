/*
 * libFuzzer: the JSON scanner.  The first byte picks a path; the scan must
 * never read outside the input, and a found value must lie inside it and
 * scan alone as valid JSON; a found number reads as strtod() reads it.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_json.h"
#include "fanout_number.h"


static const char  *paths[] = {
    NULL, "a", "a.b", "0", "a.0", "outputs.0.data", "x.1.y", "label",
    "outputs[name=p].data", "a[b=c]", "a[b=c].d.0", "a.0[b=x][c=y].z"
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char           *copy, *text;
    double          v, w;
    const char     *path, *p;
    fanout_span_t   found;

    if (size == 0) {
        return 0;
    }

    path = paths[data[0] % (sizeof(paths) / sizeof(paths[0]))];
    data++;
    size--;

    /* a copy of exactly size bytes: ASan catches any read past it */
    copy = malloc(size ? size : 1);
    memcpy(copy, data, size);

    if (fanout_json_scan(copy, size, path, path ? strlen(path) : 0, &found)
        == 0 && found.p)
    {
        if (found.p < copy || found.p + found.len > copy + size
            || fanout_json_scan(found.p, found.len, NULL, 0, NULL) != 0)
        {
            abort();
        }

        if (fanout_json_number(&found, &v) == 0) {
            /* a number reads as strtod() reads it, and in one pass to its
             * very end */
            text = malloc(found.len + 1);
            memcpy(text, found.p, found.len);
            text[found.len] = '\0';
            p = found.p;

            if (strtod(text, NULL) != v
                || fanout_json_number_at(&p, found.p + found.len, &w) != 0
                || p != found.p + found.len || w != v)
            {
                abort();
            }

            free(text);
        }
    }

    free(copy);

    return 0;
}
