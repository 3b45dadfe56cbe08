/*
 * Tokens of language models: what a call may use, read from its request
 * before it is made, and what it did use, read from its answer (a JSON
 * document or a stream of server-sent events).  Pure logic: no nginx
 * headers, no allocation, linear in the bytes read; unit-tested and fuzzed.
 * The token budgets of fanout_limit (tokens=) reserve the one and settle
 * with the other.
 */

#ifndef _FANOUT_TOKENS_H_INCLUDED_
#define _FANOUT_TOKENS_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/* a prompt's tokens, from its size: about four bytes each (English text
 * and JSON; an over-estimate of most, given back when the call settles) */
#define FANOUT_TOKENS_BYTES  4


/*
 * The tokens one call of this request body may use: the completion's cap
 * (the top-level "max_tokens", "max_completion_tokens" or
 * "max_output_tokens", the largest if several) plus the prompt's size in
 * tokens (len / FANOUT_TOKENS_BYTES, rounded up).  *capped: 1 when the
 * body says a cap, 0 when it does not (the completion is then unbounded,
 * and only the prompt is reserved).  A body that is not a JSON object is
 * all prompt.
 */
uint64_t fanout_tokens_estimate(const char *body, size_t len, int *capped);


/* what an answer says it used */
typedef struct {
    uint64_t    input;              /* prompt_tokens, input_tokens */
    uint64_t    output;             /* completion_tokens, output_tokens */
    uint64_t    total;              /* total_tokens, else input + output */
    uint64_t    events;             /* a stream's data events, [DONE] not */
    unsigned    found:1;            /* a "usage" object was read */
} fanout_usage_t;


/*
 * The usage an answer reports: a JSON object's top-level "usage" (OpenAI:
 * prompt_tokens, completion_tokens, total_tokens; Anthropic and the
 * Responses API: input_tokens, output_tokens), or a stream of server-sent
 * events ("data: {...}" lines), where the last event with a "usage" counts
 * (OpenAI sends it in the final chunk when the client asked
 * stream_options.include_usage) and the data events are counted, each
 * about one token of output, for when none says.  Never fails: an answer
 * that says nothing leaves found 0.
 */
void fanout_tokens_usage(const char *body, size_t len, fanout_usage_t *u);


/*
 * 1 when "usage" (with its quotes) is in these bytes: an answer without it
 * need not be scanned for its usage.  memchr() for each 'u', which few
 * answers of numbers hold: tens of instructions for a short answer, where
 * memmem()'s set-up alone costs hundreds.
 */
int fanout_tokens_maybe_usage(const char *p, size_t len);


/*
 * The events of a stream of server-sent events that end in these bytes
 * (a blank line each: "\n\n", "\r\n\r\n"); *newline carries whether the
 * bytes before ended a line, from one piece of the stream to the next (0
 * at its start).  One pass.
 */
size_t fanout_tokens_events(const char *p, size_t len, int *newline);


#endif /* _FANOUT_TOKENS_H_INCLUDED_ */
