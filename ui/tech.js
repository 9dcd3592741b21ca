// The technician's panel: the corner hold, the PIN pad, maintenance and its views
// (health, slots, commands, frames, audit, export). Every action goes to the core
// (`tech_*` commands); the panel only asks and shows.

import { $, $$, invoke, loadNamesFont, setData, setHidden, setText, state, t } from "./page.js";
import { auditNote, fmt, slotRanges, techError } from "./text.js";

const TECH_HOLD_MS = 3_000; // press on the top-left corner this long to open the PIN pad (and styles.css --hold)
const PIN_PAD_TIMEOUT_MS = 60_000;

/**
 * The panel's state (typed: tsc refuses a misspelt field).
 * @type {{open: boolean, names: string[], name: string | null, pin: string,
 *   message: {kind: string, n?: number, until?: number} | null, loggedIn: string | null,
 *   lastInput: number, lastActivitySent: number, tab: string, lastDiag: number,
 *   lastStatus: number, answers: number, slots: any[], slot: number | null,
 *   count: number | null, boards: any[], unreachable: number[], frameBoard: string | null}}
 */
const tech = {
  open: false,
  names: [],
  name: null,
  pin: "",
  message: null, // {kind: "wrong"|"locked", n}
  loggedIn: null,
  lastInput: 0,
  lastActivitySent: 0,
  tab: "health", // the maintenance tab shown
  lastDiag: 0, // when the health tab was last refreshed
  lastStatus: 0, // when the core was last asked whether the technician is still in
  answers: 0, // PIN answers so far (the message's data-seq, for tests to wait on)
  slots: [], // the slot table as last drawn
  slot: null, // the slot chosen for the bar
  count: null, // its count as being set with − / + / full; null: as the journal has it
  boards: [], // a cabinet of several boards: each board's health, as diagnostics last said
  unreachable: [], // slots whose board does not answer now
  frameBoard: null, // the board whose frames are shown; null: all
};

