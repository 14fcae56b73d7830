"""Build the reproducible write-up, and the students' exercise notebooks.

    python -m tutorlib.course build [--profile standard] [--only 01 03] [--out build] [--keep-going] [--save-reference]
    python -m tutorlib.course confirm [--seeds 20,21,22]          # make confirm
    python -m tutorlib.course student [--out build/student]       # make student
    python -m tutorlib.course grade submitted.ipynb [more.ipynb ...] [--profile quick]
    python -m tutorlib.course get [DIR]                           # the chapters, copied into DIR
    python -m tutorlib.course lab [--student] [--out DIR]         # make lab / make lab-student
    python -m tutorlib.course test | unit                         # make test / make unit

Every make target runs one of these, so a machine without make (or without a clone: the wheel carries
the chapters, data and checkpoints) has the same commands.

`build` executes every chapter in a fresh kernel: executed notebooks go to build/notebooks/, each
chapter's verdicts (collected through $TUTORLIB_RESULTS) to build/results/<chapter>.jsonl, and the
write-up (`tutorlib.tools.writeup`: index.html with claims, key figures, verdicts, references and the
environment; a page per chapter; run.json) to build/course/. Each build compares its verdicts with the
committed reference run (notebooks/reference_run.json; `build --save-reference` writes it). A chapter
that fails is marked failed in the index, with its error; the others still build.

`student` copies the notebooks with every cell tagged `solution` replaced by a stub that raises
NotImplementedError with a hint, and with the hidden tests (``### BEGIN HIDDEN TESTS`` ...) cut out of
the self-check cells, so no student copy shows an answer. `grade` puts the answer key's self-checks
(hidden tests included) back into a submission, runs it top to bottom (errors do not stop it) and
reports, per exercise, whether its self-check printed "Correct".

The exercises carry nbgrader's markup too (``### BEGIN SOLUTION`` regions, cell metadata with a
grade_id and points, hidden tests), so `nbgrader generate_assignment` / `autograde` work on the same
notebooks and agree with `student` / `grade` (tests/test_classroom.py runs the real nbgrader).
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import threading
import time
from pathlib import Path

from ..profile import ENV_VAR, SEEDS_VAR, current
from . import writeup

ROOT = Path(__file__).resolve().parents[2]
PACKAGED_NOTEBOOKS = Path(__file__).resolve().parents[1] / "course_notebooks"  # inside an installed wheel
IN_CLONE = (ROOT / "pyproject.toml").exists() and (ROOT / "notebooks").is_dir()
NOTEBOOKS = ROOT / "notebooks" if IN_CLONE else PACKAGED_NOTEBOOKS
BUILD = ROOT / "build" if IN_CLONE else Path("build")  # installed: build/ in the current folder
CONFIRM_SEEDS = "20,21,22"


class PeakMemory:
    """Poll the resident memory of this process's children (the notebook kernel) in a thread."""

    def __init__(self, interval: float = 0.25):
        import psutil

        self.me, self.interval, self.peak_bytes = psutil.Process(), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            total = 0
            for child in self.me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except Exception:  # the kernel exited between listing and reading it
                    pass
            self.peak_bytes = max(self.peak_bytes, total)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def kernel_config():
    """Kernels with CurveZMQ keys where libzmq has them: the kernel then has no unencrypted TCP to warn about."""
    import zmq
    from traitlets.config import Config

    return Config({"KernelManager": {"transport_encryption": "auto" if zmq.has("curve") else "disabled"}})


class BuildStopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a build: stop there (a KeyboardInterrupt, so asyncio lets it through)."""


def _raise_stop(signum: int, _frame=None) -> None:
    import signal

    raise BuildStopped(signal.Signals(signum).name)


def stop_on_signals() -> None:
    """Turn SIGINT and SIGTERM into BuildStopped between chapters (nbclient resets both after each one)."""
    import signal

    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)


def notebook_client(nb, **options):
    """An nbclient that stops on SIGINT/SIGTERM; nbclient's own handlers shut the kernel down and carry on."""
    import asyncio
    import contextlib
    import signal

    from nbclient import NotebookClient

    class StoppableClient(NotebookClient):
        async def async_start_new_kernel(self, **kwargs) -> None:
            await super().async_start_new_kernel(**kwargs)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):  # replaces nbclient's handlers, installed just before
                with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows; not the main thread
                    loop.add_signal_handler(signum, _raise_stop, signum)

    return StoppableClient(nb, kernel_name="python3", config=kernel_config(), **options)  # owns and ends its kernel


