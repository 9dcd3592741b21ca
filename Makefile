# Cabinet Kiosk: the two commands of the README, and the set-up they need.
#
#   make demo   start the demo (installs what is missing, builds, opens the kiosk window;
#               headless when there is no display)
#   make test   run every test (installs what is missing, fmt, clippy, tests, WebDriver)
#
# System packages are installed with apt-get when missing, so a fresh Debian/Ubuntu machine
# needs nothing else (Rust itself excepted: see README). The list covers the whole suite,
# including the Tauri window, Mosquitto and WebDriver tests.

SHELL := /bin/bash
CARGO ?= cargo

# What building and running the window app needs (the demo installs only these)...
DEMO_PACKAGES := \
	build-essential pkg-config libudev-dev \
	libwebkit2gtk-4.1-dev libsoup-3.0-dev libjavascriptcoregtk-4.1-dev librsvg2-dev \
	libayatana-appindicator3-dev libxdo-dev fonts-noto-cjk libharfbuzz-bin
# ...and what the tests add: Xvfb and WebDriver for the real window, Mosquitto and
# RabbitMQ for the broker tests, the .deb's clean root, the tools the scripts call, two
# window managers and the X tools that ask them (the window stays on screen), and node
# with Debian's TypeScript for the page's own checks (ui-check: tests and a type check).
APT_PACKAGES := $(DEMO_PACKAGES) \
	libssl-dev xvfb xauth webkit2gtk-driver mosquitto mosquitto-clients socat imagemagick jq openssl \
	openbox metacity xdotool x11-utils \
	dpkg-dev debootstrap python3 faketime rabbitmq-server nodejs node-typescript

.PHONY: all deps deps-demo toolchain tools demo demo-headless demo-wall demo-boards test lint ui-check ui-font deny unit test-deb deb reliability cluster mutants bench bench-history bench-window clean

# Release builds of the window app embed the page and use Tauri's production protocol.
RELEASE_APP := $(CARGO) build --release -p cabinet-kiosk-app -p cabinet-demo --features cabinet-kiosk-app/custom-protocol,cabinet-kiosk-app/demo

all: test

## Install missing system packages (idempotent; quiet when everything is present).
deps:
	@./scripts/install-deps.sh $(APT_PACKAGES)

deps-demo:
	@./scripts/install-deps.sh $(DEMO_PACKAGES)

toolchain:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) and re-run"; exit 1; }

## WebDriver for the real-window tests: tauri-driver (from crates.io) drives Debian's
## WebKitWebDriver. Installed into cargo's bin directory once.
tools: toolchain
	@command -v tauri-driver >/dev/null || [ -x "$${CARGO_HOME:-$$HOME/.cargo}/bin/tauri-driver" ] || \
		$(CARGO) install tauri-driver --locked --version '^2'

## The README's first command: a zero-setup demo.
demo: deps-demo toolchain
	@$(RELEASE_APP)
	@./scripts/demo.sh target/release

demo-headless: deps-demo toolchain
	@$(CARGO) build --release -p cabinet-demo
	@CABINET_DEMO=headless ./scripts/demo.sh target/release

## The same demo as a locker wall: three lock boards on one simulated RS-485 bus.
demo-wall: deps-demo toolchain
	@$(RELEASE_APP)
	@CABINET_DEMO_LAYOUT=wall ./scripts/demo.sh target/release

## The boards and the command path in a terminal, step by step (a real Mosquitto: the
## full package list).
demo-boards: deps toolchain
	@$(CARGO) build --release -p cabinet-cli
	@./scripts/demo-boards.sh target/release/cabinet

## The README's second command: everything CI checks.
test: deps toolchain tools lint unit test-deb

lint: deny ui-check
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p cabinet-kiosk-app --features demo --all-targets -- -D warnings

