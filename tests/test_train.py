"""tutorlib.train.fit and friends on tiny tasks: learning, early stopping, clipping, guards, determinism."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tutorlib import models, surgery, train


def tiny_cnn():
    torch.manual_seed(0)
    return models.small_cnn(width=4, depth=2, num_classes=3)


def test_fit_learns_a_separable_task(blobs):
    model = tiny_cnn()
    history = train.fit(model, blobs, blobs, epochs=15, lr=1e-2, batch_size=16, seed=0, progress=False)
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.val_accuracy[-1] >= 0.95
    assert history.stopped_reason == "completed" and history.epochs_run == 15
    assert len(history.lr) == len(history.grad_norm) == 15 * math.ceil(90 / 16)
    assert set(history.to_frame().columns) == {"train_loss", "val_loss", "val_accuracy"}


class NanWhenEvaluated(nn.Module):
    """A network that trains normally but gives NaN logits in eval mode (a broken validation pass)."""

    def __init__(self):
        super().__init__()
        self.net = tiny_cnn()

    def forward(self, x):
        out = self.net(x)
        return out if self.training else out * float("nan")


def test_nan_validation_loss_with_early_stopping_is_a_clear_error(blobs):
    model = NanWhenEvaluated()
    with pytest.raises(train.TrainingDiverged, match="validation loss of nan.*clip_grad_norm") as err:
        train.fit(model, blobs, blobs, epochs=3, lr=1e-2, batch_size=16, early_stopping=2, seed=0, progress=False)
    assert err.value.history.stopped_reason == "diverged" and len(err.value.history.val_loss) == 1
    without = train.fit(NanWhenEvaluated(), blobs, blobs, epochs=2, lr=1e-2, batch_size=16, seed=0, progress=False)
    assert without.stopped_reason == "completed" and math.isnan(without.val_loss[-1])  # recorded, not hidden


def test_warmup_then_cosine_schedule(blobs):
    history = train.fit(tiny_cnn(), blobs, epochs=4, lr=0.1, batch_size=9, warmup_steps=10,
                        seed=0, progress=False)
    lrs = history.lr
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 0.01


def test_early_stopping_restores_the_best_weights(blobs):
    images, labels = blobs
    wrong = (images, (labels + 1) % 3)  # validation labels the model can only get worse on
    model = tiny_cnn()
    history = train.fit(model, blobs, wrong, epochs=30, lr=1e-2, batch_size=16, early_stopping=2,
                        seed=0, progress=False)
    assert history.stopped_reason == "early_stopping" and history.epochs_run < 30
    restored = train.evaluate(model, wrong)["loss"]
    assert restored == pytest.approx(history.val_loss[history.best_epoch], rel=1e-5)
    assert restored < history.val_loss[-1]


def test_clipping_bounds_the_update(blobs):
    model = tiny_cnn()
    before = [p.detach().clone() for p in model.parameters()]
    history = train.fit(model, blobs, epochs=1, lr=1.0, batch_size=90, optimizer="sgd",
                        clip_grad_norm=0.01, seed=0, progress=False)
    step = torch.sqrt(sum((p.detach() - b).square().sum() for p, b in zip(model.parameters(), before)))
    assert history.grad_norm[0] > 0.01  # the raw gradient was larger than the clip ...
    assert float(step) <= 0.01 + 1e-6  # ... but the single SGD step moved the weights by at most lr * clip


def test_nan_guard_restores_last_good_weights_and_keeps_history(blobs):
    model = tiny_cnn()
    calls = {"n": 0}

    def poisoned(logits, labels):
        calls["n"] += 1
        loss = F.cross_entropy(logits, labels)
        return loss * float("nan") if calls["n"] == 8 else loss

    with pytest.raises(train.TrainingDiverged) as err:
        train.fit(model, blobs, epochs=5, lr=1e-2, batch_size=30, loss_fn=poisoned, seed=0, progress=False)
    history = err.value.history
    assert history.stopped_reason == "diverged" and len(history.step_loss) == 7
    assert "Try a lower learning rate" in str(err.value) and "clip_grad_norm" in str(err.value)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_guard_state_matches_the_epoch_boundary(blobs):
    good = tiny_cnn()
    train.fit(good, blobs, epochs=2, lr=1e-2, batch_size=30, schedule="constant", seed=0, progress=False)
    model = tiny_cnn()
    calls = {"n": 0}

    def poisoned(logits, labels):
        calls["n"] += 1
        return F.cross_entropy(logits, labels) * (float("inf") if calls["n"] == 8 else 1.0)

    with pytest.raises(train.TrainingDiverged):
        train.fit(model, blobs, epochs=5, lr=1e-2, batch_size=30, schedule="constant", loss_fn=poisoned,
                  seed=0, progress=False)
    for a, b in zip(model.state_dict().values(), good.state_dict().values()):
        assert torch.equal(a, b)


def test_huge_learning_rate_diverges_cleanly(blobs):
    model = models.small_cnn(width=4, depth=2, num_classes=3, batchnorm=False)
    with pytest.raises(train.TrainingDiverged, match="Try a lower learning rate"):
        train.fit(model, blobs, epochs=20, lr=1e8, optimizer="sgd", seed=0, progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_ctrl_c_returns_history_and_best_weights(blobs):
    model = tiny_cnn()
    calls = {"n": 0}

    def interrupt_late(logits, labels):
        calls["n"] += 1
        if calls["n"] == 20:
            raise KeyboardInterrupt
        return F.cross_entropy(logits, labels)

    history = train.fit(model, blobs, blobs, epochs=10, lr=1e-2, batch_size=30, loss_fn=interrupt_late,
                        seed=0, progress=False)
    assert history.stopped_reason == "interrupted" and history.epochs_run == 6
    assert train.evaluate(model, blobs)["loss"] == pytest.approx(history.val_loss[history.best_epoch], rel=1e-5)


def test_same_seed_same_history(blobs):
    runs = [train.fit(tiny_cnn(), blobs, blobs, epochs=3, lr=1e-2, seed=7, progress=False) for _ in range(2)]
    a, b = (r.to_dict() for r in runs)
    for timing in ("seconds", "elapsed"):  # wall-clock, the only fields allowed to differ
        a.pop(timing), b.pop(timing)
    assert a == b


def test_param_groups_and_frozen_layers_are_respected(blobs):
    model = tiny_cnn()
    surgery.freeze(model, 1)
    frozen = model.features.block1.conv.weight.detach().clone()
    running = model.features.block1.bn.running_mean.clone()
    groups = surgery.discriminative_param_groups(model, 1e-2)
    history = train.fit(model, blobs, epochs=2, lr=1e-2, param_groups=groups, seed=0, progress=False)
    assert torch.equal(frozen, model.features.block1.conv.weight)
    assert torch.equal(running, model.features.block1.bn.running_mean)
    assert history.lr[0] == pytest.approx(1e-2, rel=0.01)  # the head's rate


def test_bad_inputs_fail_early(blobs):
    images, labels = blobs
    with pytest.raises(TypeError, match="float"):
        train.fit(tiny_cnn(), ((images * 255).byte(), labels), epochs=1, lr=1e-2, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train.fit(tiny_cnn(), (images * 255, labels), epochs=1, lr=1e-2, progress=False)
    with pytest.raises(ValueError, match="N x C x H x W"):
        train.fit(tiny_cnn(), (images[:, 0], labels), epochs=1, lr=1e-2, progress=False)
    with pytest.raises(ValueError, match="3 outputs"):
        train.fit(tiny_cnn(), (images, labels + 5), epochs=1, lr=1e-2, progress=False)
    with pytest.raises(ValueError, match="no usable CUDA|device="):
        if not torch.cuda.is_available():
            train.fit(tiny_cnn(), blobs, epochs=1, lr=1e-2, device="cuda", progress=False)
        else:
            raise ValueError("device= skipped on a GPU machine")
    with pytest.raises(ValueError, match="early_stopping needs validation"):
        train.fit(tiny_cnn(), blobs, epochs=1, lr=1e-2, early_stopping=2, progress=False)
    with pytest.raises(ValueError, match="Unknown optimizer"):
        train.fit(tiny_cnn(), blobs, epochs=1, lr=1e-2, optimizer="adam2", progress=False)


def test_extract_features_and_linear_probe(blobs):
    model = tiny_cnn()
    feats = train.extract_features(model, blobs)
    assert feats.shape == (90, 4)
    block = train.extract_features(model, blobs, layer="block1")
    assert block.shape == (90, 4)
    flat = train.extract_features(model, blobs, layer="block1", pool="flatten")
    assert flat.shape == (90, 4 * 6 * 6)
    with pytest.raises(ValueError, match="Layer groups"):
        train.extract_features(model, blobs, layer="block9")
    probe = train.linear_probe(flat, blobs[1])
    assert probe.score(flat, blobs[1]) >= 0.95
    with torch.no_grad():
        assert torch.allclose(probe.as_linear()(flat), probe(flat), atol=1e-4)


def test_distillation_and_l2sp():
    logits = torch.randn(8, 5)
    labels = torch.randint(0, 5, (8,))
    same = train.distillation_loss(logits, logits, labels, temperature=4.0, alpha=1.0)
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    assert float(train.distillation_loss(logits, -logits, labels, alpha=1.0)) > 0.1
    model = tiny_cnn()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    assert float(train.l2sp_penalty(model, reference).detach()) == 0.0
    with torch.no_grad():
        model.head.weight.add_(1.0)  # the head is exempt
    assert float(train.l2sp_penalty(model, reference).detach()) == 0.0
    with torch.no_grad():
        model.features.block1.conv.weight.add_(1.0)
    n = model.features.block1.conv.weight.numel()
    assert float(train.l2sp_penalty(model, reference, alpha=0.1).detach()) == pytest.approx(0.05 * n)


def test_extracted_features_can_train_a_head(blobs):
    feats = train.extract_features(tiny_cnn(), blobs)
    head = nn.Linear(feats.shape[1], 3)
    F.cross_entropy(head(feats), blobs[1]).backward()  # inference-mode tensors would refuse this
    assert head.weight.grad is not None and not feats.is_inference()


def test_a_model_evaluated_first_can_still_be_trained(blobs):
    """predict converts the model to channels-last; done inside inference mode, that froze it for good."""
    model = tiny_cnn()
    train.evaluate(model, blobs)
    assert not any(p.is_inference() for p in model.parameters())
    F.cross_entropy(model(blobs[0]), blobs[1]).backward()  # a hand-written step, as the benchmarks do
    history = train.fit(model, blobs, epochs=1, lr=1e-2, seed=0, progress=False)
    assert history.stopped_reason == "completed"
