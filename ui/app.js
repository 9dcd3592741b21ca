// Cabinet Kiosk touchscreen. Renders the one Snapshot the core publishes (event "screen",
// and `get_snapshot` once at load). No business logic: every decision is in cabinet-core;
// this file only words and draws what it is given.

const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;

const DEFAULT_LANG = "zh-CN";
const DISPENSE_EXPECTED_MS = 8_000; // progress bar pacing; the real end comes as a snapshot

const TEXT = {
  "zh-CN": {
    lang_button: "English",
    starting_title: "正在启动…",
    idle_title: "扫码取货",
    idle_hint: "请用手机扫描二维码",
    items_title: "本柜商品",
    item_left: (n) => `剩余 ${n} 件`,
    item_out: "已售罄",
    demo_scan: "演示：模拟扫码",
    demo_count: (n) => `模拟板电机动作：${n} 次`,
    tech_title: "技术人员登录",
    tech_cancel: "取消",
    pin_clear: "清除",
    pin_ok: "确定",
    tech_in: "维护中：",
    tech_maint_hint: "柜机已暂停服务，顾客订单将被拒绝。长时间无操作将自动退出。",
    tech_logout: "退出维护",
    wrong_pin: (n) => `PIN 错误，还可尝试 ${n} 次`,
    locked_out: (s) => `尝试次数过多，请 ${s} 秒后再试`,
    pick_name: "请选择姓名",
    tab_health: "状态", tab_slots: "货道", tab_commands: "订单", tab_frames: "串口帧", tab_audit: "审计", tab_export: "导出",
    search: "按客服编码查找", export: "导出诊断包", tech_exit: "关闭程序",
    tech_exit_again: "再按一次关闭程序：重新启动前顾客无法使用本柜",
    slot_test: "测试出货", clear_jam: "清除卡货", enable: "启用", disable: "停用", save: "保存",
    slot_states: { ok: "正常", jammed: "卡货", disabled: "已停用" },
    test_result: (slot, outcome) => `货道 ${slot}：${outcome}`,
    exported: (path, n) => `已导出 ${n} 个文件到 ${path}`,
    diag: {
      broker: "消息服务器", link: "连接", since: "连接时间", last_msg: "最近指令", outbox: "待确认回执",
      board: "主板", board_state: "主板状态", last_rx: "最近收到帧", frames: "收/发/错帧", timeouts: "超时/重发/重连",
      poll: "POLL 最慢应答", journal: "日志库", disk: "剩余磁盘", dropped: "已丢弃的拒收记录",
      unverified: "日志库未核实",
      confirm_fresh: "确认重新开始日志库…",
      confirm_fresh_again: "再按一次确认：丢失的记录无法恢复", version: "版本", boot: "启动 ID", clock: "时钟", clock_ok: "时钟最近经后台校验",
      yes: "正常", no: "异常", never: "无",
      disk_low: "空间不足：暂停接单（journal.min_free_mb）",
    },
    accepted_title: "已收到您的订单",
    dispensing_title: "正在出货",
    dispensing_hint: "请稍候，不要伸手进取货口",
    take_title: "请取走您的物品",
    slot: "货道",
    back_in: "返回首页：",
    seconds: (n) => `${n} 秒`,
    failed_title: "未能出货",
    failed_charge: "您不会被扣费；如已付款，将自动退款。",
    uncertain_title: "正在确认出货结果",
    uncertain_charge: "我们正在核实；未收到的物品不会向您收费。",
    support_code: "客服编码：",
    oos_title: "暂停服务",
    oos_hint: "给您带来不便，敬请谅解。",
    oos: {
      broker_down: "柜机暂时无法连接网络。",
      board_down: "柜机设备暂时无响应。",
      maintenance: "工作人员正在维护本柜机。",
      journal_unverified: "柜机记录需要工作人员核对。",
      starting: "柜机正在启动。",
      disk_low: "柜机暂时无法接单，工作人员正在处理。",
    },
    link: (up) => (up ? "网络正常" : "网络断开"),
    board: (up) => (up ? "设备正常" : "设备无响应"),
  },
  en: {
    lang_button: "中文",
    starting_title: "Starting…",
    idle_title: "Scan to get your item",
    idle_hint: "Scan the QR code with your phone",
    items_title: "In this cabinet",
    item_left: (n) => `${n} left`,
    item_out: "Sold out",
    demo_scan: "Demo: simulate a scan",
    demo_count: (n) => `Simulated board motor runs: ${n}`,
    tech_title: "Technician login",
    tech_cancel: "Cancel",
    pin_clear: "Clear",
    pin_ok: "OK",
    tech_in: "Maintenance:",
    tech_maint_hint: "The cabinet is out of service; customer orders are refused. You are logged out when idle.",
    tech_logout: "End maintenance",
    wrong_pin: (n) => `Wrong PIN, ${n} tries left`,
    locked_out: (s) => `Too many tries; try again in ${s} s`,
    pick_name: "Choose your name",
    tab_health: "Health", tab_slots: "Slots", tab_commands: "Commands", tab_frames: "Frames", tab_audit: "Audit", tab_export: "Export",
    search: "Find support code", export: "Export bundle", tech_exit: "Close the app",
    tech_exit_again: "Tap again to close the app: customers cannot use the cabinet until it starts again",
    slot_test: "Test", clear_jam: "Clear jam", enable: "Enable", disable: "Disable", save: "Save",
    slot_states: { ok: "OK", jammed: "Jammed", disabled: "Disabled" },
    test_result: (slot, outcome) => `Slot ${slot}: ${outcome}`,
    exported: (path, n) => `${n} files written to ${path}`,
    diag: {
      broker: "Broker", link: "Link", since: "Connected since", last_msg: "Last command", outbox: "Replies pending",
      board: "Board", board_state: "Board state", last_rx: "Last frame received", frames: "Frames rx/tx/bad", timeouts: "Timeouts/resends/reconnects",
      poll: "Slowest POLL reply", journal: "Journal", disk: "Disk free", dropped: "Refused payloads dropped",
      unverified: "Journal not verified",
      confirm_fresh: "Confirm a fresh start of the journal…",
      confirm_fresh_again: "Tap again to confirm: the lost records cannot be recovered", version: "Version", boot: "Boot id", clock: "Clock", clock_ok: "Clock last vouched by a command",
      yes: "OK", no: "DOWN", never: "never",
      disk_low: "LOW: orders refused (journal.min_free_mb)",
    },
    accepted_title: "Order received",
    dispensing_title: "Dispensing",
    dispensing_hint: "Please wait; keep your hands out of the tray",
    take_title: "Please take your item",
    slot: "Slot",
    back_in: "Back to start in",
    seconds: (n) => `${n} s`,
    failed_title: "Not dispensed",
    failed_charge: "You will not be charged; any payment will be refunded.",
    uncertain_title: "Checking your order",
    uncertain_charge: "We are checking. You will not be charged for an item you did not receive.",
    support_code: "Support code:",
    oos_title: "Out of service",
    oos_hint: "Sorry for the inconvenience.",
    oos: {
      broker_down: "The cabinet cannot reach the network right now.",
      board_down: "The cabinet's machinery is not responding.",
      maintenance: "Staff are servicing this cabinet.",
      journal_unverified: "The cabinet's records need a check by staff.",
      starting: "The cabinet is starting.",
      disk_low: "The cabinet cannot take orders right now; staff are on it.",
    },
    link: (up) => (up ? "Network OK" : "Network down"),
    board: (up) => (up ? "Machine OK" : "Machine not responding"),
  },
};

