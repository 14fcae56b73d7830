"""`course test` and `unit` (make test / make unit): pytest with the chapters first, in the quick profile."""
from __future__ import annotations

import os

from ..profile import ENV_VAR
from . import paths

def pytest_command(unit_only: bool = False) -> list[str]:
    """What `make test` / `make unit` run: in a clone the unit tests and every notebook; installed, the notebooks."""
    import sys

    if unit_only and not paths.IN_CLONE:
        raise SystemExit("The unit tests live in the repository (tests/): run this in a clone.")
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", str(TEST_WORKERS), "--dist", "loadfile"]
    if unit_only:
        return base + [str(paths.ROOT / "tests"), "-m", "not slow and not hub"]
    # Longest first, in this order (xdist would otherwise sort files by their number of tests): the chapters
    # and the three slowest test files start at once, and the many short files fill in at the end, so
    # neither worker waits alone for a chapter that started last.
    slow_tests = [str(paths.ROOT / "tests" / name) for name in SLOW_TEST_FILES]
    targets = [str(paths.NOTEBOOKS), *slow_tests, str(paths.ROOT / "tests")] if paths.IN_CLONE else [str(paths.NOTEBOOKS)]
    if paths.IN_CLONE:  # that chapter runs in tests/test_chinese_edition.py, in both editions, instead
        targets.append(f"--ignore={paths.NOTEBOOKS / CHAPTER_IN_BOTH_EDITIONS}")
    report = [f"--junitxml={paths.BUILD / 'test-report.xml'}"] if paths.IN_CLONE else []  # every test's time, per chapter too
    return base + ["--no-loadscope-reorder", *targets, "-m", "not hub", "--nbval-lax", "--nbval-current-env",
                   "--durations=10", *report]


SLOW_TEST_FILES = ("test_chinese_edition.py", "test_installed_course.py", "test_lab_session.py",
                   "test_checkpoints.py")  # 85-160 s each
CHAPTER_IN_BOTH_EDITIONS = "01_source_data.ipynb"  # built in English and Chinese, numbers compared


# Two test processes, one thread each on a 2-core machine: small CNNs gain little from a second thread,
# so two chapters side by side finish sooner than one after the other (a file, or a notebook, stays whole).
TEST_WORKERS = min(2, os.cpu_count() or 1)


def run_tests(unit_only: bool = False) -> int:
    """Run the test suite in the quick profile, from the repository root in a clone; return pytest's exit code."""
    import subprocess

    threads = str(max(1, (os.cpu_count() or 1) // TEST_WORKERS))
    env = {"TUTORLIB_THREADS": threads, **os.environ, ENV_VAR: "quick"}  # a pinned count is kept
    return subprocess.call(pytest_command(unit_only), cwd=paths.ROOT if paths.IN_CLONE else None, env=env)
