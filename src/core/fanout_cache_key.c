/*
 * Canonical JSON request bodies and their digests, for cache keys.
 *
 * Two passes over the body, no tree: the first validates it (the strict
 * scanner's rules), records every object's members with their keys decoded
 * and sorts them; the second writes the canonical text straight into
 * SHA-256.  Work is linear in the body, plus O(m log m) for the m members
 * of each object; memory is 16 bytes per member and object, and the
 * decoded keys.
 *
 * Two bodies share a digest only when every JSON parser reads them alike:
 * numbers keep their text (1.0 and 1 differ, 1e400 stays what it is),
 * strings are compared decoded ("\u00e9" is "é"), and a body with a
 * duplicate key (after decoding) is never canonicalised, since parsers
 * disagree on which of the two counts.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* SHA256_Init() and the like are deprecated in OpenSSL 3, not gone */
#define OPENSSL_SUPPRESS_DEPRECATED  1

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "fanout_json.h"
#include "fanout_cache_key.h"


#if !defined(OPENSSL_NO_DEPRECATED_3_0)
typedef SHA256_CTX    fanout_sha256_t;
#else
typedef EVP_MD_CTX   *fanout_sha256_t;
#endif


typedef struct {
    uint32_t        key;          /* in keys[] */
    uint32_t        key_len;
    uint32_t        val;          /* the value's offset in the body */
    uint32_t        obj;          /* the first object id at or after it */
} fanout_member_t;


typedef struct {
    uint32_t        first;        /* in members[], sorted */
    uint32_t        n;
    uint32_t        nested;       /* objects inside it */
    uint32_t        end;          /* offset after its '}' */
} fanout_object_t;


typedef struct {
    const char     *body;
    const char     *end;
    const char     *p;
    unsigned        depth;
    int             rc;
    unsigned        ambiguous;    /* a duplicate key: valid, not canonical */

    fanout_member_t  *stack;      /* members of the open objects */
    size_t          nstack, cstack;
    fanout_member_t  *members;    /* of closed objects, each run sorted */
    size_t          nmembers, cmembers;
    fanout_object_t  *objects;    /* by id: the order they open in */
    size_t          nobjects, cobjects;
    char           *keys;
    size_t          nkeys, ckeys;

    const fanout_field_t  *ignore;
    size_t          nignore;

    fanout_sha256_t  sha;
    unsigned        hashing;      /* sha is under way */
    unsigned        mute;         /* writing an ignored value: skip it */

    /* a request's body of a few objects needs no malloc() at all */
    fanout_member_t   stack_in[16];
    fanout_member_t   members_in[32];
    fanout_object_t   objects_in[8];
    char              keys_in[512];

    size_t          nbuf;
    char            buf[4096];
} fanout_canon_t;


/* an array grown by doubling, from its first space in the canon_t (inl) */

static int
fanout_grow(void **a, size_t *cap, size_t need, size_t size, void *inl)
{
    void    *p;
    size_t   n;

    if (need <= *cap) {
        return 0;
    }

    n = *cap ? *cap : 64;

    while (n < need) {
        n *= 2;
    }

    if (*a == inl) {
        p = malloc(n * size);
        if (p == NULL) {
            return -1;
        }

        memcpy(p, inl, *cap * size);

    } else {
        p = realloc(*a, n * size);
        if (p == NULL) {
            return -1;
        }
    }

    *a = p;
    *cap = n;

    return 0;
}


static void
fanout_ws(fanout_canon_t *c)
{
    while (c->p < c->end
           && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n'
               || *c->p == '\r'))
    {
        c->p++;
    }
}


static int
fanout_member_cmp(fanout_canon_t *c, fanout_member_t *a, fanout_member_t *b)
{
    int     r;
    size_t  n;

    n = a->key_len < b->key_len ? a->key_len : b->key_len;
    r = memcmp(c->keys + a->key, c->keys + b->key, n);

    if (r != 0) {
        return r;
    }

    return (a->key_len > b->key_len) - (a->key_len < b->key_len);
}


/* bottom-up merge sort of m[0..n), with tmp[0..n) as scratch */

