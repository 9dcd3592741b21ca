// What the page's modules share: the IPC call, the page's state (the customer's
// language and the snapshot on screen), and DOM helpers.

import { DEFAULT_LANG, TEXT, namesChars } from "./text.js";

export const { invoke } = window.__TAURI__.core;

// The config's names in a font cut for their characters (`names_font`), added before they
// reach the state (and so the screen, which is also drawn on a timer): drawn from the
// system's CJK file instead, they would keep ~2.4 MB of its pages in memory (styles.css).
// One font for every name the screens may show: the snapshot's, the cabinet's words and
// the technicians'. Without it (no tool on the cabinet) the system's fonts draw them.
/** @type {{snapshot: any, info: any, technicians: string[], chars: string, face: FontFace | null}} */
const names = { snapshot: null, info: null, technicians: [], chars: "", face: null };

/**
 * Cuts the names font again when `update` (a snapshot, the cabinet's words or the
 * technicians about to be shown) brings characters the last one was not cut for. It only
 * grows: the names on screen until the next render (an operator's configuration renamed
 * the cabinet, say) must not lose their glyphs when the old font goes.
 * @param {{snapshot?: any, info?: any, technicians?: string[]}} update
 */
export async function loadNamesFont(update) {
  Object.assign(names, update);
  const chars = namesChars(null, null, [names.chars, namesChars(names.snapshot, names.info, names.technicians)]);
  if (chars === names.chars) return;
  names.chars = chars;
  if (!chars) return;
  try {
    const face = new FontFace("Kiosk Names", await invoke("names_font", { text: chars }));
    await face.load();
    document.fonts.add(face);
    if (names.face) document.fonts.delete(names.face);
    names.face = face;
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
