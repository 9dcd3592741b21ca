// What the page's modules share: the IPC call, the page's state (the customer's
// language and the snapshot on screen), and DOM helpers.

import { DEFAULT_LANG, TEXT, namesChars } from "./text.js";

export const { invoke } = window.__TAURI__.core;

// The config's names in a font cut for their characters (`names_font`), added before they
// reach the state (and so the screen, which is also drawn on a timer): drawn from the
// system's CJK file instead, they would keep ~2.4 MB of its pages in memory (styles.css).
// One font for every name the screens may show: the snapshot's, the cabinet's words and
// the technicians'. The font before it stays until the next one is added, so the names on
// screen until the next render (the old name after an operator renamed the cabinet, say)
// keep their glyphs, and no more than two are ever kept. One load at a time: a caller
// waits for the loads before its own. Without the tool on the cabinet, or if it fails,
// the system's fonts draw the names (and the same characters are not asked for again).
/** @type {{snapshot: any, info: any, technicians: string[], chars: string, tried: string, faces: FontFace[]}} */
const names = { snapshot: null, info: null, technicians: [], chars: "", tried: "", faces: [] };
let namesQueue = Promise.resolve();

/**
 * Cuts the names font again when `update` (a snapshot, the cabinet's words or the
 * technicians about to be shown) brings characters the last one was not cut for, and
 * resolves once it is in place (or has failed).
 * @param {{snapshot?: any, info?: any, technicians?: string[]}} update
 */
export function loadNamesFont(update) {
  namesQueue = namesQueue.then(() => cutNamesFont(update));
  return namesQueue;
}

/** @param {{snapshot?: any, info?: any, technicians?: string[]}} update */
async function cutNamesFont(update) {
  Object.assign(names, update);
  const chars = namesChars(names.snapshot, names.info, names.technicians);
  if (!chars || chars === names.chars || chars === names.tried) return;
  names.tried = chars;
  try {
    const face = new FontFace("Kiosk Names", await invoke("names_font", { text: chars }));
    await face.load();
    document.fonts.add(face);
    names.faces.push(face);
    while (names.faces.length > 2) document.fonts.delete(names.faces.shift());
    names.chars = chars;
  } catch (err) {
    console.warn("names_font", err && err.code, err && err.message);
  }
}

/**
 * The page's state. Typed so that `make ui-check` (tsc) refuses a misspelt field.
 * @typedef {{board: string, support_phone: string, help_url: string, nearby: string,
 *   scan_with: string[], help_qr: string | null}} Info
 * @type {{lang: string, snapshot: any, qrNonce: string | null, qrChangesSinceTouch: number,
 *   demo: boolean, itemsKey: string, motorCount: number | null, demoInfo: any,
 *   demoPanel: boolean, info: Info}}
 */
export const state = {
  lang: DEFAULT_LANG,
  snapshot: null,
  qrNonce: null,
  qrChangesSinceTouch: 0, // idle QR codes replaced since the screen was last touched
  demo: false, // the core runs in demo mode: show the "simulate scan" control
  itemsKey: "", // what the slot list was last drawn from
  motorCount: null, // demo: the simulated board's motor runs
  demoInfo: null, // demo: {technician, pin, faults, layout} (demo_info)
  demoPanel: false, // demo: the controls are open
  // cabinet_info: the board kind and the operator's contact, from the config.
  info: { board: "vmc", support_phone: "", help_url: "", nearby: "", scan_with: [], help_qr: null },
};

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
// Writes only what changed: the screen is redrawn 4 times a second for its countdowns,
// and every DOM write, even one that changes nothing, costs WebKit a restyle and a
// repaint (5 % of a core when idle, measured; 0.6 % with these).
export const setText = (el, text) => {
  if (el.textContent !== text) el.textContent = text;
};
export const setData = (el, key, value) => {
  if (el.dataset[key] !== value) el.dataset[key] = value;
};
export const setHidden = (el, hidden) => {
  if (el.hidden !== hidden) el.hidden = hidden;
};
export const t = () => TEXT[state.lang];
