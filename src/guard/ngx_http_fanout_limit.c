/*
 * fanout_limit: token buckets (GCRA, src/core/fanout_limit.c) per key value.
 * scope=local keeps them in the fanout_zone shared memory for all workers,
 * in a red-black tree with an LRU queue: a full zone evicts the least
 * recently used keys (counted), never fails a request.  scope=cluster
 * keeps them in Redis, taken by one Lua script for all of a request's
 * cluster limits, so that every nginx instance shares them.
 *
 * tokens= budgets are the same buckets counted in tokens: checked in
 * their own stage, after the cache (a hit costs nothing), they reserve
 * each call's estimate (src/core/fanout_tokens.c) before any model is
 * called, and settle at the request's end with what the answers say they
 * used: more is charged (a debt later requests wait out), less is given
 * back, and a call not made or failed gives all of its share back.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_conf.h"
#include "ngx_http_fanout_limit.h"
#include "ngx_http_fanout_pipeline.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_response.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_task.h"
#include "ngx_http_fanout_batch.h"
#include "ngx_http_fanout_body.h"
#include "ngx_http_fanout_call.h"
#include "ngx_http_fanout_capture.h"
#include "ngx_http_fanout_request.h"
#include "fanout_limit.h"
#include "fanout_tokens.h"


#define NGX_HTTP_FANOUT_LIMIT_LOCAL    0
#define NGX_HTTP_FANOUT_LIMIT_CLUSTER  1

/* on_redis_error= */
#define NGX_HTTP_FANOUT_LIMIT_ERR_LOCAL   0
#define NGX_HTTP_FANOUT_LIMIT_ERR_OPEN    1
#define NGX_HTTP_FANOUT_LIMIT_ERR_CLOSED  2
#define NGX_HTTP_FANOUT_LIMIT_ERR_SHARE   3   /* local_share */

/* local_share: how often an instance says it is there, and for how long */
#define NGX_HTTP_FANOUT_HEARTBEAT         1000
#define NGX_HTTP_FANOUT_HEARTBEAT_TTL     5000

/* where one limit is checked for one request */
#define NGX_HTTP_FANOUT_LIMIT_SKIP     0   /* empty key, or failed open */
#define NGX_HTTP_FANOUT_LIMIT_SHM      1
#define NGX_HTTP_FANOUT_LIMIT_REDIS    2


typedef struct {
    ngx_http_complex_value_t    key;
    ngx_int_t                   var;           /* key=$one_variable: index */
    fanout_limit_conf_t         gcra;
    ngx_str_t                   rate;          /* as written: "100r/s" */
    ngx_uint_t                  cost;
    ngx_uint_t                  status;
    ngx_str_t                   name;          /* "KEY RATE", as written */
    uint64_t                    id;            /* of the server, location,
                                                  name: stable across
                                                  reloads */
    ngx_uint_t                  scope;
    ngx_uint_t                  on_error;
    ngx_uint_t                  stats;         /* index in the location's */
    ngx_str_t                   prefix;        /* of its keys in Redis */
    u_char                      args[4][NGX_INT64_LEN];
    size_t                      args_len[4];   /* interval, burst, cost,
                                                  delay */
    ngx_uint_t                  instances;     /* local_share: 0 learned */
    ngx_str_t                   quota;         /* RateLimit-Limit: "100" */
    ngx_str_t                   policy;        /* "100;w=1;burst=10" */
    ngx_uint_t                  burst;         /* burst=, as written */
    ngx_uint_t                  delay;         /* delay=: past the burst,
                                                  requests that wait */
    uint64_t                    period;        /* rate=: its window, in us */
    ngx_uint_t                  count;         /* rate='s or tokens='s N */
    ngx_uint_t                  tokens;        /* a token budget */
    ngx_uint_t                  estimate;      /* estimate=: per call; 0:
                                                  from the body */
    ngx_uint_t                  dry_run;
} ngx_http_fanout_limit_t;


/* one request's check, kept while Redis answers */
typedef struct {
    ngx_str_t                   values[NGX_HTTP_FANOUT_MAX_LIMITS];
    ngx_uint_t                  where[NGX_HTTP_FANOUT_MAX_LIMITS];
    fanout_limit_result_t       res[NGX_HTTP_FANOUT_MAX_LIMITS];
    ngx_uint_t                  have[NGX_HTTP_FANOUT_MAX_LIMITS];
    ngx_uint_t                  unavailable;   /* closed: the limit's index */
    ngx_uint_t                  share[NGX_HTTP_FANOUT_MAX_LIMITS];
                                               /* local_share: instances */
} ngx_http_fanout_limit_run_t;


/*
 * GCRA over several buckets at Redis's clock, like src/core/fanout_limit.c:
 * every bucket is asked first, and all are taken from only when none
 * rejects.  KEYS: the buckets; ARGV, five per key: interval (us), burst,
 * cost, dry_run, delay (requests past the burst that wait).  Returns five
 * integers per key: allowed, remaining, reset (us), retry after (us), the
 * wait of a delayed request (us).  dry_run "2" settles a token budget
 * (fanout_limit_settle()): the signed cost is charged, even past the
 * burst, or given back down to a full bucket, never refused.
 */
static const char  ngx_http_fanout_limit_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local out, tats, reject = {}, {}, false\n"
    "for i, key in ipairs(KEYS) do\n"
    "  local b = (i - 1) * 5\n"
    "  local iv, cap = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])\n"
    "  local cost, dry = tonumber(ARGV[b + 3]), ARGV[b + 4] == '1'\n"
    "  local late = tonumber(ARGV[b + 5]) * iv\n"
    "  local tat = tonumber(redis.call('GET', key) or '0') or 0\n"
    "  local base = math.max(tat, now)\n"
    "  local new, limit = base + cost * iv, cap * iv\n"
    "  local ok, used, retry, wait = 1, new - now, 0, 0\n"
    "  if ARGV[b + 4] == '2' then\n"
    "    new = math.max(new, now)\n"
    "    if new > now or tat > now then tats[i] = new end\n"
    "    used = new - now\n"
    "  elseif new - now > limit + late then\n"
    "    ok, used, retry = 0, base - now, new - now - limit - late\n"
    "    if not dry then reject = true end\n"
    "  else\n"
    "    tats[i] = new\n"
    "    if new - now > limit then wait = new - now - limit end\n"
    "  end\n"
    "  local rem = math.floor((limit - math.min(used, limit)) / iv)\n"
    "  out[#out + 1] = ok\n"
    "  out[#out + 1] = rem\n"
    "  out[#out + 1] = used\n"
    "  out[#out + 1] = retry\n"
    "  out[#out + 1] = wait\n"
    "end\n"
    "if not reject then\n"
    "  for i, key in ipairs(KEYS) do\n"
    "    if tats[i] then\n"
    "      redis.call('SET', key, string.format('%.0f', tats[i]), 'PX',\n"
    "                 math.floor((tats[i] - now) / 1000) + 1000)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";


static ngx_http_fanout_redis_script_t  ngx_http_fanout_limit_script;


/*
 * local_share's heartbeat. KEYS[1]: the fleet's sorted set; ARGV[1]: this
 * instance; ARGV[2]: how long a silent instance still counts, ms. Scored
 * by Redis's own clock; returns the instances heard from since.
 */
static const char  ngx_http_fanout_heartbeat_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZADD', KEYS[1], now, ARGV[1])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))\n"
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)\n"
    "return redis.call('ZCARD', KEYS[1])\n";


static ngx_http_fanout_redis_script_t  ngx_http_fanout_heartbeat_script;
static ngx_http_fanout_task_t          ngx_http_fanout_heartbeat_task;
static ngx_http_fanout_redis_op_t     *ngx_http_fanout_heartbeat_op;
static u_char                          ngx_http_fanout_heartbeat_id[256];
static size_t                          ngx_http_fanout_heartbeat_len;

static ngx_uint_t ngx_http_fanout_limit_fleet(ngx_http_fanout_ctx_t *ctx);
static void ngx_http_fanout_limit_delayed(ngx_event_t *ev);


typedef struct {
    u_char                      color;
    u_char                      dummy;
    u_short                     len;
    ngx_queue_t                 queue;
    uint64_t                    tat;
    u_char                      data[1];
} ngx_http_fanout_limit_node_t;




/* key=VALUE: variables allowed; a key that is one variable is read
 * without the script */