def kill_kernels(grace: float = 3.0) -> None:
    """End every process this one started (the chapter's kernel): politely first, then for certain."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        child.kill()


def execute(path: Path, results: Path, timeout: int = 1800, keep_going: bool = False) -> tuple[object, str | None, float]:
    """Run one notebook top to bottom in a fresh kernel; return (executed notebook, first error or None, peak MiB).

    keep_going: run every cell even after one fails, so that every verdict is evaluated (`make confirm`).
    """
    import nbformat
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    results.unlink(missing_ok=True)
    # The kernel's environment: where verdicts go, and explorers draw static figures (nobody can click).
    env = {**os.environ, "TUTORLIB_RESULTS": str(results), "TUTORLIB_HEADLESS": "1"}
    client = notebook_client(nb, timeout=timeout, allow_errors=keep_going,
                             resources={"metadata": {"path": str(path.parent)}})
    error = None
    with PeakMemory() as memory:
        try:
            client.execute(env=env)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: no kernel may outlive the build
            kill_kernels()
            raise
        except CellExecutionError as err:
            error = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()[-1]  # no terminal colours
        except Exception as err:  # kernel died, timeout ...
            error = f"{type(err).__name__}: {err}"
    return nb, error or first_error(nb), memory.peak_bytes / 2**20


def first_error(nb) -> str | None:
    """The first error a notebook's outputs show (cells run with keep_going still record theirs)."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out['ename']}: {out['evalue']}"[:300]
    return None


def print_verdicts(chapters: list[dict]) -> None:
    """Every verdict of the run, one line each: which held, which failed, which are only reported."""
    for chapter in chapters:
        counts = {s: sum(v["status"] == s for v in chapter["verdicts"]) for s in ("PASS", "FAIL", "REPORTED")}
        print(f"{chapter['name']}: {counts['PASS']} held, {counts['FAIL']} failed, {counts['REPORTED']} reported")
        for v in chapter["verdicts"]:
            if v["status"] != "REPORTED":
                print(f"  {v['status']:4s} {v['claim']}")


