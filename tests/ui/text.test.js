// The page's pure modules under node's own test runner (`make lint` runs it): how the
// text table is filled in and picked, and when a customer's visit ends. The table's
// completeness (both languages, every reason code) is checked by src-tauri/tests/strings.rs.

import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULT_LANG, TEXT, auditNote, fmt, namesChars, pick, scanHint, slotRanges, techError } from "../../ui/text.js";
import { visitEnded } from "../../ui/visit.js";

test("fmt fills every placeholder it has a value for and leaves the others", () => {
  assert.equal(fmt("货道 {n}", { n: 7 }), "货道 7");
  assert.equal(fmt("{a}-{b}-{a}", { a: 1, b: "x" }), "1-x-1");
  assert.equal(fmt("{missing} left", {}), "{missing} left");
  assert.equal(fmt(undefined), "");
});

test("the names font is cut for the config's words beyond ASCII, each character once", () => {
  const snap = { cabinet_name: "天河 B 出口", items: [{ product: "雨伞" }, { product: "Power bank" }, { product: "雨衣" }] };
  assert.equal(namesChars(snap, { nearby: "B1 电梯旁", support_phone: "400-123" }), "伞出口天旁梯河电衣雨");
  assert.equal(namesChars({ cabinet_name: "Gate B", items: [{ product: "Umbrella" }] }, null), "");
  assert.equal(namesChars(null, null), "");
  assert.equal(namesChars(null, null, ["李工", "Wang"]), "工李");
});

test("pick words a screen per board kind and passes plain strings through", () => {
  const zh = TEXT["zh-CN"];
  assert.equal(fmt(pick(zh.place, "lockboard"), { n: 3 }), "3 号柜门");
  assert.equal(fmt(pick(zh.place, "vmc"), { n: 3 }), "货道 3");
  assert.equal(pick(zh.failed_charge, "lockboard"), zh.failed_charge);
  assert.equal(fmt(pick(TEXT.en.take_title, "lockboard"), { n: 12 }), "Door 12 is open: take your item and close the door");
});

test("the scan hint names the configured apps in each language", () => {
  const zh = TEXT["zh-CN"];
  const en = TEXT.en;
  assert.equal(scanHint(zh, []), zh.scan_any);
  assert.equal(scanHint(en, undefined), en.scan_any);
  assert.equal(scanHint(zh, ["wechat"]), "请用微信扫码");
  assert.equal(scanHint(zh, ["wechat", "alipay"]), "请用微信或支付宝扫码");
  assert.equal(scanHint(zh, ["wechat", "alipay", "unionpay"]), "请用微信、支付宝或云闪付扫码");
  assert.equal(scanHint(en, ["alipay", "wechat"]), "Scan with Alipay or WeChat");
  assert.equal(scanHint(en, ["wechat", "alipay", "unionpay"]), "Scan with WeChat, Alipay or UnionPay");
});

test("a visit starts in Chinese", () => {
  assert.equal(DEFAULT_LANG, "zh-CN");
  assert.ok(TEXT[DEFAULT_LANG]);
});

const snap = (screen, qr_nonce) => ({ screen, qr_nonce });

test("a visit ends back at idle after an order, and when a next order replaces a finished one", () => {
  const seen = { qrChangesSinceTouch: 0 };
  assert.equal(visitEnded(snap("take_item"), snap("idle", "a"), seen), true);
  assert.equal(visitEnded(snap("failed"), snap("idle", "a"), seen), true);
  assert.equal(visitEnded(snap("failed"), snap("dispensing"), seen), true);
  assert.equal(visitEnded(snap("take_item"), snap("accepted"), seen), true);
  // An order's own screens follow each other within one visit.
  assert.equal(visitEnded(snap("accepted"), snap("dispensing"), seen), false);
  assert.equal(visitEnded(snap("dispensing"), snap("take_item"), seen), false);
  assert.equal(visitEnded(snap("dispensing"), snap("failed"), seen), false);
});

test("on idle, a visit outlives one replaced QR code and ends with the second", () => {
  const seen = { qrChangesSinceTouch: 0 };
  assert.equal(visitEnded(snap("idle", "a"), snap("idle", "a"), seen), false, "same code");
  assert.equal(visitEnded(snap("idle", "a"), snap("idle", "b"), seen), false, "one replaced");
  assert.equal(seen.qrChangesSinceTouch, 1);
  assert.equal(visitEnded(snap("idle", "b"), snap("idle", "c"), seen), true, "the touched code is dead");
});

test("an audit row's detail is worded in the panel's language, and kept when it has no words", () => {
  const zh = TEXT["zh-CN"];
  assert.equal(auditNote(zh, { kind: "restock", slot: 11, before: 0, after: 10 }), "货道 11：0 → 10");
  assert.equal(auditNote(zh, { kind: "slot_test", slot: 3, outcome: "dispensed" }), `货道 3：${zh.outcomes.dispensed}`);
  assert.equal(
    auditNote(TEXT.en, { kind: "slot_test", slot: 13, outcome: "door_opened", board: ["wall-3", 4] }),
    `Slot 13: ${TEXT.en.outcomes.door_opened} · wall-3 #4`,
  );
  assert.equal(auditNote(zh, { kind: "logout", why: "idle" }), zh.logout_whys.idle);
  assert.equal(auditNote(TEXT.en, { kind: "lockout", secs: 600 }), "600 s");
  assert.equal(auditNote(zh, { kind: "empty" }), "");
  assert.equal(auditNote(zh, { kind: "text", text: "/media/usb/x.tar" }), "/media/usb/x.tar");
  // A newer core's kind this page does not know: the stored text.
  assert.equal(auditNote(zh, { kind: "novel", x: 1 }, "slot 1: novel"), "slot 1: novel");
});

test("a refused technician action is worded from its fields; a failure keeps its detail", () => {
  const zh = TEXT["zh-CN"];
  const en = TEXT.en;
  const over = { code: "invalid", message: "slot 4 holds at most 8", refusal: { why: "over_capacity", slot: 4, capacity: 8 } };
  assert.equal(techError(zh, over), "货道 4 最多放 8 件");
  assert.equal(techError(en, over), "Slot 4 holds at most 8");
  assert.equal(techError(zh, { code: "busy", message: "busy: x", refusal: { why: "slot_test_running" } }), zh.refusals.slot_test_running);
  assert.equal(techError(zh, { code: "failed", message: "disk full" }), `${zh.errors.failed} (disk full)`);
  assert.equal(techError(zh, { code: "not_logged_in", message: "no technician is logged in" }), zh.errors.not_logged_in);
  assert.equal(techError(zh, undefined), zh.errors.failed);
});

test("a board's slots read as ranges", () => {
  assert.equal(slotRanges([]), "");
  assert.equal(slotRanges([7]), "7");
  assert.equal(slotRanges([1, 2, 3, 4]), "1–4");
  assert.equal(slotRanges([1, 2, 3, 5, 7, 8]), "1–3, 5, 7–8");
});
