"""Shared helpers: interleaved timing (A B A B ...), medians with min and max, and the course data.

Machines are shared and noisy, so every figure is a ratio measured within one run, with the arms
interleaved so that a slow minute hurts both equally.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from tutorlib import data


@dataclass
class Timings:
    """Seconds per repeat for each arm, plus whatever each run returned (accuracy, loss ...)."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    results: dict[str, list] = field(default_factory=dict)

    def median(self, arm: str) -> float:
        return statistics.median(self.seconds[arm])

    def spread(self, arm: str, unit: float = 1.0, fmt: str = "{:.2f}") -> str:
        """'1.23 (1.20-1.31)': median with min and max, in `unit`s."""
        values = [v / unit for v in self.seconds[arm]]
        return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"

    def ratio(self, arm: str, baseline: str) -> str:
        """Median of per-repeat ratios, with min and max: pairs share the same minute of machine noise."""
        ratios = [a / b for a, b in zip(self.seconds[arm], self.seconds[baseline])]
        return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def interleave(arms: dict[str, Callable[[], object]], repeats: int, warmup: bool = True) -> Timings:
    """Run each arm `repeats` times in the order A B C A B C ...; one untimed warm-up round first."""
    if warmup:
        for run in arms.values():
            run()
    timings = Timings({name: [] for name in arms}, {name: [] for name in arms})
    for _ in range(repeats):
        for name, run in arms.items():
            start = time.perf_counter()
            result = run()
            timings.seconds[name].append(time.perf_counter() - start)
            timings.results[name].append(result)
    return timings


def halves() -> tuple[tuple, tuple, tuple]:
    """A's training set, B's training and test sets from the bundled data (1,500 / 500 per class)."""
    train, test = data.load_fashion_mnist("train"), data.load_fashion_mnist("test")
    return (data.select_classes(train, data.HALF_A), data.select_classes(train, data.HALF_B),
            data.select_classes(test, data.HALF_B))


def cpu() -> str:
    """The CPU's model name and the widest vector set oneDNN may use here (AVX-512 or AVX2: timings differ 2-3x)."""
    import os
    import re
    from pathlib import Path

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = re.search(r"model name\s*:\s*(.+)", info)
    flags = set((re.search(r"flags\s*:\s*(.+)", info) or re.search("()", "")).group(1).split())
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f"{name.group(1).strip() if name else 'unknown CPU'}, {isa}" + (f" (ONEDNN_MAX_CPU_ISA={limit})" if limit else "")


def machine() -> str:
    import platform

    return (f"{cpu()}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")


def table(rows: list[dict]) -> str:
    """A Markdown table from a list of dicts sharing their keys."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)