def read_verdicts(results: Path) -> list[dict]:
    return [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []


REFERENCE_RUN = NOTEBOOKS / "reference_run.json"  # the standard run on the default seeds, committed
BIBLIOGRAPHY = NOTEBOOKS / "references.bib"


def build(only: list[str] | None = None, out_dir: Path = BUILD, keep_going: bool = False,
          save_reference: bool = False) -> int:
    """Execute the chapters, render them, write the write-up; return the number of failed chapters.

    save_reference: write this run as the reference run (notebooks/reference_run.json) that later builds
    compare themselves with; only a whole, clean standard run on the default seeds may be saved.
    """
    import nbformat

    profile = current().name
    out_dir = out_dir.resolve()  # kernels run in notebooks/: a relative path would point elsewhere
    for sub in ("notebooks", "course/figures", "results"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    paths = [p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) if not only or p.name[:2] in only]
    chapters, started = [], time.perf_counter()
    for i, path in enumerate(paths, 1):
        t0 = time.perf_counter()
        stop_on_signals()
        print(f"[{i}/{len(paths)}] {path.name} ({profile}) ...", end=" ", flush=True)
        results = out_dir / "results" / f"{path.stem}.jsonl"
        try:
            nb, error, peak_mib = execute(path, results, keep_going=keep_going)
        except KeyboardInterrupt as stop:
            why = str(stop) or "SIGINT"
            print(f"\nStopped ({why}) in {path.name} after {time.perf_counter() - t0:.0f} s; {i - 1} of "
                  f"{len(paths)} chapters were done (in {out_dir / 'notebooks'}); its kernel was shut down.")
            raise SystemExit(130 if why == "SIGINT" else 143) from None
        nbformat.write(nb, out_dir / "notebooks" / path.name)
        chapters.append(write_chapter(nb, path.stem, out_dir / "course", error, time.perf_counter() - t0,
                                      peak_mib, read_verdicts(results)))
        print(f"{'FAILED' if error else 'ok'} in {chapters[-1]['seconds']:.0f} s, peak {peak_mib:.0f} MiB"
              + (f": {error}" if error else ""))
    return finish_build(chapters, time.perf_counter() - started, out_dir, only, save_reference)


def write_chapter(nb, name: str, course_dir: Path, error: str | None, seconds: float, peak_mib: float,
                  verdicts: list[dict]) -> dict:
    """One executed chapter's page (class edition) and key figure; the record the index is built from."""
    title, claim = writeup.chapter_claim(nb)
    edition = "class edition: exercise solutions replaced by stubs"
    page = student_version(nb, keep_outputs=True)
    writeup.render_chapter(page, course_dir / f"{name}.html", title or name, edition)
    figure = writeup.key_figure(nb)
    if figure:
        (course_dir / "figures" / f"{name}.png").write_bytes(figure)
    cites = writeup.cited_keys("\n".join(cell.source for cell in nb.cells))
    return {"name": name, "title": title, "claim": claim, "figure": figure is not None, "cites": cites, "error": error,
            "seconds": seconds, "peak_mib": peak_mib, "verdicts": verdicts}


def finish_build(chapters: list[dict], seconds: float, out_dir: Path, only: list[str] | None,
                 save_reference: bool) -> int:
    """The index, run.json and the comparison with the reference run; print the verdicts and the count."""
    prof = current()
    env = writeup.environment(ROOT if IN_CLONE else None, prof.name, list(prof.seeds), seconds, only)
    reference = json.loads(REFERENCE_RUN.read_text()) if REFERENCE_RUN.exists() else None
    comparison = writeup.compare(chapters, reference, prof.name, list(prof.seeds))
    bibliography = writeup.read_bibliography(BIBLIOGRAPHY)
    index = writeup.write_index(chapters, env, comparison, bibliography, out_dir / "course")
    run = {"environment": env, "reference_run": comparison,
           "chapters": [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in ch.items() if k != "verdicts"}
                        for ch in chapters]}
    (out_dir / "course" / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    print_verdicts(chapters)
    print(writeup.comparison_line(comparison))
    for vid, outcome in comparison.get("outcome", {}).items():
        if outcome != "agrees":
            print(f"  {outcome}: {vid[:140]}")
    failed = sum(1 for c in chapters if c["error"])
    if save_reference:
        save_reference_run(chapters, env, failed, only)
    print(f"Wrote {index} ({len(chapters)} chapters, {seconds / 60:.1f} min in all; seeds {list(prof.seeds)}).")
    return failed


def save_reference_run(chapters: list[dict], env: dict, failed: int, only: list[str] | None) -> None:
    """Keep this run as the reference, if it is one: standard, default seeds, every chapter, no failure."""
    from ..profile import PROFILES

    problems = [why for bad, why in [
        (env["profile"] != "standard", f"the profile is {env['profile']}, not standard"),
        (env["seeds"] != list(PROFILES["standard"].seeds), f"the seeds are {env['seeds']}, not the default ones"),
        (bool(only), "only some chapters ran"), (failed > 0, f"{failed} chapters failed"),
        (env["tree"] != "clean", f"the working tree is {env['tree']}")] if bad]
    if problems:
        raise SystemExit(f"Not saved as the reference run: {'; '.join(problems)}. Run "
                         f"`python -m tutorlib.course build --profile standard --save-reference` on a clean checkout.")
    REFERENCE_RUN.write_text(json.dumps(writeup.reference_from(chapters, env), indent=1) + "\n")
    print(f"Saved {REFERENCE_RUN} as the reference run: commit it.")


# ----------------------------------------------------------------------------- student versions
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
    lines = [f"# Exercise {number}: your code here. It must set {', '.join(names)}."]
    lines += [f"# Hint: {hint}"] if hint else []
    lines += [f"{name} = None" for name in names]
    lines.append(f'raise NotImplementedError("Exercise {number}: replace this stub with your solution, '
                 f'then run the self-check below.")')
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


def write_student_versions(out_dir: Path = BUILD / "student", force: bool = False) -> list[Path]:
    """Write the students' copies; a copy a student has changed is their work and is kept unless `force`."""
    import nbformat

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nb, target = student_version(nbformat.read(path, as_version=4)), out_dir / path.name
        text = nbformat.writes(nb) + "\n"
        if target.exists() and target.read_text(encoding="utf-8") != text and not force:
            print(f"kept {target}: it differs from a fresh student copy (a student's work?); --force replaces it")
            continue
        target.write_text(text, encoding="utf-8")
        written.append(target)
        print(f"{target}: {len([c for c in nb.cells if 'exercise' in c.metadata.get('tags', [])])} exercises")
    return written


# ----------------------------------------------------------------------------- JupyterLab
def strip_outputs_in_git(folder: Path) -> bool:
    """Install nbstripout's git filter where `folder` is in a git clone, so a saved run leaves `git diff` empty."""
    import subprocess
    import sys

    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=folder, capture_output=True, text=True)
    if top.returncode != 0:
        return False  # not a clone (the wheel's `get` folder): nothing to keep clean
    root = Path(top.stdout.strip())
    subprocess.run([sys.executable, "-m", "nbstripout", "--install", "--attributes", ".gitattributes"], cwd=root, check=True)
    subprocess.run(["git", "config", "filter.nbstripout.extrakeys", "metadata.language_info"], cwd=root, check=True)
    return True


