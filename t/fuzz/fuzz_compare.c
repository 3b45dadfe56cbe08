/*
 * libFuzzer: the shadow comparison.  The input is two JSON texts separated
 * by a 0xff byte; both must be valid for a comparison, as in the module.
 * A value agrees with itself, and agreement does not depend on the order.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_json.h"
#include "fanout_compare.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char              *a, *b;
    size_t             i, alen, blen;
    fanout_compare_t   ab, ba, aa;

    for (i = 0; i < size && data[i] != 0xff; i++) { /* void */ }

    alen = i;
    blen = (i < size) ? size - i - 1 : 0;

    a = malloc(alen ? alen : 1);
    b = malloc(blen ? blen : 1);
    memcpy(a, data, alen);
    memcpy(b, data + alen + (i < size), blen);

    if (fanout_json_scan(a, alen, NULL, 0, NULL) == 0
        && fanout_json_scan(b, blen, NULL, 0, NULL) == 0)
    {
        fanout_compare(a, alen, b, blen, 0.0, &ab);
        fanout_compare(b, blen, a, alen, 0.0, &ba);
        fanout_compare(a, alen, a, alen, 0.0, &aa);

        if (ab.agree != ba.agree || !aa.agree) {
            abort();
        }
    }

    free(a);
    free(b);

    return 0;
}