## The page's modules (ui/): node parses each one, and runs the tests of the pure ones
## (tests/ui/: the text table's helpers, when a customer's visit ends). No npm packages.
ui-check:
	@for f in ui/*.js; do node --check "$$f" || exit 1; done
	tsc -p tsconfig.json
	node --test tests/ui/*.test.js

## Cut the page's font (ui/fonts/kiosk-sans.otf) again from the system's Noto Sans CJK, after
## a string with a new character (ui-check's font test names it). fontTools from PyPI, in a
## virtualenv under target/.
ui-font:
	@./scripts/install-deps.sh python3-venv fonts-noto-cjk
	@[ -x target/ui-font-venv/bin/python ] || python3 -m venv target/ui-font-venv
	@target/ui-font-venv/bin/python -c 'import fontTools' 2>/dev/null || \
		target/ui-font-venv/bin/pip install --quiet 'fonttools==4.*'
	target/ui-font-venv/bin/python scripts/ui-font.py

## Supply chain (deny.toml): the licenses, bans and sources of every crate in Cargo.lock;
## RustSec advisories too when a copy of its database is here (no network reaches it:
## README, "Dependency checks"). cargo-deny is pinned: its config keys change.
CARGO_DENY_VERSION := 0.20.2
ADVISORY_DBS := $${CARGO_HOME:-$$HOME/.cargo}/advisory-dbs
deny: toolchain
	@[ "$$($(CARGO) deny --version 2>/dev/null)" = "cargo-deny $(CARGO_DENY_VERSION)" ] || \
		$(CARGO) install cargo-deny --locked --version $(CARGO_DENY_VERSION)
	$(CARGO) deny --locked check --hide-inclusion-graph licenses bans sources
	@db=$$(ls -d $(ADVISORY_DBS)/advisory-db-*/crates 2>/dev/null | head -n 1); db=$${db%/crates}; \
	if [ -n "$$db" ]; then \
		echo "advisories: RustSec database $$db, last commit $$(git -C "$$db" log -1 --format=%cs 2>/dev/null)"; \
		$(CARGO) deny --frozen check --hide-inclusion-graph advisories; \
	else \
		echo "advisories: SKIPPED, no RustSec database in $(ADVISORY_DBS) (README, \"Dependency checks\")"; \
	fi

unit:
	@# The window app's demo (its commands, and its window over WebDriver) with the `demo`
	@# feature; then the workspace without it, last, so that the binaries test-deb
	@# packages are the shipped ones (no demo).
	$(CARGO) test -p cabinet-kiosk-app --features demo --test commands --test webdriver -- demo
	$(CARGO) test --workspace
	@# The workspace run builds cabinet-core with its test hooks (cabinet-cli's dev-dependency
	@# turns them on); built alone, as in the shipped binaries, they must do nothing.
	$(CARGO) test -p cabinet-core --lib hooks::

## The .deb installed into a clean Debian root (debootstrap), its units verified, the
## headless unit's commands run in it; uses the binaries `unit` built. Needs root.
test-deb: deps
	@if [ "$$(id -u)" -eq 0 ]; then ./scripts/test-deb.sh; else sudo ./scripts/test-deb.sh; fi

## The package for cabinets: target/debian/cabinet-kiosk_<version>_<arch>.deb (release build).
deb: deps toolchain
	./scripts/build-deb.sh

## Benchmarks that print figures (see docs/BENCHMARKS.md).
bench: deps toolchain
	$(CARGO) build --profile ship -p cabinet-cli -p cabinet-lab
	target/ship/cabinet-lab bench board --polls 20000 --poll-ms 2 --dispense-rate 50
	target/ship/cabinet-lab bench dispatch --commands 5000 --poll-ms 2
	target/ship/cabinet-lab bench dispatch --commands 200 --poll-ms 200
	target/ship/cabinet-lab bench journal --commands 5000
	target/ship/cabinet-lab bench footprint --starts 5 --idle-secs 60
	target/ship/cabinet-lab bench scale --sizes 1,10,100,1000 --commands 6000 --rate 200 --unpaced