static char *
ngx_http_fanout_limit_key(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_limit_t *l = conf;

    u_char                            *p;
    ngx_str_t                          s;
    ngx_http_compile_complex_value_t   ccv;

    if (v->len == 0) {
        return "a value, variables allowed";
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = v;
    ccv.complex_value = &l->key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    l->var = NGX_ERROR;

    if (v->len < 2 || v->data[0] != '$') {
        return NGX_CONF_OK;
    }

    for (p = v->data + 1; p < v->data + v->len; p++) {
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9')))
        {
            return NGX_CONF_OK;
        }
    }

    s.data = v->data + 1;
    s.len = v->len - 1;
    l->var = ngx_http_get_variable_index(cf, &s);

    return (l->var == NGX_ERROR) ? NGX_CONF_ERROR : NGX_CONF_OK;
}


/* rate=Nr/s or Nr/m */

static char *
ngx_http_fanout_limit_rate(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_limit_t *l = conf;

    u_char     *slash;
    ngx_int_t   n;

    if (l->tokens) {
        return "cannot go with tokens=: one fanout_limit a budget";
    }

    slash = ngx_strlchr(v->data, v->data + v->len, '/');

    if (slash == NULL || slash - v->data < 2 || slash[-1] != 'r') {
        return "requests a second or a minute, as \"10r/s\" or \"600r/m\"";
    }

    n = ngx_atoi(v->data, slash - 1 - v->data);
    l->period = 0;

    if (v->data + v->len - slash == 2 && slash[1] == 's') {
        l->period = 1000000;

    } else if (v->data + v->len - slash == 2 && slash[1] == 'm') {
        l->period = 60000000;
    }

    if (n <= 0 || l->period == 0) {
        return "requests a second or a minute, as \"10r/s\" or \"600r/m\"";
    }

    l->rate = *v;
    l->count = (ngx_uint_t) n;

    return NGX_CONF_OK;
}


/* tokens=N/s, N/m, N/h or N/d: a token budget */

static char *
ngx_http_fanout_limit_tokens(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_limit_t *l = conf;

    u_char     *slash;
    ngx_int_t   n;

    if (l->rate.len) {
        return "cannot go with rate=: one fanout_limit a budget";
    }

    slash = ngx_strlchr(v->data, v->data + v->len, '/');
    l->period = 0;
    n = NGX_ERROR;

    if (slash && slash > v->data && v->data + v->len - slash == 2) {
        n = ngx_atoi(v->data, slash - v->data);

        switch (slash[1]) {
        case 's':
            l->period = 1000000;
            break;
        case 'm':
            l->period = 60000000;
            break;
        case 'h':
            l->period = 3600000000ULL;
            break;
        case 'd':
            l->period = 86400000000ULL;
            break;
        }
    }

    if (n <= 0 || l->period == 0) {
        return "tokens a second, minute, hour or day, as \"1000/m\" or "
               "\"2000000/d\"";
    }

    l->rate = *v;
    l->count = (ngx_uint_t) n;
    l->tokens = 1;

    return NGX_CONF_OK;
}


static const char *const  ngx_http_fanout_limit_scopes[] = {
    "local", "cluster", NULL                /* NGX_HTTP_FANOUT_LIMIT_* */
};

static const char *const  ngx_http_fanout_limit_on_error[] = {
    "local", "open", "closed", "local_share", NULL    /* _LIMIT_ERR_* */
};


static const ngx_http_fanout_param_t  ngx_http_fanout_limit_params[] = {

    ngx_http_fanout_param_custom("key", ngx_http_fanout_limit_key),
    ngx_http_fanout_param_custom("rate", ngx_http_fanout_limit_rate),
    ngx_http_fanout_param_custom("tokens", ngx_http_fanout_limit_tokens),
    ngx_http_fanout_param("estimate", COUNT, ngx_http_fanout_limit_t,
                          estimate, 1, NGX_MAX_INT_T_VALUE, NULL),
    ngx_http_fanout_param("burst", COUNT, ngx_http_fanout_limit_t, burst,
                          1, NGX_MAX_INT_T_VALUE, NULL),
    ngx_http_fanout_param("cost", COUNT, ngx_http_fanout_limit_t, cost,
                          1, NGX_MAX_INT_T_VALUE, NULL),
    ngx_http_fanout_param("delay", COUNT, ngx_http_fanout_limit_t, delay,
                          0, 1000000, NULL),
    ngx_http_fanout_param("status", COUNT, ngx_http_fanout_limit_t, status,
                          400, 599, NULL),
    ngx_http_fanout_param("dry_run", FLAG, ngx_http_fanout_limit_t, dry_run,
                          0, 1, NULL),
    ngx_http_fanout_param("scope", WORD, ngx_http_fanout_limit_t, scope,
                          0, 1, ngx_http_fanout_limit_scopes),
    ngx_http_fanout_param("instances", COUNT, ngx_http_fanout_limit_t,
                          instances, 1, 10000, NULL),
    ngx_http_fanout_param("on_redis_error", WORD, ngx_http_fanout_limit_t,
                          on_error, 0, 3, ngx_http_fanout_limit_on_error),
    ngx_http_fanout_param_null
};


char *
ngx_http_fanout_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_int_t                     n;
    ngx_str_t                     name;
    ngx_uint_t                    loc_index;
    ngx_http_fanout_limit_t      *l;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_fanout_main_conf_t  *fmcf;

    if (flcf->limits == NULL) {
        flcf->limits = ngx_array_create(cf->pool, 2,
                                        sizeof(ngx_http_fanout_limit_t));
        if (flcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (flcf->limits->nelts == NGX_HTTP_FANOUT_MAX_LIMITS) {
        return "is used too many times";
    }

    l = ngx_array_push(flcf->limits);
    if (l == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(l, sizeof(ngx_http_fanout_limit_t));

    l->status = 429;
    l->var = NGX_ERROR;

    if (ngx_http_fanout_conf_params(cf, 1, ngx_http_fanout_limit_params, l)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (l->key.value.data == NULL || l->rate.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fanout_limit\" needs key= and rate= (or "
                           "tokens=), as in \"fanout_limit "
                           "key=$binary_remote_addr rate=10r/s;\"");
        return NGX_CONF_ERROR;
    }

    n = (ngx_int_t) l->count;

    if (l->tokens) {
        /* one budget a directive; what a call costs is measured */
        if (l->cost || l->delay) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tokens=\" cannot go with \"rate=\", "
                               "\"cost=\" or \"delay=\": a token budget "
                               "is charged what the calls use");
            return NGX_CONF_ERROR;
        }

        if (l->burst == 0) {
            /* the window's quota, usable at once */
            l->burst = l->count;
        }

    } else if (l->estimate) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"estimate=\" goes with \"tokens=\"");
        return NGX_CONF_ERROR;
    }

    if (l->cost == 0) {
        l->cost = 1;
    }

    if (fanout_limit_conf(&l->gcra, (uint64_t) n, l->period,
                          (uint64_t) l->burst)
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "rate \"%V\" is too high", &l->rate);
        return NGX_CONF_ERROR;
    }

    l->gcra.delay = l->delay;

    if (l->cost > l->gcra.capacity) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cost=%ui is more than the burst of %uL: no "
                           "request could pass", l->cost, l->gcra.capacity);
        return NGX_CONF_ERROR;
    }

    /*
     * RateLimit-Limit is the quota, the rate's count in its window, as in
     * draft-ietf-httpapi-ratelimit-headers-07; RateLimit-Policy says the
     * window and the burst (an extension parameter of the draft's).
     */
    l->quota.len = ngx_strlchr(l->rate.data, l->rate.data + l->rate.len, '/')
                   - l->rate.data - (l->tokens ? 0 : 1);
    l->quota.data = l->rate.data;
    l->policy.data = ngx_pnalloc(cf->pool, l->quota.len + 48 + NGX_INT64_LEN);
    if (l->policy.data == NULL) {
        return NGX_CONF_ERROR;
    }

    /* a token budget's quota unit, as the draft's qu= parameter says */
    l->policy.len = ngx_sprintf(l->policy.data, "%V;w=%uL;burst=%uL%s",
                                &l->quota, l->period / 1000000,
                                l->gcra.capacity,
                                l->tokens ? ";qu=\"tokens\"" : "")
                    - l->policy.data;

    if (l->instances && l->on_error != NGX_HTTP_FANOUT_LIMIT_ERR_SHARE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"instances=\" goes with "
                           "\"on_redis_error=local_share\"");
        return NGX_CONF_ERROR;
    }

    /* local_share without instances=: the fleet counts itself in Redis */
    if (l->on_error == NGX_HTTP_FANOUT_LIMIT_ERR_SHARE && l->instances == 0) {
        fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);
        fmcf->heartbeat = 1;
    }

    /* fanout_health: the location cannot serve without Redis */
    if (l->scope == NGX_HTTP_FANOUT_LIMIT_CLUSTER
        && l->on_error == NGX_HTTP_FANOUT_LIMIT_ERR_CLOSED)
    {
        flcf->needs_redis = 1;
    }

    /* the script's arguments, and the limit's name in status and Redis */

    l->args_len[0] = ngx_sprintf(l->args[0], "%uL", l->gcra.interval_us)
                     - l->args[0];
    l->args_len[1] = ngx_sprintf(l->args[1], "%uL", l->gcra.capacity)
                     - l->args[1];
    l->args_len[2] = ngx_sprintf(l->args[2], "%ui", l->cost) - l->args[2];
    l->args_len[3] = ngx_sprintf(l->args[3], "%ui", l->delay) - l->args[3];

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);

    name.len = l->key.value.len + 1 + l->rate.len
               + (l->tokens ? sizeof("tokens=") - 1 : 0);
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(name.data, "%V %s%V", &l->key.value,
                l->tokens ? "tokens=" : "", &l->rate);
    l->name = name;

    if (ngx_http_fanout_stats_register_extra(cf, fmcf, &clcf->name, &name,
                                             NGX_HTTP_FANOUT_STATS_LIMIT,
                                             &loc_index, &l->stats)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    flcf->stats = loc_index;

    if (l->scope == NGX_HTTP_FANOUT_LIMIT_CLUSTER) {
        /* fanout:limit:LOCATION:KEY RATE:value, the same on every instance */
        l->prefix.len = sizeof("fanout:limit:::") - 1 + clcf->name.len
                        + name.len;
        l->prefix.data = ngx_pnalloc(cf->pool, l->prefix.len);
        if (l->prefix.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_sprintf(l->prefix.data, "fanout:limit:%V:%V:", &clcf->name,
                    &name);

        if (fmcf->cluster_file == NULL) {
            fmcf->cluster_file = cf->conf_file->file.name.data;
            fmcf->cluster_line = cf->conf_file->line;
        }

        if (ngx_http_fanout_limit_script.body.len == 0) {
            ngx_http_fanout_redis_script_init(&ngx_http_fanout_limit_script,
                                              ngx_http_fanout_limit_lua);
        }
    }

    return NGX_CONF_OK;
}


static void
ngx_http_fanout_limit_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t             **p;
    ngx_http_fanout_limit_node_t   *ln, *lnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            ln = (ngx_http_fanout_limit_node_t *) &node->color;
            lnt = (ngx_http_fanout_limit_node_t *) &temp->color;

            p = (ngx_memn2cmp(ln->data, lnt->data, ln->len, lnt->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_http_fanout_limit_node_t *
ngx_http_fanout_limit_find(ngx_http_fanout_shctx_t *sh, ngx_str_t *key,
    uint32_t hash)
{
    ngx_int_t                      rc;
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_fanout_limit_node_t  *ln;

    if (sh->limits.sentinel == NULL) {
        /* the limiter's keys in the zone, made at their first use (under
         * the zone's lock): the zone knows nothing of them */
        ngx_rbtree_init(&sh->limits, &sh->sentinel,
                        ngx_http_fanout_limit_insert);
        ngx_queue_init(&sh->lru);
    }

    node = sh->limits.root;
    sentinel = sh->limits.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        ln = (ngx_http_fanout_limit_node_t *) &node->color;

        rc = ngx_memn2cmp(key->data, ln->data, key->len, (size_t) ln->len);

        if (rc == 0) {
            return ln;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* a new key: the least recently used ones go when the zone is full */

static ngx_http_fanout_limit_node_t *
ngx_http_fanout_limit_add(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_main_conf_t *fmcf, ngx_str_t *key, uint32_t hash)
{
    size_t                         size;
    ngx_uint_t                     evicted;
    ngx_queue_t                   *q;
    ngx_rbtree_node_t             *node, *old;
    ngx_http_fanout_limit_node_t  *ln;

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_fanout_limit_node_t, data) + key->len;

    evicted = 0;

    for ( ;; ) {
        node = ngx_slab_alloc_locked(fmcf->shpool, size);

        if (node || ngx_queue_empty(&fmcf->sh->lru) || evicted == 16) {
            break;
        }

        q = ngx_queue_last(&fmcf->sh->lru);
        ln = ngx_queue_data(q, ngx_http_fanout_limit_node_t, queue);
        old = (ngx_rbtree_node_t *)
                  ((u_char *) ln - offsetof(ngx_rbtree_node_t, color));

        ngx_queue_remove(q);
        ngx_rbtree_delete(&fmcf->sh->limits, old);
        ngx_slab_free_locked(fmcf->shpool, old);

        evicted++;
    }

    if (evicted) {
        ngx_http_fanout_stats_count(
            ngx_http_fanout_stats_location(ctx->request, ctx->conf),
            NGX_HTTP_FANOUT_LOC_EVICTED);

        ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                      "fanout_limit: zone \"%V\" is full, %ui least recently "
                      "used keys evicted", &fmcf->shm_zone->shm.name, evicted);
    }

    if (node == NULL) {
        return NULL;
    }

    node->key = hash;

    ln = (ngx_http_fanout_limit_node_t *) &node->color;
    ln->len = (u_short) key->len;
    ln->tat = 0;
    ngx_memcpy(ln->data, key->data, key->len);

    ngx_rbtree_insert(&fmcf->sh->limits, node);
    ngx_queue_insert_head(&fmcf->sh->lru, &ln->queue);

    return ln;
}


/* what the request takes from limit i: requests (a batch's calls), or the
 * tokens its calls reserve */

static uint64_t
ngx_http_fanout_limit_cost(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_limit_t *l, ngx_uint_t i)
{
    return l->tokens ? ctx->limit->cost[i]
                     : (uint64_t) l->cost * ctx->limit->weight;
}


static ngx_int_t
ngx_http_fanout_limit_reject(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_limit_t *l, fanout_limit_result_t *res)
{
    u_char              *p, *body;
    ngx_int_t            rc;
    ngx_uint_t           retry_ms;
    ngx_table_elt_t     *h;
    ngx_http_request_t  *r;

    r = ctx->request;
    retry_ms = (ngx_uint_t) ((res->retry_after_us + 999) / 1000);

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    h = ngx_list_push(&r->headers_out.headers);
    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (h == NULL || p == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%ui", (retry_ms + 999) / 1000) - p;

    body = ngx_pnalloc(r->pool, 128 + l->rate.len + NGX_INT64_LEN);
    if (body == NULL) {
        return NGX_ERROR;
    }

    if (l->tokens) {
        p = ngx_sprintf(body, "{\"error\":\"token_limited\",\"limit\":"
                        "\"%V\",\"tokens\":%uL,\"retry_after_ms\":%ui}",
                        &l->rate, ctx->limit->cost[l - (ngx_http_fanout_limit_t *)
                                                   ctx->conf->limits->elts],
                        retry_ms);

    } else {
        p = ngx_sprintf(body, "{\"error\":\"rate_limited\",\"limit\":"
                        "\"%V\",\"retry_after_ms\":%ui}", &l->rate,
                        retry_ms);
    }

    return ngx_http_fanout_send_json(r, l->status, body, p - body);
}


/* a limit's bucket in the zone: its id, then the value (limits never
 * share one); its hash */

static uint32_t
ngx_http_fanout_limit_bucket(ngx_http_fanout_limit_t *l, ngx_str_t *value,
    u_char *buf, ngx_str_t *key)
{
    u_char  *p;

    key->len = sizeof(uint64_t) + ngx_min(value->len, 1024);
    key->data = buf;

    p = ngx_cpymem(buf, &l->id, sizeof(uint64_t));
    ngx_memcpy(p, value->data, key->len - sizeof(uint64_t));

    return ngx_murmur_hash2(key->data, key->len);
}


/* a limit's bucket in Redis: its prefix, then the value */

static ngx_int_t
ngx_http_fanout_limit_redis_key(ngx_pool_t *pool, ngx_http_fanout_limit_t *l,
    ngx_str_t *value, ngx_str_t *key)
{
    key->len = l->prefix.len + value->len;
    key->data = ngx_pnalloc(pool, key->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ngx_cpymem(key->data, l->prefix.data, l->prefix.len),
               value->data, value->len);

    return NGX_OK;
}


/*
 * The shared-memory limits of this request, in two steps under the zone's
 * lock: every bucket is asked first, and only when all of them admit the
 * request (and commit is set) are they all taken from, so a rejected
 * request costs nothing.  Returns the index of the limit that rejects, or
 * n.
 */

static ngx_uint_t
ngx_http_fanout_limit_shm(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_limit_run_t *run, ngx_uint_t commit)
{
    uint32_t                       hash;
    uint64_t                       now, tat[NGX_HTTP_FANOUT_MAX_LIMITS];
    ngx_str_t                      key;
    ngx_uint_t                     i, n, reject;
    ngx_time_t                    *tp;
    ngx_http_request_t            *r;
    ngx_http_fanout_limit_t       *limits;
    ngx_http_fanout_main_conf_t   *fmcf;
    fanout_limit_conf_t            gcra;
    ngx_http_fanout_limit_node_t  *ln[NGX_HTTP_FANOUT_MAX_LIMITS];
    u_char                         buf[sizeof(uint64_t) + 1024];

    r = ctx->request;
    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fanout_module);
    limits = ctx->conf->limits->elts;
    n = ctx->conf->limits->nelts;

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000000 + (uint64_t) tp->msec * 1000;

    reject = n;

    ngx_shmtx_lock(&fmcf->shpool->mutex);

    for (i = 0; i < n; i++) {
        ln[i] = NULL;

        if (run->where[i] != NGX_HTTP_FANOUT_LIMIT_SHM) {
            continue;
        }

        hash = ngx_http_fanout_limit_bucket(&limits[i], &run->values[i], buf,
                                            &key);

        ln[i] = ngx_http_fanout_limit_find(fmcf->sh, &key, hash);

        if (ln[i] == NULL) {
            ln[i] = ngx_http_fanout_limit_add(ctx, fmcf, &key, hash);

            if (ln[i] == NULL) {
                /* no room even after evicting: admit, it was logged */
                continue;
            }

        } else {
            ngx_queue_remove(&ln[i]->queue);
            ngx_queue_insert_head(&fmcf->sh->lru, &ln[i]->queue);
        }

        tat[i] = ln[i]->tat;
        gcra = limits[i].gcra;

        if (run->share[i] > 1) {
            fanout_limit_share(&limits[i].gcra, run->share[i], &gcra);
        }

        fanout_limit_take(&gcra, &tat[i], now,
                          ngx_http_fanout_limit_cost(ctx, &limits[i], i),
                          &run->res[i]);
        run->have[i] = 1;

        if (!run->res[i].allowed && !limits[i].dry_run && reject == n) {
            reject = i;
        }
    }

    if (reject == n && commit) {
        for (i = 0; i < n; i++) {
            if (ln[i]) {
                ln[i]->tat = tat[i];
            }
        }
    }

    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    return reject;
}


/* counts, the RateLimit-* headers of the tightest limit, and the answer */

static ngx_int_t
ngx_http_fanout_limit_verdict(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_limit_run_t *run)
{
    u_char                   *p, *body;
    uint64_t                  wait;
    ngx_int_t                 rc;
    ngx_uint_t                i, n, reject;
    ngx_http_request_t       *r;
    ngx_http_fanout_stats_t  *loc, *st;
    ngx_http_fanout_limit_t  *limits;

    r = ctx->request;
    limits = ctx->conf->limits->elts;
    n = ctx->conf->limits->nelts;
    loc = NULL;
    wait = 0;

    reject = n;

    for (i = 0; i < n; i++) {
        if (!run->have[i]) {
            continue;
        }

        st = ngx_http_fanout_stats_extra(r, ctx->conf, NGX_HTTP_FANOUT_STATS_LIMIT, limits[i].stats);

        if (run->res[i].allowed) {
            ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_LIM_ADMITTED);

            if (run->res[i].delay_us && !limits[i].dry_run) {
                ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_LIM_DELAYED);
                wait = ngx_max(wait, run->res[i].delay_us);
            }

        } else if (limits[i].dry_run) {
            loc = ngx_http_fanout_stats_location(r, ctx->conf);
            ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_LIM_DRY_RUN);
            ngx_http_fanout_stats_count(loc, NGX_HTTP_FANOUT_LOC_DRY_RUN);

            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "fanout_limit %V would reject this request "
                          "(dry_run)", &limits[i].rate);

        } else {
            loc = ngx_http_fanout_stats_location(r, ctx->conf);
            ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_LIM_REJECTED);
            ngx_http_fanout_stats_count(loc, NGX_HTTP_FANOUT_LOC_LIMITED);

            if (reject == n) {
                reject = i;
            }
        }

        if (!ctx->limit->limited || run->res[i].remaining < ctx->limit->remaining) {
            ctx->limit->limited = 1;
            ctx->limit->limit = limits[i].quota;
            ctx->limit->policy = limits[i].policy;
            ctx->limit->remaining = (ngx_uint_t) run->res[i].remaining;
            ctx->limit->reset = (ngx_uint_t) ((run->res[i].reset_us + 999999)
                                             / 1000000);
        }
    }

    if (reject < n) {
        /* the headers say the limit that refused, in its unit */
        ctx->limit->limit = limits[reject].quota;
        ctx->limit->policy = limits[reject].policy;
        ctx->limit->remaining = (ngx_uint_t) run->res[reject].remaining;
        ctx->limit->reset = (ngx_uint_t) ((run->res[reject].reset_us + 999999)
                                          / 1000000);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanout_limit %V: request rejected", &limits[reject].name);

        return ngx_http_fanout_limit_reject(ctx, &limits[reject],
                                            &run->res[reject]);
    }

    if (run->unavailable < n) {
        /* on_redis_error=closed: no answer from Redis, no request */
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        i = run->unavailable;

        body = ngx_pnalloc(r->pool, 128 + limits[i].rate.len);
        if (body == NULL) {
            return NGX_ERROR;
        }

        p = ngx_sprintf(body, "{\"error\":\"rate_limit_unavailable\","
                        "\"limit\":\"%V\",\"message\":\"the cluster rate "
                        "limit cannot be checked\"}", &limits[i].rate);

        return ngx_http_fanout_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         body, p - body);
    }

    if (ctx->limit->tokens) {
        /* reserved: settled when the request ends */
        ctx->limit->reserved = run;

        for (i = 0; i < n; i++) {
            if (run->have[i] && run->res[i].allowed) {
                st = ngx_http_fanout_stats_extra(r, ctx->conf,
                                                 NGX_HTTP_FANOUT_STATS_LIMIT,
                                                 limits[i].stats);
                (void) ngx_atomic_fetch_add(
                    &st->counters[NGX_HTTP_FANOUT_LIM_TOKENS_RESERVED],
                    ctx->limit->cost[i]);
            }
        }
    }

    if (wait) {
        /*
         * delay=: its token is taken, and it goes when it would have been
         * admitted; a client that leaves meanwhile ends it (the handler's
         * read event), and the cleanup takes the timer
         */
        ngx_http_fanout_stats_count(ngx_http_fanout_stats_location(r,
                                                                   ctx->conf),
                                    NGX_HTTP_FANOUT_LOC_DELAYED);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "fanout_limit: delayed %uLus", wait);

        ctx->limit->delay.handler = ngx_http_fanout_limit_delayed;
        ctx->limit->delay.data = ctx;
        ctx->limit->delay.log = r->connection->log;
        ngx_add_timer(&ctx->limit->delay, (ngx_msec_t) ((wait + 999) / 1000));

        /*
         * before its body is read (not a batch's check): notice a client
         * that goes, as limit_req does
         */
        if (r->read_event_handler == ngx_http_block_reading) {
            r->read_event_handler = ngx_http_test_reading;
            ctx->limit->reading = 1;
        }

        return NGX_AGAIN;
    }

    return NGX_DECLINED;
}


