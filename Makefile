# nginx-fanout: build, test, demo and benchmark.
#
#   make          build build/ngx_http_fanout_module.so against Debian's nginx
#   make demo     start nginx + mock models on loopback, show real answers
#   make test     unit tests and the t/ suite under prove
#   make test-asan the suite with the module built with ASan and UBSan
#   make leak-check nginx under valgrind: no invalid access, no leak of ours
#   make bench    wrk benchmarks, see bench/README.md (and bench-cost,
#                 bench-cpu, bench-mean, bench-tail, bench-batch, bench-overload,
#                 bench-conns, bench-stream)
#   make deps     install missing Debian packages (needs root)
#   make test-static  nginx.org stable built with the module in
#                 (--add-module), part of the suite against it
#   make test-compat  nginx.org stable and mainline, and hiredis 1.x, from
#                 ../shared/nginx-src: the suite against each
#   make fuzz     the libFuzzer targets, FUZZ_SECONDS each (default 600)
#   make test-image  the Dockerfile built and run with podman, checked
#   make deb      the Debian package libnginx-mod-http-fanout in build/deb/
#   make test-deb the package installed on Debian's nginx in a clean root

SHELL       := /bin/bash
NGX_SRC     ?= /usr/share/nginx/src
BUILD       := $(CURDIR)/build
MODULE      := $(BUILD)/ngx_http_fanout_module.so
ASAN_MODULE := $(BUILD)/asan/ngx_http_fanout_module.so

# what the build, the tests, the demo and the benchmark need
# every library config probes is here, so that "make deps-build build"
# works alone (make check-deps proves it on a prepared machine)
# (jansson: the module's JSON documents, and the oracle the JSON scanner
# is checked against)
DEB_BUILD   := nginx nginx-dev libhiredis-dev libjansson-dev libssl-dev gcc make perl
DEB_TEST    := redis-server redis-sentinel libnginx-mod-http-echo curl perl \
               cppcheck valgrind prometheus chromium chromium-driver haproxy
DEB_BENCH   := wrk libnginx-mod-http-lua lua-cjson lua-nginx-redis
DEB_ALL     := $(DEB_BUILD) $(DEB_TEST) $(DEB_BENCH)

# src/ngx_http_fanout.h (types), src/core/ (the pure core), the glue in a
# folder per subsystem: every list below is taken by glob
SRCS        := $(wildcard $(CURDIR)/src/*.h $(CURDIR)/src/*/*.c \
                          $(CURDIR)/src/*/*.h) $(CURDIR)/config
GLUE_DIRS   := $(sort $(dir $(wildcard src/*/ngx_http_fanout_*.c)))
WARN        := -Wall -Wextra -Werror -Wno-unused-parameter
CC_OPT      := -g -O2 -fPIC -fstack-protector-strong $(WARN)
ASAN_OPT    := -g -O1 -fPIC -fno-omit-frame-pointer \
               -fsanitize=address,undefined -fno-sanitize-recover=undefined $(WARN)

UNIT_CFLAGS := -g -O1 -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) -Isrc/core \
               -fsanitize=address,undefined -fno-omit-frame-pointer
