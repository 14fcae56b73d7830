"""How often a verdict's rule passes on simulated units: its size at the threshold and its power above it.

Why: an interval is only as good as its coverage at the course's N. These simulations call the rule every
chapter calls (`check.decide`), on units shaped like the course's: normal, clustered by pretraining run
(intraclass correlation `icc`), skewed either way, or with 10% of draws collapsed far below the rest.
"""
from __future__ import annotations

import numpy as np

from . import check

SHAPES = ("normal", "skew-", "skew+", "collapse")
COLLAPSE_RATE, COLLAPSE_DEPTH = 0.10, 3.0  # a tenth of the draws, 3 sd below the others (diverged runs)


def _standard(rng: np.random.Generator, shape: str, size) -> np.ndarray:
    """Draws with mean 0 and sd 1 in the given shape (gamma with skewness -1 or +1; a collapsed tenth)."""
    if shape == "normal":
        return rng.standard_normal(size)
    if shape in ("skew-", "skew+"):  # Gamma(4): skewness 2 / sqrt(4) = 1, sd 2
        g = (rng.gamma(4.0, 1.0, size) - 4.0) / 2.0
        return -g if shape == "skew-" else g
    if shape == "collapse":
        x = np.where(rng.random(size) < COLLAPSE_RATE, -COLLAPSE_DEPTH, rng.standard_normal(size))
        mean = -COLLAPSE_RATE * COLLAPSE_DEPTH
        sd = np.sqrt(COLLAPSE_RATE * COLLAPSE_DEPTH ** 2 + (1 - COLLAPSE_RATE) - mean ** 2)
        return (x - mean) / sd
    raise ValueError(f"shape {shape!r}: the shapes are {SHAPES}.")


def simulated_units(rng: np.random.Generator, true_effect: float, sd: float, units: int, clusters: int | None = None,
                    icc: float = 0.0, shape: str = "normal") -> tuple[np.ndarray, np.ndarray | None]:
    """One set of paired differences: `units` of them, in `clusters` equal clusters (None: independent)."""
    if clusters is None:
        return true_effect + sd * _standard(rng, shape, units), None
    if units % clusters:
        raise ValueError(f"{units} units do not split into {clusters} equal clusters.")
    labels = np.repeat(np.arange(clusters), units // clusters)
    shared = rng.standard_normal(clusters)[labels]
    return true_effect + sd * (np.sqrt(icc) * shared + np.sqrt(1 - icc) * _standard(rng, shape, units)), labels


def pass_rate(kind: str, threshold: float, true_effect: float, sd: float, units: int, clusters: int | None = None,
              icc: float = 0.0, shape: str = "normal", method: str = "cluster-t", simulations: int = 4000,
              seed: int = 0) -> tuple[float, float]:
    """(share of simulated verdicts that pass, its Monte Carlo standard error)."""
    rng = np.random.default_rng(seed)
    passed = 0
    for _ in range(simulations):
        d, labels = simulated_units(rng, true_effect, sd, units, clusters, icc, shape)
        passed += check.decide(kind, threshold, d, labels, method)[3]
    rate = passed / simulations
    return rate, float(np.sqrt(max(rate * (1 - rate), 1e-4) / simulations))
