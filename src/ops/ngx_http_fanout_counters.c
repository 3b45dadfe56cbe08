/*
 * The counter tables and the loops that print them (see the header).  A
 * counter added to a node's enum gets one line here and appears in the
 * status's JSON and Prometheus text, the dashboard's field list and the
 * status's size bound.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_counters.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_stats.h"

/* after nginx's headers, which set the feature macros first */
#include <jansson.h>


#define C(nm, obj, met, lab, val, hlp, typ, idx)                             \
    { nm, obj, met, lab, val, hlp, typ, idx, NGX_HTTP_FANOUT_COUNTER_ONE,    \
      0, NULL, NULL, 0, 0 }

/* one value in ms, in Prometheus as seconds (its family's name says so) */
#define CMS(nm, obj, met, hlp, typ, idx)                                     \
    { nm, obj, met, NULL, NULL, hlp, typ, idx, NGX_HTTP_FANOUT_COUNTER_ONE,  \
      0, NULL, NULL, 0, 1 }

#define KINDS(obj, met, hlp, idx)                                            \
    { NULL, obj, met, "result", NULL, hlp, "counter", idx,                   \
      NGX_HTTP_FANOUT_COUNTER_KINDS, FANOUT_NKINDS, NULL, NULL, 0, 0 }

#define HIST(nm, met, hlp, idx, nb, b, l, s, m)                              \
    { nm, NULL, met, NULL, NULL, hlp, "histogram", idx,                      \
      NGX_HTTP_FANOUT_COUNTER_HISTOGRAM, nb, b, l, s, m }