UNIT_TESTS  := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(wildcard t/unit/*_test.c))
CORE        := $(wildcard src/core/fanout_*.c)

.PHONY: all deps deps-build check-deps build test unit test-asan leak-check demo bench \
        dashboard check-dashboard screenshot \
        bench-cost bench-json bench-cpu bench-mean bench-tail bench-batch bench-overload bench-conns bench-stream lint clean build-static test-static test-compat \
        fuzz fuzz-ci deps-fuzz deps-deb deps-podman deb test-image test-deb

all: build

build: $(MODULE)

# Installs only what is missing; a no-op on a prepared machine.
deps: PKGS = $(DEB_ALL)
deps-build: PKGS = $(DEB_BUILD)
deps-deb: PKGS = $(DEB_BUILD) debhelper dpkg-dev fakeroot lintian
deps-podman: PKGS = podman runc mmdebstrap uidmap slirp4netns catatonit
deps deps-build deps-deb deps-podman:
	@missing=$$(for p in $(PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    SUDO=$$( [ $$(id -u) -eq 0 ] || echo sudo ); \
	    $$SUDO apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q \
	        --no-install-recommends $$missing; \
	    for s in nginx redis-server prometheus; do \
	        $$SUDO service $$s stop >/dev/null 2>&1 || true; done; \
	    true; \
	fi

# The headers config probes must come from DEB_BUILD's packages: a package
# missing there would only show on a clean machine.
CONFIG_HEADERS := /usr/include/hiredis/async.h /usr/include/openssl/evp.h \
                  /usr/include/jansson.h \
                  /usr/share/nginx/src/conf_flags
check-deps:
	@for h in $(CONFIG_HEADERS); do \
	    pkg=$$(dpkg -S $$h 2>/dev/null | head -1 | cut -d: -f1); \
	    case " $(DEB_BUILD) " in \
	    *" $$pkg "*) echo "$$h: $$pkg, in DEB_BUILD" ;; \
	    *) echo "$$h comes from '$$pkg', missing from DEB_BUILD"; exit 1 ;; \
	    esac; \
	done

# The module is built in a copy of Debian's nginx tree with its own flags
# (conf_flags), so the .so matches the installed binary.
# config takes src/ by glob: configure again when a file comes or goes
SRC_LIST    := $(BUILD)/src-files
$(shell mkdir -p $(BUILD); ls src/*.h src/*/*.c src/*/*.h | cmp -s - $(SRC_LIST) \
    || ls src/*.h src/*/*.c src/*/*.h > $(SRC_LIST))

$(BUILD)/%/objs/Makefile: config $(SRC_LIST)
	rm -rf $(BUILD)/$*
	mkdir -p $(BUILD)
	cp -r $(NGX_SRC) $(BUILD)/$*
	cd $(BUILD)/$* && . ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt="$(if $(filter asan,$*),$(ASAN_OPT),$(CC_OPT))" \
	        $(if $(filter asan,$*),--with-ld-opt="-fsanitize=address$(,)undefined") \
	        --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }

, := ,

$(MODULE): $(BUILD)/nginx/objs/Makefile $(SRCS)
	$(MAKE) -C $(BUILD)/nginx -f objs/Makefile modules
	cp $(BUILD)/nginx/objs/ngx_http_fanout_module.so $@

$(ASAN_MODULE): $(BUILD)/asan/objs/Makefile $(SRCS)
	$(MAKE) -C $(BUILD)/asan -f objs/Makefile modules
	cp $(BUILD)/asan/objs/ngx_http_fanout_module.so $@

$(BUILD)/unit/%_test: t/unit/%_test.c $(CORE) src/core/fanout_*.h t/unit/tap.h
	mkdir -p $(BUILD)/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(CORE) -ljansson -lcrypto -lm

unit: deps $(UNIT_TESTS)

# The compatibility matrix: nginx.org stable and mainline with
# --with-compat, the module and the echo module (the tests' model servers)
# built against each, the whole suite against each; then the module against
# hiredis 1.x, with the suites that use Redis.
COMPAT_SRC  ?= $(CURDIR)/../shared/nginx-src
COMPAT      := $(BUILD)/compat
COMPAT_NGX  := $(notdir $(basename $(basename $(wildcard $(COMPAT_SRC)/nginx-1.*.tar.gz))))
HIREDIS_TGZ := $(firstword $(wildcard $(COMPAT_SRC)/hiredis-*.tar.gz))
ECHO_TGZ    := $(firstword $(wildcard $(COMPAT_SRC)/echo-nginx-module-*.tar.gz))
REDIS_TESTS := t/070-cache.t t/071-cache-redis.t t/072-cache-coalesce.t \
               t/073-cache-target.t t/080-limit.t t/081-limit-cluster.t \
               t/090-breaker.t t/091-breaker-cluster.t t/078-redis-acl.t \
               t/079-redis-tls.t t/180-runtime.t t/190-sentinel.t

$(COMPAT)/%/objs/nginx: $(SRCS)
	rm -rf $(COMPAT)/$* && mkdir -p $(COMPAT)/$* $(COMPAT)/echo
	tar xzf $(COMPAT_SRC)/$*.tar.gz -C $(COMPAT)
	tar xzf $(ECHO_TGZ) -C $(COMPAT)/echo --strip-components=1
	cd $(COMPAT)/$* && auto/configure --with-compat --with-debug \
	    --with-http_v2_module --with-http_auth_request_module \
	    --with-cc-opt="$(CC_OPT)" \
	    --add-dynamic-module=$(CURDIR) \
	    --add-dynamic-module=$(COMPAT)/echo > configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }
	$(MAKE) -C $(COMPAT)/$* -f objs/Makefile -j2

$(COMPAT)/hiredis/lib/libhiredis.so:
	rm -rf $(COMPAT)/hiredis-src && mkdir -p $(COMPAT)/hiredis-src
	tar xzf $(HIREDIS_TGZ) -C $(COMPAT)/hiredis-src --strip-components=1
	LIBRARY_PATH=lib $(MAKE) -C $(COMPAT)/hiredis-src -j2 USE_SSL=1 \
	    PREFIX=$(COMPAT)/hiredis install > $(COMPAT)/hiredis.log 2>&1 \
	    || { tail -30 $(COMPAT)/hiredis.log; exit 1; }

# the module against Debian's nginx and hiredis 1.x
$(COMPAT)/hiredis1/objs/ngx_http_fanout_module.so: $(SRCS) \
        $(COMPAT)/hiredis/lib/libhiredis.so
	rm -rf $(COMPAT)/hiredis1 && cp -r $(NGX_SRC) $(COMPAT)/hiredis1
	cd $(COMPAT)/hiredis1 && . ./conf_flags && \
	    HIREDIS_INC=$(COMPAT)/hiredis/include \
	    HIREDIS_LIB=$(COMPAT)/hiredis/lib \
	    ./configure "$${NGX_CONF_FLAGS[@]}" --with-cc-opt="$(CC_OPT)" \
	        --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }
	grep -q "hiredis async library in $(COMPAT)/hiredis/include .* found" \
	    $(COMPAT)/hiredis1/configure.log
	grep -q "hiredis_ssl in $(COMPAT)/hiredis/lib \.\.\. found" \
	    $(COMPAT)/hiredis1/configure.log
	$(MAKE) -C $(COMPAT)/hiredis1 -f objs/Makefile modules

# nginx with the module built in (--add-module), the README's static
# build: the filters must take their place in the chain there too.
# nginx-dev has only headers, so nginx.org's stable source is used.
STATIC_NGX   := $(firstword $(COMPAT_NGX))
STATIC_NGINX := $(COMPAT)/static/objs/nginx
STATIC_TESTS := t/010-config.t t/020-fanout.t t/030-merge.t t/040-failures.t \
                t/050-status.t t/070-cache.t t/074-cache-trust.t t/110-shadow.t

$(STATIC_NGINX): $(SRCS)
	@test -n "$(STATIC_NGX)" || { echo "no nginx sources in $(COMPAT_SRC)"; exit 1; }
	rm -rf $(COMPAT)/static $(COMPAT)/static-echo
	mkdir -p $(COMPAT)/static $(COMPAT)/static-echo
	tar xzf $(COMPAT_SRC)/$(STATIC_NGX).tar.gz -C $(COMPAT)/static --strip-components=1
	tar xzf $(ECHO_TGZ) -C $(COMPAT)/static-echo --strip-components=1
	cd $(COMPAT)/static && auto/configure --with-compat --with-debug \
	    --with-http_v2_module --with-http_auth_request_module \
	    --with-cc-opt="$(CC_OPT)" --add-module=$(CURDIR) \
	    --add-dynamic-module=$(COMPAT)/static-echo > configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }
	$(MAKE) -C $(COMPAT)/static -f objs/Makefile -j2

build-static: deps $(STATIC_NGINX)

test-static: deps unit $(STATIC_NGINX)
	@# the capture filter sits between the postpone and copy filters, as
	@# an AUX filter: it sees a subrequest's output before postpone does
	awk '/^    &ngx_http_postpone_filter_module,/ { p = NR } \
	     /^    &ngx_http_fanout_module,/ { f = NR } \
	     /^    &ngx_http_copy_filter_module,/ { c = NR } \
	     END { if (!(p && f && c && p < f && f < c)) { \
	         print "ngx_http_fanout_module is out of place in ngx_modules.c"; \
	         exit 1 } }' $(COMPAT)/static/objs/ngx_modules.c
	FT_NGINX=$(STATIC_NGINX) FT_MODULE=static \
	FT_ECHO_MODULE=$(COMPAT)/static/objs/ngx_http_echo_module.so \
	    prove $(STATIC_TESTS)

test-compat: deps unit
	@test -n "$(COMPAT_NGX)" || { echo "no nginx sources in $(COMPAT_SRC)"; exit 1; }
	set -e; for v in $(COMPAT_NGX); do \
	    $(MAKE) --no-print-directory $(COMPAT)/$$v/objs/nginx; \
	    echo "== $$v"; \
	    FT_NGINX=$(COMPAT)/$$v/objs/nginx \
	    FT_MODULE=$(COMPAT)/$$v/objs/ngx_http_fanout_module.so \
	    FT_ECHO_MODULE=$(COMPAT)/$$v/objs/ngx_http_echo_module.so \
	        prove -r t/; \
	done
	$(MAKE) --no-print-directory $(COMPAT)/hiredis1/objs/ngx_http_fanout_module.so
	@echo "== hiredis $(notdir $(HIREDIS_TGZ))"
	ldd $(COMPAT)/hiredis1/objs/ngx_http_fanout_module.so | grep -q "$(COMPAT)/hiredis/lib"
	FT_MODULE=$(COMPAT)/hiredis1/objs/ngx_http_fanout_module.so prove $(REDIS_TESTS)

test: deps build unit
	prove -r t/

test-asan: deps $(ASAN_MODULE) unit
	FT_MODULE=$(ASAN_MODULE) FT_ASAN=1 prove -r t/

# the module under valgrind, through the cache and every merge mode
leak-check: deps build
	perl t/leak-check.pl

demo: deps build
	perl conf-examples/demo.pl

bench: deps build
	./bench/run

# a limit and a breaker: instructions per request under callgrind
bench-cost: deps build
	./bench/cost

# the JSON readers: the scanner against jansson, instructions per document
bench-json:
	./bench/json-cost.sh

# the same: a worker's CPU time (user and kernel) per request
bench-cpu: deps build
	./bench/cpu

# tail latency under an open-loop load: no hedging, after=p95, after=50ms
bench-tail: deps build
	./bench/tail

# batching against a GPU-like model: micro-batches, a client batch, 0 ms
bench-batch: deps build
	./bench/batch

# admission control against a GPU-like model, open loop, up to 5x capacity
bench-overload: deps build
	./bench/overload

# 10,000 keepalive clients, open loop, against the Lua peer
bench-conns: deps build
	./bench/conns

# SSE streams through fanout_merge first against proxy_pass (with
# BENCH_CALLGRIND=1: the instructions a stream costs, under callgrind;
# BENCH_PIN=1: the nginx under test alone on CPU 0)
bench-stream: deps build
	./bench/stream

# mean over three large answers in the pure core, against the scan
bench-mean: deps
	mkdir -p $(BUILD)/bench
	$(CC) -O2 -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) -Isrc/core \
	    -o $(BUILD)/bench/mean-large bench/mean-large.c $(CORE) -lcrypto -lm
	$(BUILD)/bench/mean-large $(BENCH_MEAN_SIZE)

# libFuzzer targets over the pure core, with ASan and UBSan: each runs on
# a copy of its seed corpus (t/fuzz/corpus/NAME, kept in the repository);
# a crash stops it and leaves its input in build/fuzz/NAME/ (crash-*), to
# be added to the corpus with a regression unit test.
FUZZERS      := $(patsubst t/fuzz/fuzz_%.c,%,$(wildcard t/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 600
FUZZ_CFLAGS  := -g -O1 -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -fno-omit-frame-pointer -Isrc/core

$(BUILD)/fuzz/%: t/fuzz/fuzz_%.c $(CORE) src/core/fanout_*.h
	mkdir -p $(BUILD)/fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(CORE) -lcrypto -lm

fuzz fuzz-ci:
	@$(MAKE) --no-print-directory deps-fuzz
	$(MAKE) $(addprefix $(BUILD)/fuzz/,$(FUZZERS))
	@set -e; for f in $(FUZZERS); do \
	    rm -rf $(BUILD)/fuzz/$$f.corpus; mkdir -p $(BUILD)/fuzz/$$f.corpus; \
	    cp t/fuzz/corpus/$$f/* $(BUILD)/fuzz/$$f.corpus/; \
	    echo "== fuzz $$f: $(FUZZ_SECONDS) s"; \
	    ( cd $(BUILD)/fuzz && ./$$f -max_total_time=$(FUZZ_SECONDS) \
	        -max_len=65536 -timeout=10 -print_final_stats=1 \
	        $$f.corpus > $$f.log 2>&1 ) \
	    || { tail -40 $(BUILD)/fuzz/$$f.log; exit 1; }; \
	    grep -E "stat::number_of_executed_units|Done" $(BUILD)/fuzz/$$f.log | tail -2; \
	done

# CI: a minute each
fuzz-ci: FUZZ_SECONDS = 60

deps-fuzz: PKGS = clang libclang-rt-14-dev
deps-fuzz:
	@missing=$$(for p in $(PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    SUDO=$$( [ $$(id -u) -eq 0 ] || echo sudo ); \
	    $$SUDO apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q \
	        --no-install-recommends $$missing; \
	fi

# cppcheck over the pure core and the glue (with the configured nginx
# tree's headers); the code follows nginx's style, which clang-format's
# presets cannot express, so formatting is kept by review
NGX_INCS    := $(addprefix -I$(BUILD)/nginx/,src/core src/event \
               src/event/modules src/os/unix objs src/http src/http/modules \
               src/http/v2)

# the dashboard page is compiled in: its header is made from the page, and
# lint fails when the two differ
dashboard: $(CURDIR)/src/ops/ngx_http_fanout_dashboard.h

$(CURDIR)/src/ops/ngx_http_fanout_dashboard.h: src/ops/ngx_http_fanout_dashboard.html tools/embed-html
	tools/embed-html $< > $@.tmp && mv $@.tmp $@

# the README's picture of the dashboard, taken by its test under load
screenshot: build
	mkdir -p docs && FT_SCREENSHOT=$(CURDIR)/docs/dashboard.png prove t/151-dashboard.t

check-dashboard:
	tools/embed-html src/ops/ngx_http_fanout_dashboard.html | cmp - src/ops/ngx_http_fanout_dashboard.h \
	    || { echo "src/ops/ngx_http_fanout_dashboard.h is stale: run make dashboard"; exit 1; }

lint: $(MODULE) check-dashboard
	tools/callgraph --design=DESIGN.md src
	tools/check-docs
	@# the pure core includes no nginx header
	@! grep -n '#include [<"]ngx_\|#include [<"]nginx' src/core/* \
	    || { echo "src/core/ includes nginx"; exit 1; }
	cppcheck --quiet --error-exitcode=1 --std=c99 \
	    --enable=warning,portability,performance src/core/fanout_*.c
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	    --suppress=missingIncludeSystem --suppress=toomanyconfigs \
	    $(NGX_INCS) -Isrc $(addprefix -I,$(GLUE_DIRS)) -Isrc/core \
	    $(wildcard src/*/ngx_http_fanout_*.c)

