"""The Chinese edition: one source, a catalogue per cell, never stale (tutorlib/zh/, tutorlib.tools.translate).

What a reader of the Chinese chapters relies on: every markdown cell, claim and exercise text has a current
translation; an English edit makes its entry stale, and a test names the cell; the Chinese chapters run the same
code cells; the course's terms follow the glossary; and the bundled font draws every character the course uses.
"""
import copy
import hashlib
import re
import warnings

import nbformat
import pytest

from tutorlib import check, i18n
from tutorlib.tools import translate
from tutorlib.tools.student import exercise_hint, student_version

CHAPTERS = translate.chapters()


def chapter(path):
    return nbformat.read(path, as_version=4)


def matched(path, nb=None):
    nb = nb or chapter(path)
    return translate.match(nb, translate.read_catalogue(translate.catalogue_path(path.stem)))


@pytest.fixture
def chinese(monkeypatch):
    monkeypatch.setenv(i18n.LANG_VAR, "zh")


def test_every_markdown_cell_has_a_current_translation():
    assert translate.status() == []


def test_an_english_edit_makes_the_entry_stale_and_the_test_names_the_cell():
    path = CHAPTERS[2]
    nb = chapter(path)
    index = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "Plain networks" in c.source)
    nb.cells[index].source = nb.cells[index].source.replace("show the effect most clearly",
                                                            "show the effect most plainly")
    result = matched(path, nb)
    assert result.stale == [(index, nb.cells[index].id)]
    problems = result.problems(path.stem, nb)
    assert problems == [f"stale: {path.stem} cell {nb.cells[index].id} ('Plain networks — no residual connections, no "
                        f"normalisation — show the '): its English changed since it was translated"]
    shown = translate.chinese_notebook(nb, result).cells[index].source
    assert shown == nb.cells[index].source  # the stale Chinese is not shown: the English is


def test_a_cell_that_only_moved_keeps_its_translation():
    path = CHAPTERS[0]
    nb = chapter(path)
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("A new English cell.", id="new"))
    for i, cell in enumerate(nb.cells):  # nbstripout renumbers the ids of every cell after an insertion
        cell.id = str(i)
    result = matched(path, nb)
    assert result.missing == [(1, "1")] and not result.stale and not result.orphaned
    assert len(result.translated) == sum(c.cell_type == "markdown" for c in nb.cells) - 1


def test_add_appends_and_never_rewrites_a_translation(tmp_path, monkeypatch):
    path = CHAPTERS[3]
    catalogue = tmp_path / f"{path.stem}.md"
    before = translate.catalogue_path(path.stem).read_text(encoding="utf-8")
    kept = before.split("\n<!-- cell ", 3)
    catalogue.write_text(kept[0] + "\n<!-- cell " + kept[1], encoding="utf-8")  # only the first two entries
    monkeypatch.setattr(translate, "catalogue_path", lambda stem: catalogue)
    appended = translate.add(path.name[:2])
    after = catalogue.read_text(encoding="utf-8")
    assert appended == sum(c.cell_type == "markdown" for c in chapter(path).cells) - 2
    assert after.startswith(kept[0] + "\n<!-- cell " + kept[1])  # the translator's entries, byte for byte
    assert after.count(translate.TODO) == appended
    assert len(matched(path).todo) == appended  # marked untranslated until a translator takes the marker out


def test_chinese_chapters_differ_from_the_english_only_in_catalogued_markdown():
    for path in CHAPTERS:
        english, result = chapter(path), matched(path)
        zh = translate.chinese_notebook(english, result)
        assert len(zh.cells) == len(english.cells)
        for i, (a, b) in enumerate(zip(english.cells, zh.cells)):
            assert (a.cell_type, a.metadata, a.get("id")) == (b.cell_type, b.metadata, b.get("id"))
            if a.cell_type == "code":
                assert a.source == b.source, f"{path.stem} cell {a.id}: code must be identical in both editions"
            else:
                assert b.source == translate.unwrap(result.translated[i]) != a.source


def test_a_line_wrapped_inside_a_chinese_sentence_is_joined_and_nothing_else():
    text = "第一行的句子，\n接着写完。\n\n* 列表\n* 第二项\n\n```python\nx = 1  # 中文\n# 注释\n```\nA 半部分\nB 半部分"
    assert translate.unwrap(text) == ("第一行的句子，接着写完。\n\n* 列表\n* 第二项\n\n```python\nx = 1  # 中文\n# 注释\n```\n"
                                      "A 半部分\nB 半部分")


def _prose(markdown: str) -> str:
    """What a glossary term is looked for in: no code, and no paper title (titles stay as published)."""
    markdown = re.sub(r"```.*?```", "", markdown, flags=re.S)
    markdown = re.sub(r"`[^`]*`", "", markdown)
    return re.sub(r"\*[^*\n]+\*(?=\s*[（(])", "", markdown)


