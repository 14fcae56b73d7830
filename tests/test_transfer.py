"""The A -> B protocol the chapters share: set-up, few-shot targets, fresh nets, pretrain, probe, fine-tune."""
import copy

import pytest
import torch

from tutorlib import evaluation, models, profile, runtime, sources, surgery, train, transfer


@pytest.fixture(scope="module")
def halves():
    return transfer.load_halves(profile.current("quick"))


def test_setup_reads_the_profile_loads_halves_and_starts_a_clock(monkeypatch, capsys):
    monkeypatch.setenv("TUTORLIB_SEEDS", "7,8")
    chapter = runtime.setup()
    assert chapter.profile.name == "quick" and chapter.seeds == (7, 8)
    assert len(chapter.halves.b_test[1]) == 5 * profile.current("quick").test_per_class
    assert "seeds=(7, 8)" in capsys.readouterr().out
    assert chapter.finish() is None and chapter.seconds >= 0 and "Chapter ran in" in capsys.readouterr().out
    assert runtime.setup(halves=False).halves is None


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


def test_fresh_cnn_depends_on_the_seed_alone():
    a, b, c = models.fresh_cnn(seed=1), models.fresh_cnn(seed=1), models.fresh_cnn(seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.head.weight, c.head.weight)


def test_finetune_trains_a_copy_for_exactly_the_steps_asked(halves):
    start = models.fresh_cnn(width=4, seed=0)
    before = {k: v.clone() for k, v in start.state_dict().items()}
    target = halves.target(4, seed=0)  # 20 images: 25 steps are several epochs
    tuned, history = transfer.finetune(start, target, steps=25, batch_size=8, seed=0)
    assert history.steps_run == 25 and not tuned.training
    assert all(torch.equal(v, start.state_dict()[k]) for k, v in before.items())  # the start is untouched
    assert not torch.equal(tuned.features.block1.conv.weight, start.features.block1.conv.weight)


def test_finetune_options_head_frozen_groups_and_in_place(halves):
    start = models.fresh_cnn(width=4, seed=0)
    target = halves.target(4, seed=0)
    kept, _ = transfer.finetune(start, target, steps=1, lr=1e-12, batch_size=8, new_head=False)
    assert torch.allclose(kept.head.weight, start.head.weight)  # new_head=False keeps the classifier
    frozen, _ = transfer.finetune(start, target, steps=5, batch_size=8, frozen_groups=2)
    assert torch.equal(frozen.features.block1.conv.weight, start.features.block1.conv.weight)
    assert not any(p.requires_grad for _, g in surgery.layer_groups(frozen)[:2] for p in g.parameters())
    same, _ = transfer.finetune(start, target, steps=2, batch_size=8, in_place=True)
    assert same is start


def test_finetune_is_reproducible_and_checks_its_inputs(halves):
    target = halves.target(4, seed=0)
    runs = [transfer.finetune(models.fresh_cnn(width=4, seed=0), target, steps=6, batch_size=8, seed=5)[1]
            for _ in range(2)]
    assert runs[0].step_loss == runs[1].step_loss
    with pytest.raises(TypeError):
        transfer.finetune("A_w16", target, steps=5)
    with pytest.raises(ValueError, match="steps"):
        transfer.finetune(models.fresh_cnn(width=4), target, steps=0)


def test_probe_beats_chance_and_pixels_are_flat(halves):
    target = halves.target(20, seed=0)
    model = transfer.pretrain(halves.a_train, steps=30, width=4, seed=0)
    acc = transfer.probe_accuracy(model, target, halves.b_test)
    assert 0.4 < acc <= 1.0  # chance is 0.2
    assert sources.pixels(target).shape == (100, 28 * 28)
    assert sources.finetune_accuracy(model, target, halves.b_test, steps=10, seed=0) > 0.2


