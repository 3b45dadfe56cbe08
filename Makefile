# nginx-fanout: build, test, demo and benchmark.
#
#   make          build build/ngx_http_fanout_module.so against Debian's nginx
#   make demo     start nginx + mock models on loopback, show real answers
#   make test     unit tests and the t/ suite under prove
#   make test-asan the suite with the module built with ASan and UBSan
#   make leak-check nginx under valgrind: no invalid access, no leak of ours
#   make bench    wrk benchmarks, see bench/README.md
#   make deps     install missing Debian packages (needs root)

SHELL       := /bin/bash
NGX_SRC     ?= /usr/share/nginx/src
BUILD       := $(CURDIR)/build
MODULE      := $(BUILD)/ngx_http_fanout_module.so
ASAN_MODULE := $(BUILD)/asan/ngx_http_fanout_module.so

# what the build, the tests, the demo and the benchmark need
DEB_BUILD   := nginx nginx-dev libhiredis-dev gcc make
# jansson is the oracle the JSON scanner is checked against
DEB_TEST    := libjansson-dev redis-server libnginx-mod-http-echo curl perl \
               cppcheck valgrind
DEB_BENCH   := wrk libnginx-mod-http-lua lua-cjson lua-nginx-redis
DEB_ALL     := $(DEB_BUILD) $(DEB_TEST) $(DEB_BENCH)

SRCS        := $(wildcard $(CURDIR)/src/*.c $(CURDIR)/src/*.h) $(CURDIR)/config
WARN        := -Wall -Wextra -Werror -Wno-unused-parameter
CC_OPT      := -g -O2 -fPIC -fstack-protector-strong $(WARN)
ASAN_OPT    := -g -O1 -fPIC -fno-omit-frame-pointer \
               -fsanitize=address,undefined -fno-sanitize-recover=undefined $(WARN)

UNIT_CFLAGS := -g -O1 -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) -Isrc \
               -fsanitize=address,undefined -fno-omit-frame-pointer
UNIT_TESTS  := $(BUILD)/unit/json_test $(BUILD)/unit/merge_test \
               $(BUILD)/unit/cache_key_test $(BUILD)/unit/limit_test \
               $(BUILD)/unit/breaker_test $(BUILD)/unit/split_test \
               $(BUILD)/unit/compare_test
CORE        := src/fanout_json.c src/fanout_merge.c src/fanout_cache_key.c \
               src/fanout_limit.c src/fanout_breaker.c src/fanout_split.c \
               src/fanout_compare.c

.PHONY: all deps deps-build build test unit test-asan leak-check demo bench bench-cost bench-cpu \
        lint clean

all: build

build: $(MODULE)

# Installs only what is missing; a no-op on a prepared machine.
deps: PKGS = $(DEB_ALL)
deps-build: PKGS = $(DEB_BUILD)
deps deps-build:
	@missing=$$(for p in $(PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    SUDO=$$( [ $$(id -u) -eq 0 ] || echo sudo ); \
	    $$SUDO apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q \
	        --no-install-recommends $$missing; \
	    for s in nginx redis-server; do \
	        $$SUDO service $$s stop >/dev/null 2>&1 || true; done; \
	    true; \
	fi

# The module is built in a copy of Debian's nginx tree with its own flags
# (conf_flags), so the .so matches the installed binary.
$(BUILD)/%/objs/Makefile: config
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

$(BUILD)/unit/%_test: t/unit/%_test.c $(CORE) src/fanout_*.h t/unit/tap.h
	mkdir -p $(BUILD)/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(CORE) -ljansson -lcrypto -lm

unit: deps $(UNIT_TESTS)

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

# the same: a worker's CPU time (user and kernel) per request
bench-cpu: deps build
	./bench/cpu

# cppcheck over the pure core and the glue (with the configured nginx
# tree's headers); the code follows nginx's style, which clang-format's
# presets cannot express, so formatting is kept by review
NGX_INCS    := $(addprefix -I$(BUILD)/nginx/,src/core src/event \
               src/event/modules src/os/unix objs src/http src/http/modules \
               src/http/v2)

lint: $(MODULE)
	cppcheck --quiet --error-exitcode=1 --std=c99 \
	    --enable=warning,portability,performance src/fanout_*.c
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	    --suppress=missingIncludeSystem --suppress=toomanyconfigs \
	    $(NGX_INCS) -Isrc src/ngx_*.c

clean:
	rm -rf $(BUILD)