const state = {
  lang: DEFAULT_LANG,
  snapshot: null,
  qrNonce: null,
  reasonText: "", // customer_text for the failed screen, in state.lang
  qrChangesSinceTouch: 0, // idle QR codes replaced since the screen was last touched
  demo: false, // the core runs in demo mode: show the "simulate scan" control
  itemsKey: "", // what the slot list was last drawn from
  motorCount: null, // demo: the simulated board's motor runs
};

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
// Writes only what changed: the screen is redrawn 4 times a second for its countdowns,
// and every DOM write, even one that changes nothing, costs WebKit a restyle and a
// repaint (5 % of a core when idle, measured; 0.6 % with these).
const setText = (el, text) => {
  if (el.textContent !== text) el.textContent = text;
};
const setData = (el, key, value) => {
  if (el.dataset[key] !== value) el.dataset[key] = value;
};
const setHidden = (el, hidden) => {
  if (el.hidden !== hidden) el.hidden = hidden;
};
const t = () => TEXT[state.lang];

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

// A customer's language lasts their visit; every visit starts in DEFAULT_LANG. A visit
// ends when the cabinet is back at idle after an order; when a next order follows a
// finished one with no idle screen between them (a next customer); or, on the idle
// screen, once the QR code shown at the last touch has been replaced twice. Each code is
// valid for a session lifetime and replaced every half of one, so by then no order can
// come from it: paying on the phone takes as long as it takes, no clock of the page's
// own cuts it short.
const FINISHED = new Set(["take_item", "failed"]);
const ORDER = new Set(["accepted", "dispensing"]);

