"""The classroom kit: student copies that show no answer, grading that agrees with nbgrader, README commands.

The nbgrader round trip runs the real nbgrader on tests/fixtures/mini_chapter.ipynb (generate, answer,
autograde, read the gradebook) and then `python -m tutorlib.course grade` on the same submission: the
two must agree. The mini chapter carries the chapters' markup and runs in seconds; nbval already runs
every chapter, and tests/test_installed_course.py grades a real one.
"""
import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tutorlib.tools import grading, student as student_copies

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
VENV_BIN = str(Path(sys.executable).parent)


def expressions(source: str) -> set[str]:
    """Every expression in a cell, normalised by the AST (so spacing and quotes do not matter)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.expr)}


def answer_expressions(solution_source: str, answer_names: list[str]) -> set[str]:
    """What a solution computes: the right-hand side of each assignment to an answer variable.

    (Intermediate steps such as a table the lecture already shows are not secrets; the answer is.)
    """
    def names(target: ast.expr) -> set[str]:  # `answer = ...` and `answer, _ = ...` both assign `answer`
        return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}

    values = [node.value for node in ast.walk(ast.parse(solution_source)) if isinstance(node, ast.Assign)
              and any(names(t) & set(answer_names) for t in node.targets)]
    return {ast.unparse(v) for v in values if any(isinstance(n, (ast.Call, ast.Subscript)) for n in ast.walk(v))}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name[:2])
def test_no_student_notebook_shows_a_solution_expression(path):
    key = nbformat.read(path, as_version=4)
    student = student_copies.student_version(key)
    shown = set().union(*(expressions(c.source) for c in student.cells if c.cell_type == "code"))
    for number, (solution, check_cell) in enumerate(student_copies.exercises(key), 1):
        names = student_copies.answer_names(key.cells[check_cell].source)
        secret = answer_expressions(key.cells[solution].source, names)
        assert secret, f"exercise {number}: the solution computes nothing the test can look for"
        leaked = secret & shown
        assert not leaked, f"{path.name} exercise {number}: the student copy shows {leaked}"
        assert "HIDDEN TESTS" not in student.cells[check_cell].source


def test_every_exercise_carries_nbgrader_markup():
    ids = []
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        for solution, check_cell in student_copies.exercises(nb):
            answer, checker = nb.cells[solution], nb.cells[check_cell]
            placeholder, _, solution_region = answer.source.partition("### BEGIN SOLUTION")
            assert solution_region and answer.source.rstrip().endswith("### END SOLUTION")
            # above the region nbgrader replaces: each answer set to None, so its stub's self-check says "Not yet"
            names = student_copies.answer_names(checker.source)
            assert [line.split("#")[0].strip() for line in placeholder.strip().splitlines()] == [f"{n} = None" for n in names]
            assert answer.metadata["nbgrader"]["solution"] and not answer.metadata["nbgrader"]["grade"]
            assert checker.metadata["nbgrader"]["grade"] and checker.metadata["nbgrader"]["points"] == 1
            ids += [answer.metadata["nbgrader"]["grade_id"], checker.metadata["nbgrader"]["grade_id"]]
    assert len(ids) == len(set(ids)) == 42  # 21 exercises, unique grade ids


def test_hidden_tests_are_cut_from_the_student_copy_and_restored_for_grading():
    source = "def check_exercise_1(answer):\n    exercises.answered(answer)\n    ### BEGIN HIDDEN TESTS\n" \
             "    assert answer == 42\n    ### END HIDDEN TESTS\n\ncheck_exercise_1(x)"
    assert "42" not in student_copies.without_hidden_tests(source)
    assert student_copies.without_hidden_tests(source).rstrip().endswith("check_exercise_1(x)")


def _run(cmd: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "TUTORLIB_PROFILE": "quick"}
    return subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _answer(nb, number: int, source: str) -> None:
    cell = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")][number - 1]
    cell.source = source


MINI = ROOT / "tests" / "fixtures" / "mini_chapter.ipynb"  # the chapters' exercise markup, runs in seconds


def test_the_mini_chapter_carries_the_chapters_markup():
    """The grading round trips run on the mini chapter; it must look to nbgrader and `grade` like a chapter."""
    mini = nbformat.read(MINI, as_version=4)
    chapter = nbformat.read(CHAPTERS[0], as_version=4)
    assert len(student_copies.exercises(mini)) == 3
    for nb in (mini, chapter):
        for solution, check_cell in student_copies.exercises(nb):
            assert set(nb.cells[solution].metadata["nbgrader"]) == set(chapter.cells[student_copies.exercises(chapter)[0][0]].metadata["nbgrader"])
            assert set(nb.cells[check_cell].metadata["nbgrader"]) == set(chapter.cells[student_copies.exercises(chapter)[0][1]].metadata["nbgrader"])
    assert "### BEGIN HIDDEN TESTS" in mini.cells[student_copies.exercises(mini)[0][1]].source


def readme_block(containing: str) -> str:
    """The README's bash block that holds `containing`, comments and all, to run as one script."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return next(b for b in blocks if containing in b)


