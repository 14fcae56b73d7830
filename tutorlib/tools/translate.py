"""The Chinese edition from one source: the English chapters plus a catalogue per chapter (tutorlib/zh/cells/).

    python -m tutorlib.tools.translate status            # every missing, stale or orphaned entry; exit 1 if any
    python -m tutorlib.tools.translate add 03            # append entries for 03's untranslated cells (English text)
    python -m tutorlib.tools.translate generate [--out build/zh]   # the Chinese notebooks

A catalogue entry is one markdown cell's Chinese, under a header that names the cell and the fingerprint of the
English it translates::

    <!-- cell 7 | en 3f2a9c01be77 -->
    ## 4. 实验 ...

Cells are matched by fingerprint first (a cell that only moved keeps its translation) and by id second: an entry
whose cell's English changed is *stale*, and the Chinese notebook shows that cell in English until a translator
updates the entry and its fingerprint (a stale translation is never shown: it would say what the English no longer
says). `add` only appends: a translator's accepted wording is never rewritten by a tool. Code cells are copied
unchanged, so both editions compute the same numbers; what code prints or draws is translated at run time
(`tutorlib.i18n`, with TUTORLIB_LANG=zh).
"""
from __future__ import annotations

import argparse
import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..i18n import CATALOGUE, fingerprint, language
from . import paths

HEADER = re.compile(r"^<!-- cell (\S+) \| en ([0-9a-f]{12}) -->[ \t]*$", re.M)
TODO = "TODO(translate)"  # what `add` writes before the English text it appends


@dataclass
class Entry:
    cell_id: str
    en: str  # fingerprint of the English the translation was made from
    zh: str


@dataclass
class Matched:
    """How a chapter's markdown cells stand against its catalogue."""
    translated: dict[int, str] = field(default_factory=dict)  # cell index -> Chinese
    stale: list[tuple[int, str]] = field(default_factory=list)  # (index, cell id): the English changed since
    missing: list[tuple[int, str]] = field(default_factory=list)  # no entry at all
    todo: list[tuple[int, str]] = field(default_factory=list)  # an entry `add` wrote, not yet translated
    orphaned: list[Entry] = field(default_factory=list)  # entries no cell uses any more

    def problems(self, chapter: str, nb) -> list[str]:
        def name(index: int, cell_id: str) -> str:
            first = nb.cells[index].source.strip().splitlines()[0][:70] if nb.cells[index].source.strip() else ""
            return f"{chapter} cell {cell_id} ({first!r})"

        return ([f"stale: {name(i, c)}: its English changed since it was translated" for i, c in self.stale]
                + [f"missing: {name(i, c)}: no Chinese entry" for i, c in self.missing]
                + [f"untranslated: {name(i, c)}: `add` wrote it, a translator has not" for i, c in self.todo]
                + [f"orphaned: {chapter} entry for cell {e.cell_id} (en {e.en}): no cell has that English"
                   for e in self.orphaned])


def catalogue_path(chapter: str) -> Path:
    return CATALOGUE / "cells" / f"{chapter}.md"


