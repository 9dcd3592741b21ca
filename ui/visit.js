// When a customer's visit ends: the page then drops the language they chose. No DOM and
// no Tauri here: `make test` runs it under node (tests/ui/).
//
// Every visit starts in DEFAULT_LANG. A visit ends when the cabinet is back at idle after
// an order; when a next order follows a finished one with no idle screen between them (a
// next customer); or, on the idle screen, once the QR code shown at the last touch has
// been replaced twice. Each code is valid for a session lifetime and replaced every half
// of one, so by then no order can come from it: paying on the phone takes as long as it
// takes, no clock of the page's own cuts it short.

const FINISHED = new Set(["take_item", "put_back", "failed"]);
const ORDER = new Set(["accepted", "dispensing"]);

/**
 * Whether the visit ended between the snapshots `prev` and `snap`. `seen` holds
 * `qrChangesSinceTouch`, the idle codes replaced since the screen was last touched,
 * which this counts on (the page zeroes it on a touch and when a visit ends).
 */
export function visitEnded(prev, snap, seen) {
  if (snap.screen === "idle" && prev.screen !== "idle") return true;
  if (FINISHED.has(prev.screen) && ORDER.has(snap.screen)) return true;
  // Idle to idle (the first test returned otherwise): count the replaced QR codes.
  if (snap.screen === "idle" && snap.qr_nonce !== prev.qr_nonce) seen.qrChangesSinceTouch += 1;
  return seen.qrChangesSinceTouch >= 2;
}
