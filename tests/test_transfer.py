"""tutorlib.transfer: the A -> B protocol the chapters share: halves, targets, pretrain, probes, choosing on validation."""
import pytest
import torch

from helpers import tiny_cnn

from tutorlib import evaluation, models, profile, recipes, train, transfer


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.fixture(scope="module")
def halves():
    return transfer.load_halves(profile.current("quick"))


def test_target_draws_per_class_images_of_b_by_seed(halves):
    target = halves.target(10, seed=3)
    assert target[1].bincount().tolist() == [10] * 5
    assert torch.equal(target[0], halves.target(10, seed=3)[0])
    assert not torch.equal(target[0], halves.target(10, seed=4)[0])
    pool = halves.b_train[0].flatten(1)
    assert all((pool == img.flatten()).all(1).any() for img in target[0][:5])  # drawn from B's training pool


def test_target_refuses_more_images_than_the_pool(halves):
    with pytest.raises(ValueError, match="per_class"):
        halves.target(10_000, seed=0)


def test_pretrain_is_deterministic_and_sizes_the_head_from_the_labels(halves):
    source = (halves.a_train[0][:200], halves.a_train[1][:200] % 3)
    a = transfer.pretrain(source, steps=3, width=4, seed=1)
    b = transfer.pretrain(source, steps=3, width=4, seed=1)
    assert a.head.out_features == 3
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_validation_split_is_held_out_of_the_training_set(halves):
    target = halves.target(10, seed=0)
    fit_part, val = transfer.split_off_validation(target, 3, seed=1)
    assert fit_part[1].bincount().tolist() == [7] * 5 and val[1].bincount().tolist() == [3] * 5
    together = torch.cat([fit_part[0], val[0]]).flatten(1)
    assert torch.equal(together.sort(0).values, target[0].flatten(1).sort(0).values)  # a partition
    with pytest.raises(ValueError, match="hold out fewer"):
        transfer.split_off_validation(target, 10)


# ----------------------------------------------------------------------------- cutting and caching


def test_probe_by_stage_scores_every_stage_and_names_unknown_ones(halves):
    model = models.fresh_cnn(width=4, seed=0)
    table = transfer.probe_by_stage(model, halves.target(4, seed=0), halves.b_test_sample(10))
    assert table.stage.tolist() == ["block1", "block2", "block3", "block4"]
    assert table["probe accuracy"].between(0, 1).all() and table.features.tolist() == [4, 4, 8, 8]
    with pytest.raises(ValueError, match="block1"):
        transfer.probe_by_stage(model, halves.target(4, seed=0), halves.b_test_sample(10), ["head"])
    one = transfer.probe_by_stage(model, halves.target(4, seed=0), halves.b_test_sample(10), "block2")
    assert one.stage.tolist() == ["block2"]  # one name is one stage, not its letters


def test_probe_by_stage_reads_each_stage_from_one_pass_exactly_as_its_own_bottom_would(halves):
    model, target, test = models.fresh_cnn(width=4, seed=1), halves.target(4, seed=1), halves.b_test_sample(10)
    table = transfer.probe_by_stage(model, target, test, ["block3", "block1"])
    for stage, accuracy in zip(table.stage, table["probe accuracy"]):
        bottom = models.split(model, stage)[0]
        pooled = [evaluation.predict(bottom, x).flatten(2).mean(2) for x in (target[0], test[0])]
        assert evaluation.linear_probe(pooled[0], target[1]).score(pooled[1], test[1]) == accuracy
    assert not any(m._forward_hooks for m in model.modules())  # the hooks are gone


def test_b_test_sample_is_fixed_and_stratified(halves):
    sample = halves.b_test_sample(7)
    assert sample[1].bincount().tolist() == [7] * 5 and torch.equal(sample[0], halves.b_test_sample(7)[0])
    assert len(halves.b_test_sample(10**6)[1]) == len(halves.b_test[1])  # capped at the whole test set
    for bad in (0, "10", 2.5):
        with pytest.raises((TypeError, ValueError), match="per_class"):
            halves.b_test_sample(bad)


def rate_of(model, **options):
    """train_fn for choose_on_validation: plain fine-tuning of `model` at the option's learning rate."""
    return lambda part, lr: recipes.finetune(model, part, lr=lr, steps=6, seed=1, **options)


def test_choose_on_validation_keeps_the_best_rate_and_its_model(blobs):
    model, rates = tiny_cnn(num_classes=4).eval(), (1e-4, 3e-3, 3e-2)
    lr, tuned, scores = transfer.choose_on_validation(rate_of(model), blobs, rates, validation=blobs)
    expected = [evaluation.evaluate(recipes.finetune(model, blobs, steps=6, lr=r, seed=1)[0], blobs)["accuracy"]
                for r in rates]
    assert list(scores.values()) == expected
    assert lr == rates[expected.index(max(expected))]  # the first of the best, as a learner reading a table would
    assert same_weights(tuned, recipes.finetune(model, blobs, steps=6, lr=lr, seed=1)[0])


def test_choose_on_validation_never_picks_a_diverged_option_and_says_when_all_diverged(blobs):
    def fragile(part, lr):  # stands for a recipe that blows up above a rate
        if lr > 1e-2:
            raise train.TrainingDiverged("loss became NaN", train.History())
        return recipes.finetune(tiny_cnn(num_classes=4).eval(), part, lr=lr, steps=6, seed=1)

    choice = transfer.choose_on_validation(fragile, blobs, (1.0, 3e-3), validation=blobs)
    assert choice.option == 3e-3 and choice.scores[1.0] != choice.scores[1.0]  # NaN: diverged, never picked
    with pytest.raises(train.TrainingDiverged, match="smaller learning rates"):
        transfer.choose_on_validation(fragile, blobs, (1.0, 3.0), validation=blobs)


def test_choose_on_validation_never_picks_a_model_with_nan_weights(blobs):
    """NaN weights predict one class everywhere: a finite accuracy that could win; scored NaN instead."""
    def poisoned(part, lr):
        model, history = recipes.finetune(tiny_cnn(num_classes=4).eval(), part, lr=lr, steps=6, seed=1)
        if lr > 1e-2:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        return model, history

    choice = transfer.choose_on_validation(poisoned, blobs, (1.0, 3e-3), validation=blobs)
    assert choice.option == 3e-3 and choice.scores[1.0] != choice.scores[1.0]
    with pytest.raises(train.TrainingDiverged, match="NaN weights"):
        transfer.choose_on_validation(poisoned, blobs, (1.0, 3.0), validation=blobs)


@pytest.mark.parametrize("bad, error, words", [
    (dict(options=()), ValueError, "at least one option"), (dict(options=0.1), ValueError, "must be a list"),
    (dict(train_fn="finetune"), TypeError, "train_fn must be a function"),
    (dict(validation=(torch.zeros(3, 1, 28, 28), torch.zeros(4).long())), ValueError, "validation")])
def test_choose_on_validation_refuses_bad_input_with_the_fix(blobs, bad, error, words):
    args = dict(train_fn=rate_of(tiny_cnn(num_classes=4).eval()), options=(0.01,), validation=blobs) | bad
    with pytest.raises(error, match=words):
        transfer.choose_on_validation(args["train_fn"], blobs, args["options"], validation=args["validation"])
