/*
 * Unit tests of fanout_json.c: the validating scanner (checked against
 * jansson as an oracle on mutated documents), dot paths and the writer.
 */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <jansson.h>

#include "fanout_json.h"
#include "fanout_number.h"
#include "tap.h"


static int
valid(const char *doc)
{
    return fanout_json_scan(doc, strlen(doc), NULL, 0, NULL) == 0;
}


static const char *
at(const char *doc, const char *path)
{
    static char    buf[256];
    fanout_span_t  v;

    if (fanout_json_scan(doc, strlen(doc), path, strlen(path), &v) != 0) {
        return "(invalid)";
    }

    if (v.p == NULL) {
        return "(absent)";
    }

    snprintf(buf, sizeof(buf), "%.*s", (int) v.len, v.p);

    return buf;
}


/*
 * jansson as the oracle: it accepts the same texts, given that it refuses
 * integers beyond 64 bits (kept as reals here) and \u0000 (allowed here).
 */

static int
jansson_valid(const char *p, size_t n)
{
    json_t  *j;

    j = json_loadb(p, n, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL
                         | JSON_ALLOW_NUL, NULL);
    json_decref(j);

    return j != NULL;
}


static int
differential(const char *seed, unsigned *checked)
{
    int             mismatches;
    char           *buf;
    size_t          n, i, k;
    static const char  bytes[] = "{}[]\",:\\ 0-1.eEtfnu\x01\x80\xc3\xa9\xff";

    n = strlen(seed);
    buf = malloc(n + 2);
    mismatches = 0;

    /* every prefix, and every single-byte substitution and deletion */
    for (i = 0; i <= n; i++) {
        memcpy(buf, seed, i);

        if ((fanout_json_scan(buf, i, NULL, 0, NULL) == 0)
            != jansson_valid(buf, i))
        {
            printf("# prefix %zu of %s differs\n", i, seed);
            mismatches++;
        }

        (*checked)++;
    }

    for (i = 0; i < n; i++) {
        for (k = 0; k < sizeof(bytes) - 1; k++) {
            memcpy(buf, seed, n);
            buf[i] = bytes[k];

            if ((fanout_json_scan(buf, n, NULL, 0, NULL) == 0)
                != jansson_valid(buf, n))
            {
                printf("# byte %zu of %s as 0x%02x differs\n", i, seed,
                       (unsigned char) bytes[k]);
                mismatches++;
            }

            (*checked)++;
        }

        memcpy(buf, seed, i);
        memcpy(buf + i, seed + i + 1, n - i - 1);

        if ((fanout_json_scan(buf, n - 1, NULL, 0, NULL) == 0)
            != jansson_valid(buf, n - 1))
        {
            printf("# deletion %zu of %s differs\n", i, seed);
            mismatches++;
        }

        (*checked)++;
    }

    free(buf);

    return mismatches;
}


static void
test_scan(void)
{
    char   deep[2 * FANOUT_JSON_MAX_DEPTH + 8];
    size_t i;

    ok(valid("{}"), "empty object");
    ok(valid(" [1, -2.5e+3, \"x\", true, false, null, {\"a\": []}] "),
       "every kind of value");
    ok(valid("3.5"), "a bare number");
    ok(valid("\"\\u00e9\\ud83d\\ude00\\n\""), "escapes and a surrogate pair");
    ok(valid("\"caf\xc3\xa9\""), "UTF-8");
    ok(valid("12345678901234567890123"), "an integer beyond 64 bits");

    ok(!valid(""), "empty");
    ok(!valid("   "), "only whitespace");
    ok(!valid("{\"a\":1"), "truncated object");
    ok(!valid("[1,]"), "trailing comma");
    ok(!valid("{\"a\" 1}"), "missing colon");
    ok(!valid("{a:1}"), "unquoted key");
    ok(!valid("01"), "leading zero");
    ok(!valid("1."), "no digit after the point");
    ok(!valid("-"), "a lone minus");
    ok(!valid(".5"), "no digit before the point");
    ok(!valid("1e"), "empty exponent");
    ok(!valid("NaN"), "NaN");
    ok(!valid("tru"), "truncated true");
    ok(!valid("\"a\tb\""), "control character in a string");
    ok(!valid("\"\\x\""), "unknown escape");
    ok(!valid("\"\\ud83d\""), "lone high surrogate");
    ok(!valid("\"\\ude00\""), "lone low surrogate");
    ok(!valid("\"\xc3\""), "truncated UTF-8");
    ok(!valid("\"\xc0\xaf\""), "overlong UTF-8");
    ok(!valid("\"\xed\xa0\x80\""), "UTF-8 surrogate");
    ok(!valid("{} {}"), "two documents");
    ok(!valid("<html>"), "HTML");

    for (i = 0; i < FANOUT_JSON_MAX_DEPTH; i++) {
        deep[i] = '[';
        deep[FANOUT_JSON_MAX_DEPTH + i] = ']';
    }

    ok(fanout_json_scan(deep, 2 * FANOUT_JSON_MAX_DEPTH, NULL, 0, NULL) == 0,
       "nesting at the depth limit");

    memmove(deep + 1, deep, 2 * FANOUT_JSON_MAX_DEPTH);
    deep[0] = '[';
    deep[2 * FANOUT_JSON_MAX_DEPTH + 1] = ']';

    ok(fanout_json_scan(deep, 2 * FANOUT_JSON_MAX_DEPTH + 2, NULL, 0, NULL)
       != 0, "nesting beyond the limit is refused, not a crash");
}