function visitEnded(prev, snap) {
  if (snap.screen === "idle" && prev.screen !== "idle") return true;
  if (FINISHED.has(prev.screen) && ORDER.has(snap.screen)) return true;
  const qrReplaced =
    snap.screen === "idle" && prev.screen === "idle" && snap.qr_nonce !== prev.qr_nonce;
  if (qrReplaced) state.qrChangesSinceTouch += 1;
  return state.qrChangesSinceTouch >= 2;
}

function endVisit() {
  state.lang = DEFAULT_LANG;
  document.documentElement.lang = DEFAULT_LANG;
  state.qrChangesSinceTouch = 0;
}

async function setLang(lang) {
  state.lang = lang;
  document.documentElement.lang = lang;
  await refreshReasonText();
  render();
}

async function refreshReasonText() {
  const snap = state.snapshot;
  if (!snap || snap.screen !== "failed") {
    state.reasonText = "";
    return;
  }
  try {
    state.reasonText = await invoke("customer_text", { reason: snap.reason, lang: state.lang });
  } catch (err) {
    // {code, message}: show nothing rather than a technical message to a customer.
    console.warn("customer_text", err && err.code, err && err.message);
    state.reasonText = "";
  }
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

async function onSnapshot(snap) {
  const prev = state.snapshot;
  if (prev && snap && snap.version === prev.version && snap.screen === prev.screen) return;
  state.snapshot = snap;
  if (snap && prev && visitEnded(prev, snap)) endVisit();
  await Promise.all([refreshReasonText(), refreshQr()]);
  render();
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

function render() {
  const tx = t();
  const snap = state.snapshot;
  const screen = snap ? snap.screen : "starting";

  for (const el of $$("[data-t]")) {
    const v = tx[el.dataset.t];
    if (typeof v === "string") setText(el, v);
  }
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
  const count = $("#demo-count");
  setHidden(count, !state.demo || state.motorCount === null);
  setText(count, state.motorCount === null ? "" : tx.demo_count(state.motorCount));
  setData(count, "count", state.motorCount === null ? "" : String(state.motorCount));

  for (const section of $$(".screen")) {
    section.classList.toggle("active", section.dataset.screen === screen);
  }
  const section = $(`#screen-${screen}`);
  if (!section || !snap) return;

  switch (screen) {
    case "idle":
      renderItems(snap.items || [], tx);
      break;
    case "accepted":
      fill(section, { product: snap.product, slot: snap.slot });
      break;
    case "dispensing": {
      fill(section, { product: snap.product, slot: snap.slot });
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
        product: snap.product,
        slot: snap.slot,
        countdown: tx.seconds(secondsLeft(snap.until_ms)),
      });
      break;
    case "failed":
      setText($("#failed-title"), snap.uncertain ? tx.uncertain_title : tx.failed_title);
      setText($("#failed-charge"), snap.uncertain ? tx.uncertain_charge : tx.failed_charge);
      fill(section, {
        reason_text: state.reasonText,
        support_code: snap.support_code,
        countdown: tx.seconds(secondsLeft(snap.until_ms)),
      });
      break;
    case "out_of_service":
      fill(section, { oos_reason: tx.oos[snap.reason] || "" });
      break;
    default:
      break;
  }

  const link = $("#status-link");
  const board = $("#status-board");
  setText(link, tx.link(snap.link_up));
  link.classList.toggle("down", !snap.link_up);
  setText(board, tx.board(snap.board_up));
  board.classList.toggle("down", !snap.board_up);
}

function renderItems(items, tx) {
  const key = state.lang + JSON.stringify(items);
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
      slot.textContent = `${tx.slot} ${it.slot}`;
      const name = document.createElement("span");
      name.className = "item-name";
      name.textContent = it.product;
      const count = document.createElement("span");
      count.className = "item-count";
      count.textContent = it.available ? tx.item_left(it.count) : tx.item_out;
      li.append(slot, name, count);
      return li;
    }),
  );
}

