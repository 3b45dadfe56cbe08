/*
 * libFuzzer: the cache-key canonicaliser and echo=.  Canonicalising is
 * idempotent in effect: a body and its whitespace-padded twin share a
 * digest; a body with a duplicate key never shares the digest of a body
 * without; echo= writes no more than it was given room for.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_json.h"
#include "fanout_cache_key.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              rc, rc2;
    char            *body, *padded, *out;
    char             a[FANOUT_SHA256_HEX_LEN + 1], b[FANOUT_SHA256_HEX_LEN + 1];
    size_t           n;
    fanout_field_t   ignore[2] = { { "id", 2 }, { "a.0", 3 } };
    fanout_span_t    vals[2] = { { "\"x\"", 3 }, { "1", 1 } };

    body = malloc(size ? size : 1);
    memcpy(body, data, size);

    rc = fanout_cache_body_digest(body, size, ignore, 2, a);

    if (rc == FANOUT_KEY_CANONICAL) {
        /* whitespace around the text changes nothing */
        padded = malloc(size + 2);
        padded[0] = ' ';
        memcpy(padded + 1, body, size);
        padded[size + 1] = '\n';

        rc2 = fanout_cache_body_digest(padded, size + 2, ignore, 2, b);

        if (rc2 != FANOUT_KEY_CANONICAL || strcmp(a, b) != 0) {
            abort();
        }

        free(padded);
    }

    /* the canonicaliser and the scanner accept the very same texts */
    if ((rc == FANOUT_KEY_CANONICAL || rc == FANOUT_KEY_AMBIGUOUS)
        != (fanout_json_scan(body, size, NULL, 0, NULL) == 0))
    {
        abort();
    }

    out = malloc(size + 4 + 1);
    n = fanout_cache_echo(body, size, ignore, vals, 2, out);

    if (n != (size_t) -1 && n > size + 4) {
        abort();
    }

    free(out);
    free(body);

    return 0;
}
