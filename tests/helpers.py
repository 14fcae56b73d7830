"""Small models and data the test files share."""
from pathlib import Path

import torch
import torch.nn as nn

from tutorlib import models

PACKAGE = Path(__file__).resolve().parent.parent / "tutorlib"


def tiny_cnn(num_classes: int = 3, in_channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return models.small_cnn(width=4, depth=2, num_classes=num_classes, in_channels=in_channels)


LABELS = torch.arange(3).repeat(10)  # 3 classes x 10 samples
FEW = torch.tensor([0] * 20 + [1] * 20 + [2])  # class 2 has a single sample
IMAGES = torch.rand(30, 1, 12, 12)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(before[k], v) for k, v in model.state_dict().items())


GOOD = (torch.rand(30, 1, 12, 12), LABELS)  # a valid (images, labels) pair
