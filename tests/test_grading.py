"""Grading a class's batch: each submission apart, timeouts that report, and a line for every file.

The batch holds an honest submission, a cheating one (it rebinds the self-checks), a destructive one (it
deletes a file of the teacher's and blanks the next submission on disk), an endless one and a broken file.
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
    return {"teacher": teacher, "precious": precious, "honest": honest, "paths": [
        honest,
        submission(submitted, "b_cheat", CHEAT),
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
    honest, cheat, destroy, endless, stubborn, broken = results

    assert [r["status"] for r in honest.rows] == ["correct"] * 3 and honest.problem is None
    # Interrupted, the endless cell ends and the rest runs; the stubborn one ignores the interrupt and is stopped.
    assert [r["status"] for r in endless.rows] == ["correct", "not yet", "not yet"], endless.rows
    assert [r["status"] for r in stubborn.rows] == ["not run"] * 3, stubborn.rows
    assert "ran past the cell timeout of 10 s" in endless.problem
    assert "stopped at the notebook timeout of 25 s" in stubborn.problem
    assert broken.rows == [] and "not a readable notebook" in broken.problem
    assert len(lines) == 6 and lines[-1].endswith("not graded (not a readable notebook (NotJSONError): was it "
                                                   "saved completely?)"), lines
    assert took < 6 * 25 + 60  # each within its notebook timeout, plus the kernels' start
    # Known and documented (README, "What grading protects"): code that rebinds the checks forges them.
    assert sum(r["status"] == "correct" for r in cheat.rows) == 3
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
    nb = grading._read(probe, MINI)
    folder = Path(tempfile.mkdtemp(prefix="grade-"))  # as grade() makes it
    try:
        assert grading._run(nb, folder, 30, 60) is None
    finally:
        shutil.rmtree(folder)
    printed = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "uid 65534 " in printed, printed  # nobody, in a folder of its own kernel's files and nothing else
    assert set(ast.literal_eval(printed.split("uid 65534 ")[1])) <= {"kernel.json", ".ipython", ".matplotlib"}, printed
