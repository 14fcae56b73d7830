"""Profiles, seeds, verdict cells, the package surface and the notebooks' committed state."""
import json
import pathlib

import pytest
import torch

import tutorlib
from tutorlib import check, profile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_profiles(monkeypatch):
    monkeypatch.setenv("TUTORLIB_PROFILE", "quick")
    assert profile.current().name == "quick"
    assert profile.current("full").data_size == "full"
    monkeypatch.setenv("TUTORLIB_PROFILE", "quik")
    with pytest.raises(ValueError, match="quick"):
        profile.current()
    assert profile.PROFILES["quick"].epochs(5) == 2 and profile.PROFILES["quick"].epochs(1) == 1


def test_seed_everything_repeats():
    g1 = profile.seed_everything(3)
    a = (torch.rand(3), torch.rand(2, generator=g1))
    g2 = profile.seed_everything(3)
    b = (torch.rand(3), torch.rand(2, generator=g2))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_expect_passes_prints_and_records(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUTORLIB_RESULTS", str(tmp_path / "r.jsonl"))
    check.expect(0.9 > 0.8, "pretrained beats scratch", pretrained=0.9, scratch=torch.tensor(0.8))
    assert "PASS pretrained beats scratch: pretrained=0.9, scratch=0.8" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="FAIL gap is positive: gap=-0.0123"):
        check.expect(False, "gap is positive", gap=-0.01234)
    check.report("OOD gain", lp_ft=0.33, ft=0.36)
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [x["status"] for x in lines] == ["PASS", "FAIL", "REPORTED"]


def test_mean_sd_and_exercise():
    assert check.mean_sd([0.8, 0.9, 1.0]) == "0.900 ± 0.100 (n=3)"
    check.exercise(True, "well done", "hint")
    with pytest.raises(AssertionError, match="Not yet: look again"):
        check.exercise(False, "well done", "look again")


def test_public_api_names():
    contract = {
        "data": ["load_fashion_mnist", "load_digits", "load_image_folder", "stratified_split", "select_classes",
                 "few_shot", "long_tail", "add_label_noise", "corrupt"],
        "models": ["small_cnn", "efficientnet_lite", "load_checkpoint", "list_checkpoints"],
        "surgery": ["replace_head", "layer_groups", "freeze", "unfreeze", "discriminative_param_groups",
                    "transplant", "prune_magnitude"],
        "train": ["fit", "evaluate", "linear_probe", "extract_features", "distillation_loss", "l2sp_penalty",
                  "History", "TrainingDiverged"],
        "analysis": ["linear_cka", "gradient_norms", "logme", "count_flops", "latency", "per_class_accuracy"],
        "check": ["expect"],
        "profile": ["current", "seed_everything"],
    }
    for module, names in contract.items():
        for name in names:
            assert callable(getattr(getattr(tutorlib, module), name)), f"tutorlib.{module}.{name}"
    assert issubclass(tutorlib.train.TrainingDiverged, RuntimeError)


def test_plots_return_figures(blobs):
    import pandas as pd
    from matplotlib.figure import Figure
    from tutorlib import plots

    df = pd.DataFrame({"x": [1, 2, 1, 2], "acc": [0.5, 0.6, 0.55, 0.65], "method": ["a", "a", "b", "b"]})
    for fig in (plots.lines(df, "x", "acc", "method"), plots.bars(df, "method", "acc"),
                plots.scatter(df, "x", "acc", label="method"), plots.layer_profile(df, "x", "acc", "method"),
                plots.image_grid(blobs[0][:6], blobs[1][:6], ["a", "b", "c"], ncols=3)):
        assert isinstance(fig, Figure)


def test_notebooks_are_committed_without_outputs():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, path.name


# ----------------------------------------------------------------------------- write-up and student versions
NOTEBOOK_PATHS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_verdict_records_carry_paper_profile_and_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORLIB_RESULTS", str(tmp_path / "r.jsonl"))
    check.expect(True, "x beats y", paper="Someone et al. 2020: +2 points", gap=0.01)
    record = json.loads((tmp_path / "r.jsonl").read_text())
    assert record["paper"] == "Someone et al. 2020: +2 points"
    assert record["profile"] == "quick" and record["seeds"] == list(profile.current().seeds)


