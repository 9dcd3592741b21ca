// The page's own font (ui/fonts/kiosk-sans.otf, cut by `make ui-font`) holds every
// character the page's files can put on screen, so WebKit never falls back to the
// system's CJK font for the screens' words (only for the config's names, which it
// cannot know). A new string with a new character fails here until the font is cut again.

import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";

const UI = new URL("../../ui/", import.meta.url);

/** The code points an OpenType font maps (its cmap's format 4 and 12 subtables). */
function mapped(font) {
  const tables = font.readUInt16BE(4);
  let cmap = -1;
  for (let i = 0; i < tables; i++) {
    const at = 12 + 16 * i;
    if (font.toString("latin1", at, at + 4) === "cmap") cmap = font.readUInt32BE(at + 8);
  }
  assert.ok(cmap >= 0, "the font has a cmap table");
  const points = new Set();
  const subtables = font.readUInt16BE(cmap + 2);
  for (let i = 0; i < subtables; i++) {
    const at = cmap + font.readUInt32BE(cmap + 4 + 8 * i + 4);
    const format = font.readUInt16BE(at);
    if (format === 4) {
      const segs = font.readUInt16BE(at + 6) / 2;
      const ends = at + 14;
      const starts = ends + 2 * segs + 2;
      for (let s = 0; s < segs; s++) {
        const end = font.readUInt16BE(ends + 2 * s);
        for (let c = font.readUInt16BE(starts + 2 * s); c <= end && c !== 0xffff; c++) points.add(c);
      }
    } else if (format === 12) {
      const groups = font.readUInt32BE(at + 12);
      for (let g = 0; g < groups; g++) {
        const group = at + 16 + 12 * g;
        const end = font.readUInt32BE(group + 4);
        for (let c = font.readUInt32BE(group); c <= end; c++) points.add(c);
      }
    }
  }
  return points;
}

test("the page's font has every character of the page's own files", () => {
  const font = mapped(readFileSync(new URL("fonts/kiosk-sans.otf", UI)));
  // What the source font itself lacks (symbols another system font draws), as `make
  // ui-font` found it.
  for (const ch of readFileSync(new URL("fonts/kiosk-sans.lacks", UI), "utf8").trim()) {
    font.add(ch.codePointAt(0) ?? 0);
  }
  const files = readdirSync(UI).filter((f) => f.endsWith(".js") || f.endsWith(".html"));
  assert.ok(files.includes("strings.js") && files.includes("index.html"), files.join(" "));
  const missing = new Map();
  for (const file of files) {
    for (const ch of readFileSync(new URL(file, UI), "utf8")) {
      const c = ch.codePointAt(0) ?? 0;
      if (c >= 0x20 && c !== 0x7f && !font.has(c)) missing.set(ch, file);
    }
  }
  assert.deepEqual(
    [...missing].map(([ch, file]) => `${ch} (U+${(ch.codePointAt(0) ?? 0).toString(16)}, ${file})`),
    [],
    "characters the font lacks: run `make ui-font`",
  );
});

// A character the font lacks is drawn from a system font, and finding one opens the
// system's font files (the CJK one, on a Chinese page): the customer's screens (the page
// and its words) use none; the technician's keyboard's ⌫ is the one left.
test("no customer screen needs a character the page's font lacks", () => {
  const lacks = readFileSync(new URL("fonts/kiosk-sans.lacks", UI), "utf8").trim();
  // Every file of the page but the technician's panel.
  const files = readdirSync(UI).filter((f) => (f.endsWith(".js") || f.endsWith(".html")) && f !== "tech.js");
  assert.ok(files.includes("index.html") && files.includes("page.js"), files.join(" "));
  for (const file of files) {
    const text = readFileSync(new URL(file, UI), "utf8");
    const used = [...lacks].filter((ch) => text.includes(ch));
    assert.deepEqual(used, [], `${file} uses what the font lacks`);
  }
});

test("the stylesheet puts the page's font first", () => {
  const css = readFileSync(new URL("styles.css", UI), "utf8");
  assert.match(css, /@font-face\s*{[^}]*font-family:\s*"Kiosk Sans"[^}]*fonts\/kiosk-sans\.otf/);
  assert.match(css, /html\.font-ready body {[^}]*font-family:\s*"Kiosk Sans",/);
});