/* delay=: the request's turn came */

static void
ngx_http_fanout_limit_delayed(ngx_event_t *ev)
{
    ngx_http_fanout_ctx_t *ctx = ev->data;

    if (ctx->limit->reading) {
        ctx->limit->reading = 0;
        ctx->request->read_event_handler = ngx_http_block_reading;
    }

    ngx_http_fanout_resume(ctx, NGX_DECLINED);
}


/* Redis did not answer: each cluster limit does what on_redis_error says */

static void
ngx_http_fanout_limit_redis_failed(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_limit_run_t *run)
{
    ngx_uint_t                i, n;
    ngx_http_request_t       *r;
    ngx_http_fanout_limit_t  *limits;

    r = ctx->request;
    limits = ctx->conf->limits->elts;
    n = ctx->conf->limits->nelts;

    for (i = 0; i < n; i++) {
        if (run->where[i] != NGX_HTTP_FANOUT_LIMIT_REDIS) {
            continue;
        }

        ngx_http_fanout_stats_count(
            ngx_http_fanout_stats_extra(r, ctx->conf, NGX_HTTP_FANOUT_STATS_LIMIT, limits[i].stats),
            NGX_HTTP_FANOUT_LIM_REDIS_ERRORS);

        switch (limits[i].on_error) {

        case NGX_HTTP_FANOUT_LIMIT_ERR_LOCAL:
            run->where[i] = NGX_HTTP_FANOUT_LIMIT_SHM;
            break;

        case NGX_HTTP_FANOUT_LIMIT_ERR_SHARE:
            /* this instance's share: declared, or the last count learned */
            run->where[i] = NGX_HTTP_FANOUT_LIMIT_SHM;
            run->share[i] = limits[i].instances
                            ? limits[i].instances
                            : ngx_http_fanout_limit_fleet(ctx);
            break;

        case NGX_HTTP_FANOUT_LIMIT_ERR_OPEN:
            run->where[i] = NGX_HTTP_FANOUT_LIMIT_SKIP;
            break;

        default: /* closed */
            run->where[i] = NGX_HTTP_FANOUT_LIMIT_SKIP;

            if (run->unavailable == n) {
                run->unavailable = i;

                ngx_http_fanout_stats_count(
                    ngx_http_fanout_stats_extra(r, ctx->conf, NGX_HTTP_FANOUT_STATS_LIMIT, limits[i].stats),
                    NGX_HTTP_FANOUT_LIM_UNAVAILABLE);
            }
        }
    }

    /* the Redis client logs its trouble once a second; this says what now */
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "fanout_limit: Redis did not answer, on_redis_error "
                   "applies");
}