def lab_command(folder: Path, *options: str) -> list[str]:
    """JupyterLab on `folder`, its kernels on encrypted transport where libzmq can (no TCP warning per kernel)."""
    import sys

    import zmq

    command = [sys.executable, "-m", "jupyterlab", str(folder), *options]
    if zmq.has("curve"):
        command.append("--KernelManager.transport_encryption=auto")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # a container's root user; Jupyter refuses it otherwise
    return command


def lab(folder: Path, student: bool = False, force: bool = False) -> int:
    """Open the chapters (or, with `student`, the students' copies, written first if missing) in JupyterLab."""
    import subprocess

    if student:
        write_student_versions(folder, force=force)
    elif folder.resolve() != NOTEBOOKS.resolve():
        get(folder, force=force)  # installed from the wheel: the chapters go to a folder of the learner's own
    strip_outputs_in_git(folder)
    return subprocess.call(lab_command(folder))


def restore_checks(nb, key) -> None:
    """Put the answer key's self-checks (hidden tests included) into a submission, as nbgrader's autograde does."""
    key_checks = [key.cells[c] for _, c in exercises(key)]
    answers = [i for i, c in enumerate(nb.cells) if is_answer_cell(c)]
    if len(answers) != len(key_checks):
        raise ValueError(f"The submission has {len(answers)} exercises but the answer key has {len(key_checks)}: "
                         f"grade it against its own chapter (--key).")
    for i, key_check in zip(answers, key_checks):
        check_cell = next(j for j in range(i + 1, len(nb.cells)) if nb.cells[j].cell_type == "code")
        nb.cells[check_cell].source = key_check.source


def grade(path: Path, timeout: int = 1800, key: Path | None = None) -> list[dict]:
    """Run a submitted notebook to the end and read each exercise's self-check: correct, not yet, or not run.

    key: the answer-key notebook (default: the chapter of the same name in notebooks/); its self-checks,
    hidden tests included, replace the submission's before it runs. Without one, the visible checks grade.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    key = key or (NOTEBOOKS / Path(path).name)
    if key.exists():
        restore_checks(nb, nbformat.read(key, as_version=4))
    client = notebook_client(nb, timeout=timeout, allow_errors=True, resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute(env={**os.environ, "TUTORLIB_HEADLESS": "1"})
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: no kernel may outlive the command
        kill_kernels()
        raise
    rows = []
    answer_cells = [i for i, c in enumerate(nb.cells) if is_answer_cell(c)]
    for number, i in enumerate(answer_cells, 1):
        check_cell = next(j for j in range(i + 1, len(nb.cells)) if nb.cells[j].cell_type == "code")
        outputs = nb.cells[check_cell].get("outputs", [])
        error = next((o for o in outputs if o.output_type == "error"), None)
        text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
        status = "correct" if "Correct:" in text and error is None else "not yet" if error else "not run"
        detail = f"{error.ename}: {error.evalue}" if error else text.strip()
        rows.append({"exercise": number, "status": status, "detail": detail[:200]})
    return rows


# ----------------------------------------------------------------------------- without make or a clone
def get(out_dir: Path, force: bool = False) -> list[Path]:
    """Copy the seven chapters into a folder of the learner's own (`jupyter lab DIR` opens them there).

    A chapter already in `out_dir` with other content is the learner's work: it is kept unless `force`.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        target = out_dir / path.name
        if target.exists() and target.read_bytes() != path.read_bytes() and not force:
            print(f"kept {target}: it differs from the course's copy (your work?); --force replaces it")
            continue
        target.write_bytes(path.read_bytes())
        copied.append(target)
    print(f"{len(copied)} chapters in {out_dir}. Open them with:  jupyter lab {out_dir}")
    return copied


def pytest_command(unit_only: bool = False) -> list[str]:
    """What `make test` / `make unit` run: in a clone the unit tests and every notebook; installed, the notebooks."""
    import sys

    if unit_only and not IN_CLONE:
        raise SystemExit("The unit tests live in the repository (tests/): run this in a clone.")
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", str(TEST_WORKERS), "--dist", "loadfile"]
    if unit_only:
        return base + [str(ROOT / "tests"), "-m", "not slow"]
    # Longest first, in this order (xdist would otherwise sort files by their number of tests): the chapters
    # and the three slowest test files start at once, and the many short files fill in at the end, so
    # neither worker waits alone for a chapter that started last.
    slow_tests = [str(ROOT / "tests" / name) for name in SLOW_TEST_FILES]
    targets = [str(NOTEBOOKS), *slow_tests, str(ROOT / "tests")] if IN_CLONE else [str(NOTEBOOKS)]
    report = [f"--junitxml={BUILD / 'test-report.xml'}"] if IN_CLONE else []  # every test's time, per chapter too
    return base + ["--no-loadscope-reorder", *targets, "--nbval-lax", "--nbval-current-env", "--durations=10", *report]


