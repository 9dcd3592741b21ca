// Cabinet Kiosk touchscreen. Renders the one Snapshot the core publishes (`get_snapshot`
// once at load, then `next_snapshot`, one waiting request at a time). No business logic:
// every decision is in cabinet-core; this page only words and draws what it is given.
// This file: the customer's screens; text.js the strings, page.js what the modules
// share, tech.js the technician's panel.

import { DEFAULT_LANG, fmt, pick, scanHint } from "./text.js";
import { visitEnded } from "./visit.js";
import { $, $$, invoke, loadNamesFont, setData, setHidden, setText, state, t } from "./page.js";
import { techCorner, techInput, techTick, techViews } from "./tech.js";

const DISPENSE_EXPECTED_MS = 8_000; // progress bar pacing; the real end comes as a snapshot

// ---- kiosk lock-down ---------------------------------------------------------------

function lockDown() {
  const block = (e) => e.preventDefault();
  document.addEventListener("contextmenu", block);
  document.addEventListener("selectstart", block);
  document.addEventListener("dragstart", block);
  // Pinch (WebKit gesture events and multi-touch moves) and ctrl/cmd + wheel zoom.
  document.addEventListener("gesturestart", block, { passive: false });
  document.addEventListener("gesturechange", block, { passive: false });
  document.addEventListener(
    "touchmove",
    (e) => {
      if (e.touches.length > 1) e.preventDefault();
    },
    { passive: false },
  );
  document.addEventListener(
    "wheel",
    (e) => {
      if (e.ctrlKey || e.metaKey) e.preventDefault();
    },
    { passive: false },
  );
  // Zoom, reload, find, print, devtools, new window, close keys.
  document.addEventListener("keydown", (e) => {
    const mod = e.ctrlKey || e.metaKey;
    const zoomKey = ["+", "-", "=", "_", "0"].includes(e.key);
    const blockedMod = mod && (zoomKey || "rRfFpPnNwWuUsSoOgG".includes(e.key) || e.shiftKey);
    const blockedPlain = ["F5", "F11", "F12", "F3", "F7"].includes(e.key);
    if (blockedMod || blockedPlain || (e.altKey && e.key === "F4")) e.preventDefault();
  });
}

// ---- language ------------------------------------------------------------------------

// A customer's language lasts their visit (visit.js says when one ends).
function endVisit() {
  state.lang = DEFAULT_LANG;
  document.documentElement.lang = DEFAULT_LANG;
  state.qrChangesSinceTouch = 0;
}

function setLang(lang) {
  state.lang = lang;
  document.documentElement.lang = lang;
  render();
}

// ---- QR --------------------------------------------------------------------------------

async function refreshQr() {
  const snap = state.snapshot;
  const box = $("#qr");
  const nonce = snap && snap.screen === "idle" ? snap.qr_nonce : null;
  if (nonce === state.qrNonce) return;
  state.qrNonce = nonce;
  if (!nonce) {
    box.replaceChildren();
    return;
  }
  try {
    const svg = await invoke("qr_svg", { nonce });
    if (state.qrNonce === nonce) {
      // Inline, not an <img> of a data: URL: an SVG image is a document of its own
      // (XML parser, its own page in the web process), 1.8 MB of the web process's PSS
      // (docs/BENCHMARKS.md, "Window"). The SVG is the core's QR renderer's, never input.
      box.innerHTML = svg.slice(svg.indexOf("<svg"));
    }
  } catch (err) {
    console.warn("qr_svg", err && err.code, err && err.message);
    box.replaceChildren();
  }
}

// ---- snapshots -------------------------------------------------------------------------

// Every snapshot comes through here: `get_snapshot` at load, then `followSnapshots`.
// Exported for the layout test, which draws each screen from a made-up snapshot.
export async function onSnapshot(snap) {
  const prev = state.snapshot;
  if (prev && snap && snap.version === prev.version && snap.screen === prev.screen) return;
  // Before the snapshot is on the page: the screen is also drawn on a timer.
  await loadNamesFont({ snapshot: snap });
  state.snapshot = snap;
  if (snap && prev && visitEnded(prev, snap, state)) endVisit();
  // An operator's configuration came into force: the cabinet's words (contact, scan
  // apps, QR link) may have changed with it, so the code is drawn again too.
  if (snap && prev && snap.config_version !== prev.config_version) {
    await refreshInfo();
    state.qrNonce = null;
  }
  await refreshQr();
  render();
}

