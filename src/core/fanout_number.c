/*
 * Numbers: JSON numbers read into doubles exactly as strtod() would (any
 * length, no locale), and doubles written back as the shortest text that
 * reads as the same value, or at a precision.
 */

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_json.h"
#include "fanout_number.h"


/*
 * A number of any length: its significant digits (at most 40, and a sticky
 * 1 when more non-zero ones follow, which keeps the rounding right) and its
 * decimal exponent, rewritten as "-0.DDDDe+X" for strtod().
 */

static int
fanout_json_long_number(const char *p, const char *end, double *value)
{
    int          neg, sticky, eneg;
    long         exp10, e;
    char         buf[64], *o, *last;
    size_t       nsig;
    const char  *q;

    if (fanout_json_number_end(p, end) != end) {
        return -1;
    }

    o = buf;
    neg = (*p == '-');
    p += neg;

    if (neg) {
        *o++ = '-';
    }

    *o++ = '0';
    *o++ = '.';

    nsig = 0;
    sticky = 0;
    exp10 = 0;

    /* the integer part, then the fraction: leading zeros are not digits */
    for (q = p; q < end && *q >= '0' && *q <= '9'; q++) {
        if (nsig == 0 && *q == '0') {
            continue;
        }

        if (nsig < 40) {
            *o++ = *q;
            nsig++;

        } else {
            sticky |= (*q != '0');
        }

        exp10++;
    }

    if (q < end && *q == '.') {
        for (q++; q < end && *q >= '0' && *q <= '9'; q++) {
            if (nsig == 0 && *q == '0') {
                exp10--;
                continue;
            }

            if (nsig < 40) {
                *o++ = *q;
                nsig++;

            } else {
                sticky |= (*q != '0');
            }
        }
    }

    if (nsig == 0) {
        *value = neg ? -0.0 : 0.0;
        return 0;
    }

    if (sticky) {
        *o++ = '1';
    }

    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        eneg = (*q == '-');
        q += (*q == '-' || *q == '+');

        for (e = 0; q < end; q++) {
            if (e < 1000000) {
                e = e * 10 + (*q - '0');
            }
        }

        exp10 += eneg ? -e : e;
    }

    /* far beyond a double's range either way: strtod() says 0 or inf */
    if (exp10 > 100000) {
        exp10 = 100000;

    } else if (exp10 < -100000) {
        exp10 = -100000;
    }

    o += snprintf(o, (size_t) (buf + sizeof(buf) - o), "e%ld", exp10);

    *value = strtod(buf, &last);

    return (last == o && isfinite(*value)) ? 0 : -1;
}


/* the powers of ten that doubles hold exactly */
static const double  fanout_pow10d[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
    1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};


/*
 * Eight bytes at p as the number their digits write, or -1 when one is not
 * a digit: the bytes loaded as one little-endian word, tested all at once
 * ('0'-'9' is 0x30-0x39: each byte's high nibble 3 and, with 6 added,
 * still 3), then pairs, quads and the halves combined by three
 * multiplications.  Embeddings' numbers have 8 or 9 significant digits.
 */

#if (defined __BYTE_ORDER__ && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
#define FANOUT_EIGHT_DIGITS  1

static inline int64_t
fanout_eight_digits(const char *p)
{
    uint64_t  w;

    memcpy(&w, p, sizeof(uint64_t));

    if (((w & 0xf0f0f0f0f0f0f0f0ULL)
         | (((w + 0x0606060606060606ULL) & 0xf0f0f0f0f0f0f0f0ULL) >> 4))
        != 0x3333333333333333ULL)
    {
        return -1;
    }

    w &= 0x0f0f0f0f0f0f0f0fULL;
    w = (w * 10 + (w >> 8)) & 0x00ff00ff00ff00ffULL;
    w = (w * 100 + (w >> 16)) & 0x0000ffff0000ffffULL;
    w = (w * 10000 + (w >> 32)) & 0xffffffffULL;

    return (int64_t) w;
}

#endif


/*
 * The JSON number at *pp, in one pass: its end found and, by Clinger's fast
 * path, its value.  A number whose significant digits fit in 2^53 and
 * whose decimal exponent is at most 22 either way is one IEEE
 * multiplication or division of two exact doubles, so it is correctly
 * rounded; most numbers models write (0.9809526, 1e-05, 42) are such.
 * 0 and *pp past it; 1 and *pp past it when the value must take the long
 * way; -1 when no number (by JSON's grammar) starts at *pp.
 */