def test_pretrain_is_deterministic_and_sizes_the_head_from_the_labels(halves):
    source = (halves.a_train[0][:200], halves.a_train[1][:200] % 3)
    a = transfer.pretrain(source, steps=3, width=4, seed=1)
    b = transfer.pretrain(source, steps=3, width=4, seed=1)
    assert a.head.out_features == 3
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_probe_head_is_the_converged_probe_on_the_unchanged_body(halves):
    from tutorlib import evaluation

    model = transfer.pretrain(halves.a_train, steps=20, width=4, seed=0)
    target = halves.target(10, seed=0)
    lp = transfer.probe_head(model, target)
    assert torch.equal(lp.features.block1.conv.weight, model.features.block1.conv.weight)
    assert lp.head.out_features == 5 and model.head.out_features == 5 and lp.head is not model.head
    expected = transfer.probe_accuracy(model, target, halves.b_test)
    assert evaluation.evaluate(lp, halves.b_test)["accuracy"] == pytest.approx(expected, abs=1e-3)


def test_validation_split_is_held_out_of_the_training_set(halves):
    target = halves.target(10, seed=0)
    fit_part, val = transfer.split_off_validation(target, 3, seed=1)
    assert fit_part[1].bincount().tolist() == [7] * 5 and val[1].bincount().tolist() == [3] * 5
    together = torch.cat([fit_part[0], val[0]]).flatten(1)
    assert torch.equal(together.sort(0).values, target[0].flatten(1).sort(0).values)  # a partition
    with pytest.raises(ValueError, match="hold out fewer"):
        transfer.split_off_validation(target, 10)


def test_choose_on_validation_picks_the_best_scoring_option(halves):
    target = halves.target(10, seed=0)
    train_fn = lambda part, lr: transfer.finetune(models.fresh_cnn(width=8, seed=0), part, steps=60, lr=lr,
                                                  batch_size=16)[0]
    best, model, scores = transfer.choose_on_validation(train_fn, target, [1e-9, 3e-3], val_per_class=3)
    assert set(scores) == {1e-9, 3e-3} and best == max(scores, key=scores.get) and best == 3e-3
    fit_part, val = transfer.split_off_validation(target, 3)  # trained without the validation images it is scored on
    assert evaluation.evaluate(model, val)["accuracy"] == scores[best]
    with pytest.raises(ValueError, match="at least one option"):
        transfer.choose_on_validation(train_fn, target, [])


# ----------------------------------------------------------------------------- cutting and caching
@pytest.fixture(scope="module")
def lite_random():
    return models.lite0(pretrained=False, seed=0).eval()


@pytest.mark.parametrize("frozen", [1, 3, "block4"])
def test_split_recomposes_the_course_cnn_exactly(frozen):
    model = models.fresh_cnn(width=8, seed=0).eval()
    bottom, top = models.split(model, frozen)
    x = torch.rand(6, 1, 28, 28)
    assert torch.equal(top(bottom(x)), model(x))
    assert all(any(p is q for q in model.parameters()) for p in top.parameters())  # shared, not copied


def test_split_recomposes_lite0_exactly(lite_random):
    x = torch.rand(3, 1, 28, 28)
    for frozen in (1, "blocks.4", 9):
        bottom, top = models.split(lite_random, frozen)
        assert torch.allclose(top(bottom(x)), lite_random(x), atol=1e-5)


@pytest.mark.parametrize("frozen", [0, 5, 99, "block9"])
def test_split_refuses_cuts_that_leave_no_head_or_no_bottom(frozen):
    with pytest.raises(ValueError, match="block1"):
        models.split(models.fresh_cnn(width=4), frozen)