@pytest.mark.slow
def test_readme_nbgrader_commands_run_as_written_and_agree_with_course_grade(tmp_path):
    """The teacher's nbgrader commands from the README, character for character, on the mini chapter.

    The mini chapter stands in for chapter 7 under chapter 7's file name (a real chapter would add two minutes;
    nbval runs every chapter and tests/test_installed_course.py grades one).
    """
    (tmp_path / "notebooks").mkdir()
    shutil.copy(MINI, tmp_path / "notebooks" / "07_choosing_a_model.ipynb")
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"]}
    release = subprocess.run(["bash", "-ec", readme_block("nbgrader generate_assignment")], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert release.returncode == 0, release.stderr[-2000:]
    course_dir = tmp_path / "nbgrader-course"
    released = nbformat.read(course_dir / "release" / "ch07" / "07_choosing_a_model.ipynb", as_version=4)
    assert "HIDDEN TESTS" not in "".join(c.source for c in released.cells)
    key = nbformat.read(MINI, as_version=4)
    _answer(released, 1, key.cells[student_copies.exercises(key)[0][0]].source)  # exercise 1 answered as in the key
    _answer(released, 3, "last_group = surgery.layer_groups(model)[0][0]")  # plausible but wrong: the input side
    submitted = course_dir / "submitted" / "alice" / "ch07"  # exercise 2 left as nbgrader's stub
    submitted.mkdir(parents=True)
    nbformat.write(released, submitted / "07_choosing_a_model.ipynb")

    graded = subprocess.run(["bash", "-ec", readme_block("nbgrader autograde")], cwd=course_dir, env=env,
                            capture_output=True, text=True)
    assert graded.returncode == 0, graded.stderr[-2000:]
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gradebook:
        scores = [gradebook.find_grade(f"mini_ex{n}_check", "07_choosing_a_model", "ch07", "alice").score
                  for n in (1, 2, 3)]
    assert scores == [1.0, 0.0, 0.0]
    autograded = nbformat.read(course_dir / "autograded" / "alice" / "ch07" / "07_choosing_a_model.ipynb", as_version=4)
    errors = [o.ename for c in autograded.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert "NameError" not in errors  # the stub's self-check says "Not yet", as in the course's own student copy
    assert "alice" in (course_dir / "grades.csv").read_text()
    ours = grading.grade(submitted / "07_choosing_a_model.ipynb", key=MINI).rows
    assert [r["status"] for r in ours] == ["correct", "not yet", "not yet"], ours

    log = release.stderr + graded.stderr
    assert "without encryption" not in log and "No nbgrader_config.py" not in log
    hidden = {key.cells[c].metadata["nbgrader"]["grade_id"] for _, c in student_copies.exercises(key)
              if "BEGIN HIDDEN TESTS" in key.cells[c].source}
    warned = set(re.findall(r"Attribute 'checksum' for cell (\S+) has changed", log))
    assert warned <= hidden, f"checksum warnings beyond nbgrader#1961's (cells with hidden tests): {warned - hidden}"
    others = [line for line in log.splitlines() if "WARNING" in line and "checksum" not in line]
    assert not others, others


# ----------------------------------------------------------------------------- README commands, as written
def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line]


# Commands too long to run inside the test suite run with `make -n` (the recipe must exist and name a
# command that parses); the test suite itself is `make test`, which CI runs as written.
DRY_RUN = {"make course", "make test", "make bench", "make checkpoints", "make data", "make lab", "make lab-student"}


def test_the_readme_commands_are_the_ones_tested_here():
    assert set(readme_commands()) == {
        "make course", "make test", "make lab", "make student",
        ".venv/bin/python -m tutorlib.course grade --profile quick submissions/*.ipynb",
        ".venv/bin/python -m tutorlib.course student --out my-class", "make lab-student",
        ".venv/bin/python -m tutorlib.course wheel --students",  # run as written by tests/test_installed_course.py
        # nbgrader: run as written by test_readme_nbgrader_commands_run_as_written_and_agree_with_course_grade
        "mkdir -p nbgrader-course/source/ch07 && cp notebooks/07_choosing_a_model.ipynb nbgrader-course/source/ch07/",
        "cd nbgrader-course", "echo 'c.Execute.timeout = 600' > nbgrader_config.py",
        "echo 'c.KernelManager.transport_encryption = \"auto\"' >> nbgrader_config.py",
        "nbgrader generate_assignment ch07", "nbgrader autograde ch07 --create", "nbgrader export",
        # "Without make": run as written from a fresh venv by tests/test_installed_course.py
        "pip install tutorlib-0.1.0-py3-none-any.whl", "python -m tutorlib.course get pretrained-cnns-course",
        "jupyter lab pretrained-cnns-course", "python -m tutorlib.course student --out my-class",
        # a class on one server: tests/test_hub.py runs the hub, setup and grading lines as written, with its own
        # folder, roster and students' Python put in (the wheelhouse and venv lines: its fixture builds the same env)
        ".venv/bin/python -m tutorlib.course wheel --students --out wheelhouse",
        ".venv/bin/pip download --dest wheelhouse jupyterhub nbgrader wheelhouse/tutorlib-*+students-*.whl",
        "python3 -m venv /opt/pcnn && /opt/pcnn/bin/pip install --no-index --find-links wheelhouse "
        "wheelhouse/tutorlib-*+students-*.whl jupyterhub nbgrader",
        ".venv/bin/python -m tutorlib.course hub --roster class.csv --teacher alice --course pcnn --out /srv/pcnn-hub "
        "--student-python /opt/pcnn/bin/python",
        "bash /srv/pcnn-hub/setup.sh", "cd /srv/pcnn-hub && /opt/pcnn/bin/jupyterhub -f jupyterhub_config.py",
        "bash /srv/pcnn-hub/as-grader.sh nbgrader collect ch07", "bash /srv/pcnn-hub/autograde.sh ch07",
        "bash /srv/pcnn-hub/as-grader.sh nbgrader export",
        # TLJH (its installer needs systemd and the network): tests/test_hub_config.py loads the file it reads
        "sudo /opt/tljh/user/bin/pip install --no-index --find-links wheelhouse wheelhouse/tutorlib-*+students-*.whl nbgrader",
        "sudo .venv/bin/python -m tutorlib.course hub --roster class.csv --teacher alice --course pcnn --out "
        "/srv/pcnn-hub --student-python /opt/tljh/user/bin/python",
        "sudo bash /srv/pcnn-hub/setup.sh --tljh",
        "sudo cp /srv/pcnn-hub/tljh/tutorlib_pcnn.py /opt/tljh/config/jupyterhub_config.d/",
        'for s in $(tail -n +2 class.csv | cut -d, -f1); do sudo tljh-config add-item users.allowed "$s"; done',
        "sudo tljh-config reload",
    }


def readme_twins() -> dict[str, str]:
    """The README's table of make targets and the `python -m` command each one runs."""
    rows = re.findall(r"^\| `make ([\w-]+)` \| `([^`]+)`", (ROOT / "README.md").read_text(), flags=re.M)
    return dict(rows)


def test_readme_lists_a_python_twin_for_every_make_target_that_runs_one():
    assert set(readme_twins()) == {"course", "test", "unit", "confirm", "student", "lab", "lab-student", "data",
                                   "checkpoints", "hub-test", "course-zh", "lab-zh"}


@pytest.mark.parametrize("target", sorted(readme_twins()))
def test_each_make_target_runs_its_readme_twin(target):
    """`make X` runs exactly the README's `python -m ...` (with the venv's python): the no-make path is the same code."""
    result = _run(f"make -n --no-print-directory {target}", ROOT)  # inside `make test` too: no "make[1]:" lines
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1].strip()
    assert last.replace(".venv/bin/python", "python") == readme_twins()[target], last


