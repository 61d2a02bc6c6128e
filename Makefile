# vipd: build, test, static binaries, demo, install.
#
#   make build     release build (target/release/vipd)
#   make test      fmt, clippy, man page lint, then every test; the integration tests need
#                  root, network namespaces and Debian's etcd (etcd-server, etcd-client)
#   make static    static x86_64 musl binaries, with and without default features
#   make demo      two vipd nodes, one etcd, the VIP moving (demo/demo.sh; as root)
#   make bench     failover timings and idle cost (bench/failover.sh; as root)
#   make install   PREFIX=/usr/local, DESTDIR for staging
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

.PHONY: all build test static demo bench install clean check-cargo

all: build

check-cargo:
	@command -v $(CARGO) >/dev/null 2>&1 || { \
	    echo "cargo not found. Install a Rust toolchain (rustup); through sudo keep your PATH:" >&2; \
	    echo "    sudo env \"PATH=\$$PATH\" make $(or $(MAKECMDGOALS),build)" >&2; exit 1; }

build: check-cargo
	$(CARGO) build --release

test: check-cargo
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	@if [ -f man/vipd.8 ]; then \
	    command -v mandoc >/dev/null 2>&1 || { echo "mandoc not found (apt-get install mandoc)" >&2; exit 1; }; \
	    echo "mandoc -T lint -W warning man/vipd.8"; \
	    mandoc -T lint -W warning man/vipd.8; \
	else \
	    echo "man/vipd.8 not found: man page lint skipped"; \
	fi
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

static: check-cargo
	@if command -v rustup >/dev/null 2>&1; then \
	    rustup target list --installed | grep -qx '$(MUSL_TARGET)' || rustup target add '$(MUSL_TARGET)'; \
	else \
	    echo "rustup not found: assuming the $(MUSL_TARGET) target is installed"; \
	fi
	@if ! command -v musl-gcc >/dev/null 2>&1; then \
	    if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        echo "musl-gcc not found: apt-get install musl-tools"; \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y musl-tools || { \
	            echo "make static: could not install musl-tools; install it by hand (apt-get install musl-tools)" >&2; exit 1; }; \
	    else \
	        echo "make static: musl-gcc not found; install it as root: apt-get install musl-tools" >&2; exit 1; \
	    fi; \
	fi
	$(CARGO) build --release --target $(MUSL_TARGET)
	@mkdir -p target/static && cp target/$(MUSL_TARGET)/release/vipd target/static/vipd
	$(CARGO) build --release --target $(MUSL_TARGET) --no-default-features
	@cp target/$(MUSL_TARGET)/release/vipd target/static/vipd-no-default-features
	@for f in target/static/vipd target/static/vipd-no-default-features; do \
	    printf '%s: %s bytes\n' "$$f" "$$(stat -c %s "$$f")"; \
	    if command -v file >/dev/null 2>&1; then file "$$f"; fi; \
	done

demo:
	bash demo/demo.sh

# Failover timings and idle cost against Debian's vip-manager when installed
# (bench/failover.sh; as root; MOVES, INTERVAL, IDLE override the defaults).
bench: check-cargo
	bash bench/failover.sh

install: $(BIN)
	install -D -m 0755 $(BIN) '$(DESTDIR)$(PREFIX)/sbin/vipd'
	install -D -m 0644 man/vipd.8 '$(DESTDIR)$(PREFIX)/share/man/man8/vipd.8'
	install -D -m 0644 packaging/vipd.yml '$(DESTDIR)$(PREFIX)/share/doc/vipd/vipd.yml'

# Rebuilt only when a source is newer, so `sudo make install` after `make build` needs no cargo.
$(BIN): Cargo.toml Cargo.lock $(shell find src -name '*.rs' 2>/dev/null)
	$(CARGO) build --release

clean:
	rm -rf target