// ---- demo --------------------------------------------------------------------------------

async function demoScan() {
  const button = $("#demo-scan");
  button.disabled = true;
  try {
    await invoke("demo_scan");
  } catch (err) {
    console.warn("demo_scan", err && err.code, err && err.message);
  } finally {
    button.disabled = false;
  }
}

async function refreshMotorCount() {
  try {
    state.motorCount = await invoke("demo_motor_count");
  } catch (err) {
    console.warn("demo_motor_count", err && err.code, err && err.message);
  }
}

// ---- technicians -----------------------------------------------------------------------

const TECH_HOLD_MS = 3_000; // press on the top-left corner this long to open the PIN pad
const PIN_PAD_TIMEOUT_MS = 60_000;

const tech = {
  open: false,
  names: [],
  name: null,
  pin: "",
  message: null, // {kind: "wrong"|"locked", n}
  loggedIn: null,
  lastInput: 0,
  lastActivitySent: 0,
};

function techCorner() {
  let timer = null;
  const corner = $("#tech-corner");
  const cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  corner.addEventListener("pointerdown", () => {
    cancel();
    timer = setTimeout(openTech, TECH_HOLD_MS);
  });
  for (const ev of ["pointerup", "pointerleave", "pointercancel"]) corner.addEventListener(ev, cancel);
}

async function openTech() {
  let st;
  try {
    st = await invoke("tech_status");
  } catch (err) {
    console.warn("tech_status", err && err.code, err && err.message);
    return;
  }
  if (!st.technicians.length) return; // nobody configured: the gesture does nothing
  Object.assign(tech, {
    open: true,
    names: st.technicians,
    name: st.technicians.length === 1 ? st.technicians[0] : null,
    pin: "",
    message: st.locked_until_ms ? { kind: "locked", until: st.locked_until_ms } : null,
    loggedIn: st.logged_in,
    lastInput: Date.now(),
  });
  renderTech();
}

function closeTech() {
  Object.assign(tech, { open: false, pin: "", message: null, loggedIn: null });
  $("#tech-exit").dataset.t = "tech_exit"; // a next visit starts disarmed
  renderTech();
}

async function submitPin() {
  if (!tech.name || !tech.pin) return;
  const pin = tech.pin;
  tech.pin = "";
  let r;
  try {
    r = await invoke("tech_login", { technician: tech.name, pin });
  } catch (err) {
    console.warn("tech_login", err && err.code, err && err.message);
    return;
  }
  tech.answers = (tech.answers || 0) + 1;
  if (r.result === "logged_in") {
    tech.loggedIn = r.technician;
    tech.message = null;
    tech.lastDiag = Date.now();
    showTab("health");
  } else if (r.result === "wrong_pin") {
    tech.message = { kind: "wrong", n: r.tries_left };
  } else {
    tech.message = { kind: "locked", until: r.until_ms };
  }
  renderTech();
}

function renderTech() {
  const tx = t();
  const box = $("#tech");
  setHidden(box, !tech.open);
  setData(box, "state", !tech.open ? "" : tech.loggedIn ? "in" : "pin");
  if (!tech.open) return;
  setHidden($("#tech-login"), Boolean(tech.loggedIn));
  setHidden($("#tech-panel"), !tech.loggedIn);
  setText($("#tech-name"), tech.loggedIn || "");
  const names = $("#tech-names");
  const key = tech.names.join("\n") + "|" + tech.name;
  if (names.dataset.key !== key) {
    names.dataset.key = key;
    names.replaceChildren(
      ...tech.names.map((n) => {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = n;
        b.dataset.name = n;
        b.classList.toggle("chosen", n === tech.name);
        return b;
      }),
    );
  }
  setText($("#pin-dots"), tech.name ? "●".repeat(tech.pin.length) || "—" : tx.pick_name);
  const msg = $("#tech-msg");
  const m = tech.message;
  setData(msg, "result", m ? m.kind : "");
  setData(msg, "seq", String(tech.answers || 0));
  setText(msg, !m
    ? ""
    : m.kind === "wrong"
      ? tx.wrong_pin(m.n)
      : tx.locked_out(Math.max(0, Math.ceil((m.until - Date.now()) / 1000))));
}

