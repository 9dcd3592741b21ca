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

/**
 * The characters of the config's words on the screens (the cabinet's and the products'
 * names, where the contact is, and `more`: the technicians' names) that the page's own
 * font cannot have: all but ASCII, each once, in code point order. The app cuts a font
 * for them (`names_font`).
 * @param {any} snapshot
 * @param {any} info
 * @param {string[]} more
 */
export function namesChars(snapshot, info, more = []) {
  const words = [...more];
  if (snapshot) {
    words.push(snapshot.cabinet_name || "", snapshot.product || "");
    for (const item of snapshot.items || []) words.push(item.product || "");
  }
  if (info) words.push(info.nearby || "", info.support_phone || "");
  const chars = new Set();
  for (const w of words) for (const ch of w) if ((ch.codePointAt(0) ?? 0) > 0x7f) chars.add(ch);
  return [...chars].sort((a, b) => (a.codePointAt(0) ?? 0) - (b.codePointAt(0) ?? 0)).join("");
}

/** "请用微信或支付宝扫码", "Scan with WeChat, Alipay or UnionPay"; `apps` from kiosk.scan_with. */
export function scanHint(tx, apps) {
  if (!apps || !apps.length) return tx.scan_any;
  const names = apps.map((a) => tx.apps[a] || a);
  const last = names.pop();
  const list = names.length ? names.join(tx.list_sep) + tx.list_or + last : last;
  return fmt(tx.scan_with, { apps: list });
}

/**
 * A technician's audit row's detail in the panel's language. `note` is the core's reading
 * of it ({kind, ...}); `detail` the text as stored, shown when the note has no words here.
 */
export function auditNote(tx, note, detail = "") {
  if (!note || note.kind === "empty") return "";
  const words = tx.audit_notes[note.kind];
  if (note.kind === "text" || !words) return note.text ?? detail;
  const vars = { ...note };
  if (note.kind === "slot_test") vars.outcome = tx.outcomes[note.outcome] || note.outcome;
  if (note.kind === "logout") vars.why = tx.logout_whys[note.why] || note.why;
  const said = fmt(words, vars);
  // On a cabinet of several boards, a slot test names the board and channel that acted.
  if (note.kind === "slot_test" && Array.isArray(note.board)) return `${said} · ${note.board[0]} #${note.board[1]}`;
  return said;
}

/**
 * Why a technician's action did not happen, in the panel's language. `err` is the IPC
 * error {code, message, refusal?}: a refusal is worded from its fields; a failure keeps
 * the core's (English) detail in brackets, for a support ticket.
 */
export function techError(tx, err) {
  const refusal = err && err.refusal && tx.refusals[err.refusal.why];
  if (refusal) return fmt(refusal, err.refusal);
  const kind = (err && tx.errors[err.code]) || tx.errors.failed;
  return err && err.code === "failed" && err.message ? `${kind} (${err.message})` : kind;
}

/**
 * A board's slots as a technician reads a wiring sheet: "1–24", "1–8, 11, 13–16".
 * `slots` ascending.
 */
export function slotRanges(slots) {
  const out = [];
  for (const n of slots) {
    const last = out[out.length - 1];
    if (last && n === last[1] + 1) last[1] = n;
    else out.push([n, n]);
  }
  return out.map(([a, b]) => (a === b ? String(a) : `${a}–${b}`)).join(", ");
}