@pytest.mark.parametrize("command", [c for c in readme_commands() if c.split()[0] == "make"])
def test_readme_make_targets_exist(command):
    result = _run(f"make -n {shlex.join(command.split()[1:])}", ROOT)
    assert result.returncode == 0 and result.stdout.strip(), result.stderr


@pytest.fixture
def scratch_in_repo():
    """Folders the README's commands name (submissions/, my-class/), made in the repository root and removed after."""
    made = [ROOT / "submissions", ROOT / "my-class"]
    if any(p.exists() for p in made):
        pytest.skip("submissions/ or my-class/ already exists in the repository root: not touching a user's files")
    yield made
    for p in made:
        shutil.rmtree(p, ignore_errors=True)


def test_readme_grading_command_runs_as_written(scratch_in_repo):
    """A student copy of the mini chapter with exercise 2 answered: the README's grade command as written, plus
    `--key` naming the mini chapter (a real chapter's key would cost a chapter's run).

    (A real chapter is graded the same way by tests/test_installed_course.py, from an installed wheel.)
    """
    key = nbformat.read(MINI, as_version=4)
    student = student_copies.student_version(key)
    stubs = [i for i, c in enumerate(student.cells) if student_copies.is_answer_cell(c)]
    student.cells[stubs[1]].source = key.cells[student_copies.exercises(key)[1][0]].source
    scratch_in_repo[0].mkdir()
    nbformat.write(student, scratch_in_repo[0] / MINI.name)
    command = next(c for c in readme_commands() if " grade " in c)
    result = _run(f"{command} --key {MINI.relative_to(ROOT)}", ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 of 3 exercises correct" in result.stdout, result.stdout
    assert "exercise 2: correct" in result.stdout and "exercise 1: not yet" in result.stdout


def test_readme_student_command_runs_as_written(scratch_in_repo):
    command = next(c for c in readme_commands() if " student " in c)
    result = _run(command, ROOT)
    assert result.returncode == 0, result.stderr
    assert len(list(scratch_in_repo[1].glob("*.ipynb"))) == 7


def test_readme_python_examples_run(tmp_path, monkeypatch):
    """The README's Python blocks, run as written (the photo example on a sample folder named my_photos)."""
    from tutorlib import data

    monkeypatch.chdir(tmp_path)
    data.sample_photo_folder("my_photos", per_class=6)
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["history"].steps_run == 200


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name[:2])
def test_notebooks_are_committed_as_the_output_filter_writes_them(path):
    """`make lab` installs nbstripout as a git filter: a chapter run in JupyterLab then shows no change in git."""
    stripped = subprocess.run([sys.executable, "-m", "nbstripout", "--extra-keys", "metadata.language_info"],
                              input=path.read_text(), capture_output=True,
                              text=True, check=True).stdout
    assert stripped == path.read_text(), f"{path.name}: run `python -m nbstripout {path}` and commit"