static int
fanout_number_scan(const char **pp, const char *end, double *value)
{
    int          neg, eneg, ndig, slow;
    long         exp10, e;
    uint64_t     m;
    const char  *p;
#if (FANOUT_EIGHT_DIGITS)
    int64_t      d8;
#endif

    p = *pp;
    neg = (p < end && *p == '-');
    p += neg;

    if (p == end || *p < '0' || *p > '9') {
        return -1;
    }

    m = 0;
    ndig = 0;
    exp10 = 0;
    slow = 0;

    if (*p == '0') {
        p++;

    } else {
        for ( /* void */ ; p < end && *p >= '0' && *p <= '9'; p++) {
            if (ndig < 19) {
                m = m * 10 + (uint64_t) (*p - '0');
                ndig++;

            } else {
                slow = 1;
            }
        }
    }

    if (p < end && *p == '.') {
        p++;

        if (p == end || *p < '0' || *p > '9') {
            return -1;
        }

        /* the zeros before the first significant digit only scale */
        if (m == 0) {
            for ( /* void */ ; p < end && *p == '0'; p++) {
                exp10--;
            }
        }

#if (FANOUT_EIGHT_DIGITS)
        while (ndig <= 11 && end - p >= 8) {
            d8 = fanout_eight_digits(p);
            if (d8 < 0) {
                break;
            }

            m = m * 100000000 + (uint64_t) d8;
            ndig += 8;
            exp10 -= 8;
            p += 8;
        }
#endif

        for ( /* void */ ; p < end && *p >= '0' && *p <= '9'; p++) {
            if (ndig < 19) {
                m = m * 10 + (uint64_t) (*p - '0');
                ndig++;
                exp10--;

            } else {
                slow = 1;
            }
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        eneg = (p < end && *p == '-');
        p += (p < end && (*p == '-' || *p == '+'));

        if (p == end || *p < '0' || *p > '9') {
            return -1;
        }

        for (e = 0; p < end && *p >= '0' && *p <= '9'; p++) {
            if (e > 1000) {
                slow = 1;
                continue;
            }

            e = e * 10 + (*p - '0');
        }

        exp10 += eneg ? -e : e;
    }

    *pp = p;

#if (FLT_EVAL_METHOD != 0)
    /* x87 extended precision would round twice */
    slow = 1;
#endif

    if (slow) {
        return 1;
    }

    if (m == 0) {
        *value = neg ? -0.0 : 0.0;
        return 0;
    }

    if (m > ((uint64_t) 1 << 53) || exp10 > 22 || exp10 < -22) {
        return 1;
    }

    *value = (exp10 >= 0) ? (double) m * fanout_pow10d[exp10]
                          : (double) m / fanout_pow10d[-exp10];
    if (neg) {
        *value = -*value;
    }

    return 0;
}


/* the long way: a copy for strtod(), or the long form */

static int
fanout_number_slow(const char *p, size_t len, double *value)
{
    char   buf[64], *end;

    if (len >= sizeof(buf)) {
        return fanout_json_long_number(p, p + len, value);
    }

    /* the body is not NUL-terminated: strtod() needs a copy */
    memcpy(buf, p, len);
    buf[len] = '\0';

    *value = strtod(buf, &end);

    return (end == buf + len && isfinite(*value)) ? 0 : -1;
}


int
fanout_json_number(fanout_span_t *v, double *value)
{
    const char  *p;

    if (v->len == 0
        || !(v->p[0] == '-' || (v->p[0] >= '0' && v->p[0] <= '9')))
    {
        return -1;
    }

    p = v->p;

    if (fanout_number_scan(&p, v->p + v->len, value) == 0
        && p == v->p + v->len)
    {
        return 0;
    }

    return fanout_number_slow(v->p, v->len, value);
}


int
fanout_json_number_at(const char **pp, const char *end, double *value)
{
    int          rc;
    const char  *p;

    p = *pp;
    rc = fanout_number_scan(&p, end, value);

    if (rc < 0) {
        return -1;
    }

    if (rc == 1 && fanout_number_slow(*pp, (size_t) (p - *pp), value) != 0) {
        return -1;
    }

    *pp = p;

    return 0;
}


void
fanout_out_uint(fanout_out_t *o, unsigned long v)
{
    char   buf[24];
    char  *p;

    p = buf + sizeof(buf);

    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    fanout_out_raw(o, p, (size_t) (buf + sizeof(buf) - p));
}


/* the shortest of %.15g, %.16g and %.17g that reads back the same */

/*
 * Numbers are written as the shortest text that reads back to the same
 * double, in printf's %g style at the first of 15, 16 and 17 digits that
 * does.  The digits come from exact 128-bit integer arithmetic, not from
 * printf: v = m * 2^-s, so v * 10^k = m * 5^k / 2^(s-k), correctly rounded
 * to 17 digits, whose nearest shorter neighbours are the only candidates
 * (any shorter text that reads back lies between them).  That covers
 * 1e-16 <= |v| < 2^64; other values take snprintf() and strtod().
 */

#if (defined __SIZEOF_INT128__)

typedef unsigned __int128  fanout_u128_t;

static const uint64_t  fanout_pow10u[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL,
    10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL,
    100000000000ULL, 1000000000000ULL, 10000000000000ULL,
    100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL,
    10000000000000000000ULL
};


static const uint64_t  fanout_pow5u[28] = {
    1ULL, 5ULL, 25ULL, 125ULL, 625ULL, 3125ULL, 15625ULL, 78125ULL,
    390625ULL, 1953125ULL, 9765625ULL, 48828125ULL, 244140625ULL,
    1220703125ULL, 6103515625ULL, 30517578125ULL, 152587890625ULL,
    762939453125ULL, 3814697265625ULL, 19073486328125ULL,
    95367431640625ULL, 476837158203125ULL, 2384185791015625ULL,
    11920928955078125ULL, 59604644775390625ULL, 298023223876953125ULL,
    1490116119384765625ULL, 7450580596923828125ULL
};


/*
 * v > 0: d has 17 digits, v ~ d * 10^e10, and *dir says where v lies: 1
 * above d, -1 below, 0 at it; -1 out of the exact range.
 */

static int
fanout_digits17(double v, uint64_t *d, int *e10, int *dir)
{
    int            n, k, t, i;
    uint64_t       bits, m, q, p5;
    fanout_u128_t  x, r, half;

    memcpy(&bits, &v, sizeof(double));

    if (((bits >> 52) & 0x7ff) == 0) {
        return -1;                          /* subnormal */
    }

    m = (bits & (((uint64_t) 1 << 52) - 1)) | ((uint64_t) 1 << 52);
    t = (int) ((bits >> 52) & 0x7ff) - 1075;   /* v = m * 2^t */

    if (t >= 0) {
        if (t > 11) {
            return -1;
        }

        q = m << t;

        for (n = 1; n < 20 && q >= fanout_pow10u[n]; n++) { /* void */ }

        if (n <= 17) {
            *d = q * fanout_pow10u[17 - n];
            *e10 = n - 17;
            *dir = 0;
            return 0;
        }

        r = q % fanout_pow10u[n - 17];
        q /= fanout_pow10u[n - 17];
        half = fanout_pow10u[n - 17] / 2;
        *dir = (r != 0);

        if (r > half || (r == half && (q & 1))) {
            q++;
            *dir = -1;
        }

        if (q == fanout_pow10u[17]) {
            q = fanout_pow10u[16];
            n++;
        }

        *d = q;
        *e10 = n - 17;
        return 0;
    }

    /*
     * floor(log10(v)) from the binary exponent, without libm: log10(2)
     * is 1233/4096 to within 1e-5, so the estimate is off by at most one
     * for the exponents here, and the loop below corrects it.
     */
    n = t + 52;                             /* v in [2^n, 2^(n+1)) */
    k = 16 - ((n >= 0) ? (n * 1233) >> 12 : -((-n * 1233 + 4095) >> 12));

    for (i = 0; i < 3; i++) {
        if (k < 0 || k > 32) {
            return -1;
        }

        /* m * 5^k < 2^53 * 5^32 < 2^128 */
        p5 = fanout_pow5u[k < 27 ? k : 27];
        x = (fanout_u128_t) m * p5;

        for (n = 27; n < k; n++) {
            x *= 5;
        }

        t = -t - k;                         /* now v * 10^k = x / 2^t */

        *dir = 0;

        if (t <= 0) {
            x <<= -t;
            q = (x >> 64) ? UINT64_MAX : (uint64_t) x;

        } else if (t >= 127) {
            q = 0;

        } else {
            r = x & ((((fanout_u128_t) 1) << t) - 1);
            half = ((fanout_u128_t) 1) << (t - 1);
            x >>= t;
            q = (x >> 64) ? UINT64_MAX : (uint64_t) x;
            *dir = (r != 0);

            if (r > half || (r == half && (q & 1))) {
                q++;
                *dir = -1;
            }
        }

        t = -(t + k);                       /* back to v = m * 2^t */

        if (q == fanout_pow10u[17]) {
            *d = fanout_pow10u[16];
            *e10 = 1 - k;
            return 0;
        }

        if (q < fanout_pow10u[16]) {
            k++;
            continue;
        }

        if (q >= fanout_pow10u[17]) {
            k--;
            continue;
        }

        *d = q;
        *e10 = -k;
        return 0;
    }

    return -1;
}


/* does c * 10^e10 read back as v?  exact when Clinger's path applies */

static int
fanout_reads_as(uint64_t c, int e10, double v)
{
    char    buf[48];
    double  x;

#if (FLT_EVAL_METHOD == 0)
    if (c <= ((uint64_t) 1 << 53) && e10 >= -22 && e10 <= 22) {
        x = (e10 >= 0) ? (double) c * fanout_pow10d[e10]
                       : (double) c / fanout_pow10d[-e10];
        return x == v;
    }
#endif

    snprintf(buf, sizeof(buf), "%llue%d", (unsigned long long) c, e10);
    x = strtod(buf, NULL);

    return x == v;
}


static const char  fanout_digit_pairs[201] =
    "00010203040506070809" "10111213141516171819" "20212223242526272829"
    "30313233343536373839" "40414243444546474849" "50515253545556575859"
    "60616263646566676869" "70717273747576777879" "80818283848586878889"
    "90919293949596979899";


/* c * 10^e10 as printf's %.<prec>g writes it: the digits two at a time,
 * then copied in at most three runs */

static void
fanout_out_g(fanout_out_t *o, uint64_t c, int e10, int prec)
{
    int    n, x, r;
    char   digits[24], buf[48], *d, *b;

    while (c % 10 == 0) {
        c /= 10;
        e10++;
    }

    d = digits + sizeof(digits);

    while (c >= 100) {
        r = (int) (c % 100);
        c /= 100;
        d -= 2;
        memcpy(d, &fanout_digit_pairs[r * 2], 2);
    }

    if (c >= 10) {
        d -= 2;
        memcpy(d, &fanout_digit_pairs[c * 2], 2);

    } else {
        *--d = (char) ('0' + c);
    }

    n = (int) (digits + sizeof(digits) - d);
    x = e10 + n - 1;                        /* the first digit's exponent */
    b = buf;

    if (x < -4 || x >= prec) {
        *b++ = d[0];

        if (n > 1) {
            *b++ = '.';
            memcpy(b, d + 1, (size_t) (n - 1));
            b += n - 1;
        }

        *b++ = 'e';
        *b++ = (x < 0) ? '-' : '+';
        x = (x < 0) ? -x : x;

        if (x >= 100) {
            *b++ = (char) ('0' + x / 100);
        }

        memcpy(b, &fanout_digit_pairs[(x % 100) * 2], 2);
        b += 2;

    } else if (x < 0) {
        /* 0.000ddd: at most 3 zeros after the point */
        memcpy(b, "0.000", (size_t) (1 - x));
        b += 1 - x;
        memcpy(b, d, (size_t) n);
        b += n;

    } else if (n > x + 1) {
        memcpy(b, d, (size_t) (x + 1));
        b += x + 1;
        *b++ = '.';
        memcpy(b, d + x + 1, (size_t) (n - x - 1));
        b += n - x - 1;

    } else {
        memcpy(b, d, (size_t) n);
        b += n;
        memset(b, '0', (size_t) (x + 1 - n));
        b += x + 1 - n;
    }

    fanout_out_raw(o, buf, (size_t) (b - buf));
}


static int
fanout_out_double_fast(fanout_out_t *o, double v)
{
    int       e10, prec, first, dir;
    uint64_t  d, p, lo, rem, c[2];

    if (fanout_digits17(v < 0 ? -v : v, &d, &e10, &dir) != 0) {
        return -1;
    }

    if (v < 0) {
        fanout_out_raw(o, "-", 1);
        v = -v;
    }

    for (prec = 15; prec <= 16; prec++) {
        p = fanout_pow10u[17 - prec];
        lo = d / p;
        rem = d - lo * p;

        /*
         * Neither neighbour can read back when the nearer is further from
         * v than half its step (at most 2^-53 of v, under d >> 52 units
         * of d, which is within half a unit of v): the mean of a few
         * numbers usually needs all 17 digits.
         */
        if ((rem < p - rem ? rem : p - rem) > (d >> 52) + 1) {
            continue;
        }

        /* the neighbour nearer v first, as printf rounds */
        first = (d - lo * p > (lo + 1) * p - d
                 || (d - lo * p == (lo + 1) * p - d
                     && (dir > 0 || (dir == 0 && (lo & 1)))));
        c[first] = lo;
        c[!first] = lo + 1;

        if (fanout_reads_as(c[0], e10 + 17 - prec, v)) {
            fanout_out_g(o, c[0], e10 + 17 - prec, prec);
            return 0;
        }

        if (fanout_reads_as(c[1], e10 + 17 - prec, v)) {
            fanout_out_g(o, c[1], e10 + 17 - prec, prec);
            return 0;
        }
    }

    fanout_out_g(o, d, e10, 17);

    return 0;
}

#endif


void
fanout_out_double(fanout_out_t *o, double v)
{
    int    prec, n;
    char   buf[32];

    if (!isfinite(v)) {
        fanout_out_raw(o, "null", 4);
        return;
    }

    if (v == 0) {
        fanout_out_raw(o, signbit(v) ? "-0" : "0", signbit(v) ? 2 : 1);
        return;
    }

    if (v > -1e15 && v < 1e15 && v == (double) (int64_t) v) {
        /* (the range first: a cast of a larger double is undefined) */
        /* an integer (a count, a weight): its digits, as %.17g has them */
        if (v < 0) {
            fanout_out_raw(o, "-", 1);
            v = -v;
        }

        fanout_out_uint(o, (unsigned long) v);
        return;
    }

#if (defined __SIZEOF_INT128__)
    if (fanout_out_double_fast(o, v) == 0) {
        return;
    }
#endif

    n = 0;

    for (prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, sizeof(buf), "%.*g", prec, v);

        if (strtod(buf, NULL) == v) {
            break;
        }
    }

    fanout_out_raw(o, buf, (size_t) n);
}