static void
ngx_http_fanout_limit_reply(void *data, redisReply *reply,
    ngx_http_fanout_redis_error_e error)
{
    ngx_http_fanout_ctx_t *ctx = data;

    ngx_int_t                     rc;
    ngx_uint_t                    i, j, n, reject, bad;
    redisReply                  **e;
    ngx_http_request_t           *r;
    ngx_http_fanout_limit_t      *limits;
    fanout_limit_result_t        *res;
    ngx_http_fanout_limit_run_t  *run;

    r = ctx->request;
    run = ctx->limit->run;
    limits = ctx->conf->limits->elts;
    n = ctx->conf->limits->nelts;

    ctx->limit->op = NULL;

    ngx_http_set_log_request(r->connection->log, r);

    bad = 1;

    if (reply && reply->type == REDIS_REPLY_ARRAY) {
        /* five integers for each limit sent, in order */
        e = reply->element;
        j = 0;
        bad = 0;

        for (i = 0; i < n && !bad; i++) {
            if (run->where[i] != NGX_HTTP_FANOUT_LIMIT_REDIS) {
                continue;
            }

            if (j + 5 > reply->elements
                || e[j]->type != REDIS_REPLY_INTEGER
                || e[j + 1]->type != REDIS_REPLY_INTEGER
                || e[j + 2]->type != REDIS_REPLY_INTEGER
                || e[j + 3]->type != REDIS_REPLY_INTEGER
                || e[j + 4]->type != REDIS_REPLY_INTEGER)
            {
                bad = 1;
                break;
            }

            res = &run->res[i];
            res->allowed = e[j]->integer ? 1 : 0;
            res->remaining = (uint64_t) ngx_max(e[j + 1]->integer, 0);
            res->reset_us = (uint64_t) ngx_max(e[j + 2]->integer, 0);
            res->retry_after_us = (uint64_t) ngx_max(e[j + 3]->integer, 0);
            res->delay_us = (uint64_t) ngx_max(e[j + 4]->integer, 0);
            run->have[i] = 1;

            j += 5;
        }

        if (bad) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "fanout_limit: unexpected reply from the Redis "
                          "script");
        }
    }

    if (bad) {
        for (i = 0; i < n; i++) {
            if (run->where[i] == NGX_HTTP_FANOUT_LIMIT_REDIS) {
                run->have[i] = 0;
            }
        }

        ngx_http_fanout_limit_redis_failed(ctx, run);
    }

    reject = n;

    for (i = 0; i < n; i++) {
        if (run->have[i] && !run->res[i].allowed && !limits[i].dry_run) {
            reject = i;
            break;
        }
    }

    if (reject == n && run->unavailable == n) {
        /* Redis admits: now take from the shared-memory buckets */
        (void) ngx_http_fanout_limit_shm(ctx, run, 1);
    }

    rc = ngx_http_fanout_limit_verdict(ctx, run);

    if (rc == NGX_AGAIN) {
        /* delayed: its timer resumes the pipeline */
        return;
    }

    ngx_http_fanout_resume_answered(ctx, rc);
}


