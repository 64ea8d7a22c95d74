# skiff: build, install, test, bench. Every target installs what it needs.
TARGET  := x86_64-unknown-linux-musl
BIN     := target/$(TARGET)/release/skiff
PREFIX  ?= /usr/local
APPLETS := runc containerd ctr containerd-shim containerd-shim-skiff-v2 skiff-fetch

.PHONY: build deps test-deps install test unit integration bench lint clean

build: deps
	cargo build --release --target $(TARGET)
	@file $(BIN) | grep -Eq 'static(-pie)? linked|statically linked' || { echo "error: $(BIN) is not statically linked" >&2; exit 1; }

# The musl toolchain: rustup's target and Debian's musl-tools (ring and
# zstd-sys compile C with x86_64-linux-musl-gcc).
deps:
	@scripts/ensure-deps build

test-deps:
	@scripts/ensure-deps test

# INIT=systemd and/or openrc also installs the daemon's service (opt-in).
INIT           ?=
SYSTEMDUNITDIR ?= /etc/systemd/system
OPENRCDIR      ?= /etc/init.d

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/skiff
	for a in $(APPLETS); do ln -sf skiff $(DESTDIR)$(PREFIX)/bin/$$a; done
ifneq ($(filter systemd,$(INIT)),)
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|' contrib/systemd/skiff-containerd.service > $(DESTDIR)$(SYSTEMDUNITDIR)/skiff-containerd.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/skiff-containerd.service
endif
ifneq ($(filter openrc,$(INIT)),)
	install -d $(DESTDIR)$(OPENRCDIR)
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|' contrib/openrc/skiff-containerd > $(DESTDIR)$(OPENRCDIR)/skiff-containerd
	chmod 0755 $(DESTDIR)$(OPENRCDIR)/skiff-containerd
endif

# The tests themselves build in the dev profile (fast to compile) and drive
# the static release binary, the product.
test: build test-deps
	SKIFF_TEST_BIN=$(abspath $(BIN)) cargo test --no-fail-fast --target $(TARGET) -- --test-threads=2

lint: deps
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

bench: build test-deps
	scripts/bench
	scripts/bench-pull
	scripts/bench-shim
	scripts/bench-daemon

clean:
	cargo clean