function techInput() {
  $("#tech-names").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-name]");
    if (!b) return;
    tech.name = b.dataset.name;
    tech.pin = "";
    renderTech();
  });
  $("#pinpad").addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b) return;
    tech.lastInput = Date.now();
    if (b.dataset.digit && tech.pin.length < 12) tech.pin += b.dataset.digit;
    else if (b.id === "pin-clear") tech.pin = "";
    else if (b.id === "pin-ok") submitPin();
    renderTech();
  });
  $("#tech-cancel").addEventListener("click", closeTech);
  $("#tech-logout").addEventListener("click", async () => {
    try {
      await invoke("tech_logout");
    } catch (err) {
      console.warn("tech_logout", err && err.code, err && err.message);
    }
    closeTech();
  });
  // Any touch while logged in keeps the session (at most one message per 5 s).
  document.addEventListener("pointerdown", () => {
    if (!tech.loggedIn || Date.now() - tech.lastActivitySent < 5_000) return;
    tech.lastActivitySent = Date.now();
    invoke("tech_activity").catch(() => {});
  });
}

function fmtTime(ms, tx) {
  return ms ? new Date(ms).toLocaleString(state.lang) : tx.diag.never;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

async function refreshDiag() {
  if (!tech.loggedIn) return;
  let d;
  try {
    d = await invoke("tech_diag");
  } catch (err) {
    console.warn("tech_diag", err && err.code, err && err.message);
    return;
  }
  const tx = t();
  const L = tx.diag;
  const b = d.board;
  const rows = [
    [L.broker, d.link.broker],
    [L.link, `${d.link.connected ? L.yes : L.no} · ${d.link.subscription}`],
    [L.since, fmtTime(d.link.connected_since_ms, tx)],
    [L.last_msg, fmtTime(d.link.last_message_ms, tx)],
    [L.outbox, String(d.link.outbox_pending)],
    [L.board, `${b.protocol} · ${b.port}`],
    [L.board_state, d.board_up ? L.yes : L.no],
    [L.last_rx, b.last_rx_ms_ago === undefined ? L.never : `${b.last_rx_ms_ago} ms`],
    [L.frames, `${b.frames_rx} / ${b.frames_tx} / ${b.bad_frames}`],
    [L.timeouts, `${b.timeouts} / ${b.resends} / ${b.reconnects}`],
    [L.poll, `${(b.poll_reply_max_us / 1000).toFixed(2)} ms`],
    [L.journal, `${d.journal.path} · ${fmtBytes(d.journal.size_bytes)}`],
    [L.disk, fmtBytes(d.journal.disk_free_bytes) + (d.journal.disk_low ? ` · ${L.disk_low}` : "")],
    [L.dropped, String(d.journal.rejections_dropped)],
    [L.version, d.version],
    [L.boot, d.boot_id],
    [L.clock, `${fmtTime(d.at_ms, tx)} · ${d.clock_plausible ? L.yes : L.no}`],
    [L.clock_ok, d.clock_confirmed_ms ? fmtTime(d.clock_confirmed_ms, tx) : L.never],
  ];
  $("#diag").replaceChildren(
    ...rows.map(([k, v]) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = k;
      const td = document.createElement("td");
      td.textContent = v;
      tr.append(th, td);
      return tr;
    }),
  );
  $("#diag").dataset.at = String(d.at_ms);
  // A journal found missing, empty, corrupt or replaced at start: the technician reads
  // why and confirms a fresh start with two taps.
  const loss = $("#journal-loss");
  loss.hidden = !d.journal.unverified;
  if (d.journal.unverified) {
    $("#journal-loss-text").textContent = `${L.unverified}: ${d.journal.unverified}`;
    const b = $("#confirm-fresh");
    if (b.dataset.armed !== "1") b.textContent = L.confirm_fresh;
  }
}

// ---- technician views ------------------------------------------------------------------

function cell(tag, text) {
  const el = document.createElement(tag);
  el.textContent = text === undefined || text === null ? "" : String(text);
  return el;
}

function button(label, attrs) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "secondary small";
  b.textContent = label;
  Object.assign(b.dataset, attrs);
  return b;
}

