#!/usr/bin/env bash
# `make demo-boards`: the parts under the window, in a terminal: a simulated board on a
# pseudo-terminal and a scripted technician session against it (both protocols, faults
# included), then the command path with a real Mosquitto, the headless kiosk and `cabinet send`.
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

step "The command path: signed command -> cabinet's own topic -> motor -> one reply"
# A real Mosquitto with the shipped ACL, a simulated VMC board, the headless kiosk, and the
# backend developer's `cabinet send`.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
for u in C001 C002 backend; do
    mosquitto_passwd -b $([ "$u" = C001 ] && echo -c) "$tmp/passwd" "$u" "demo-$u" >/dev/null
done
cat >"$tmp/mosquitto.conf" <<CONF
user $(id -un)
listener $port 127.0.0.1
allow_anonymous false
password_file $tmp/passwd
acl_file $(pwd)/deploy/mosquitto/acl
CONF
mosquitto -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
BROKER=$!
start_sim kiosk --protocol vmc --link "$tmp/board" --poll-ms 50 --motor-ms 800
echo demo-C001 >"$tmp/c001.pw"
echo demo-backend >"$tmp/backend.pw"
keys=$("$BIN" keygen --kid demo --out "$tmp/backend.key")
cat >"$tmp/config.toml" <<CONF
machine_code = "C001"
[mqtt]
url = "mqtt://127.0.0.1:$port"
password_file = "c001.pw"
[keys]
demo = "$(jq -r .public_key <<<"$keys")"
[board]
protocol = "vmc"
port = "$tmp/board"
[[slots]]
slot = 11
product = "Phone charger"
capacity = 10
initial_count = 3
[journal]
path = "journal.sqlite3"
[logs]
dir = "logs"
[kiosk]
heartbeat_secs = 1
CONF
"$BIN" run --quiet --config "$tmp/config.toml" &
KIOSK=$!
send() { RUST_LOG=error "$BIN" send 2>/dev/null --broker "mqtt://127.0.0.1:$port" --password-file "$tmp/backend.pw" --key "$tmp/backend.key" --kid demo --wait 20s "$@" || true; }
# Wait until the kiosk is in service: its log says the board answers.
for _ in $(seq 100); do
    grep -qs "board_up=true" "$tmp"/logs/* && break
    sleep 0.1
done
grep -qs "board_up=true" "$tmp"/logs/* || { echo "the kiosk did not come into service; its log:"; tail -20 "$tmp"/logs/*; exit 1; }
echo "\$ cabinet send --cabinet C001 --slot 11 ...    # replies as they arrive:"
send --cabinet C001 --slot 11 | jq -c '{state, reason, log_id, evidence}'
echo
echo "\$ cabinet send --cabinet C001 --slot 11 --cmd-id same-1 (twice: the second gets the stored reply)"
send --cabinet C001 --slot 11 --cmd-id same-1 | tail -1 | jq -c '{cmd_id, state, seq}'
send --cabinet C001 --slot 11 --cmd-id same-1 | tail -1 | jq -c '{cmd_id, state, seq}' 
echo
echo "A command for cabinet C002, delivered to C001's topic anyway (the incident), is refused:"
RUST_LOG=error "$BIN" send --broker "mqtt://127.0.0.1:$port" --password-file "$tmp/backend.pw" --key "$tmp/backend.key" --kid demo --cabinet C002 --slot 11 --print-token >"$tmp/foreign"
(RUST_LOG=error timeout 5 "$BIN" watch --broker "mqtt://127.0.0.1:$port" --password-file "$tmp/backend.pw" --cabinet C001 2>/dev/null \
    | grep -m1 '"reason":"wrong_target"' | jq -c '.payload | {state, reason, cmd_id}' || true) &
WATCH=$!
sleep 1 # let the watcher subscribe (a demo, not a test)
mosquitto_pub -p "$port" -u backend -P demo-backend -q 1 -t cabinet/v1/C001/cmd -f "$tmp/foreign"
wait "$WATCH"
echo "stats" >&9; sleep 0.3
echo "simulator counted: $(tail -1 "$tmp/out.kiosk" | jq -c '{motor_actions, actions_by_slot}')"
kill "$KIOSK" 2>/dev/null; wait "$KIOSK" 2>/dev/null || true
stop_sim
kill "$BROKER" 2>/dev/null; wait "$BROKER" 2>/dev/null || true

step "Try it yourself"
echo "  $BIN sim-board --protocol vmc        # prints a port, then type: fault jam | stats | unplug | replug"
echo "  $BIN board --port PORT --protocol vmc dispense 11"
