"""Run profiles and the one seed helper."""

import pytest
import torch

from tutorlib import profile, train


def test_profiles(monkeypatch):
    monkeypatch.setenv("TUTORLIB_PROFILE", "quick")
    assert profile.current().name == "quick"
    assert profile.current("full").data_size == "full"
    monkeypatch.setenv("TUTORLIB_PROFILE", "quik")
    with pytest.raises(ValueError, match="quick"):
        profile.current()
    assert profile.PROFILES["quick"].epochs(5) == 2 and profile.PROFILES["quick"].epochs(1) == 1


def test_seed_everything_repeats():
    from tutorlib.seeds import seed_everything

    g1 = seed_everything(3)
    a = (torch.rand(3), torch.rand(2, generator=g1))
    g2 = seed_everything(3)
    b = (torch.rand(3), torch.rand(2, generator=g2))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_seeds_from_the_environment_replace_the_profiles(monkeypatch):
    monkeypatch.setenv("TUTORLIB_SEEDS", "20, 21,22")
    assert profile.current("quick").seeds == (20, 21, 22)
    assert profile.current("standard").seeds == (20, 21, 22)
    assert profile.PROFILES["quick"].seeds == (0, 1, 2)  # the table itself is not changed
    monkeypatch.delenv("TUTORLIB_SEEDS")
    assert profile.current("quick").seeds == (0, 1, 2)


@pytest.mark.parametrize("text", ["a,b", "1.5,2", "-1,2", "3", "4,4", "1,,2"])
def test_bad_seed_lists_name_the_variable_and_an_example(monkeypatch, text):
    monkeypatch.setenv("TUTORLIB_SEEDS", text)
    with pytest.raises(ValueError, match=r"TUTORLIB_SEEDS.*TUTORLIB_SEEDS=20,21,22"):
        profile.current("quick")


def test_seed_everything_has_one_home():
    """One seed helper, reached as tutorlib.seeds.seed_everything, and nowhere else."""
    import tutorlib

    assert not hasattr(tutorlib, "seed_everything")  # reached one way: tutorlib.seeds.seed_everything
    assert not hasattr(profile, "seed_everything") and "seed_everything" not in train.__all__
    assert not {"evaluate", "predict", "distillation_loss", "snapshot"} & set(train.__all__)  # no re-exports


# ----------------------------------------------------------------------------- bad input and faults
@pytest.mark.parametrize("name", ["fast", "Quick", "standrad"])
def test_an_invalid_profile_is_an_error_not_a_default(monkeypatch, name):
    monkeypatch.setenv(profile.ENV_VAR, name)
    with pytest.raises(ValueError, match=r"Unknown profile.*\['full', 'quick', 'standard'\]"):
        profile.current()


def test_pretraining_seeds_come_from_the_zoo_or_the_environment(monkeypatch):
    from tutorlib import profile as profiles

    assert profiles.current("standard").pretrain_seeds == (0, 1, 2, 3, 4)
    assert profiles.current("standard").pretrain_runs(10) == tuple(range(10))
    monkeypatch.setenv("TUTORLIB_PRETRAIN_SEEDS", "100,101,102,103,104")
    assert profiles.current("quick").pretrain_seeds == (100, 101, 102, 103, 104)
    assert profiles.current("quick").pretrain_runs(5) == (100, 101, 102, 103, 104)
    with pytest.raises(ValueError, match=r"spans 10 pretraining runs; the profile names 5.*TUTORLIB_PRETRAIN_SEEDS"):
        profiles.current("quick").pretrain_runs(10)
    monkeypatch.setenv("TUTORLIB_PRETRAIN_SEEDS", ",".join(str(s) for s in range(100, 110)))
    ten = profiles.current("standard")
    assert ten.pretrain_seeds == (100, 101, 102, 103, 104) and ten.pretrain_runs(10) == tuple(range(100, 110))
    for bad in (0, -1, 2.5, "ten"):
        with pytest.raises((TypeError, ValueError)):
            ten.pretrain_runs(bad)
    monkeypatch.setenv("TUTORLIB_PRETRAIN_SEEDS", "100,x")
    with pytest.raises(ValueError, match="TUTORLIB_PRETRAIN_SEEDS='100,x' is not a comma-separated list"):
        profiles.current()
