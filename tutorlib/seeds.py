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
    seed = inputs.seed(seed)
    digest = hashlib.sha256(f"{purpose}:{seed}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
