#!/usr/bin/env bash
# Build the cabinet-kiosk .deb: the window app, the `cabinet` CLI, the systemd units, the
# udev rule, the default config and the docs. Output: target/debian/cabinet-kiosk_<version>_<arch>.deb
#
#   scripts/build-deb.sh                 `ship` build (what `make deb` runs: Cargo.toml)
#   scripts/build-deb.sh --profile debug --no-build --fast
#                                        package binaries already built (the package test)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=ship
build=1
compress=(-Zxz)
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        --fast) compress=(-Zgzip -z1); shift ;;
        *) echo "usage: $0 [--profile ship|release|debug] [--no-build] [--fast]" >&2; exit 2 ;;
    esac
done

# DEB_VERSION overrides the workspace version (the package test builds an "upgrade").
version=${DEB_VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}
arch=$(dpkg --print-architecture)
bin="target/$profile"

if [ "$build" = 1 ]; then
    flag=()
    [ "$profile" = debug ] || flag=(--profile "$profile")
    # custom-protocol: the page is embedded in the binary (no dev server).
    cargo build "${flag[@]}" -p cabinet-kiosk-app -p cabinet-cli --features cabinet-kiosk-app/custom-protocol
fi
for b in cabinet cabinet-kiosk; do
    [ -x "$bin/$b" ] || { echo "missing $bin/$b: build it first (or drop --no-build)" >&2; exit 1; }
done

stage="target/debian/stage"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN"
install -D -m 0755 "$bin/cabinet" "$stage/usr/bin/cabinet"
install -D -m 0755 "$bin/cabinet-kiosk" "$stage/usr/bin/cabinet-kiosk"
install -D -m 0644 deploy/systemd/cabinet-kiosk.service "$stage/lib/systemd/system/cabinet-kiosk.service"
install -D -m 0644 deploy/systemd/cabinet-headless.service "$stage/lib/systemd/system/cabinet-headless.service"
install -D -m 0644 deploy/udev/60-cabinet-board.rules "$stage/lib/udev/rules.d/60-cabinet-board.rules"
install -D -m 0640 deploy/config.example.toml "$stage/etc/cabinet-kiosk/config.toml"
doc="$stage/usr/share/doc/cabinet-kiosk"
install -D -m 0644 README.md "$doc/README.md"
for f in OPERATIONS.md PROTOCOL.md CONFIG.md; do
    install -D -m 0644 "docs/$f" "$doc/$f"
done
install -D -m 0644 deploy/config.example.toml "$doc/examples/config.example.toml"
install -D -m 0644 deploy/mosquitto/mosquitto.conf "$doc/examples/mosquitto/mosquitto.conf"
install -D -m 0644 deploy/mosquitto/acl "$doc/examples/mosquitto/acl"
install -D -m 0644 deploy/emqx/authz.conf "$doc/examples/emqx/authz.conf"
install -D -m 0644 deploy/emqx/cabinet.hocon "$doc/examples/emqx/cabinet.hocon"
install -D -m 0644 deploy/rabbitmq/conf.d/50-cabinet-mqtt.conf "$doc/examples/rabbitmq/conf.d/50-cabinet-mqtt.conf"
install -D -m 0644 deploy/rabbitmq/definitions.example.json "$doc/examples/rabbitmq/definitions.example.json"
for s in postinst prerm postrm; do
    install -m 0755 "deploy/debian/$s" "$stage/DEBIAN/$s"
done
echo /etc/cabinet-kiosk/config.toml > "$stage/DEBIAN/conffiles"

# Shared-library dependencies of the two binaries, as Debian resolves them; plus cage for
# the touchscreen session and adduser for the service user.
shlibs=$(cd "$stage" && mkdir -p debian && touch debian/control &&
    dpkg-shlibdeps -O -e usr/bin/cabinet -e usr/bin/cabinet-kiosk 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p'; rm -rf debian)
[ -n "$shlibs" ] || { echo "dpkg-shlibdeps found no dependencies (is dpkg-dev installed?)" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: cabinet-kiosk
Version: $version
Architecture: $arch
Maintainer: Cabinet Kiosk developers <cabinet-kiosk@example.com>
Installed-Size: $size
Depends: $shlibs, adduser
Recommends: cage, fonts-noto-cjk, libharfbuzz-bin
Section: misc
Priority: optional
Homepage: https://example.com/cabinet-kiosk
Description: self-service vending and rental cabinet client
 The touchscreen app and headless service that run inside a vending or rental
 cabinet: a persistent MQTT subscription on the cabinet's own topic, signed and
 fresh dispense commands only, the motor or lock board driven over a serial
 port, exactly one honest outcome reported back, and a diagnostics screen for
 field technicians. Ships systemd units (touchscreen under cage, or headless),
 a udev rule for the board's USB-serial adapter and a commented config.
CONTROL

out="target/debian/cabinet-kiosk_${version}_${arch}.deb"
dpkg-deb --root-owner-group "${compress[@]}" --build "$stage" "$out" >/dev/null
echo "$out"