static const ngx_http_fanout_counter_t  ngx_http_fanout_loc_counters[] = {
    C("requests", NULL, "fanout_requests_total", NULL, NULL,
      "Client requests to a fan-out location.", "counter",
      NGX_HTTP_FANOUT_LOC_REQUESTS),

    C("200", "responses", "fanout_responses_total", "status", NULL,
      "Answers by status: 200, 502, 504, rejected (bad input), aborted "
      "(client gone).", "counter", NGX_HTTP_FANOUT_LOC_200),
    C("502", "responses", "fanout_responses_total", "status", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_502),
    C("504", "responses", "fanout_responses_total", "status", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_504),
    C("rejected", "responses", "fanout_responses_total", "status", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_REJECTED),
    C("aborted", NULL, "fanout_responses_total", "status", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_ABORTED),

    C("hit", "cache", "fanout_cache_total", "result", NULL,
      "Cache lookups (hit, miss, bypass, error, stale, coalesced), stores "
      "(stored, skipped over max_size), bodies keyed by their bytes "
      "(ambiguous: duplicate keys), the L1's hits and stores, and purges.",
      "counter", NGX_HTTP_FANOUT_LOC_CACHE_HIT),
    C("miss", "cache", "fanout_cache_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_CACHE_MISS),
    C("bypass", "cache", "fanout_cache_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_CACHE_BYPASS),
    C("error", "cache", "fanout_cache_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_CACHE_ERROR),
    C("stored", "cache", "fanout_cache_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_CACHE_STORED),
    C("skipped", "cache", "fanout_cache_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_CACHE_SKIPPED),
    C("stale", "cache", "fanout_cache_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_CACHE_STALE),
    C("coalesced", "cache", "fanout_cache_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_CACHE_COALESCED),
    C("ambiguous", "cache", "fanout_cache_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_CACHE_AMBIGUOUS),
    C("l1_hit", "cache", "fanout_cache_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_CACHE_L1_HIT),
    C("l1_stored", "cache", "fanout_cache_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_CACHE_L1_STORED),
    C("purged", "cache", "fanout_cache_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_CACHE_PURGED),

    C("rejected", "limit", "fanout_limit_total", "result", NULL,
      "fanout_limit: requests rejected, found over a limit in dry_run, "
      "keys evicted from a full zone, and requests delayed (delay=).",
      "counter",
      NGX_HTTP_FANOUT_LOC_LIMITED),
    C("dry_run", "limit", "fanout_limit_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_DRY_RUN),
    C("evicted", "limit", "fanout_limit_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_EVICTED),
    C("delayed", "limit", "fanout_limit_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LOC_DELAYED)
};


static const ngx_http_fanout_counter_t  ngx_http_fanout_lim_counters[] = {
    C("admitted", NULL, "fanout_limit_requests_total", "result", NULL,
      "Per fanout_limit (its key and rate): admitted, rejected, dry_run, "
      "redis_errors, unavailable, delayed (of the admitted, those that "
      "waited for their token).", "counter", NGX_HTTP_FANOUT_LIM_ADMITTED),
    C("rejected", NULL, "fanout_limit_requests_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LIM_REJECTED),
    C("dry_run", NULL, "fanout_limit_requests_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LIM_DRY_RUN),
    C("redis_errors", NULL, "fanout_limit_requests_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LIM_REDIS_ERRORS),
    C("unavailable", NULL, "fanout_limit_requests_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LIM_UNAVAILABLE),
    C("delayed", NULL, "fanout_limit_requests_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_LIM_DELAYED),
    C("tokens_reserved", NULL, "fanout_limit_tokens_total", "kind", "reserved",
      "Per token budget (fanout_limit tokens=): tokens reserved before the "
      "calls, and tokens used, as the answers said when the request "
      "settled (a call without usage counts its reservation).", "counter",
      NGX_HTTP_FANOUT_LIM_TOKENS_RESERVED),
    C("tokens_used", NULL, "fanout_limit_tokens_total", "kind", "used",
      NULL, NULL, NGX_HTTP_FANOUT_LIM_TOKENS_USED)
};


/* the time to first bytes: the latency histogram's bounds, ms and s */
static const char  *const ngx_http_fanout_tgt_firsts[] = {
    "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000",
    "10000", "+Inf"
};

static const char  *const ngx_http_fanout_tgt_firsts_s[] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10", "+Inf"
};


static const ngx_http_fanout_counter_t  ngx_http_fanout_var_counters[] = {
    C("requests", NULL, "fanout_variant_requests_total", "result", NULL,
      "Per fanout_split variant: requests, and answers by status (200, "
      "502, 504, other).", "counter", NGX_HTTP_FANOUT_VAR_REQUESTS),
    C("200", NULL, "fanout_variant_requests_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_VAR_200),
    C("502", NULL, "fanout_variant_requests_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_VAR_502),
    C("504", NULL, "fanout_variant_requests_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_VAR_504),
    C("other", NULL, "fanout_variant_requests_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_VAR_OTHER),
    KINDS("targets", "fanout_variant_target_results_total",
          "Outcomes of the target calls of a fanout_split variant.",
          NGX_HTTP_FANOUT_VAR_KIND),
    { "first_chunk_ms", NULL,
      "fanout_variant_time_to_first_chunk_seconds", NULL, NULL,
      "Per fanout_split variant: the time from a request's start to the "
      "first bytes of any of its calls' 2xx answers (a stream's first "
      "event), requests that called a model and got one; what a ramp's "
      "rollback_if=ttft_p99> judges.", "histogram",
      NGX_HTTP_FANOUT_VAR_FIRST, NGX_HTTP_FANOUT_COUNTER_HISTOGRAM,
      NGX_HTTP_FANOUT_TGT_NFIRSTS, ngx_http_fanout_tgt_firsts,
      ngx_http_fanout_tgt_firsts_s, NGX_HTTP_FANOUT_VAR_FIRST_MS, 1 }
};


static const ngx_http_fanout_counter_t  ngx_http_fanout_sha_counters[] = {
    C("sent", NULL, "fanout_shadow_results_total", "result", NULL,
      "Per fanout_shadow: sent, agree, disagree, shadow_error, shed, "
      "skipped, argmax_agree, argmax_disagree, sampled, sample_errors.",
      "counter", NGX_HTTP_FANOUT_SHA_SENT),
    C("agree", NULL, "fanout_shadow_results_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_SHA_AGREE),
    C("disagree", NULL, "fanout_shadow_results_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_SHA_DISAGREE),
    C("shadow_error", NULL, "fanout_shadow_results_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_SHA_ERROR),
    C("shed", NULL, "fanout_shadow_results_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_SHA_SHED),
    C("skipped", NULL, "fanout_shadow_results_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_SHA_SKIPPED),
    C("argmax_agree", NULL, "fanout_shadow_results_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_SHA_ARGMAX_AGREE),
    C("argmax_disagree", NULL, "fanout_shadow_results_total", "result",
      NULL, NULL, NULL, NGX_HTTP_FANOUT_SHA_ARGMAX_DISAGREE),
    C("sampled", NULL, "fanout_shadow_results_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_SHA_SAMPLED),
    C("sample_errors", NULL, "fanout_shadow_results_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_SHA_SAMPLE_ERRORS),

    C("pairs", "vs_primary", "fanout_shadow_vs_primary_total", "result",
      NULL, "Per fanout_shadow, over the requests where both answered: "
      "pairs, the sums of both latencies in ms, and how often the shadow "
      "was slower.", "counter", NGX_HTTP_FANOUT_SHA_PAIRS),
    C("shadow_ms_sum", "vs_primary", "fanout_shadow_vs_primary_total",
      "result", NULL, NULL, NULL, NGX_HTTP_FANOUT_SHA_SHADOW_MS),
    C("primary_ms_sum", "vs_primary", "fanout_shadow_vs_primary_total",
      "result", NULL, NULL, NULL, NGX_HTTP_FANOUT_SHA_PRIMARY_MS),
    C("shadow_slower", "vs_primary", "fanout_shadow_vs_primary_total",
      "result", NULL, NULL, NULL, NGX_HTTP_FANOUT_SHA_SLOWER)
};


/* the upper bounds of the batches' buckets: inputs, and ms waited */
static const char  *const ngx_http_fanout_bat_sizes[] = {
    "1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024", "+Inf"
};

static const char  *const ngx_http_fanout_bat_waits[] = {
    "0", "1", "2", "5", "10", "25", "+Inf"
};

/* the same bounds for Prometheus, which wants seconds */
static const char  *const ngx_http_fanout_bat_waits_s[] = {
    "0", "0.001", "0.002", "0.005", "0.01", "0.025", "+Inf"
};


static const ngx_http_fanout_counter_t  ngx_http_fanout_bat_counters[] = {
    C("batches", NULL, "fanout_batch_total", "result", NULL,
      "Per batch= target: upstream calls made of several calls' inputs, "
      "the inputs and calls in them, batches that failed their calls, "
      "calls sent alone, ms waited (sum).", "counter",
      NGX_HTTP_FANOUT_BAT_BATCHES),
    C("inputs", NULL, "fanout_batch_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_BAT_INPUTS),
    C("callers", NULL, "fanout_batch_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_BAT_CALLERS),
    C("errors", NULL, "fanout_batch_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_BAT_ERRORS),
    C("alone", NULL, "fanout_batch_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_BAT_ALONE),
    C("wait_ms_sum", NULL, "fanout_batch_total", "result", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_BAT_WAIT_MS),
    HIST("inputs_per_batch", "fanout_batch_inputs",
         "Inputs per micro-batch.", NGX_HTTP_FANOUT_BAT_SIZE,
         NGX_HTTP_FANOUT_BAT_NSIZES, ngx_http_fanout_bat_sizes,
         ngx_http_fanout_bat_sizes, NGX_HTTP_FANOUT_BAT_INPUTS, 0),
    HIST("wait_ms", "fanout_batch_wait_seconds",
         "Time a call waited for its batch.", NGX_HTTP_FANOUT_BAT_WAIT,
         NGX_HTTP_FANOUT_BAT_NWAITS, ngx_http_fanout_bat_waits,
         ngx_http_fanout_bat_waits_s, NGX_HTTP_FANOUT_BAT_WAIT_MS, 1)
};


/* queue=: the upper bounds of its waits' buckets, ms and seconds */
static const char  *const ngx_http_fanout_tgt_waits[] = {
    "1", "5", "10", "25", "50", "100", "250", "500", "1000", "+Inf"
};

static const char  *const ngx_http_fanout_tgt_waits_s[] = {
    "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
    "+Inf"
};


static const char  *const ngx_http_fanout_tgt_gaps[] = {
    "1", "2", "5", "10", "25", "50", "100", "250", "500", "1000", "+Inf"
};

static const char  *const ngx_http_fanout_tgt_gaps_s[] = {
    "0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "+Inf"
};


static const ngx_http_fanout_counter_t  ngx_http_fanout_tgt_counters[] = {
    C("requests", NULL, "fanout_target_requests_total", NULL, NULL,
      "Calls made to a target.", "counter", NGX_HTTP_FANOUT_TGT_REQUESTS),
    KINDS(NULL, "fanout_target_results_total", "Target calls by outcome.",
          NGX_HTTP_FANOUT_TGT_KIND),
    C("cancelled", NULL, "fanout_target_cancelled_total", NULL, NULL,
      "Calls cut off after their timeout or once the answer was sent.",
      "counter", NGX_HTTP_FANOUT_TGT_CANCELLED),
    C("cache_hit", NULL, "fanout_target_cache_total", "result", "hit",
      "Per-target cache lookups (level=target).", "counter",
      NGX_HTTP_FANOUT_TGT_CACHE_HIT),
    C("cache_miss", NULL, "fanout_target_cache_total", "result", "miss",
      NULL, NULL, NGX_HTTP_FANOUT_TGT_CACHE_MISS),
    C("fallback", NULL, "fanout_target_fallback_total", "result", "called",
      "Calls to a target's fallback= (called) and those that answered "
      "(ok).", "counter", NGX_HTTP_FANOUT_TGT_FALLBACK),
    C("fallback_ok", NULL, "fanout_target_fallback_total", "result", "ok",
      NULL, NULL, NGX_HTTP_FANOUT_TGT_FALLBACK_OK),
    C("retries", NULL, "fanout_target_retries_total", "result", "tried",
      "fanout_retry: attempts tried again (tried), calls a retry answered "
      "(won), retries the budget refused (denied).", "counter",
      NGX_HTTP_FANOUT_TGT_RETRIES),
    C("retries_won", NULL, "fanout_target_retries_total", "result", "won",
      NULL, NULL, NGX_HTTP_FANOUT_TGT_RETRIES_WON),
    C("retry_budget_denied", NULL, "fanout_target_retries_total", "result",
      "denied", NULL, NULL, NGX_HTTP_FANOUT_TGT_RETRY_DENIED),
    C("hedges", NULL, "fanout_target_hedges_total", "result", "sent",
      "fanout_hedge: backup attempts sent (sent), calls a backup answered "
      "(won), backups the budget refused (denied).", "counter",
      NGX_HTTP_FANOUT_TGT_HEDGES),
    C("hedges_won", NULL, "fanout_target_hedges_total", "result", "won",
      NULL, NULL, NGX_HTTP_FANOUT_TGT_HEDGES_WON),
    C("hedge_budget_denied", NULL, "fanout_target_hedges_total", "result",
      "denied", NULL, NULL, NGX_HTTP_FANOUT_TGT_HEDGE_DENIED),
    C("too_late", NULL, "fanout_target_too_late_total", NULL, NULL,
      "Retries and hedges not made: the call would have had less time left "
      "than the target's recent p50.", "counter",
      NGX_HTTP_FANOUT_TGT_TOO_LATE),
    C("queued", "queue", "fanout_target_queue_total", "result", "queued",
      "queue=: calls that waited for a max_inflight slot (queued), and "
      "calls shed: the queue full (full), queue_timeout= passed (timeout), "
      "the request's deadline would pass (deadline), a call of a higher "
      "priority took the place (evicted).", "counter",
      NGX_HTTP_FANOUT_TGT_QUEUED),
    C("full", "queue", "fanout_target_queue_total", "result", "full",
      NULL, NULL, NGX_HTTP_FANOUT_TGT_SHED_FULL),
    C("timeout", "queue", "fanout_target_queue_total", "result", "timeout",
      NULL, NULL, NGX_HTTP_FANOUT_TGT_SHED_TIMEOUT),
    C("deadline", "queue", "fanout_target_queue_total", "result",
      "deadline", NULL, NULL, NGX_HTTP_FANOUT_TGT_SHED_DEADLINE),
    C("evicted", "queue", "fanout_target_queue_total", "result", "evicted",
      NULL, NULL, NGX_HTTP_FANOUT_TGT_SHED_EVICTED),
    C("length", "queue", "fanout_target_queue_length", NULL, NULL,
      "queue=: calls waiting for a slot now.", "gauge",
      NGX_HTTP_FANOUT_TGT_QUEUE_LENGTH),
    { "wait_ms", "queue", "fanout_target_queue_wait_seconds", NULL, NULL,
      "queue=: how long calls waited in the queue, granted or shed.",
      "histogram", NGX_HTTP_FANOUT_TGT_WAIT,
      NGX_HTTP_FANOUT_COUNTER_HISTOGRAM, NGX_HTTP_FANOUT_TGT_NWAITS,
      ngx_http_fanout_tgt_waits, ngx_http_fanout_tgt_waits_s,
      NGX_HTTP_FANOUT_TGT_WAIT_MS, 1 },
    C("input", "tokens", "fanout_target_token_usage_total", "type", "input",
      "Tokens a target's answers said they used (their usage: prompt or "
      "input tokens, completion or output tokens; a stream's last event), "
      "after OpenTelemetry's gen_ai.client.token.usage.", "counter",
      NGX_HTTP_FANOUT_TGT_TOKENS_IN),
    C("output", "tokens", "fanout_target_token_usage_total", "type",
      "output", NULL, NULL, NGX_HTTP_FANOUT_TGT_TOKENS_OUT),
    { "first_chunk_ms", NULL,
      "fanout_target_time_to_first_chunk_seconds", NULL, NULL,
      "The time from a call's start to its answer's first bytes, every "
      "attempt that got an answer (OpenTelemetry's "
      "gen_ai.client.operation.time_to_first_chunk).", "histogram",
      NGX_HTTP_FANOUT_TGT_FIRST, NGX_HTTP_FANOUT_COUNTER_HISTOGRAM,
      NGX_HTTP_FANOUT_TGT_NFIRSTS, ngx_http_fanout_tgt_firsts,
      ngx_http_fanout_tgt_firsts_s, NGX_HTTP_FANOUT_TGT_FIRST_MS, 1 },
    { "chunk_gap_ms", NULL,
      "fanout_target_time_per_output_chunk_seconds", NULL, NULL,
      "A stream passed on (fanout_merge first): the time between its "
      "events as they arrived, after the first (OpenTelemetry's "
      "gen_ai.client.operation.time_per_output_chunk).", "histogram",
      NGX_HTTP_FANOUT_TGT_GAP, NGX_HTTP_FANOUT_COUNTER_HISTOGRAM,
      NGX_HTTP_FANOUT_TGT_NGAPS, ngx_http_fanout_tgt_gaps,
      ngx_http_fanout_tgt_gaps_s, NGX_HTTP_FANOUT_TGT_GAP_MS, 1 },
    C("current", "inflight_limit", "fanout_target_inflight_limit", NULL,
      NULL, "max_inflight=auto: the limit learned from the model's latency "
      "(0 until its first window).", "gauge", NGX_HTTP_FANOUT_TGT_LIMIT),
    CMS("min_rtt_ms", "inflight_limit",
        "fanout_target_inflight_min_rtt_seconds",
        "max_inflight=auto: the model's latency unloaded, as the last probe "
        "measured it.", "gauge", NGX_HTTP_FANOUT_TGT_MIN_RTT),
    C("gradient_pct", "inflight_limit",
      "fanout_target_inflight_gradient_percent", NULL, NULL,
      "max_inflight=auto: the last window's gradient, in hundredths "
      "(100: the latency as unloaded, with its buffer; 50 to 200).",
      "gauge", NGX_HTTP_FANOUT_TGT_GRADIENT),
    C("probes", "inflight_limit", "fanout_target_inflight_probes_total",
      NULL, NULL, "max_inflight=auto: probes of the unloaded latency.",
      "counter", NGX_HTTP_FANOUT_TGT_PROBES)
};


static const ngx_http_fanout_counter_t  ngx_http_fanout_redis_counters[] = {
    C("commands", NULL, "fanout_redis_commands_total", NULL, NULL,
      "Commands sent to Redis.", "counter", NGX_HTTP_FANOUT_REDIS_COMMANDS),
    C("connects", NULL, "fanout_redis_connects_total", NULL, NULL,
      "Connections made to Redis.", "counter",
      NGX_HTTP_FANOUT_REDIS_CONNECTS),
    C("connections", NULL, "fanout_redis_connections", NULL, NULL,
      "Connections ready, all workers.", "gauge",
      NGX_HTTP_FANOUT_REDIS_READY_NOW),
    C("down", "errors", "fanout_redis_errors_total", "kind", NULL,
      "Redis failures by kind; each one was served without the cache.",
      "counter", NGX_HTTP_FANOUT_REDIS_DOWN),
    C("timeout", "errors", "fanout_redis_errors_total", "kind", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_REDIS_TIMEOUT),
    C("reply_error", "errors", "fanout_redis_errors_total", "kind", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_REDIS_REPLY_ERROR),
    C("connect", "errors", "fanout_redis_errors_total", "kind", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_REDIS_CONNECT),
    C("auth", "errors", "fanout_redis_errors_total", "kind", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_REDIS_AUTH),
    C("closed", "errors", "fanout_redis_errors_total", "kind", NULL,
      NULL, NULL, NGX_HTTP_FANOUT_REDIS_CLOSED)
};


#define GROUP(name, label, t)  { name, label, t, sizeof(t) / sizeof(t[0]) }

const ngx_http_fanout_counter_group_t
    ngx_http_fanout_counter_groups[NGX_HTTP_FANOUT_NGROUPS] =
{
    GROUP("location", NULL, ngx_http_fanout_loc_counters),
    GROUP("limit", "limit", ngx_http_fanout_lim_counters),
    GROUP("variant", "variant", ngx_http_fanout_var_counters),
    GROUP("shadow", "shadow", ngx_http_fanout_sha_counters),
    GROUP("batch", "target", ngx_http_fanout_bat_counters),
    GROUP("target", "target", ngx_http_fanout_tgt_counters),
    GROUP("redis", NULL, ngx_http_fanout_redis_counters)
};


static ngx_inline const char *
ngx_http_fanout_counter_name(const ngx_http_fanout_counter_t *c, ngx_uint_t k)
{
    return c->shape == NGX_HTTP_FANOUT_COUNTER_KINDS ? fanout_kind_name(k)
                                                     : c->name;
}


static ngx_inline ngx_uint_t
ngx_http_fanout_same(const char *a, const char *b)
{
    return a == b || (a && b && ngx_strcmp(a, b) == 0);
}


/*
 * A node's counters [from, to) of its group's table as JSON members:
 * those of one object inside it, a comma before the first when comma is
 * set, and the last object left open when open is set (the caller adds
 * members that are not counters and closes it).
 */

u_char *
ngx_http_fanout_counters_json(u_char *p, ngx_uint_t group, ngx_uint_t from,
    ngx_uint_t to, ngx_http_fanout_stats_t *st, ngx_uint_t comma,
    ngx_uint_t open)
{
    ngx_uint_t                        i, k, n, inner;
    const char                       *object;
    const ngx_http_fanout_counter_t  *c;

    c = ngx_http_fanout_counter_groups[group].counters;
    object = NULL;
    inner = 0;

    for (i = from; i < to; i++) {

        if (!ngx_http_fanout_same(c[i].object, object)) {
            if (object) {
                *p++ = '}';
                comma = 1;
            }

            object = c[i].object;

            if (object) {
                p = ngx_sprintf(p, "%s\"%s\":{", comma ? "," : "", object);
                inner = 0;
            }
        }

        if (c[i].shape == NGX_HTTP_FANOUT_COUNTER_HISTOGRAM) {
            p = ngx_sprintf(p, "%s\"%s\":{",
                            (object ? inner : comma) ? "," : "", c[i].name);

            for (k = 0; k < c[i].n; k++) {
                p = ngx_sprintf(p, "%s\"%s\":%uA", k ? "," : "",
                                c[i].bounds[k], st->counters[c[i].counter + k]);
            }

            *p++ = '}';

        } else {
            n = c[i].shape == NGX_HTTP_FANOUT_COUNTER_KINDS ? c[i].n : 1;

            for (k = 0; k < n; k++) {
                p = ngx_sprintf(p, "%s\"%s\":%uA",
                                (object ? inner : comma) ? "," : "",
                                ngx_http_fanout_counter_name(&c[i], k),
                                st->counters[c[i].counter + k]);

                if (object) {
                    inner = 1;

                } else {
                    comma = 1;
                }
            }
        }

        if (object) {
            inner = 1;

        } else {
            comma = 1;
        }
    }

    if (object && !open) {
        *p++ = '}';
    }

    return p;
}


/* a sample's name and labels, up to its value */

static u_char *
ngx_http_fanout_counters_sample(u_char *p, const char *metric,
    const char *suffix, ngx_str_t *loc, const char *label, ngx_str_t *name,
    const char *extra, const char *value)
{
    ngx_uint_t  any;

    p = ngx_sprintf(p, "%s%s", metric, suffix);
    any = 0;

    if (loc) {
        p = ngx_sprintf(p, "{location=\"");
        p = ngx_http_fanout_escape_label(p, loc);
        *p++ = '"';
        any = 1;
    }

    if (name) {
        p = ngx_sprintf(p, "%s%s=\"", any ? "," : "{", label);
        p = ngx_http_fanout_escape_label(p, name);
        *p++ = '"';
        any = 1;
    }

    if (extra) {
        p = ngx_sprintf(p, "%s%s=\"%s\"", any ? "," : "{", extra, value);
        any = 1;
    }

    if (any) {
        *p++ = '}';
    }

    *p++ = ' ';

    return p;
}


/* one node's samples of the family counters [from, to) */

static u_char *
ngx_http_fanout_counters_node(u_char *p, const ngx_http_fanout_counter_t *c,
    ngx_uint_t from, ngx_uint_t to, ngx_str_t *loc, const char *label,
    ngx_str_t *name, ngx_http_fanout_stats_t *st)
{
    ngx_uint_t         i, k, n;
    ngx_atomic_uint_t  v, total;

    for (i = from; i < to; i++) {

        if (c[i].shape == NGX_HTTP_FANOUT_COUNTER_HISTOGRAM) {
            total = 0;

            for (k = 0; k < c[i].n; k++) {
                total += st->counters[c[i].counter + k];
                p = ngx_http_fanout_counters_sample(p, c[i].metric, "_bucket",
                                                    loc, label, name, "le",
                                                    c[i].le[k]);
                p = ngx_sprintf(p, "%uA\n", total);
            }

            v = st->counters[c[i].sum];
            p = ngx_http_fanout_counters_sample(p, c[i].metric, "_sum", loc,
                                                label, name, NULL, NULL);
            p = c[i].ms ? ngx_sprintf(p, "%uA.%03uA\n", v / 1000, v % 1000)
                        : ngx_sprintf(p, "%uA\n", v);
            p = ngx_http_fanout_counters_sample(p, c[i].metric, "_count",
                                                loc, label, name, NULL, NULL);
            p = ngx_sprintf(p, "%uA\n", total);
            continue;
        }

        n = c[i].shape == NGX_HTTP_FANOUT_COUNTER_KINDS ? c[i].n : 1;

        for (k = 0; k < n; k++) {
            p = ngx_http_fanout_counters_sample(p, c[i].metric, "", loc,
                                       label, name, c[i].label,
                                       c[i].value ? c[i].value
                                       : ngx_http_fanout_counter_name(&c[i],
                                                                      k));
            v = st->counters[c[i].counter + k];
            p = c[i].ms ? ngx_sprintf(p, "%uA.%03uA\n", v / 1000, v % 1000)
                        : ngx_sprintf(p, "%uA\n", v);
        }
    }

    return p;
}


/*
 * A group's families, each with its HELP and TYPE once and then the
 * samples of every node of the group: per location, per target, limit,
 * variant, shadow or batch of each location, or Redis's one node.
 */

u_char *
ngx_http_fanout_counters_prometheus(u_char *p,
    ngx_http_fanout_main_conf_t *fmcf, ngx_uint_t group)
{
    ngx_str_t                               name;
    ngx_uint_t                              f, e, i, j;
    ngx_array_t                            *a;
    ngx_http_fanout_stats_loc_t            *loc;
    ngx_http_fanout_stats_target_t         *x;
    const ngx_http_fanout_counter_t        *c;
    const ngx_http_fanout_counter_group_t  *g;

    g = &ngx_http_fanout_counter_groups[group];
    c = g->counters;
    loc = fmcf->locations.elts;

    for (f = 0; f < g->n; f = e) {

        for (e = f + 1;
             e < g->n && ngx_http_fanout_same(c[e].metric, c[f].metric);
             e++)
        {
            /* void */
        }

        p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n", c[f].metric,
                        c[f].help, c[f].metric, c[f].type);

        if (group == NGX_HTTP_FANOUT_GROUP_REDIS) {
            if (fmcf->redis_stats) {
                p = ngx_http_fanout_counters_node(p, c, f, e, NULL, NULL,
                                                  NULL, fmcf->redis_stats);
            }

            continue;
        }

        for (i = 0; i < fmcf->locations.nelts; i++) {

            if (group == NGX_HTTP_FANOUT_GROUP_LOCATION) {
                p = ngx_http_fanout_counters_node(p, c, f, e, &loc[i].name,
                                                  NULL, NULL, loc[i].node);
                continue;
            }

            a = group == NGX_HTTP_FANOUT_GROUP_TARGET
                ? &loc[i].targets
                : ngx_http_fanout_stats_extras(&loc[i], group);
            x = a->elts;

            for (j = 0; j < a->nelts; j++) {
                if (group == NGX_HTTP_FANOUT_GROUP_TARGET) {
                    name = x[j].name;

                } else {
                    (void) ngx_http_fanout_stats_extra_name(&name, &x[j]);
                }

                p = ngx_http_fanout_counters_node(p, c, f, e, &loc[i].name,
                                                  g->label, &name, x[j].node);
            }
        }
    }

    return p;
}


/* the most lines (JSON members or samples) a node of the group writes */

ngx_uint_t
ngx_http_fanout_counters_lines(ngx_uint_t group)
{
    ngx_uint_t                              i, n;
    const ngx_http_fanout_counter_group_t  *g;

    g = &ngx_http_fanout_counter_groups[group];
    n = 0;

    for (i = 0; i < g->n; i++) {
        switch (g->counters[i].shape) {
        case NGX_HTTP_FANOUT_COUNTER_KINDS:
            n += g->counters[i].n;
            break;
        case NGX_HTTP_FANOUT_COUNTER_HISTOGRAM:
            n += g->counters[i].n + 2;
            break;
        default:
            n++;
        }

        /* its family's HELP and TYPE */
        n += g->counters[i].help ? 2 : 0;
    }

    return n;
}


/*
 * ?format=fields: the tables as a JSON document, for the dashboard's
 * labels and for whoever reads the status: per group, each counter's
 * JSON name and object, its Prometheus family and label, and its help.
 * Built with jansson: a document, not the request path.
 */

ngx_int_t
ngx_http_fanout_counters_fields(ngx_pool_t *pool, ngx_str_t *out)
{
    char                                   *s;
    json_t                                 *doc, *list, *item;
    ngx_uint_t                              g, i, k, n;
    const char                             *help;
    const ngx_http_fanout_counter_t        *c;
    const ngx_http_fanout_counter_group_t  *grp;

    doc = json_object();
    if (doc == NULL) {
        return NGX_ERROR;
    }

    for (g = 0; g < NGX_HTTP_FANOUT_NGROUPS; g++) {
        grp = &ngx_http_fanout_counter_groups[g];
        list = json_array();

        if (list == NULL || json_object_set_new(doc, grp->name, list) != 0) {
            goto failed;
        }

        help = NULL;

        for (i = 0; i < grp->n; i++) {
            c = &grp->counters[i];
            help = c->help ? c->help : help;
            n = c->shape == NGX_HTTP_FANOUT_COUNTER_KINDS ? c->n : 1;

            for (k = 0; k < n; k++) {
                item = json_pack("{s:s, s:s?, s:s, s:s?, s:s?, s:s}",
                                 "name", ngx_http_fanout_counter_name(c, k),
                                 "object", c->object,
                                 "metric", c->metric,
                                 "label", c->label,
                                 "value", c->label
                                          ? (c->value ? c->value
                                             : ngx_http_fanout_counter_name(c,
                                                                          k))
                                          : NULL,
                                 "help", help);

                if (item == NULL || json_array_append_new(list, item) != 0) {
                    goto failed;
                }
            }
        }
    }

    s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);

    if (s == NULL) {
        return NGX_ERROR;
    }

    out->len = ngx_strlen(s);
    out->data = ngx_pnalloc(pool, out->len + 1);

    if (out->data == NULL) {
        free(s);
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, s, out->len);
    out->data[out->len++] = '\n';
    free(s);

    return NGX_OK;

failed:

    json_decref(doc);

    return NGX_ERROR;
}