static void
test_oracle(void)
{
    size_t     i;
    unsigned   checked;
    int        mismatches;

    static const char  *seeds[] = {
        "{\"output\":{\"scores\":[0.1,0.2,0.7]},\"label\":\"cat\"}",
        "[1,-0,2.5e-3,1E+2,true,false,null,\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]",
        "{\"k\":\"\\u00e9\\ud83d\\ude00 caf\xc3\xa9 \xe2\x82\xac "
            "\xf0\x9f\x98\x80\"}",
        " { \"a\" : [ { } , [ ] , \"\" ] } ",
        "-12.5e10",
        "\"x\"",
    };

    checked = 0;
    mismatches = 0;

    for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        mismatches += differential(seeds[i], &checked);
    }

    printf("# %u mutated documents checked against jansson\n", checked);
    ok(mismatches == 0, "the scanner agrees with jansson on every mutation");
}


static void
test_paths(void)
{
    const char  *doc;

    ok(fanout_json_path_check("label", 5) == 0, "path: one segment");
    ok(fanout_json_path_check("a.0.b", 5) == 0, "path: index segment");
    ok(fanout_json_path_check("", 0) != 0, "path: empty");
    ok(fanout_json_path_check(".a", 2) != 0, "path: leading dot");
    ok(fanout_json_path_check("a.", 2) != 0, "path: trailing dot");
    ok(fanout_json_path_check("a..b", 4) != 0, "path: empty segment");
    ok(fanout_json_path_check("a b", 3) != 0, "path: space");

    doc = "{\"output\":{\"scores\":[0.1, 0.9],\"n\":{\"x\":1}},"
          "\"choices\":[{\"label\":\"cat\"},{\"label\":\"dog\"}],"
          "\"10\":\"ten\",\"a.b\":1,\"caf\\u00e9\":2,\"dup\":1,\"dup\":[2]}";

    is_str(at(doc, "output.scores"), "[0.1, 0.9]", "an array's span");
    is_str(at(doc, "output.scores.1"), "0.9", "an array index");
    is_str(at(doc, "output.n"), "{\"x\":1}", "an object's span");
    is_str(at(doc, "choices.1.label"), "\"dog\"", "index then key");
    is_str(at(doc, "choices.2.label"), "(absent)", "index out of range");
    is_str(at(doc, "choices.x"), "(absent)", "a name into an array");
    is_str(at(doc, "output.scores.0.x"), "(absent)", "a path through a number");
    is_str(at(doc, "10"), "\"ten\"", "a digit key of an object");
    is_str(at(doc, "a.b"), "(absent)", "dots always separate segments");
    is_str(at(doc, "caf\xc3\xa9"), "2", "an escaped key matches its text");
    is_str(at(doc, "dup"), "[2]", "of duplicate keys the last counts");
    is_str(at(doc, "missing"), "(absent)", "a missing key");
    is_str(at("[1,2", "0"), "(invalid)", "an invalid document finds nothing");
    is_str(at("5", "a"), "(absent)", "a path into a scalar");
}


