"""The Chinese edition end to end: chapter 1 built in both editions, its numbers compared, its pages in a browser.

`make test` runs this chapter here and not through nbval (tutorlib.tools.testing.CHAPTER_IN_BOTH_EDITIONS): its
English run below is the test that it executes, so the Chinese edition costs one chapter, not seven. The other
six Chinese chapters differ from their English ones only in catalogued markdown (tests/test_translation.py).
"""
import json
import os

import pytest

from tutorlib import i18n
from tutorlib.tools import build as build_tool
from tutorlib.tools.testing import CHAPTER_IN_BOTH_EDITIONS

from test_lab_session import CHROMIUM, browser

pytestmark = pytest.mark.slow
CHAPTER = CHAPTER_IN_BOTH_EDITIONS[:2]


@pytest.fixture(scope="module")
def editions(tmp_path_factory):
    """Chapter 1 built in the quick profile in English and in Chinese: {"en": out_dir, "zh": out_dir}."""
    out, missing = tmp_path_factory.mktemp("editions"), tmp_path_factory.mktemp("missing") / "missing.txt"
    saved = {k: os.environ.get(k) for k in (i18n.LANG_VAR, i18n.MISSING_VAR, "TUTORLIB_PROFILE")}
    os.environ["TUTORLIB_PROFILE"] = os.environ.get("TUTORLIB_PROFILE") or "quick"
    try:
        for lang in ("en", "zh"):
            os.environ[i18n.LANG_VAR] = lang
            if lang == "zh":
                os.environ[i18n.MISSING_VAR] = str(missing)  # every text the Chinese chapter showed in English
            assert build_tool.build([CHAPTER], out / lang) == 0, f"the {lang} chapter failed"
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    return {"en": out / "en", "zh": out / "zh", "missing": missing}


def records(folder):
    path = folder / "results" / f"{CHAPTER_IN_BOTH_EDITIONS[:-6]}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_both_editions_decide_the_same_verdicts_with_the_same_numbers(editions):
    english, chinese = records(editions["en"]), records(editions["zh"])
    assert len(english) == len(chinese) > 5
    for a, b in zip(english, chinese):
        assert (a["status"], a["claim"], a["numbers"]) == (b["status"], b["claim"], b["numbers"])
        assert "shown" not in a and any("\u4e00" <= ch <= "\u9fff" for ch in b["shown"])


def test_the_chinese_chapter_shows_no_english_text(editions):
    """Figures, verdict lines and hints: nothing fell back to English (identifiers aside, which read the same)."""
    shown = editions["missing"].read_text(encoding="utf-8").splitlines() if editions["missing"].exists() else []
    assert shown == []


def test_the_chinese_chapter_answers_its_exercises_in_chinese(editions):
    import nbformat

    nb = nbformat.read(editions["zh"] / "notebooks" / CHAPTER_IN_BOTH_EDITIONS, as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert printed.count("正确 Correct: ") >= 3 and "Not yet" not in printed  # the key's answers, checked
    assert "不成立 FAIL" not in printed


def test_the_chinese_chapter_page_and_index(editions):
    index = (editions["zh"] / "course" / "index.html").read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in index and "预训练 CNN，实测：报告" in index and "第 1 章" in index
    assert "成立 PASS" in index or "仅报告 NOT ASSERTED" in index
    page = (editions["zh"] / "course" / f"{CHAPTER_IN_BOTH_EDITIONS[:-6]}.html").read_text(encoding="utf-8")
    assert "源数据教会了模型什么" in page and "练习 1" in page
    assert "# 练习 1：在这里写你的代码" in page  # the class edition's stub, in Chinese


def test_a_browser_shows_the_chinese_index_and_chapter(editions, tmp_path):
    sync_playwright = browser()
    course = editions["zh"] / "course"
    shots = build_tool.paths.BUILD / "test-screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = chromium.new_page(viewport={"width": 1200, "height": 900})
        page.goto((course / "index.html").as_uri())
        assert page.locator("h1").inner_text() == "预训练 CNN，实测：报告"
        assert page.locator("h2").first.inner_text() == "逐章的发现"
        page.screenshot(path=str(shots / "zh-index.png"))
        page.locator(f"a[href='{CHAPTER_IN_BOTH_EDITIONS[:-6]}.html']").first.click()
        page.wait_for_load_state()
        assert page.locator("h1").first.inner_text().startswith("第 1 章")
        assert "预训练 CNN，实测：报告" in page.locator("nav").inner_text()
        page.screenshot(path=str(shots / "zh-chapter.png"))
        chromium.close()


def test_jupyterlab_in_chinese_opens_the_chinese_chapters(tmp_path, monkeypatch):
    """`lab --lang zh`'s setup: the Chinese chapters, JupyterLab's zh-CN language pack, kernels in Chinese."""
    from test_lab_session import SHOWN, TOKEN, run_cell, serve, wait_idle
    from tutorlib.tools import lab as lab_tool

    sync_playwright = browser()
    monkeypatch.setenv(i18n.LANG_VAR, "zh")
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter"))
    folder = tmp_path / "中文课程"
    lab_tool.get(folder)
    server, url = serve(folder, lab_tool.chinese_lab_settings(), tmp_path)
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = chromium.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/lab/tree/07_choosing_a_model.ipynb?token={TOKEN}&reset")
            page.wait_for_selector(f"{SHOWN} .jp-CodeCell", timeout=60_000)
            wait_idle(page)
            menus = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
            assert menus[:2] == ["文件", "编辑"], menus  # the zh-CN language pack
            title = page.locator(f"{SHOWN} .jp-RenderedMarkdown h1").first
            title.wait_for(timeout=60_000)  # markdown renders after the cells appear (slowly on a busy machine)
            assert title.inner_text().startswith("第 7 章 · 在可用的模型中做选择")
            run_cell(page, "from tutorlib import")
            assert not page.locator(f"{SHOWN} .jp-OutputArea-output[data-mime-type*=error]").count()
            shots = build_tool.paths.BUILD / "test-screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "zh-lab.png"))
            chromium.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
