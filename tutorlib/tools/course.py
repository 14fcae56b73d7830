"""Build the reproducible write-up, and the students' exercise notebooks.

    python -m tutorlib.course build [--profile standard] [--only 01 03] [--seeds 83,84,85] [--out build] [--keep-going]
    python -m tutorlib.course confirm [--seeds 20,21,22]          # make confirm
    python -m tutorlib.course student [--out build/student]       # make student
    python -m tutorlib.course grade submitted.ipynb [more.ipynb ...] [--profile quick] [--timeout S]
    python -m tutorlib.course get [DIR]                           # the chapters, copied into DIR
    python -m tutorlib.course lab [--student] [--out DIR]         # make lab / make lab-student
    python -m tutorlib.course wheel [--students] [--out dist]     # the course as one wheel (students: no key)
    python -m tutorlib.course hub --roster class.csv --course pcnn --teacher alice --out /srv/pcnn-hub
    python -m tutorlib.course test | unit                         # make test / make unit

`--lang zh` (or TUTORLIB_LANG=zh) gives the Chinese edition to build, get, student and lab: the same code cells,
markdown from tutorlib/zh/ (`python -m tutorlib.tools.translate`), Chinese figures and verdict lines; build
writes to build/zh/ (make course-zh), lab opens JupyterLab in Chinese (make lab-zh).

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
the self-check cells, so no student copy shows an answer. `grade` runs each submission as it is, apart, reads
its answers back as data, and decides them with the answer key's self-checks (hidden tests included) in a run
of the key (`tutorlib.tools.grading`). `hub` writes what a JupyterHub on one server needs for a class
(`tutorlib.tools.hub`).

The exercises carry nbgrader's markup too (``### BEGIN SOLUTION`` regions, cell metadata with a
grade_id and points, hidden tests), so `nbgrader generate_assignment` / `autograde` work on the same
notebooks and agree with `student` / `grade` (tests/test_classroom.py runs the real nbgrader).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..i18n import LANG_VAR, LANGUAGES, language
from ..profile import ENV_VAR, SEEDS_VAR, current
from . import paths
from .build import build
from .grading import CELL_TIMEOUT, NOTEBOOK_TIMEOUT, grade_all
from .kernels import stop_on_signals
from .lab import get, lab
from .student import write_student_versions
from .testing import run_tests
from .wheel import build_wheel


def _seconds(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds >= 1, e.g. --timeout 120")
    return int(text)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="The course's commands without make: build the write-up, check it on other seeds, make "
                    "students' copies, grade them, copy the chapters to a folder of your own, run the tests.")
    parser.add_argument("command", choices=["build", "confirm", "student", "grade", "get", "lab", "wheel", "hub", "test",
                                            "unit"])
    parser.add_argument("notebooks", nargs="*", type=Path, help="grade: the submitted notebooks; get: the folder")
    parser.add_argument("--profile", help=f"quick / standard / full (default: ${ENV_VAR} or standard)")
    parser.add_argument("--only", nargs="*", help="chapter numbers to build, e.g. 01 03")
    parser.add_argument("--out", type=Path, help="output folder (default: build/, build/confirm/ or build/student/)")
    parser.add_argument("--key", type=Path, help="grade: the answer key (default: the course's chapter of that name)")
    parser.add_argument("--timeout", type=_seconds, default=CELL_TIMEOUT,
                        help=f"grade: seconds a cell may run before it is interrupted (default {CELL_TIMEOUT})")
    parser.add_argument("--notebook-timeout", type=_seconds, default=NOTEBOOK_TIMEOUT,
                        help=f"grade: seconds a submission may run before it is stopped (default {NOTEBOOK_TIMEOUT})")
    parser.add_argument("--seeds", help=f"build / confirm: the seed set, e.g. 83,84,85 (build: the profile's own; "
                                        f"confirm: {paths.CONFIRM_SEEDS})")
    parser.add_argument("--force", action="store_true",
                        help="get / student: replace chapters that differ from the course's (a learner's work)")
    parser.add_argument("--student", action="store_true", help="lab: open the students' copies (--out, default build/student/)")
    parser.add_argument("--students", action="store_true",
                        help="wheel: the students' edition (no solutions, no hidden tests) for a class to install")
    parser.add_argument("--roster", type=Path, help="hub: a CSV of the class, one `username` per line")
    parser.add_argument("--course", default="pcnn", help="hub: the course's name on the hub (default pcnn)")
    parser.add_argument("--teacher", help="hub: the teacher's account (an admin of the hub)")
    parser.add_argument("--assignment", action="append", metavar="NAME=NOTEBOOK",
                        help="hub: an assignment to release (repeatable; default: the seven chapters, ch01 ... ch07)")
    parser.add_argument("--student-python", help="hub: the Python of the students' environment (the students' wheel)")
    parser.add_argument("--exchange", default="/srv/nbgrader/exchange", help="hub: nbgrader's exchange root")
    parser.add_argument("--threads", type=int, default=1,
                        help="hub: torch threads per student kernel (default 1: the class shares the cores)")
    parser.add_argument("--save-reference", action="store_true",
                        help="build: keep this run (standard, default seeds, clean tree) as the reference run")
    parser.add_argument("--lang", choices=LANGUAGES, help=f"the edition: en or zh (default: ${LANG_VAR} or en)")
    parser.add_argument("--keep-going", action="store_true",
                        help="build: run every cell even after a failure, so every verdict is evaluated")
    return parser


def write_hub_from_args(args) -> None:
    from . import hub

    if not args.roster or not args.teacher or not args.out:
        raise SystemExit("hub needs --roster class.csv, --teacher NAME and --out FOLDER (e.g. /srv/pcnn-hub).")
    assignments = hub.default_assignments()
    if args.assignment:
        pairs = [a.split("=", 1) for a in args.assignment]
        if any(len(p) != 2 or not Path(p[1]).is_file() for p in pairs):
            raise SystemExit(f"--assignment takes NAME=NOTEBOOK with an existing notebook, got {args.assignment}.")
        assignments = {name: Path(nb) for name, nb in pairs}
    written = hub.write_hub(args.out, args.course, args.teacher, hub.read_roster(args.roster), assignments,
                            args.student_python, args.exchange, profile=args.profile, threads=args.threads)
    print(f"{len(written)} files in {args.out.resolve()}; next, as root: bash {args.out.resolve() / 'setup.sh'}")


def default_lab_folder(student: bool, zh: str) -> Path:
    """Where `lab` opens: the clone's notebooks/, the students' copies, or (Chinese, or installed) a folder of chapters."""
    if student:
        return paths.BUILD / f"student{zh}"
    if paths.IN_CLONE:
        return paths.BUILD / "zh-chapters" if zh else paths.NOTEBOOKS
    return Path(f"pretrained-cnns-course{zh}")


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_intermixed_args(argv)  # options may come before or after the notebooks
    if args.seeds and args.command not in ("build", "confirm"):
        raise SystemExit(f"--seeds applies to build and confirm, not to {args.command}.")
    if args.lang:
        os.environ[LANG_VAR] = args.lang  # the build's kernels, and JupyterLab's, inherit it
    zh = "-zh" if language() == "zh" else ""
    if args.command == "student":
        write_student_versions(args.out or paths.BUILD / f"student{zh}", force=args.force)
        return
    if args.command == "lab":
        folder = args.out or (args.notebooks[0] if args.notebooks else None) or default_lab_folder(args.student, zh)
        raise SystemExit(lab(folder, student=args.student, force=args.force))
    if args.command == "get":
        get(args.notebooks[0] if args.notebooks else Path(f"pretrained-cnns-course{zh}"), force=args.force)
        return
    if args.command == "wheel":
        build_wheel(args.out or paths.ROOT / "dist", students=args.students)
        return
    if args.command == "hub":
        write_hub_from_args(args)
        return
    if args.command in ("test", "unit"):
        raise SystemExit(run_tests(unit_only=args.command == "unit"))
    if args.seeds:
        os.environ[SEEDS_VAR] = args.seeds  # a build on other seeds is not the reference run (its environment says so)
    if args.command == "confirm":  # the verdicts on a second seed set, decided (standard), every cell run
        os.environ[SEEDS_VAR] = args.seeds or paths.CONFIRM_SEEDS
        args.profile, args.keep_going, args.out = args.profile or "standard", True, args.out or paths.BUILD / "confirm"
    if args.profile:
        os.environ[ENV_VAR] = current(args.profile).name
    stop_on_signals()
    if args.command == "grade":
        try:
            graded = grade_all(args.notebooks, key=args.key, cell_timeout=args.timeout,
                               notebook_timeout=args.notebook_timeout)
        except KeyboardInterrupt as stop:
            print(f"Stopped ({stop or 'SIGINT'}); the kernel of the submission being graded was shut down.")
            raise SystemExit(130 if str(stop) in ("", "SIGINT") else 143) from None
        raise SystemExit(1 if any(not g.rows for g in graded) else 0)  # 1: a file could not be graded at all
    raise SystemExit(1 if build(args.only, args.out or paths.BUILD / zh.lstrip("-"), keep_going=args.keep_going,
                           save_reference=args.save_reference) else 0)


if __name__ == "__main__":
    main()