static void
test_selectors(void)
{
    unsigned       m;
    const char    *doc, *ok_paths[] = {
        "outputs[name=p].data", "a[b=c]", "a[b=c].d.0", "a.0[b=c]",
        "a[b=c][d=e]", "a[b=x y]", "a[b=c.d]"
    }, *bad_paths[] = {
        "a[b=[x]",
        "[a=b]", "a[b]", "a[=x]", "a[b=]", "a[b=c", "a[b=c]x", "a]b",
        "a[b=c].", "a[b.c=d]", "a[b c=d]", ".a[b=c]", "a..b[c=d]"
    };
    size_t         i;
    fanout_span_t  v;

    for (i = 0; i < sizeof(ok_paths) / sizeof(ok_paths[0]); i++) {
        ok(fanout_json_path_check(ok_paths[i], strlen(ok_paths[i])) == 0,
           ok_paths[i]);
    }

    for (i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        ok(fanout_json_path_check(bad_paths[i], strlen(bad_paths[i])) != 0,
           bad_paths[i]);
    }

    /* KServe v2 outputs in any order */
    doc = "{\"outputs\":[{\"data\":[1,2],\"name\":\"label\"},"
          "{\"name\":\"probabilities\",\"shape\":[2],"
          "\"data\":[0.25,0.75]}]}";

    is_str(at(doc, "outputs[name=probabilities].data"), "[0.25,0.75]",
           "select: by member value, the member before or after");
    is_str(at(doc, "outputs[name=label].data"), "[1,2]",
           "select: the member after the data");
    is_str(at(doc, "outputs[name=probabilities].data.1"), "0.75",
           "select: then an index");
    is_str(at(doc, "outputs[name=label]"),
           "{\"data\":[1,2],\"name\":\"label\"}", "select: the element");
    is_str(at(doc, "outputs[name=missing].data"), "(absent)",
           "select: no such element");
    is_str(at(doc, "outputs[shape=2].data"), "(absent)",
           "select: only a string member matches");
    is_str(at("{\"o\":[{\"n\":\"caf\\u00e9\",\"d\":1}]}", "o[n=caf\xc3\xa9].d"),
           "1", "select: an escaped value matches its text");
    is_str(at("{\"o\":{\"n\":\"x\"}}", "o[n=x]"), "(absent)",
           "select: an object is not an array");
    is_str(at("{\"o\":[{\"n\":\"x\",\"d\":1},{\"n\":\"x\",\"d\":2}]}",
              "o[n=x].d"), "1", "select: the first of two that match");

    doc = "{\"o\":[{\"n\":\"x\",\"d\":1},{\"n\":\"x\",\"d\":2}]}";
    ok(fanout_json_find(doc, strlen(doc), "o[n=x].d", 8, &v, &m) == 0
       && m > 1, "select: two that match count as a duplicate");
    is_str(at("{\"o\":[{\"n\":\"x\",\"d\":[1,{\"e\":[{\"k\":\"y\",\"z\":7}]}]}]}",
              "o[n=x].d.1.e[k=y].z"), "7", "select: nested selectors");
}


static void
test_writer(void)
{
    char          buf[256];
    double        d;
    fanout_out_t  o;
    fanout_span_t v;

    o.buf = NULL;
    o.len = 0;
    fanout_out_string(&o, "a\"b\\c\n\x01", 7);
    ok(o.len == 21, "string: counted");

    o.buf = buf;
    o.len = 0;
    fanout_out_string(&o, "a\"b\\c\n\x01", 7);
    buf[o.len] = '\0';
    is_str(buf, "\"a\\\"b\\\\c\\u000a\\u0001\"", "string: escaped");
    ok(valid(buf), "string: valid JSON");

    o.len = 0;
    fanout_out_uint(&o, 0);
    fanout_out_raw(&o, " ", 1);
    fanout_out_uint(&o, 18446744073709551615UL);
    buf[o.len] = '\0';
    is_str(buf, "0 18446744073709551615", "unsigned integers");

    o.len = 0;
    fanout_out_double(&o, 0.1 + 0.2);
    fanout_out_raw(&o, " ", 1);
    fanout_out_double(&o, 0.3);
    fanout_out_raw(&o, " ", 1);
    fanout_out_double(&o, 2.0);
    fanout_out_raw(&o, " ", 1);
    fanout_out_double(&o, 1.0 / 3);
    fanout_out_raw(&o, " ", 1);
    fanout_out_double(&o, 1e300 * 1e300);
    buf[o.len] = '\0';
    is_str(buf, "0.30000000000000004 0.3 2 0.3333333333333333 null",
           "doubles: shortest that reads back, null for infinity");

    v.p = "-2.5e3,";
    v.len = 6;
    ok(fanout_json_number(&v, &d) == 0 && d == -2500, "number span");
    v.p = "\"2\"";
    v.len = 3;
    ok(fanout_json_number(&v, &d) != 0, "a string is not a number");
    v.p = "1e999";
    v.len = 5;
    ok(fanout_json_number(&v, &d) != 0, "an infinite number is refused");
}


