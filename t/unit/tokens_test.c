/*
 * Unit tests of fanout_tokens.c: a call's estimate from its body, the
 * usage an answer reports, as JSON or as a stream of server-sent events.
 */

#include "tap.h"
#include "fanout_tokens.h"


static uint64_t
estimate(const char *body, int *capped)
{
    return fanout_tokens_estimate(body, strlen(body), capped);
}


static fanout_usage_t
usage(const char *body)
{
    fanout_usage_t  u;

    fanout_tokens_usage(body, strlen(body), &u);

    return u;
}


static int
mu(const char *s)
{
    return fanout_tokens_maybe_usage(s, strlen(s));
}


static size_t
ev(const char *s, int *nl)
{
    return fanout_tokens_events(s, strlen(s), nl);
}


int
main(void)
{
    int             capped;
    uint64_t        n;
    fanout_usage_t  u;
    const char     *b;

    /* the estimate: the cap said, plus the body's size / 4 */

    b = "{\"model\":\"m\",\"max_tokens\":100,\"messages\":[]}";
    n = estimate(b, &capped);
    ok(n == 100 + (strlen(b) + 3) / 4 && capped == 1,
       "estimate: max_tokens plus the prompt's size");

    b = "{\"max_completion_tokens\":50,\"max_tokens\":70}";
    ok(estimate(b, &capped) == 70 + (strlen(b) + 3) / 4,
       "estimate: the largest of several caps");

    b = "{\"max_output_tokens\":8}";
    ok(estimate(b, &capped) == 8 + (strlen(b) + 3) / 4 && capped,
       "estimate: the Responses API's max_output_tokens");

    b = "{\"messages\":[{\"max_tokens\":999}]}";
    ok(estimate(b, &capped) == (strlen(b) + 3) / 4 && capped == 0,
       "estimate: a nested max_tokens is not the request's");

    b = "{\"max_tokens\":100";
    ok(estimate(b, &capped) == (strlen(b) + 3) / 4 && capped == 0,
       "estimate: not JSON, all prompt");

    b = "{\"max_tokens\":-5}";
    ok(estimate(b, &capped) == (strlen(b) + 3) / 4,
       "estimate: a negative cap counts nothing");

    b = "{\"max_tokens\":1e300}";
    ok(estimate(b, &capped) == 1000000000000ULL + (strlen(b) + 3) / 4,
       "estimate: a huge cap is bounded");

    ok(estimate("", &capped) == 0 && capped == 0, "estimate: an empty body");

    b = "  {\"max_tokens\":10}\n";
    ok(estimate(b, &capped) == 10 + (strlen(b) + 3) / 4,
       "estimate: whitespace around the object");

    /* usage of a JSON answer */

    u = usage("{\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,"
              "\"completion_tokens\":30,\"total_tokens\":42}}");
    ok(u.found && u.input == 12 && u.output == 30 && u.total == 42,
       "usage: OpenAI's prompt, completion and total");

    u = usage("{\"usage\":{\"input_tokens\":5,\"output_tokens\":7}}");
    ok(u.found && u.total == 12, "usage: Anthropic's, total is the sum");

    u = usage("{\"choices\":[{\"usage\":{\"total_tokens\":9}}]}");
    ok(!u.found, "usage: a nested usage is not the answer's");

    u = usage("{\"usage\":\"lots\"}");
    ok(!u.found, "usage: not an object");

    u = usage("{\"usage\":{\"total_tokens\":-3}}");
    ok(u.found && u.total == 0, "usage: a negative count is nothing");

    u = usage("{\"usage\":{\"total_tokens\":1e30}}");
    ok(u.found && u.total == 1000000000000ULL, "usage: a lie is bounded");

    u = usage("{\"usage\":{\"total_tokens\":4}");
    ok(!u.found, "usage: a truncated answer says nothing");

    u = usage("");
    ok(!u.found && u.events == 0, "usage: an empty answer");

    /* a stream */

    u = usage("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
              "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n"
              "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,"
              "\"completion_tokens\":2,\"total_tokens\":5}}\n\n"
              "data: [DONE]\n\n");
    ok(u.found && u.total == 5 && u.events == 3,
       "stream: the final chunk's usage, events counted, [DONE] not");

    u = usage("event: x\ndata:{\"a\":1}\n\ndata: {\"b\":2}\n\n");
    ok(!u.found && u.events == 2, "stream: no usage, events counted");

    u = usage("data: {\"usage\":{\"total_tokens\":9}}\n"
              "data: {\"usage\":{\"total_tokens\":11}}\n");
    ok(u.found && u.total == 11, "stream: the last usage wins");

    u = usage("data: {\"usage\":{\"total_tokens\":9}");
    ok(!u.found && u.events == 1, "stream: a cut event says nothing");

    /* the quick look for a usage */
    ok(mu("{\"usage\":{}}"), "maybe: there");
    ok(mu("{\"a\":1,\"usage\""),
       "maybe: at the very end");
    ok(!mu("{\"usage"), "maybe: cut before its quote");
    ok(!mu("{\"uusage\":1}"), "maybe: not a key");
    ok(!mu("usage\""), "maybe: no quote before");
    ok(!mu("[1,2,3]"), "maybe: numbers");
    ok(!mu(""), "maybe: nothing");

    /* a stream's events, across pieces */
    {
        int  nl = 0;

        ok(ev("data: a\n\ndata: b\n", &nl) == 1
           && nl == 1, "events: one ended, the next's line ended");
        ok(ev("\ndata: c\r\n\r\n", &nl) == 2,
           "events: the blank line across pieces, and CRLF's");
        ok(ev("data: d", &nl) == 0 && nl == 0,
           "events: none in a line that goes on");
        ok(ev("", &nl) == 0, "events: nothing");
        nl = 1;
        ok(ev("\r", &nl) == 0 && nl == 1
           && ev("\r\n\r\r\n", &nl) == 2 && nl == 1,
           "events: CRs alone keep a line's end, across pieces");
        ok(ev("x\r", &nl) == 0 && nl == 0 && ev("\n\n", &nl) == 1,
           "events: a line of text then CR does not end an event");
    }

    /* usage: only the events that name it are read, the last one counts */
    {
        fanout_usage_t  u;
        const char     *s = "data: {\"usage\":{\"total_tokens\":7}}\n\n"
                            "data: {\"choices\":[]}\n\n"
                            "data: {\"u\":1,\"usage\":{\"prompt_tokens\":2,"
                            "\"completion_tokens\":3}}\n\n"
                            "data: {\"x\":\"usage\"}\n\n";

        fanout_tokens_usage(s, strlen(s), &u);
        ok(u.found && u.total == 5 && u.input == 2 && u.output == 3
           && u.events == 4, "stream: the last usage counts, a string not");
    }

    return done_testing();
}
