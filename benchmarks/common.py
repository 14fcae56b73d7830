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


def machine() -> str:
    import platform

    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}")


def table(rows: list[dict]) -> str:
    """A Markdown table from a list of dicts sharing their keys."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)