/* the writer and the reader against printf and strtod */

static uint64_t  rnd_state = 88172645463325252ULL;

static uint64_t
rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}


/* how many random cases each number test runs: FANOUT_NUMBER_TESTS, or a
 * million */

static size_t
number_tests(void)
{
    const char  *env;

    env = getenv("FANOUT_NUMBER_TESTS");

    return env ? (size_t) strtoul(env, NULL, 10) : 1000000;
}


static size_t
ref_double(double v, char *buf)
{
    int  prec, n;

    n = 0;

    for (prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, 32, "%.*g", prec, v);

        if (strtod(buf, NULL) == v) {
            break;
        }
    }

    return (size_t) n;
}


static void
test_numbers_random(void)
{
    int            kind, e;
    char           buf[256], ref[32], text[64];
    double         v, w;
    size_t         i, n, bad, longer, same, badread, nref;
    uint64_t       bits;
    fanout_out_t   o;
    fanout_span_t  s;

    n = number_tests();

    bad = 0;
    longer = 0;
    same = 0;

    for (i = 0; i < n; i++) {
        kind = (int) (i % 4);

        if (kind == 0) {
            /* any finite double */
            do {
                bits = rnd();
                memcpy(&v, &bits, sizeof(double));
            } while (!isfinite(v) || v == 0);

        } else if (kind == 1) {
            /* probabilities */
            v = (double) (rnd() >> 11) / 9007199254740992.0;

        } else if (kind == 2) {
            /* means of short decimals, as models write them */
            v = ((double) (rnd() % 10000000) / 1e7
                 + (double) (rnd() % 10000000) / 1e7
                 + (double) (rnd() % 10000000) / 1e7) / 3;

        } else {
            /* around 1e-16 .. 2^64, the exact path's edges */
            v = ldexp((double) (rnd() >> 11) + 1, (int) (rnd() % 140) - 110);
        }

        o.buf = buf;
        o.len = 0;
        fanout_out_double(&o, v);
        buf[o.len] = '\0';
        nref = ref_double(v, ref);

        if (strtod(buf, NULL) != v) {
            if (bad++ < 5) {
                printf("# %.17g written as %s\n", v, buf);
            }
        }

        if (o.len > nref) {
            if (longer++ < 5) {
                printf("# %.17g written as %s, printf: %s\n", v, buf, ref);
            }
        }

        same += (o.len == nref && memcmp(buf, ref, nref) == 0);
    }

    ok(bad == 0, "every random double reads back the same");
    ok(longer == 0, "and is never longer than printf's shortest");
    ok(same == n, "and is the very text printf's shortest %g writes");

    badread = 0;

    for (i = 0; i < n; i++) {
        /* decimal texts: up to 20 digits, a point, an exponent */
        e = (int) (rnd() % 60) - 30;
        snprintf(text, sizeof(text), "%s%llu%s%llue%d",
                 (rnd() & 1) ? "-" : "",
                 (unsigned long long) (rnd() % 100000),
                 (rnd() & 1) ? "." : ".0",
                 (unsigned long long) (rnd() % 1000000000000ULL), e);
        s.p = text;
        s.len = strlen(text);
        w = strtod(text, NULL);

        if (fanout_json_number(&s, &v) != 0 || v != w) {
            if (badread++ < 5) {
                printf("# %s read as %.17g, strtod: %.17g\n", text, v, w);
            }
        }
    }

    ok(badread == 0, "random decimal texts read as strtod reads them");

    o.buf = buf;
    o.len = 0;
    fanout_out_double(&o, 0.9809526);
    fanout_out_raw(&o, " ", 1);
    fanout_out_double(&o, 1e-05);
    fanout_out_raw(&o, " ", 1);
    fanout_out_double(&o, -123456789012345680.0);
    fanout_out_raw(&o, " ", 1);
    fanout_out_double(&o, 5e-324);
    fanout_out_raw(&o, " ", 1);
    fanout_out_double(&o, 1e300);
    fanout_out_raw(&o, " ", 1);
    fanout_out_double(&o, 18446744073709551616.0);
    fanout_out_raw(&o, " ", 1);
    fanout_out_double(&o, 100);
    fanout_out_raw(&o, " ", 1);
    fanout_out_double(&o, -0.0);
    buf[o.len] = '\0';
    is_str(buf, "0.9809526 1e-05 -1.2345678901234568e+17 4.94065645841247e-324"
           " 1e+300 1.8446744073709552e+19 100 -0",
           "doubles at the exact path's edges and beyond");
}