/*
 * All limits of the location.  The shared-memory ones are asked first: a
 * request they reject never reaches Redis.  Cluster limits then go to
 * Redis in one script, and only when Redis admits are the shared-memory
 * buckets taken from.  NGX_DECLINED: admitted; NGX_AGAIN: Redis will
 * answer, and the pipeline resumes with the verdict; else a response.
 */

/*
 * Merge time: each limit's buckets are keyed by its server block, its
 * location and its "KEY RATE" as written, never by the order it was read
 * in: a reload (or a deploy) keeps every client's bucket.
 */

ngx_int_t
ngx_http_fanout_limit_merge(ngx_conf_t *cf, ngx_http_fanout_loc_conf_t *flcf)
{
    u_char                    *p, *material;
    size_t                     len;
    ngx_uint_t                 i, requests;
    ngx_http_fanout_limit_t   *l;
    ngx_http_core_loc_conf_t  *clcf;

    if (flcf->limits == NULL) {
        return NGX_OK;
    }

    requests = 0;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    l = flcf->limits->elts;

    for (i = 0; i < flcf->limits->nelts; i++) {
        len = flcf->server_id.len + clcf->name.len + l[i].name.len + 2;

        material = ngx_pnalloc(cf->pool, len);
        if (material == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(material, flcf->server_id.data, flcf->server_id.len);
        *p++ = '\n';
        p = ngx_cpymem(p, clcf->name.data, clcf->name.len);
        *p++ = '\n';
        p = ngx_cpymem(p, l[i].name.data, l[i].name.len);

        /* two 32-bit hashes: two limits sharing one is out of reach */
        l[i].id = ((uint64_t) ngx_crc32_long(material, len) << 32)
                  | ngx_murmur_hash2(material, len);

        if (l[i].tokens) {
            /* reserved after the cache, before the calls */
            flcf->stages |= 1 << NGX_HTTP_FANOUT_STAGE_TOKENS;
            continue;
        }

        requests++;

        if (flcf->batch
            && l[i].cost * flcf->batch->max_items > l[i].gcra.capacity)
        {
            /* a batch weighs its calls: larger ones can never pass */
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "\"fanout_limit\" \"%V\" of location \"%V\": a "
                          "batch of more than %uL calls is over its burst "
                          "and is always refused (fanout_batch max_items=%ui "
                          "in %s:%ui)", &l[i].name, &clcf->name,
                          l[i].gcra.capacity / l[i].cost,
                          flcf->batch->max_items, flcf->batch->file,
                          flcf->batch->line);
        }
    }

    if (requests == 0) {
        flcf->stages &= ~(1 << NGX_HTTP_FANOUT_STAGE_LIMIT);
    }

    return NGX_OK;
}


/* RateLimit-Limit, -Remaining, -Reset and -Policy, of the tightest limit */

static ngx_int_t
ngx_http_fanout_limit_headers(ngx_http_request_t *r, void *data)
{
    ngx_http_fanout_limit_ctx_t *lc = data;

    u_char            *p, *last;
    ngx_uint_t         i, v;
    ngx_table_elt_t   *h;
    static ngx_str_t   names[4] = {
        ngx_string("RateLimit-Limit"),
        ngx_string("RateLimit-Remaining"),
        ngx_string("RateLimit-Reset"),
        ngx_string("RateLimit-Policy")
    };

    if (!lc->limited) {
        return NGX_OK;
    }

    /*
     * On every answer of a limited location: the limit as written at
     * configuration, the others in plain digits, no ngx_sprintf.
     */
    p = ngx_pnalloc(r->pool, 2 * NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < 4; i++) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        h->key = names[i];

        if (i == 0 || i == 3) {
            h->value = (i == 0) ? lc->limit : lc->policy;
            continue;
        }

        v = (i == 1) ? lc->remaining : lc->reset;
        p += NGX_INT_T_LEN;
        last = p;

        do {
            *--last = (u_char) ('0' + v % 10);
            v /= 10;
        } while (v);

        h->value.data = last;
        h->value.len = p - last;
    }

    return NGX_OK;
}


/* a call not reserved for (answered by the cache) */
#define NGX_HTTP_FANOUT_TOKENS_NONE     ((uint64_t) -1)

/* what one call used: nothing, what its answer says, or its reservation */
#define NGX_HTTP_FANOUT_TOKENS_NOTHING  0
#define NGX_HTTP_FANOUT_TOKENS_SAID     1
#define NGX_HTTP_FANOUT_TOKENS_KEEP     2

/* a model's word for one call without a cap, at most (2^32): sums stay
 * exact */
