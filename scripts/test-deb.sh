#!/usr/bin/env bash
# The package test (part of `make test`): build the .deb from the binaries `cargo test`
# built, install it into a clean Debian root made by debootstrap, check the files, the
# user and the permissions it installed, let `systemd-analyze verify` check its units, and
# run the headless unit's own commands in that root, as its user, against a real Mosquitto
# and the board simulator: READY=1 arrives, a signed command dispenses exactly once, SIGTERM
# stops it cleanly. Then install a newer version over it: config and journal stay, and the
# cabinet still knows the command it served.
#
# Needs root (chroot, mounts) and the Debian mirror (debootstrap; the base system is cached
# in target/debootstrap for the next run).
#
# CABINET_DEB_FULL=1 installs with apt instead, dependencies and all (WebKitGTK, cage,
# fonts: ~1.7 GB more in the root, a few minutes), and checks every library of both
# binaries resolves. Not part of `make test`; see docs/OPERATIONS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'test-deb: %s\n' "$*"; }
fail() { printf 'test-deb: FAIL: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (chroot and mounts)"

BIN=target/debug/cabinet
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/cabinet-deb-test.XXXXXX)
root=$work/root
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    exec 9>&- 2>/dev/null || true
    for m in "$root/proc" "$root/dev/pts" "$root/dev"; do
        mountpoint -q "$m" && umount -l "$m"
    done
    rm -rf "$work"
}
trap cleanup EXIT

# Wait (up to $2 s) until file $1 has a line matching $3.
wait_for() {
    local deadline=$((SECONDS + $2))
    until grep -q -- "$3" "$1" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || fail "no '$3' in $1 within $2 s: $(tail -5 "$1" 2>/dev/null)"
        sleep 0.1
    done
}

# --- the packages ------------------------------------------------------------------
deb=$(scripts/build-deb.sh --profile debug --no-build --fast)
deb2=$(DEB_VERSION=0.1.0+upgrade1 scripts/build-deb.sh --profile debug --no-build --fast)
say "built $deb and $deb2"

# --- a clean Debian root -------------------------------------------------------------
cache=target/debootstrap
tarball=$cache/bookworm-minbase-adduser-systemd.tgz
if [ ! -s "$tarball" ]; then
    mkdir -p "$cache"
    say "downloading a minimal Debian 12 (once; cached in $tarball)"
    debootstrap --variant=minbase --include=adduser,systemd --make-tarball="$tarball" \
        bookworm "$work/download" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
        fail "debootstrap --make-tarball failed: $(tail -5 "$work/debootstrap.log")"
    rm -rf "$work/download"
fi
debootstrap --variant=minbase --include=adduser,systemd --unpack-tarball="$(realpath "$tarball")" \
    bookworm "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
    fail "debootstrap failed: $(tail -5 "$work/debootstrap.log")"
say "clean Debian root in $root"

# --- install -------------------------------------------------------------------------
cp "$deb" "$deb2" "$root/tmp/"
# The touchscreen app's GUI libraries are not in a minimal root; everything else must be.
gui="libcairo2 libdbus-1-3 libgdk-pixbuf-2.0-0 libglib2.0-0 libgtk-3-0 libjavascriptcoregtk-4.1-0 libsoup-3.0-0 libwebkit2gtk-4.1-0"
if [ "${CABINET_DEB_FULL:-0}" = 1 ]; then
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    { chroot "$root" apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -q "/tmp/$(basename "$deb")"; } \
        >"$work/dpkg.log" 2>&1 || fail "apt-get install failed: $(tail -20 "$work/dpkg.log")"
    for b in cabinet cabinet-kiosk; do
        if chroot "$root" ldd "/usr/bin/$b" | grep 'not found'; then fail "$b has unresolved libraries"; fi
    done
    say "installed with apt, every dependency resolved (cage, WebKitGTK, fonts); both binaries link"
else
    chroot "$root" dpkg --force-depends -i "/tmp/$(basename "$deb")" >"$work/dpkg.log" 2>&1 ||
        fail "dpkg -i failed: $(cat "$work/dpkg.log")"
fi
chroot "$root" dpkg-query -W -f='${Status}\n' cabinet-kiosk | grep -qx 'install ok installed' ||
    fail "cabinet-kiosk is not installed"
deps=$(chroot "$root" dpkg-query -W -f='${Depends}\n' cabinet-kiosk | tr ',' '\n' | sed 's/(.*//; s/ //g')
for d in $deps; do
    if ! chroot "$root" dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q 'ok installed'; then
        case " $gui " in *" $d "*) ;; *) fail "dependency $d is missing and is not a GUI library" ;; esac
    fi
done
say "installed; the unmet dependencies are only the window's GUI libraries"