static const char *
number(double v, int precision)
{
    static char   buf[64];
    fanout_out_t  o;

    o.buf = buf;
    o.len = 0;
    fanout_out_number(&o, v, precision);
    buf[o.len] = '\0';

    return buf;
}


static void
test_precision(void)
{
    int      i, p, bad_digits, bad_fp32;
    char     want[64];
    float    f;
    double   v;

    is_str(number(0.9809526000000001, FANOUT_PRECISION_FP32), "0.9809526",
           "fp32: the FP32 mean the issue saw");
    is_str(number(0.011902453333333333, FANOUT_PRECISION_FP32),
           "0.011902453", "fp32: the other one");
    is_str(number(0.9809526000000001, FANOUT_PRECISION_FP64),
           "0.9809526000000001", "fp64: every digit the double has");
    is_str(number(0.9809526000000001, 4), "0.981", "4 digits");
    is_str(number(1234567.0, 3), "1.23e+06", "3 digits of a large number");
    is_str(number(-0.000123456, 2), "-0.00012", "2 digits, negative");
    is_str(number(9.999, 2), "10", "rounding carries");
    is_str(number(0.5, 1), "0.5", "1 digit");
    is_str(number(5e90, FANOUT_PRECISION_FP64), "5e+90",
           "a large integral value is not cast to an integer (undefined)");
    is_str(number(3, FANOUT_PRECISION_FP64), "3", "a small integer");
    is_str(number(-123456789012345.0, FANOUT_PRECISION_FP64),
           "-123456789012345", "an integer under 1e15, negative");
    is_str(number(1e300 * 1e10, FANOUT_PRECISION_FP32), "null",
           "fp32: infinity is null");
    is_str(number(1e39, FANOUT_PRECISION_FP32), "null",
           "fp32: past the float range is null");

    /* against printf and strtof, on random values */
    srand(7);
    bad_digits = 0;
    bad_fp32 = 0;

    for (i = 0; i < 200000; i++) {
        v = ((double) rand() / RAND_MAX - 0.5)
            * pow(10, (rand() % 40) - 20);
        p = 1 + rand() % 17;

        snprintf(want, sizeof(want), "%.*g", p, v);
        if (strcmp(number(v, p), want) != 0) {
            if (bad_digits++ < 3) {
                printf("# %.17g at %d: %s, printf %s\n", v, p,
                       number(v, p), want);
            }
        }

        f = (float) v;

        for (p = 1; p <= 9; p++) {
            snprintf(want, sizeof(want), "%.*g", p, (double) f);
            if (strtof(want, NULL) == f) {
                break;
            }
        }

        if (f != 0 && strcmp(number(v, FANOUT_PRECISION_FP32), want) != 0) {
            if (bad_fp32++ < 3) {
                printf("# fp32 %.9g: %s, want %s\n", (double) f,
                       number(v, FANOUT_PRECISION_FP32), want);
            }
        }
    }

    ok(bad_digits == 0, "digits=N writes what printf's %.Ng does (200,000 values)");
    ok(bad_fp32 == 0, "fp32 writes the shortest that strtof reads back as "
                      "the same float (200,000 values)");
}


/* the shortest text strtof reads back as f, by printf (the reference) */

