/*
 * fanout_api's changes to the runtime state: each checked against the
 * configuration and the state (a split's variants and shares, the
 * quorum in every variant, a breaker to force), made in the zone, then
 * written for the fleet (ngx_http_fanout_rt_write()).  The state and its
 * fleet sync are ngx_http_fanout_runtime.c.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_runtime.h"
#include "ngx_http_fanout_runtime_change.h"
#include "ngx_http_fanout_stats.h"


/*
 * Would every request still find enough enabled targets for the location's
 * quorum, as nginx -t makes sure of the configuration?  In each variant
 * the split sends requests to (its targets and the untagged ones), and
 * with the untagged alone when the shares leave requests without one.
 * split: the shares to judge (NULL: no split); all: every variant, as a
 * ramp may send requests to any; off: a target about to be disabled, or
 * -1.  NGX_OK, or NGX_DECLINED with the change refused (409 quorum).
 */

static ngx_int_t
ngx_http_fanout_rt_stranded(ngx_http_fanout_stats_loc_t *loc,
    const fanout_split_t *split, ngx_uint_t all, ngx_int_t off,
    ngx_http_fanout_rt_change_t *ch)
{
    ngx_int_t                        j, from;
    ngx_uint_t                       k, n, quorum, sum;
    ngx_http_fanout_stats_target_t  *t, *v;

    t = loc->targets.elts;
    quorum = ngx_max(loc->quorum, 1);
    sum = 0;

    /* j = -1: requests without a variant, judged last */
    from = split ? 0 : -1;

    for (j = from; split == NULL || j < (ngx_int_t) split->n; j++) {

        if (j >= 0) {
            sum += split->share[j];

            if (split->share[j] == 0 && !all) {
                continue;
            }
        }

        for (n = 0, k = 0; k < loc->targets.nelts; k++) {
            n += ((ngx_int_t) k != off && !t[k].node->rt.disabled
                  && (t[k].variant < 0 || t[k].variant == j));
        }

        if (n < quorum) {
            ch->status = NGX_HTTP_CONFLICT;
            ch->error = "quorum";

            if (j < 0) {
                ch->message = "too few targets would be left for the "
                              "location's quorum";
                return NGX_DECLINED;
            }

            v = loc->variants.elts;

            /* named by fanout_api; in the zone after its kind's byte */
            ch->message = "a variant would be left with too few enabled "
                          "targets for the location's quorum";
            ch->name.data = v[j].name.data + 1;
            ch->name.len = v[j].name.len - 1;
            ch->stranded = 1;
            return NGX_DECLINED;
        }

        if (split == NULL) {
            return NGX_OK;
        }
    }

    if (sum >= FANOUT_SPLIT_WHOLE) {
        return NGX_OK;
    }

    for (n = 0, k = 0; k < loc->targets.nelts; k++) {
        n += ((ngx_int_t) k != off && !t[k].node->rt.disabled
              && t[k].variant < 0);
    }

    if (n < quorum) {
        ch->status = NGX_HTTP_CONFLICT;
        ch->error = "quorum";
        ch->message = "requests without a variant would be left with too "
                      "few enabled untagged targets for the location's "
                      "quorum";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* the shares a location's split has now: fanout_api's, a ramp's, or its
 * configuration's */

static void
ngx_http_fanout_rt_split_now(ngx_http_fanout_main_conf_t *fmcf,
    ngx_http_fanout_stats_loc_t *loc, fanout_split_t *split)
{
    ngx_http_fanout_runtime_t  *rt;

    rt = &loc->node->rt;

    ngx_shmtx_lock(&fmcf->shpool->mutex);

    *split = (rt->active && rt->base == loc->split_fp) ? rt->split
                                                       : *loc->split;

    ngx_shmtx_unlock(&fmcf->shpool->mutex);
}


/* a shadow or target of no such name */

static ngx_int_t
ngx_http_fanout_rt_unknown(ngx_http_fanout_rt_change_t *ch)
{
    ch->status = NGX_HTTP_NOT_FOUND;
    ch->error = ch->what == NGX_HTTP_FANOUT_RT_PERCENT ? "unknown_shadow"
                                                       : "unknown_target";
    ch->message = "the location has no such name";
    return NGX_DECLINED;
}


/* new weights for the split, or the configuration's again */

static ngx_int_t
ngx_http_fanout_rt_change_weights(ngx_http_fanout_main_conf_t *fmcf,
    ngx_log_t *log, ngx_http_fanout_stats_loc_t *loc,
    ngx_http_fanout_rt_change_t *ch, u_char *field, size_t *field_len,
    u_char *value, size_t *value_len)
{
    ngx_int_t                        i;
    ngx_uint_t                       k;
    fanout_split_t                   split;
    size_t                           flen, vlen;

    if (loc->split == NULL) {
        ch->status = NGX_HTTP_NOT_FOUND;
        ch->error = "no_split";
        ch->message = "the location has no fanout_split";
        return NGX_DECLINED;
    }

    if (loc->ramp) {
        ch->status = NGX_HTTP_CONFLICT;
        ch->error = "ramp";
        ch->message = "a ramp sets this split's weights";
        return NGX_DECLINED;
    }

    vlen = ngx_sprintf(value, "%08xD", loc->split_fp) - value;
    flen = ngx_http_fanout_rt_field(field, "split", NULL, &ch->location);

    if (ch->what == NGX_HTTP_FANOUT_RT_CONFIG) {
        vlen = ngx_sprintf(value + vlen, " config") - value;
        ngx_http_fanout_rt_split_write(fmcf, loc, NULL, 0);

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "fanout_api: location \"%V\": weights as "
                      "configured", &loc->name);
        goto done;
    }

    if (ch->nshares != loc->variants.nelts) {
        ch->status = NGX_HTTP_BAD_REQUEST;
        ch->error = "bad_weights";
        ch->message = "give a weight to every variant of the split";
        return NGX_DECLINED;
    }

    for (k = 0; k < ch->nshares; k++) {
        i = ngx_http_fanout_rt_index(&loc->variants, ch->names[k].data,
                                     ch->names[k].len, 1);

        if (i < 0) {
            ch->status = NGX_HTTP_NOT_FOUND;
            ch->error = "unknown_variant";
            ch->message = "a weight names no variant of the split";
            return NGX_DECLINED;
        }

        ch->order[i] = ch->shares[k];
    }

    if (fanout_split_set(loc->split, ch->order, &split) != 0) {
        ch->status = NGX_HTTP_BAD_REQUEST;
        ch->error = "bad_weights";
        ch->message = "the weights must add up to 100";
        return NGX_DECLINED;
    }

    if (ngx_http_fanout_rt_stranded(loc, &split, 0, -1, ch) != NGX_OK) {
        return NGX_DECLINED;
    }

    vlen = ngx_http_fanout_rt_weights_value(value, loc, &split) - value;

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "fanout_api: location \"%V\": weights from %s to "
                  "\"%*s\" (hundredths of 1%%, in the split's order)",
                  &loc->name, loc->node->rt.weights ? "fanout_api's"
                                                    : "the configuration's",
                  vlen - 9, value + 9);

    ngx_http_fanout_rt_split_write(fmcf, loc, &split, 1);
done:

    *field_len = flen;
    *value_len = vlen;

    return NGX_OK;
}


