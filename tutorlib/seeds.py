"""The course's one seed helper: every experiment starts from `seed_everything(seed)`."""
from __future__ import annotations

import hashlib
import random

import numpy as np
import torch

from . import inputs


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch at once; return a torch.Generator seeded the same way.

    Call it before anything random (a fresh network's weights, a shuffled batch) so reruns match.
    """
    seed = inputs.seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def stream(seed: int, purpose: str) -> torch.Generator:
    """A generator for one purpose ("label_noise", ...), independent of every other use of the same seed.

    Without it, two helpers given the same seed draw the same permutation: `data.add_label_noise(seed=0)`
    flipped exactly the images that `fit(seed=0)` shows first, so the last batches of the first epoch
    were all clean, and noise looked milder than it is.
    """
    return torch.Generator().manual_seed(_digest(seed, purpose, 8))


def derive(seed: int, purpose: str) -> int:
    """A new seed for one purpose ("draw 3", ...), for helpers that take an int seed rather than a generator.

    Seed 0's third draw and seed 1's second must not coincide, as `seed + k` would make them.
    """
    return _digest(seed, purpose, 4)


def _digest(seed: int, purpose: str, size: int) -> int:
    """`size` bytes of sha256("purpose:seed") as a whole number: the same on every machine and Python."""
    seed = inputs.seed(seed)
    if not isinstance(purpose, str) or not purpose:
        raise ValueError(f"purpose must be a non-empty string such as \"label_noise\", got {purpose!r}.")
    return int.from_bytes(hashlib.sha256(f"{purpose}:{seed}".encode()).digest()[:size], "little")
