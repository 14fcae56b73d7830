"""The write-up: verdicts beside the reference run, citations, the environment, offline chapter pages."""
import base64
import json
import pathlib

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from tutorlib import check
from tutorlib.tools import build, paths, writeup

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIB = writeup.read_bibliography(ROOT / "notebooks" / "references.bib")


def verdict(claim: str, status: str = "PASS", **numbers) -> dict:
    return {"claim": claim, "status": status, "numbers": numbers, "paper": None}


def reference(*rows, profile: str = "standard", seeds=(0, 1, 2)) -> dict:
    chapters = [{"name": "01_x", "verdicts": list(rows)}]
    env = {"profile": profile, "seeds": list(seeds), "commit": "abc123", "date": "2026-12-03T12:00"}
    return writeup.reference_from(chapters, env)


def test_a_rerun_with_the_same_numbers_agrees_and_each_kind_of_change_is_named():
    effect = verdict("A beats B [effect > 0.01, 95% interval over 9 paired units]", effect=0.05, interval=[0.03, 0.07])
    paired = verdict("C beats D [gap > 0.1 on every seed]", smallest_gap=0.2)
    ref = reference(effect, paired)
    same = writeup.compare([{"name": "01_x", "verdicts": [effect, paired]}], ref, "standard", [0, 1, 2])
    assert same["agree"] == same["compared"] == 2 and not same["missing"]

    moved = dict(effect, numbers={"effect": 0.08, "interval": [0.06, 0.1]})  # still PASS, but outside [0.03, 0.07]
    flipped = dict(paired, status="FAIL")
    new = verdict("E is new [gap > 0 on every seed]", smallest_gap=0.1)
    out = writeup.compare([{"name": "01_x", "verdicts": [moved, flipped, new]}], ref, "standard", [0, 1, 2])["outcome"]
    assert "left the reference's interval" in out["01 " + moved["claim"]]
    assert "PASS in the reference, FAIL now" in out["01 " + flipped["claim"]]
    assert out["01 " + new["claim"]].startswith("new")
    dropped = writeup.compare([{"name": "01_x", "verdicts": [effect]}], ref, "standard", [0, 1, 2])
    assert dropped["missing"] == ["01 " + paired["claim"]]


def test_another_profile_or_seed_set_is_not_compared_and_says_why():
    ref = reference(verdict("A [gap > 0 on every seed]", smallest_gap=1.0))
    other = writeup.compare([], ref, "quick", [0, 1, 2])
    assert not other["comparable"] and "quick" in other["why"] and "standard" in other["why"]
    assert "not comparable" not in writeup.comparison_line(other) and "Not compared" in writeup.comparison_line(other)
    assert not writeup.compare([], None, "standard", [0, 1, 2])["comparable"]


def test_the_committed_reference_run_is_the_standard_profile_on_the_default_seeds():
    path = ROOT / "notebooks" / "reference_run.json"
    if not path.exists():
        pytest.skip("no reference run committed yet")
    ref = json.loads(path.read_text())
    env = ref["environment"]
    assert env["profile"] == "standard" and env["seeds"] == [0, 1, 2] and env["tree"] == "clean"
    assert env["chapters"] == "all" and len({v["id"][:2] for v in ref["verdicts"]}) == 7
    assert all(v["status"] in ("PASS", "REPORTED", "FAIL", "INCONCLUSIVE") for v in ref["verdicts"])


def test_citations_become_numbered_links_and_an_unknown_key_shows():
    numbers = {"yosinski2014transferable": 1}
    text = writeup.cite_html("AnB+ recovers [@yosinski2014transferable]; see [@nobody2099] <b>", numbers)
    assert "<a href='#ref-yosinski2014transferable'>[1]</a>" in text and "[nobody2099?]" in text and "&lt;b&gt;" in text
    listed = writeup.reference_list(numbers, BIB)
    assert "id='ref-yosinski2014transferable'" in listed and "https://arxiv.org/abs/1411.1792" in listed
    assert writeup.authors(BIB["howard2018ulmfit"]) == "Jeremy Howard and Sebastian Ruder"


def test_the_environment_names_the_commit_versions_cpu_threads_and_the_command():
    env = writeup.environment(ROOT, "standard", [0, 1, 2], 12.0)
    for field in ("commit", "tree", "tutorlib", "torch", "timm", "numpy", "python", "cpu", "threads", "thread_policy",
                  "profile", "seeds", "date", "seconds", "command"):
        assert env[field] not in (None, ""), field
    assert f"TUTORLIB_THREADS={env['threads']}" in env["command"] and "TUTORLIB_SEEDS=0,1,2" in env["command"]
    assert "--profile standard" in env["command"]
    installed = writeup.environment(None, "quick", [5, 6], 1.0, only=["07"])
    assert installed["command"].startswith("pip install tutorlib==") and "--only 07" in installed["command"]