// The core's next snapshots, pulled one at a time for as long as the page lives. Pulled,
// not sent as Tauri events: listening for an event and delivering one run a script in the
// page from the app process, and the first such script costs that process a JavaScript
// engine of its own.
// `seen` is the core's, not the screen's: a snapshot drawn from elsewhere (the layout
// test's) stays until the core has a new one.
async function followSnapshots() {
  let seen = state.snapshot ? state.snapshot.version : null;
  for (;;) {
    try {
      const snap = await invoke("next_snapshot", { after: seen });
      if (snap && snap.version !== seen) {
        seen = snap.version;
        await onSnapshot(snap);
      }
    } catch (err) {
      // The core has stopped (the app is ending) or the call failed: ask again shortly
      // rather than spin.
      console.warn("next_snapshot", err && err.code, err && err.message);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  }
}

// The cabinet's words for customers (board kind, support contact, scan apps, help QR):
// at load, and again whenever a configuration comes into force.
async function refreshInfo() {
  try {
    const info = { ...state.info, ...(await invoke("cabinet_info")) };
    await loadNamesFont({ info });
    state.info = info;
  } catch (err) {
    console.warn("cabinet_info", err && err.code, err && err.message);
    return;
  }
  for (const box of $$(".help-qr .qr-box")) box.replaceChildren();
}

function secondsLeft(untilMs) {
  return Math.max(0, Math.ceil((untilMs - Date.now()) / 1000));
}

function fill(section, fields) {
  for (const el of $$("[data-f]", section)) {
    const v = fields[el.dataset.f];
    setText(el, v === undefined || v === null ? "" : String(v));
  }
}

// A string of the text table, or the board kind's own where the wording differs
// (a vending machine's slot and tray, a locker's door).
const word = (v) => pick(v, state.info.board);

function render() {
  const tx = t();
  const snap = state.snapshot;
  const screen = snap ? snap.screen : "starting";
  const info = state.info;

  for (const el of $$("[data-t]")) {
    const v = word(tx[el.dataset.t]);
    if (typeof v === "string") setText(el, v);
  }
  renderHelp(tx, screen);
  renderEarlier(tx, snap, screen);
  setText($("#lang"), tx.lang_button);
  setText($("#cabinet"), snap ? snap.cabinet_name || snap.machine_code : "");
  setText($("#machine-code"), snap && snap.cabinet_name ? snap.machine_code : "");
  // Tests and styles read the current screen from <body data-screen>.
  setData(document.body, "screen", screen);
  if (snap && screen === "out_of_service") setData(document.body, "oos", snap.reason);
  else if ("oos" in document.body.dataset) delete document.body.dataset.oos;
  const demo = $("#demo-scan");
  setHidden(demo, !state.demo || screen !== "idle");
  setText(demo, tx.demo_scan);
  // The wall takes rentals back: a second button plays a customer returning one.
  const wall = Boolean(state.demoInfo && state.demoInfo.layout === "wall");
  setHidden($("#demo-return"), !state.demo || !wall || screen !== "idle");
  setHidden($("#demo-open"), !state.demo);
  renderDemoPanel(tx);
  const count = $("#demo-count");
  setHidden(count, !state.demo || state.motorCount === null);
  const counted = state.demoInfo && state.demoInfo.layout === "wall" ? tx.demo_count_wall : tx.demo_count;
  setText(count, state.motorCount === null ? "" : fmt(counted, { n: state.motorCount }));
  setData(count, "count", state.motorCount === null ? "" : String(state.motorCount));

  for (const section of $$(".screen")) {
    section.classList.toggle("active", section.dataset.screen === screen);
  }
  const section = $(`#screen-${screen}`);
  if (!section || !snap) return;

  const place = snap.slot === undefined ? "" : fmt(word(tx.place), { n: snap.slot });
  switch (screen) {
    case "idle":
      setText($("#scan-hint"), scanHint(tx, info.scan_with));
      renderItems(snap.items || [], tx);
      break;
    case "accepted":
      fill(section, { product: snap.product, place });
      break;
    case "dispensing": {
      fill(section, { product: snap.product, place });
      // The board gives no percentage: ease towards 95 % over the expected time.
      const elapsed = Math.max(0, Date.now() - snap.since_ms);
      const pct = 95 * (1 - Math.exp(-elapsed / DISPENSE_EXPECTED_MS));
      const width = `${pct.toFixed(1)}%`;
      const fillEl = $("#progress-fill");
      if (fillEl.style.width !== width) fillEl.style.width = width;
      $(".progress", section).setAttribute("aria-valuenow", pct.toFixed(0));
      break;
    }
    case "take_item":
      fill(section, {
        take_title: fmt(word(tx.take_title), { n: snap.slot }),
        product: snap.product,
        // A locker's title already names the door.
        place: state.info.board === "lockboard" ? "" : place,
        countdown: fmt(tx.back_in, { n: secondsLeft(snap.until_ms) }),
      });
      break;
    case "put_back":
      fill(section, {
        put_title: fmt(tx.put_back_title, { n: snap.slot }),
        product: snap.product,
        countdown: fmt(tx.back_in, { n: secondsLeft(snap.until_ms) }),
      });
      break;
    case "failed":
      setText($("#failed-title"), word(snap.uncertain ? tx.uncertain_title : tx.failed_title));
      setText($("#failed-charge"), snap.uncertain ? tx.uncertain_charge : tx.failed_charge);
      fill(section, {
        reason_text: tx.reasons[snap.reason] || "",
        support_code: snap.support_code,
        countdown: fmt(tx.back_in, { n: secondsLeft(snap.until_ms) }),
      });
      break;
    case "out_of_service":
      fill(section, {
        oos_reason: tx.oos[snap.reason] || "",
        oos_hint: info.nearby ? fmt(tx.nearby, { where: info.nearby }) : tx.oos_hint,
      });
      break;
    default:
      break;
  }
}

// The operator's contact (support.phone, support.help_url): with the support code on
// the failure screen, on the out-of-service screen, and in the footer elsewhere.
const OWN_HELP = new Set(["failed", "out_of_service"]);

function renderHelp(tx, screen) {
  const info = state.info;
  for (const el of $$(".phone")) {
    const inFooter = el.id === "footer-phone";
    setHidden(el, !info.support_phone || (inFooter && OWN_HELP.has(screen)));
    setText(el, info.support_phone ? fmt(tx.phone, { p: info.support_phone }) : "");
  }
  for (const fig of $$(".help-qr")) {
    setHidden(fig, !info.help_qr);
    const box = $(".qr-box", fig);
    // The SVG is the core's QR renderer's, made from the config's link, never input.
    if (info.help_qr && !box.firstChild) box.innerHTML = info.help_qr.slice(info.help_qr.indexOf("<svg"));
  }
  // A help column with nothing in it takes no room.
  for (const help of $$(".help")) setHidden(help, !$$(":scope > :not([hidden])", help).length);
}

function renderEarlier(tx, snap, screen) {
  const el = $("#earlier");
  const f = snap && snap.earlier_failure;
  const show = Boolean(f) && ORDER_OR_DONE.has(screen) && f.until_ms > Date.now();
  setHidden(el, !show);
  setText(el, show ? fmt(f.uncertain ? tx.earlier_uncertain : tx.earlier_failed, { code: f.support_code }) : "");
}
const ORDER_OR_DONE = new Set(["accepted", "dispensing", "take_item", "put_back"]);

function renderItems(items, tx) {
  const key = state.lang + state.info.board + JSON.stringify(items);
  if (key === state.itemsKey) return;
  state.itemsKey = key;
  const list = $("#items");
  list.replaceChildren(
    ...items.map((it) => {
      const li = document.createElement("li");
      li.dataset.slot = String(it.slot);
      li.classList.toggle("unavailable", !it.available);
      const slot = document.createElement("span");
      slot.className = "item-slot";
      slot.textContent = fmt(word(tx.place), { n: it.slot });
      const name = document.createElement("span");
      name.className = "item-name";
      name.textContent = it.product;
      const count = document.createElement("span");
      count.className = "item-count";
      count.textContent = it.available ? fmt(tx.item_left, { n: it.count }) : tx.item_out;
      li.append(slot, name, count);
      return li;
    }),
  );
}

// ---- demo --------------------------------------------------------------------------------

async function demoScan(command = "demo_scan", id = "#demo-scan") {
  const button = $(id);
  button.disabled = true;
  try {
    await invoke(command);
  } catch (err) {
    console.warn(command, err && err.code, err && err.message);
  } finally {
    button.disabled = false;
  }
}

// What a demo viewer can break (jam, unplug the board, drop the broker) and the demo
// technician's PIN, in a panel over the screen.
function renderDemoPanel(tx) {
  const panel = $("#demo-panel");
  const info = state.demoInfo;
  setHidden(panel, !state.demo || !state.demoPanel || !info);
  if (panel.hidden) return;
  setText($("#demo-tech"), fmt(tx.demo_tech, { name: info.technician, pin: info.pin }));
  const wall = info.layout === "wall";
  for (const b of $$("[data-fault]", panel)) {
    const fault = b.dataset.fault;
    const on = Boolean(info.faults[fault]);
    setData(b, "on", on ? "1" : "0");
    // The wall words jam and unplug for doors and a bus, and has a board to cut.
    setHidden(b, fault === "power_off" && !wall);
    const words = (wall && tx.demo_faults[`${fault}_wall`]) || tx.demo_faults[fault];
    setText(b, words[on ? "on" : "off"]);
  }
}

async function demoFault(fault) {
  try {
    const on = !state.demoInfo.faults[fault];
    state.demoInfo = await invoke("demo_set_fault", { fault, on });
  } catch (err) {
    console.warn("demo_set_fault", err && err.code, err && err.message);
  }
  render();
}

async function refreshMotorCount() {
  try {
    state.motorCount = await invoke("demo_motor_count");
  } catch (err) {
    console.warn("demo_motor_count", err && err.code, err && err.message);
  }
}

// ---- start -------------------------------------------------------------------------------

async function main() {
  lockDown();
  document.addEventListener("pointerdown", () => {
    state.qrChangesSinceTouch = 0;
  });
  $("#lang").addEventListener("click", () => {
    setLang(state.lang === "zh-CN" ? "en" : "zh-CN");
  });
  $("#demo-scan").addEventListener("click", () => demoScan());
  $("#demo-return").addEventListener("click", () => demoScan("demo_return", "#demo-return"));
  $("#demo-open").addEventListener("click", () => {
    state.demoPanel = true;
    render();
  });
  $("#demo-close").addEventListener("click", () => {
    state.demoPanel = false;
    render();
  });
  $("#demo-panel").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-fault]");
    if (b) demoFault(b.dataset.fault);
  });
  techCorner();
  techInput();
  techViews();
  // The page's own font before any word is drawn (styles.css, @font-face): text laid out
  // while it loads would open the system's CJK font, whose pages would stay in memory.
  try {
    await document.fonts.load('1rem "Kiosk Sans", sans-serif');
  } catch (err) {
    console.warn("font", err);
  }
  document.documentElement.classList.add("font-ready");
  render();

  await refreshInfo();
  try {
    state.demo = Boolean(await invoke("demo_available"));
  } catch (err) {
    console.warn("demo_available", err && err.code, err && err.message);
  }
  if (state.demo) {
    try {
      state.demoInfo = await invoke("demo_info");
    } catch (err) {
      console.warn("demo_info", err && err.code, err && err.message);
    }
    await refreshMotorCount();
    setInterval(refreshMotorCount, 500);
  }
  try {
    const snap = await invoke("get_snapshot");
    if (snap && !state.snapshot) await onSnapshot(snap);
  } catch (err) {
    console.warn("get_snapshot", err && err.code, err && err.message);
  }
  render();
  followSnapshots();
  // Two frames after the first render: tell the shell the page is on screen (it logs
  // the time since start; the footprint benchmark reads it).
  requestAnimationFrame(() =>
    requestAnimationFrame(() => invoke("ui_ready").catch(() => {})),
  );

  // Countdowns and progress tick locally.
  setInterval(() => {
    render();
    techTick();
  }, 250);
}

main();
