/*
 * Cache keys: the canonical form of a JSON request body (object keys
 * sorted, insignificant whitespace dropped, ignored fields removed) and
 * SHA-256.  Pure logic: jansson and libcrypto, no nginx headers.
 */

#ifndef _FANOUT_CACHE_KEY_H_INCLUDED_
#define _FANOUT_CACHE_KEY_H_INCLUDED_


#include <stddef.h>


#define FANOUT_SHA256_HEX_LEN  64


typedef struct {
    const char  *path;     /* a dot path, not NUL-terminated */
    size_t       len;
} fanout_field_t;


/*
 * The SHA-256 (hex, NUL-terminated) of a body: of its canonical form when
 * it is JSON (returns 1), of its bytes when not (returns 0); -1 when out
 * of memory.
 */
int fanout_cache_body_digest(const char *body, size_t len,
    const fanout_field_t *ignore, size_t nignore,
    char hex[FANOUT_SHA256_HEX_LEN + 1]);

void fanout_sha256_hex(const void *data, size_t len,
    char hex[FANOUT_SHA256_HEX_LEN + 1]);


#endif /* _FANOUT_CACHE_KEY_H_INCLUDED_ */
