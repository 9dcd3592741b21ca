#!/usr/bin/env bash
# `make demo`: the kiosk on one machine with nothing set up. The window app runs its demo
# mode (embedded MQTT broker, board simulator on a pty, demo signing key, and a "simulate
# scan" button that sends a signed command the way a backend would). Without a display it
# runs the same demo headless: the screen is printed as text and Enter plays a scan.
#
#   scripts/demo.sh [release-dir]       (default target/release)
#   CABINET_DEMO=headless scripts/demo.sh   force the headless variant
#   CABINET_DEMO_LAYOUT=wall scripts/demo.sh   a locker wall (three lock boards on one
#                                           RS-485 bus) instead of a vending cabinet
set -euo pipefail
DIR=${1:-target/release}
LAYOUT=${CABINET_DEMO_LAYOUT:-vending}

if [ "${CABINET_DEMO:-}" != headless ] && [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    echo "Cabinet Kiosk demo: the window opens fullscreen. Tap \"simulate scan\" (bottom right)"
    echo "to play a customer; the simulated board's motor count is shown beside it."
    echo "Close with Ctrl-C here (customers cannot close the kiosk window)."
    exec "$DIR/cabinet-kiosk" --demo --demo-layout "$LAYOUT"
fi

echo "No display found (DISPLAY/WAYLAND_DISPLAY unset): running the headless demo."
if [ -t 0 ]; then
    exec "$DIR/cabinet-demo" --layout "$LAYOUT"
else
    # Not interactive (CI, a pipe): play three scans and exit with their verdict.
    exec "$DIR/cabinet-demo" --layout "$LAYOUT" --scans 3
fi
