/*
 * A minimal TAP producer for the C unit tests, run by prove through
 * t/001-unit.t.
 */

#ifndef _FANOUT_TAP_H_INCLUDED_
#define _FANOUT_TAP_H_INCLUDED_


#include <stdio.h>
#include <string.h>


static int  tap_n, tap_failed;


#define ok(cond, name)                                                        \
    do {                                                                      \
        int  tap_c = (cond) ? 1 : 0;                                          \
        printf("%sok %d - %s\n", tap_c ? "" : "not ", ++tap_n, name);         \
        if (!tap_c) {                                                         \
            tap_failed++;                                                     \
            printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                     \
    } while (0)

#define is_str(got, want, name)                                               \
    do {                                                                      \
        const char  *tap_g = (got), *tap_w = (want);                          \
        ok(tap_g != NULL && strcmp(tap_g, tap_w) == 0, name);                 \
        if (tap_g == NULL || strcmp(tap_g, tap_w) != 0) {                     \
            printf("#   got:  %s\n#   want: %s\n",                            \
                   tap_g ? tap_g : "(null)", tap_w);                          \
        }                                                                     \
    } while (0)

#define done_testing()                                                        \
    (printf("1..%d\n", tap_n), tap_failed ? 1 : 0)


#endif /* _FANOUT_TAP_H_INCLUDED_ */