## Dispatch latency with 0, 100,000 and 1,000,000 finished commands in the journal, and
## the journal over a cabinet's life (a million commands, retention, the ceiling).
bench-history: deps toolchain
	$(CARGO) build --release -p cabinet-cli -p cabinet-lab
	target/release/cabinet-lab bench dispatch --commands 5000 --poll-ms 2 --history 0
	target/release/cabinet-lab bench dispatch --commands 5000 --poll-ms 2 --history 100000
	target/release/cabinet-lab bench dispatch --commands 5000 --poll-ms 2 --history 1000000
	target/release/cabinet-lab bench retention

## docs/RELIABILITY.md's full-size figures: 400 crashes at the crash points, 4,900 hostile
## commands on 100 cabinets, 10,000 commands through 5 broker restarts with and without
## persistence. About 25 minutes. (The mutation run is its own target: mutants.)
reliability: deps toolchain
	$(CARGO) build --release -p cabinet-cli -p cabinet-lab
	CABINET_CRASH_ROUNDS=100 $(CARGO) test --release -p cabinet-cli --test kiosk a_crash_at_every_point -- --nocapture
	target/release/cabinet-lab fleet --cabinets 100 --commands 7000 --rate 400 --hostile 0.7
	target/release/cabinet-lab fleet --cabinets 100 --commands 10000 --rate 400 --hostile 0.2 --broker-restarts 5
	target/release/cabinet-lab fleet --cabinets 100 --commands 10000 --rate 400 --hostile 0.2 --broker-restarts 5 --broker-persistence

## docs/RELIABILITY.md's cluster figures: 100 cabinets on a real 3-node RabbitMQ cluster
## (quorum session queues), one node killed half way, three times over; then a 2-node
## cluster with mirrored session queues; then a rolling restart (every node killed and
## started again in turn) of each. About 11 minutes.
cluster: deps toolchain
	$(CARGO) build --release -p cabinet-lab
	for i in 1 2 3; do target/release/cabinet-lab fleet --cluster 3 --kill-node --cabinets 100 --commands 6000 --rate 200 --hostile 0.2 || exit 1; done
	target/release/cabinet-lab fleet --cluster 2 --session-queues mirrored --kill-node --cabinets 100 --commands 6000 --rate 200 --hostile 0.2
	target/release/cabinet-lab fleet --cluster 3 --rolling-restart --cabinets 100 --commands 20000 --rate 200 --hostile 0.2
	target/release/cabinet-lab fleet --cluster 2 --session-queues mirrored --rolling-restart --cabinets 100 --commands 20000 --rate 200 --hostile 0.2

## cargo-mutants over the engine, the journal, the command verifier and the config validator, against
## cabinet-core's unit tests (about 45 minutes on 2 cores). Report in mutants.out/.
mutants: toolchain
	@command -v cargo-mutants >/dev/null || $(CARGO) install cargo-mutants --locked
	$(CARGO) mutants -j 1 --no-shuffle -p cabinet-core --test-package cabinet-core --cargo-test-arg=--lib \
		-f 'crates/cabinet-core/src/engine/*.rs' -f 'crates/cabinet-core/src/journal/*.rs' \
		-f 'crates/cabinet-core/src/protocol/*.rs' -f 'crates/cabinet-core/src/config/*.rs'

## First paint and footprint of the window beside an empty Tauri 2 window, on a headless
## Weston (the cabinet's display is Wayland; --display x11 for Xvfb): the demo, then the
## field configuration after serving an order.
bench-window: deps toolchain
	@./scripts/install-deps.sh weston
	$(CARGO) build --release -p cabinet-kiosk-app -p empty-tauri-window -p cabinet-lab --features tauri/custom-protocol,cabinet-kiosk-app/demo
	target/release/cabinet-lab bench window --runs 5
	target/release/cabinet-lab bench window --runs 5 --field --orders 1

clean:
	$(CARGO) clean
