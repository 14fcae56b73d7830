"""Shared test setup: the quick profile, a fixed thread count, and small reusable datasets."""
import os

import pytest
import torch

os.environ.setdefault("TUTORLIB_PROFILE", "quick")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["TUTORLIB_HEADLESS"] = "1"  # notebook kernels inherit it: explorers draw static figures


@pytest.fixture
def blobs():
    """A tiny, easily separable 3-class image task: a bright square in one of three places."""
    g = torch.Generator().manual_seed(0)
    n = 90
    labels = torch.arange(3).repeat(n // 3)
    images = 0.1 * torch.rand(n, 1, 12, 12, generator=g)
    for i, c in enumerate(labels.tolist()):
        images[i, 0, 4 * c:4 * c + 4, 4:8] += 0.8
    return images.clamp(0, 1), labels