async function techDo(action) {
  const out = $("#tech-result");
  try {
    const r = await invoke("tech_do", { action });
    out.dataset.result = "ok";
    return r;
  } catch (err) {
    out.dataset.result = "error";
    out.textContent = err && err.message ? err.message : String(err);
    return null;
  }
}

function showTab(tab) {
  tech.tab = tab;
  for (const b of $$("#tech-tabs button")) b.classList.toggle("chosen", b.dataset.tab === tab);
  for (const d of $$("#tech-panel .tab")) d.hidden = d.dataset.tab !== tab;
  $("#tech-panel").dataset.tab = tab;
  loadTab(tab);
}

async function loadTab(tab) {
  const tx = t();
  if (tab === "health") return refreshDiag();
  if (tab === "slots") {
    const r = await techDo({ action: "slots" });
    if (r) renderSlots(r.slots.map(slotView), tx);
    return;
  }
  if (tab === "commands") {
    const q = $("#cmd-log-id").value.trim();
    const r = await techDo({ action: "commands", n: 50, log_id: q || null });
    if (!r) return;
    $("#commands").replaceChildren(
      ...r.commands.map((c) => {
        const tr = document.createElement("tr");
        tr.dataset.logId = c.log_id;
        tr.append(
          cell("td", new Date(c.received_at).toLocaleString(state.lang)),
          cell("td", c.log_id),
          cell("td", c.slot),
          cell("td", c.state),
          cell("td", c.reason || ""),
        );
        return tr;
      }),
    );
    return;
  }
  if (tab === "export") return loadExportTargets();
  if (tab === "frames") {
    const r = await techDo({ action: "frames" });
    if (!r) return;
    $("#frames").replaceChildren(
      ...r.frames.slice(-40).reverse().map((f) => {
        const tr = document.createElement("tr");
        tr.append(cell("td", f.dir === "rx" ? "←" : "→"), cell("td", f.hex), cell("td", f.meaning));
        return tr;
      }),
    );
    return;
  }
  if (tab === "audit") {
    const r = await techDo({ action: "audit", n: 50 });
    if (!r) return;
    $("#audit").replaceChildren(
      ...r.entries.map((a) => {
        const tr = document.createElement("tr");
        tr.dataset.action = a.action;
        tr.append(
          cell("td", new Date(a.at).toLocaleString(state.lang)),
          cell("td", a.technician),
          cell("td", a.action),
          cell("td", a.detail),
        );
        return tr;
      }),
    );
  }
}

function slotView(s) {
  return { ...s, state: !s.enabled ? "disabled" : s.jammed ? "jammed" : "ok" };
}

function renderSlots(items, tx) {
  $("#slots").replaceChildren(
    ...items.map((it) => {
      const tr = document.createElement("tr");
      tr.dataset.slot = String(it.slot);
      const st = it.state || (it.available ? "ok" : "");
      const count = document.createElement("input");
      count.type = "number";
      count.min = "0";
      count.value = String(it.count);
      count.className = "count";
      const actions = document.createElement("td");
      actions.append(
        button(tx.save, { op: "save", slot: it.slot }),
        button(tx.slot_test, { op: "test", slot: it.slot }),
        button(tx.clear_jam, { op: "clear", slot: it.slot }),
        button(it.enabled === false ? tx.enable : tx.disable, {
          op: it.enabled === false ? "enable" : "disable",
          slot: it.slot,
        }),
      );
      const countCell = document.createElement("td");
      countCell.append(count);
      const stateCell = cell("td", tx.slot_states[st] || st);
      stateCell.dataset.state = st;
      tr.append(cell("td", it.slot), cell("td", it.product), countCell, cell("td", `/ ${it.capacity}`), stateCell, actions);
      return tr;
    }),
  );
}

async function slotOp(op, slot, row) {
  const tx = t();
  const out = $("#tech-result");
  out.textContent = "";
  let r = null;
  if (op === "test") {
    out.dataset.result = "busy";
    r = await techDo({ action: "slot_test", slot });
    if (r) {
      out.textContent = tx.test_result(slot, r.outcome.outcome);
      out.dataset.outcome = r.outcome.outcome;
      await loadTab("slots");
    }
  } else if (op === "clear") {
    r = await techDo({ action: "clear_jam", slot });
  } else if (op === "enable" || op === "disable") {
    r = await techDo({ action: "set_enabled", slot, enabled: op === "enable" });
  } else if (op === "save") {
    const count = Number($("input.count", row).value);
    r = await techDo({ action: "set_count", slot, count });
  }
  if (r && r.slots) renderSlots(r.slots.map(slotView), tx);
  out.dataset.seq = String(Number(out.dataset.seq || 0) + 1);
}

