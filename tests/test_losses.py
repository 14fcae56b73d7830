"""tutorlib.losses: distillation, L2-SP and the snapshot it is measured against."""
import pytest
import torch
from helpers import tiny_cnn

from tutorlib import losses


def test_l2sp_against_a_snapshot_grows_as_the_weights_move():
    model = tiny_cnn()
    reference = losses.snapshot(model)
    assert losses.l2sp_penalty(model, reference).item() == 0.0
    with torch.no_grad():
        model.features.block1.conv.weight.add_(0.1)
    moved = losses.l2sp_penalty(model, reference, alpha=2.0).item()
    assert moved == pytest.approx(model.features.block1.conv.weight.numel() * 0.01, rel=1e-4)
