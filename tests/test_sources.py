"""tutorlib.sources: chapter 1's experiments, the positive control and the photo probe."""
import pytest
import torch

from tutorlib import models, profile, sources, transfer


@pytest.fixture(scope="module")
def halves():
    return transfer.load_halves(profile.current("quick"))

def test_positive_control_pairs_each_draw_and_refuses_models_without_a_random_twin(halves):
    model = models.fresh_cnn(4, 2, 5, seed=0)
    table = sources.positive_control(model, halves, seed=3, shots=2, draws=2, steps=2)
    assert sorted(table.draw.unique()) == [0, 1] and set(table.seed) == {3}
    assert set(table.measure) == {"fine-tune", "probe block1", "probe block2"}
    assert (table.gain == table["pretrained"] - table["random init"]).all()
    again = sources.positive_control(model, halves, seed=3, shots=2, draws=2, steps=2, probe=False)
    assert set(again.measure) == {"fine-tune"}  # and the same numbers: each draw's seed is derived, not global
    assert again.set_index("draw")["gain"].equals(table[table.measure == "fine-tune"].set_index("draw")["gain"])
    with pytest.raises(TypeError, match="load_halves"):
        sources.positive_control(model, (halves.b_train, halves.b_test), seed=0)
    with pytest.raises(TypeError, match="lite0"):
        sources.positive_control(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 5)), halves, seed=0)
    with pytest.raises(ValueError, match="draws"):
        sources.positive_control(model, halves, seed=0, draws=0)


def test_probe_beats_chance_and_pixels_are_flat(halves):
    target = halves.target(20, seed=0)
    model = transfer.pretrain(halves.a_train, steps=30, width=4, seed=0)
    acc = transfer.probe_accuracy(model, target, halves.b_test)
    assert 0.4 < acc <= 1.0  # chance is 0.2
    assert sources.pixels(target).shape == (100, 28 * 28)
