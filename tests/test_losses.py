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


def test_distillation_and_l2sp():
    logits = torch.randn(8, 5)
    labels = torch.randint(0, 5, (8,))
    same = losses.distillation_loss(logits, logits, labels, temperature=4.0, alpha=1.0)
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.distillation_loss(logits, -logits, labels, alpha=1.0)) > 0.1
    model = tiny_cnn()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    assert float(losses.l2sp_penalty(model, reference).detach()) == 0.0
    with torch.no_grad():
        model.head.weight.add_(1.0)  # the head is exempt
    assert float(losses.l2sp_penalty(model, reference).detach()) == 0.0
    with torch.no_grad():
        model.features.block1.conv.weight.add_(1.0)
    n = model.features.block1.conv.weight.numel()
    assert float(losses.l2sp_penalty(model, reference, alpha=0.1).detach()) == pytest.approx(0.05 * n)