def chapter_with_an_exercise() -> nbformat.NotebookNode:
    png = base64.b64encode(b"\x89PNG fake").decode()
    figure = new_code_cell("plots.bars(...)", metadata={"tags": ["key-figure"]},
                           outputs=[new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})])
    solution = new_code_cell("answer_1 = 42", metadata={"tags": ["solution"]},
                             outputs=[new_output("stream", text="42")])
    self_check = new_code_cell("### BEGIN HIDDEN TESTS\nassert answer_1 == 42\n### END HIDDEN TESTS\n"
                               "check_exercise_1(answer_1)", outputs=[new_output("stream", text="Correct")])
    return new_notebook(cells=[new_markdown_cell("# Chapter 9 · A test\n\n**Key point 9**: a claim [@he2015delving]."),
                               figure, solution, self_check])


def test_a_chapter_page_is_titled_links_back_hides_solutions_and_loads_nothing_online(tmp_path):
    nb = chapter_with_an_exercise()
    (tmp_path / "figures").mkdir()
    record = build.write_chapter(nb, "09_test", tmp_path, None, 1.0, 10.0, [])
    page = (tmp_path / "09_test.html").read_text()
    assert "<title>Chapter 9 · A test</title>" in page and "href=\"index.html\"" in page
    assert "answer_1 = 42" not in page and "NotImplementedError" in page and "HIDDEN" not in page
    assert "cdnjs" not in page and "<script src=\"http" not in page
    assert "<a href='index.html#ref-he2015delving'>" in page and record["cites"] == ["he2015delving"]
    assert record["figure"] and (tmp_path / "figures" / "09_test.png").read_bytes() == b"\x89PNG fake"
    assert record["title"] == "Chapter 9 · A test" and "[@he2015delving]" in record["claim"]
    assert nb.cells[2].source == "answer_1 = 42"  # the executed notebook itself is left whole


def test_the_index_shows_claims_figures_verdicts_apart_from_reports_references_and_the_command(tmp_path):
    nb = chapter_with_an_exercise()
    (tmp_path / "figures").mkdir()
    asserted = verdict("Lite0 beats the CNN [effect > 0.01, 95% interval over 9 paired units]",
                       effect=0.05, interval=[0.03, 0.07], units=9)
    asserted["paper"] = "Kornblith et al. 2019 [@kornblith2019better]: better ImageNet models transfer better"
    reported = verdict("a thing we saw", "REPORTED", value=3)
    chapter = build.write_chapter(nb, "09_test", tmp_path, None, 1.0, 10.0, [asserted, reported])
    env = writeup.environment(ROOT, "standard", [0, 1, 2], 60.0)
    comparison = writeup.compare([chapter], reference(), "standard", [0, 1, 2])
    page = writeup.write_index([chapter], env, comparison, BIB, tmp_path).read_text()
    assert "<img src='figures/09_test.png'" in page and "<b>Key point 9</b>: a claim <a href='#ref-he2015delving'>" in page
    assert page.index("Asserted (1)") < page.index("Lite0 beats the CNN") < page.index("Reported, not asserted (1)")
    assert page.index("Reported, not asserted (1)") < page.index("a thing we saw")
    assert "0.05 [0.03, 0.07]" in page and "effect &gt; 0.01, 95% interval over 9 paired units" in page
    assert "id='ref-he2015delving'" in page and "id='ref-kornblith2019better'" in page
    assert env["command"].replace("&", "&amp;") in page and "new: not in the reference run" in page


def test_only_a_whole_clean_standard_run_on_the_default_seeds_becomes_the_reference(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "REFERENCE_RUN", tmp_path / "reference_run.json")
    good = {"profile": "standard", "seeds": [0, 1, 2], "tree": "clean"}
    for env, only, failed, words in [({**good, "profile": "quick"}, None, 0, "not standard"),
                                     ({**good, "seeds": [20, 21, 22]}, None, 0, "not the default"),
                                     (good, ["07"], 0, "only some chapters"), (good, None, 1, "1 chapters failed"),
                                     ({**good, "tree": "modified (uncommitted changes)"}, None, 0, "modified")]:
        with pytest.raises(SystemExit, match=words):
            build.save_reference_run([], env, failed, only)
    assert not (tmp_path / "reference_run.json").exists()
    build.save_reference_run([{"name": "01_x", "verdicts": [verdict("A [gap > 0 on every seed]", smallest_gap=1)]}],
                              good, 0, None)
    assert json.loads((tmp_path / "reference_run.json").read_text())["verdicts"][0]["estimate"] == 1