def test_the_catalogue_uses_the_glossary_and_keeps_quotes_and_citations():
    terms = i18n._toml(i18n.CATALOGUE / "glossary.toml")["terms"]
    problems = []
    for path in CHAPTERS:
        nb, result = chapter(path), matched(path)
        for i, zh in result.translated.items():
            en, where = nb.cells[i].source, f"{path.stem} cell {nb.cells[i].id}"
            for name, term in terms.items():
                if re.search(term["en"], _prose(en)) and not any(form in zh for form in term["zh"]):
                    problems.append(f"{where}: the English says {term['en']!r}, the Chinese lacks {term['zh']}")
            if sorted(re.findall(r"\[@([^\]]+)\]", en)) != sorted(re.findall(r"\[@([^\]]+)\]", zh)):
                problems.append(f"{where}: the citations differ")
            quotes = [line for line in en.splitlines() if line.startswith("> ") and re.search("[\u4e00-\u9fff]", line)]
            problems += [f"{where}: the article's sentence is not quoted as it is" for q in quotes if q not in zh]
    assert problems == []


def test_a_glossary_violation_is_caught():
    terms = i18n._toml(i18n.CATALOGUE / "glossary.toml")["terms"]
    english, chinese = "We fine-tune the pretrained model.", "我们调整这个模型。"
    caught = [n for n, t in terms.items() if re.search(t["en"], english) and not any(f in chinese for f in t["zh"])]
    assert caught == ["pretraining", "fine-tuning"]


def test_every_registered_claim_has_a_current_chinese_form():
    registry = {k: v for k, v in check.preregistration().items() if isinstance(v, dict)}
    claims = i18n.claims()
    assert set(claims) == set(registry)
    for key, entry in registry.items():
        assert claims[key]["en"] == i18n.fingerprint(entry["claim"]), f"{key}: the English claim changed"
        if "retired" in entry:
            assert claims[key]["retired_en"] == i18n.fingerprint(entry["retired"]), f"{key}: its retirement changed"


def test_a_changed_claim_prints_its_english_not_a_stale_translation(chinese):
    entry = check.preregistration("ch7_bigger_model_no_better")
    assert i18n.claim(entry["claim"], "ch7_bigger_model_no_better") == i18n.claims()["ch7_bigger_model_no_better"]["zh"]
    assert i18n.claim(entry["claim"] + " (edited)", "ch7_bigger_model_no_better") == entry["claim"] + " (edited)"


def test_every_text_chapter_code_shows_is_translated():
    """Exercise hints and messages, reported claims and figure labels written in the chapters' code."""
    calls = [call for path in CHAPTERS for _, _, call in translate.shown_texts(chapter(path))]
    assert calls.count("exercise") > 50 and calls.count("report") > 20 and calls.count("bars") > 5
    assert translate.untranslated_texts() == []


def test_a_new_hint_or_label_is_reported_missing(monkeypatch):
    monkeypatch.setattr(translate, "shown_texts", lambda nb: iter([("a brand-new hint", False, "exercise"),
                                                                   ("Accuracy at {} px", True, "bars")]))
    assert translate.untranslated_texts()[:2] == [
        f"missing: strings.toml: {CHAPTERS[0].stem}'s exercise() text 'a brand-new hint'",
        f"missing: strings.toml: {CHAPTERS[0].stem}'s bars() text 'Accuracy at {{}} px'"]


def test_exercise_lines_and_stubs_read_chinese(chinese, capsys):
    from tutorlib import exercises

    exercises.exercise(True, "gain = 0.012", "subtract the two columns of replicates, then take the mean")
    assert capsys.readouterr().out == "正确 Correct: 增益 = 0.012\n"  # the grader still finds "Correct:"
    with pytest.raises(AssertionError, match="^还没有 Not yet: 把 replicates 的两列相减，再取平均值$"):
        exercises.exercise(False, "", "subtract the two columns of replicates, then take the mean")
    nb = translate.chapter(CHAPTERS[0])
    stub = next(c.source for c in student_version(nb).cells if "raise NotImplementedError" in c.source)
    assert stub.startswith("# 练习 1：在这里写你的代码。它必须设置 rarest_count。\n# 提示：从 data.long_tail 取得索引")
    assert exercise_hint(next(c.source for c in nb.cells if "exercise(" in c.source)) is not None


def test_verdict_lines_print_the_chinese_claim_and_record_the_english(chinese, tmp_path, monkeypatch, capsys):
    import pandas as pd

    results = tmp_path / "results.jsonl"
    monkeypatch.setenv("TUTORLIB_RESULTS", str(results))
    check.report_retired("ch1_positive_control")
    out = capsys.readouterr().out
    assert out.startswith("仅报告 NOT ASSERTED 阳性对照：每类 5 个标注时") and "已退役，不再重跑" in out
    record = pd.read_json(results, lines=True).iloc[0]
    assert record.claim.startswith("Positive control: at 5 labels per class") and record.shown.startswith("阳性对照")
    reason = check.preregistration("ch1_positive_control")["retired"]  # both editions record the same numbers
    assert record.numbers == {"reason": reason} and i18n.retired("ch1_positive_control", reason) in out