#define NGX_HTTP_FANOUT_TOKENS_MAX      4294967296ULL


static ngx_uint_t
ngx_http_fanout_limit_used(ngx_http_fanout_call_t *sub, uint64_t bound,
    uint64_t *used)
{
    fanout_usage_t  u;

    if (sub->cancelled) {
        /* not needed (merge first's others, a hedge's loser) */
        return NGX_HTTP_FANOUT_TOKENS_NOTHING;
    }

    if (!sub->done) {
        /* cut off with its request: the model may have worked on it */
        return sub->nattempts ? NGX_HTTP_FANOUT_TOKENS_KEEP
                              : NGX_HTTP_FANOUT_TOKENS_NOTHING;
    }

    if (sub->part.status < 200 || sub->part.status > 299) {
        /* failed, timed out, or never made (breaker, max_inflight) */
        return NGX_HTTP_FANOUT_TOKENS_NOTHING;
    }

    if (sub->part.body && sub->part.body_len) {
        fanout_tokens_usage(sub->part.body, sub->part.body_len, &u);

    } else if (sub->attempt && sub->attempt->tail) {
        /* streamed to the client: the usage of its last event, if any */
        fanout_tokens_usage((const char *) sub->attempt->tail,
                            sub->attempt->tail_len, &u);

    } else {
        return NGX_HTTP_FANOUT_TOKENS_KEEP;
    }

    if (!u.found) {
        return NGX_HTTP_FANOUT_TOKENS_KEEP;
    }

    /* a model that says more than the call could use is not believed */
    *used = ngx_min(u.total, bound);

    return NGX_HTTP_FANOUT_TOKENS_SAID;
}


/* tokens=: budget i took this request's reservation */
#define ngx_http_fanout_limit_reserved(run, i)                              \
    ((run)->where[i] != NGX_HTTP_FANOUT_LIMIT_SKIP && (run)->have[i]         \
     && (run)->res[i].allowed)


/*
 * Signed deltas (0: none) to the budgets this request reserved from: in
 * the zone under its lock, and in Redis by one run of the script in its
 * settle mode, at the fleet's clock, sent without a handler: nothing
 * waits for it (the request may be ending).
 */

static void
ngx_http_fanout_limit_apply(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_limit_run_t *run, const int64_t *delta)
{
    u_char                        *p;
    size_t                        *lens;
    uint32_t                       hash;
    uint64_t                       now;
    ngx_str_t                      key;
    ngx_uint_t                     i, k, n, ncluster;
    const char                   **argv;
    ngx_time_t                    *tp;
    ngx_http_request_t            *r;
    ngx_http_fanout_limit_t       *limits;
    ngx_http_fanout_main_conf_t   *fmcf;
    ngx_http_fanout_limit_node_t  *ln;
    fanout_limit_conf_t            gcra;
    u_char                         buf[sizeof(uint64_t) + 1024];

    r = ctx->request;
    limits = ctx->conf->limits->elts;
    n = ctx->conf->limits->nelts;
    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fanout_module);

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000000 + (uint64_t) tp->msec * 1000;
    ncluster = 0;

    for (i = 0; i < n; i++) {
        if (delta[i] == 0 || !ngx_http_fanout_limit_reserved(run, i)) {
            continue;
        }

        if (run->where[i] == NGX_HTTP_FANOUT_LIMIT_REDIS) {
            ncluster++;
            continue;
        }

        hash = ngx_http_fanout_limit_bucket(&limits[i], &run->values[i], buf,
                                            &key);

        gcra = limits[i].gcra;

        if (run->share[i] > 1) {
            fanout_limit_share(&limits[i].gcra, run->share[i], &gcra);
        }

        ngx_shmtx_lock(&fmcf->shpool->mutex);

        /* a key evicted meanwhile has nothing to settle */
        ln = ngx_http_fanout_limit_find(fmcf->sh, &key, hash);

        if (ln) {
            fanout_limit_settle(&gcra, &ln->tat, now, delta[i]);
        }

        ngx_shmtx_unlock(&fmcf->shpool->mutex);
    }

    if (ncluster == 0 || fmcf->redis == NULL) {
        return;
    }

    /* EVALSHA sha nkeys key... (interval burst delta "2" 0)... */

    argv = ngx_palloc(r->pool, (3 + 6 * ncluster) * sizeof(char *));
    lens = ngx_palloc(r->pool, (3 + 6 * ncluster) * sizeof(size_t));
    p = ngx_pnalloc(r->pool, (1 + ncluster) * NGX_INT64_LEN);
    if (argv == NULL || lens == NULL || p == NULL) {
        return;
    }

    argv[2] = (const char *) p;
    lens[2] = ngx_sprintf(p, "%ui", ncluster) - p;
    p += NGX_INT64_LEN;
    k = 0;

    for (i = 0; i < n; i++) {
        if (delta[i] == 0 || !ngx_http_fanout_limit_reserved(run, i)
            || run->where[i] != NGX_HTTP_FANOUT_LIMIT_REDIS)
        {
            continue;
        }

        if (ngx_http_fanout_limit_redis_key(r->pool, &limits[i],
                                            &run->values[i], &key)
            != NGX_OK)
        {
            return;
        }

        argv[3 + k] = (const char *) key.data;
        lens[3 + k] = key.len;
        argv[3 + ncluster + 5 * k] = (const char *) limits[i].args[0];
        lens[3 + ncluster + 5 * k] = limits[i].args_len[0];
        argv[4 + ncluster + 5 * k] = (const char *) limits[i].args[1];
        lens[4 + ncluster + 5 * k] = limits[i].args_len[1];
        argv[5 + ncluster + 5 * k] = (const char *) p;
        lens[5 + ncluster + 5 * k] = ngx_sprintf(p, "%L", delta[i]) - p;
        p += NGX_INT64_LEN;
        argv[6 + ncluster + 5 * k] = "2";
        lens[6 + ncluster + 5 * k] = 1;
        argv[7 + ncluster + 5 * k] = "0";
        lens[7 + ncluster + 5 * k] = 1;

        k++;
    }

    /* the arguments are copied at once; the reply only counts (the
     * cycle's log: the request may be gone) */
    (void) ngx_http_fanout_redis_eval(ngx_cycle->log,
                                      &ngx_http_fanout_limit_script,
                                      3 + 6 * ncluster, argv, lens, NULL,
                                      NULL);
}


/* what budget i reserved for call k: its estimate= or the body's */
#define ngx_http_fanout_limit_share_of(l, lc, k)                             \
    ((l)->estimate ? (uint64_t) (l)->estimate : (lc)->estimates[k])


/*
 * tokens=: the budgets that reserved for this request get what its calls
 * used instead: the difference is charged (a debt, past the burst) or
 * given back (down to a full bucket).  Once.
 */

static void
ngx_http_fanout_limit_settle(ngx_http_fanout_limit_ctx_t *lc)
{
    int64_t                        delta[NGX_HTTP_FANOUT_MAX_LIMITS];
    uint64_t                       u, used[NGX_HTTP_FANOUT_MAX_LIMITS];
    ngx_uint_t                     i, k, n, how;
    ngx_http_request_t            *r;
    ngx_http_fanout_ctx_t         *ctx;
    ngx_http_fanout_stats_t       *st;
    ngx_http_fanout_limit_t       *limits;
    ngx_http_fanout_limit_run_t   *run;

    run = lc->reserved;
    ctx = lc->ctx;
    r = ctx->request;
    lc->reserved = NULL;

    limits = ctx->conf->limits->elts;
    n = ctx->conf->limits->nelts;

    for (i = 0; i < n; i++) {
        used[i] = 0;
    }

    for (k = 0; k < ctx->nsubs; k++) {
        if (lc->estimates[k] == NGX_HTTP_FANOUT_TOKENS_NONE) {
            continue;
        }

        u = 0;
        how = ngx_http_fanout_limit_used(&ctx->subs[k], lc->bounds[k], &u);

        for (i = 0; i < n; i++) {
            if (how == NGX_HTTP_FANOUT_TOKENS_SAID) {
                used[i] += u;

            } else if (how == NGX_HTTP_FANOUT_TOKENS_KEEP) {
                used[i] += ngx_http_fanout_limit_share_of(&limits[i], lc, k);
            }
        }
    }

    for (i = 0; i < n; i++) {
        delta[i] = 0;

        if (!ngx_http_fanout_limit_reserved(run, i)) {
            /* skipped, failed open, or dry_run's refusal: nothing taken */
            continue;
        }

        st = ngx_http_fanout_stats_extra(r, ctx->conf,
                                         NGX_HTTP_FANOUT_STATS_LIMIT,
                                         limits[i].stats);
        (void) ngx_atomic_fetch_add(
                   &st->counters[NGX_HTTP_FANOUT_LIM_TOKENS_USED], used[i]);

        delta[i] = (int64_t) used[i] - (int64_t) lc->cost[i];

        ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "fanout_limit %V: %uL tokens reserved, %uL used, "
                       "settled %L", &limits[i].name, lc->cost[i], used[i],
                       delta[i]);
    }

    ngx_http_fanout_limit_apply(ctx, run, delta);
}


