# nginx-fanout in a container: the module is built by the same make target
# as CI (make deps-build build), against Debian bookworm's nginx.
#
#   docker build -t nginx-fanout .
#   docker run -p 8080:8080 nginx-fanout
#
# The runtime image serves conf-examples/nginx.conf; point its upstreams
# at your model servers (mount your own nginx.conf over it).

FROM debian:bookworm-slim AS build

RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

RUN make deps-build build


FROM debian:bookworm-slim

# nginx, and the libraries the module links: hiredis and jansson
# (libcrypto comes with nginx)
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        nginx libhiredis0.14 libjansson4 \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /src/build/ngx_http_fanout_module.so /usr/lib/nginx/modules/
COPY conf-examples/ /etc/nginx/conf-examples/
COPY conf-examples/nginx.conf /etc/nginx/nginx.conf

RUN sed -i 's|^load_module .*|load_module /usr/lib/nginx/modules/ngx_http_fanout_module.so;|' \
        /etc/nginx/nginx.conf \
 && nginx -t

EXPOSE 8080
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
