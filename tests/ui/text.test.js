// The page's pure modules under node's own test runner (`make lint` runs it): how the
// text table is filled in and picked, and when a customer's visit ends. The table's
// completeness (both languages, every reason code) is checked by src-tauri/tests/strings.rs.

import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULT_LANG, TEXT, fmt, pick, scanHint } from "../../ui/text.js";
import { visitEnded } from "../../ui/visit.js";

test("fmt fills every placeholder it has a value for and leaves the others", () => {
  assert.equal(fmt("货道 {n}", { n: 7 }), "货道 7");
  assert.equal(fmt("{a}-{b}-{a}", { a: 1, b: "x" }), "1-x-1");
  assert.equal(fmt("{missing} left", {}), "{missing} left");
  assert.equal(fmt(undefined), "");
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
