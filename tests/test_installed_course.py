"""The course as a learner without the repository gets it: one wheel, a fresh venv, no make, no clone.

Builds the wheel, installs it into a new virtual environment in a temporary folder outside the
repository, then runs what the README's "Without make" section shows: `get` the chapters, make the
students' copies, and grade a submission (the mini chapter of tests/fixtures, in a Jupyter kernel of the
new venv). The heavy dependencies (torch, timm, Jupyter) are not installed again: the new venv sees the
test's own site-packages through a .pth file, with tutorlib itself left out, so every tutorlib file,
data file, checkpoint and notebook it uses comes from the wheel.
"""
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest

from tutorlib.tools import lab, student as student_copies

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = "07_choosing_a_model.ipynb"
MINI = ROOT / "tests" / "fixtures" / "mini_chapter.ipynb"  # graded from the installed wheel


def run(args: list, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env={**env, "TUTORLIB_PROFILE": "quick"},
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def readme_section(title: str) -> list[str]:
    """The commands of one README section's first ```bash block (comments dropped)."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {title}", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def readme_hosted_cells() -> list[str]:
    """The README's notebook-cell lines for a hosted service (its ```ipython block)."""
    block = re.search(r"```ipython\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, ROOT], out)
    return next(out.glob("tutorlib-*.whl"))


def test_the_wheel_holds_the_tools_data_checkpoints_and_chapters(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"tutorlib/tools/course.py", "tutorlib/tools/bundle.py", "tutorlib/tools/checkpoints.py"} <= names
    data = {p.relative_to(ROOT / "data").as_posix() for p in (ROOT / "data").rglob("*") if p.is_file()}
    assert {f"tutorlib/course_data/{p}" for p in data} <= names
    chapters = {f"tutorlib/course_notebooks/{p.name}" for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert len(chapters) == 7 and chapters <= names
    packaged = "tutorlib/course_notebooks/"
    assert {packaged + "verdicts.toml", packaged + "references.bib"} <= names
    if (ROOT / "notebooks" / "reference_run.json").exists():
        assert packaged + "reference_run.json" in names  # an installed build compares with it too
    catalogue = {f"tutorlib/{p.relative_to(ROOT / 'tutorlib').as_posix()}" for p in (ROOT / "tutorlib" / "zh").rglob("*")
                 if p.is_file()}
    assert len(catalogue) >= 13 and catalogue <= names  # the Chinese edition: 7 chapters, claims, strings, font
    assert wheel.stat().st_size < 15 * 2**20  # data 8.4 MB + checkpoints 2.1 MB + the CJK font 1.5 MB


def test_the_chapters_name_the_wheel_that_is_built(wheel):
    """The setup text, just above the first import of tutorlib, says what to install if that import fails."""
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        first = next(i for i, c in enumerate(cells) if c.cell_type == "code")
        assert "from tutorlib import" in cells[first].source, path.name
        assert "ModuleNotFoundError" in cells[first - 1].source and wheel.name in cells[first - 1].source, path.name


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    """A new venv whose only tutorlib is the one pip installs into it (dependencies borrowed, see the docstring)."""
    home = tmp_path_factory.mktemp("learner")
    run([sys.executable, "-m", "venv", home / "venv"], home)
    python = home / "venv" / "bin" / "python"
    deps = home / "borrowed-site-packages"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith(("tutorlib", "__editable__")):
            (deps / entry.name).symlink_to(entry)
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], home).stdout.strip()
    (Path(site) / "borrowed.pth").write_text(f"{deps}\n")
    return python


@pytest.mark.slow
def test_installed_course_without_make_or_clone(wheel, fresh_venv):
    home = fresh_venv.parents[2]  # venv/bin/python
    (home / wheel.name).write_bytes(wheel.read_bytes())
    bin_dir = fresh_venv.parent
    for command in readme_section("Without make"):  # as written, with the new venv's python and pip first on PATH
        assert command.startswith(("python -m", "pip install", "jupyter lab")), command
        if not command.startswith("jupyter lab"):
            run(["/bin/sh", "-c", f"PATH={bin_dir}:$PATH {command}"], home)
    hosted = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(line) for line in readme_hosted_cells()])
    nbformat.write(hosted, home / "hosted.ipynb")
    run([fresh_venv, "-c", "import nbformat, nbclient; nb = nbformat.read('hosted.ipynb', 4); "
         "nbclient.NotebookClient(nb, kernel_name='python3', timeout=600).execute(); "
         "print(nb.cells[-1].outputs[-1]['text'])"], home)  # the README's hosted cells, in a kernel of the new venv
    where = run([fresh_venv, "-c", "import tutorlib, tutorlib.manifest as m; print(tutorlib.__file__); print(m.DATA_DIR)"],
                home).stdout.split()
    assert all(str(home / "venv") in w and str(ROOT) not in w for w in where), where
    assert len(list((home / "pretrained-cnns-course").glob("[0-9][0-9]_*.ipynb"))) == 7
    assert len(list((home / "my-class").glob("[0-9][0-9]_*.ipynb"))) == 7
    run([fresh_venv, "-m", "tutorlib.course", "get", "--lang", "zh", "中文课程"], home)  # README_zh.md's command
    first = nbformat.read(home / "中文课程" / "01_source_data.ipynb", as_version=4).cells[0].source
    assert first.startswith("# 第 1 章 · 源数据教会了模型什么"), first[:80]  # the wheel's catalogue

    # Grading from the wheel, in a kernel of the new venv: the mini chapter (the chapters' exercise markup, seconds
    # to run; every chapter's exercises are proven by conftest.py and the chapters run under nbval already).
    key = nbformat.read(MINI, as_version=4)
    student = student_copies.student_version(key)
    first_stub = next(i for i, c in enumerate(student.cells) if student_copies.is_answer_cell(c))
    student.cells[first_stub].source = key.cells[student_copies.exercises(key)[0][0]].source
    (home / "submissions").mkdir()
    nbformat.write(student, home / "submissions" / MINI.name)
    nbformat.write(key, home / "key.ipynb")
    graded = run([fresh_venv, "-m", "tutorlib.course", "grade", "--key", "key.ipynb", f"submissions/{MINI.name}"], home)
    assert "1 of 3 exercises correct" in graded.stdout and "exercise 1: correct" in graded.stdout, graded.stdout


