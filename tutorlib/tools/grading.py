"""`course grade`: each submission run apart, with the answer key's self-checks, every exercise read back.

What a submission can and cannot reach (the README's "What grading protects" says the same):
* it runs in a fresh kernel whose working folder is a private temporary folder holding only its own copy;
* where the grader runs as root on Linux, that kernel runs as the unprivileged user `nobody`: it can read the
  installed course but cannot write the teacher's files, the key notebooks or the other submissions;
* a cell that runs past `cell_timeout` is interrupted, a notebook past `notebook_timeout` is stopped; both
  are reported, and the batch goes on to the next submission.
Not protected: the self-checks run in the submission's own kernel, so code written to forge them (rebinding
`exercises.exercise`, printing "Correct") can; and without root (macOS, Windows, a teacher's own account) the
kernel has the teacher's rights. Grade there in a container or a separate account.
"""
from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from .kernels import kernel_config, kill_kernels
from .student import exercises, is_answer_cell

SANDBOX_USER = "nobody"
CELL_TIMEOUT = 600  # seconds a cell may run: the longest quick-profile cell takes under 2 minutes
NOTEBOOK_TIMEOUT = 1800
KERNEL_ENV = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "OMP_NUM_THREADS")  # and every TUTORLIB_* variable


@dataclass
class Graded:
    """One submission's outcome: a row per exercise, or why it could not be graded."""
    path: Path
    rows: list[dict] = field(default_factory=list)
    problem: str | None = None  # unreadable, or stopped by the notebook timeout

    def summary(self) -> str:
        correct = sum(r["status"] == "correct" for r in self.rows)
        head = f"{self.path}: {correct} of {len(self.rows)} exercises correct" if self.rows else f"{self.path}: not graded"
        return head + (f" ({self.problem})" if self.problem else "")


def restore_checks(nb, key) -> None:
    """Put the answer key's self-checks (hidden tests included) into a submission, as nbgrader's autograde does."""
    key_checks = [key.cells[c] for _, c in exercises(key)]
    answers = [i for i, c in enumerate(nb.cells) if is_answer_cell(c)]
    if answers and not key_checks:
        raise ValueError("the answer key holds no solutions (is this the students' edition of the course?): "
                         "grade with --key naming your own copy of the chapter, from a clone or the self-study wheel.")
    if len(answers) != len(key_checks):
        raise ValueError(f"it has {len(answers)} exercises but the answer key has {len(key_checks)}: "
                         f"grade it against its own chapter (--key).")
    for number, (i, key_check) in enumerate(zip(answers, key_checks), 1):
        check_cell = _check_cell(nb, i)
        if check_cell is None:
            raise ValueError(f"exercise {number}'s self-check cell was deleted: restore it from the student copy.")
        nb.cells[check_cell].source = key_check.source