def read_catalogue(path: Path) -> list[Entry]:
    """The entries of one chapter's catalogue file, in file order."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    heads = list(HEADER.finditer(text))
    if text[:heads[0].start() if heads else len(text)].strip():
        raise ValueError(f"{path}: text before the first `<!-- cell ID | en HASH -->` header; every translation "
                         f"must sit under the header of its cell.")
    ends = [h.start() for h in heads[1:]] + [len(text)]
    return [Entry(h.group(1), h.group(2), text[h.end():end].strip("\n")) for h, end in zip(heads, ends)]


def match(nb, entries: list[Entry]) -> Matched:
    """Pair each markdown cell with its entry: same English first (the cell may have moved), else same id."""
    by_hash, by_id = {}, {e.cell_id: e for e in entries}
    for e in entries:
        by_hash.setdefault(e.en, []).append(e)
    used, result, unmatched = set(), Matched(), []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown" or not cell.source.strip():
            continue
        same_text = by_hash.get(fingerprint(cell.source), [])
        entry = next((e for e in same_text if e.cell_id == cell.get("id")), None) or \
            next((e for e in same_text if id(e) not in used), None)
        if entry is None:
            unmatched.append((i, cell.get("id")))
            continue
        used.add(id(entry))
        if entry.zh.startswith(TODO):
            result.todo.append((i, cell.get("id")))
        else:
            result.translated[i] = entry.zh
    for i, cell_id in unmatched:  # its English changed (an entry has its id) or it is new
        old = by_id.get(cell_id)
        if old is not None and id(old) not in used:
            used.add(id(old))
            result.stale.append((i, cell_id))
        else:
            result.missing.append((i, cell_id))
    result.orphaned = [e for e in entries if id(e) not in used]
    return result


def chapters() -> list[Path]:
    return sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def chapter_bytes(path: Path) -> bytes:
    """The chapter file in the learner's edition: the English file as it is, or the Chinese notebook's JSON."""
    import nbformat

    return path.read_bytes() if language() == "en" else (nbformat.writes(chapter(path)) + "\n").encode("utf-8")


def chapter(path: Path):
    """The chapter at `path` in the learner's edition ($TUTORLIB_LANG): the English source, or its Chinese."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if language() == "en":
        return nb
    return chinese_notebook(nb, match(nb, read_catalogue(catalogue_path(path.stem))))


CJK = "\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"  # ideographs, CJK and full-width punctuation
SOFT_BREAK = re.compile(f"(?<=[{CJK}])\n[ \t]*(?=[{CJK}])")


def unwrap(markdown: str) -> str:
    """Join the lines a translator wrapped inside a Chinese sentence: Markdown would show each break as a space.

    Only a break between two CJK characters goes; code blocks, lists, tables and breaks beside Latin text stay.
    """
    parts = re.split(r"(```.*?```)", markdown, flags=re.S)
    return "".join(part if part.startswith("```") else SOFT_BREAK.sub("", part) for part in parts)


def chinese_notebook(nb, matched: Matched):
    """The Chinese chapter: translated markdown cells, code cells as they are, the edition in its metadata."""
    zh = copy.deepcopy(nb)
    for i, text in matched.translated.items():
        zh.cells[i].source = unwrap(text)
    zh.metadata["tutorlib"] = {"edition": "zh"}
    zh.metadata["language_info"] = {"name": "python"}
    return zh


def status() -> list[str]:
    """Every problem of the catalogue, one line each, naming the chapter and the cell."""
    import nbformat

    problems = []
    for path in chapters():
        nb = nbformat.read(path, as_version=4)
        problems += match(nb, read_catalogue(catalogue_path(path.stem))).problems(path.stem, nb)
    return problems + claim_problems() + untranslated_texts()


SHOWN_ARGUMENTS = {  # the calls in chapter code whose text arguments a learner reads: where to find them
    "exercise": ([1, 2], []),  # exercises.exercise(passed, success, hint)
    "report": ([0], []), "compare": ([2], []),  # check.report(claim, ...), check.compare(a, b, claim, ...)
    "lines": ([], ["title", "xlabel", "ylabel", "reference_label"]), "bars": ([], ["title", "xlabel", "ylabel"]),
    "scatter": ([], ["title", "xlabel", "ylabel", "label"]), "layer_profile": ([], ["title", "ylabel"]),
    "training_curves": ([], ["title"]), "image_grid": ([], ["title"]),
}


def _literal(node):
    """A string argument as its English, or as a template (an f-string's values become {}); else None."""
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, False
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values), True
    return None


def shown_texts(nb):
    """(English, is_template, the call) of every literal text a chapter's code hands to tutorlib to show."""
    import ast

    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            name = getattr(getattr(node, "func", None), "attr", None)
            if not isinstance(node, ast.Call) or name not in SHOWN_ARGUMENTS:
                continue
            positions, keywords = SHOWN_ARGUMENTS[name]
            args = [node.args[i] for i in positions if i < len(node.args)]
            args += [k.value for k in node.keywords if k.arg in keywords]
            yield from ((*found, name) for found in map(_literal, args) if found)


