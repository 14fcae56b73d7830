"""CPU threads that stay fast on a busy laptop.

PyTorch starts one OpenMP thread per core, and those threads *spin* while they wait for each other.
When another program keeps one core busy (a second notebook, the grader, a browser tab), the thread
that lands on that core runs late and the others spin for it: on a 2-core machine a training step
became 3-10x slower (`benchmarks/bench_load.py`). One thread per *free* core avoids it.

`adapt()` measures how much CPU the other processes used since its last call and sets torch's thread
count to the cores they left free. `train.fit` and `train.predict` call it as they go (at most twice a
second), so a run speeds up again when the other program stops. Set ``TUTORLIB_THREADS=n`` (or
``OMP_NUM_THREADS``) to pin the count instead; then tutorlib never changes it.
"""
from __future__ import annotations

import os
import time

import psutil
import torch

ENV_VAR = "TUTORLIB_THREADS"
MAX_THREADS = torch.get_num_threads()  # torch's own default: one per core
_last: tuple[float, float, float] | None = None  # (wall clock, busy CPU seconds of all processes, of ours)


def pinned() -> int | None:
    """The thread count the user fixed with $TUTORLIB_THREADS or $OMP_NUM_THREADS, if any."""
    for var in (ENV_VAR, "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"${var}={value!r} must be a positive whole number of threads, e.g. {var}=2.")
            return int(value)
    return None


def _sample() -> tuple[float, float, float]:
    system, own = psutil.cpu_times(), psutil.Process().cpu_times()
    busy = system.user + system.nice + system.system + getattr(system, "irq", 0.0) + \
        getattr(system, "softirq", 0.0) + getattr(system, "steal", 0.0)
    return time.monotonic(), busy, own.user + own.system


def free_cores(min_interval: float = 0.5) -> float | None:
    """Cores that other processes left idle since the last call; None if that was under `min_interval` s ago."""
    global _last
    if _last is not None and time.monotonic() - _last[0] < min_interval:
        return None
    previous, _last = _last, _sample()
    now = _last
    if previous is None:
        return None
    wall = now[0] - previous[0]
    others = max(0.0, (now[1] - previous[1]) - (now[2] - previous[2])) / wall
    return max(0.0, psutil.cpu_count() - others)


def adapt(min_interval: float = 0.5) -> int:
    """Set torch's thread count to the free cores (1 to the core count) and return it.

    Cheap (two reads of /proc); call it often. Does nothing when the count is pinned.
    """
    fixed = pinned()
    if fixed is not None:
        if torch.get_num_threads() != fixed:
            torch.set_num_threads(fixed)
        return fixed
    free = free_cores(min_interval)
    if free is not None:
        share = free / psutil.cpu_count()  # logical cores; torch counts physical ones
        wanted = min(MAX_THREADS, max(1, int(MAX_THREADS * share + 0.25)))  # 3/4 free counts as free
        if wanted != torch.get_num_threads():
            torch.set_num_threads(wanted)
    return torch.get_num_threads()
