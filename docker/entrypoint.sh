#!/bin/sh
# The image's entrypoint: before nginx starts, the models of FANOUT_MODELS
# become an upstream, an internal location and a fanout_target each, and
# /etc/nginx/templates/*.template are rendered into /etc/nginx/conf.d with
# envsubst (only variables that are set, as the official nginx image does:
# nginx's own $variables stay).  "healthcheck" is the image's HEALTHCHECK;
# any other command runs as given.
# docs/container.md lists every variable.
set -eu

die() { echo "fanout-entrypoint: $*" >&2; exit 1; }

# every default, once: nginx's and the healthcheck's
: "${FANOUT_MODELS:=a=http://127.0.0.1:9001/v1/predict b=http://127.0.0.1:9002/v1/predict}"
: "${FANOUT_PATH:=/predict}"
: "${FANOUT_MERGE:=all}"
: "${FANOUT_TIMEOUT:=10s}"
: "${FANOUT_CACHE:=ttl=60s}"
: "${FANOUT_MAX_BODY:=8m}"
: "${FANOUT_PORT:=8080}"
: "${FANOUT_OPS_PORT:=8081}"
: "${FANOUT_OPS_ALLOW:=127.0.0.1 ::1 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16}"
: "${FANOUT_REDIS:=127.0.0.1:6379}"
: "${FANOUT_REDIS_TIMEOUT:=50ms}"
: "${FANOUT_ZONE_SIZE:=10m}"
: "${FANOUT_CALL_LOG:=off}"
: "${FANOUT_INSTANCE:=${HOSTNAME:-$(cat /proc/sys/kernel/hostname)}}"
: "${NGINX_ENVSUBST_TEMPLATE_DIR:=/etc/nginx/templates}"
: "${NGINX_ENVSUBST_TEMPLATE_SUFFIX:=.template}"
: "${NGINX_ENVSUBST_OUTPUT_DIR:=/etc/nginx/conf.d}"
FANOUT_CONF_DIR=/etc/nginx/fanout

case "${1:-}" in
nginx|nginx-debug) ;;
healthcheck)
    # the image's HEALTHCHECK: fanout_health on the ops port (PORT or ADDR:PORT)
    ops=$FANOUT_OPS_PORT
    case "$ops" in *:*) ;; *) ops=127.0.0.1:$ops ;; esac
    curl -fsS -o /dev/null --max-time 2 "http://$ops/healthz" || exit 1
    exit 0 ;;
*) exec "$@" ;;
esac

