"""Run profiles: how big a chapter's experiments are, and on which seeds.

Every chapter reads its sizes from `current()` so that the same notebook runs in two minutes
under the tests (`quick`), in a few minutes for a learner (`standard`), or on all the data (`full`).
Set the profile with the environment variable ``TUTORLIB_PROFILE``, and run any profile on other
seeds with ``TUTORLIB_SEEDS=20,21,22`` (how `make confirm` checks the verdicts on unseen seeds), and on
other pretraining runs of the checkpoint zoo with ``TUTORLIB_PRETRAIN_SEEDS=100,...`` (built first with
``make checkpoints PRETRAIN_SEEDS=100,...``): the first five are every question's runs, and a question that
spans ten (chapter 2's) takes the next five.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

from . import inputs

ENV_VAR = "TUTORLIB_PROFILE"
SEEDS_VAR = "TUTORLIB_SEEDS"
PRETRAIN_SEEDS_VAR = "TUTORLIB_PRETRAIN_SEEDS"  # which pretraining runs of the zoo's checkpoints the chapters use
PRETRAIN_SEEDS = (0, 1, 2, 3, 4)  # the zoo data/checkpoints ships (make checkpoints PRETRAIN_SEEDS=... builds others)
MORE_PRETRAIN_SEEDS = (5, 6, 7, 8, 9)  # further runs of A_w8 and A_w32, for a question that needs ten


@dataclass(frozen=True)
class Profile:
    """How big a chapter's experiments are: data sizes, seeds and an epoch multiplier."""

    name: str
    seeds: tuple[int, ...]
    train_per_class: int  # images per class taken from the training split
    test_per_class: int  # images per class taken from the test split
    epoch_scale: float  # multiplies every chapter's epoch or step counts
    data_size: str  # "small" (bundled) or "full" (the whole of Fashion-MNIST)
    pretrain_seeds: tuple[int, ...] = PRETRAIN_SEEDS  # the checkpoints' pretraining runs a verdict spans
    more_pretrain_seeds: tuple[int, ...] = MORE_PRETRAIN_SEEDS  # the runs after those, where a question needs more

    @property
    def decides(self) -> bool:
        """An interval verdict must be decided (PASS or FAIL) here; quick may leave it INCONCLUSIVE."""
        return self.name != "quick"

    def pretrain_runs(self, n: int) -> tuple[int, ...]:
        """The first `n` pretraining runs: `pretrain_seeds`, then `more_pretrain_seeds`.

        Why: between-run spread limits a verdict whose runs are few (a t over 5 runs has 4 degrees of freedom), so
        a question may span more runs than the five every other question uses.
        """
        runs = self.pretrain_seeds + self.more_pretrain_seeds
        n = inputs.integer(n, "n", 1)
        if n > len(runs):
            raise ValueError(f"This question spans {n} pretraining runs; the profile names {len(runs)} "
                             f"({list(runs)}). Name {n} in {PRETRAIN_SEEDS_VAR} (the first five are every "
                             f"question's), after building them with `make checkpoints PRETRAIN_SEEDS=...`.")
        return runs[:n]

    def epochs(self, n: int) -> int:
        """Scale an epoch (or step) count by this profile, never below 1."""
        return max(1, round(n * self.epoch_scale))


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", seeds=(0, 1, 2), train_per_class=600, test_per_class=300,
                     epoch_scale=0.5, data_size="small"),
    "standard": Profile("standard", seeds=(0, 1, 2), train_per_class=1500, test_per_class=500,
                        epoch_scale=1.0, data_size="small"),
    "full": Profile("full", seeds=(0, 1, 2, 3, 4), train_per_class=6000, test_per_class=1000,
                    epoch_scale=2.0, data_size="full"),
}


def _seeds_from_env(default: tuple[int, ...], var: str = SEEDS_VAR, example: str = "20,21,22") -> tuple[int, ...]:
    """The seeds named in $TUTORLIB_SEEDS ("20,21,22"), or in `var`; else `default`."""
    text = os.environ.get(var, "").strip()
    if not text:
        return default
    try:
        seeds = tuple(inputs.seed(int(part)) for part in text.split(","))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{var}={text!r} is not a comma-separated list of seeds such as "
                         f"`{var}={example}` ({err}).") from None
    if len(set(seeds)) != len(seeds) or len(seeds) < 2:
        raise ValueError(f"{var}={text!r}: give at least two different seeds, e.g. `{var}={example}`.")
    return seeds


def current(name: str | None = None) -> Profile:
    """The active profile: `name` if given, else $TUTORLIB_PROFILE, else `standard`; seeds from $TUTORLIB_SEEDS."""
    name = name or os.environ.get(ENV_VAR) or "standard"
    if name not in PROFILES:
        raise ValueError(
            f"Unknown profile {name!r} (from {ENV_VAR} or the argument). "
            f"Choose one of {sorted(PROFILES)}, e.g. `export {ENV_VAR}=quick`."
        )
    profile = PROFILES[name]
    named = _seeds_from_env(profile.pretrain_seeds + profile.more_pretrain_seeds, PRETRAIN_SEEDS_VAR,
                            "100,101,102,103,104")
    return replace(profile, seeds=_seeds_from_env(profile.seeds), pretrain_seeds=named[:len(PRETRAIN_SEEDS)],
                   more_pretrain_seeds=named[len(PRETRAIN_SEEDS):])
