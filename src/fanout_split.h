/*
 * Sticky weighted splits, as nginx's split_clients does them: MurmurHash2
 * of the key, compared with cumulative shares of 2^32 - 1 in the order the
 * variants are listed.  Pure logic, unit-tested in t/unit.
 */

#ifndef _FANOUT_SPLIT_H_INCLUDED_
#define _FANOUT_SPLIT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define FANOUT_SPLIT_MAX_VARIANTS  16
#define FANOUT_SPLIT_WHOLE         10000   /* 100.00% */


typedef struct {
    size_t      n;
    uint32_t    share[FANOUT_SPLIT_MAX_VARIANTS];  /* hundredths of 1% */
    uint32_t    bound[FANOUT_SPLIT_MAX_VARIANTS];  /* cumulative, of 2^32 */
    int         rest;          /* the "*" variant's index, or -1 */
} fanout_split_t;


/* the same function as nginx's ngx_murmur_hash2() */
uint32_t fanout_murmur2(const unsigned char *data, size_t len);

void fanout_split_init(fanout_split_t *s);

/*
 * Adds a variant with share hundredths of 1% (1000 is 10%), or the rest
 * ("*") when rest is set.  -1 when the shares pass 100% or there are too
 * many variants, or anything after "*".
 */
int fanout_split_add(fanout_split_t *s, uint32_t share, int rest);

/* the bounds, once all variants are added: -1 if over 100% */
int fanout_split_done(fanout_split_t *s);

/* the variant of a hash, or -1 when none covers it (shares under 100%) */
int fanout_split_pick(const fanout_split_t *s, uint32_t hash);


#endif /* _FANOUT_SPLIT_H_INCLUDED_ */
