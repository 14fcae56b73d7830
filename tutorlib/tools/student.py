"""`course student`: the students' copies, every solution a stub and the hidden tests cut out."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from ..i18n import text as _t
from . import paths

def answer_names(check_source: str) -> list[str]:
    """The variables a self-check grades: the arguments of its last call, `check_exercise_1(answer)`."""
    calls = [n for n in ast.parse(check_source).body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
    if not calls:
        raise ValueError(f"A self-check cell must end with a call such as check_exercise_1(answer):\n{check_source}")
    return [ast.unparse(arg) for arg in calls[-1].value.args]


def exercise_hint(check_source: str) -> str | None:
    """The hint a self-check gives a wrong answer (the third argument of `exercises.exercise`), if it is plain text."""
    for node in ast.walk(ast.parse(check_source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "exercise" and len(node.args) >= 3:
            hint = node.args[2]
            return hint.value if isinstance(hint, ast.Constant) and isinstance(hint.value, str) else None
    return None


def exercise_stub(check_source: str, number: int) -> str:
    """What a student sees instead of the solution: what to set, the hint, and a NotImplementedError."""
    names = answer_names(check_source)
    hint = exercise_hint(check_source)
    lines = [_t("# Exercise {number}: your code here. It must set {names}.").format(number=number,
                                                                                 names=", ".join(names))]
    lines += [_t("# Hint: {hint}").format(hint=_t(hint))] if hint else []
    lines += [f"{name} = None" for name in names]
    stop = _t("Exercise {number}: replace this stub with your solution, then run the self-check below.")
    lines.append(f"raise NotImplementedError({stop.format(number=number)!r})")
    return "\n".join(lines)


HIDDEN_TESTS = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS\n.*?^[ \t]*### END HIDDEN TESTS[ \t]*\n?", re.M | re.S)


def without_hidden_tests(source: str) -> str:
    """A self-check as the student sees it: the hidden region (the exact expected value) removed."""
    return HIDDEN_TESTS.sub("", source)


def is_answer_cell(cell) -> bool:
    """A cell where the student writes code: tagged solution/exercise, or nbgrader's solution flag."""
    return bool({"solution", "exercise"} & set(cell.metadata.get("tags", []))) or \
        cell.metadata.get("nbgrader", {}).get("solution", False)


def exercises(nb) -> list[tuple[int, int]]:
    """(solution cell index, self-check cell index) for every cell tagged `solution`."""
    pairs = []
    for i, cell in enumerate(nb.cells):
        if "solution" in cell.metadata.get("tags", []):
            check_cell = next((j for j in range(i + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"), None)
            if check_cell is None:
                raise ValueError(f"Solution cell {i} has no self-check cell after it.")
            pairs.append((i, check_cell))
    return pairs


def student_version(nb, keep_outputs: bool = False):
    """A copy of `nb` with solutions replaced by stubs and all outputs cleared.

    keep_outputs: clear only the exercises' outputs (the write-up's class edition of an executed chapter).
    """
    import copy

    nb = copy.deepcopy(nb)
    for number, (solution, check_cell) in enumerate(exercises(nb), 1):
        cell = nb.cells[solution]
        cell.source = exercise_stub(nb.cells[check_cell].source, number)
        cell.metadata["tags"] = [t for t in cell.metadata.get("tags", []) if t != "solution"] + ["exercise"]
        nb.cells[check_cell].source = without_hidden_tests(nb.cells[check_cell].source)
        for i in (solution, check_cell):
            nb.cells[i].outputs, nb.cells[i].execution_count = [], None
    for cell in nb.cells:
        if cell.cell_type == "code" and not keep_outputs:
            cell.outputs, cell.execution_count = [], None
    return nb


def write_student_versions(out_dir: Path = paths.BUILD / "student", force: bool = False) -> list[Path]:
    """Write the students' copies; a copy a student has changed is their work and is kept unless `force`."""
    import nbformat

    from .translate import chapter, chapters

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in chapters():
        nb, target = student_version(chapter(path)), out_dir / path.name  # in the edition $TUTORLIB_LANG picks
        text = nbformat.writes(nb) + "\n"
        if target.exists() and target.read_text(encoding="utf-8") != text and not force:
            print(f"kept {target}: it differs from a fresh student copy (a student's work?); --force replaces it")
            continue
        target.write_text(text, encoding="utf-8")
        written.append(target)
        print(f"{target}: {len([c for c in nb.cells if 'exercise' in c.metadata.get('tags', [])])} exercises")
    return written
