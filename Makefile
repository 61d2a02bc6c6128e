# vipd: build, test, static binaries, Debian package, demo, install.
#
#   make build       release build (target/release/vipd)
#   make deps        install the Debian packages the tests need when missing (.ci/deps,
#                    the one list; `make test`, `make demo`, `make bench` and .ci/run use it)
#   make test        deps, fmt, clippy, lint (man pages, shell scripts), deb, check-size,
#                    then every test; the integration tests need root, network namespaces,
#                    Debian's etcd (etcd-server, etcd-client) and runit
#   make static      static-pie x86_64 musl binaries, with TLS (target/static/vipd) and
#                    without (target/static/vipd-no-default-features); prints sizes
#   make check-size  the static binaries within budget: with TLS 2.2 MiB, without 1.0 MiB
#   make deb         target/deb/vipd_VERSION_amd64.deb from the static TLS build, then lintian
#   make lint        mandoc -T lint on the man pages, shellcheck on every shell script
#   make demo        two vipd nodes, one etcd, the VIP moving (demo/demo.sh; as root)
#   make bench       failover timings and idle cost (bench/failover.sh), the reactions to
#                    the kernel: a VIP deleted by hand, a link down and up, for etcd v3,
#                    etcd v2 and Consul (bench/react.sh; also `make bench-react`), and the
#                    conflict listener's cost under ARP traffic (bench/conflict.sh), and a
#                    replica VIP's moves and idle cost (bench/replica.sh; also
#                    `make bench-replica`; as root)
#   make accept      vipd in front of a real Patroni 3 / PostgreSQL 15 cluster: no client
#                    connection through the VIP may reach a node in recovery during
#                    switchovers (tests/accept/accept.sh; as root; VIPD_ARGS, SWITCHOVERS)
#   make bench-fleet N idle agents on one etcd: etcd's CPU per agent, the agents' CPU and
#                    RSS, against vip-manager (bench/fleet.sh; as root)
#   make fuzz        each cargo-fuzz target for FUZZ_SECONDS (default 300) s; needs cargo-fuzz
#                    (installed if missing) and RUSTC_BOOTSTRAP=1 on a stable toolchain
#   make soak        the memory bounds with the release binary: hostile DCS replies (VmHWM
#                    under 4 MiB) and the 1,500-move soak (as root; `make test` runs both
#                    with the test build, which checks growth only)
#   make install     PREFIX=/usr/local, DESTDIR for staging
#   make clean
#
# Root is needed for `make test` and `make demo`. When cargo is only in your user's PATH
# (rustup), keep that PATH through sudo:
#   sudo env "PATH=$PATH" make test
# (Plain `sudo make test` also finds the invoking user's ~/.cargo/bin and ~/.rustup.)
#
# `make test` fails when a root/etcd test was skipped; VIPD_ALLOW_SKIP=1 allows skipping them
# (for unprivileged development only; CI never sets it).