static void
fanout_members_sort(fanout_canon_t *c, fanout_member_t *m,
    fanout_member_t *tmp, size_t n)
{
    size_t            w, i, l, r, lend, rend, k;
    fanout_member_t  *from, *to, *t;

    from = m;
    to = tmp;

    for (w = 1; w < n; w *= 2) {
        for (i = 0; i < n; i += 2 * w) {
            l = i;
            lend = (i + w < n) ? i + w : n;
            r = lend;
            rend = (i + 2 * w < n) ? i + 2 * w : n;
            k = i;

            while (l < lend && r < rend) {
                to[k++] = (fanout_member_cmp(c, &from[l], &from[r]) <= 0)
                          ? from[l++] : from[r++];
            }

            while (l < lend) {
                to[k++] = from[l++];
            }

            while (r < rend) {
                to[k++] = from[r++];
            }
        }

        t = from;
        from = to;
        to = t;
    }

    if (from != m) {
        memcpy(m, from, n * sizeof(fanout_member_t));
    }
}


/* the first pass: validation, members recorded and sorted */

static int fanout_parse_value(fanout_canon_t *c);


static int
fanout_parse_object(fanout_canon_t *c)
{
    size_t            id, base, n, i;
    const char       *k, *kend;
    fanout_member_t  *m;
    fanout_object_t  *o;

    if (fanout_grow((void **) &c->objects, &c->cobjects, c->nobjects + 1,
                    sizeof(fanout_object_t), c->objects_in)
        != 0)
    {
        c->rc = FANOUT_KEY_NOMEM;
        return -1;
    }

    id = c->nobjects++;
    base = c->nstack;

    c->p++;
    fanout_ws(c);

    if (c->p < c->end && *c->p == '}') {
        c->p++;
        goto close;
    }

    for ( ;; ) {
        k = c->p;
        kend = fanout_json_string_end(k, c->end);

        if (kend == NULL) {
            return -1;
        }

        if (fanout_grow((void **) &c->stack, &c->cstack, c->nstack + 1,
                        sizeof(fanout_member_t), c->stack_in) != 0
            || fanout_grow((void **) &c->keys, &c->ckeys,
                           c->nkeys + (size_t) (kend - k), 1, c->keys_in)
               != 0)
        {
            c->rc = FANOUT_KEY_NOMEM;
            return -1;
        }

        m = &c->stack[c->nstack++];
        m->key = (uint32_t) c->nkeys;
        m->key_len = (uint32_t) fanout_json_unescape(k + 1, kend - 1,
                                                     c->keys + c->nkeys);
        c->nkeys += m->key_len;

        c->p = kend;
        fanout_ws(c);

        if (c->p >= c->end || *c->p != ':') {
            return -1;
        }

        c->p++;
        fanout_ws(c);

        /* set before the value: parsing it may move the stack */
        m->val = (uint32_t) (c->p - c->body);
        m->obj = (uint32_t) c->nobjects;

        if (fanout_parse_value(c) != 0) {
            return -1;
        }

        fanout_ws(c);

        if (c->p < c->end && *c->p == ',') {
            c->p++;
            fanout_ws(c);
            continue;
        }

        if (c->p < c->end && *c->p == '}') {
            c->p++;
            break;
        }

        return -1;
    }

close:

    /* the members move from the stack, sorted, with room to sort in */
    n = c->nstack - base;

    if (fanout_grow((void **) &c->members, &c->cmembers,
                    c->nmembers + 2 * n + 1, sizeof(fanout_member_t),
                    c->members_in)
        != 0)
    {
        c->rc = FANOUT_KEY_NOMEM;
        return -1;
    }

    m = &c->members[c->nmembers];

    if (n) {
        memcpy(m, &c->stack[base], n * sizeof(fanout_member_t));
        fanout_members_sort(c, m, m + n, n);
    }

    for (i = 1; i < n; i++) {
        if (fanout_member_cmp(c, &m[i - 1], &m[i]) == 0) {
            /* parsers differ on which of the two counts */
            c->ambiguous = 1;
        }
    }

    o = &c->objects[id];
    o->first = (uint32_t) c->nmembers;
    o->n = (uint32_t) n;
    o->nested = (uint32_t) (c->nobjects - id - 1);
    o->end = (uint32_t) (c->p - c->body);

    c->nmembers += n;
    c->nstack = base;

    return 0;
}


