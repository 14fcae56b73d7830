"""tutorlib.exercises: a self-check says Correct, Plausible or Not yet, with the hint."""
import pytest

from tutorlib import exercises


def test_exercise_says_correct_plausible_or_not_yet(capsys):
    exercises.exercise(True, "well done", "hint")
    exercises.exercise(True, "in range", "hint", final=False)
    assert capsys.readouterr().out.splitlines() == ["Correct: well done", "Plausible: in range"]
    with pytest.raises(AssertionError, match="Not yet: look again"):
        exercises.exercise(False, "well done", "look again")


@pytest.mark.parametrize("placeholder", [None, ...])
def test_answered_stops_on_the_placeholder_and_passes_an_answer(placeholder):
    with pytest.raises(AssertionError, match="no answer"):
        exercises.answered(placeholder)
    exercises.answered(0)  # a falsy answer is still an answer