CARGO ?= cargo
PREFIX ?= /usr/local
DESTDIR ?=
MUSL_TARGET := x86_64-unknown-linux-musl
# The integration tests mostly wait (intervals, ARP timings): run more of them at once.
TEST_THREADS ?= 8
TEST_REPORT := $(CURDIR)/target/vipd-test-report.txt
BIN := target/release/vipd
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
DEB_ARCH := amd64
STATIC_TLS := target/static/vipd
STATIC_NO_TLS := target/static/vipd-no-default-features
# Every shell script under packaging/ (by its #! line or a shellcheck shell= directive).
SCRIPTS = $(shell grep -rlE '^(\#!/bin/(ba)?sh|\#!/sbin/openrc-run|\# shellcheck shell=)' packaging | sort)
# The scripts that build labs and run benchmarks (bash; -x follows what they source).
LAB_SCRIPTS = $(sort $(wildcard demo/*.sh bench/*.sh tests/accept/*.sh)) .ci/run .ci/deps

# ip, sysctl, … live in sbin, which a user's PATH kept through sudo may lack.
export PATH := $(PATH):/usr/sbin:/sbin

# Under sudo: use the invoking user's rustup toolchains when root has none of its own.
ifneq ($(SUDO_USER),)
SUDO_HOME := $(shell getent passwd '$(SUDO_USER)' | cut -d: -f6)
ifeq ($(shell command -v $(CARGO) 2>/dev/null),)
ifneq ($(wildcard $(SUDO_HOME)/.cargo/bin/cargo),)
export PATH := $(SUDO_HOME)/.cargo/bin:$(PATH)
endif
endif
ifeq ($(origin RUSTUP_HOME),undefined)
ifeq ($(wildcard $(HOME)/.rustup),)
ifneq ($(wildcard $(SUDO_HOME)/.rustup),)
export RUSTUP_HOME := $(SUDO_HOME)/.rustup
endif
endif
endif
endif

.PHONY: all build deps test static check-size deb lint lint-man lint-scripts musl-toolchain demo bench \
	bench-fleet bench-react bench-replica install clean check-cargo fuzz soak accept

all: build

check-cargo:
	@command -v $(CARGO) >/dev/null 2>&1 || { \
	    echo "cargo not found. Install a Rust toolchain (rustup); through sudo keep your PATH:" >&2; \
	    echo "    sudo env \"PATH=\$$PATH\" make $(or $(MAKECMDGOALS),build)" >&2; exit 1; }

build: check-cargo
	$(CARGO) build --release

deps:
	@bash .ci/deps test

# The package is built (and checked by lintian) before the tests, which unpack it.
test: export VIPD_REQUIRE_LINTIAN = 1
test: deps check-cargo
	@$(MAKE) --no-print-directory lint deb check-size
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	@mkdir -p target && : > '$(TEST_REPORT)'
	@set +e; \
	echo "VIPD_TEST_REPORT=$(TEST_REPORT) $(CARGO) test --no-fail-fast -- --test-threads=$(TEST_THREADS)"; \
	VIPD_TEST_REPORT='$(TEST_REPORT)' $(CARGO) test --no-fail-fast -- --test-threads=$(TEST_THREADS); \
	status=$$?; \
	ran=$$(grep -c '^ran ' '$(TEST_REPORT)'); \
	skipped=$$(grep -c '^skipped ' '$(TEST_REPORT)'); \
	echo "root/etcd tests: $$ran ran, $$skipped skipped"; \
	if [ $$status -ne 0 ]; then echo "FAIL: cargo test exited with status $$status" >&2; exit 1; fi; \
	if [ "$${VIPD_ALLOW_SKIP:-}" != 1 ]; then \
	    if [ $$skipped -ne 0 ]; then \
	        echo "FAIL: $$skipped root/etcd tests skipped; run as root with etcd-server, etcd-client, iproute2, tcpdump installed" >&2; exit 1; \
	    fi; \
	    if [ $$ran -eq 0 ]; then echo "FAIL: no root/etcd test ran" >&2; exit 1; fi; \
	fi
	@# The real Patroni cluster (about a minute); it needs root, like the lab tests.
	@if [ "$${VIPD_ALLOW_SKIP:-}" = 1 ] && [ "$$(id -u)" != 0 ]; then \
	    echo "accept: skipped (not root, VIPD_ALLOW_SKIP=1)"; \
	else \
	    $(MAKE) --no-print-directory accept || { echo "FAIL: make accept" >&2; exit 1; }; \
	fi

musl-toolchain:
	@if command -v rustup >/dev/null 2>&1; then \
	    rustup target list --installed | grep -qx '$(MUSL_TARGET)' || rustup target add '$(MUSL_TARGET)' || { \
	        echo "make static: could not add the $(MUSL_TARGET) target; run: rustup target add $(MUSL_TARGET)" >&2; exit 1; }; \
	else \
	    echo "rustup not found: assuming the $(MUSL_TARGET) target is installed"; \
	fi
	@bash .ci/deps static

# Two target directories, so that neither build invalidates the other.
static: check-cargo musl-toolchain
	$(CARGO) build --release --target $(MUSL_TARGET)
	$(CARGO) build --release --target $(MUSL_TARGET) --no-default-features \
	    --target-dir target/no-default-features
	@mkdir -p target/static
	@cp target/$(MUSL_TARGET)/release/vipd $(STATIC_TLS)
	@cp target/no-default-features/$(MUSL_TARGET)/release/vipd $(STATIC_NO_TLS)
	@for f in $(STATIC_TLS) $(STATIC_NO_TLS); do \
	    printf '%s: %s bytes\n' "$$f" "$$(stat -c %s "$$f")"; \
	    if command -v file >/dev/null 2>&1; then \
	        kind=$$(file -b "$$f"); echo "  $$kind"; \
	        case $$kind in *static-pie\ linked*|*statically\ linked*) ;; \
	        *) echo "make static: $$f is not a static executable" >&2; exit 1 ;; esac; \
	    fi; \
	done

check-size: static
	sh packaging/check-size.sh $(STATIC_TLS) 2.2 $(STATIC_NO_TLS) 1.0

# dpkg-deb, then lintian (no error tag allowed; VIPD_REQUIRE_LINTIAN=1 fails without it).
deb: static
	bash packaging/deb/build-deb.sh $(STATIC_TLS) target/deb $(DEB_ARCH)

lint: lint-man lint-scripts

lint-man:
	@command -v mandoc >/dev/null 2>&1 || { echo "mandoc not found (apt-get install mandoc)" >&2; exit 1; }
	mandoc -T lint -W warning man/vipd.8 man/vipd.conf.5

lint-scripts:
	@command -v shellcheck >/dev/null 2>&1 || { echo "shellcheck not found (apt-get install shellcheck)" >&2; exit 1; }
	shellcheck $(SCRIPTS)
	shellcheck -x $(LAB_SCRIPTS)

demo:
	@bash .ci/deps demo
	bash demo/demo.sh

# Three Patroni nodes in network namespaces, vipd on each, a client connecting through the VIP
# during SWITCHOVERS (default 3) switchovers; vipd gets --patroni-url http://@NODE_IP@:8008
# unless VIPD_ARGS says otherwise. The script builds vipd (cargo build --release) and installs
# its packages.
accept: check-cargo
	bash tests/accept/accept.sh

# Failover timings and idle cost against Debian's vip-manager when installed
# (bench/failover.sh; as root; MOVES, INTERVAL, IDLE override the defaults).
bench: check-cargo
	@bash .ci/deps bench
	bash bench/failover.sh
	bash bench/react.sh
	bash bench/conflict.sh
	bash bench/replica.sh

# Only the replica VIP (bench/replica.sh; ROUNDS, IDLE, INTERVAL).
bench-replica: check-cargo
	@bash .ci/deps bench
	bash bench/replica.sh

# Only the reactions to the kernel (bench/react.sh; ROUNDS, IDLE, VIPD_BEFORE=PATH).
bench-react: check-cargo
	@bash .ci/deps bench
	bash bench/react.sh

# etcd's cost per idle agent and each agent's own, N of each kind on one etcd (bench/fleet.sh;
# as root; N, IDLE, SETTLE, INTERVAL override the defaults; VIPD_BEFORE=PATH adds an older vipd).
bench-fleet: check-cargo
	@bash .ci/deps bench
	bash bench/fleet.sh

# libFuzzer targets (fuzz/fuzz_targets, checks in fuzz/harness.rs). New corpus entries go to
# target/fuzz-corpus/<target>, the committed seeds (fuzz/corpus/<target>) are only read; a
# crash stops the run and leaves its input in fuzz/artifacts/<target>: fix it, then commit the
# input to fuzz/regressions/<target> (tests/faults_fuzz_inputs.rs replays both directories).
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= yaml config etcd_range etcd_watch netlink consul etcd2 http_reply conflict scope
fuzz: check-cargo
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p target/fuzz-corpus/$$t; \
	    echo "== cargo fuzz run $$t for $(FUZZ_SECONDS) s"; \
	    RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t target/fuzz-corpus/$$t fuzz/corpus/$$t -- \
	        -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 || exit 1; \
	done

# The memory bounds with the release binary (see the header).
soak: check-cargo
	$(CARGO) build --release
	VIPD_RELEASE_BIN='$(CURDIR)/$(BIN)' $(CARGO) test --test tests -- \
	    --nocapture --test-threads=1 faults_soak::soak_ faults::hostile_dcs_replies

# FHS places under PREFIX: the program in sbin (a daemon), the manuals, the examples.
install: $(BIN)
	install -D -m 0755 $(BIN) '$(DESTDIR)$(PREFIX)/sbin/vipd'
	install -D -m 0644 man/vipd.8 '$(DESTDIR)$(PREFIX)/share/man/man8/vipd.8'
	install -D -m 0644 man/vipd.conf.5 '$(DESTDIR)$(PREFIX)/share/man/man5/vipd.conf.5'
	install -D -m 0644 packaging/vipd.yml '$(DESTDIR)$(PREFIX)/share/doc/vipd/examples/vipd.yml'
	install -D -m 0644 packaging/examples/replica.yml '$(DESTDIR)$(PREFIX)/share/doc/vipd/examples/replica.yml'
	install -D -m 0644 packaging/examples/sync.yml '$(DESTDIR)$(PREFIX)/share/doc/vipd/examples/sync.yml'
	install -D -m 0644 packaging/examples/hetzner.yml '$(DESTDIR)$(PREFIX)/share/doc/vipd/examples/hetzner.yml'
	install -D -m 0644 packaging/examples/hetzner-cloud.yml '$(DESTDIR)$(PREFIX)/share/doc/vipd/examples/hetzner-cloud.yml'

# Rebuilt only when a source is newer, so `sudo make install` after `make build` needs no cargo.
$(BIN): Cargo.toml Cargo.lock $(shell find src -name '*.rs' 2>/dev/null)
	$(CARGO) build --release

clean:
	rm -rf target