/* a shadow's percent */

static ngx_int_t
ngx_http_fanout_rt_change_percent(ngx_http_fanout_main_conf_t *fmcf,
    ngx_log_t *log, ngx_http_fanout_stats_loc_t *loc,
    ngx_http_fanout_rt_change_t *ch, u_char *field, size_t *field_len,
    u_char *value, size_t *value_len)
{
    ngx_int_t                        i;
    ngx_http_fanout_stats_target_t  *t;
    size_t                           flen, vlen;

    i = ngx_http_fanout_rt_index(&loc->shadows, ch->name.data,
                                 ch->name.len, 1);
    if (i < 0) {
        return ngx_http_fanout_rt_unknown(ch);
    }

    t = loc->shadows.elts;
    flen = ngx_http_fanout_rt_field(field, "shadow", &ch->name,
                                    &ch->location);

    if (ch->value == NGX_HTTP_FANOUT_RT_AS_CONFIGURED) {
        vlen = ngx_sprintf(value, "config") - value;
        t[i].node->rt.percent = 0;

    } else {
        vlen = ngx_sprintf(value, "%ui", ch->value) - value;
        t[i].node->rt.percent = ch->value + 1;
    }

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "fanout_api: location \"%V\": shadow \"%V\" percent "
                  "%*s (hundredths of 1%%)", &loc->name, &ch->name,
                  vlen, value);
    *field_len = flen;
    *value_len = vlen;

    return NGX_OK;
}


/* a target's breaker forced, or the target taken out or back */