export function techCorner() {
  let timer = null;
  const corner = $("#tech-corner");
  // While held, the corner draws a ring that closes in TECH_HOLD_MS (styles.css,
  // `.tech-corner.holding`): the technician sees the press is counted.
  const cancel = () => {
    clearTimeout(timer);
    timer = null;
    corner.classList.toggle("holding", false);
  };
  corner.addEventListener("pointerdown", () => {
    cancel();
    corner.classList.add("holding");
    timer = setTimeout(() => {
      cancel();
      openTech();
    }, TECH_HOLD_MS);
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
  await loadNamesFont({ technicians: st.technicians });
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
  tech.answers += 1;
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
  setData(msg, "seq", String(tech.answers));
  setText(msg, !m
    ? ""
    : m.kind === "wrong"
      ? fmt(tx.wrong_pin, { n: m.n })
      : fmt(tx.locked_out, { s: Math.max(0, Math.ceil((m.until - Date.now()) / 1000)) }));
}

export function techInput() {
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
    [L.board, `${L.protocols[b.protocol] || b.protocol} · ${b.port}`],
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
  learnBoards(d);
  renderBoards(tx);
  // A journal found missing, empty, corrupt or replaced at start: the technician reads
  // why and confirms a fresh start with two taps.
  const loss = $("#journal-loss");
  loss.hidden = !d.journal.unverified;
  if (d.journal.unverified) {
    const why = d.journal.loss ? fmt(L.losses[d.journal.loss.loss] || "", d.journal.loss) : "";
    $("#journal-loss-text").textContent = `${L.unverified}: ${why || d.journal.unverified}`;
    const b = $("#confirm-fresh");
    if (b.dataset.armed !== "1") b.textContent = L.confirm_fresh;
  }
}

// ---- several boards -----------------------------------------------------------------------

function learnBoards(d) {
  tech.boards = d.boards || [];
  tech.unreachable = d.unreachable_slots || [];
}

// The health tab's table of boards, one line each: which board answers, which is down
// and which slots that takes out of sale. Hidden on a cabinet of one board.
function renderBoards(tx) {
  const L = tx.diag;
  const table = $("#boards");
  setHidden(table, tech.boards.length === 0);
  if (tech.boards.length === 0) return;
  const head = document.createElement("tr");
  head.append(...[L.board, L.board_state, L.last_rx, L.frames, L.slots].map((h) => cell("th", h)));
  table.replaceChildren(
    head,
    ...tech.boards.map((b) => {
      const tr = document.createElement("tr");
      tr.dataset.board = b.name;
      tr.dataset.up = b.connected ? "1" : "0";
      const state = cell("td", b.connected ? L.yes : L.no);
      state.dataset.state = b.connected ? "ok" : "down";
      // The name, then where it is: a lock board's address on its bus, or its port.
      const where = b.address === undefined ? b.port : `${L.address} ${b.address}`;
      const name = cell("td", b.name);
      name.append(document.createElement("br"), cell("small", where));
      tr.append(
        name,
        state,
        cell("td", b.last_rx_ms_ago === undefined ? L.never : `${b.last_rx_ms_ago} ms`),
        cell("td", `${b.frames_rx} / ${b.frames_tx} / ${b.bad_frames}`),
        cell("td", slotRanges(b.slots)),
      );
      return tr;
    }),
  );
}

// The board each slot is on (by name), for the slot table.
function boardOf(slot) {
  const b = tech.boards.find((b) => b.slots.includes(slot));
  return b ? b.name : "";
}

// The frames tab's choice of board: "all" and one button a board (none for one board).
function renderFrameBoards(tx) {
  const bar = $("#frame-boards");
  setHidden(bar, tech.boards.length === 0);
  if (tech.boards.length === 0) return;
  const pick = (name, label) => {
    const b = button(label, { board: name ?? "" });
    b.classList.toggle("chosen", tech.frameBoard === name);
    return b;
  };
  bar.replaceChildren(pick(null, tx.all_boards), ...tech.boards.map((b) => pick(b.name, b.name)));
}

async function loadBoards() {
  try {
    learnBoards(await invoke("tech_diag"));
  } catch (err) {
    console.warn("tech_diag", err && err.code, err && err.message);
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
    out.textContent = techError(t(), err);
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
    const [r] = await Promise.all([techDo({ action: "slots" }), loadBoards()]);
    if (r) renderSlots(r.slots.map(slotView), tx);
    return;
  }
  if (tab === "commands") {
    const q = $("#cmd-log-id").value.trim();
    const r = await techDo({ action: "commands", n: 50, find: q || null });
    if (!r) return;
    $("#commands").replaceChildren(
      ...r.commands.map((c) => {
        const tr = document.createElement("tr");
        tr.dataset.logId = c.log_id;
        tr.dataset.code = c.support_code;
        tr.append(
          cell("td", new Date(c.received_at).toLocaleString(state.lang)),
          cell("td", c.support_code),
          cell("td", c.log_id),
          cell("td", c.slot),
          cell("td", tx.cmd_states[c.state] || c.state),
          // The customer's sentence in the panel's language, and the code to look up.
          cell("td", c.reason ? `${tx.reasons[c.reason] || ""} (${c.reason})` : ""),
        );
        return tr;
      }),
    );
    return;
  }
  if (tab === "export") return loadExportTargets();
  if (tab === "frames") {
    const [r] = await Promise.all([techDo({ action: "frames" }), loadBoards()]);
    if (!r) return;
    if (!tech.boards.some((b) => b.name === tech.frameBoard)) tech.frameBoard = null;
    renderFrameBoards(tx);
    const mine = r.frames.filter((f) => tech.frameBoard === null || f.board === tech.frameBoard);
    $("#frames").replaceChildren(
      ...mine.slice(-40).reverse().map((f) => {
        const tr = document.createElement("tr");
        if (f.board) tr.dataset.board = f.board;
        tr.append(cell("td", f.dir === "rx" ? "←" : "→"));
        if (tech.boards.length) tr.append(cell("td", f.board || ""));
        tr.append(cell("td", f.hex), cell("td", f.meaning));
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
          cell("td", tx.audit_actions[a.action] || a.action),
          cell("td", auditNote(tx, a.note, a.detail)),
        );
        return tr;
      }),
    );
  }
}

function slotView(s) {
  const down = tech.unreachable.includes(s.slot);
  return {
    ...s,
    board: boardOf(s.slot),
    state: !s.enabled ? "disabled" : s.jammed ? "jammed" : down ? "unreachable" : "ok",
  };
}

// The slot table: one line a slot; tapping one chooses it for the bar above (a count
// to set with − / + / full, a test, clearing a jam, enabling or disabling).
function renderSlots(items, tx) {
  tech.slots = items;
  if (!items.some((it) => it.slot === tech.slot)) tech.slot = items.length ? items[0].slot : null;
  tech.count = null; // the chosen slot's count as the journal has it, until − / + / full
  $("#slots").replaceChildren(
    ...items.map((it) => {
      const tr = document.createElement("tr");
      tr.dataset.slot = String(it.slot);
      const st = it.state || (it.available ? "ok" : "");
      const stateCell = cell("td", tx.slot_states[st] || st);
      stateCell.dataset.state = st;
      tr.append(cell("td", it.slot), cell("td", it.product));
      if (tech.boards.length) tr.append(cell("td", it.board));
      tr.append(cell("td", `${it.count} / ${it.capacity}`), stateCell);
      return tr;
    }),
  );
  renderSlotBar(tx);
}

function chosenSlot() {
  return (tech.slots || []).find((it) => it.slot === tech.slot) || null;
}

function renderSlotBar(tx) {
  const it = chosenSlot();
  setHidden($("#slot-bar"), !it);
  for (const tr of $$("#slots tr")) tr.classList.toggle("chosen", Number(tr.dataset.slot) === tech.slot);
  if (!it) return;
  setText($("#slot-chosen"), `${tx.tab_slots} ${it.slot} · ${it.product}`);
  const count = tech.count === null ? it.count : tech.count;
  setText($("#slot-count"), `${count} / ${it.capacity}`);
  setData($("#slot-count"), "value", String(count));
  setText($("#slot-bar [data-op='toggle']"), it.enabled === false ? tx.enable : tx.disable);
}

async function slotOp(op) {
  const tx = t();
  const it = chosenSlot();
  if (!it) return;
  const slot = it.slot;
  const out = $("#tech-result");
  const count = tech.count === null ? it.count : tech.count;
  if (op === "minus" || op === "plus" || op === "fill") {
    // Counting happens here; nothing reaches the core before "save".
    tech.count = op === "fill" ? it.capacity : Math.max(0, Math.min(it.capacity, count + (op === "plus" ? 1 : -1)));
    renderSlotBar(tx);
    return;
  }
  out.textContent = "";
  let r = null;
  if (op === "test") {
    out.dataset.result = "busy";
    r = await techDo({ action: "slot_test", slot });
    if (r) {
      const o = r.outcome.outcome;
      out.textContent = fmt(tx.test_result, { slot, outcome: tx.outcomes[o] || o });
      out.dataset.outcome = o;
      await loadTab("slots");
    }
  } else if (op === "clear") {
    r = await techDo({ action: "clear_jam", slot });
  } else if (op === "toggle") {
    r = await techDo({ action: "set_enabled", slot, enabled: it.enabled === false });
  } else if (op === "save") {
    r = await techDo({ action: "set_count", slot, count });
  }
  if (r && r.slots) renderSlots(r.slots.map(slotView), tx);
  out.dataset.seq = String(Number(out.dataset.seq || 0) + 1);
}

// A touchscreen has no keyboard: support codes and log ids are typed on one, the export
// directory on another (lower case and the path's punctuation).
const OSK_CODE = ["1234567890", "QWERTYUIOP", "ASDFGHJKL-", "ZXCVBNM_⌫"];
const OSK_PATH = ["1234567890", "qwertyuiop", "asdfghjkl/", "⇧zxcvbnm-_.⌫"];

// ⌫ deletes, ⇧ switches the letters' case (a USB stick's label is often upper case).
function buildOsk(osk, input, rows) {
  osk.replaceChildren(
    ...rows.map((row) => {
      const div = document.createElement("div");
      div.className = "osk-row";
      for (const k of row) div.append(button(k, { key: k }));
      return div;
    }),
  );
  osk.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-key]");
    if (!b) return;
    const k = b.dataset.key;
    if (k === "⇧") {
      for (const key of $$("button[data-key]", osk)) {
        const c = key.dataset.key;
        const flipped = c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase();
        if (c.length === 1 && /[a-z]/i.test(c)) {
          key.dataset.key = flipped;
          key.textContent = flipped;
        }
      }
      return;
    }
    input.value = k === "⌫" ? input.value.slice(0, -1) : input.value + k;
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

export function techViews() {
  buildOsk($("#osk"), $("#cmd-log-id"), OSK_CODE);
  buildOsk($("#osk-path"), $("#export-dir"), OSK_PATH);
  $("#tech-tabs").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-tab]");
    if (b) showTab(b.dataset.tab);
  });
  $("#slots").addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-slot]");
    if (!tr) return;
    tech.slot = Number(tr.dataset.slot);
    tech.count = null;
    renderSlotBar(t());
  });
  $("#slot-bar").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-op]");
    if (b) slotOp(b.dataset.op);
  });
  $("#frame-boards").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-board]");
    if (!b) return;
    tech.frameBoard = b.dataset.board || null;
    loadTab("frames");
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
      out.textContent = fmt(t().exported, { path: r.path, n: r.files.length });
    }
    out.dataset.seq = String(Number(out.dataset.seq || 0) + 1);
  });
  // Closing the app stops the cabinet: the first tap only arms it (the label says what
  // a second tap does), as beside it "end maintenance" is the everyday button.
  $("#tech-exit").addEventListener("click", (ev) => {
    const b = ev.currentTarget;
    if (b.dataset.t !== "tech_exit_again") {
      b.dataset.t = "tech_exit_again"; // the page's next render (within 250 ms) words it
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
export function techTick() {
  if (!tech.open) return;
  // The core may have logged the technician out (idle): ask it, every 2 s.
  if (tech.loggedIn && Date.now() - tech.lastStatus >= 2_000) {
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
  if (tech.loggedIn && tech.tab === "health" && Date.now() - tech.lastDiag >= 2_000) {
    tech.lastDiag = Date.now();
    showTab("health");
  }
  renderTech();
}
