"""Rankings: Kendall's tau, how often chance reaches it (with model families kept), and a verdict on agreement.

Chapter 7 asks whether a cheap score (LogME, ImageNet accuracy) ranks models as fine-tuning does; a rank
agreement is only evidence where a random ranking rarely does as well, so chance is computed with the items'
structure (model families) kept.
"""
from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from .check import _numbers, expect


def kendall_tau(x, y) -> float:
    """Kendall's tau-b between two score lists (ties allowed): +1 same order, -1 reversed, about 0 unrelated."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    i, j = np.triu_indices(len(x), 1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    denominator = math.sqrt(float((dx != 0).sum()) * float((dy != 0).sum()))
    return float((dx * dy).sum() / denominator) if denominator else float("nan")


def chance_of_tau(scores, truth, min_tau: float, families=None, samples: int = 20_000) -> float:
    """How often a random ranking of `truth` reaches tau >= min_tau against `scores`.

    With `families` (one label per item) the random ranking shuffles items only *within* their family and
    keeps the order between families: the chance that family structure alone (big models are slow, whatever
    the FLOPs within a family) passes. Exact up to 40,320 orderings, Monte Carlo (a fixed seed) above.
    """
    x, y = np.asarray(scores, dtype=float), np.asarray(truth, dtype=float)
    labels = np.zeros(len(x), dtype=int) if families is None else pd.factorize(np.asarray(families))[0]
    groups = [np.flatnonzero(labels == f) for f in np.unique(labels)]
    if math.prod(math.factorial(len(g)) for g in groups) <= 40_320:
        orders = [np.concatenate(p) for p in itertools.product(*(itertools.permutations(g) for g in groups))]
    else:
        rng = np.random.default_rng(0)
        orders = [np.concatenate([rng.permutation(g) for g in groups]) for _ in range(samples)]
    where = np.concatenate(groups)
    shuffled = np.empty((len(orders), len(y)))
    shuffled[:, where] = y[np.array(orders, dtype=int)]
    i, j = np.triu_indices(len(x), 1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(shuffled[:, i] - shuffled[:, j])
    denominator = math.sqrt(float((dx != 0).sum()) * float((np.sign(y[i] - y[j]) != 0).sum()))
    taus = (dy @ dx) / denominator if denominator else np.full(len(orders), np.nan)
    return float((taus >= min_tau - 1e-12).mean())


def rank_agreement(scores: Any, truth: Any, claim: str, *, min_tau: float, families: Any = None,
                   max_chance: float = 0.05, paper: str | None = None, **numbers: Any) -> float:
    """Assert that two rankings of the same items agree (Kendall tau >= min_tau) where chance rarely does.

    A threshold that a random ranking would reach more often than `max_chance` is refused: with so few
    items, agreement could not be told from luck. `families` (a label per item, e.g. "CNN", "Lite") makes
    chance keep the order between families, so that family structure alone cannot pass. The chance rate is
    printed with the verdict.
    """
    s, t = _numbers(scores, "scores", "model"), _numbers(truth, "truth", "model")
    if sorted(s.index) != sorted(t.index):
        raise ValueError(f"Both rankings must name the same items, got {sorted(s.index)} and {sorted(t.index)}.")
    if len(s) < 3:
        raise ValueError(f"A rank agreement needs at least three items, got {len(s)}.")
    fam = None if families is None else _families(families, s.index)
    chance = chance_of_tau(s, t.loc[s.index], min_tau, fam)
    kept = " with families kept" if fam is not None else ""
    if chance > max_chance:
        raise ValueError(f"With {len(s)} items a random ranking{kept} reaches tau >= {min_tau} {100 * chance:.0f}% "
                         f"of the time (more than {100 * max_chance:.0f}%): no verdict could fail. Compare more "
                         f"items or raise min_tau, or report it with check.report instead.")
    tau = kendall_tau(s, t.loc[s.index]) if s.notna().all() and t.notna().all() else float("nan")
    expect(tau >= min_tau, f"{claim} [Kendall tau >= {min_tau:g}; chance{kept} reaches it {100 * chance:.1f}% of "
           f"the time]", paper=paper, kendall_tau=tau, chance_rate=chance, items=len(s), **numbers)
    return tau


def _families(families: Any, items: pd.Index) -> list:
    """One family label per item, in the order of `items` (a dict/Series by item, or a list in that order)."""
    if isinstance(families, (dict, pd.Series)):
        missing = [item for item in items if item not in families]
        if missing:
            raise ValueError(f"families names no family for {missing}; give one label per item.")
        return [families[item] for item in items]
    families = list(families)
    if len(families) != len(items):
        raise ValueError(f"families needs one label per item ({len(items)}), got {len(families)}.")
    return families