#if (defined __SIZEOF_INT128__)

/* the 17 digits d (v ~ d * 10^e10, v beyond them by dir) rounded to prec
 * significant digits, as %.<prec>g rounds */

static void
fanout_round17(uint64_t d, int e10, int dir, int prec, uint64_t *c, int *e)
{
    uint64_t  p, lo, rem;

    p = fanout_pow10u[17 - prec];
    lo = d / p;
    rem = d - lo * p;

    if (rem > p - rem
        || (rem == p - rem && (dir > 0 || (dir == 0 && (lo & 1)))))
    {
        lo++;
    }

    *c = lo;
    *e = e10 + 17 - prec;
}


/* v (positive) rounded to prec significant digits, as %.<prec>g would */

static int
fanout_round_digits(double v, int prec, uint64_t *c, int *e10)
{
    int       dir, e;
    uint64_t  d;

    if (fanout_digits17(v, &d, &e, &dir) != 0) {
        return -1;
    }

    fanout_round17(d, e, dir, prec, c, e10);

    return 0;
}


/*
 * Does c * 10^e10 read back as the float f (positive)?  The decimal is
 * rounded to a double exactly (Clinger's path), then to a float: the two
 * roundings agree unless the double falls exactly on the midpoint of two
 * floats, which strtof() settles.
 */

