// The page's words: the table in strings.js (both languages), filled in and picked here.
// The customer's language is `state.lang` (page.js); a visit starts in DEFAULT_LANG.
// No DOM and no Tauri in this module: `make test` runs its functions under node.

import STRINGS from "./strings.js";

export const DEFAULT_LANG = "zh-CN";
export const TEXT = STRINGS;

/** `s` with each `{name}` replaced by `vars[name]` (a name not in `vars` is left as is). */
export function fmt(s, vars = {}) {
  return String(s ?? "").replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

/** A table entry, or the board kind's own where the wording differs per board. */
export function pick(v, board) {
  return v && typeof v === "object" ? v[board] : v;
}

/** "请用微信或支付宝扫码", "Scan with WeChat, Alipay or UnionPay"; `apps` from kiosk.scan_with. */
export function scanHint(tx, apps) {
  if (!apps || !apps.length) return tx.scan_any;
  const names = apps.map((a) => tx.apps[a] || a);
  const last = names.pop();
  const list = names.length ? names.join(tx.list_sep) + tx.list_or + last : last;
  return fmt(tx.scan_with, { apps: list });
}
