// What the page's modules share: the IPC call, the page's state (the customer's
// language and the snapshot on screen), and DOM helpers.

import { DEFAULT_LANG, TEXT } from "./text.js";

export const { invoke } = window.__TAURI__.core;

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
