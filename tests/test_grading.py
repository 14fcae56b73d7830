"""Grading a class's batch: each submission apart, timeouts that report, and a line for every file.

The batch holds an honest submission, a cheating one (it rebinds the self-checks), a forging one (it replaces
the answers it writes with a pickle that runs code when loaded), a destructive one (it deletes a file of the
teacher's and blanks the next submission on disk), an endless one, a stubborn one and a broken file.
Run as root on Linux (CI), the kernels run as `nobody` and the destructive one harms nothing; elsewhere the
test checks what it can and says so.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from tutorlib.tools import grading
from tutorlib.tools import student as student_copies

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "tests" / "fixtures" / "mini_chapter.ipynb"
SANDBOXED = grading.sandbox_user() is not None  # root on Linux, with an environment `nobody` can run


def submission(folder: Path, name: str, first_cell_extra: str = "", answers: tuple[int, ...] = ()) -> Path:
    """A student copy of the mini chapter, with the key's answers to `answers` and code added to its first cell."""
    key = nbformat.read(MINI, as_version=4)
    nb = student_copies.student_version(key)
    stubs = [i for i, c in enumerate(nb.cells) if student_copies.is_answer_cell(c)]
    for n in answers:
        nb.cells[stubs[n - 1]].source = key.cells[student_copies.exercises(key)[n - 1][0]].source
    nb.cells[1].source += "\n" + first_cell_extra
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


CHEAT = """
from tutorlib import exercises as _e
_e.answered = lambda answer: None
_e.exercise = lambda passed, success, hint, final=True: print("Correct: forged")
"""


def forge(marker: Path) -> str:
    """Code that makes the kernel write, instead of its answers, a pickle that would create `marker` when loaded."""
    return f"""
import pathlib, pickle
from tutorlib.tools import answers as _a
class _Payload:
    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path({str(marker)!r}),))
def _forged(names, namespace, folder="."):
    pathlib.Path(folder, "answers.json").write_text('{{"n_params": {{"kind": "tensor"}}}}')
    pathlib.Path(folder, "answers.pt").write_bytes(pickle.dumps({{"n_params": _Payload()}}))
_a.export = _forged
"""


# Endless without spinning a core (the other test process shares the machine); the stubborn one ignores Ctrl-C.
ENDLESS = "import time\nwhile True:\n    time.sleep(0.2)"
STUBBORN = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.2)"


@pytest.fixture
def batch(tmp_path):
    teacher = tmp_path / "teacher"
    submitted = tmp_path / "submitted"
    teacher.mkdir(), submitted.mkdir()
    precious = teacher / "marks.csv"
    precious.write_text("alice,10\n")
    for p in (tmp_path, teacher, submitted):
        p.chmod(0o755)  # the teacher's folders as they usually are: readable by all, writable by the teacher
    honest = submission(submitted, "a_honest", answers=(1, 2, 3))
    destroy = (f"import os, pathlib\nfor _p in [{str(precious)!r}, {str(honest)!r}]:\n"
               f"    try:\n        os.remove(_p)\n    except OSError as err:\n        print('refused:', err)\n")
    marker = tmp_path / "unpickled"
    return {"teacher": teacher, "precious": precious, "honest": honest, "marker": marker, "paths": [
        honest,
        submission(submitted, "b_cheat", CHEAT, answers=(3,)),
        submission(submitted, "b_forge", forge(marker), answers=(2,)),
        submission(submitted, "c_destroy", destroy, answers=(2,)),
        submission(submitted, "d_endless", ENDLESS, answers=(1,)),
        submission(submitted, "e_stubborn", STUBBORN, answers=(1,)),
        submitted / "f_broken.ipynb",
    ]}


def test_a_batch_with_cheating_destructive_and_endless_submissions_finishes_with_a_line_each(batch, capsys):
    batch["paths"][-1].write_text('{"cells": [')  # truncated
    before = batch["honest"].read_bytes()
    started = time.perf_counter()
    results = grading.grade_all(batch["paths"], key=MINI, cell_timeout=10, notebook_timeout=25)
    took = time.perf_counter() - started
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(("  ", "Note: "))]
    honest, cheat, forged, destroy, endless, stubborn, broken = results

    assert [r["status"] for r in honest.rows] == ["correct"] * 3 and honest.problem is None
    # Interrupted, the endless cell ends and the rest runs; the stubborn one ignores the interrupt and is stopped.
    assert [r["status"] for r in endless.rows] == ["correct", "not yet", "not yet"], endless.rows
    assert [r["status"] for r in stubborn.rows] == ["not run"] * 3, stubborn.rows
    assert "ran past the cell timeout of 10 s" in endless.problem
    assert "stopped at the notebook timeout of 25 s" in stubborn.problem
    assert broken.rows == [] and "not a readable notebook" in broken.problem
    assert len(lines) == 7 and lines[-1].endswith("not graded (not a readable notebook (NotJSONError): was it "
                                                   "saved completely?)"), lines
    assert took < 7 * 25 + 60  # each within its notebook timeout, plus the kernels' start and the key's run
    # Rebinding the checks in its own kernel changes nothing: the key's kernel checks its answers, as data.
    assert [r["status"] for r in cheat.rows] == ["not yet", "not yet", "correct"], cheat.rows
    # A forged answers file is loaded with weights_only=True: refused, never unpickled.
    assert not batch["marker"].exists()
    assert [r["status"] for r in forged.rows] == ["not yet"] * 3, forged.rows
    assert "could not be read back" in forged.rows[0]["detail"], forged.rows
    if not SANDBOXED:
        pytest.skip(f"submissions run with the grader's rights here ({grading._unprotected_reason()})")
    assert batch["precious"].read_text() == "alice,10\n" and batch["honest"].read_bytes() == before
    assert [r["status"] for r in destroy.rows] == ["not yet", "correct", "not yet"]


