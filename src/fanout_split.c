/*
 * Splits: a key's hash falls in one variant's slice of [0, 2^32).  The
 * slices follow the order of the variants with "*" taking what is left,
 * exactly as split_clients lays them out, so that the same key gets the
 * same variant in both, on every worker and every instance; growing a
 * variant's share keeps the keys it had (those of variants listed after it
 * move along).
 */

#include <string.h>

#include "fanout_split.h"


uint32_t
fanout_murmur2(const unsigned char *data, size_t len)
{
    uint32_t  h, k;

    h = 0 ^ (uint32_t) len;

    while (len >= 4) {
        k = data[0];
        k |= (uint32_t) data[1] << 8;
        k |= (uint32_t) data[2] << 16;
        k |= (uint32_t) data[3] << 24;

        k *= 0x5bd1e995;
        k ^= k >> 24;
        k *= 0x5bd1e995;

        h *= 0x5bd1e995;
        h ^= k;

        data += 4;
        len -= 4;
    }

    switch (len) {
    case 3:
        h ^= (uint32_t) data[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t) data[1] << 8;
        /* fall through */
    case 1:
        h ^= data[0];
        h *= 0x5bd1e995;
    }

    h ^= h >> 13;
    h *= 0x5bd1e995;
    h ^= h >> 15;

    return h;
}


void
fanout_split_init(fanout_split_t *s)
{
    memset(s, 0, sizeof(fanout_split_t));
    s->rest = -1;
}


int
fanout_split_add(fanout_split_t *s, uint32_t share, int rest)
{
    /* "*" comes last, as it takes what the others leave */
    if (s->n == FANOUT_SPLIT_MAX_VARIANTS || s->rest >= 0
        || share > FANOUT_SPLIT_WHOLE)
    {
        return -1;
    }

    if (rest) {
        s->rest = (int) s->n;
        share = 0;
    }

    s->share[s->n++] = share;

    return 0;
}


int
fanout_split_done(fanout_split_t *s)
{
    size_t    i;
    uint32_t  sum;

    sum = 0;

    for (i = 0; i < s->n; i++) {
        sum += s->share[i];
    }

    if (sum > FANOUT_SPLIT_WHOLE) {
        return -1;
    }

    if (s->rest >= 0) {
        s->share[s->rest] = FANOUT_SPLIT_WHOLE - sum;
    }

    /* as split_clients: the cumulative share, scaled to 2^32 - 1 */
    sum = 0;

    for (i = 0; i < s->n; i++) {
        sum += s->share[i];
        s->bound[i] = (uint32_t) ((uint64_t) sum * 0xffffffff
                                  / FANOUT_SPLIT_WHOLE);
    }

    return 0;
}


int
fanout_split_pick(const fanout_split_t *s, uint32_t hash)
{
    size_t  i;

    for (i = 0; i < s->n; i++) {
        if (hash < s->bound[i]) {
            return (int) i;
        }
    }

    /* 100% in all: the very top hash belongs to the last one */
    if (s->n && s->bound[s->n - 1] == 0xffffffff) {
        return (int) s->n - 1;
    }

    return -1;
}
