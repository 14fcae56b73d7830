"""tutorlib.sources: chapter 1's experiments, the positive control and paired sources."""
import pytest
import torch

from tutorlib import models, profile, sources, transfer


@pytest.fixture(scope="module")
def halves():
    return transfer.load_halves(profile.current("quick"))

def test_paired_sources_gives_every_source_of_a_replicate_the_same_init_and_order(halves):
    seen = []

    def two_sources(unit_seed):
        return {"all of A": halves.a_train, "A again": halves.a_train}

    def score(net, unit_seed):
        seen.append(unit_seed)
        return float(sum(p.detach().sum() for p in net.parameters()))

    table = sources.paired_sources(two_sources, score, seed=3, replicates=2, steps=2)
    assert list(table.columns) == ["seed", "replicate", "all of A", "A again"] and len(table) == 2
    assert (table["all of A"] == table["A again"]).all()  # same data, init and order: the same network
    assert table["all of A"].nunique() == 2  # each replicate its own init (derived from the seed)
    assert seen[0] == seen[1] != seen[2] == seen[3]
    again = sources.paired_sources(two_sources, score, seed=3, replicates=2, steps=2)
    assert again.equals(table)
    with pytest.raises(ValueError, match="replicates"):
        sources.paired_sources(two_sources, score, seed=3, replicates=0, steps=2)


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
    assert sources.finetune_accuracy(model, target, halves.b_test, steps=10, seed=0) > 0.2