def test_cached_finetune_equals_freezing(halves, lite_random):
    """Running the frozen bottom once gives the same model as freezing it (BatchNorm frozen too)."""
    target = halves.target(4, seed=0)
    for model, frozen in ((models.fresh_cnn(width=8, seed=1), 2), (lite_random, 7)):
        frozen_run, h1 = transfer.finetune(model, target, steps=6, batch_size=8, seed=3, frozen_groups=frozen)
        cached_run, h2 = transfer.finetune(model, target, steps=6, batch_size=8, seed=3, frozen_groups=frozen, cache=True)
        assert h1.step_loss == pytest.approx(h2.step_loss, rel=1e-4)
        x = halves.b_test[0][:16]
        with torch.no_grad():  # equal up to rounding (the bottom sees other batch sizes, so sums run in another order)
            moved = (cached_run(x) - surgery.replace_head(copy.deepcopy(model), 5)(x)).abs().max()  # what training did
            differ = (frozen_run(x) - cached_run(x)).abs().max()
        assert moved > 0.05 and differ < 0.01 * moved, (float(differ), float(moved))


@pytest.mark.parametrize("options, match", [
    (dict(frozen_groups=0, cache=True), "frozen_groups > 0"),
    (dict(frozen_groups=2, train_bn=True, cache=True), "train_bn=False"),
    (dict(frozen_groups=2, cache=True, param_groups=[]), "param_groups"),
    (dict(frozen_groups=2, cache=True, val=None), None),
])
def test_cached_finetune_refuses_what_it_cannot_cache(halves, options, match):
    target = halves.target(2, seed=0)
    if match is None:  # val=None is no validation set at all: allowed
        transfer.finetune(models.fresh_cnn(width=4), target, steps=1, batch_size=4, **options)
        return
    with pytest.raises(ValueError, match=match):
        transfer.finetune(models.fresh_cnn(width=4), target, steps=1, batch_size=4, **options)


def test_fit_takes_activations_only_when_told():
    acts = (torch.randn(16, 4, 2, 2) * 5, torch.randint(0, 3, (16,)))
    head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train.fit(head, acts, steps=1, lr=1e-3, progress=False)
    assert train.fit(head, acts, steps=2, lr=1e-3, progress=False, activations=True).steps_run == 2
    with pytest.raises(ValueError, match="NaN"):
        train.fit(head, (torch.full((4, 4, 2, 2), float("nan")), torch.zeros(4).long()), steps=1, lr=1e-3,
                  progress=False, activations=True)


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


def test_lite0_takes_course_images_and_its_random_weights_follow_the_seed(lite_random):
    assert lite_random(torch.rand(2, 1, 28, 28)).shape == (2, 1000)
    assert lite_random.image_size == models.LITE0_PIXELS
    again, other = models.lite0(pretrained=False, seed=0), models.lite0(pretrained=False, seed=1)
    assert torch.equal(again.model.conv_stem.weight, lite_random.model.conv_stem.weight)
    assert not torch.equal(other.model.conv_stem.weight, lite_random.model.conv_stem.weight)


def test_freeze_bn_holds_every_batchnorm_while_the_rest_trains(halves):
    start = models.fresh_cnn(width=4, seed=0)
    target = halves.target(4, seed=0)
    tuned, _ = transfer.finetune(start, target, steps=5, batch_size=8, seed=0, freeze_bn=True)
    for (name, before), after in zip(start.state_dict().items(), tuned.state_dict().values()):
        if ".bn." in name:  # statistics, scale and shift: all exactly the pretrained ones
            assert torch.equal(before, after), name
    assert not torch.equal(tuned.features.block4.conv.weight, start.features.block4.conv.weight)
    with pytest.raises(ValueError, match="choose one"):
        transfer.finetune(start, target, steps=1, frozen_groups=1, train_bn=True, freeze_bn=True)


def test_derive_gives_one_fixed_seed_per_purpose_and_names_a_bad_purpose():
    from tutorlib import seeds
    assert seeds.derive(0, "draw 1") == seeds.derive(0, "draw 1")  # same on every run and machine
    drawn = {seeds.derive(s, f"draw {k}") for s in range(3) for k in range(3)}
    assert len(drawn) == 9  # seed + k would make seed 0's draw 1 equal seed 1's draw 0
    assert all(0 <= d < 2**32 for d in drawn)
    with pytest.raises(ValueError, match="non-empty string"):
        seeds.derive(0, "")
    with pytest.raises(TypeError, match="whole number"):
        seeds.derive(0.5, "draw 0")


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
