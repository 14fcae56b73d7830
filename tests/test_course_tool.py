"""`python -m tutorlib.course`: student copies, grading and the write-up build."""
import json
import pathlib

import pytest

from tutorlib import exercises
from tutorlib.tools import build, grading, paths
from tutorlib.tools import student as student_copies

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK_PATHS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.name[:2])
def test_student_version_hides_every_solution(path):
    import nbformat

    original = nbformat.read(path, as_version=4)
    student = student_copies.student_version(original)
    pairs = student_copies.exercises(original)
    assert len(pairs) == 3 and len(student.cells) == len(original.cells)
    for number, (solution, check_cell) in enumerate(pairs, 1):
        stub, answer_source = student.cells[solution].source, original.cells[solution].source
        assert answer_source not in stub and "solution" not in student.cells[solution].metadata["tags"]
        visible = student_copies.without_hidden_tests(original.cells[check_cell].source)
        assert student.cells[check_cell].source == visible  # the self-check stays, less its hidden tests
        assert "exercises.answered(" in original.cells[check_cell].source
        assert "# Hint:" in stub, f"{path.name} exercise {number}: the self-check's hint is not plain text"
        namespace = {}
        with pytest.raises(NotImplementedError, match=f"Exercise {number}"):
            exec(stub, namespace)
        for name in student_copies.answer_names(original.cells[check_cell].source):
            assert namespace[name] is None
            with pytest.raises(AssertionError, match="Not yet"):
                exercises.answered(namespace[name])


def test_student_command_writes_seven_notebooks(tmp_path):

    written = student_copies.write_student_versions(tmp_path)
    assert [p.name for p in written] == [p.name for p in NOTEBOOK_PATHS]


