# switchyard: `make run` serves the default config, `make test` runs the tests.
# Both install what is missing first (Debian packages, npm ci) and build.

SHELL := /bin/bash
ARCH_INCLUDE := /usr/include/$(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BPF_OBJ := native/build/steering.bpf.o
ADDON := native/build/Release/switchyard.node
CONFIG ?= config/examples/default.json
RUN_ARGS ?=
APT_PACKAGES := clang llvm libbpf-dev bpftool build-essential python3 iproute2 netcat-openbsd libcap2-bin util-linux
BENCH_PACKAGES := haproxy nginx wrk iperf3

.PHONY: all deps system-deps test-deps build run test test-node bench bench-quick install clean

all: build

# Each command or header stands for the package that provides it; apt-get runs only when one is missing.
system-deps:
	@missing=""; \
	for c in clang:clang llc:llvm bpftool:bpftool gcc:build-essential make:build-essential python3:python3 ip:iproute2 nc:netcat-openbsd capsh:libcap2-bin unshare:util-linux; do \
	  command -v $${c%%:*} >/dev/null 2>&1 || missing="$$missing $${c##*:}"; \
	done; \
	[ -f /usr/include/bpf/libbpf.h ] || missing="$$missing libbpf-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	fi

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: system-deps node_modules/.installed

# node-gyp rebuild empties native/build, so the object is built after the addon.
$(BPF_OBJ): native/steering.bpf.c native/steering.h $(ADDON) | deps
	@mkdir -p native/build
	clang -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -I$(ARCH_INCLUDE) -c native/steering.bpf.c -o $@

$(ADDON): native/*.c native/*.h native/binding.gyp | deps
	npx node-gyp rebuild --directory native
	@touch $@

# The worker also as one file (dist/worker/bundle.js): a worker process starts about a
# quarter faster and 2 MiB smaller than from 30 modules (supervisor/workers/worker-launch.ts).
# The supervisor too (dist/supervisor/bundle.js): 2 MiB less idle memory (cli/supervisor-entry.ts).
# Without comments and indentation: V8 keeps the whole source in the heap for the process's life,
# and one non-ASCII character in a comment makes it two bytes a character (290 KiB of text, 580 KiB
# held; 200 KiB without); names stay, so a stack trace still reads, by function rather than line.
dist/.built: $(shell find supervisor worker config common cli native test bench fuzz -name '*.ts' 2>/dev/null) tsconfig.json | deps
	npx tsc -p tsconfig.json
	node_modules/.bin/esbuild dist/worker/main.js --bundle --platform=node --format=esm --log-level=warning --outfile=dist/worker/bundle.js
	node_modules/.bin/esbuild dist/supervisor/main.js --bundle --platform=node --format=esm --log-level=warning --minify-whitespace --outfile=dist/supervisor/bundle.js
	@touch $@

build: deps $(ADDON) $(BPF_OBJ) dist/.built

# Starts local echo servers for the default config's targets, then the proxy in the foreground.
run: build
	@set -e; \
	node bin/switchyard.js echo --listen 127.0.0.1:6001 --listen 127.0.0.1:6002 --listen 127.0.0.1:6003 & echo_pid=$$!; \
	trap 'kill $$echo_pid 2>/dev/null' EXIT; \
	node bin/switchyard.js run --config $(CONFIG) $(RUN_ARGS)

# Only for tests: promtool (package prometheus) lints /metrics, systemd-analyze
# (package systemd, installs fine where systemd is not PID 1) verifies the unit,
# HAProxy and nginx (its stream module) send and receive the PROXY protocol as real peers.
test-deps:
	@missing=""; \
	for c in promtool:prometheus systemd-analyze:systemd haproxy:haproxy nginx:nginx; do \
	  command -v $${c%%:*} >/dev/null 2>&1 || missing="$$missing $${c##*:}"; \
	done; \
	[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || missing="$$missing libnginx-mod-stream"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: build test-deps
	npx ava

# The supervisor's own hand-overs at full length: 20 upgrades in a row under load in each
# steering mode (the suite runs 2), and 10 kill -9 restarts through the fd store in each (the suite 3).
.PHONY: soak
soak: build
	SWITCHYARD_UPGRADE_ROUNDS=20 SWITCHYARD_CRASH_KILLS=10 npx ava --timeout=10m dist/test/upgrade.test.js dist/test/crash-restart.test.js

# Faults injected one at a time under load (test/chaos-*.test.ts, also part of `make test`);
# prints, per fault, the connections attempted and failed, and how they failed.
.PHONY: chaos
chaos: build
	@rm -rf .cache/chaos && mkdir -p .cache/chaos
	@SWITCHYARD_CHAOS_RESULTS=$(CURDIR)/.cache/chaos npx ava dist/test/chaos-*.test.js; status=$$?; \
	node dist/test/helpers/chaos-table.js .cache/chaos/results.jsonl; exit $$status

# Fuzz targets (fuzz/targets/index.ts) for 60 s each; failures go to fuzz/regressions/<target>/,
# which `make test` replays. e.g. `make fuzz FUZZ_ARGS="--time 600 config"`.
.PHONY: fuzz
FUZZ_ARGS ?=
fuzz: build
	node dist/fuzz/main.js $(FUZZ_ARGS)

# The suite on another Node.js line, e.g. `make test-node NODE_VERSION=24.22.3`: the
# binary comes from the npm registry's node-linux-<arch> package into .cache/.
NODE_DIR = .cache/node-$(NODE_VERSION)
test-node: build test-deps
	@test -n "$(NODE_VERSION)" || { echo "usage: make test-node NODE_VERSION=22.21.1"; exit 2; }
	@if [ ! -x $(NODE_DIR)/package/bin/node ]; then \
	  mkdir -p $(NODE_DIR) && cd $(NODE_DIR) && \
	  pkg=node-linux-$$(node -p process.arch)@$(NODE_VERSION) && \
	  tgz=$$(npm pack --silent $$pkg) && tar xzf $$tgz && rm -f $$tgz; \
	fi
	PATH=$(CURDIR)/$(NODE_DIR)/package/bin:$$PATH node --version
	PATH=$(CURDIR)/$(NODE_DIR)/package/bin:$$PATH npx ava

bench: build
	$(MAKE) -s bench-deps
	node dist/bench/main.js

bench-quick: build
	$(MAKE) -s bench-deps
	node dist/bench/main.js --quick

bench-deps:
	@missing=""; for p in $(BENCH_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; fi

# Installs the built tree under $(PREFIX)/lib/switchyard, $(PREFIX)/bin/switchyard,
# /etc/switchyard/config.json (if absent) and the systemd unit; DESTDIR stages it elsewhere.
PREFIX ?= /usr/local
DESTDIR ?=
install: build
	PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) ./systemd/install.sh

clean:
	rm -rf dist native/build .cache
