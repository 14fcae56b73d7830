"""tutorlib.threads: one torch thread per core that other processes leave free, or the count the user pins."""
import pytest
import torch

from tutorlib import threads


@pytest.fixture
def fake_machine(monkeypatch):
    """A 2-core machine whose CPU readings the test scripts: (wall seconds, busy CPU seconds of all, of ours)."""
    readings = []
    monkeypatch.setattr(threads, "_sample", lambda: readings.pop(0))
    monkeypatch.setattr(threads, "_last", None)
    monkeypatch.setattr(threads, "MAX_THREADS", 2)
    monkeypatch.setattr(threads.psutil, "cpu_count", lambda logical=True: 2)
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.time, "monotonic", lambda: 1e9)  # every call is past the interval
    saved = torch.get_num_threads()
    yield readings
    torch.set_num_threads(saved)


def test_one_busy_core_elsewhere_means_one_thread(fake_machine):
    fake_machine += [(0.0, 0.0, 0.0), (1.0, 2.0, 1.0)]  # in 1 s: 2 CPU-s busy, 1 of them ours
    threads.adapt()  # the first reading only
    assert threads.adapt() == 1 and torch.get_num_threads() == 1


def test_an_idle_machine_gets_every_core_back(fake_machine):
    torch.set_num_threads(1)
    fake_machine += [(0.0, 0.0, 0.0), (1.0, 1.05, 1.0)]  # others used 0.05 of a core
    threads.adapt()
    assert threads.adapt() == 2


def test_our_own_threads_do_not_count_as_load(fake_machine):
    fake_machine += [(0.0, 0.0, 0.0), (1.0, 2.0, 2.0)]  # both cores busy, all of it ours
    threads.adapt()
    assert threads.adapt() == 2


def test_readings_too_close_together_change_nothing(monkeypatch):
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads.free_cores(min_interval=0.0)
    assert threads.free_cores(min_interval=3600) is None


def test_a_pinned_count_wins(monkeypatch):
    saved = torch.get_num_threads()
    monkeypatch.setenv(threads.ENV_VAR, "1")
    try:
        assert threads.adapt() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(saved)


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_pinned_count_says_what_to_write(monkeypatch, value):
    monkeypatch.setenv(threads.ENV_VAR, value)
    with pytest.raises(ValueError, match="TUTORLIB_THREADS=2"):
        threads.adapt()