def test_every_chapter_sets_some_verdicts_against_a_paper():
    import nbformat

    for path in NOTEBOOK_PATHS:
        sources = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert sources.count("paper=") >= 3, f"{path.name}: fewer than 3 verdicts name their anchor paper"


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.name[:2])
def test_student_version_hides_every_solution(path):
    import nbformat
    from tutorlib import course

    original = nbformat.read(path, as_version=4)
    student = course.student_version(original)
    pairs = course.exercises(original)
    assert len(pairs) == 3 and len(student.cells) == len(original.cells)
    for number, (solution, check_cell) in enumerate(pairs, 1):
        stub, answer_source = student.cells[solution].source, original.cells[solution].source
        assert answer_source not in stub and "solution" not in student.cells[solution].metadata["tags"]
        visible = course.without_hidden_tests(original.cells[check_cell].source)
        assert student.cells[check_cell].source == visible  # the self-check stays, less its hidden tests
        assert "check.answered(" in original.cells[check_cell].source
        assert "# Hint:" in stub, f"{path.name} exercise {number}: the self-check's hint is not plain text"
        namespace = {}
        with pytest.raises(NotImplementedError, match=f"Exercise {number}"):
            exec(stub, namespace)
        for name in course.answer_names(original.cells[check_cell].source):
            assert namespace[name] is None
            with pytest.raises(AssertionError, match="Not yet"):
                check.answered(namespace[name])


def test_student_command_writes_seven_notebooks(tmp_path):
    from tutorlib import course

    written = course.write_student_versions(tmp_path)
    assert [p.name for p in written] == [p.name for p in NOTEBOOK_PATHS]


def test_explorer_is_a_widget_in_lab_and_a_static_figure_headless(monkeypatch):
    import ipywidgets
    from matplotlib.figure import Figure
    from tutorlib import plots

    calls = []

    def draw(depth, init):
        calls.append((depth, init))
        return plots.bars(__import__("pandas").DataFrame({"init": [init], "loss": [depth / 10]}), "init", "loss")

    monkeypatch.setenv("TUTORLIB_HEADLESS", "1")
    assert isinstance(plots.explorer(draw, depth=[30, 10], init=["he", "xavier"]), Figure)
    assert calls == [(30, "he")]  # headless: the defaults, drawn once, nothing waits for a click

    monkeypatch.setenv("TUTORLIB_HEADLESS", "0")
    widget = plots.explorer(draw, depth=[30, 10], init=["he", "xavier"])
    assert isinstance(widget, ipywidgets.interactive) and calls[-1] == (30, "he")  # defaults drawn at once
    dropdowns = [w for w in widget.children if isinstance(w, ipywidgets.Dropdown)]
    run = next(w for w in widget.children if isinstance(w, ipywidgets.Button))
    assert [d.description for d in dropdowns] == ["depth", "init"] and run.description == "Run"
    dropdowns[0].value, dropdowns[1].value = 10, "xavier"
    assert calls[-1] == (30, "he")  # manual mode: changing a control does not start an experiment
    run.click()
    assert calls[-1] == (10, "xavier")


def test_grade_reads_the_self_checks_of_a_submission(tmp_path):
    """A tiny submission: one right answer, one wrong, one still the stub; grading runs past the errors."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    from tutorlib import course

    def exercise(number, answer_source):
        answer = new_code_cell(answer_source)
        answer.metadata["tags"] = ["exercise"]
        checker = new_code_cell(f"def check_exercise_{number}(answer):\n    check.answered(answer)\n"
                                f"    check.exercise(answer == {number}, 'right', 'it is {number}')\n\n"
                                f"check_exercise_{number}(answer_{number})")
        return [answer, checker]

    stub = course.exercise_stub("check_exercise_3(answer_3)", 3)
    cells = [new_code_cell("from tutorlib import check")] + exercise(1, "answer_1 = 1") \
        + exercise(2, "answer_2 = 5") + exercise(3, stub)
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "submission.ipynb")
    rows = course.grade(tmp_path / "submission.ipynb")
    assert [r["status"] for r in rows] == ["correct", "not yet", "not yet"]
    assert "it is 2" in rows[1]["detail"] and "no answer" in rows[2]["detail"]


def test_a_failing_chapter_is_marked_failed_and_the_others_still_build(tmp_path, monkeypatch):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    from tutorlib import course

    sources = {"01_fine": "from tutorlib import check\ncheck.expect(1 < 2, 'one is less than two', paper='Peano', a=1)",
               "02_broken": "raise ValueError('this chapter is broken')"}
    (tmp_path / "notebooks").mkdir()
    for name, source in sources.items():
        nb = new_notebook(cells=[new_code_cell(source)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp_path / "notebooks" / f"{name}.ipynb")
    monkeypatch.setattr(course, "NOTEBOOKS", tmp_path / "notebooks")
    assert course.build(out_dir=tmp_path / "build") == 1  # one failed chapter
    run = json.loads((tmp_path / "build" / "course" / "run.json").read_text())
    assert [c["error"] is None for c in run["chapters"]] == [True, False]
    assert "this chapter is broken" in run["chapters"][1]["error"]
    index = (tmp_path / "build" / "course" / "index.html").read_text()
    assert "failed</b>: ValueError: this chapter is broken" in index and "one is less than two" in index
    assert "Peano" in index and (tmp_path / "build" / "course" / "01_fine.html").exists()
