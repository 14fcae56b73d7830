"""`course wheel`: the course as one wheel, either edition, built from a clone.

The key policy (README, "Which wheel"): the self-study edition carries the chapters with their solutions,
as the public repository does; the students' edition (``--students``, version ``+students``) carries the
students' copies instead, with every solution a stub and the hidden tests cut out, so a class that installs
it gets no key. Grading needs the key: the teacher grades from a clone or the self-study wheel (``--key``).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import paths
from .student import student_version

SOURCES = ("pyproject.toml", "README.md", "tutorlib", "data", "notebooks")


def build_wheel(out_dir: Path, students: bool = False) -> Path:
    """Build the wheel into `out_dir` and return its path; `students` swaps in the students' copies."""
    if not paths.IN_CLONE:
        raise SystemExit("`course wheel` builds from the repository: run it in a clone of the course.")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="course-wheel-") as tmp:
        tree = Path(tmp) / "course"
        tree.mkdir()
        for name in SOURCES:
            copy = shutil.copytree if (paths.ROOT / name).is_dir() else shutil.copy2
            copy(paths.ROOT / name, tree / name, **({"ignore": _ignored} if copy is shutil.copytree else {}))
        if students:
            _students_edition(tree)
        before = set(out_dir.glob("tutorlib-*.whl"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out_dir), str(tree)], check=True)
    built = sorted(set(out_dir.glob("tutorlib-*.whl")) - before) or sorted(out_dir.glob("tutorlib-*.whl"))
    wheel = next(w for w in built if ("+students" in w.name) == students)
    print(f"Wrote {wheel} ({'students' if students else 'self-study'} edition).")
    return wheel


def _ignored(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n in ("__pycache__", ".ipynb_checkpoints") or n.endswith(".egg-info")]


def _students_edition(tree: Path) -> None:
    """Replace each chapter with its students' copy and mark the version, in the temporary source tree."""
    import nbformat

    for chapter in sorted((tree / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nbformat.write(student_version(nbformat.read(chapter, as_version=4)), chapter)
    project = tree / "pyproject.toml"
    text = project.read_text()
    version = re.search(r'^version = "([^"]+)"', text, re.M).group(1)
    project.write_text(text.replace(f'version = "{version}"', f'version = "{version}+students"', 1))