static int
fanout_reads_as_float(uint64_t c, int e10, float f)
{
    char      buf[48];
    float     g, n;
    double    x;
    uint32_t  bits;

#if (FLT_EVAL_METHOD == 0)
    if (c <= ((uint64_t) 1 << 53) && e10 >= -22 && e10 <= 22) {
        x = (e10 >= 0) ? (double) c * fanout_pow10d[e10]
                       : (double) c / fanout_pow10d[-e10];
        g = (float) x;

        if ((double) g == x) {
            return g == f;
        }

        /* g's neighbour on x's side (g >= 0: one more or one less in
         * its bits) */
        memcpy(&bits, &g, sizeof(float));
        bits += (x > (double) g) ? 1 : -1;
        memcpy(&n, &bits, sizeof(float));

        /* adjacent floats: their sum is exact in a double */
        if ((double) g + (double) n != 2 * x) {
            return g == f;
        }
    }
#endif

    snprintf(buf, sizeof(buf), "%llue%d", (unsigned long long) c, e10);

    return strtof(buf, NULL) == f;
}


/* the shortest text that reads back as the float f (not 0): its 17
 * digits once, then each precision from 1 rounded from them */

static int
fanout_out_float_fast(fanout_out_t *o, float f)
{
    int       dir, e10, e, prec;
    uint64_t  d, c, p, rem;

    if (fanout_digits17(fabs((double) f), &d, &e10, &dir) != 0) {
        return -1;
    }

    if (f < 0) {
        fanout_out_raw(o, "-", 1);
        f = -f;
    }

    for (prec = 1; prec < 9; prec++) {
        /*
         * A rounding whose error passes d / 2^23 (2^-23 of the value,
         * more than half a float's step: the floats fanout_digits17()
         * takes, 1e-16 and up, are normal) cannot read back: most
         * shorter precisions are passed over by this one test.
         */
        p = fanout_pow10u[17 - prec];
        rem = d % p;

        if ((rem < p - rem ? rem : p - rem) > (d >> 23)) {
            continue;
        }

        fanout_round17(d, e10, dir, prec, &c, &e);

        if (fanout_reads_as_float(c, e, f)) {
            break;
        }
    }

    /* 9 digits always read back as the same float */
    if (prec == 9) {
        fanout_round17(d, e10, dir, 9, &c, &e);
    }

    fanout_out_g(o, c, e, prec);

    return 0;
}

