"""tutorlib.engine: K draws trained as one computation are the draws `train.fit` trains one by one.

Float sums in another order (a grouped convolution, another thread count) move the last bits, and AdamW
on 25 images amplifies that over tens of steps: `fit` itself, run with 1 and with 2 threads, ends 50 steps
up to 0.14 apart on single weights. So the weights are compared after a few steps, where only rounding
separates the two and any real difference (batch order, BatchNorm statistics, schedule, clipping, which
copy sees which images) shows at once; after 50 steps the accuracies are compared.
"""
import pytest
import torch

from tutorlib import engine, evaluation, models, profile, recipes, seeds, surgery, train, transfer


@pytest.fixture(scope="module")
def halves():
    return transfer.load_halves(profile.current("quick"))


def draws(halves, k=4, shots=10):  # 50 images, batches of 32: each copy's own order decides what a step sees
    seeds_ = [seeds.derive(7, f"draw {i}") for i in range(k)]
    return seeds_, [halves.target(shots, s) for s in seeds_]


def one_by_one(nets, targets, draw_seeds, **options):
    return [train.fit(n, t, seed=s, progress=False, batch_size=32, **options) for n, t, s in zip(nets, targets, draw_seeds)]


def largest_gap(a_nets, b_nets) -> float:
    return max(float((a - b).abs().max()) for x, y in zip(a_nets, b_nets)
               for a, b in zip(x.state_dict().values(), y.state_dict().values()) if a.is_floating_point())


@pytest.mark.parametrize("options", [dict(lr=3e-3), dict(lr=0.05, optimizer="sgd", clip_grad_norm=0.5, warmup_steps=2),
                                     dict(lr=3e-3, frozen=2)], ids=["adamw", "sgd+clip+warmup", "two groups frozen"])
def test_k_draws_together_take_the_steps_fit_takes_one_by_one(halves, options):
    draw_seeds, targets = draws(halves)
    frozen = options.pop("frozen", 0)

    def prepared():
        nets = [models.fresh_cnn(8, 4, 5, seed=s) for s in draw_seeds]
        return [surgery.freeze(n, frozen) if frozen else n for n in nets]

    alone, together = prepared(), prepared()
    histories = one_by_one(alone, targets, draw_seeds, steps=5, **options)
    batched = engine.fit_many(together, targets, steps=5, seeds=draw_seeds, **options)
    # Rounding only: measured 1e-7 to 4e-6 with AVX-512 kernels and 1.4e-4 limited to AVX2 (SGD at lr 0.05), where
    # a copy stepped on another copy's images ends 0.025-0.064 away (weights of size about 1)
    assert largest_gap(alone, together) < 1e-3
    for h, b in zip(histories, batched):
        assert b.step_loss == pytest.approx(h.step_loss, rel=1e-4) and b.lr == pytest.approx(h.lr)
        assert b.grad_norm == pytest.approx(h.grad_norm, rel=1e-2)  # 0.2% apart with AVX2 kernels (clipping at 0.5)
    if frozen:
        assert torch.equal(together[0].features.block1.conv.weight, prepared()[0].features.block1.conv.weight)


def test_after_50_steps_every_draw_scores_as_it_does_alone(halves):
    draw_seeds, targets = draws(halves)
    alone = [models.fresh_cnn(8, 4, 5, seed=s) for s in draw_seeds]
    together = [models.fresh_cnn(8, 4, 5, seed=s) for s in draw_seeds]
    one_by_one(alone, targets, draw_seeds, steps=50, lr=3e-3)
    engine.fit_many(together, targets, steps=50, lr=3e-3, seeds=draw_seeds)
    expected = [evaluation.evaluate(n, halves.b_test)["accuracy"] for n in alone]
    scored = engine.evaluate_many(together, halves.b_test)
    assert scored == pytest.approx([evaluation.evaluate(n, halves.b_test)["accuracy"] for n in together], abs=1e-6)
    assert max(abs(a - b) for a, b in zip(expected, scored)) <= 0.005  # one-by-one: the same up to rounding
    assert len(set(scored)) > 1  # the copies did not collapse into one


def test_fit_many_refuses_what_it_cannot_batch(halves):
    draw_seeds, targets = draws(halves, k=2)
    nets = [models.fresh_cnn(8, seed=s) for s in draw_seeds]
    with pytest.raises(ValueError, match="one architecture"):
        engine.fit_many([nets[0], models.fresh_cnn(16)], targets, steps=1, lr=1e-3, seeds=draw_seeds)
    with pytest.raises(ValueError, match="same number of images"):
        engine.fit_many(nets, [targets[0], halves.target(6, 1)], steps=1, lr=1e-3, seeds=draw_seeds)
    with pytest.raises(ValueError, match="One dataset and one seed"):
        engine.fit_many(nets, targets, steps=1, lr=1e-3, seeds=draw_seeds[:1])
    with pytest.raises(TypeError, match="course CNNs"):
        engine.fit_many([models.lite0(pretrained=False)], targets[:1], steps=1, lr=1e-3, seeds=draw_seeds[:1])


def test_copies_trained_in_cache_sized_groups_are_the_copies_trained_in_one(halves, monkeypatch):
    draw_seeds, targets = draws(halves)
    one, grouped = ([models.fresh_cnn(8, 4, 5, seed=s) for s in draw_seeds] for _ in range(2))
    engine.fit_many(one, targets, steps=5, lr=3e-3, seeds=draw_seeds)
    monkeypatch.setattr(engine, "CACHE_IMAGES", 64)  # batches of 32: two copies a group, two groups
    histories = engine.fit_many(grouped, targets, steps=5, lr=3e-3, seeds=draw_seeds)
    assert len(histories) == 4 and largest_gap(one, grouped) < 1e-5
    assert engine.evaluate_many(grouped, halves.b_test) == pytest.approx(engine.evaluate_many(one, halves.b_test), abs=1e-6)


def test_finetune_many_takes_finetunes_steps_from_a_checkpoint_in_eval_mode(halves):
    draw_seeds, targets = draws(halves)
    pretrained = models.load_checkpoint("A_w8").eval()  # fit trains its BatchNorm anyway; so must the engine
    alone = [recipes.finetune(pretrained, t, steps=5, lr=1e-3, seed=s)[0] for t, s in zip(targets, draw_seeds)]
    together = engine.finetune_many([pretrained] * 4, targets, steps=5, lr=1e-3, seeds=draw_seeds)
    assert largest_gap(alone, together) < 1e-4 and not any(n.training for n in together)
    assert torch.equal(pretrained.features.block1.conv.weight, models.load_checkpoint("A_w8").features.block1.conv.weight)
    with pytest.raises(ValueError, match="One target and one seed per model"):
        engine.finetune_many([pretrained] * 2, targets, steps=1, lr=1e-3, seeds=draw_seeds)
