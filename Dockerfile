# nginx-fanout in a container: the module built by the same make targets as
# CI (make deps-build build) against Debian bookworm's nginx, and run by
# that very nginx version, as www-data, logging to stdout and stderr.
#
#   docker build -t nginx-fanout .
#   docker run --network=host \
#       -e FANOUT_MODELS="a=http://10.0.0.5:9001/v1/predict b=http://10.0.0.6:9001/v1/predict" \
#       -e FANOUT_REDIS=10.0.0.7:6379 nginx-fanout
#
# Traffic on 8080 (POST /predict: every model's answer), health, status,
# metrics and the dashboard on 8081.  docs/container.md has every variable,
# and how to use templates of your own or a whole nginx.conf instead.
#
# NGINX_VERSION pins Debian's nginx (e.g. --build-arg
# NGINX_VERSION=1.22.1-9+deb12u3); by default the mirror's, the same in
# both stages: the module is built against nginx-dev and run by nginx of
# exactly that version.

FROM debian:bookworm-slim AS build
ARG NGINX_VERSION=

WORKDIR /src

# the toolchain first: a source edit rebuilds only the compile below
COPY Makefile ./
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        make ${NGINX_VERSION:+nginx=$NGINX_VERSION nginx-common=$NGINX_VERSION nginx-dev=$NGINX_VERSION} \
 && make deps-build \
 && dpkg-query -W -f='${Version}' nginx-dev > /nginx-version \
 && rm -rf /var/lib/apt/lists/*

COPY config ./
COPY src/ src/
COPY tools/embed-html tools/
RUN make build


FROM debian:bookworm-slim

# nginx of the version the module was built against, the libraries it links
# (hiredis, jansson; libcrypto comes with nginx), envsubst for the templates
# and curl for the health check; logs to the container's stdout and stderr
# (also the paths nginx opens before it reads its configuration); www-data
# may write what nginx and the entrypoint write
COPY --from=build /nginx-version /tmp/nginx-version
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        nginx=$(cat /tmp/nginx-version) nginx-common=$(cat /tmp/nginx-version) \
        libhiredis0.14 libjansson4 gettext-base curl \
 && rm -rf /var/lib/apt/lists/* /tmp/nginx-version /etc/nginx/sites-enabled/* \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log \
 && mkdir -p /etc/nginx/templates /etc/nginx/fanout \
 && chown -R www-data:www-data /var/lib/nginx /etc/nginx/conf.d /etc/nginx/fanout \
 && rm -f /etc/nginx/conf.d/*

COPY docker/nginx.conf /etc/nginx/nginx.conf
COPY docker/model-location.conf /etc/nginx/fanout/model-location.conf
COPY docker/templates/ /etc/nginx/templates/
COPY docker/entrypoint.sh /usr/local/bin/fanout-entrypoint
COPY --from=build /src/build/ngx_http_fanout_module.so /usr/lib/nginx/modules/

USER www-data

# the shipped configuration, rendered from the defaults, must pass
RUN fanout-entrypoint nginx -t \
 && rm -f /etc/nginx/conf.d/* /etc/nginx/fanout/models*.conf /etc/nginx/fanout/ops-allow.conf

# FANOUT_PORT and FANOUT_OPS_PORT: their defaults are the entrypoint's
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["fanout-entrypoint", "healthcheck"]
STOPSIGNAL SIGQUIT
ENTRYPOINT ["fanout-entrypoint"]
CMD ["nginx", "-g", "daemon off;"]