static int
fanout_parse_value(fanout_canon_t *c)
{
    int          rc;
    const char  *e;

    if (c->p >= c->end) {
        return -1;
    }

    switch (*c->p) {

    case '{':
    case '[':
        if (++c->depth > FANOUT_JSON_MAX_DEPTH) {
            return -1;
        }

        if (*c->p == '{') {
            rc = fanout_parse_object(c);

        } else {
            c->p++;
            fanout_ws(c);
            rc = 0;

            if (c->p < c->end && *c->p == ']') {
                c->p++;

            } else {
                for ( ;; ) {
                    if (fanout_parse_value(c) != 0) {
                        rc = -1;
                        break;
                    }

                    fanout_ws(c);

                    if (c->p < c->end && *c->p == ',') {
                        c->p++;
                        fanout_ws(c);
                        continue;
                    }

                    if (c->p < c->end && *c->p == ']') {
                        c->p++;
                        break;
                    }

                    rc = -1;
                    break;
                }
            }
        }

        c->depth--;
        return rc;

    case '"':
        e = fanout_json_string_end(c->p, c->end);
        break;

    case 't':
        e = ((size_t) (c->end - c->p) >= 4 && memcmp(c->p, "true", 4) == 0)
            ? c->p + 4 : NULL;
        break;

    case 'f':
        e = ((size_t) (c->end - c->p) >= 5 && memcmp(c->p, "false", 5) == 0)
            ? c->p + 5 : NULL;
        break;

    case 'n':
        e = ((size_t) (c->end - c->p) >= 4 && memcmp(c->p, "null", 4) == 0)
            ? c->p + 4 : NULL;
        break;

    default:
        e = fanout_json_number_end(c->p, c->end);
    }

    if (e == NULL) {
        return -1;
    }

    c->p = e;

    return 0;
}


/*
 * SHA-256 from libcrypto: its low-level functions while the library has
 * them (a plain call on a context on the stack, with the CPU's SHA
 * instructions), else EVP with the algorithm fetched once and one context
 * reused.  OpenSSL 3's EVP_sha256() init, and its one-shot SHA256(), look
 * the algorithm up each time under a lock: a few thousand instructions, more
 * than hashing a small body.  A worker computes one digest at a time.
 */

#if !defined(OPENSSL_NO_DEPRECATED_3_0)

static int
fanout_sha256_init(fanout_sha256_t *s)
{
    return SHA256_Init(s) == 1 ? 0 : -1;
}


static void
fanout_sha256_update(fanout_sha256_t *s, const void *p, size_t n)
{
    (void) SHA256_Update(s, p, n);
}


static int
fanout_sha256_final(fanout_sha256_t *s, unsigned char *md)
{
    return SHA256_Final(md, s) == 1 ? 0 : -1;
}

#else

static int
fanout_sha256_init(fanout_sha256_t *s)
{
    static const EVP_MD  *md;
    static EVP_MD_CTX    *ctx;

    if (ctx == NULL) {
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
        ctx = EVP_MD_CTX_new();

        if (md == NULL || ctx == NULL) {
            EVP_MD_CTX_free(ctx);
            ctx = NULL;
            return -1;
        }
    }

    *s = ctx;

    return EVP_DigestInit_ex(ctx, md, NULL) == 1 ? 0 : -1;
}


static void
fanout_sha256_update(fanout_sha256_t *s, const void *p, size_t n)
{
    (void) EVP_DigestUpdate(*s, p, n);
}


static int
fanout_sha256_final(fanout_sha256_t *s, unsigned char *md)
{
    return EVP_DigestFinal_ex(*s, md, NULL) == 1 ? 0 : -1;
}

#endif


/* the second pass: the canonical text, into SHA-256 */

static void
fanout_put(fanout_canon_t *c, const char *p, size_t n)
{
    if (c->mute) {
        return;
    }

    if (c->nbuf + n > sizeof(c->buf)) {
        /* more than the buffer: hashed as it goes */
        if (!c->hashing) {
            if (fanout_sha256_init(&c->sha) != 0) {
                c->rc = FANOUT_KEY_NOMEM;
                c->mute = 1;
                return;
            }

            c->hashing = 1;
        }

        fanout_sha256_update(&c->sha, c->buf, c->nbuf);
        c->nbuf = 0;

        if (n > sizeof(c->buf)) {
            fanout_sha256_update(&c->sha, p, n);
            return;
        }
    }

    memcpy(c->buf + c->nbuf, p, n);
    c->nbuf += n;
}