# the container image, built and run with podman on this machine: what podman
# needs set up lives under /tmp for the run only (docker/podman-env)
test-image: deps deps-podman build
	docker/podman-env prove -v docker/test-image.t docker/test-pod.t

# the Debian package, built as Debian builds its nginx modules (dh with
# nginx-dev's nginx sequence) from a copy of the tree; lintian fails it on
# errors.  (nginx-dev's build system configures in /usr/share/nginx/src,
# leaving a Makefile there: removed when it was not there before.)
deb: deps-deb
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/src
	tar -C $(CURDIR) --exclude=./build --exclude=./.git -cf - . \
	    | tar -C $(BUILD)/deb/src -xf -
	had=$$([ -e $(NGX_SRC)/Makefile ] && echo 1); \
	cd $(BUILD)/deb/src && dpkg-buildpackage -us -uc -b > ../build.log 2>&1; rc=$$?; \
	[ -n "$$had" ] || rm -f $(NGX_SRC)/Makefile; \
	[ $$rc = 0 ] || { tail -40 ../build.log; exit 1; }
	lintian --fail-on error $(BUILD)/deb/*.changes
	ls -l $(BUILD)/deb/*.deb

# the package installed with apt on Debian's nginx in a clean bookworm root
# (podman), enabled, nginx -t and a fan-out answer
test-deb: deps deps-podman build deb
	docker/podman-env prove -v docker/test-deb.t

clean:
	rm -rf $(BUILD)