// A touchscreen has no keyboard: support codes are typed on this one.
const OSK_ROWS = ["1234567890", "QWERTYUIOP", "ASDFGHJKL-", "ZXCVBNM_⌫"];

function buildOsk() {
  const osk = $("#osk");
  osk.replaceChildren(
    ...OSK_ROWS.map((row) => {
      const div = document.createElement("div");
      div.className = "osk-row";
      for (const k of row) div.append(button(k, { key: k }));
      return div;
    }),
  );
  osk.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-key]");
    if (!b) return;
    const input = $("#cmd-log-id");
    input.value = b.dataset.key === "⌫" ? input.value.slice(0, -1) : input.value + b.dataset.key;
  });
}

async function loadExportTargets() {
  const r = await techDo({ action: "export_targets" });
  if (!r) return;
  $("#export-targets").replaceChildren(
    ...r.dirs.map((d) => {
      const b = button(d, { dir: d });
      b.addEventListener("click", () => {
        $("#export-dir").value = d;
      });
      return b;
    }),
  );
}

function techViews() {
  buildOsk();
  $("#tech-tabs").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-tab]");
    if (b) showTab(b.dataset.tab);
  });
  $("#slots").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-op]");
    if (b) slotOp(b.dataset.op, Number(b.dataset.slot), b.closest("tr"));
  });
  $("#cmd-search").addEventListener("submit", (e) => {
    e.preventDefault();
    loadTab("commands");
  });
  $("#export-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const out = $("#export-result");
    out.textContent = "";
    const r = await techDo({ action: "export", dir: $("#export-dir").value.trim() });
    if (r) {
      out.dataset.path = r.path;
      out.textContent = t().exported(r.path, r.files.length);
    }
    out.dataset.seq = String(Number(out.dataset.seq || 0) + 1);
  });
  // Closing the app stops the cabinet: the first tap only arms it (the label says what
  // a second tap does), as beside it "end maintenance" is the everyday button.
  $("#tech-exit").addEventListener("click", (ev) => {
    const b = ev.currentTarget;
    if (b.dataset.t !== "tech_exit_again") {
      b.dataset.t = "tech_exit_again";
      render();
      return;
    }
    techDo({ action: "exit" });
  });
  $("#confirm-fresh").addEventListener("click", async (ev) => {
    const b = ev.currentTarget;
    const L = t().diag;
    if (b.dataset.armed !== "1") {
      b.dataset.armed = "1";
      b.textContent = L.confirm_fresh_again;
      return;
    }
    b.dataset.armed = "";
    await techDo({ action: "confirm_fresh_start" });
    refreshDiag();
  });
}

// Called on every tick: the PIN pad closes when left alone; the panel closes when the
// core ended maintenance (automatic logout).
function techTick() {
  if (!tech.open) return;
  // The core may have logged the technician out (idle): ask it, every 2 s.
  if (tech.loggedIn && Date.now() - (tech.lastStatus || 0) >= 2_000) {
    tech.lastStatus = Date.now();
    invoke("tech_status")
      .then((st) => {
        if (tech.loggedIn && !st.logged_in) closeTech();
      })
      .catch(() => {});
  }
  if (!tech.loggedIn && Date.now() - tech.lastInput > PIN_PAD_TIMEOUT_MS) {
    closeTech();
    return;
  }
  if (tech.loggedIn && tech.tab === "health" && Date.now() - (tech.lastDiag || 0) >= 2_000) {
    tech.lastDiag = Date.now();
    showTab("health");
  }
  renderTech();
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
  $("#demo-scan").addEventListener("click", demoScan);
  techCorner();
  techInput();
  techViews();
  render();

  await listen("screen", (event) => onSnapshot(event.payload));
  try {
    state.demo = Boolean(await invoke("demo_available"));
  } catch (err) {
    console.warn("demo_available", err && err.code, err && err.message);
  }
  if (state.demo) {
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
