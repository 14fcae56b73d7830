"""Plays the student in every notebook that nbval executes, so each exercise's self-check is proven.

After nbval runs a cell tagged `solution`, this hook runs, in the same kernel, the stub that
`python -m tutorlib.course student` puts in its place: the stub must raise NotImplementedError and
the self-check must then fail with "Not yet". The real answer is put back and nbval carries on; its
next cell is the same self-check, which must pass on the solution. Every cell must also print no warning.
"""
import re

import pytest

from tutorlib.tools.student import answer_names, exercise_stub, exercises


def run_in_kernel(kernel, code: str) -> dict:
    """Execute `code` in nbval's kernel without showing output; return the reply's content."""
    reply = kernel.kc.execute_interactive(code, timeout=600, store_history=False, output_hook=lambda msg: None)
    return reply["content"]


def stub_must_fail(item) -> None:
    nb = item.parent.nb
    number, check_source = next((n, nb.cells[c].source) for n, (s, c) in enumerate(exercises(nb), 1)
                                if nb.cells[s] is item.cell)
    names = ", ".join(answer_names(check_source))
    kernel = item.parent.kernel
    assert run_in_kernel(kernel, f"__saved_answer = ({names},)")["status"] == "ok"
    stub = run_in_kernel(kernel, exercise_stub(check_source, number))
    graded = run_in_kernel(kernel, check_source)
    restored = run_in_kernel(kernel, f"({names},) = __saved_answer; del __saved_answer")
    assert restored["status"] == "ok", restored
    assert stub.get("ename") == "NotImplementedError", f"exercise {number}: the stub did not raise: {stub}"
    assert graded.get("ename") == "AssertionError" and "Not yet" in graded.get("evalue", ""), \
        f"exercise {number}: the self-check did not fail on the stub: {graded.get('ename')} {graded.get('evalue')}"


WARNING = re.compile(r"\b\w*Warning\b[:(]")


def no_warning_printed(item) -> None:
    """A learner meets every warning a chapter prints and cannot act on it: a cell may print none."""
    printed = [out.get("text", "") for out in item.test_outputs or []
               if out.get("output_type") == "stream" and out.get("name") == "stderr"]
    warnings = [line for text in printed for line in text.splitlines() if WARNING.search(line)]
    assert not warnings, f"cell {item.cell_num} printed a warning: {warnings[:3]}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    if type(item).__name__ == "IPyNbCell":
        no_warning_printed(item)
        if "solution" in item.cell.metadata.get("tags", []):
            stub_must_fail(item)
    return result
