"""Self-supervised pretext tasks: labels made from the images themselves (chapter 5).

Gidaris et al. 2018 (RotNet, ICLR): rotate every image by 0, 90, 180 and 270 degrees and train the
network to say which rotation it sees. To answer, it has to recognise what is in the picture, so its
features transfer, although no human label was used.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .anatomy import Anatomy, wrapped


def rotations(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All four rotations (0, 90, 180, 270 degrees) of every image, and which rotation each is."""
    rotated = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(4)])
    return rotated, torch.arange(4).repeat_interleave(len(images))


class RotationPretext(nn.Module):
    """Gidaris et al. 2018 (RotNet): predict the rotation; every batch holds all four of each image."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(rotations(images)[0])

    def anatomy(self) -> Anatomy:
        """The backbone's groups and head; its stages led by the rotating step, as in `forward`."""
        return wrapped(self.backbone, lambda x: rotations(x)[0], "all four rotations of every image")


def rotation_loss(logits: torch.Tensor, _labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the rotation index; the class labels are ignored (self-supervised)."""
    return F.cross_entropy(logits, torch.arange(4).repeat_interleave(len(logits) // 4))
