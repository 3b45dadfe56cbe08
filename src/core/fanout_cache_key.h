/*
 * Cache keys: the canonical form of a JSON request body (object keys
 * sorted, insignificant whitespace dropped, escapes decoded, ignored fields
 * removed) and SHA-256.  Pure logic: libcrypto, no nginx headers.
 */

#ifndef _FANOUT_CACHE_KEY_H_INCLUDED_
#define _FANOUT_CACHE_KEY_H_INCLUDED_


#include <stddef.h>

#include "fanout_json.h"


#define FANOUT_SHA256_HEX_LEN  64


typedef struct {
    const char  *path;     /* a dot path, not NUL-terminated */
    size_t       len;
} fanout_field_t;


#define FANOUT_KEY_NOMEM       -1
#define FANOUT_KEY_RAW          0     /* not JSON: its bytes */
#define FANOUT_KEY_CANONICAL    1
#define FANOUT_KEY_AMBIGUOUS    2     /* JSON parsers read apart: bytes */


/*
 * The SHA-256 (hex, NUL-terminated) of a body: of its canonical form when
 * it is JSON that every parser reads alike, of its bytes otherwise (not
 * JSON, or JSON with a duplicate key); one of FANOUT_KEY_*.  At most 32
 * ignore= paths count.  Linear in len, plus sorting each object's keys.
 */
#define FANOUT_CACHE_MAX_IGNORE  32   /* ignore= paths, most */

int fanout_cache_body_digest(const char *body, size_t len,
    const fanout_field_t *ignore, size_t nignore,
    char hex[FANOUT_SHA256_HEX_LEN + 1]);

/*
 * echo=: an answer with the value at each path replaced by vals[i] (JSON
 * texts), paths it lacks left alone, at most FANOUT_CACHE_MAX_ECHO paths.
 * out needs len plus the vals' lengths; returns its length, or -1 when the
 * answer is not JSON.  One scan of the answer per path.
 */
#define FANOUT_CACHE_MAX_ECHO  8

size_t fanout_cache_echo(const char *body, size_t len,
    const fanout_field_t *paths, const fanout_span_t *vals, size_t n,
    char *out);

/* the same in two steps: where each path is in the answer (at[i].p NULL:
 * not there; returns how many are, or -1: not JSON), then the answer
 * written with those found replaced (vals of the others are not read) */
int fanout_cache_echo_find(const char *body, size_t len,
    const fanout_field_t *paths, size_t n, fanout_span_t *at);
size_t fanout_cache_echo_write(const char *body, size_t len,
    const fanout_span_t *at, const fanout_span_t *vals, size_t n, char *out);

void fanout_sha256_hex(const void *data, size_t len,
    char hex[FANOUT_SHA256_HEX_LEN + 1]);


#endif /* _FANOUT_CACHE_KEY_H_INCLUDED_ */
