"""The registered protocols measure what their docstrings say: each unit its own images, arms paired on them."""
import pytest

from tutorlib import data, evaluation, models, profile, protocols, transfer
from tutorlib.seeds import derive


@pytest.fixture(scope="module")
def halves():
    return transfer.load_halves(profile.current("quick"))


def test_model_size_probes_each_unit_on_its_own_images_from_the_shared_feature_pass(halves):
    """Lite features come from one pass over every unit's images; a unit must still be probed on its own."""
    table = protocols.model_size(halves, [3, 4], [0, 1, 2], 2, shots=2, test_per_class=4)
    assert list(table.index.names) == protocols.UNIT_INDEX and len(table) == 4  # pretrain_seeds are not units
    assert table.index.get_level_values("pretrain_seed").nunique() == 4  # every unit its own cluster
    assert set(table.columns) == {"Lite0", "Lite2", "random Lite0", "raw pixels"}
    assert table.attrs["protocol"] == {"function": "model_size",
                                       "args": {"shots": 2, "test_per_class": 4, "input_size": 64}}
    draw_seed = derive(4, "draw 1")
    train_index = data.few_shot(halves.b_train[1], 2, seed=draw_seed)
    test_index = data.few_shot(halves.b_test[1], 4, seed=derive(draw_seed, "test images"))
    lite2 = models.efficientnet_lite("lite2", input_size=64)
    probe = evaluation.linear_probe(evaluation.extract_features(lite2, halves.b_train[0][train_index]),
                                    halves.b_train[1][train_index])
    direct = probe.score(evaluation.extract_features(lite2, halves.b_test[0][test_index]), halves.b_test[1][test_index])
    assert table.loc[(draw_seed, 4, 1), "Lite2"] == pytest.approx(direct, abs=1e-9)
    pixels = evaluation.linear_probe(halves.b_train[0][train_index].flatten(1), halves.b_train[1][train_index])
    assert table.loc[(draw_seed, 4, 1), "raw pixels"] == pytest.approx(
        pixels.score(halves.b_test[0][test_index].flatten(1), halves.b_test[1][test_index]), abs=1e-9)


def test_model_size_gives_the_same_numbers_every_run(halves):
    """The random Lite0's weights, the labels and the test images all come from the unit's seed."""
    table = protocols.model_size(halves, [5], [0], 2, shots=2, test_per_class=4)
    assert table.equals(protocols.model_size(halves, [5], [0], 2, shots=2, test_per_class=4))


def test_source_data_pairs_five_starts_on_each_replicates_own_targets(halves):
    """Every start of a replicate shares its init and target draws; the random arm is that init, never trained."""
    table = protocols.source_data(halves, [7], [0, 1], 1, pretrain_steps=2, targets=1, steps=2)
    assert list(table.index.names) == protocols.UNIT_INDEX and len(table) == 1  # pretrain_seeds are not units
    unit_seed = derive(7, "source 0")
    assert table.index[0] == (unit_seed, 7, 0)
    assert list(table.columns) == ["A 100%", "A 30%", "A imbalance 100", "digits", "random init"]
    assert table.attrs["protocol"]["function"] == "source_data"
    target_seed = derive(unit_seed, "target 0")
    from tutorlib import recipes
    tuned, _ = recipes.finetune(models.fresh_cnn(seed=unit_seed), halves.target(5, target_seed), steps=2, lr=1e-3,
                                seed=target_seed)
    direct = evaluation.evaluate(tuned, halves.b_test)["accuracy"]
    assert table.loc[table.index[0], "random init"] == pytest.approx(direct, abs=2e-3)


@pytest.mark.parametrize("bad, match", [({"fraction": 0}, "fraction"), ({"fraction": 1.5}, "fraction"),
                                        ({"imbalance": 0.5}, "imbalance"), ({"targets": 0}, "targets")])
def test_source_data_names_a_bad_argument_before_any_training(halves, bad, match):
    with pytest.raises(ValueError, match=match):
        protocols.source_data(halves, [7], [0], 1, **bad)
    with pytest.raises(ValueError, match="draws"):
        protocols.source_data(halves, [7], [0], 0)
