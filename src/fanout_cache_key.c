/*
 * Canonical JSON request bodies and their digests, for cache keys.
 */

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "fanout_cache_key.h"


void
fanout_sha256_hex(const void *data, size_t len,
    char hex[FANOUT_SHA256_HEX_LEN + 1])
{
    size_t               i;
    unsigned char        md[SHA256_DIGEST_LENGTH];
    static const char    digits[] = "0123456789abcdef";

    SHA256(data, len, md);

    for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 0xf];
    }

    hex[FANOUT_SHA256_HEX_LEN] = '\0';
}


/* removes the value at a dot path, if there is one */

static void
fanout_remove(json_t *root, const char *path, size_t len)
{
    char         key[256];
    size_t       n, index;
    json_t      *node;
    const char  *p, *end, *dot;

    node = root;
    p = path;
    end = path + len;

    while (node && p < end) {
        dot = memchr(p, '.', (size_t) (end - p));
        n = (size_t) ((dot ? dot : end) - p);

        if (n >= sizeof(key)) {
            return;
        }

        memcpy(key, p, n);
        key[n] = '\0';

        if (json_is_array(node)) {
            char  *last;

            index = strtoul(key, &last, 10);

            if (n == 0 || *last != '\0') {
                return;
            }

            if (dot == NULL) {
                json_array_remove(node, index);
                return;
            }

            node = json_array_get(node, index);

        } else if (json_is_object(node)) {
            if (dot == NULL) {
                json_object_del(node, key);
                return;
            }

            node = json_object_get(node, key);

        } else {
            return;
        }

        p += n + 1;
    }
}


int
fanout_cache_body_digest(const char *body, size_t len,
    const fanout_field_t *ignore, size_t nignore,
    char hex[FANOUT_SHA256_HEX_LEN + 1])
{
    char    *canon;
    size_t   i, size, flags;
    json_t  *doc;

    doc = (len > 0) ? json_loadb(body, len, JSON_DECODE_ANY, NULL) : NULL;

    if (doc == NULL) {
        /* not JSON: the bytes themselves */
        fanout_sha256_hex(body, len, hex);
        return 0;
    }

    for (i = 0; i < nignore; i++) {
        fanout_remove(doc, ignore[i].path, ignore[i].len);
    }

    /* a fixed precision: one snprintf per real, and always the same text */
    flags = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY
            | JSON_REAL_PRECISION(17);

    size = json_dumpb(doc, NULL, 0, flags);
    canon = malloc(size ? size : 1);

    if (canon == NULL || json_dumpb(doc, canon, size, flags) != size) {
        free(canon);
        json_decref(doc);
        return -1;
    }

    json_decref(doc);

    fanout_sha256_hex(canon, size, hex);
    free(canon);

    return 1;
}