def untranslated_texts() -> list[str]:
    """Texts chapter code shows (exercise texts, reported claims, figure labels) that strings.toml lacks."""
    import nbformat

    from ..i18n import _registered, strings, templates

    problems = []
    for path in chapters():
        for text, template, call in shown_texts(nbformat.read(path, as_version=4)):
            if template:
                found = any(p.match(text.replace("{}", "0")) for p, _ in templates())
            else:
                found = text in strings() or text in _registered() or any(p.match(text) for p, _ in templates())
            if text not in ("{}", "") and not found:
                problems.append(f"missing: strings.toml: {path.stem}'s {call}() text {text!r}")
    return problems


def claim_problems() -> list[str]:
    """Registered claims (and retired entries' reasons) whose Chinese in claims.toml is missing or stale."""
    from ..check import preregistration
    from ..i18n import claims

    problems = []
    for key, entry in preregistration().items():
        if not isinstance(entry, dict):
            continue
        zh = claims().get(key, {})
        if zh.get("en") != fingerprint(entry["claim"]):
            problems.append(f"{'stale' if zh else 'missing'}: claims.toml [{key}]: its English claim changed or is new")
        if "retired" in entry and zh.get("retired_en") != fingerprint(entry["retired"]):
            problems.append(f"stale: claims.toml [{key}]: the reason it was retired is new or changed")
    return problems


def generate(out_dir: Path, force: bool = False) -> list[Path]:
    """Write the Chinese chapters into `out_dir`; a learner's changed copy there is kept unless `force`."""
    import nbformat

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in chapters():
        nb = nbformat.read(path, as_version=4)
        text = nbformat.writes(chinese_notebook(nb, match(nb, read_catalogue(catalogue_path(path.stem))))) + "\n"
        target = out_dir / path.name
        if target.exists() and target.read_text(encoding="utf-8") != text and not force and _edited(target):
            print(f"kept {target}: it differs from the course's Chinese copy (your work?); --force replaces it")
            continue
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def _edited(target: Path) -> bool:
    """A learner's copy has outputs or changed code; a copy that is only an older translation is not their work."""
    import nbformat

    nb = nbformat.read(target, as_version=4)
    return any(c.cell_type == "code" and c.get("outputs") for c in nb.cells) or \
        nb.metadata.get("tutorlib", {}).get("edition") != "zh"


def add(chapter: str) -> int:
    """Append a TODO entry (the English text) for each cell of `chapter` that has none; return how many."""
    import nbformat

    path = next((p for p in chapters() if p.name.startswith(chapter)), None)
    if path is None:
        raise SystemExit(f"No chapter {chapter!r}: give its number, e.g. `add 03`.")
    nb = nbformat.read(path, as_version=4)
    matched = match(nb, read_catalogue(catalogue_path(path.stem)))
    blocks = [f"<!-- cell {nb.cells[i].get('id')} | en {fingerprint(nb.cells[i].source)} -->\n{TODO}\n"
              f"{nb.cells[i].source.strip()}\n" for i, _ in sorted(matched.missing + matched.stale)]
    if blocks:
        target = catalogue_path(path.stem)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a", encoding="utf-8") as f:
            f.write(("\n" if target.stat().st_size else "") + "\n".join(blocks))
    return len(blocks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The Chinese edition: check the catalogue, extend it, build it.")
    parser.add_argument("command", choices=["status", "add", "generate"])
    parser.add_argument("chapter", nargs="?", help="add: the chapter's number, e.g. 03")
    parser.add_argument("--out", type=Path, default=paths.BUILD / "zh", help="generate: the folder (default build/zh)")
    parser.add_argument("--force", action="store_true", help="generate: replace a learner's changed copy")
    args = parser.parse_args(argv)
    if args.command == "add":
        if not args.chapter:
            raise SystemExit("add needs a chapter number, e.g. `add 03`.")
        print(f"{add(args.chapter)} entries appended (marked {TODO}); translate them and delete the marker.")
    elif args.command == "generate":
        written = generate(args.out, force=args.force)
        print(f"{len(written)} Chinese chapters in {args.out}. Missing or stale cells show their English; "
              f"`status` lists them.")
    else:
        problems = status()
        print("\n".join(problems) or "Every markdown cell, registered claim and text chapter code shows has a current Chinese entry.")
        raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
