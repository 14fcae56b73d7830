"""Run profiles and the one seed helper.

Every chapter reads its sizes from `current()` so that the same notebook runs in two minutes
under the tests (`quick`), in a few minutes for a learner (`standard`), or on all the data (`full`).
Set the profile with the environment variable ``TUTORLIB_PROFILE``.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from . import inputs

ENV_VAR = "TUTORLIB_PROFILE"


@dataclass(frozen=True)
class Profile:
    """How big a chapter's experiments are: data sizes, seeds and an epoch multiplier."""

    name: str
    seeds: tuple[int, ...]
    train_per_class: int  # images per class taken from the training split
    test_per_class: int  # images per class taken from the test split
    epoch_scale: float  # multiplies every chapter's epoch or step counts
    data_size: str  # "small" (bundled) or "full" (the whole of Fashion-MNIST)

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


def current(name: str | None = None) -> Profile:
    """The active profile: `name` if given, else $TUTORLIB_PROFILE, else `standard`."""
    name = name or os.environ.get(ENV_VAR) or "standard"
    if name not in PROFILES:
        raise ValueError(
            f"Unknown profile {name!r} (from {ENV_VAR} or the argument). "
            f"Choose one of {sorted(PROFILES)}, e.g. `export {ENV_VAR}=quick`."
        )
    return PROFILES[name]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch at once; return a torch.Generator seeded the same way.

    The course's one seed helper: call it at the top of every experiment so reruns match.
    """
    seed = inputs.seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