def test_the_rule_is_the_last_bracketed_group_even_when_it_holds_brackets():
    retired = ("Imbalanced vs balanced [registered: equivalence within +-0.02, 90% interval over 15 units; "
               "retired: failed, -0.014, 90% interval [-0.0204, -0.0075]]")
    assert writeup.split_rule(retired) == ("Imbalanced vs balanced", retired[24:-1])
    assert writeup.split_rule("A beats B [gap > 0 on every seed]") == ("A beats B", "gap > 0 on every seed")
    assert writeup.split_rule("no rule here") == ("no rule here", "")
    assert writeup.split_rule("unbalanced ]") == ("unbalanced ]", "")


def test_a_registry_entry_changed_after_the_reference_run_is_flagged_by_name():
    effect = verdict("A beats B [effect > 0.01, 95% interval over 9 paired units]", effect=0.05, interval=[0.03, 0.07])
    ref = reference(effect)
    now = check.registry_fingerprint()
    key = sorted(now)[0]
    ref["environment"]["registry"] = dict(now, **{key: "0" * 16}, gone_entry="1" * 16)
    comparison = writeup.compare([{"name": "01_x", "verdicts": [effect]}], ref, "standard", [0, 1, 2], now)
    assert comparison["registry_changed"] == [key, "gone_entry (removed)"]
    line = writeup.comparison_line(comparison)
    assert "WARNING" in line and key in line and "changed after registration" in line
    ref["environment"]["registry"] = now  # the same registry: nothing to flag
    same = writeup.compare([{"name": "01_x", "verdicts": [effect]}], ref, "standard", [0, 1, 2], now)
    assert same["registry_changed"] == [] and "WARNING" not in writeup.comparison_line(same)


def test_the_registry_fingerprint_follows_fields_not_comments(tmp_path, monkeypatch):
    text = (ROOT / "notebooks" / "verdicts.toml").read_text()
    copy = tmp_path / "verdicts.toml"
    copy.write_text("# a comment a learner added\n" + text)
    monkeypatch.setattr(check, "_verdicts_file", lambda: copy)
    commented = check.registry_fingerprint()
    key = next(iter(commented))
    copy.write_text(text.replace("min_effect = 0.015", "min_effect = 0.001", 1))
    lowered = check.registry_fingerprint()
    monkeypatch.undo()
    assert commented == check.registry_fingerprint()
    assert lowered[key] != commented[key] and sum(lowered[k] != commented[k] for k in commented) == 1


@pytest.mark.parametrize("rule", ["registered: equivalence within +-0.02 over 15 units; retired, not re-run",
                                  "equivalence within +-0.02, 90% interval over 15 units; retired: failed, -0.014"])
def test_a_retired_verdict_is_labelled_retired_however_the_chapter_printed_it(rule):
    """Chapter 1 prints its retired entries without re-running them ("retired, not re-run"); check.registered
    re-measures others ("retired: ..."): the write-up labels both RETIRED and lists neither as asserted."""
    retired = verdict(f"Five classes vs two [{rule}]", status="REPORTED")
    live = verdict("A beats B [effect > 0.01, 95% interval over 9 paired units]", effect=0.05, interval=[0.03, 0.07])
    rows = writeup.verdict_rows("01_x", [retired, live], {}, {})
    assert rows.count(">RETIRED<") == 1 and rows.count(">PASS<") == 1
    section = writeup.chapter_section({"name": "01_x", "title": "x", "claim": "", "verdicts": [retired, live],
                                       "error": None, "seconds": 1.0, "peak_mib": 1.0}, {}, {})
    assert "Asserted (1)" in section and section.index("A beats B") < section.index("Five classes vs two")


def test_a_quick_verdict_with_too_few_units_shows_its_mean_without_an_interval():
    too_few = {"status": "INCONCLUSIVE", "claim": "x [effect > 0.02]",
               "numbers": {"effect": 0.116, "interval": [float("nan"), float("nan")], "units": 3,
                           "units the interval needs": 9}}
    assert writeup.measured(too_few) == (0.116, None)
    decided = dict(too_few, numbers={"effect": 0.1, "interval": [0.05, 0.15], "units": 12})
    assert writeup.measured(decided) == (0.1, [0.05, 0.15])
