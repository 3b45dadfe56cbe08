/*
 * JSON numbers, read and written (fanout_number.c): pure C, no nginx.
 */

#ifndef _FANOUT_NUMBER_H_INCLUDED_
#define _FANOUT_NUMBER_H_INCLUDED_


#include "fanout_json.h"


/* the span of a number, read as strtod() reads it: -1 when not a number */
int fanout_json_number(fanout_span_t *v, double *value);

/* the JSON number at *pp (before end), read in one pass: 0 and *pp past
 * it, or -1 when none starts there (*pp unmoved) */
int fanout_json_number_at(const char **pp, const char *end, double *value);

void fanout_out_uint(fanout_out_t *o, unsigned long v);
void fanout_out_double(fanout_out_t *o, double v);

/*
 * At a precision: FANOUT_PRECISION_FP64 (0) the shortest text that reads
 * back as the same double; 1 to 17 significant digits, rounded as printf
 * rounds, trailing zeros dropped; FANOUT_PRECISION_FP32 the shortest that
 * reads back as the same float (the value first rounded to a float).
 */
#define FANOUT_PRECISION_FP64   0
#define FANOUT_PRECISION_FP32  -32

void fanout_out_number(fanout_out_t *o, double v, int precision);


#endif /* _FANOUT_NUMBER_H_INCLUDED_ */