def test_grade_reads_the_self_checks_of_a_submission(tmp_path):
    """A tiny submission against its key: one right answer, one wrong, one still the stub; errors do not stop it."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    def exercise(number, answer_source, tag):
        answer = new_code_cell(answer_source)
        answer.metadata["tags"] = [tag]
        checker = new_code_cell(f"def check_exercise_{number}(answer):\n    exercises.answered(answer)\n"
                                f"    exercises.exercise(answer == {number}, 'right', 'it is {number}')\n\n"
                                f"check_exercise_{number}(answer_{number})")
        return [answer, checker]

    def notebook(path, answers, tag):
        cells = [new_code_cell("from tutorlib import exercises")]
        for number, source in enumerate(answers, 1):
            cells += exercise(number, source, tag)
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, path)

    stub = student_copies.exercise_stub("check_exercise_3(answer_3)", 3)
    notebook(tmp_path / "key.ipynb", ["answer_1 = 1", "answer_2 = 2", "answer_3 = 3"], "solution")
    notebook(tmp_path / "submission.ipynb", ["answer_1 = 1", "answer_2 = 5", stub], "exercise")
    rows = grading.grade(tmp_path / "submission.ipynb", key=tmp_path / "key.ipynb").rows
    assert [r["status"] for r in rows] == ["correct", "not yet", "not yet"]
    assert "it is 2" in rows[1]["detail"] and "no answer" in rows[2]["detail"]
    unkeyed = grading.grade(tmp_path / "submission.ipynb")  # not a chapter's name, and no --key
    assert unkeyed.rows == [] and "no answer key" in unkeyed.problem and "--key" in unkeyed.problem


def test_a_failing_chapter_is_marked_failed_and_the_others_still_build(tmp_path, monkeypatch):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook


    sources = {"01_fine": "from tutorlib import check\ncheck.expect(1 < 2, 'one is less than two', paper='Peano', a=1)",
               "02_broken": "raise ValueError('this chapter is broken')"}
    (tmp_path / "notebooks").mkdir()
    for name, source in sources.items():
        nb = new_notebook(cells=[new_code_cell(source)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp_path / "notebooks" / f"{name}.ipynb")
    monkeypatch.setattr(paths, "NOTEBOOKS", tmp_path / "notebooks")
    assert build.build(out_dir=tmp_path / "build") == 1  # one failed chapter
    run = json.loads((tmp_path / "build" / "course" / "run.json").read_text())
    assert [c["error"] is None for c in run["chapters"]] == [True, False]
    assert "this chapter is broken" in run["chapters"][1]["error"]
    index = (tmp_path / "build" / "course" / "index.html").read_text()
    assert "failed</b>: ValueError: this chapter is broken" in index and "one is less than two" in index
    assert run["environment"]["profile"] == run["environment"]["command"].split("--profile ")[1].split()[0]
    assert "Peano" in index and (tmp_path / "build" / "course" / "01_fine.html").exists()


def test_student_copies_a_student_changed_are_kept_unless_forced(tmp_path):

    student_copies.write_student_versions(tmp_path)
    work = tmp_path / NOTEBOOK_PATHS[0].name
    work.write_text(work.read_text().replace("NotImplementedError", "NotImplementedError  # started"))
    mine = work.read_text()
    assert work not in student_copies.write_student_versions(tmp_path) and work.read_text() == mine
    assert work in student_copies.write_student_versions(tmp_path, force=True) and work.read_text() != mine


SLOW_BUILD = """
import sys
from pathlib import Path
from tutorlib.tools import course, paths
paths.NOTEBOOKS = Path(sys.argv[1])
course.main(["build", "--out", sys.argv[2]])
"""


@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_build_stops_when_told_and_leaves_no_kernel(tmp_path, signame):
    """Ctrl-C (SIGINT) or SIGTERM mid-chapter: one line saying where, exit 130/143, no kernel left, no next chapter."""
    import signal
    import subprocess
    import sys
    import time

    import nbformat
    import psutil
    from nbformat.v4 import new_code_cell, new_notebook

    (tmp_path / "notebooks").mkdir()
    for name in ("01_long", "02_next"):
        nb = new_notebook(cells=[new_code_cell("import time\ntime.sleep(300)")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp_path / "notebooks" / f"{name}.ipynb")
    build = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, str(tmp_path / "notebooks"), str(tmp_path / "build")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, kernels = time.monotonic() + 120, []
    while not kernels and time.monotonic() < deadline:
        time.sleep(0.5)
        kernels = [p for p in psutil.Process(build.pid).children(recursive=True)
                   if "ipykernel_launcher" in " ".join(p.cmdline())]
    assert kernels, "the build never started a kernel"
    time.sleep(3)  # the kernel is inside the cell now
    sent = time.monotonic()
    build.send_signal(getattr(signal, signame))
    output, _ = build.communicate(timeout=60)
    assert time.monotonic() - sent < 15, output
    assert build.returncode == (130 if signame == "SIGINT" else 143), output
    stopped = [line for line in output.splitlines() if line.startswith("Stopped")]
    assert len(stopped) == 1 and f"({signame}) in 01_long.ipynb" in stopped[0], output
    assert "Traceback" not in output and "FAILED" not in output and "02_next" not in output, output
    assert "without encryption" not in output  # the kernel runs on encrypted transport: nothing to warn about
    _, alive = psutil.wait_procs(kernels, timeout=10)
    assert not alive, f"kernels left running: {alive}"


def test_a_damaged_reference_run_is_named_and_skipped_not_a_crash(tmp_path, monkeypatch, capsys):
    damaged = tmp_path / "reference_run.json"
    monkeypatch.setattr(paths, "REFERENCE_RUN", damaged)
    for text in ('{"environment": {"profile": "standard"', '{"verdicts": []}', "[]"):
        damaged.write_text(text)
        assert build._reference_run() is None
        assert "is damaged" in capsys.readouterr().out


def test_get_into_a_file_says_so(tmp_path):
    from tutorlib.tools import lab

    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(SystemExit, match="is a file, not a folder"):
        lab.get(a_file)
    assert a_file.read_text() == "mine"


def test_get_into_a_folder_it_cannot_write_says_so():
    """As a user who may not write the folder (`nobody`, where the tests run as root), `get` explains; no traceback."""
    import shutil
    import subprocess
    import sys
    import tempfile

    user = grading.sandbox_user()
    if user is None:
        pytest.skip(f"no second user to run as here ({grading._unprotected_reason()})")
    locked = pathlib.Path(tempfile.mkdtemp(prefix="get-"))
    try:
        locked.chmod(0o755)  # readable by all, writable by its owner (root) only
        result = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--",
                                 sys.executable, "-m", "tutorlib.course", "get", str(locked / "course")],
                                capture_output=True, text=True, cwd="/")
    finally:
        shutil.rmtree(locked)
    assert result.returncode == 1, result
    assert "Cannot write the chapters into" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_build_that_selects_no_chapter_stops_before_it_writes(tmp_path):
    index = tmp_path / "course" / "index.html"
    index.parent.mkdir(parents=True)
    index.write_text("last week's write-up")
    with pytest.raises(SystemExit, match=r"No chapter matches --only 09 x: give two-digit numbers"):
        build.build(only=["9", "x"], out_dir=tmp_path)
    assert index.read_text() == "last week's write-up" and sorted(p.name for p in tmp_path.iterdir()) == ["course"]


def test_seeds_choose_the_seed_set_of_a_build_and_are_refused_where_they_mean_nothing(monkeypatch):
    """`build --seeds 83,84,85` runs the chapters on those seeds (it was silently ignored once)."""
    from tutorlib import profile
    from tutorlib.tools import course

    seen = {}
    monkeypatch.setenv(profile.SEEDS_VAR, "0")  # recorded, so the seeds main() sets are undone after the test
    monkeypatch.delenv(profile.SEEDS_VAR)
    monkeypatch.setattr(course, "build", lambda *a, **k: seen.setdefault("seeds", profile.current().seeds) and False)
    with pytest.raises(SystemExit) as done:
        course.main(["build", "--seeds", "83,84,85", "--only", "03"])
    assert done.value.code == 0 and seen["seeds"] == (83, 84, 85)
    with pytest.raises(SystemExit, match="--seeds applies to build and confirm"):
        course.main(["unit", "--seeds", "1,2"])