static void
ref_float(float f, char *want, size_t size)
{
    int  p;

    for (p = 1; p <= 9; p++) {
        snprintf(want, size, "%.*g", p, (double) f);
        if (strtof(want, NULL) == f) {
            break;
        }
    }
}


static void
test_fp32_random(void)
{
    char          want[64];
    float         f;
    size_t        i, n, bad;
    uint32_t      bits;

    n = number_tests();
    bad = 0;
    bits = 0;

    for (i = 0; i < n; i++) {
        if (i % 2) {
            /* any float: subnormal, near the top, negative */
            do {
                bits = (uint32_t) rnd();
                memcpy(&f, &bits, sizeof(float));
            } while (!isfinite(f) || f == 0);

        } else {
            /* an embedding's numbers: a mean of three 9-digit ones */
            f = (float) (((double) (int64_t) (rnd() % 2000000001) - 1e9) / 1e10
                         + ((double) (int64_t) (rnd() % 2000000001) - 1e9) / 1e10
                         + ((double) (int64_t) (rnd() % 2000000001) - 1e9) / 1e10)
                / 3;
            if (f == 0) {
                continue;
            }
        }

        ref_float(f, want, sizeof(want));

        if (strcmp(number((double) f, FANOUT_PRECISION_FP32), want) != 0) {
            if (bad++ < 5) {
                printf("# fp32 %.9g (bits %08x): %s, want %s\n", (double) f,
                       (unsigned) bits, number((double) f,
                                              FANOUT_PRECISION_FP32), want);
            }
        }
    }

    ok(bad == 0, "fp32 of random floats (any bits, and embeddings' means) is "
                 "the shortest text printf writes that strtof reads back");
}


/* fanout_json_number_at() in a buffer of exactly the text's bytes (ASan
 * catches a read past it): where it stops and what it reads */

static void
test_number_at(void)
{
    int          e;
    char         text[96], *copy;
    double       v, w;
    size_t       i, n, bad, len, num;
    const char  *p;
    /* what may follow a number in JSON, and some that may not (a number
     * ends before them all: none is a digit, an 'e' or a '.') */
    static const char  *tails[] = { "", ",", "]", " ", "}", "\n", "-", "a",
                                    ",12345678", " 0.123456789" };
    static const struct {
        const char  *text;
        size_t       len;        /* of the number; 0: none */
    } cases[] = {
        { "0.12345678", 10 }, { "0.123456789]", 11 }, { "-0.012345678,", 12 },
        { "12345678", 8 }, { "1234567a", 7 }, { "12345678.5", 10 },
        { "0.0000000012345678", 18 }, { "1.23456789012345678901234", 25 },
        { "123456789012345678901234567890", 30 }, { "1e5", 3 }, { "1E+05,", 5 },
        { "0.5e-3]", 6 }, { "-", 0 }, { "-a", 0 }, { ".5", 0 }, { "1.", 0 },
        { "1.e5", 0 }, { "1e", 0 }, { "1e+", 0 }, { "01", 1 }, { "-0", 2 },
        { "0.00000000", 10 }, { "1.000000000000000000000001", 26 },
        { "9007199254740993", 16 }, { "1e-400", 6 }, { "1e400", 0 },
        { "0.1234567/", 9 }, { "0.12345:78", 7 }
    };

    bad = 0;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        len = strlen(cases[i].text);
        copy = malloc(len);
        memcpy(copy, cases[i].text, len);
        p = copy;

        if (fanout_json_number_at(&p, copy + len, &v) != 0) {
            num = 0;
            if (p != copy) {
                num = 99;
            }

        } else {
            num = (size_t) (p - copy);
            memcpy(text, copy, num);
            text[num] = '\0';
            w = strtod(text, NULL);
            if (v != w && !(num == 6 && w == 0 && v == 0)) {
                num = 98;
            }
        }

        if (num != cases[i].len) {
            if (bad++ < 5) {
                printf("# \"%s\": stopped after %zu, want %zu\n",
                       cases[i].text, num, cases[i].len);
            }
        }

        free(copy);
    }

    ok(bad == 0, "number_at: where a number ends, what it reads, and "
                 "none where JSON has none (28 cases)");

    n = number_tests();
    bad = 0;

    for (i = 0; i < n; i++) {
        e = (int) (rnd() % 50) - 25;
        len = (size_t) snprintf(text, sizeof(text), "%s%llu.%0*llu%s%s",
                                (rnd() & 1) ? "-" : "",
                                (unsigned long long) (rnd() % 1000),
                                (int) (rnd() % 12),
                                (unsigned long long) (rnd() % 100000000000ULL),
                                (rnd() % 3) ? "" : "e", "");
        if (text[len - 1] == 'e') {
            len += (size_t) snprintf(text + len, sizeof(text) - len, "%d", e);
        }

        num = len;
        len += (size_t) snprintf(text + len, sizeof(text) - len, "%s",
                                 tails[rnd() % (sizeof(tails) / sizeof(tails[0]))]);

        copy = malloc(len);
        memcpy(copy, text, len);
        p = copy;
        text[num] = '\0';
        w = strtod(text, NULL);

        if (fanout_json_number_at(&p, copy + len, &v) != 0
            || (size_t) (p - copy) != num || v != w)
        {
            if (bad++ < 5) {
                printf("# %.*s: read %.17g to %td, want %.17g to %zu\n",
                       (int) len, copy, v, p - copy, w, num);
            }
        }

        free(copy);
    }

    ok(bad == 0, "number_at: random numbers with any tail read as strtod "
                 "reads them, to their end");
}


