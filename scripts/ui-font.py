#!/usr/bin/env python3
"""Cuts ui/fonts/kiosk-sans.otf out of the system's Noto Sans CJK SC Regular: exactly the
characters the page's own files use (ui/*.js, ui/*.html), printable ASCII and Latin-1,
and in ui/fonts/kiosk-sans.lacks those of them that font does not have.

Run `make ui-font` after adding a string with a character the font lacks (the ui-check
test `tests/ui/font.test.js` names it). Needs fontTools (the Makefile target installs it
in a virtualenv under target/) and Debian's fonts-noto-cjk. The output depends only on
the input font and the page's characters, so a rerun without changes gives the same bytes.
"""

import glob
import os
import sys

from fontTools import subset

SOURCE = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
FACE = "Noto Sans CJK SC"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "ui", "fonts", "kiosk-sans.otf")
# The page's characters the source font does not have (symbols another system font
# draws): the ui-check test accepts these, and only these, as missing from OUT.
LACKS = os.path.join(ROOT, "ui", "fonts", "kiosk-sans.lacks")


def page_characters():
    chars = {chr(c) for c in range(0x20, 0x7F)} | {chr(c) for c in range(0xA0, 0x100)}
    files = glob.glob(os.path.join(ROOT, "ui", "*.js")) + glob.glob(os.path.join(ROOT, "ui", "*.html"))
    for path in sorted(files):
        with open(path, encoding="utf-8") as f:
            chars |= {c for c in f.read() if ord(c) > 0x7E}
    return "".join(sorted(chars))


def face_number():
    from fontTools.ttLib import TTCollection

    for i, font in enumerate(TTCollection(SOURCE, lazy=True).fonts):
        if font["name"].getDebugName(1) == FACE:
            return i
    sys.exit(f"{SOURCE} has no face named {FACE}")


def main():
    text = page_characters()
    options = subset.Options()
    options.font_number = face_number()
    # Keep every name record: the copyright and the licence (SIL OFL 1.1) travel with it.
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    font = subset.load_font(SOURCE, options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=text)
    subsetter.subset(font)
    subset.save_font(font, OUT, options)
    have = set(font.getBestCmap())
    lacks = "".join(c for c in text if ord(c) not in have)
    with open(LACKS, "w", encoding="utf-8") as f:
        f.write(lacks + "\n")
    print(f"{OUT}: {len(text) - len(lacks)} characters, {os.path.getsize(OUT)} bytes; not in {FACE}: {lacks}")


if __name__ == "__main__":
    main()