/*
 * A retry or a hedge of a call starts: it draws the call's reservation
 * again, charged at once (never refused: its request was admitted), and
 * the settlement gives back what it did not use (a hedge's loser, a
 * retry of a failed attempt).
 */

void
ngx_http_fanout_limit_draw(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    int64_t                        delta[NGX_HTTP_FANOUT_MAX_LIMITS];
    ngx_uint_t                     i, k, n;
    ngx_http_fanout_stats_t       *st;
    ngx_http_fanout_limit_t       *limits;
    ngx_http_fanout_limit_ctx_t   *lc;
    ngx_http_fanout_limit_run_t   *run;

    lc = ctx->limit;

    if (lc == NULL || lc->reserved == NULL) {
        return;
    }

    run = lc->reserved;

    k = sub - ctx->subs;

    if (k >= ctx->nsubs || lc->estimates[k] == NGX_HTTP_FANOUT_TOKENS_NONE) {
        return;
    }

    limits = ctx->conf->limits->elts;
    n = ctx->conf->limits->nelts;

    for (i = 0; i < n; i++) {
        delta[i] = 0;

        if (!ngx_http_fanout_limit_reserved(run, i)) {
            continue;
        }

        delta[i] = (int64_t) ngx_http_fanout_limit_share_of(&limits[i], lc, k);
        lc->cost[i] += (uint64_t) delta[i];

        st = ngx_http_fanout_stats_extra(ctx->request, ctx->conf,
                                         NGX_HTTP_FANOUT_STATS_LIMIT,
                                         limits[i].stats);
        (void) ngx_atomic_fetch_add(
                   &st->counters[NGX_HTTP_FANOUT_LIM_TOKENS_RESERVED],
                   (ngx_atomic_uint_t) delta[i]);
    }

    ngx_http_fanout_limit_apply(ctx, run, delta);
}


/*
 * The answer is decided (the log stage, before it is sent): the budgets
 * settle now, so that the caller's next request, on any worker, finds
 * them settled.  A stream still on its way settles when it ends (the
 * cleanup below), from its last event.
 */

void
ngx_http_fanout_limit_settle_now(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->limit == NULL || ctx->limit->reserved == NULL
        || (ctx->winner && ctx->winner->streaming))
    {
        return;
    }

    ngx_http_fanout_limit_settle(ctx->limit);
}


/* the request ends: a reply not come is dropped, a reservation settled */

static void
ngx_http_fanout_limit_cleanup(void *data)
{
    ngx_http_fanout_limit_ctx_t *lc = data;

    if (lc->op) {
        ngx_http_fanout_redis_cancel(lc->op);
        lc->op = NULL;
    }

    if (lc->delay.timer_set) {
        ngx_del_timer(&lc->delay);
    }

    if (lc->reserved) {
        ngx_http_fanout_limit_settle(lc);
    }
}


/* the request's limit state, its cleanup and its headers, once */

