"""The Chinese edition's font: Noto Sans CJK SC, cut to the characters the course and a learner's labels need.

    python -m tutorlib.tools.font /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc   # Debian: fonts-noto-cjk

matplotlib ships no CJK font and finds none on a fresh Windows, macOS or Linux install it can use offline, so
Chinese figure labels would draw as boxes. The wheel therefore carries one: every character of tutorlib/zh/
(prose, figure strings, claims), the 3,755 characters of GB2312's first level (the common ones a learner types
into a title of their own) and CJK punctuation, taken from the SC face of Noto Sans CJK (SIL Open Font License
1.1, which allows subsetting and bundling; the license travels beside the font). The family is renamed so it can
never be confused with a full Noto installed on the machine, and its sha256 is recorded for `tutorlib.i18n`.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from ..i18n import CATALOGUE, FONT, FONT_FAMILY


def gb2312_level1() -> str:
    """The 3,755 most common simplified characters (GB2312 rows 16-55), in code order."""
    chars = []
    for row in range(0xB0, 0xD8):
        for cell in range(0xA1, 0xFF):
            try:
                chars.append(bytes([row, cell]).decode("gb2312"))
            except UnicodeDecodeError:
                pass  # the last row ends early
    return "".join(chars)


def needed_characters() -> str:
    """Every character the catalogue uses, GB2312 level 1, ASCII and the usual CJK punctuation."""
    used = "".join(p.read_text(encoding="utf-8") for p in sorted(CATALOGUE.rglob("*")) if p.suffix in (".md", ".toml"))
    punctuation = "，。、；：？！“”‘’（）《》【】—…·～％＋－×÷±≤≥→←↑↓°²³"
    ascii_printable = "".join(chr(c) for c in range(0x20, 0x7F))
    return "".join(sorted(set(used + gb2312_level1() + punctuation + ascii_printable) - {"\n", "\r", "\t"}))


def face_index(collection: Path, family: str = "Noto Sans CJK SC") -> int:
    """Which font of a .ttc is the simplified-Chinese face."""
    from fontTools.ttLib import TTCollection

    names = [f["name"].getDebugName(1) for f in TTCollection(str(collection)).fonts]
    if family not in names:
        raise SystemExit(f"{collection} has no {family!r} face (it has {names}): pass NotoSansCJK-Regular.ttc.")
    return names.index(family)


def subset(source: Path, out: Path = FONT) -> Path:
    """Write the course's subset of `source` to `out`, renamed to FONT_FAMILY; record its sha256 beside it."""
    from fontTools import subset as ft_subset
    from fontTools.ttLib import TTFont

    index = face_index(source) if source.suffix.lower() == ".ttc" else 0
    font = TTFont(str(source), fontNumber=index, lazy=False)
    options = ft_subset.Options()
    options.name_IDs, options.notdef_outline, options.hinting = ["*"], True, False  # no hints: screen sizes
    subsetter = ft_subset.Subsetter(options)
    subsetter.populate(text=needed_characters())
    subsetter.subset(font)
    for record in font["name"].names:
        if record.nameID in (1, 4, 16):
            record.string = FONT_FAMILY
        elif record.nameID == 6:
            record.string = FONT_FAMILY.replace(" ", "")
    font.save(str(out))
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    out.with_suffix(".sha256").write_text(f"{digest}  {out.name}\n")
    print(f"Wrote {out} ({out.stat().st_size / 1024:.0f} KiB, {len(needed_characters())} characters), sha256 {digest[:12]}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Cut the Chinese edition's font from Noto Sans CJK.")
    parser.add_argument("source", type=Path, help="NotoSansCJK-Regular.ttc (Debian: fonts-noto-cjk)")
    subset(parser.parse_args(argv).source)


if __name__ == "__main__":
    main()
