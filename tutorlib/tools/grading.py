"""`course grade`: each submission run apart, its answers read back as data, the answer key's checks decide them.

Two phases. First each submission runs as it is, in a fresh kernel, and its kernel writes the exercises'
answers as JSON and tensors (answers.py). Then one run of the answer key checks every submission: just before
each of the key's self-checks, the same check (hidden tests included) runs once per submission with that
submission's answers bound. What a submission can and cannot reach (the README's "What grading protects"):
* its kernel's working folder is a private temporary folder holding only its own files;
* where the grader runs as root on Linux, that kernel runs as the unprivileged user `nobody`: it can read the
  installed course but cannot write the teacher's files, the key notebooks or the other submissions;
* it never sees the key or its hidden tests, and rebinding the checks in its own kernel changes nothing: they
  run in the key's kernel, on answers that arrive as data (numbers, text, tensors, model weights loaded into
  the key's own model with `weights_only=True`; never a pickle);
* a cell that runs past `cell_timeout` is interrupted, a notebook past `notebook_timeout` is stopped; both
  are reported, and the batch goes on to the next submission.
Not protected: without root (macOS, Windows, a teacher's own account) the kernel has the teacher's rights.
Grade there in a container or a separate account. Checks read the key run's own results (a latency table,
say), so an answer that depends on the student's own measurements is judged against the key's.
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
from . import answers
from .student import answer_names, exercises

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


def _read(path: Path):
    """A notebook from disk, or a ValueError that names what is wrong with the file."""
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except Exception as err:  # not JSON, truncated, not a notebook
        raise ValueError(f"not a readable notebook ({type(err).__name__}): was it saved completely?") from None


def _answer_key(path: Path, key: Path | None) -> tuple[Path, list[list[str]]]:
    """The answer key that grades `path` and each of its exercises' answer names (from the key's self-checks)."""
    key = Path(key) if key else paths.NOTEBOOKS / Path(path).name
    if not key.exists():
        raise ValueError(f"no answer key: {Path(path).name} is not a chapter of this course; name its key "
                         f"with --key (the chapter from a clone or from the self-study wheel)")
    key_nb = _read(key)
    names = [answer_names(key_nb.cells[c].source) for _, c in exercises(key_nb)]
    if not names:
        raise ValueError("the answer key holds no solutions (is this the students' edition of the course?): "
                         "grade with --key naming your own copy of the chapter, from a clone or the self-study wheel.")
    return key, names


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


def sandboxed_kernel_class(user):
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
                            kernel_manager_class=sandboxed_kernel_class(user))
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


def _status(cell) -> dict:
    """A self-check's outcome from its outputs: correct, not yet (an error: the hint), or not run."""
    outputs = cell.get("outputs", [])
    error = next((o for o in outputs if o.output_type == "error"), None)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    status = "correct" if "Correct:" in text and error is None else "not yet" if error else "not run"
    detail = f"{error.ename}: {error.evalue}" if error else text.strip()
    return {"status": status, "detail": detail[:200]}


@dataclass
class _Ran:
    """Phase one's result for a submission: its answers read back as data, or why there are none."""
    graded: Graded
    key: Path | None = None
    names: list[list[str]] = field(default_factory=list)
    answers: dict | None = None


def _run_submission(path: Path, key: Path | None, cell_timeout: int, notebook_timeout: int) -> _Ran:
    """Run a submission apart, as it is, then have its kernel write its answers as data (answers.py)."""
    from nbformat.v4 import new_code_cell

    ran = _Ran(Graded(path))
    try:
        nb = _read(path)
        ran.key, ran.names = _answer_key(path, key)
    except ValueError as err:
        ran.graded.problem = str(err)
        return ran
    flat = [name for names in ran.names for name in names]
    nb.cells.append(new_code_cell(f"from tutorlib.tools import answers as __answers\n"
                                  f"__answers.export({flat!r}, globals())"))
    folder = Path(tempfile.mkdtemp(prefix="grade-"))
    try:
        ran.graded.problem = _run(nb, folder, cell_timeout, notebook_timeout)
        ran.answers = answers.read(folder, flat)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    interrupted = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
                   and any(o.get("ename") == "KeyboardInterrupt" for o in c.get("outputs", []))]
    if interrupted and not ran.graded.problem:
        ran.graded.problem = f"cell {interrupted[0]} ran past the cell timeout of {cell_timeout} s and was interrupted"
    return ran


