"""tutorlib.pretext: RotNet's rotations, the wrapper that predicts them, and its loss."""
import torch
import torch.nn.functional as F

from tutorlib import models, pretext, surgery


def test_rotations_are_the_four_quarter_turns_with_their_index():
    images = torch.arange(2 * 9, dtype=torch.float32).view(2, 1, 3, 3)
    rotated, which = pretext.rotations(images)
    assert rotated.shape == (8, 1, 3, 3) and which.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(rotated[:2], images)
    assert torch.equal(rotated[2], torch.rot90(images[0], 1, dims=(1, 2)))
    assert torch.equal(torch.rot90(rotated[6], 1, dims=(1, 2)), images[0])  # four quarter turns come back


def test_the_pretext_predicts_rotations_and_its_loss_ignores_the_labels():
    backbone = models.small_cnn(width=4, num_classes=4).eval()
    task = pretext.RotationPretext(backbone)
    x = torch.rand(3, 1, 28, 28)
    logits = task(x)
    assert logits.shape == (12, 4) and torch.equal(logits, backbone(pretext.rotations(x)[0]))
    expected = F.cross_entropy(logits, torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]))
    assert torch.equal(pretext.rotation_loss(logits, torch.full((3,), 7)), expected)
    assert [n for n, _ in surgery.layer_groups(task)] == [n for n, _ in surgery.layer_groups(backbone)]