def test_english_is_untouched_by_the_catalogue(monkeypatch, capsys):
    monkeypatch.delenv(i18n.LANG_VAR, raising=False)
    check.report("Some finding", a=1)
    assert capsys.readouterr().out == "NOT ASSERTED Some finding: a=1\n"
    assert i18n.text("Transfer gain") == "Transfer gain"


def test_an_unknown_edition_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(i18n.LANG_VAR, "fr")
    with pytest.raises(ValueError, match="TUTORLIB_LANG=zh for Chinese"):
        i18n.language()


def test_the_bundled_font_is_the_recorded_one_and_covers_every_character():
    from fontTools.ttLib import TTFont

    digest = hashlib.sha256(i18n.FONT.read_bytes()).hexdigest()
    assert i18n.FONT.with_suffix(".sha256").read_text().split()[0] == digest
    font = TTFont(str(i18n.FONT))
    cmap = font.getBestCmap()
    assert font["name"].getDebugName(1) == i18n.FONT_FAMILY
    used = "".join(p.read_text(encoding="utf-8") for p in sorted(i18n.CATALOGUE.rglob("*"))
                   if p.suffix in (".md", ".toml"))
    uncovered = sorted({ch for ch in used if ord(ch) > 0x2E7F and ord(ch) not in cmap})
    assert uncovered == []
    assert i18n.FONT.stat().st_size < 2_000_000  # it travels in every wheel


def test_a_chinese_figure_has_no_missing_glyphs(chinese, tmp_path):
    """Drawn with the bundled font only: matplotlib warns for each glyph its fonts lack; none may be missing."""
    import pandas as pd
    from matplotlib import font_manager

    from tutorlib import plots

    table = pd.DataFrame({"arm": ["raw pixels", "random init"], "accuracy": [0.8, 0.7]})
    figure = plots.bars(table, "arm", "accuracy", title="What the small model costs, pretrained and from scratch")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = plots._png(figure)
    assert not [w for w in caught if "missing from font" in str(w.message)]
    assert png[:4] == b"\x89PNG"
    texts = [t.get_text() for ax in figure.axes for t in ax.get_xticklabels()] + [figure.axes[0].get_title()]
    assert texts == ["原始像素", "随机初始化", "小模型的代价：预训练与从零训练"]
    found = font_manager.findfont(font_manager.FontProperties(family=i18n.FONT_FAMILY), fallback_to_default=False)
    assert found == str(i18n.FONT)


def test_a_damaged_font_is_refused(tmp_path, monkeypatch):
    damaged = tmp_path / i18n.FONT.name
    damaged.write_bytes(i18n.FONT.read_bytes()[:-10] + b"0123456789")
    damaged.with_suffix(".sha256").write_text(i18n.FONT.with_suffix(".sha256").read_text())
    monkeypatch.setattr(i18n, "FONT", damaged)
    i18n._use_font.cache_clear()
    try:
        with pytest.raises(ValueError, match="does not match its recorded sha256"):
            i18n._use_font()
    finally:
        i18n._use_font.cache_clear()


def test_get_and_student_give_the_chinese_chapters(chinese, tmp_path, monkeypatch):
    from tutorlib.tools import lab, student

    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter"))  # not the learner's own settings
    copied = lab.get(tmp_path / "zh")
    assert len(copied) == len(CHAPTERS)
    first = nbformat.read(copied[0], as_version=4)
    assert first.cells[0].source.startswith("# 第 1 章")
    (tmp_path / "zh" / copied[1].name).write_text(copied[1].read_text() + " ")  # a learner's edit is kept
    assert len(lab.get(tmp_path / "zh")) == len(CHAPTERS) - 1
    written = student.write_student_versions(tmp_path / "student-zh")
    stub = nbformat.read(written[0], as_version=4)
    assert any("# 练习 1：" in c.source for c in stub.cells)
    settings = lab.chinese_lab_settings()
    assert '"locale": "zh_CN"' in (settings / "@jupyterlab" / "translation-extension" /
                                    "plugin.jupyterlab-settings").read_text()


def test_student_copies_in_english_stay_english(monkeypatch):
    monkeypatch.delenv(i18n.LANG_VAR, raising=False)
    nb = translate.chapter(CHAPTERS[0])
    assert nb == chapter(CHAPTERS[0]) and copy.deepcopy(nb).cells[0].source.startswith("# Chapter 1")


def test_every_template_fills_its_chinese_with_every_number(chinese):
    table = i18n._toml(i18n.CATALOGUE / "strings.toml")["templates"]
    for english, chinese_text in table.items():
        values = [f"<{n}>" for n in range(english.count("{}"))]
        filled = i18n.text(english.replace("{}", "{:s}").format(*values)) if values else i18n.text(english)
        assert all(v in filled for v in values) and "{" not in filled.replace("{}", ""), (english, filled)