def _check_cell(nb, answer_cell: int) -> int | None:
    return next((j for j in range(answer_cell + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"), None)


def _read(path: Path, key: Path | None):
    """The submission with the key's checks restored, or a ValueError that names what is wrong with the file."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except Exception as err:  # not JSON, truncated, not a notebook
        raise ValueError(f"not a readable notebook ({type(err).__name__}): was it saved completely?") from None
    key = key or (paths.NOTEBOOKS / Path(path).name)
    if key.exists():
        restore_checks(nb, nbformat.read(key, as_version=4))
    return nb


@functools.lru_cache(maxsize=None)
def sandbox_user():
    """The user submissions' kernels run as: `nobody` where we are root on Linux and it can start this Python.

    None means the kernels run with the grader's own rights; `grade_all` then says so, and why.
    """
    if sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("setpriv"):
        return None
    import pwd
    import subprocess

    user = pwd.getpwnam(SANDBOX_USER)
    probe = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--",
                            sys.executable, "-c", "import tutorlib, ipykernel"], capture_output=True, cwd="/")
    return user if probe.returncode == 0 else None


def _unprotected_reason() -> str:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "the grader is not root on Linux"
    if not shutil.which("setpriv"):
        return "setpriv (util-linux) is not installed"
    return (f"user {SANDBOX_USER} cannot start {sys.executable} with tutorlib: make the environment readable "
            f"by all (chmod -R o+rX on it and the folders above it)")


def _kernel_manager_class(user):
    from jupyter_client.manager import AsyncKernelManager  # nbclient's own: a blocking one stalls its timeouts

    class SandboxedKernel(AsyncKernelManager):
        """A kernel started as `user`, reading a connection file that only `user` (and root) can read."""

        def format_kernel_cmd(self, extra_arguments=None):
            cmd = super().format_kernel_cmd(extra_arguments)
            return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--", *cmd]

        def write_connection_file(self, **kwargs):
            written = super().write_connection_file(**kwargs)
            os.chown(self.connection_file, user.pw_uid, user.pw_gid)
            return written

    return SandboxedKernel if user else AsyncKernelManager


def _run(nb, folder: Path, cell_timeout: int, notebook_timeout: int) -> str | None:
    """Execute `nb` in `folder` (errors do not stop it); return why it stopped early, or None."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    user = sandbox_user()
    if user:
        os.chown(folder, user.pw_uid, user.pw_gid)
    folder.chmod(0o700)
    env = {k: v for k, v in os.environ.items() if k in KERNEL_ENV or k.startswith("TUTORLIB_")}
    env.update(HOME=str(folder), MPLCONFIGDIR=str(folder / ".matplotlib"), TUTORLIB_HEADLESS="1")
    client = NotebookClient(nb, kernel_name="python3", config=kernel_config(), timeout=cell_timeout,
                            interrupt_on_timeout=True, allow_errors=True, resources={"metadata": {"path": str(folder)}},
                            kernel_manager_class=_kernel_manager_class(user))
    client.km = client.create_kernel_manager()
    client.km.connection_file = str(folder / "kernel.json")
    stopped = threading.Event()
    watchdog = threading.Timer(notebook_timeout, lambda: (stopped.set(), kill_kernels(grace=1.0)))
    watchdog.start()
    try:
        client.execute(env=env)
    except DeadKernelError:
        if not stopped.is_set():
            return "its kernel died (out of memory, or the submission ended it)"
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: no kernel may outlive the command
        kill_kernels()
        raise
    finally:
        watchdog.cancel()
    return f"stopped at the notebook timeout of {notebook_timeout} s" if stopped.is_set() else None


def _rows(nb) -> list[dict]:
    """Each exercise's status from its self-check cell's output: correct, not yet (an error), or not run."""
    rows = []
    for number, i in enumerate((i for i, c in enumerate(nb.cells) if is_answer_cell(c)), 1):
        outputs = nb.cells[_check_cell(nb, i)].get("outputs", [])
        error = next((o for o in outputs if o.output_type == "error"), None)
        text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
        status = "correct" if "Correct:" in text and error is None else "not yet" if error else "not run"
        detail = f"{error.ename}: {error.evalue}" if error else text.strip()
        rows.append({"exercise": number, "status": status, "detail": detail[:200]})
    return rows


def grade(path: Path, key: Path | None = None, cell_timeout: int = CELL_TIMEOUT,
          notebook_timeout: int = NOTEBOOK_TIMEOUT) -> Graded:
    """Grade one submission in a sandbox; never raises for a bad submission (the reason is in `.problem`).

    key: the answer-key notebook (default: the chapter of the same name in notebooks/); its self-checks,
    hidden tests included, replace the submission's before it runs. Without one, the visible checks grade.
    """
    path = Path(path)
    try:
        nb = _read(path, key)
    except ValueError as err:
        return Graded(path, problem=str(err))
    folder = Path(tempfile.mkdtemp(prefix="grade-"))
    try:
        problem = _run(nb, folder, cell_timeout, notebook_timeout)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    interrupted = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
                   and any(o.get("ename") == "KeyboardInterrupt" for o in c.get("outputs", []))]
    if interrupted and not problem:
        problem = f"cell {interrupted[0]} ran past the cell timeout of {cell_timeout} s and was interrupted"
    return Graded(path, _rows(nb), problem)


def grade_all(submissions: list[Path], key: Path | None = None, cell_timeout: int = CELL_TIMEOUT,
              notebook_timeout: int = NOTEBOOK_TIMEOUT) -> list[Graded]:
    """Grade every submission, one after another, printing a line per submission and one per exercise."""
    if sandbox_user() is None:
        print(f"Note: submissions run with your own rights ({_unprotected_reason()}); see the README's "
              f"'What grading protects'.", flush=True)
    results = []
    for path in submissions:
        graded = grade(path, key, cell_timeout, notebook_timeout)
        print(graded.summary(), flush=True)
        for r in graded.rows:
            detail = " / ".join(r["detail"].splitlines())
            print(f"  exercise {r['exercise']}: {r['status']:8s} {detail}", flush=True)
        results.append(graded)
    return results