static void
test_members(void)
{
    fanout_span_t  k[4], v[4];

    ok(fanout_json_members("{}", 2, k, v, 4) == 0, "members: none");
    ok(fanout_json_members("{ \"a\" : 1 , \"b\":[2,{\"c\":3}] }", 29, k, v, 4)
       == 2 && k[0].len == 3 && memcmp(k[0].p, "\"a\"", 3) == 0
       && v[0].len == 1 && v[0].p[0] == '1'
       && v[1].len == 11 && v[1].p[0] == '[',
       "members: keys with their quotes, values as spans");
    ok(fanout_json_members("[1]", 3, k, v, 4) == -1, "members: not an object");
    ok(fanout_json_members("{\"a\":1,\"b\":2}", 13, k, v, 1) == 2,
       "members: counting stops one past max");
    ok(fanout_json_members("{\"a\"1}", 6, k, v, 4) == -1,
       "members: a key without its colon");
    ok(fanout_json_members("{\"a\":1,\"a\":2}", 13, NULL, NULL, 4) == 2,
       "members: a duplicate key is two members (the caller decides)");
}


int
main(void)
{
    test_scan();
    test_members();
    test_oracle();
    test_paths();
    test_selectors();
    test_precision();
    test_writer();
    test_numbers_random();
    test_fp32_random();
    test_number_at();

    {
        /* numbers of any length, read by value */
        double         v;
        fanout_span_t  n;
        const char    *seventy = "1234567890123456789012345678901234567890"
                                 "123456789012345678901234567890";

        n.p = seventy;
        n.len = strlen(seventy);
        ok(fanout_json_number(&n, &v) == 0 && v == 1.2345678901234568e69,
           "a 70-digit number");

        n.p = "0.000000000000000000000000000000000000000000000000000000000000000025";
        n.len = strlen(n.p);
        ok(fanout_json_number(&n, &v) == 0 && v == 2.5e-65,
           "a long fraction");

        n.p = "-000.0000000000000000000000000000000000000000000000000000000000000e5";
        n.len = 3;
        ok(fanout_json_number(&n, &v) == -1 || v == 0, "zeros");

        n.p = "0.50000000000000000000000000000000000000000000000000000000000000000";
        n.len = strlen(n.p);
        ok(fanout_json_number(&n, &v) == 0 && v == 0.5, "trailing zeros");

        n.p = "1000000000000000000000000000000000000000000000000000000000000000000e-66";
        n.len = strlen(n.p);
        ok(fanout_json_number(&n, &v) == 0 && v == 1.0, "with an exponent");

        n.p = "1e400";
        n.len = 5;
        ok(fanout_json_number(&n, &v) == -1, "1e400 is not finite");

        n.p = "1000000000000000000000000000000000000000000000000000000000000000000e400";
        n.len = strlen(n.p);
        ok(fanout_json_number(&n, &v) == -1, "nor a long one beyond range");

        n.p = "1000000000000000000000000000000000000000000000000000000000000000000x";
        n.len = strlen(n.p);
        ok(fanout_json_number(&n, &v) == -1, "a long non-number");
    }

    return done_testing();
}
