"""tutorlib.train.fit and friends on tiny tasks: learning, early stopping, clipping, guards, determinism."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import GOOD, IMAGES, LABELS, tiny_cnn, unchanged, weights

from tutorlib import evaluation, models, surgery, train


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
    restored = evaluation.evaluate(model, wrong)["loss"]
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


def test_a_model_evaluated_first_can_still_be_trained(blobs):
    """predict converts the model to channels-last; done inside inference mode, that froze it for good."""
    model = tiny_cnn()
    evaluation.evaluate(model, blobs)
    assert not any(p.is_inference() for p in model.parameters())
    F.cross_entropy(model(blobs[0]), blobs[1]).backward()  # a hand-written step, as the benchmarks do
    history = train.fit(model, blobs, epochs=1, lr=1e-2, seed=0, progress=False)
    assert history.stopped_reason == "completed"


# ----------------------------------------------------------------------------- bad input and faults


FIT_INPUT_CASES = {
    "uint8 images": ((GOOD[0].mul(255).byte(), LABELS), TypeError, "images.float() / 255"),
    "images without a channel axis": ((GOOD[0][:, 0], LABELS), ValueError, "unsqueeze(1)"),
    "images in 0..255": ((GOOD[0] * 255, LABELS), ValueError, "Divide uint8 images by 255"),
    "NaN pixels": ((GOOD[0].index_fill(0, torch.tensor([3]), float("nan")), LABELS), ValueError, "[0, 1]"),
    "RGB images into a grayscale model": ((GOOD[0].expand(-1, 3, -1, -1), LABELS), ValueError,
                                          "images.mean(1, keepdim=True)"),
    "labels beyond the head": ((GOOD[0], LABELS + 1), ValueError, "replace_head"),
    "float labels": ((GOOD[0], LABELS.float()), TypeError, "int64"),
    "images and labels of different lengths": ((GOOD[0], LABELS[:20]), ValueError, "differ in length"),
    "images alone": ((GOOD[0],), TypeError, "(images, labels) pair"),
}


@pytest.mark.parametrize("case", FIT_INPUT_CASES)
def test_fit_rejects_bad_data_with_the_fix(case):
    batch, error, expected_text = FIT_INPUT_CASES[case]
    with pytest.raises(error) as info:
        train.fit(tiny_cnn(), batch, epochs=1, lr=1e-3, progress=False)
    assert expected_text in str(info.value)


FIT_OPTION_CASES = {
    "unknown optimizer": (dict(optimizer="adam"), "'adamw' or 'sgd'"),
    "unknown schedule": (dict(schedule="linear"), "'cosine' or 'constant'"),
    "zero learning rate": (dict(lr=0.0), "lr > 0"),
    "zero epochs": (dict(epochs=0), "epochs and batch_size must be >= 1"),
    "early stopping without validation data": (dict(early_stopping=3), "pass val="),
}


@pytest.mark.parametrize("case", FIT_OPTION_CASES)
def test_fit_rejects_bad_options(case):
    options, expected_text = FIT_OPTION_CASES[case]
    with pytest.raises(ValueError) as info:
        train.fit(tiny_cnn(), GOOD, **{"epochs": 1, "lr": 1e-3, "progress": False, **options})
    assert expected_text in str(info.value)


def test_fit_on_a_fully_frozen_model_says_unfreeze():
    model = surgery.freeze(tiny_cnn(), up_to=3)
    with pytest.raises(ValueError, match="surgery.unfreeze"):
        train.fit(model, GOOD, epochs=1, lr=1e-3, progress=False)


def test_nan_loss_stops_with_advice_and_keeps_the_last_good_weights(blobs):
    model = tiny_cnn()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(train.TrainingDiverged) as err:
        train.fit(model, blobs, epochs=3, lr=1e-2, batch_size=16, seed=0, progress=False,
                  loss_fn=lambda logits, y: nn.functional.cross_entropy(logits, y) * float("nan"))
    message = str(err.value)
    assert "lower learning rate" in message and "clip_grad_norm" in message
    assert err.value.history.stopped_reason == "diverged"
    assert all(torch.equal(start[k], v) for k, v in model.state_dict().items())  # diverged in epoch 0


def test_inf_loss_after_a_good_epoch_restores_that_epoch(blobs):
    calls = {"n": 0}

    def loss_after_a_while(logits, labels):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(logits, labels)
        return loss * float("inf") if calls["n"] > 8 else loss  # 6 steps per epoch: inf in epoch 1

    model = tiny_cnn()
    with pytest.raises(train.TrainingDiverged, match="epoch 1") as err:
        train.fit(model, blobs, epochs=3, lr=1e-2, batch_size=16, seed=0, progress=False,
                  loss_fn=loss_after_a_while)
    assert err.value.history.epochs_run == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_learning_rate_of_ten_is_caught_with_a_rate_to_try(blobs):
    torch.manual_seed(0)
    model = models.plain_net(depth=6, width=32, in_features=12 * 12, num_classes=3)  # no BatchNorm to save it
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(train.TrainingDiverged, match=r"lr=0\.98") as err:  # a tenth of the rate it blew up at
        train.fit(model, blobs, epochs=5, lr=10.0, optimizer="sgd", batch_size=16, seed=0, progress=False)
    assert 0 < len(err.value.history.step_loss) < 6  # it stopped within the first epoch, at the blow-up
    assert all(torch.equal(start[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("where", ["forward hook", "loss function"])
def test_ctrl_c_returns_the_history_and_the_best_weights(blobs, where):
    model, steps = tiny_cnn(), {"n": 0}

    def interrupt_at_step_20(*_):
        steps["n"] += 1
        if steps["n"] == 20:
            raise KeyboardInterrupt

    loss_fn = None
    if where == "forward hook":
        model.register_forward_pre_hook(lambda m, args: interrupt_at_step_20() if m.training else None)
    else:
        def loss_fn(logits, labels):
            interrupt_at_step_20()
            return nn.functional.cross_entropy(logits, labels)
    history = train.fit(model, blobs, blobs, epochs=10, lr=1e-2, batch_size=16, seed=0, progress=False,
                        loss_fn=loss_fn)
    assert history.stopped_reason == "interrupted" and history.epochs_run == 3  # 6 steps per epoch
    best = min(history.val_loss)
    assert evaluation.evaluate(model, blobs)["loss"] == pytest.approx(best, rel=1e-4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("call", ["fit", "predict"])
def test_asking_for_cuda_without_a_gpu_is_a_clear_error(call):
    with pytest.raises(ValueError, match="no usable CUDA GPU.*device='cpu'"):
        if call == "fit":
            train.fit(tiny_cnn(), GOOD, epochs=1, lr=1e-3, device="cuda", progress=False)
        else:
            evaluation.predict(tiny_cnn(), GOOD[0], device="cuda:0")


FIT_CASES = {
    "empty training set": (dict(train=(IMAGES[:0], LABELS[:0])), ValueError, "empty"),
    "param_groups=[]": (dict(param_groups=[]), ValueError, "non-empty list"),
    "param_groups missing the head": (dict(param_groups="body only"), ValueError, "exactly once"),
    "a negative group learning rate": (dict(param_groups="negative"), ValueError, "learning rate > 0"),
    "a parameter in two groups": (dict(param_groups="twice"), ValueError, "1 repeated"),
    "clip_grad_norm=0": (dict(clip_grad_norm=0), ValueError, "clip_grad_norm"),
    "batch_size 0": (dict(batch_size=0), ValueError, "batch_size"),
    "batch_size 1.5": (dict(batch_size=1.5), TypeError, "batch_size"),
    "a NaN learning rate": (dict(lr=float("nan")), ValueError, "lr > 0"),
    "a negative weight decay": (dict(weight_decay=-1.0), ValueError, "weight_decay"),
    "a float seed": (dict(seed=1.5), TypeError, "seed"),
    "a negative seed": (dict(seed=-1), ValueError, "seed"),
    "both steps and epochs": (dict(steps=5, epochs=1), ValueError, "exactly one budget"),
    "val labels beyond the head": (dict(val=(IMAGES, LABELS + 3)), ValueError, "val labels"),
    "val images in 0..255": (dict(val=(IMAGES * 255, LABELS)), ValueError, "[0, 1]"),
    "val of the wrong length": (dict(val=(IMAGES, LABELS[:5])), ValueError, "differ in length"),
    "images too small for the pooling": (dict(train=(torch.rand(30, 1, 1, 1), LABELS)), ValueError, "too small"),
    "a loss without reduction": (dict(loss_fn=lambda z, y: F.cross_entropy(z, y, reduction="none")),
                                 ValueError, "reduction='mean'"),
    "an unknown device": (dict(device="tpu"), ValueError, "'cpu'"),
    "a loss named by a string": (dict(loss_fn="mse"), TypeError, "leave it out"),
}


def _groups(model: nn.Module, kind):
    if not isinstance(kind, str):
        return kind
    body, head = list(model.features.parameters()), list(model.head.parameters())
    return {"body only": [{"params": body, "lr": 1e-3}],
            "negative": [{"params": body, "lr": -1e-3}, {"params": head, "lr": 1e-3}],
            "twice": [{"params": body + head[:1], "lr": 1e-3}, {"params": head, "lr": 1e-3}]}[kind]


@pytest.mark.parametrize("case", FIT_CASES)
def test_fit_refuses_before_any_weight_changes(case):
    options, error, expected_text = FIT_CASES[case]
    model = models.small_cnn(width=4, depth=3, num_classes=3)  # 3 pools: images below 8 x 8 vanish
    before = weights(model)
    options = dict(options)
    train_data = options.pop("train", (IMAGES, LABELS))
    if "param_groups" in options:
        options["param_groups"] = _groups(model, options["param_groups"])
    kwargs = {"epochs": 1, "lr": 1e-3, "progress": False, **options}
    with pytest.raises(error) as info:
        train.fit(model, train_data, **kwargs)
    assert expected_text in str(info.value), str(info.value)
    assert unchanged(model, before)


def test_fit_leaves_the_weights_in_their_own_memory_format():
    model = tiny_cnn()
    train.fit(model, (IMAGES, LABELS), steps=2, lr=1e-3, progress=False)
    assert all(p.is_contiguous() for p in model.parameters())
    model.features.block1.conv.weight.view(-1)  # failed with channels-last weights


def test_a_last_batch_of_one_sample_under_batchnorm_trains():
    model = models.plain_net(depth=3, width=8, batchnorm=True, in_features=144, num_classes=3)
    history = train.fit(model, (IMAGES[:29], LABELS[:29]), epochs=2, lr=1e-3, batch_size=4, progress=False)
    assert history.stopped_reason == "completed" and history.steps_run == 14  # 7 batches: 6 of 4, 1 of 5


def test_a_crash_inside_training_keeps_the_history_and_good_weights():
    model, calls = tiny_cnn(), {"n": 0}

    def loss_that_breaks(logits, labels):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("my custom loss broke")
        return F.cross_entropy(logits, labels)

    with pytest.raises(RuntimeError, match="my custom loss broke") as err:
        train.fit(model, (IMAGES, LABELS), (IMAGES, LABELS), epochs=5, lr=1e-2, batch_size=10,
                  loss_fn=loss_that_breaks, progress=False)
    history = err.value.history
    assert history.stopped_reason == "crashed" and history.epochs_run == 1 and history.steps_run == 4
    assert evaluation.evaluate(model, (IMAGES, LABELS))["loss"] == pytest.approx(history.val_loss[0], rel=1e-4)


def test_fit_takes_activations_only_when_told():
    acts = (torch.randn(16, 4, 2, 2) * 5, torch.randint(0, 3, (16,)))
    head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train.fit(head, acts, steps=1, lr=1e-3, progress=False)
    assert train.fit(head, acts, steps=2, lr=1e-3, progress=False, activations=True).steps_run == 2
    with pytest.raises(ValueError, match="NaN"):
        train.fit(head, (torch.full((4, 4, 2, 2), float("nan")), torch.zeros(4).long()), steps=1, lr=1e-3,
                  progress=False, activations=True)
