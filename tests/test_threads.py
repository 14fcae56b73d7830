"""tutorlib.threads: one thread count per machine (cores but one, or the user's), never changed by the load."""
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from tutorlib import threads

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def unpinned(monkeypatch):
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    saved = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(saved)


@pytest.mark.parametrize("cores, expected", [(1, 1), (2, 1), (4, 3), (8, 7)])
def test_one_core_is_left_for_the_rest_of_the_machine(unpinned, cores, expected):
    unpinned.setattr(threads.psutil, "cpu_count", lambda logical=True: cores)
    unpinned.setattr(threads, "MAX_THREADS", cores)
    assert threads.course_default() == expected
    assert threads.configure() == expected == torch.get_num_threads()


def test_a_pinned_count_wins(unpinned):
    unpinned.setenv(threads.ENV_VAR, "1")
    assert threads.configure() == 1 and torch.get_num_threads() == 1


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_pinned_count_says_what_to_write(unpinned, value):
    unpinned.setenv(threads.ENV_VAR, value)
    with pytest.raises(ValueError, match="TUTORLIB_THREADS=2"):
        threads.configure()


def test_importing_tutorlib_sets_the_course_count_once():
    env = {k: v for k, v in os.environ.items() if k not in (threads.ENV_VAR, "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", "import tutorlib, torch; from tutorlib import threads; "
                          "print(torch.get_num_threads(), threads.course_default())"],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == out[1]


@contextmanager
def busy_process():
    """Another program keeping a core busy, as a second notebook or the grader would."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        busy.kill()
        busy.wait()


SEEDED_RUN = """
import json, torch
from tutorlib import models, train
x, y = torch.rand(512, 1, 28, 28, generator=torch.Generator().manual_seed(1)), torch.arange(512) % 5
torch.manual_seed(0)
model = models.small_cnn(8, 3, 5)
history = train.fit(model, (x, y), steps=40, lr=3e-3, batch_size=64, seed=0, progress=False, clip_grad_norm=1.0)
print(json.dumps({"threads": torch.get_num_threads(), "losses": history.step_loss,
                  "weights": float(sum(p.double().sum() for p in model.parameters()))}))
"""


def seeded_run() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (threads.ENV_VAR, "OMP_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-c", SEEDED_RUN], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_seeded_run_gives_the_same_floats_beside_a_busy_process():
    idle = seeded_run()
    with busy_process():
        busy = seeded_run()
    assert idle == busy  # every step's loss and the final weights, bit for bit


@pytest.mark.slow
def test_a_comparison_of_two_computations_passes_beside_a_busy_process():
    """The test that failed under load when the thread count followed it (cached fine-tuning == freezing)."""
    with busy_process():
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 "tests/test_recipes.py::test_cached_finetune_equals_freezing"],
                                cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