static ngx_int_t
ngx_http_fanout_rt_change_target(ngx_http_fanout_main_conf_t *fmcf,
    ngx_log_t *log, ngx_http_fanout_stats_loc_t *loc,
    ngx_http_fanout_rt_change_t *ch, u_char *field, size_t *field_len,
    u_char *value, size_t *value_len)
{
    ngx_int_t                        i;
    const char                      *what;
    fanout_split_t                   split;
    ngx_http_fanout_stats_t         *st;
    ngx_http_fanout_stats_target_t  *t;
    size_t                           flen, vlen;

    i = ngx_http_fanout_rt_index(&loc->targets, ch->name.data,
                                 ch->name.len, 0);
    if (i < 0) {
        return ngx_http_fanout_rt_unknown(ch);
    }

    t = loc->targets.elts;

    if (ch->what == NGX_HTTP_FANOUT_RT_BREAKER) {
        if (!loc->breaker) {
            ch->status = NGX_HTTP_CONFLICT;
            ch->error = "no_breaker";
            ch->message = "the location has no fanout_breaker";
            return NGX_DECLINED;
        }

        st = t[i].bnode;
        what = ch->value == 1 ? "open" : ch->value == 2 ? "closed"
                                                        : "auto";
        flen = ngx_http_fanout_rt_field(field, "breaker", &ch->name,
                                        &ch->location);
        vlen = ngx_sprintf(value, "%s", what) - value;

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "fanout_api: location \"%V\": breaker of target "
                      "\"%V\" %s -> %s", &loc->name, &ch->name,
                      st->rt.forced == 1 ? "open"
                      : st->rt.forced == 2 ? "closed" : "auto", what);

        st->rt.forced = ch->value;
        goto done;
    }

    if (ch->value == 0) {
        /* taking it out must leave every request enough to meet the
         * quorum, in whichever variant the split puts it */
        if (loc->split) {
            ngx_http_fanout_rt_split_now(fmcf, loc, &split);
        }

        if (ngx_http_fanout_rt_stranded(loc, loc->split ? &split : NULL,
                                        loc->ramp != NULL, i, ch)
            != NGX_OK)
        {
            return NGX_DECLINED;
        }
    }

    flen = ngx_http_fanout_rt_field(field, "target", &ch->name,
                                    &ch->location);
    vlen = ngx_sprintf(value, "%s", ch->value ? "enabled" : "disabled")
           - value;

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "fanout_api: location \"%V\": target \"%V\" %s -> %*s",
                  &loc->name, &ch->name,
                  t[i].node->rt.disabled ? "disabled" : "enabled",
                  vlen, value);

    t[i].node->rt.disabled = !ch->value;
done:

    *field_len = flen;
    *value_len = vlen;

    return NGX_OK;
}


/* the location's cache purged, or a target's */

static ngx_int_t
ngx_http_fanout_rt_change_purge(ngx_http_fanout_main_conf_t *fmcf,
    ngx_log_t *log, ngx_http_fanout_stats_loc_t *loc,
    ngx_http_fanout_rt_change_t *ch, u_char *field, size_t *field_len,
    u_char *value, size_t *value_len)
{
    ngx_int_t                        i;
    ngx_http_fanout_stats_t         *st;
    ngx_http_fanout_stats_target_t  *t;
    size_t                           flen, vlen;

    if (!loc->cache) {
        ch->status = NGX_HTTP_CONFLICT;
        ch->error = "no_cache";
        ch->message = "the location has no fanout_cache";
        return NGX_DECLINED;
    }

    if (ch->name.len) {
        i = ngx_http_fanout_rt_index(&loc->targets, ch->name.data,
                                     ch->name.len, 0);
        if (i < 0) {
            return ngx_http_fanout_rt_unknown(ch);
        }

        t = loc->targets.elts;
        st = t[i].node;
        flen = ngx_http_fanout_rt_field(field, "purge", &ch->name,
                                        &ch->location);

    } else {
        ngx_str_t  all = ngx_string("*");

        st = loc->node;
        flen = ngx_http_fanout_rt_field(field, "purge", &all,
                                        &ch->location);
    }

    /* a time, so that purges from any instance only move it on */
    st->rt.purged = ngx_max((ngx_atomic_uint_t) ngx_http_fanout_rt_wall(),
                            st->rt.purged + 1);
    vlen = ngx_sprintf(value, "%uA", st->rt.purged) - value;

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "fanout_api: location \"%V\": cache purged%s%V%s",
                  &loc->name, ch->name.len ? " for target \"" : "",
                  &ch->name, ch->name.len ? "\"" : "");
    *field_len = flen;
    *value_len = vlen;

    return NGX_OK;
}


