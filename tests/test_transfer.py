"""The A -> B protocol the chapters share: set-up, few-shot targets, fresh nets, pretrain, probe, fine-tune."""
import pytest
import torch

from tutorlib import profile, surgery, transfer


@pytest.fixture(scope="module")
def halves():
    return transfer.load_halves(profile.current("quick"))


def test_setup_reads_the_profile_loads_halves_and_starts_a_clock(monkeypatch, capsys):
    monkeypatch.setenv("TUTORLIB_SEEDS", "7,8")
    chapter = transfer.setup()
    assert chapter.profile.name == "quick" and chapter.seeds == (7, 8)
    assert len(chapter.halves.b_test[1]) == 5 * profile.current("quick").test_per_class
    assert "seeds=(7, 8)" in capsys.readouterr().out
    assert chapter.finish() >= 0 and "Chapter ran in" in capsys.readouterr().out
    assert transfer.setup(halves=False).halves is None


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
    a, b, c = transfer.fresh_cnn(seed=1), transfer.fresh_cnn(seed=1), transfer.fresh_cnn(seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.head.weight, c.head.weight)


def test_finetune_trains_a_copy_for_exactly_the_steps_asked(halves):
    start = transfer.fresh_cnn(width=4, seed=0)
    before = {k: v.clone() for k, v in start.state_dict().items()}
    target = halves.target(4, seed=0)  # 20 images: 25 steps are several epochs
    tuned, history = transfer.finetune(start, target, steps=25, batch_size=8, seed=0)
    assert history.steps_run == 25 and not tuned.training
    assert all(torch.equal(v, start.state_dict()[k]) for k, v in before.items())  # the start is untouched
    assert not torch.equal(tuned.features.block1.conv.weight, start.features.block1.conv.weight)


def test_finetune_options_head_frozen_groups_and_in_place(halves):
    start = transfer.fresh_cnn(width=4, seed=0)
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
    runs = [transfer.finetune(transfer.fresh_cnn(width=4, seed=0), target, steps=6, batch_size=8, seed=5)[1]
            for _ in range(2)]
    assert runs[0].step_loss == runs[1].step_loss
    with pytest.raises(TypeError):
        transfer.finetune("A_w16", target, steps=5)
    with pytest.raises(ValueError, match="steps"):
        transfer.finetune(transfer.fresh_cnn(width=4), target, steps=0)


def test_probe_beats_chance_and_pixels_are_flat(halves):
    target = halves.target(20, seed=0)
    model = transfer.pretrain(halves.a_train, steps=30, width=4, seed=0)
    acc = transfer.probe_accuracy(model, target, halves.b_test)
    assert 0.4 < acc <= 1.0  # chance is 0.2
    assert transfer.pixels(target).shape == (100, 28 * 28)
    assert transfer.finetune_accuracy(model, target, halves.b_test, steps=10, seed=0) > 0.2


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
    train_fn = lambda part, lr: transfer.finetune(transfer.fresh_cnn(width=8, seed=0), part, steps=60, lr=lr,
                                                  batch_size=16)[0]
    best, scores = transfer.choose_on_validation(train_fn, target, [1e-9, 3e-3], val_per_class=3)
    assert set(scores) == {1e-9, 3e-3} and best == max(scores, key=scores.get) and best == 3e-3
    with pytest.raises(ValueError, match="at least one option"):
        transfer.choose_on_validation(train_fn, target, [])