def _check_answers(key: Path, batch: list[_Ran], cell_timeout: int, notebook_timeout: int) -> None:
    """Run the answer key once; just before each of its self-checks, run that check on every submission's answers."""
    from nbformat.v4 import new_code_cell

    nb, folder = _read(key), Path(tempfile.mkdtemp(prefix="grade-key-"))
    checks = {c: n for n, (_, c) in enumerate(exercises(nb), 1)}
    cells, mine = [new_code_cell("import json as __json, torch as __torch\n"
                                 "from tutorlib.tools import answers as __answers")], []
    for index, cell in enumerate(nb.cells):
        if index in checks:
            number = checks[index]
            names = batch[0].names[number - 1]
            cells.append(new_code_cell(f"__key_answers = tuple(globals().get(n) for n in {names!r})"))
            for s, ran in enumerate(batch):
                if ran.answers is not None:
                    bind = answers.binding(names, ran.answers, folder, f"{s}-{number}")
                    mine.append((ran, number, len(cells)))
                    cells.append(new_code_cell(bind + "\n" + cell.source))
            cells.append(new_code_cell(f"for __n, __v in zip({names!r}, __key_answers):\n    globals()[__n] = __v"))
        cells.append(cell)
    nb.cells = cells
    try:
        stopped = _run(nb, folder, cell_timeout, notebook_timeout)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = {(id(ran), number): _status(nb.cells[i]) for ran, number, i in mine}
    for ran in batch:
        ran.graded.rows = [{"exercise": n, **rows.get((id(ran), n), {"status": "not run", "detail": ""})}
                           for n in range(1, len(ran.names) + 1)]
        if stopped and ran.answers is not None:
            why = f"the answer key's own run stopped ({stopped}): unchecked answers are 'not run'"
            ran.graded.problem = "; ".join(filter(None, [ran.graded.problem, why]))


def _grade_batch(submissions: list[Path], key: Path | None, cell_timeout: int, notebook_timeout: int,
                 progress: bool) -> list[Graded]:
    ran = []
    for path in submissions:
        if progress:
            print(f"running {path} ...", file=sys.stderr, flush=True)
        ran.append(_run_submission(Path(path), key, cell_timeout, notebook_timeout))
    for key_path in dict.fromkeys(r.key for r in ran if r.key is not None):
        if progress:
            print(f"checking the answers in a run of the answer key {key_path} ...", file=sys.stderr, flush=True)
        _check_answers(key_path, [r for r in ran if r.key == key_path], cell_timeout, notebook_timeout)
    return [r.graded for r in ran]


def grade(path: Path, key: Path | None = None, cell_timeout: int = CELL_TIMEOUT,
          notebook_timeout: int = NOTEBOOK_TIMEOUT) -> Graded:
    """Grade one submission; never raises for a bad submission (the reason is in `.problem`).

    key: the answer-key notebook (default: the chapter of the same name in notebooks/). The submission runs
    as it is, in a sandbox; its answers come back as data and the key's self-checks, hidden tests included,
    decide them in a run of the key itself.
    """
    return _grade_batch([path], key, cell_timeout, notebook_timeout, progress=False)[0]


def grade_all(submissions: list[Path], key: Path | None = None, cell_timeout: int = CELL_TIMEOUT,
              notebook_timeout: int = NOTEBOOK_TIMEOUT) -> list[Graded]:
    """Grade every submission (then one run of each answer key checks them all); a line each, one per exercise."""
    if sandbox_user() is None:
        print(f"Note: submissions run with your own rights ({_unprotected_reason()}); see the README's "
              f"'What grading protects'.", flush=True)
    results = _grade_batch(submissions, key, cell_timeout, notebook_timeout, progress=True)
    for graded in results:
        print(graded.summary(), flush=True)
        for r in graded.rows:
            detail = " / ".join(r["detail"].splitlines())
            print(f"  exercise {r['exercise']}: {r['status']:8s} {detail}", flush=True)
    return results