/*
 * A string's decoded bytes, escaped by the answer writer's own rule (only
 * '"', '\\' and controls), through scratch room after the decoded keys.
 */

static void
fanout_put_string(fanout_canon_t *c, size_t off, size_t n)
{
    fanout_out_t  o;

    if (c->mute) {
        return;
    }

    /* the string is at off in c->keys: a key, or one just decoded */
    if (fanout_grow((void **) &c->keys, &c->ckeys,
                    c->nkeys + n + 6 * n + 2, 1, c->keys_in) != 0)
    {
        c->rc = FANOUT_KEY_NOMEM;
        return;
    }

    o.buf = c->keys + c->nkeys + n;
    o.len = 0;
    fanout_out_string(&o, c->keys + off, n);

    fanout_put(c, o.buf, o.len);
}


/* the segment "depth" of an ignore= path, or NULL when it has fewer */

static const char *
fanout_segment_at(const fanout_field_t *f, unsigned depth, size_t *n)
{
    const char  *p, *end, *dot;

    p = f->path;
    end = f->path + f->len;

    for ( ;; ) {
        dot = memchr(p, '.', (size_t) (end - p));

        if (depth == 0) {
            *n = (size_t) ((dot ? dot : end) - p);
            return p;
        }

        if (dot == NULL) {
            return NULL;
        }

        depth--;
        p = dot + 1;
    }
}


/*
 * Of the ignore= paths in "active" (those that led here), which go on
 * below the member or element named (name, n) at "depth" (*below), and
 * whether one of them ends there (returns 1: the value is left out).
 */

static int
fanout_ignored(fanout_canon_t *c, uint32_t active, unsigned depth,
    const char *name, size_t n, uint32_t *below)
{
    int          skip;
    size_t       i, sn;
    const char  *seg;

    skip = 0;
    *below = 0;

    for (i = 0; active && i < c->nignore; i++) {
        if (!(active & (1u << i))) {
            continue;
        }

        seg = fanout_segment_at(&c->ignore[i], depth, &sn);

        if (seg == NULL || sn != n || memcmp(seg, name, n) != 0) {
            continue;
        }

        if (seg + sn == c->ignore[i].path + c->ignore[i].len) {
            skip = 1;

        } else {
            *below |= 1u << i;
        }
    }

    return skip;
}


/* writes the value at c->p, whose first object id is "id"; the next id */

static uint32_t
fanout_write_value(fanout_canon_t *c, uint32_t id, uint32_t active,
    unsigned depth)
{
    char              num[24];
    size_t            i, k, n;
    uint32_t          below, next;
    unsigned          mute;
    const char       *e;
    fanout_object_t  *o;
    fanout_member_t  *m;

    switch (*c->p) {

    case '{':
        o = &c->objects[id];
        fanout_put(c, "{", 1);
        k = 0;

        for (i = 0; i < o->n; i++) {
            m = &c->members[o->first + i];

            mute = c->mute;

            if (fanout_ignored(c, active, depth, c->keys + m->key, m->key_len,
                               &below))
            {
                continue;
            }

            if (k++) {
                fanout_put(c, ",", 1);
            }

            fanout_put_string(c, m->key, m->key_len);
            fanout_put(c, ":", 1);

            c->p = c->body + m->val;
            (void) fanout_write_value(c, m->obj, below, depth + 1);
            c->mute = mute;
        }

        fanout_put(c, "}", 1);
        c->p = c->body + o->end;

        return id + 1 + o->nested;

    case '[':
        fanout_put(c, "[", 1);
        c->p++;
        fanout_ws(c);
        next = id;
        k = 0;

        for (i = 0; *c->p != ']'; i++) {
            mute = c->mute;

            n = 0;
            if (active) {
                /* the element's index as a path segment */
                size_t  v = i;
                char   *d = num + sizeof(num);

                do {
                    *--d = (char) ('0' + v % 10);
                    v /= 10;
                } while (v);

                n = (size_t) (num + sizeof(num) - d);
                memmove(num, d, n);
            }

            if (fanout_ignored(c, active, depth, num, n, &below)) {
                c->mute = 1;

            } else if (k++) {
                fanout_put(c, ",", 1);
            }

            next = fanout_write_value(c, next, below, depth + 1);
            c->mute = mute;

            fanout_ws(c);

            if (*c->p == ',') {
                c->p++;
                fanout_ws(c);
            }
        }

        c->p++;
        fanout_put(c, "]", 1);

        return next;

    case '"':
        e = fanout_json_string_end(c->p, c->end);

        if (!c->mute) {
            /* decoded in place of the raw text: never longer */
            n = 0;
            if (fanout_grow((void **) &c->keys, &c->ckeys,
                            c->nkeys + (size_t) (e - c->p), 1, c->keys_in)
                == 0)
            {
                n = fanout_json_unescape(c->p + 1, e - 1, c->keys + c->nkeys);
                fanout_put_string(c, c->nkeys, n);

            } else {
                c->rc = FANOUT_KEY_NOMEM;
            }
        }

        c->p = e;
        return id;

    case 't':
        e = c->p + 4;
        break;

    case 'f':
        e = c->p + 5;
        break;

    case 'n':
        e = c->p + 4;
        break;

    default:
        /* a number keeps its text: parsers read texts alike, not values */
        e = fanout_json_number_end(c->p, c->end);
    }

    fanout_put(c, c->p, (size_t) (e - c->p));
    c->p = e;

    return id;
}