#endif


void
fanout_out_number(fanout_out_t *o, double v, int precision)
{
    int           prec, n;
    char          buf[48];
    float         f;
    fanout_out_t  t;
#if (defined __SIZEOF_INT128__)
    int           e10;
    uint64_t      c;
#endif

    if (precision == FANOUT_PRECISION_FP64) {
        fanout_out_double(o, v);
        return;
    }

    if (precision == FANOUT_PRECISION_FP32) {
        f = (float) v;

        if (!isfinite(f)) {
            fanout_out_raw(o, "null", 4);
            return;
        }

        if (f == 0) {
            fanout_out_raw(o, signbit(f) ? "-0" : "0", signbit(f) ? 2 : 1);
            return;
        }

#if (defined __SIZEOF_INT128__)
        if (fanout_out_float_fast(o, f) == 0) {
            return;
        }
#endif

        /* the shortest that reads back as the same float */
        for (prec = 1; prec <= 9; prec++) {
            t.buf = buf;
            t.len = 0;
            fanout_out_number(&t, (double) f, prec);
            buf[t.len] = '\0';

            if (strtof(buf, NULL) == f || prec == 9) {
                fanout_out_raw(o, buf, t.len);
                return;
            }
        }
    }

    if (!isfinite(v)) {
        fanout_out_raw(o, "null", 4);
        return;
    }

    if (v == 0) {
        fanout_out_raw(o, signbit(v) ? "-0" : "0", signbit(v) ? 2 : 1);
        return;
    }

    prec = (precision < 1) ? 1 : (precision > 17) ? 17 : precision;

#if (defined __SIZEOF_INT128__)
    if (fanout_round_digits(v < 0 ? -v : v, prec, &c, &e10) == 0) {
        if (v < 0) {
            fanout_out_raw(o, "-", 1);
        }

        fanout_out_g(o, c, e10, prec);
        return;
    }
#endif

    n = snprintf(buf, sizeof(buf), "%.*g", prec, v);
    fanout_out_raw(o, buf, (size_t) n);
}

