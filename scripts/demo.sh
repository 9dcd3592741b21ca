#!/usr/bin/env bash
# The demo, until the kiosk window exists: a simulated board on a pseudo-terminal and a
# scripted technician session against it, for both protocols, faults included.
set -euo pipefail
BIN=${1:-target/release/cabinet}
tmp=$(mktemp -d)
cleanup() { [ -n "${SIM:-}" ] && kill "$SIM" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Run each board command exactly once (a second run would be a second physical action) and
# show its result line.
show() {
    echo "\$ cabinet $*"
    local out
    out=$(RUST_LOG=error "$BIN" "$@" 2>&1) || true
    jq -c '.result' <<<"$out" 2>/dev/null || echo "$out"
}

start_sim() {
    mkfifo "$tmp/ctl.$1"
    "$BIN" sim-board "${@:2}" <"$tmp/ctl.$1" >"$tmp/out.$1" 2>/dev/null &
    SIM=$!
    exec 9>"$tmp/ctl.$1"
    while [ ! -s "$tmp/out.$1" ]; do sleep 0.1; done
    PORT=$(head -1 "$tmp/out.$1")
    echo "simulated board on $PORT"
}
stop_sim() { echo quit >&9; exec 9>&-; wait "$SIM" 2>/dev/null || true; SIM=; }

step "VMC spiral-motor board (board polls every 200 ms)"
start_sim vmc --protocol vmc
show board --port "$PORT" --protocol vmc status
show board --port "$PORT" --protocol vmc dispense 11
echo "fault jam" >&9
show board --port "$PORT" --protocol vmc dispense 12
echo "clear" >&9; echo "fault repeated-packno" >&9
show board --port "$PORT" --protocol vmc dispense 13
echo "stats" >&9; sleep 0.3
echo "simulator counted: $(tail -1 "$tmp/out.vmc")"
stop_sim

step "8A/80 lock board"
start_sim lock --protocol lockboard
show board --port "$PORT" --protocol lockboard unlock 3
show board --port "$PORT" --protocol lockboard status
echo "fault door-stuck" >&9
show board --port "$PORT" --protocol lockboard unlock 5
stop_sim

step "Try it yourself"
echo "  $BIN sim-board --protocol vmc        # prints a port, then type: fault jam | stats | unplug | replug"
echo "  $BIN board --port PORT --protocol vmc dispense 11"