static int
fanout_canonical_digest(fanout_canon_t *c, unsigned char *md)
{
    c->p = c->body;
    fanout_ws(c);

    if (fanout_parse_value(c) != 0) {
        return -1;
    }

    fanout_ws(c);

    if (c->p != c->end) {
        return -1;
    }

    if (c->ambiguous) {
        c->rc = FANOUT_KEY_AMBIGUOUS;
        return -1;
    }

    /* canonical texts and raw bodies never share a digest */
    fanout_put(c, "j", 1);

    c->p = c->body;
    fanout_ws(c);

    (void) fanout_write_value(c, 0,
                             (c->nignore == 32) ? 0xffffffff
                                                : (1u << c->nignore) - 1,
                             0);

    if (c->rc == FANOUT_KEY_NOMEM) {
        return -1;
    }

    if (!c->hashing) {
        if (fanout_sha256_init(&c->sha) != 0) {
            c->rc = FANOUT_KEY_NOMEM;
            return -1;
        }

        c->hashing = 1;
    }

    fanout_sha256_update(&c->sha, c->buf, c->nbuf);

    if (fanout_sha256_final(&c->sha, md) != 0) {
        c->rc = FANOUT_KEY_NOMEM;
        return -1;
    }

    return 0;
}


static void
fanout_hex(const unsigned char *md, char hex[FANOUT_SHA256_HEX_LEN + 1])
{
    size_t             i;

    /* two digits a byte from one table: a key is made on every request */
    static const char  pairs[] =
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
        "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
        "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
        "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
        "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

    for (i = 0; i < FANOUT_SHA256_HEX_LEN / 2; i++) {
        memcpy(&hex[2 * i], &pairs[2 * md[i]], 2);
    }

    hex[FANOUT_SHA256_HEX_LEN] = '\0';
}


void
fanout_sha256_hex(const void *data, size_t len,
    char hex[FANOUT_SHA256_HEX_LEN + 1])
{
    unsigned char    md[SHA256_DIGEST_LENGTH];
    fanout_sha256_t  sha;

    if (fanout_sha256_init(&sha) != 0) {
        /* no memory: a digest no key has */
        memset(md, 0, sizeof(md));

    } else {
        fanout_sha256_update(&sha, data, len);

        if (fanout_sha256_final(&sha, md) != 0) {
            memset(md, 0, sizeof(md));
        }
    }

    fanout_hex(md, hex);
}


