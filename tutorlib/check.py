"""Verdict cells: assert a finding and show the measured numbers whether it holds or not (docs/design.md, section 5).

What the chapters call:

* ``registered(key, a, b)``: the verdict notebooks/verdicts.toml fixed before the confirming run (claim, kind,
  threshold, units, paper), decided over paired units by the rule of its kind in ``RULES``: an effect or
  a non-inferiority by its 95% interval's lower bound, an equivalence by its 90% interval (TOST). A retired
  entry is measured by the same rule and reported, never asserted again. New entries decide on
  ``cluster_interval`` (``interval = "cluster-t"``: Hall's t over pretraining runs); ``decide`` is the one
  function every rule goes through, and what `tutorlib.calibration` simulates.
* ``report(claim, **numbers)`` and ``estimate(differences)``: a finding shown with its numbers and interval,
  not asserted (it did not reproduce, or it is not a key point); ``report_retired(key)`` a retired question
  the chapter no longer runs, with why.
* ``compare(a, b, claim)``: two arms side by side with their differences (and interval), not asserted: what
  became of the course's older per-seed bars; ``expect(condition, claim, **numbers)`` underneath every verdict.
* ``per_seed`` and ``mean_sd``: the tables and numbers verdicts are made of. Rankings (Kendall's tau, its
  chance rate, ``rank_agreement``) are in `tutorlib.ranks`.

Every verdict prints ``PASS``/``FAIL``/``INCONCLUSIVE claim: numbers`` (FAIL raises), fails on a NaN unless the
claim states how a diverged unit is scored (INCONCLUSIVE only where the profile does not decide: quick, whose
interval is not against the claim or whose units are too few for an interval, which it then says), and with ``$TUTORLIB_RESULTS`` set to a file path is appended to
it as a JSON line with the claim, the numbers, the paper, the profile and its seeds. The exercises' self-checks
are in `tutorlib.exercises`.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

import numpy as np
import pandas as pd
import torch
from scipy import stats

from . import i18n, inputs
from .profile import current


DECIMALS = 3  # verdicts print and record 3 decimals (0.1 accuracy points), 3 significant digits below 0.1


def _plain(value: Any) -> Any:
    """Numbers rounded (`DECIMALS`), tensors, NumPy and pandas values as Python values, for printing and JSON."""
    if hasattr(value, "to_dict") and hasattr(value, "index"):  # a pandas Series or DataFrame
        value = value.to_dict()
    if hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:  # tensors and arrays of any size
        value = value.tolist()
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # 0-d tensors and NumPy scalars
        value = value.item()
    if isinstance(value, float):
        small = value != 0 and math.isfinite(value) and abs(value) < 0.1  # 3e-4 stays 3e-4, not 0.0
        return round(value, DECIMALS - 1 - math.floor(math.log10(abs(value))) if small else DECIMALS)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {(k if isinstance(k, (str, int, float, bool)) else str(k)): _plain(v) for k, v in value.items()}
    return value


def _record(status: str, claim: str, numbers: dict, paper: str | None, shown: str | None = None) -> None:
    """Append the verdict to $TUTORLIB_RESULTS: its English claim (both editions compare on it), and as shown."""
    path = os.environ.get("TUTORLIB_RESULTS")
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise FileNotFoundError(f"$TUTORLIB_RESULTS={path!r} is in a folder that does not exist. Create it "
                                f"(mkdir -p {os.path.dirname(os.path.abspath(path))}) or unset TUTORLIB_RESULTS.")
    if path:
        prof = current()
        record = {"status": status, "claim": claim, "numbers": numbers, "paper": paper,
                  "profile": prof.name, "seeds": list(prof.seeds)}
        if shown is not None and shown != claim:
            record["shown"] = shown  # the Chinese edition's wording, for its write-up
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def _truth(condition: Any) -> bool:
    """A verdict's condition must be one True/False; a NaN or a whole array is a mistake, not a pass."""
    if isinstance(condition, torch.Tensor):
        condition = condition.item() if condition.numel() == 1 else condition
    if hasattr(condition, "item") and getattr(condition, "size", 2) == 1:
        condition = condition.item()
    if isinstance(condition, float) and condition != condition:
        return False
    if not isinstance(condition, (bool, int, float)):
        raise TypeError(f"The condition must be a single True/False, got {type(condition).__name__}. "
                        f"Reduce it first, e.g. (gaps > 0).all() or gaps.min() > 0.")
    return bool(condition)