def test_get_keeps_a_learners_changed_chapter(tmp_path, capsys):
    lab.get(tmp_path)
    mine = tmp_path / CHAPTER
    mine.write_text(mine.read_text().replace("Exercise", "My exercise"))
    again = lab.get(tmp_path)
    assert mine.read_text().count("My exercise") > 0 and len(again) == 6
    assert "kept" in capsys.readouterr().out
    assert len(lab.get(tmp_path, force=True)) == 7 and "My exercise" not in mine.read_text()


def test_the_students_wheel_carries_no_key(tmp_path):
    """`course wheel --students`: what a class installs has stubs, no solution and no hidden test."""
    from tutorlib.tools import grading

    command = next(c for c in readme_commands() if " wheel --students" in c)  # as the README writes it
    dist, before, existed = ROOT / "dist", set((ROOT / "dist").glob("*.whl")), (ROOT / "dist").exists()
    result = subprocess.run(["/bin/sh", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    built = next(dist.glob("tutorlib-0.1.0+students-*.whl"))
    (tmp_path / built.name).write_bytes(built.read_bytes())
    if built not in before:
        built.unlink()  # leave dist/ as we found it
    if not existed:
        dist.rmdir()
    built = tmp_path / built.name
    archive = zipfile.ZipFile(built)
    for key_path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        packaged = archive.read(f"tutorlib/course_notebooks/{key_path.name}").decode()
        assert "BEGIN SOLUTION" not in packaged and "BEGIN HIDDEN TESTS" not in packaged, key_path.name
        key = nbformat.read(key_path, as_version=4)
        for solution, _ in student_copies.exercises(key):
            region = key.cells[solution].source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            longest = max((line.strip() for line in region.splitlines()), key=len)
            assert json_escaped(longest) not in packaged, (key_path.name, longest)
        students_key = tmp_path / key_path.name
        students_key.write_bytes(archive.read(f"tutorlib/course_notebooks/{key_path.name}"))
        graded = grading.grade(ROOT / "notebooks" / key_path.name, key=students_key)
        assert graded.rows == [] and "holds no solutions" in graded.problem


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [line.split("#")[0].strip() for block in blocks for line in block.splitlines() if line.split("#")[0].strip()]


def json_escaped(line: str) -> str:
    import json

    return json.dumps(line)[1:-1]