/* a ramp set on the split, or fanout_api's taken off */

static ngx_int_t
ngx_http_fanout_rt_change_ramp(ngx_http_fanout_main_conf_t *fmcf,
    ngx_log_t *log, ngx_http_fanout_stats_loc_t *loc,
    ngx_http_fanout_rt_change_t *ch, u_char *field, size_t *field_len,
    u_char *value, size_t *value_len)
{
    size_t          flen, vlen;
    ngx_int_t       i;
    ngx_str_t       all = ngx_string("*");
    ngx_uint_t      cand;
    const char     *bad;
    fanout_ramp_t   ramp;

    if (loc->split == NULL) {
        ch->status = NGX_HTTP_NOT_FOUND;
        ch->error = "no_split";
        ch->message = "the location has no fanout_split";
        return NGX_DECLINED;
    }

    flen = ngx_http_fanout_rt_field(field, "api-ramp", &all,
                                    &ch->location);
    vlen = ngx_sprintf(value, "%08xD ", loc->split_fp) - value;

    if (ch->what == NGX_HTTP_FANOUT_RT_RAMP_OFF) {
        if (!loc->node->rt.api_ramp_on) {
            ch->status = NGX_HTTP_NOT_FOUND;
            ch->error = "no_ramp";
            ch->message = "fanout_api set no ramp on this split";
            return NGX_DECLINED;
        }

        vlen = ngx_sprintf(value + vlen, "off") - value;
        ngx_http_fanout_rt_ramp_install(fmcf, loc, NULL, 0);

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "fanout_api: location \"%V\": fanout_api's "
                      "ramp off", &loc->name);
        goto done;
    }

    cand = 0;

    if (ch->candidate.len) {
        i = ngx_http_fanout_rt_index(&loc->variants,
                                     ch->candidate.data,
                                     ch->candidate.len, 1);
        if (i < 0) {
            ch->status = NGX_HTTP_NOT_FOUND;
            ch->error = "unknown_variant";
            ch->message = "the candidate is no variant of the split";
            return NGX_DECLINED;
        }

        cand = (ngx_uint_t) i;
    }

    bad = ngx_http_fanout_rt_ramp_conf(&ch->steps, ch->every,
                                       ch->value, &ch->rollback,
                                       &ramp);
    if (bad) {
        ch->status = NGX_HTTP_BAD_REQUEST;
        ch->error = "bad_value";
        ch->message = bad;
        return NGX_DECLINED;
    }

    /* a ramp may send requests to any variant: the candidate up
     * to its last step, the others until then */
    if (ngx_http_fanout_rt_stranded(loc, loc->split, 1, -1, ch)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (ch->steps.len + ch->rollback.len > 256) {
        ch->status = NGX_HTTP_BAD_REQUEST;
        ch->error = "bad_value";
        ch->message = "the ramp is too long";
        return NGX_DECLINED;
    }

    vlen += ngx_http_fanout_rt_ramp_conf_value(value + vlen, &ramp,
                                               cand, &ch->steps,
                                               &ch->rollback);

    ngx_http_fanout_rt_ramp_install(fmcf, loc, &ramp, cand);

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "fanout_api: location \"%V\": ramp \"%*s\" "
                  "(candidate, every ms, min_requests, steps, "
                  "rollback_if)", &loc->name, vlen - 9, value + 9);

done:

    *field_len = flen;
    *value_len = vlen;

    return NGX_OK;
}


/* the ramp rolled back, or restarted at its first step */