SLOW_TEST_FILES = ("test_installed_course.py", "test_lab_session.py", "test_checkpoints.py")  # 85-110 s each


# Two test processes, one thread each on a 2-core machine: small CNNs gain little from a second thread,
# so two chapters side by side finish sooner than one after the other (a file, or a notebook, stays whole).
TEST_WORKERS = min(2, os.cpu_count() or 1)


def run_tests(unit_only: bool = False) -> int:
    """Run the test suite in the quick profile, from the repository root in a clone; return pytest's exit code."""
    import subprocess

    threads = str(max(1, (os.cpu_count() or 1) // TEST_WORKERS))
    env = {"TUTORLIB_THREADS": threads, **os.environ, ENV_VAR: "quick"}  # a pinned count is kept
    return subprocess.call(pytest_command(unit_only), cwd=ROOT if IN_CLONE else None, env=env)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="The course's commands without make: build the write-up, check it on other seeds, make "
                    "students' copies, grade them, copy the chapters to a folder of your own, run the tests.")
    parser.add_argument("command", choices=["build", "confirm", "student", "grade", "get", "lab", "test", "unit"])
    parser.add_argument("notebooks", nargs="*", type=Path, help="grade: the submitted notebooks; get: the folder")
    parser.add_argument("--profile", help=f"quick / standard / full (default: ${ENV_VAR} or standard)")
    parser.add_argument("--only", nargs="*", help="chapter numbers to build, e.g. 01 03")
    parser.add_argument("--out", type=Path, help="output folder (default: build/, build/confirm/ or build/student/)")
    parser.add_argument("--key", type=Path, help="grade: the answer key (default: the course's chapter of that name)")
    parser.add_argument("--seeds", default=CONFIRM_SEEDS, help=f"confirm: the seed set (default {CONFIRM_SEEDS})")
    parser.add_argument("--force", action="store_true",
                        help="get / student: replace chapters that differ from the course's (a learner's work)")
    parser.add_argument("--student", action="store_true", help="lab: open the students' copies (--out, default build/student/)")
    parser.add_argument("--save-reference", action="store_true",
                        help="build: keep this run (standard, default seeds, clean tree) as the reference run")
    parser.add_argument("--keep-going", action="store_true",
                        help="build: run every cell even after a failure, so every verdict is evaluated")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_intermixed_args(argv)  # options may come before or after the notebooks
    if args.command == "student":
        write_student_versions(args.out or BUILD / "student", force=args.force)
        return
    if args.command == "lab":
        folder = args.out or (BUILD / "student" if args.student else NOTEBOOKS if IN_CLONE else Path("pretrained-cnns-course"))
        raise SystemExit(lab(folder, student=args.student, force=args.force))
    if args.command == "get":
        get(args.notebooks[0] if args.notebooks else Path("pretrained-cnns-course"), force=args.force)
        return
    if args.command in ("test", "unit"):
        raise SystemExit(run_tests(unit_only=args.command == "unit"))
    if args.command == "confirm":  # the verdicts on a second seed set, decided (standard), every cell run
        os.environ[SEEDS_VAR] = args.seeds
        args.profile, args.keep_going, args.out = args.profile or "standard", True, args.out or BUILD / "confirm"
    if args.profile:
        os.environ[ENV_VAR] = current(args.profile).name
    stop_on_signals()
    if args.command == "grade":
        for path in args.notebooks:
            try:
                rows = grade(path, key=args.key)
            except KeyboardInterrupt as stop:
                print(f"Stopped ({stop or 'SIGINT'}) while grading {path}; its kernel was shut down.")
                raise SystemExit(130 if str(stop) in ("", "SIGINT") else 143) from None
            print(f"{path}: {sum(r['status'] == 'correct' for r in rows)} of {len(rows)} exercises correct")
            for r in rows:
                print(f"  exercise {r['exercise']}: {r['status']:8s} {r['detail']}")
        return
    raise SystemExit(1 if build(args.only, args.out or BUILD, keep_going=args.keep_going,
                           save_reference=args.save_reference) else 0)


if __name__ == "__main__":
    main()