static ngx_int_t
ngx_http_fanout_limit_ctx(ngx_http_fanout_ctx_t *ctx)
{
    ngx_http_cleanup_t  *cln;

    if (ctx->limit) {
        return NGX_OK;
    }

    ctx->limit = ngx_pcalloc(ctx->request->pool,
                             sizeof(ngx_http_fanout_limit_ctx_t));
    if (ctx->limit == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_http_cleanup_add(ctx->request, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_fanout_limit_cleanup;
    cln->data = ctx->limit;

    ctx->limit->ctx = ctx;
    ctx->limit->header.write = ngx_http_fanout_limit_headers;
    ctx->limit->header.data = ctx->limit;
    ngx_http_fanout_headers_add(ctx, &ctx->limit->header);

    return NGX_OK;
}


/*
 * weight: the calls the request makes (a batch's), 1 for one request.
 * The request limits (rate=), or with ctx->limit->tokens the token
 * budgets (tokens=), each at its cost.
 */

ngx_int_t
ngx_http_fanout_limit_check(ngx_http_fanout_ctx_t *ctx, ngx_uint_t weight)
{
    size_t                       *lens;
    ngx_str_t                     value;
    ngx_uint_t                    i, n, k, ncluster, reject;
    const char                  **argv;
    ngx_http_request_t           *r;
    ngx_http_fanout_limit_t      *limits;
    ngx_http_fanout_limit_run_t  *run;
    ngx_http_fanout_main_conf_t  *fmcf;
    ngx_http_variable_value_t    *vv;

    r = ctx->request;
    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fanout_module);
    limits = ctx->conf->limits->elts;
    n = ctx->conf->limits->nelts;

    if (ngx_http_fanout_limit_ctx(ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->limit->weight = ngx_max(weight, 1);

    /* every field is set before it is read; only have[] starts cleared */
    run = ngx_palloc(r->pool, sizeof(ngx_http_fanout_limit_run_t));
    if (run == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(run->have, n * sizeof(ngx_uint_t));
    ngx_memzero(run->share, n * sizeof(ngx_uint_t));

    ctx->limit->run = run;
    run->unavailable = n;
    ncluster = 0;

    for (i = 0; i < n; i++) {
        if (limits[i].tokens != ctx->limit->tokens) {
            /* the other kind: checked in its own stage */
            run->where[i] = NGX_HTTP_FANOUT_LIMIT_SKIP;
            continue;
        }

        if (limits[i].var != NGX_ERROR) {
            vv = ngx_http_get_indexed_variable(r, limits[i].var);

            if (vv == NULL || vv->not_found) {
                ngx_str_null(&value);

            } else {
                value.data = vv->data;
                value.len = vv->len;
            }

        } else if (ngx_http_complex_value(r, &limits[i].key, &value)
                   != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        run->values[i] = value;

        if (value.len == 0) {
            /* like limit_req: an empty key is not limited */
            run->where[i] = NGX_HTTP_FANOUT_LIMIT_SKIP;

        } else if (limits[i].scope == NGX_HTTP_FANOUT_LIMIT_CLUSTER) {
            run->where[i] = NGX_HTTP_FANOUT_LIMIT_REDIS;
            ncluster++;

        } else {
            run->where[i] = NGX_HTTP_FANOUT_LIMIT_SHM;
        }
    }

    reject = ngx_http_fanout_limit_shm(ctx, run, ncluster == 0);

    if (reject < n || ncluster == 0) {
        return ngx_http_fanout_limit_verdict(ctx, run);
    }

    /* EVALSHA sha nkeys key... (interval burst cost dry_run delay)... */

    argv = ngx_palloc(r->pool, (3 + 6 * ncluster) * sizeof(char *));
    lens = ngx_palloc(r->pool, (3 + 6 * ncluster) * sizeof(size_t));
    if (argv == NULL || lens == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[2] = (const char *) ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (argv[2] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lens[2] = ngx_sprintf((u_char *) argv[2], "%ui", ncluster)
              - (u_char *) argv[2];

    k = 0;

    for (i = 0; i < n; i++) {
        if (run->where[i] != NGX_HTTP_FANOUT_LIMIT_REDIS) {
            continue;
        }

        if (ngx_http_fanout_limit_redis_key(r->pool, &limits[i],
                                            &run->values[i], &value)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        argv[3 + k] = (const char *) value.data;
        lens[3 + k] = value.len;

        argv[3 + ncluster + 5 * k] = (const char *) limits[i].args[0];
        lens[3 + ncluster + 5 * k] = limits[i].args_len[0];
        argv[4 + ncluster + 5 * k] = (const char *) limits[i].args[1];
        lens[4 + ncluster + 5 * k] = limits[i].args_len[1];
        argv[5 + ncluster + 5 * k] = (const char *) limits[i].args[2];
        lens[5 + ncluster + 5 * k] = limits[i].args_len[2];

        if (ctx->limit->weight > 1 || limits[i].tokens) {
            /* a batch weighs its calls; a budget, its calls' tokens */
            value.data = ngx_pnalloc(r->pool, NGX_INT64_LEN);
            if (value.data == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            argv[5 + ncluster + 5 * k] = (const char *) value.data;
            lens[5 + ncluster + 5 * k] =
                ngx_sprintf(value.data, "%uL",
                            ngx_http_fanout_limit_cost(ctx, &limits[i], i))
                - value.data;
        }
        argv[6 + ncluster + 5 * k] = limits[i].dry_run ? "1" : "0";
        lens[6 + ncluster + 5 * k] = 1;
        argv[7 + ncluster + 5 * k] = (const char *) limits[i].args[3];
        lens[7 + ncluster + 5 * k] = limits[i].args_len[3];

        k++;
    }

    if (fmcf->redis) {
        ctx->limit->op = ngx_http_fanout_redis_eval(r->connection->log,
                                                   &ngx_http_fanout_limit_script,
                                                   3 + 6 * ncluster, argv, lens,
                                                   ngx_http_fanout_limit_reply,
                                                   ctx);
        if (ctx->limit->op) {
            return NGX_AGAIN;
        }
    }

    /* not sent: no connection ready (counted and logged by the client) */

    ngx_http_fanout_limit_redis_failed(ctx, run);

    if (run->unavailable == n) {
        (void) ngx_http_fanout_limit_shm(ctx, run, 1);
    }

    return ngx_http_fanout_limit_verdict(ctx, run);
}


ngx_int_t
ngx_http_fanout_limit_stage(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->conf->limits == NULL || ctx->conf->batch) {
        /* a batch is weighed by its calls in the batch stage, once read */
        return NGX_DECLINED;
    }

    return ngx_http_fanout_limit_check(ctx, 1);
}


/*
 * tokens=: after the cache (a hit costs nothing) and before any call,
 * each call's estimate is reserved from every token budget: a call of a
 * budget with estimate= reserves that, else what its own body says
 * (fanout_tokens_estimate(): its max_tokens and its prompt's size).  A
 * request over a budget's whole burst never fits: 413, at once.
 */

ngx_int_t
ngx_http_fanout_limit_tokens_stage(ngx_http_fanout_ctx_t *ctx)
{
    int                           capped;
    u_char                       *p, *body;
    uint64_t                      sum, e;
    ngx_str_t                     client, item, *from;
    ngx_uint_t                    i, k, n, calls, made;
    ngx_http_request_t           *r;
    ngx_http_fanout_call_t       *sub;
    ngx_http_fanout_limit_t      *limits;
    ngx_http_fanout_limit_ctx_t  *lc;

    r = ctx->request;
    limits = ctx->conf->limits->elts;
    n = ctx->conf->limits->nelts;

    if (ngx_http_fanout_limit_ctx(ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lc = ctx->limit;

    lc->estimates = ngx_palloc(r->pool,
                               2 * (ctx->nsubs + 1) * sizeof(uint64_t));
    if (lc->estimates == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lc->bounds = lc->estimates + ctx->nsubs + 1;

    ngx_str_null(&client);
    made = NGX_CONF_UNSET_UINT;
    sum = 0;
    calls = 0;

    /* one pass over each call's body: linear in the bytes sent */

    for (k = 0; k < ctx->nsubs; k++) {
        sub = &ctx->subs[k];

        if (sub->done) {
            /* answered already (its target's cache): nothing to reserve */
            lc->estimates[k] = NGX_HTTP_FANOUT_TOKENS_NONE;
            continue;
        }

        if (sub->body) {
            from = sub->body;

        } else if (ngx_http_fanout_body_source(ctx, k, &client, &item, &made,
                                               &from)
                   != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        e = fanout_tokens_estimate((const char *) from->data, from->len,
                                   &capped);

        /*
         * What it can use at most: its cap and its prompt, a token a
         * byte at worst; without a cap, what a model may say at most
         */
        lc->bounds[k] = capped ? e - (from->len + FANOUT_TOKENS_BYTES - 1)
                                     / FANOUT_TOKENS_BYTES + from->len
                               : NGX_HTTP_FANOUT_TOKENS_MAX;
        lc->bounds[k] = ngx_min(lc->bounds[k], NGX_HTTP_FANOUT_TOKENS_MAX);
        lc->estimates[k] = ngx_min(e, NGX_HTTP_FANOUT_TOKENS_MAX);
        sum += lc->estimates[k];
        calls++;
    }

    if (calls == 0) {
        return NGX_DECLINED;
    }

    for (i = 0; i < n; i++) {
        if (!limits[i].tokens) {
            continue;
        }

        lc->cost[i] = limits[i].estimate ? (uint64_t) limits[i].estimate
                                           * calls
                                         : sum;

        if (lc->cost[i] <= limits[i].gcra.capacity || limits[i].dry_run) {
            continue;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanout_limit %V: the request needs %uL tokens, more "
                      "than the budget's burst of %uL", &limits[i].name,
                      lc->cost[i], limits[i].gcra.capacity);

        body = ngx_pnalloc(r->pool, 128 + limits[i].rate.len
                                    + 2 * NGX_INT64_LEN);
        if (body == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_sprintf(body, "{\"error\":\"too_many_tokens\",\"limit\":"
                        "\"%V\",\"tokens\":%uL,\"burst\":%uL}",
                        &limits[i].rate, lc->cost[i],
                        limits[i].gcra.capacity);

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_fanout_send_json(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                         body, p - body);
    }

    lc->tokens = 1;

    return ngx_http_fanout_limit_check(ctx, 1);
}


/* the instances local_share divides by: the last count, at least one */

static ngx_uint_t
ngx_http_fanout_limit_fleet(ngx_http_fanout_ctx_t *ctx)
{
    ngx_http_fanout_main_conf_t  *fmcf;

    fmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_fanout_module);

    return fmcf->sh->fleet_instances ? fmcf->sh->fleet_instances : 1;
}


static void
ngx_http_fanout_heartbeat_reply(void *data, redisReply *reply,
    ngx_http_fanout_redis_error_e error)
{
    ngx_http_fanout_main_conf_t  *fmcf = data;

    ngx_http_fanout_heartbeat_op = NULL;

    /* Redis down: the last count stays, as local_share wants */
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
        fmcf->sh->fleet_instances = (ngx_atomic_uint_t) reply->integer;
    }
}


/* the last heartbeat is still out */

static ngx_uint_t
ngx_http_fanout_heartbeat_busy(ngx_http_fanout_task_t *task)
{
    return ngx_http_fanout_heartbeat_op != NULL;
}


/* once a second, one worker of the instance says it is there */

static void
ngx_http_fanout_heartbeat(ngx_http_fanout_task_t *task)
{
    size_t                        len[6];
    const char                   *argv[6];
    u_char                        ttl[NGX_INT_T_LEN];

    /* EVALSHA sha 1 KEY ID TTL */
    argv[2] = "1";
    len[2] = 1;
    argv[3] = "fanout:instances";
    len[3] = sizeof("fanout:instances") - 1;
    argv[4] = (const char *) ngx_http_fanout_heartbeat_id;
    len[4] = ngx_http_fanout_heartbeat_len;
    argv[5] = (const char *) ttl;
    len[5] = ngx_sprintf(ttl, "%d", NGX_HTTP_FANOUT_HEARTBEAT_TTL) - ttl;

    ngx_http_fanout_heartbeat_op = ngx_http_fanout_redis_eval(task->ev.log,
                                       &ngx_http_fanout_heartbeat_script,
                                       6, argv, len,
                                       ngx_http_fanout_heartbeat_reply, task->data);
}


ngx_int_t
ngx_http_fanout_limit_init_process(ngx_cycle_t *cycle)
{
    ngx_http_fanout_main_conf_t  *fmcf;

    fmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_fanout_module);

    if (fmcf == NULL || !fmcf->heartbeat || fmcf->redis == NULL
        || fmcf->sh == NULL)
    {
        return NGX_OK;
    }

    /* the instance: its name and its master, unique in the fleet */
    ngx_http_fanout_heartbeat_len = ngx_snprintf(ngx_http_fanout_heartbeat_id,
                                        sizeof(ngx_http_fanout_heartbeat_id),
                                        "%V:%P", &fmcf->instance, ngx_parent)
                                    - ngx_http_fanout_heartbeat_id;

    ngx_http_fanout_redis_script_init(&ngx_http_fanout_heartbeat_script,
                                      ngx_http_fanout_heartbeat_lua);

    ngx_http_fanout_heartbeat_task.period = NGX_HTTP_FANOUT_HEARTBEAT;
    ngx_http_fanout_heartbeat_task.last = &fmcf->sh->heartbeat_at;
    ngx_http_fanout_heartbeat_task.shpool = fmcf->shpool;
    ngx_http_fanout_heartbeat_task.run = ngx_http_fanout_heartbeat;
    ngx_http_fanout_heartbeat_task.busy = ngx_http_fanout_heartbeat_busy;
    ngx_http_fanout_heartbeat_task.data = fmcf;

    ngx_http_fanout_task_start(&ngx_http_fanout_heartbeat_task, cycle->log, 1);

    return NGX_OK;
}