int
fanout_cache_body_digest(const char *body, size_t len,
    const fanout_field_t *ignore, size_t nignore,
    char hex[FANOUT_SHA256_HEX_LEN + 1])
{
    int             rc;
    unsigned char    md[EVP_MAX_MD_SIZE];
    fanout_sha256_t  raw;
    fanout_canon_t   canon, *c;

    if (nignore > FANOUT_CACHE_MAX_IGNORE) {
        nignore = FANOUT_CACHE_MAX_IGNORE;
    }

    rc = FANOUT_KEY_RAW;

    if (len > 0 && len < UINT32_MAX) {
        /* on the stack, all but its buffers zeroed: no malloc() for a
         * small body, and no 4k memset */
        c = &canon;
        memset(c, 0, offsetof(fanout_canon_t, stack_in));

        c->stack = c->stack_in;
        c->cstack = sizeof(c->stack_in) / sizeof(fanout_member_t);
        c->members = c->members_in;
        c->cmembers = sizeof(c->members_in) / sizeof(fanout_member_t);
        c->objects = c->objects_in;
        c->cobjects = sizeof(c->objects_in) / sizeof(fanout_object_t);
        c->keys = c->keys_in;
        c->ckeys = sizeof(c->keys_in);
        c->nbuf = 0;

        c->body = body;
        c->end = body + len;
        c->ignore = ignore;
        c->nignore = nignore;
        c->rc = FANOUT_KEY_RAW;

        if (fanout_canonical_digest(c, md) == 0) {
            fanout_hex(md, hex);
            rc = FANOUT_KEY_CANONICAL;

        } else {
            rc = c->rc;
        }

        if (c->stack != c->stack_in) {
            free(c->stack);
        }

        if (c->members != c->members_in) {
            free(c->members);
        }

        if (c->objects != c->objects_in) {
            free(c->objects);
        }

        if (c->keys != c->keys_in) {
            free(c->keys);
        }

        if (rc != FANOUT_KEY_RAW && rc != FANOUT_KEY_AMBIGUOUS) {
            return rc;
        }
    }

    /* not JSON, or not one that every parser reads alike: its bytes */
    if (fanout_sha256_init(&raw) != 0) {
        return FANOUT_KEY_NOMEM;
    }

    fanout_sha256_update(&raw, "r", 1);
    fanout_sha256_update(&raw, body, len);

    if (fanout_sha256_final(&raw, md) != 0) {
        return FANOUT_KEY_NOMEM;
    }

    fanout_hex(md, hex);

    return rc;
}


int
fanout_cache_echo_find(const char *body, size_t len,
    const fanout_field_t *paths, size_t n, fanout_span_t *at)
{
    int     found;
    size_t  i;

    if (n > FANOUT_CACHE_MAX_ECHO) {
        n = FANOUT_CACHE_MAX_ECHO;
    }

    /* one scan per path: n is a handful, set in the configuration */
    found = 0;

    for (i = 0; i < n; i++) {
        if (fanout_json_scan(body, len, paths[i].path, paths[i].len, &at[i])
            != 0)
        {
            return -1;
        }

        found += (at[i].p != NULL);
    }

    return found;
}


size_t
fanout_cache_echo_write(const char *body, size_t len,
    const fanout_span_t *at, const fanout_span_t *vals, size_t n, char *out)
{
    char        *o;
    size_t       i, j, k, order[FANOUT_CACHE_MAX_ECHO];
    const char  *p;

    if (n > FANOUT_CACHE_MAX_ECHO) {
        n = FANOUT_CACHE_MAX_ECHO;
    }

    k = 0;

    for (i = 0; i < n; i++) {
        if (at[i].p == NULL) {
            continue;
        }

        /* in the order they come in the body */
        for (j = k; j > 0 && at[order[j - 1]].p > at[i].p; j--) {
            order[j] = order[j - 1];
        }

        order[j] = i;
        k++;
    }

    o = out;
    p = body;

    for (j = 0; j < k; j++) {
        i = order[j];

        if (at[i].p < p) {
            /* inside a value replaced already */
            continue;
        }

        memcpy(o, p, (size_t) (at[i].p - p));
        o += at[i].p - p;
        memcpy(o, vals[i].p, vals[i].len);
        o += vals[i].len;
        p = at[i].p + at[i].len;
    }

    memcpy(o, p, (size_t) (body + len - p));
    o += body + len - p;

    return (size_t) (o - out);
}


size_t
fanout_cache_echo(const char *body, size_t len, const fanout_field_t *paths,
    const fanout_span_t *vals, size_t n, char *out)
{
    fanout_span_t  at[FANOUT_CACHE_MAX_ECHO];

    if (fanout_cache_echo_find(body, len, paths, n, at) < 0) {
        return (size_t) -1;
    }

    return fanout_cache_echo_write(body, len, at, vals, n, out);
}