static ngx_int_t
ngx_http_fanout_rt_change_ramp_move(ngx_http_fanout_main_conf_t *fmcf,
    ngx_log_t *log, ngx_http_fanout_stats_loc_t *loc,
    ngx_http_fanout_rt_change_t *ch, u_char *field, size_t *field_len,
    u_char *value, size_t *value_len)
{
    u_char      fpbuf[16];
    size_t      flen, vlen;
    uint64_t    now;
    ngx_str_t   fp;

    if (loc->ramp == NULL) {
        ch->status = NGX_HTTP_NOT_FOUND;
        ch->error = "no_ramp";
        ch->message = "the location's split has no ramp";
        return NGX_DECLINED;
    }

    fp.data = fpbuf;
    fp.len = ngx_sprintf(fpbuf, "%08xD", loc->ramp_fp) - fpbuf;
    flen = ngx_http_fanout_rt_field(field, "ramp", &fp,
                                    &ch->location);
    now = ngx_http_fanout_rt_wall();

    if (ch->what == NGX_HTTP_FANOUT_RT_ROLLBACK) {
        vlen = ngx_http_fanout_rt_ramp_value(value,
                   NGX_HTTP_FANOUT_RAMP_ROLLED_BACK,
                   loc->node->rt.ramp_step, now, 9);
        ngx_http_fanout_rt_ramp_take(fmcf, loc,
                                     NGX_HTTP_FANOUT_RAMP_ROLLED_BACK,
                                     loc->node->rt.ramp_step, now, 9,
                                     "");
    } else {
        vlen = ngx_http_fanout_rt_ramp_value(value,
                   NGX_HTTP_FANOUT_RAMP_RAMPING, 0, now, 0);
        ngx_http_fanout_rt_counts(loc, &loc->node->rt.ramp_seen);
        ngx_http_fanout_rt_ramp_take(fmcf, loc,
                                     NGX_HTTP_FANOUT_RAMP_RAMPING, 0,
                                     now, 0, " (by fanout_api)");
    }

    *field_len = flen;
    *value_len = vlen;

    return NGX_OK;
}


ngx_int_t
ngx_http_fanout_runtime_change(ngx_http_fanout_main_conf_t *fmcf,
    ngx_log_t *log, ngx_http_fanout_rt_change_t *ch,
    ngx_http_fanout_rt_done_pt handler, void *data, void **pending)
{
    ngx_int_t                        rc;
    ngx_http_fanout_stats_loc_t     *loc;
    u_char                           field[NGX_HTTP_FANOUT_RT_FIELD],
                                     value[FANOUT_SPLIT_MAX_VARIANTS
                                           * (NGX_INT_T_LEN + 1) + 400];
    size_t                           flen, vlen;

    *pending = NULL;

    loc = ngx_http_fanout_rt_location(fmcf, &ch->location);

    if (loc == NULL || loc->node == NULL) {
        ch->status = NGX_HTTP_NOT_FOUND;
        ch->error = "unknown_location";
        ch->message = "no fan-out location of that name";
        return NGX_DECLINED;
    }

    if (ch->location.len > NGX_HTTP_FANOUT_RT_FIELD - 80) {
        ch->status = NGX_HTTP_BAD_REQUEST;
        ch->error = "bad_value";
        ch->message = "the location's name is too long for the fleet";
        return NGX_DECLINED;
    }

    switch (ch->what) {

    case NGX_HTTP_FANOUT_RT_WEIGHTS:
    case NGX_HTTP_FANOUT_RT_CONFIG:
        rc = ngx_http_fanout_rt_change_weights(fmcf, log, loc, ch, field,
                                               &flen, value, &vlen);
        break;

    case NGX_HTTP_FANOUT_RT_PERCENT:
        rc = ngx_http_fanout_rt_change_percent(fmcf, log, loc, ch, field,
                                               &flen, value, &vlen);
        break;

    case NGX_HTTP_FANOUT_RT_BREAKER:
    case NGX_HTTP_FANOUT_RT_TARGET:
        rc = ngx_http_fanout_rt_change_target(fmcf, log, loc, ch, field,
                                              &flen, value, &vlen);
        break;

    case NGX_HTTP_FANOUT_RT_PURGE:
        rc = ngx_http_fanout_rt_change_purge(fmcf, log, loc, ch, field,
                                             &flen, value, &vlen);
        break;

    case NGX_HTTP_FANOUT_RT_RAMP_SET:
    case NGX_HTTP_FANOUT_RT_RAMP_OFF:
        rc = ngx_http_fanout_rt_change_ramp(fmcf, log, loc, ch, field,
                                            &flen, value, &vlen);
        break;

    case NGX_HTTP_FANOUT_RT_ROLLBACK:
    case NGX_HTTP_FANOUT_RT_RESTART:
        rc = ngx_http_fanout_rt_change_ramp_move(fmcf, log, loc, ch, field,
                                                 &flen, value, &vlen);
        break;

    default:
        return NGX_ERROR;
    }

    if (rc != NGX_OK) {
        return rc;
    }

    (void) ngx_atomic_fetch_add(&fmcf->sh->api_version, 1);

    return ngx_http_fanout_rt_write(fmcf, log, field, flen, value, vlen,
                                    handler, data, pending);
}