# what is pasted into nginx.conf must not end a directive or a block there
plain() {
    case "$2" in
    *[\;\{\}\"\'\\\ ]*|'') die "$1 must be set and hold no space, quote, ; { } or \\ (got '$2')" ;;
    esac
}
words() {
    case "$2" in
    *[\;\{\}\"\'\\]*|'') die "$1 must be set and hold no quote, ; { } or \\ (got '$2')" ;;
    esac
}

# FANOUT_REDIS_PASSWORD (and FANOUT_REDIS_USERNAME, a Redis 6 ACL user)
FANOUT_REDIS_AUTH=
if [ -n "${FANOUT_REDIS_USERNAME:-}" ]; then
    plain FANOUT_REDIS_USERNAME "$FANOUT_REDIS_USERNAME"
    FANOUT_REDIS_AUTH="username=$FANOUT_REDIS_USERNAME "
fi
if [ -n "${FANOUT_REDIS_PASSWORD:-}" ]; then
    plain FANOUT_REDIS_PASSWORD "$FANOUT_REDIS_PASSWORD"
    FANOUT_REDIS_AUTH="${FANOUT_REDIS_AUTH}password=$FANOUT_REDIS_PASSWORD "
fi

words FANOUT_MERGE "$FANOUT_MERGE"
words FANOUT_CACHE "$FANOUT_CACHE"
for v in FANOUT_PATH FANOUT_TIMEOUT FANOUT_MAX_BODY FANOUT_PORT \
         FANOUT_OPS_PORT FANOUT_REDIS FANOUT_REDIS_TIMEOUT FANOUT_ZONE_SIZE \
         FANOUT_CALL_LOG FANOUT_INSTANCE
do
    eval "plain $v \"\$$v\""
done

if [ -d "$FANOUT_CONF_DIR" ] && [ -w "$FANOUT_CONF_DIR" ]; then
    # NAME=URL ...: an upstream with keepalive, an internal location, a target
    models=$FANOUT_CONF_DIR/models.conf
    targets=$FANOUT_CONF_DIR/models-targets.conf
    locations=$FANOUT_CONF_DIR/models-locations.conf
    : > "$models.tmp"
    : > "$locations.tmp"
    : > "$targets.tmp"
    n=0
    names=
    for m in $(echo "$FANOUT_MODELS" | tr ',' ' '); do
        name=${m%%=*}
        url=${m#*=}
        case "$name" in
        ''|*[!A-Za-z0-9_-]*) die "FANOUT_MODELS: '$m': a name is letters, digits, _ and -" ;;
        esac
        case "$url" in
        *'$'*) die "FANOUT_MODELS: '$m': no \$ (nginx would read a variable)" ;;
        http://*|https://*) ;;
        *) die "FANOUT_MODELS: '$m': the URL is http:// or https://" ;;
        esac
        case " $names " in
        *" $name "*) die "FANOUT_MODELS: '$name' is named twice" ;;
        esac
        names="$names $name"
        plain "FANOUT_MODELS ($name)" "$url"
        scheme=${url%%://*}
        rest=${url#*://}
        hostport=${rest%%/*}
        path=${rest#"$hostport"}
        path=/${path#/}
        [ -n "$hostport" ] || die "FANOUT_MODELS: '$m': no host"
        cat >> "$models.tmp" <<EOF
upstream fanout_model_$name { server $hostport; keepalive 32; }
EOF
        cat >> "$locations.tmp" <<EOF
location /_fanout_model/$name {
    internal;
    proxy_pass $scheme://fanout_model_$name$path;
    include $FANOUT_CONF_DIR/model-location.conf;
}
EOF
        echo "fanout_target $name /_fanout_model/$name;" >> "$targets.tmp"
        n=$((n + 1))
    done
    [ "$n" -gt 0 ] || die "FANOUT_MODELS names no model"
    mv "$models.tmp" "$models"
    mv "$targets.tmp" "$targets"
    mv "$locations.tmp" "$locations"

    # FANOUT_OPS_ALLOW: who may read health, status, metrics, the dashboard
    {
        for a in $FANOUT_OPS_ALLOW; do
            plain FANOUT_OPS_ALLOW "$a"
            echo "allow $a;"
        done
        echo "deny all;"
    } > "$FANOUT_CONF_DIR/ops-allow.conf"
fi

export FANOUT_MODELS FANOUT_PATH FANOUT_MERGE FANOUT_TIMEOUT FANOUT_CACHE \
       FANOUT_MAX_BODY FANOUT_PORT FANOUT_OPS_PORT FANOUT_REDIS \
       FANOUT_REDIS_AUTH FANOUT_REDIS_TIMEOUT FANOUT_ZONE_SIZE \
       FANOUT_CALL_LOG FANOUT_INSTANCE

# the templates: only variables that are set are replaced
if [ -d "$NGINX_ENVSUBST_TEMPLATE_DIR" ]; then
    defined=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/${\1}/p' | tr '\n' ' ')
    for t in "$NGINX_ENVSUBST_TEMPLATE_DIR"/*"$NGINX_ENVSUBST_TEMPLATE_SUFFIX"; do
        [ -f "$t" ] || continue
        out=$NGINX_ENVSUBST_OUTPUT_DIR/$(basename "$t" "$NGINX_ENVSUBST_TEMPLATE_SUFFIX")
        [ -w "$NGINX_ENVSUBST_OUTPUT_DIR" ] \
            || die "cannot write $out: mount $NGINX_ENVSUBST_OUTPUT_DIR writable or set NGINX_ENVSUBST_OUTPUT_DIR"
        envsubst "$defined" < "$t" > "$out"
        echo "fanout-entrypoint: $t -> $out" >&2
    done
fi

exec "$@"
