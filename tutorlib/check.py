"""Verdict cells: assert a finding and show the measured numbers whether it holds or not.

``expect(cond, claim, **numbers)`` prints ``PASS claim: numbers`` or raises an AssertionError
with the same line, so a failing verdict says what was measured. ``report`` records a finding that
is *not* asserted (it did not reproduce at this scale) so the write-up can still list it.
``paper=`` names the published result a verdict is set against; the write-up puts the two side by side.
With ``$TUTORLIB_RESULTS`` set to a file path, every verdict is appended to it as a JSON line with
the claim, the numbers, the paper, the profile and its seeds.
"""
from __future__ import annotations

import json
import os
import statistics
from typing import Any

import torch

from .profile import current


def _plain(value: Any) -> Any:
    """Numbers as rounded floats, tensors and NumPy values as Python values, for printing and JSON."""
    if hasattr(value, "to_dict") and hasattr(value, "index"):  # a pandas Series or DataFrame
        value = value.to_dict()
    if hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:  # tensors and arrays of any size
        value = value.tolist()
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # 0-d tensors and NumPy scalars
        value = value.item()
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {(k if isinstance(k, (str, int, float, bool)) else str(k)): _plain(v) for k, v in value.items()}
    return value


def _record(status: str, claim: str, numbers: dict, paper: str | None) -> None:
    path = os.environ.get("TUTORLIB_RESULTS")
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise FileNotFoundError(f"$TUTORLIB_RESULTS={path!r} is in a folder that does not exist. Create it "
                                f"(mkdir -p {os.path.dirname(os.path.abspath(path))}) or unset TUTORLIB_RESULTS.")
    if path:
        prof = current()
        record = {"status": status, "claim": claim, "numbers": numbers, "paper": paper,
                  "profile": prof.name, "seeds": list(prof.seeds)}
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
    _record(status, claim, numbers, paper)
    if status == "FAIL":
        raise AssertionError(f"FAIL {claim}: {shown}")
    print(f"PASS {claim}: {shown}")


def report(claim: str, paper: str | None = None, **numbers: Any) -> None:
    """A finding shown with its numbers but not asserted (for example one that does not reproduce)."""
    numbers = _plain(numbers)
    _record("REPORTED", claim, numbers, paper)
    print(f"NOT ASSERTED {claim}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()))


def mean_sd(values) -> str:
    """'0.842 ± 0.013 (n=3)': how the course writes a result over seeds."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_sd needs at least one value.")
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f} (n={len(values)})"


def answered(answer: Any) -> None:
    """Stop a self-check early, with a hint, while the exercise still holds its placeholder."""
    if answer is None or answer is Ellipsis:
        raise AssertionError("Not yet: no answer. Replace the placeholder in the cell above with your code, "
                             "run it, then run this cell again.")


def exercise(passed: bool, success: str, hint: str, final: bool = True) -> None:
    """An exercise's self-check: a cheerful line when right, an AssertionError with a hint when not.

    final=False marks a check of a *property* of the answer (its type, its range): passing it prints
    "Plausible", and the exact check that follows (hidden from the student version) prints "Correct".
    """
    if not passed:
        raise AssertionError(f"Not yet: {hint}")
    print(f"{'Correct' if final else 'Plausible'}: {success}")