# --- files, user, permissions --------------------------------------------------------
check_stat() { # path mode owner group
    local got
    got=$(chroot "$root" stat -c '%a %U %G' "$1" 2>/dev/null) || fail "$1 missing"
    [ "$got" = "$2 $3 $4" ] || fail "$1 is '$got', want '$2 $3 $4'"
}
check_stat /usr/bin/cabinet 755 root root
check_stat /usr/bin/cabinet-kiosk 755 root root
# Neither the lab nor the demo is shipped: no lab binary, no demo broker (rumqttd) linked
# into what is.
[ ! -e "$root/usr/bin/cabinet-lab" ] && [ ! -e "$root/usr/bin/cabinet-demo" ] ||
    fail "the package carries the lab or the demo binary"
for b in cabinet cabinet-kiosk; do
    if grep -q rumqttd "$root/usr/bin/$b"; then fail "/usr/bin/$b links the demo broker (rumqttd)"; fi
done
check_stat /etc/cabinet-kiosk 750 root cabinet
check_stat /etc/cabinet-kiosk/config.toml 640 root cabinet
check_stat /var/lib/cabinet-kiosk 750 cabinet cabinet
check_stat /var/log/cabinet-kiosk 750 cabinet cabinet
check_stat /lib/systemd/system/cabinet-headless.service 644 root root
check_stat /lib/systemd/system/cabinet-kiosk.service 644 root root
check_stat /lib/udev/rules.d/60-cabinet-board.rules 644 root root
check_stat /usr/share/doc/cabinet-kiosk/OPERATIONS.md 644 root root
pw=$(chroot "$root" getent passwd cabinet) || fail "no user cabinet"
uid=$(echo "$pw" | cut -d: -f3)
[ "$uid" -lt 1000 ] || fail "cabinet is not a system user (uid $uid)"
echo "$pw" | grep -q ':/usr/sbin/nologin$' || fail "cabinet can log in: $pw"
chroot "$root" id -nG cabinet | tr ' ' '\n' | grep -qx dialout || fail "cabinet is not in dialout"
chroot "$root" grep -qx /etc/cabinet-kiosk/config.toml /var/lib/dpkg/info/cabinet-kiosk.conffiles ||
    fail "config.toml is not a conffile"
grep -q 'SYMLINK+="cabinet-board"' "$root/lib/udev/rules.d/60-cabinet-board.rules" || fail "udev rule has no symlink"
say "files, user cabinet (uid $uid, nologin, dialout) and permissions are right"

# --- the units -----------------------------------------------------------------------
# cage (the touchscreen session's compositor) is a Recommends, not in a minimal root:
# the kiosk unit is verified with a stand-in for its binary, the headless one as is.
verify_out=$work/verify.log
if ! systemd-analyze verify --root="$root" /lib/systemd/system/cabinet-headless.service >"$verify_out" 2>&1 || [ -s "$verify_out" ]; then
    fail "systemd-analyze verify cabinet-headless.service: $(cat "$verify_out")"
fi
stub=0
if [ ! -e "$root/usr/bin/cage" ]; then
    printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/cage" && chmod 755 "$root/usr/bin/cage" && stub=1
fi
if ! systemd-analyze verify --root="$root" /lib/systemd/system/cabinet-kiosk.service >"$verify_out" 2>&1 || [ -s "$verify_out" ]; then
    fail "systemd-analyze verify cabinet-kiosk.service: $(cat "$verify_out")"
fi
[ $stub = 1 ] && rm -f "$root/usr/bin/cage"
say "systemd-analyze verify accepts both units"

# --- run the headless unit's commands in the root -------------------------------------
unit=$root/lib/systemd/system/cabinet-headless.service
pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
start=$(sed -n 's/^ExecStart=//p' "$unit")
[ -n "$pre" ] && [ -n "$start" ] || fail "cannot read ExecStartPre/ExecStart from the unit"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
mount -t proc proc "$root/proc"

# A broker and a board, on the host.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser root\n' "$port" >"$work/mosquitto.conf"
/usr/sbin/mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
mkfifo "$work/sim.ctl"
# Appending, so the test can empty the file between questions.
"$BIN" sim-board --protocol vmc --motor-ms 50 <"$work/sim.ctl" >>"$work/sim.out" 2>&1 &
pids+=($!)
exec 9>"$work/sim.ctl"
wait_for "$work/sim.out" 10 '^/dev/pts/'
pts=$(head -1 "$work/sim.out")
chgrp dialout "$pts" && chmod 660 "$pts"

# Provision the cabinet as an operator would.
"$BIN" keygen --kid k1 --out "$work/backend.key" >"$work/keygen.json"
public=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["public_key"])' "$work/keygen.json")
cat >"$root/etc/cabinet-kiosk/config.toml" <<CONFIG
machine_code = "DEB-0001"
[mqtt]
url = "mqtt://127.0.0.1:$port"
[keys]
k1 = "$public"
[board]
protocol = "vmc"
port = "$pts"
[[slots]]
slot = 1
product = "Umbrella"
capacity = 10
initial_count = 10
[journal]
path = "/var/lib/cabinet-kiosk/journal.sqlite3"
[logs]
dir = "/var/log/cabinet-kiosk"
CONFIG
sum_before=$(sha256sum <"$root/etc/cabinet-kiosk/config.toml")