def expect(condition: bool, claim: str, paper: str | None = None, **numbers: Any) -> None:
    """Assert `condition`; the message carries `claim` and every measured number passed as keywords."""
    numbers = _plain(numbers)
    shown = ", ".join(f"{k}={v}" for k, v in numbers.items())
    status = "PASS" if _truth(condition) else "FAIL"
    _record(status, claim, numbers, paper, i18n.claim(claim))
    line = f"{i18n.status(status)} {i18n.claim(claim)}: {shown}"
    if status == "FAIL":
        raise AssertionError(line)
    print(line)


def report(claim: str, paper: str | None = None, **numbers: Any) -> None:
    """A finding shown with its numbers but not asserted (for example one that does not reproduce)."""
    _report(claim, i18n.claim(claim), paper, numbers)


def _report(claim: str, shown: str, paper: str | None, numbers: dict) -> None:
    numbers = _plain(numbers)
    _record("REPORTED", claim, numbers, paper, shown)
    print(f"{i18n.status('NOT ASSERTED')} {shown}: " + ", ".join(f"{k}={i18n.value(v)}" for k, v in numbers.items()))


def per_seed(table: pd.DataFrame, by: str, value: str) -> pd.DataFrame:
    """A long results table (one row per seed and arm) as one column per arm (`by`) and one row per seed.

    The shape `paired` and `report` compare: ``per_seed(results, by="method", value="accuracy")["FT"]``.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"per_seed takes a pandas DataFrame of results, got {type(table).__name__}.")
    missing = [c for c in ("seed", by, value) if c not in table.columns]
    if missing:
        raise ValueError(f"The table has no column {missing}; its columns are {list(table.columns)}.")
    if table.duplicated(["seed", by]).any():
        raise ValueError(f"Some seed has two rows for one {by!r}: filter the table to one measurement per seed and "
                         f"{by!r} first (e.g. table[table.shots == 5]).")
    wide = table.pivot(index="seed", columns=by, values=value)
    holes = [(seed, arm) for seed, row in wide.iterrows() for arm in wide.columns
             if not ((table.seed == seed) & (table[by] == arm)).any()]
    if holes:
        raise ValueError(f"Some seeds have no row for some {by!r}: (seed, {by}) = {holes[:5]}. A missing run is not a "
                         f"diverged one (a NaN): rerun it, or filter the table to the seeds every arm has.")
    return wide


def _numbers(values: Any, name: str, per: str) -> pd.Series:
    """One number per seed (or per item), as a float Series indexed by it (from a Series or a dict)."""
    if isinstance(values, pd.DataFrame) or not isinstance(values, (pd.Series, dict)):
        raise TypeError(f"{name} must give one number per {per}: a pandas Series indexed by {per} or a dict "
                        f"{{{per}: value}}, got {type(values).__name__}. E.g. check.per_seed(table, by='method', value='accuracy')['FT'].")
    return pd.Series(values, dtype=float)


def compare(a: Any, b: Any, claim: str, *, names: tuple[str, str] = ("a", "b"), paper: str | None = None,
            **numbers: Any) -> pd.Series:
    """Show two arms paired by seed (or draw) and their differences, not asserted; return the differences.

    Why not a bar on every seed (the course's older rule): at a true gap equal to the bar it passes one time
    in eight on three seeds, and a bar set after looking at the seeds decides nothing. A comparison that is
    not a registered verdict is shown with its numbers, and with its interval where there are enough units.
    """
    x, y = _paired_units(a, b, None)
    gaps = (x - y).sort_index()
    shown = {names[0]: x.sort_index().tolist(), names[1]: y.sort_index().tolist(), "difference": gaps.tolist()}
    if len(gaps) >= MIN_UNITS and np.isfinite(gaps.to_numpy()).all():
        shown.update(mean_difference=float(gaps.mean()), interval=estimate(gaps.to_numpy())["interval"])
    else:
        shown["mean_difference"] = gaps.mean(skipna=False)
    report(claim, paper=paper, **shown, **numbers)
    return gaps


# ----------------------------------------------------------------------------- interval verdicts
CONFIDENCE = 0.95
MIN_UNITS = 6  # fewer paired units than this give no interval worth the name


@dataclass
class Verdict:
    """What an interval verdict measured and decided: PASS, FAIL or (quick profile only) INCONCLUSIVE."""
    claim: str
    status: str
    estimate: float
    low: float
    high: float
    units: int


def interval(differences: Any, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """The mean of paired differences and its bootstrap interval (scipy.stats.bootstrap, BCa, a fixed seed).

    Why an interval: a handful of seeds gives a noisy mean; the interval says how far it could be off.
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or len(d) < MIN_UNITS:
        raise ValueError(f"An interval needs at least {MIN_UNITS} paired units (draws across seeds), got {d.size}. "
                         f"Run more draws per seed.")
    if not np.isfinite(d).all():
        raise ValueError("The differences hold a NaN or inf (a diverged run): score it by the claim's rule first.")
    if np.ptp(d) == 0:  # every unit equal: no spread to resample
        return float(d[0]), float(d[0]), float(d[0])
    result = stats.bootstrap((d,), np.mean, confidence_level=confidence, method="BCa", n_resamples=4999,
                             rng=np.random.default_rng(0))
    return float(d.mean()), float(result.confidence_interval.low), float(result.confidence_interval.high)


def estimate(differences: Any) -> dict:
    """`{"mean", "interval", "units"}` of per-unit differences: how a reported finding shows its uncertainty.

    Units indexed by pretraining run (a protocol's table) are clustered by it: `cluster_interval`, not a bootstrap
    that would count each draw of one run as independent. Too few units for an interval are an error, except
    in a profile that does not decide (quick), which shows the mean and the units an interval would need.
    """
    names = getattr(getattr(differences, "index", None), "names", None) or []
    runs = differences.index.get_level_values(CLUSTER_LEVEL) if CLUSTER_LEVEL in names else None
    needs = _units_needed(len(np.asarray(differences)), runs, "cluster-t" if runs is not None else "registered")
    if needs and not current().decides:  # quick: the mean alone, and what an interval would need
        return {"mean": float(np.mean(differences)), "interval": [float("nan")] * 2,
                "units": len(np.asarray(differences)), "units the interval needs": needs}
    if runs is not None:
        mean, low, high = cluster_interval(differences.to_numpy(), runs)
        return {"mean": mean, "interval": [low, high], "units": len(runs), "clusters": runs.nunique()}
    mean, low, high = interval(differences)
    return {"mean": mean, "interval": [low, high], "units": len(np.asarray(differences))}


def _paired_units(a: Any, b: Any, diverged: float | None) -> tuple[pd.Series, pd.Series]:
    """Two arms as float Series on the same units; a NaN unit takes the score `diverged` (or fails, if None)."""
    a, b = _numbers(a, "the first arm", "unit"), _numbers(b, "the second arm", "unit")
    if sorted(a.index, key=str) != sorted(b.index, key=str):
        raise ValueError(f"The two arms must cover the same units, got {len(a)} and {len(b)} that differ.")
    b = b.loc[a.index]
    if diverged is not None:
        a, b = a.fillna(diverged), b.fillna(diverged)
    return a, b


def _decide(claim: str, holds: bool, against: bool, numbers: dict, paper: str | None, shown: str | None = None) -> str:
    """PASS, FAIL, or INCONCLUSIVE where the profile does not decide (quick) and the interval is not against."""
    status = "PASS" if holds else "FAIL" if (current().decides or against) else "INCONCLUSIVE"
    numbers, shown = _plain(numbers), shown or i18n.claim(claim)
    _record(status, claim, numbers, paper, shown)
    line = f"{i18n.status(status)} {shown}: " + ", ".join(f"{k}={v}" for k, v in numbers.items())
    if status == "FAIL":
        raise AssertionError(line)
    print(line)
    return status


def equivalence_interval(differences: Any) -> tuple[float, float, float]:
    """The mean of paired differences and its 90% t interval: two one-sided t-tests at 5% (TOST, Lakens 2017).

    Why a t interval and not the bootstrap: at the bound a TOST must pass at most 5% of the time, and the
    t-test keeps that size at a few dozen units where a bootstrap interval is a little too narrow.
    """
    d = np.asarray(differences, dtype=float)
    interval(d)  # the same checks: enough units, no NaN
    if np.ptp(d) == 0:
        return float(d[0]), float(d[0]), float(d[0])
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(confidence_level=1 - 2 * (1 - CONFIDENCE))
    return float(d.mean()), float(ci.low), float(ci.high)


CLUSTER_LEVEL = "pretrain_seed"  # units indexed by (pretrain_seed, draw) cluster by their pretraining run


def cluster_interval(differences: Any, clusters: Any = None, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """The mean of cluster means and its interval: Hall's skewness-corrected t over the clusters' means.

    Why: draws that share a pretraining run are not independent (the run is what replicates), so the interval
    is over cluster means, with clusters - 1 degrees of freedom; and at a dozen units a bootstrap interval
    covers less than it says while a plain t ignores skew. Hall's monotone cubic transformation of the
    studentised mean (Hall 1992, JRSS B 54:221-228) removes the first-order effect of skew. `clusters`: one
    label per unit (None: every unit is its own cluster). tests/test_calibration.py simulates its level.
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or not np.isfinite(d).all():
        raise ValueError("The differences must be one finite number per unit: score a diverged run (NaN) by the "
                         "claim's rule first.")
    if len(d) < MIN_CALIBRATED_UNITS:
        raise ValueError(f"This interval keeps its level from {MIN_CALIBRATED_UNITS} paired units up "
                         f"(tests/test_calibration.py), got {d.size}. Run more draws per seed.")
    if clusters is not None:
        labels = np.asarray(clusters)
        if labels.shape != d.shape:
            raise ValueError(f"clusters must give one label per unit: {labels.size} labels for {d.size} units.")
        _, which = np.unique(labels, return_inverse=True)
        d = np.bincount(which, weights=d) / np.bincount(which)  # each cluster's mean difference
        if len(d) < MIN_CLUSTERS:
            raise ValueError(f"A clustered interval needs at least {MIN_CLUSTERS} clusters (pretraining runs), got "
                             f"{len(d)}. Pretrain more seeds (make checkpoints PRETRAIN_SEEDS=...).")
    n, mean, sd = len(d), float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        return mean, mean, mean
    skew = float(((d - mean) ** 3).mean()) / sd ** 3
    q = float(stats.t.ppf(1 - (1 - confidence) / 2, n - 1))
    b, c = skew / (3 * np.sqrt(n)), skew / (6 * np.sqrt(n))

    def studentised(target: float) -> float:  # the T at which Hall's g(T) = g0 (T + bT^2 + b^2 T^3/3 + c)
        return (float(np.cbrt(3 * b * (target - c) + 1)) - 1) / b if abs(b) > 1e-12 else target - c

    se = sd / np.sqrt(n)
    return mean, mean - se * studentised(q), mean - se * studentised(-q)


MIN_CLUSTERS, MIN_CALIBRATED_UNITS = 5, 9  # below these the simulated size of cluster_interval exceeds its level


@dataclass(frozen=True)
class Rule:
    """How one kind of verdict decides: its interval, its label, and when the interval passes or is against."""
    interval: Callable[[Any], tuple[float, float, float]]
    level: str
    estimate_name: str
    label: Callable[[float], str]
    passes: Callable[[float, float, float], bool]  # (low, high, threshold)
    against: Callable[[float, float, float], bool]


_ABOVE = dict(passes=lambda low, high, t: low > t, against=lambda low, high, t: not high >= t)
_WITHIN = dict(passes=lambda low, high, t: -t < low and high < t, against=lambda low, high, t: not (low < t and high > -t))
RULES = {
    "effect": Rule(interval, "95% interval", "effect", lambda t: f"effect > {t:.3g}", **_ABOVE),
    "non-inferiority": Rule(interval, "95% interval", "effect", lambda t: f"non-inferiority, margin {-t:.3g}", **_ABOVE),
    "equivalence": Rule(equivalence_interval, "90% interval", "difference", lambda t: f"equivalence within +-{t:.3g}",
                        **_WITHIN),
}
METHODS = ("registered", "cluster-t")  # a registry entry's `interval`: absent (its kind's own), or "cluster-t"


def decide(kind: str, threshold: float, differences: Any, clusters: Any = None,
           method: str = "registered") -> tuple[float, float, float, bool, bool]:
    """(estimate, low, high, holds, against) of one rule on paired differences: what every verdict calls.

    method: "registered" (the kind's own interval, what entries registered before `cluster_interval` keep: BCa
    for effects, t for equivalence) or "cluster-t" (`cluster_interval`; clusters allowed).
    """
    rule = RULES[kind]
    if method not in METHODS:
        raise ValueError(f"interval = {method!r}: the intervals are {list(METHODS)}.")
    if method == "cluster-t":
        confidence = CONFIDENCE if kind != "equivalence" else 1 - 2 * (1 - CONFIDENCE)
        estimate, low, high = cluster_interval(differences, clusters, confidence)
    elif clusters is not None:
        raise ValueError("Clustered units (indexed by pretraining seed) need a cluster-aware interval: register the "
                         "verdict with interval = \"cluster-t\".")
    else:
        estimate, low, high = rule.interval(differences)
    return estimate, low, high, rule.passes(low, high, threshold), rule.against(low, high, threshold)


def _judge(kind: str, threshold: float, a: Any, b: Any, names, diverged,
           method: str = "registered") -> tuple[dict, float, float, float, bool, bool]:
    """Apply the rule of `kind` to two paired arms: the numbers to show, the interval, holds, against."""
    rule = RULES[kind]
    x, y = _paired_units(a, b, diverged)
    estimate = low = high = float("nan")
    holds = against = False
    clusters = x.index.get_level_values(CLUSTER_LEVEL) if CLUSTER_LEVEL in (x.index.names or []) else None
    needs = _units_needed(len(x), clusters, method)
    if needs and not current().decides:  # quick: too few units for an interval is INCONCLUSIVE, not an error
        estimate = float((x - y).mean())
    elif not (x.isna().any() or y.isna().any()):
        estimate, low, high, holds, against = decide(kind, threshold, (x - y).to_numpy(), clusters, method)
    else:
        holds, against = rule.passes(low, high, threshold), rule.against(low, high, threshold)
    numbers = {names[0]: x.mean(), names[1]: y.mean(), rule.estimate_name: estimate, "interval": [low, high],
               "units": len(x)}
    if clusters is not None:
        numbers["clusters"] = len(set(clusters))
    if needs and not current().decides:
        numbers["units the interval needs"] = needs
    return numbers, estimate, low, high, holds, against


def _units_needed(units: int, clusters: Any, method: str) -> int | None:
    """How many units (or clusters) the interval needs where this run has fewer; None where it has enough."""
    if method == "cluster-t":
        if units < MIN_CALIBRATED_UNITS:
            return MIN_CALIBRATED_UNITS
        return MIN_CLUSTERS if clusters is not None and len(set(clusters)) < MIN_CLUSTERS else None
    return MIN_UNITS if units < MIN_UNITS else None


def _verdict(kind: str, threshold: float, a: Any, b: Any, claim: str, names, diverged, paper,
             method: str = "registered", key: str | None = None) -> Verdict:
    numbers, estimate, low, high, holds, against = _judge(kind, threshold, a, b, names, diverged, method)
    rule = RULES[kind]
    over = f"{numbers['units']} paired units" + (f" in {numbers['clusters']} clusters" if "clusters" in numbers else "")
    level = rule.level if method == "registered" else f"{rule.level} (Hall t over clusters)"
    label = f"{claim} [{rule.label(threshold)}, {level} over {over}]"
    clusters = f"，{numbers['clusters']} 个簇" if "clusters" in numbers else ""
    shown = label if i18n.language() == "en" else (f"{i18n.claim(claim, key)} [{i18n.text(rule.label(threshold))}；"
                                                  f"{i18n.text(level)}，{numbers['units']} 个配对单元{clusters}]")
    status = _decide(label, holds, against, numbers, paper, shown)
    return Verdict(claim, status, estimate, low, high, numbers["units"])


def effect(better: Any, worse: Any, claim: str, *, min_effect: float, names: tuple[str, str] = ("better", "worse"),
           non_inferiority: bool = False, diverged: float | None = None, paper: str | None = None,
           interval: str = "registered") -> Verdict:
    """Assert that arm `better` beats `worse` by more than `min_effect`: the 95% interval's lower bound clears it.

    Units are paired (same target draw, init and order in both arms). `min_effect` >= 0 states the smallest
    gain that counts; a negative one is a non-inferiority margin and must say so (`non_inferiority=True`).
    `diverged`: the score a NaN unit (a diverged run) gets, a rule the claim states; None fails the verdict.
    interval: "registered" (BCa bootstrap) or "cluster-t" (`cluster_interval`; units indexed by
    (pretrain_seed, draw) cluster by pretraining run).
    """
    min_effect = inputs.real(min_effect, "min_effect")
    if min_effect < 0 and not non_inferiority:
        raise ValueError(f"A negative min_effect ({min_effect}) lets equal arms pass: it is a non-inferiority margin. "
                         f"Say so with non_inferiority=True, or use min_effect >= 0.")
    kind = "non-inferiority" if non_inferiority else "effect"
    return _verdict(kind, min_effect, better, worse, claim, names, diverged, paper, interval)


def equivalent(a: Any, b: Any, claim: str, *, bound: float, names: tuple[str, str] = ("a", "b"),
               diverged: float | None = None, paper: str | None = None, interval: str = "registered") -> Verdict:
    """Assert that two arms differ by less than `bound` either way (two one-sided tests at 5%: the 90% interval).

    The way to assert that a published effect did not reproduce at this scale, rather than to fail to find it.
    """
    bound = inputs.positive(bound, "bound (the largest difference that counts as none)")
    return _verdict("equivalence", bound, a, b, claim, names, diverged, paper, interval)


def _verdicts_file() -> Path:
    """notebooks/verdicts.toml in a clone, or the copy an installed wheel carries."""
    here = Path(__file__).resolve().parent
    candidates = [here.parent / "notebooks" / "verdicts.toml", here / "course_notebooks" / "verdicts.toml"]
    return next((p for p in candidates if p.exists()), candidates[0])


def preregistration(key: str | None = None) -> dict:
    """The pre-registered verdicts (notebooks/verdicts.toml), or the entry `key`: fixed before the confirming run."""
    path = _verdicts_file()
    try:
        with open(path, "rb") as f:
            entries = tomllib.load(f)
    except tomllib.TOMLDecodeError as err:  # a duplicated [key] lands here too
        raise ValueError(f"{path} is not valid TOML ({err}). A key defined twice means two entries share a name: "
                         f"restore the file with `git checkout -- notebooks/verdicts.toml`.") from None
    for name, entry in entries.items():
        _check_entry(name, entry, path)
    if key is None:
        return entries
    if key not in entries:
        raise KeyError(f"No verdict {key!r} is pre-registered in notebooks/verdicts.toml; registered: {sorted(entries)}.")
    return entries[key]


def registry_fingerprint() -> dict[str, str]:
    """Each registered entry's sha256 over its fields (not the file's comments): what a run records of its registry.

    Why: a threshold lowered in a learner's copy would otherwise pass silently; the write-up compares these
    with the reference run's and names every entry that changed.
    """
    import hashlib

    return {key: hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()[:16]
            for key, entry in preregistration().items()}


def _check_entry(name: str, entry: dict, path: Path) -> None:
    """A registry entry has what `registered` reads, with a kind from RULES; else an error that names the field."""
    where = f"Verdict [{name}] in {path}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a table of fields, got {entry!r}.")
    if entry.get("kind") not in RULES:
        close = difflib.get_close_matches(str(entry.get("kind")), RULES, n=1)
        raise ValueError(f"{where} has kind = {entry.get('kind')!r}; kinds are {sorted(RULES)}"
                         + (f" (did you mean {close[0]!r}?)." if close else "."))
    threshold = "bound" if entry["kind"] == "equivalence" else "min_effect"
    missing = [f for f in ("claim", "names", "units", threshold) if f not in entry]
    if missing:
        raise ValueError(f"{where} lacks {missing}: every entry names its claim, its two arms (names = [a, b]), its "
                         f"units and its {threshold} (see the comment at the top of the file).")
    if entry.get("interval", "registered") not in METHODS:
        raise ValueError(f"{where} has interval = {entry['interval']!r}; leave it out (the kind's own interval) or "
                         f"set interval = \"cluster-t\".")
    if not (isinstance(entry["names"], list) and len(entry["names"]) == 2):
        raise ValueError(f"{where} has names = {entry['names']!r}; it must name the two arms, e.g. names = [\"FT\", \"LP\"].")
    _check_new_fields(where, entry)


SMALLEST_EFFECT = {"accuracy": 0.02, "log10 ratio": 1.0, "kendall tau": 0.2}  # docs/design.md 5a: why each size
ENTRY_FIELDS = {"kind", "claim", "names", "units", "set_from", "pilot_effect", "pilot_sd", "paper", "min_effect",
                "bound", "diverged", "retired", "interval", "clusters", "pilot_icc", "unit", "anchor_effect",
                "sensitivity", "protocol", "pilot_seeds", "pilot_draws", "confirm_seeds", "published_checkpoint",
                "pretrain_runs"}


def _check_new_fields(where: str, entry: dict) -> None:
    """The fields of the 2026-12-07 registration pass: a unit with one smallest effect, and a runnable protocol."""
    if "unit" in entry and entry["unit"] not in SMALLEST_EFFECT:
        raise ValueError(f"{where} has unit = {entry['unit']!r}; the units (each with its smallest effect of interest) "
                         f"are {sorted(SMALLEST_EFFECT)}.")
    protocol = entry.get("protocol")
    if protocol is not None and not (isinstance(protocol, dict) and isinstance(protocol.get("function"), str)
                                     and isinstance(protocol.get("args", {}), dict)):
        raise ValueError(f"{where} has protocol = {protocol!r}; write protocol = {{ function = \"name in "
                         f"tutorlib.protocols\", args = {{ ... }} }}.")


def registration_problems(registry: dict) -> list[str]:
    """What keeps each live entry from the rules of the 2026-12-07 registration pass (docs/design.md, 5a): none, or
    a sentence per broken rule. Retired entries are reported, never asserted, and are not held to them."""
    problems = []
    for key, entry in registry.items():
        if "retired" in entry:
            continue
        problems += [f"[{key}] {problem}" for problem in _rule_problems(entry, registry)]
    return problems


def _rule_problems(entry: dict, registry: dict) -> list[str]:
    missing = [f for f in ("unit", "protocol", "pilot_seeds", "confirm_seeds") if f not in entry]
    if missing:
        return [f"lacks {missing}"]
    size, threshold, kind = SMALLEST_EFFECT.get(entry["unit"]), abs(_threshold(entry)), entry["kind"]
    problems = []
    if entry.get("interval") != "cluster-t":
        problems.append('decides on interval = "cluster-t" (the interval calibrated at the course\'s N)')
    served = {abs(_threshold(e)) for e in registry.values() if e.get("sensitivity") in registry
              and registry[e["sensitivity"]] is entry}  # a sensitivity arm's minimum is the bound it backs
    if kind == "effect" and threshold not in {size} | served:
        problems.append(f"an effect's minimum is the unit's smallest effect, {size}, not {threshold}")
    if kind != "effect":
        anchor = entry.get("anchor_effect")
        if anchor is not None and threshold > anchor / 2:
            problems.append(f"its margin {threshold} is more than half the anchor's effect ({anchor})")
        if anchor is None and threshold != size:
            problems.append(f"its bound is the unit's smallest effect, {size}, not {threshold}, unless anchor_effect is given")
        arm = registry.get(entry.get("sensitivity"), {})
        if not (arm.get("kind") == "effect" and "retired" not in arm and arm.get("unit") == entry["unit"]
                and arm.get("protocol") == entry["protocol"] and arm["min_effect"] >= threshold):
            problems.append("names no live sensitivity arm: an effect entry of the same unit and protocol whose minimum "
                            "is at least this bound")
    if entry.get("clusters", 0) < MIN_CLUSTERS and "published_checkpoint" not in entry:
        problems.append(f"its units span fewer than {MIN_CLUSTERS} pretraining runs and it names no published_checkpoint")
    seen = {tuple(s) for s in entry["confirm_seeds"]}
    if not {(0, 1, 2), (20, 21, 22)} < seen or set(entry["pilot_seeds"]) & set().union(*seen):
        problems.append("confirm_seeds holds 0-2, 20-22 and a fresh set, none of them a pilot seed")
    return problems


def _threshold(entry: dict) -> float:
    return entry["bound"] if entry["kind"] == "equivalence" else entry["min_effect"]


def registered(key: str, a: Any, b: Any = None) -> Verdict:
    """Run the verdict `key` exactly as notebooks/verdicts.toml fixed it: claim, kind, effect or bound, units, paper.

    `a, b`: the two arms, one number per unit. An entry that registers its protocol takes instead the one table
    `tutorlib.protocols` returned (`a`), whose columns carry the arms' names: it must come from that protocol
    with those arguments, so that the question run is the question registered.
    """
    entry = preregistration(key)
    if "protocol" in entry or b is None:
        a, b = _registered_arms(key, entry, a, b)
    units = len(_numbers(a, "the first arm", "unit"))
    if current().decides and units < entry["units"]:
        raise ValueError(f"Verdict {key!r} was pre-registered with {entry['units']} units; this run has {units}. "
                         f"Run the chapter's full number of draws (the quick profile alone may run fewer).")
    if "retired" in entry:
        return _retired(entry, a, b, key)
    return _verdict(entry["kind"], _threshold(entry), a, b, entry["claim"], tuple(entry["names"]),
                    entry.get("diverged"), entry.get("paper"), entry.get("interval", "registered"), key)


def _registered_arms(key: str, entry: dict, table: Any, b: Any) -> tuple[pd.Series, pd.Series]:
    """The two arms of a protocol entry, from the table its registered protocol measured (else a clear error)."""
    if "protocol" not in entry:
        raise TypeError(f"Verdict {key!r} registers no protocol: pass its two arms, check.registered(key, a, b).")
    ran = getattr(table, "attrs", {}).get("protocol") if isinstance(table, pd.DataFrame) and b is None else None
    if ran != entry["protocol"]:
        raise ValueError(f"Verdict {key!r} was registered with protocol {entry['protocol']}; pass the one table it "
                         f"returns (check.registered(key, table)), not {'two arms' if b is not None else ran}. "
                         f"A changed question needs a new registry key (docs/design.md, section 5a).")
    missing = [name for name in entry["names"] if name not in table.columns]
    if missing:
        raise ValueError(f"The protocol's table has no column {missing} for verdict {key!r}; it has {list(table.columns)}.")
    return table[entry["names"][0]], table[entry["names"][1]]


def report_retired(*keys: str) -> None:
    """Retired questions a chapter no longer runs (a new key replaced them): printed with why, never asserted."""
    for key in keys:
        entry = preregistration(key)
        if "retired" not in entry:
            raise ValueError(f"Verdict {key!r} is live: run it with check.registered({key!r}, ...).")
        _report(f"{entry['claim']} [retired, not re-run]",
                f"{i18n.claim(entry['claim'], key)} [{i18n.text('retired, not re-run')}]", entry.get("paper"),
                {"reason": entry["retired"]})  # recorded in English, shown in the learner's edition (i18n.value)


def _retired(entry: dict, a: Any, b: Any, key: str | None = None) -> Verdict:
    """A registered verdict that failed its confirming run: still measured by its own rule, never asserted again.

    Its threshold stays as registered (re-setting it from the failed run would be fitting the bar to the data);
    the chapter reports the numbers and the rule's outcome, and `entry["retired"]` says when and why.
    """
    rule, names = RULES[entry["kind"]], entry["names"]
    numbers, estimate, low, high, holds, _ = _judge(entry["kind"], _threshold(entry), a, b, names, entry.get("diverged"),
                                                    entry.get("interval", "registered"))
    rule_label = rule.label(_threshold(entry))
    claim = (f"{entry['claim']} [registered: {rule_label}, {rule.level} over {entry['units']} units; "
             f"retired: {entry['retired']}]")
    shown = claim if i18n.language() == "en" else (
        f"{i18n.claim(entry['claim'], key)} [已登记：{i18n.text(rule_label)}；{i18n.text(rule.level)}，"
        f"{entry['units']} 个单元；已退役：{i18n.retired(key, entry['retired'])}]")
    _report(claim, shown, entry.get("paper"), {names[0]: numbers[names[0]], names[1]: numbers[names[1]],
            "difference": estimate, "interval": [low, high], "units": numbers["units"],
            "registered_rule_holds": bool(holds)})
    return Verdict(entry["claim"], "RETIRED", estimate, low, high, numbers["units"])


def mean_sd(values) -> str:
    """'0.842 ± 0.013 (n=3)': how the course writes a result over seeds."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_sd needs at least one value.")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"mean_sd got {values}: a NaN or inf is a diverged or missing run. Score it first "
                         f"(e.g. as chance) or report it apart; a mean over it means nothing.")
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f} (n={len(values)})"