def test_the_command_line_takes_timeouts_and_refuses_nonsense(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tutorlib.course", "grade", "x.ipynb", "--timeout", "0"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and "whole number of seconds" in result.stderr
    result = subprocess.run([sys.executable, "-m", "tutorlib.course", "grade", str(tmp_path / "missing.ipynb")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1 and "missing.ipynb: not graded (no such file)" in result.stdout


@pytest.mark.skipif(not SANDBOXED, reason=f"no sandbox here: {grading._unprotected_reason()}")
def test_as_root_the_kernels_run_as_nobody_in_a_private_folder(tmp_path):
    """Where the grader is root on Linux and `nobody` can run this environment (CI), the kernel runs as `nobody`."""
    probe = submission(tmp_path, "probe", "import os\nprint('uid', os.getuid(), os.listdir('.'))")
    nb = grading._read(probe)
    folder = Path(tempfile.mkdtemp(prefix="grade-"))  # as grade() makes it
    try:
        assert grading._run(nb, folder, 30, 60) is None
    finally:
        shutil.rmtree(folder)
    printed = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "uid 65534 " in printed, printed  # nobody, in a folder of its own kernel's files and nothing else
    assert set(ast.literal_eval(printed.split("uid 65534 ")[1])) <= {"kernel.json", ".ipython", ".matplotlib"}, printed


def test_answers_travel_as_data_and_come_back_equal(tmp_path):
    """What the checking kernel binds equals what the submission's kernel held; what it cannot read is 'Not yet'."""
    import json

    import numpy as np
    import pandas as pd
    import torch

    from tutorlib import models
    from tutorlib.tools import answers

    net = models.small_cnn(8, 2, 5)
    held = {"count": 725, "mean": np.float64(0.25), "name": "head", "net": net, "grid": torch.arange(6.0),
            "table": pd.DataFrame({"a": [1]}), "nan": float("nan")}
    names = [*held, "never_set"]
    answers.export(names, held, str(tmp_path))
    read = answers.read(tmp_path, names)
    assert read["never_set"] == {"kind": "missing"} and read["table"] == {"kind": "unsupported", "type": "DataFrame"}
    kernel = {"__json": json, "__torch": torch, "__answers": answers, "__key_answers": (models.small_cnn(8, 2, 5),)}
    exec(answers.binding(["net"], read, tmp_path, "t"), kernel)
    assert all(torch.equal(a, b) for a, b in zip(kernel["net"].state_dict().values(), net.state_dict().values()))
    exec(answers.binding(["count", "mean", "name", "grid", "nan", "never_set"], read, tmp_path, "t"), kernel)
    assert (kernel["count"], kernel["mean"], kernel["name"], kernel["never_set"]) == (725, 0.25, "head", None)
    assert type(kernel["mean"]) is float and torch.equal(kernel["grid"], torch.arange(6.0)) and kernel["nan"] != kernel["nan"]
    with pytest.raises(AssertionError, match="Not yet: table is a DataFrame"):
        exec(answers.binding(["table"], read, tmp_path, "t"), kernel)
    kernel["__key_answers"] = (models.small_cnn(16, 2, 5),)  # the key's model has another width
    with pytest.raises(AssertionError, match="not a model of the expected architecture"):
        exec(answers.binding(["net"], read, tmp_path, "t"), kernel)


def test_answers_that_are_not_data_are_refused_unread(tmp_path):
    import pickle

    from tutorlib.tools import answers

    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (tmp_path / answers.ANSWERS_JSON).write_text('{"x": {"kind": "tensor"}, "y": {"kind": "value", "value": [1]}}')
    (tmp_path / answers.ANSWERS_PT).write_bytes(pickle.dumps({"x": Payload()}))
    assert answers.read(tmp_path, ["x"])["x"]["kind"] == "unreadable" and not marker.exists()
    import torch

    torch.save({}, tmp_path / answers.ANSWERS_PT)
    read = answers.read(tmp_path, ["x", "y"])
    assert read["x"]["kind"] == read["y"]["kind"] == "unreadable"  # a tensor that is not there, a list value
    assert answers.read(tmp_path / "nothing", ["x"]) is None  # stopped before it wrote: 'not run'


@pytest.mark.slow
def test_a_chinese_students_copy_is_graded_like_an_english_one(tmp_path, monkeypatch, capsys):
    """The Chinese edition changes markdown and stubs only: the English key grades its submission the same."""
    monkeypatch.setenv("TUTORLIB_LANG", "zh")
    key = nbformat.read(MINI, as_version=4)
    nb = student_copies.student_version(key)
    assert any("# 练习 " in c.source for c in nb.cells)  # the Chinese stubs
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = "中文说明：" + cell.source
    stubs = [i for i, c in enumerate(nb.cells) if student_copies.is_answer_cell(c)]
    nb.cells[stubs[1]].source = key.cells[student_copies.exercises(key)[1][0]].source  # exercise 2 answered
    path = tmp_path / MINI.name
    nbformat.write(nb, path)
    graded = grading.grade_all([path], key=MINI, cell_timeout=30, notebook_timeout=60)
    assert [r["status"] for r in graded[0].rows] == ["not yet", "correct", "not yet"], graded[0].rows