as_cabinet() { chroot --userspec=cabinet:cabinet --groups=dialout "$root" env -i PATH=/usr/bin:/bin "$@"; }

# ExecStartPre on a broken config: refuses, naming the field.
cp "$root/etc/cabinet-kiosk/config.toml" "$work/good.toml"
sed -i 's/^protocol = "vmc"/protocol = "serial-magic"/' "$root/etc/cabinet-kiosk/config.toml"
# shellcheck disable=SC2086
if as_cabinet $pre >"$work/pre.log" 2>&1; then fail "config check accepted a bad board.protocol"; fi
grep -q 'board.protocol' "$work/pre.log" || fail "config check did not name board.protocol: $(cat "$work/pre.log")"
cp "$work/good.toml" "$root/etc/cabinet-kiosk/config.toml"
# shellcheck disable=SC2086
as_cabinet $pre >"$work/pre.log" 2>&1 || fail "ExecStartPre failed: $(cat "$work/pre.log")"
say "ExecStartPre refuses a bad config (names board.protocol) and accepts the provisioned one"

run_headless() { # the unit's ExecStart, as its user, with systemd's notification socket
    rm -f "$root/run/notify" "$work/notify.log"
    mkdir -p "$root/run"
    socat -u UNIX-RECV:"$root/run/notify" "OPEN:$work/notify.log,creat,append" &
    pids+=($!)
    local deadline=$((SECONDS + 10))
    until [ -S "$root/run/notify" ]; do
        [ $SECONDS -lt $deadline ] || fail "socat did not create the notify socket"
        sleep 0.05
    done
    chmod 666 "$root/run/notify"
    # shellcheck disable=SC2086
    chroot --userspec=cabinet:cabinet --groups=dialout "$root" env -i PATH=/usr/bin:/bin \
        NOTIFY_SOCKET=/run/notify WATCHDOG_USEC=2000000 $start >"$work/run.log" 2>&1 &
    kiosk=$!
    pids+=($kiosk)
    wait_for "$work/notify.log" 30 'READY=1'
}

run_headless
wait_for "$work/notify.log" 10 'WATCHDOG=1'
say "the headless unit's ExecStart reached READY=1 (subscribed, board answering) and pings the watchdog"

send() { # cmd-id -> the send's exit code
    "$BIN" send --broker "mqtt://127.0.0.1:$port" --cabinet DEB-0001 --slot 1 \
        --key "$work/backend.key" --kid k1 --cmd-id "$1" --wait 20s >"$work/send-$1.json" 2>&1
}
motor_actions() { # asks the simulator; prints its count
    : >"$work/sim.out"
    echo stats >&9
    wait_for "$work/sim.out" 10 '"motor_actions"'
    sed -n 's/.*"motor_actions": *\([0-9]*\).*/\1/p' "$work/sim.out" | head -1
}
send deb-test-1 || fail "the command did not succeed: $(cat "$work/send-deb-test-1.json")"
[ "$(motor_actions)" = 1 ] || fail "motor actions are not 1: $(cat "$work/sim.out")"
say "a signed command dispensed once"

kill -TERM "$kiosk"
wait "$kiosk" || fail "cabinet run did not stop cleanly on SIGTERM: $(tail -5 "$work/run.log")"
grep -q 'STOPPING=1' "$work/notify.log" || fail "no STOPPING=1"
ls "$root"/var/log/cabinet-kiosk/cabinet.*.log >/dev/null 2>&1 || fail "no log file in /var/log/cabinet-kiosk"
chroot "$root" stat -c '%U' /var/lib/cabinet-kiosk/journal.sqlite3 | grep -qx cabinet || fail "journal not owned by cabinet"
say "SIGTERM stops it cleanly (STOPPING=1); journal and logs are where the package put them"

# --- upgrade ---------------------------------------------------------------------------
chroot "$root" dpkg --force-depends -i "/tmp/$(basename "$deb2")" >"$work/dpkg2.log" 2>&1 ||
    fail "upgrade failed: $(cat "$work/dpkg2.log")"
chroot "$root" dpkg-query -W -f='${Version}' cabinet-kiosk | grep -qx '0.1.0+upgrade1' || fail "upgrade did not install"
[ "$(sha256sum <"$root/etc/cabinet-kiosk/config.toml")" = "$sum_before" ] || fail "the upgrade changed the config"
check_stat /etc/cabinet-kiosk/config.toml 640 root cabinet
check_stat /var/lib/cabinet-kiosk/journal.sqlite3 644 cabinet cabinet
run_headless
# The same command id again: the stored outcome, no second motor action.
send deb-test-1 || fail "the retried command did not report its stored success"
[ "$(motor_actions)" = 1 ] || fail "the retry ran the motor again: $(cat "$work/sim.out")"
kill -TERM "$kiosk"
wait "$kiosk" || fail "the upgraded kiosk did not stop cleanly"
say "upgrade to 0.1.0+upgrade1 kept config, journal and user; the cabinet still knows its command"
say "PASS"
