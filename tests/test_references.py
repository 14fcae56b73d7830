"""One bibliography (notebooks/references.bib): every citation resolves, every entry is cited and findable."""
import pathlib
import re

import nbformat
import pytest

from tutorlib import check
from tutorlib.tools import writeup

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIB = writeup.read_bibliography(ROOT / "notebooks" / "references.bib")
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PAPER = re.compile(r"paper\s*=\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')")  # paper="..." in a cell


def citing_texts() -> dict[str, str]:
    texts = {p.name: "\n".join(c.source for c in nbformat.read(p, as_version=4).cells) for p in CHAPTERS}
    texts["verdicts.toml"] = (ROOT / "notebooks" / "verdicts.toml").read_text()
    for extra in ("README.md", "docs/design.md"):
        texts[extra] = (ROOT / extra).read_text()
    return texts


def test_the_bibliography_parses_with_authors_titles_and_years():
    assert len(BIB) >= 25
    for key, entry in BIB.items():
        assert {"author", "title", "year"} <= set(entry), key
        assert re.fullmatch(r"[a-z]+\d{4}[a-z0-9]*", key), f"{key}: keys are surname + year + a word"


def test_every_entry_has_an_arxiv_id_or_a_doi_or_else_a_url():
    for key, entry in BIB.items():
        assert entry.get("eprint") or entry.get("doi") or entry.get("url", "").startswith("https://"), key
        if entry.get("eprint"):
            assert re.fullmatch(r"\d{4}\.\d{4,5}", entry["eprint"]), f"{key}: {entry['eprint']} is not an arXiv id"
        if entry.get("doi"):
            assert entry["doi"].startswith("10."), key


@pytest.mark.parametrize("name", sorted(citing_texts()))
def test_every_cited_key_is_in_the_bibliography(name):
    missing = [k for k in writeup.cited_keys(citing_texts()[name]) if k not in BIB]
    assert not missing, f"{name} cites {missing}, which notebooks/references.bib lacks"


def test_every_entry_is_cited_somewhere():
    cited = {k for text in citing_texts().values() for k in writeup.cited_keys(text)}
    assert not set(BIB) - cited, f"entries nobody cites: {sorted(set(BIB) - cited)}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name[:2])
def test_every_verdict_that_names_a_paper_cites_it_by_key(path):
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            for literal in PAPER.findall(cell.source):
                assert writeup.cited_keys(literal), f"{path.name}: paper={literal[:80]} cites no [@key]"


def test_every_registered_verdict_cites_its_paper_by_key():
    for key, entry in check.preregistration().items():
        assert writeup.cited_keys(entry["paper"]), f"verdicts.toml {key}: its paper cites no [@key]"
