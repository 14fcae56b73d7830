"""The course's one seed helper: every experiment starts from `seed_everything(seed)`."""
from __future__ import annotations

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
