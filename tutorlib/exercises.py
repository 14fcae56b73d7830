"""The exercises' self-checks: what a learner's answer cell is checked with (and what `course grade` reads).

A self-check tests a property of the answer, compares it with a value computed another way, or (for the exact
answer) sits between nbgrader's hidden-test marks, so a student copy never shows the answer.
"""
from __future__ import annotations

from typing import Any

from . import i18n


def answered(answer: Any) -> None:
    """Stop a self-check early, with a hint, while the exercise still holds its placeholder."""
    if answer is None or answer is Ellipsis:
        raise AssertionError(f"{_word('Not yet')}: " + i18n.text(
            "no answer. Replace the placeholder in the cell above with your code, run it, then run this cell again."))


def exercise(passed: bool, success: str, hint: str, final: bool = True) -> None:
    """An exercise's self-check: a cheerful line when right, an AssertionError with a hint when not.

    final=False marks a check of a *property* of the answer (its type, its range): passing it prints
    "Plausible", and the exact check that follows (hidden from the student version) prints "Correct".
    """
    if not passed:
        raise AssertionError(f"{_word('Not yet')}: {i18n.text(hint)}")
    print(f"{_word('Correct' if final else 'Plausible')}: {i18n.text(success)}")


def _word(english: str) -> str:
    """'Correct' / 'Plausible' / 'Not yet', after its Chinese in the Chinese edition (the grader reads the English)."""
    return f"{i18n.text(english)} {english}" if i18n.language() == "zh" else english
