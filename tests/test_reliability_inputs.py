"""Round two of the bad-input catalogue: inputs a learner really passes, to every public function.

Three kinds, as in the issue that asked for them:
1. silent wrong results: each case now raises with the fix, or gives the right answer (checked);
2. state changed behind the learner's back: each case leaves the model as it was;
3. raw library errors: each case now names what was wrong and what to do.
Every error case checks the exception type and a phrase of the fix, not just that something failed.
"""
import copy
import gzip

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tutorlib import analysis, check, data, inputs, losses, models, profile, surgery, train

LABELS = torch.arange(3).repeat(10)
IMAGES = torch.rand(30, 1, 12, 12)


def tiny_cnn(num_classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return models.small_cnn(width=4, depth=2, num_classes=num_classes)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------------- 1. no silent wrong results
ERROR_CASES = {
    # data
    "stratified_split with N x 1 labels": (lambda: data.stratified_split(LABELS[:, None]), ValueError, "flatten()"),
    "few_shot with N x 1 labels": (lambda: data.few_shot(LABELS[:, None], 2), ValueError, "flatten()"),
    "few_shot with one-hot labels": (lambda: data.few_shot(F.one_hot(LABELS), 2), ValueError, "argmax(1)"),
    "long_tail with float labels": (lambda: data.long_tail(LABELS.float(), 10), TypeError, ".long()"),
    "select_classes with a repeated class": (lambda: data.select_classes((IMAGES, LABELS), [1, 1, 2]),
                                             ValueError, "distinct"),
    "select_classes with an absent class": (lambda: data.select_classes((IMAGES, LABELS), [0, 7]),
                                            ValueError, "present"),
    "select_classes with no class": (lambda: data.select_classes((IMAGES, LABELS), []), ValueError, "distinct"),
    "take beyond the end": (lambda: data.take((IMAGES, LABELS), torch.tensor([0, 30])), ValueError, "30 samples"),
    "take with float indices": (lambda: data.take((IMAGES, LABELS), torch.tensor([0.0, 1.0])), TypeError, "whole"),
    "label noise with labels beyond num_classes": (lambda: data.add_label_noise(LABELS, 0.2, 2), ValueError, "0..1"),
    "label noise with a NaN rate": (lambda: data.add_label_noise(LABELS, float("nan"), 3), ValueError, "[0, 1]"),
    "long tail with an infinite ratio": (lambda: data.long_tail(LABELS, float("inf")), ValueError, ">= 1"),
    "corrupt images in 0..255": (lambda: data.corrupt(IMAGES * 255, "blur"), ValueError, "Divide uint8"),
    "corrupt with severity True": (lambda: data.corrupt(IMAGES, "blur", True), ValueError, "1 to 5"),
    # evaluation
    "predict on images in 0..255": (lambda: train.predict(tiny_cnn(), IMAGES * 255), ValueError, "Divide uint8"),
    "predict with batch_size 0": (lambda: train.predict(tiny_cnn(), IMAGES, batch_size=0), ValueError, "positive"),
    "per_class_accuracy with labels beyond the head": (
        lambda: analysis.per_class_accuracy(tiny_cnn(), (IMAGES, LABELS + 3)), ValueError, "replace_head"),
    "per_class_accuracy on images in 0..255": (
        lambda: analysis.per_class_accuracy(tiny_cnn(), (IMAGES * 255, LABELS)), ValueError, "[0, 1]"),
    "per_class_accuracy with too few class names": (
        lambda: analysis.per_class_accuracy(tiny_cnn(), (IMAGES, LABELS), ["a", "b"]), ValueError, "class_names"),
    "extract_features with pool='max'": (lambda: train.extract_features(tiny_cnn(), IMAGES, pool="max"),
                                         ValueError, "'avg', 'flatten'"),
    "probe score on features of another width": (
        lambda: train.linear_probe(torch.randn(30, 4), LABELS).score(torch.randn(30, 5), LABELS),
        ValueError, "same model and layer"),
    # losses
    "L2-SP against a state_dict() that aliases the weights": (
        lambda: (m := tiny_cnn(), losses.l2sp_penalty(m, m.state_dict())), ValueError, "losses.snapshot"),
    "L2-SP against a reference with other keys": (
        lambda: losses.l2sp_penalty(tiny_cnn(), {"x": torch.zeros(1)}), ValueError, "lacks"),
    "L2-SP against another width": (
        lambda: losses.l2sp_penalty(models.small_cnn(8, 2, 3), losses.snapshot(tiny_cnn())), ValueError, "shape"),
    "weight distance against the live state_dict": (
        lambda: (m := tiny_cnn(), analysis.weight_distance(m, m.state_dict())), ValueError, "losses.snapshot"),
    "distillation at temperature 0": (
        lambda: losses.distillation_loss(torch.randn(4, 3), torch.randn(4, 3), LABELS[:4], temperature=0),
        ValueError, "temperature"),
    "distillation with alpha 2": (
        lambda: losses.distillation_loss(torch.randn(4, 3), torch.randn(4, 3), LABELS[:4], alpha=2), ValueError, "alpha"),
    "distillation teacher with other classes": (
        lambda: losses.distillation_loss(torch.randn(4, 3), torch.randn(4, 5), LABELS[:4]), ValueError, "replace_head"),
    # surgery
    "discriminative LRs with factor 0": (lambda: surgery.discriminative_param_groups(tiny_cnn(), 1e-3, factor=0),
                                         ValueError, "factor"),
    "discriminative LRs with a negative rate": (lambda: surgery.discriminative_param_groups(tiny_cnn(), -1e-3),
                                                ValueError, "base_lr"),
    "replace_head with 0 classes": (lambda: surgery.replace_head(tiny_cnn(), 0), ValueError, "num_classes"),
    "replace_head with 2.5 classes": (lambda: surgery.replace_head(tiny_cnn(), 2.5), TypeError, "whole number"),
    "freeze with train_bn='no'": (lambda: surgery.freeze(tiny_cnn(), 1, train_bn="no"), TypeError, "True or False"),
    "train_only with a bare name": (lambda: surgery.train_only(tiny_cnn(), "head"), TypeError, "list of group names"),
    "layer_groups of a function": (lambda: surgery.layer_groups(len), TypeError, "nn.Module"),
    "transplant with freeze='yes'": (lambda: surgery.transplant(tiny_cnn(), tiny_cnn(), 1, freeze="yes"),
                                     TypeError, "True or False"),
    "prune a model without weights": (lambda: surgery.prune_magnitude(nn.ReLU(), 0.5), ValueError, "no Conv2d"),
    # analysis
    "gradient norms before backward": (lambda: analysis.gradient_norms(tiny_cnn()), ValueError, "backward()"),
    "count_flops of a 2-number shape with a 0": (lambda: analysis.count_flops(tiny_cnn(), (1, 0, 28)),
                                                 ValueError, "(1, 28, 28)"),
    "latency with batch_size 0": (lambda: analysis.latency(tiny_cnn(), (1, 12, 12), batch_size=0), ValueError, "positive"),
    "sparsity of a model without weights": (lambda: analysis.sparsity(nn.ReLU()), ValueError, "no Conv2d"),
    "pareto front of different lengths": (lambda: analysis.pareto_front([1, 2], [0.5]), ValueError, "one length"),
    "pareto front with a NaN score": (lambda: analysis.pareto_front([1, 2], [0.5, float("nan")]), ValueError, "NaN"),
    # models
    "small_cnn of width 8.5": (lambda: models.small_cnn(8.5), TypeError, "whole number"),
    "small_cnn with 0 input channels": (lambda: models.small_cnn(8, in_channels=0), ValueError, "in_channels"),
    "plain_net of depth 1": (lambda: models.plain_net(1), ValueError, "depth"),
    "Lite0 at 8 pixels": (lambda: models.efficientnet_lite("lite0", input_size=8), ValueError, ">= 32"),
    "checkpoint by number": (lambda: models.load_checkpoint(3), ValueError, "Available"),
    # check
    "mean_sd of nothing": (lambda: check.mean_sd([]), ValueError, "at least one"),
    "a verdict on a whole tensor": (lambda: check.expect(torch.tensor([True, False]), "x"), TypeError, ".all()"),
}


def raises_with_fix(call, error: type, expected_text: str) -> None:
    """The catalogue's one assertion: this exception type, and the fix (or the valid choices) in its message."""
    with pytest.raises(error) as info:
        call()
    assert expected_text in str(info.value), str(info.value)


@pytest.mark.parametrize("case", ERROR_CASES)
def test_no_silent_wrong_result(case):
    raises_with_fix(*ERROR_CASES[case])


def test_prune_one_means_all_weights_not_one_weight():
    model = surgery.prune_magnitude(tiny_cnn(), 1)
    assert analysis.sparsity(model) == 1.0


def test_l2sp_against_a_snapshot_grows_as_the_weights_move():
    model = tiny_cnn()
    reference = losses.snapshot(model)
    assert losses.l2sp_penalty(model, reference).item() == 0.0
    with torch.no_grad():
        model.features.block1.conv.weight.add_(0.1)
    moved = losses.l2sp_penalty(model, reference, alpha=2.0).item()
    assert moved == pytest.approx(model.features.block1.conv.weight.numel() * 0.01, rel=1e-4)


def test_verdict_numbers_accept_pandas_and_numpy(capsys):
    import pandas as pd

    check.expect(True, "tables print as values", s=pd.Series([1.0, 2.0]), a=np.array([1, 2]), x=np.float32(0.5))
    assert "s={0: 1.0, 1: 2.0}, a=[1, 2], x=0.5" in capsys.readouterr().out


def test_a_verdict_on_nan_fails():
    with pytest.raises(AssertionError, match="FAIL"):
        check.expect(torch.tensor(float("nan")), "a NaN is not a pass")


def test_numpy_labels_and_float64_images_are_converted_not_refused():
    images, labels = IMAGES.double().numpy(), LABELS.numpy().astype(np.int32)
    split = data.stratified_split(labels, (0.5, 0.5))
    assert sum(len(p) for p in split) == 30 and len(set(torch.cat(split).tolist())) == 30
    history = train.fit(tiny_cnn(), (images, labels), steps=2, lr=1e-3, progress=False)
    assert history.steps_run == 2
    assert train.evaluate(tiny_cnn(), (images, labels))["accuracy"] >= 0


# ----------------------------------------------------------------------------- 1b. fit checks before any step
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


# ----------------------------------------------------------------------------- 2. state kept
def test_fit_leaves_the_weights_in_their_own_memory_format():
    model = tiny_cnn()
    train.fit(model, (IMAGES, LABELS), steps=2, lr=1e-3, progress=False)
    assert all(p.is_contiguous() for p in model.parameters())
    model.features.block1.conv.weight.view(-1)  # failed with channels-last weights


def test_predict_and_extract_features_keep_format_and_mode():
    model = tiny_cnn().train()
    train.predict(model, IMAGES)
    train.extract_features(model, IMAGES, layer="block1", pool="flatten")
    assert model.training and all(p.is_contiguous() for p in model.parameters())


def test_a_last_batch_of_one_sample_under_batchnorm_trains():
    model = models.plain_net(depth=3, width=8, batchnorm=True, in_features=144, num_classes=3)
    history = train.fit(model, (IMAGES[:29], LABELS[:29]), epochs=2, lr=1e-3, batch_size=4, progress=False)
    assert history.stopped_reason == "completed" and history.steps_run == 14  # 7 batches: 6 of 4, 1 of 5


def test_latency_and_count_flops_keep_every_mode():
    model = surgery.freeze(tiny_cnn().train(), 1)
    modes = [m.training for m in model.modules()]
    analysis.latency(model, (1, 12, 12), repeats=1, warmup=0)
    analysis.count_flops(model, (1, 12, 12))
    assert [m.training for m in model.modules()] == modes
    assert model.training and not model.features.block1.bn.training


def test_frozen_batchnorm_survives_model_train_in_a_learners_own_loop():
    model = surgery.freeze(tiny_cnn(), 1)
    bn = model.features.block1.bn
    stats = bn.running_mean.clone()
    model.train()  # what every hand-written loop does
    assert not bn.training and model.features.block2.bn.training
    model(IMAGES)
    assert torch.equal(bn.running_mean, stats)
    copied = copy.deepcopy(model).train()
    assert not copied.features.block1.bn.training and copied.features.block2.bn.training
    surgery.unfreeze(model)
    model.train()
    assert bn.training
    model(IMAGES)
    assert not torch.equal(bn.running_mean, stats)


def test_train_bn_true_keeps_frozen_groups_batchnorm_updating():
    model = surgery.freeze(tiny_cnn(), 1, train_bn=True).train()
    assert model.features.block1.bn.training and model.features.block1.bn.weight.requires_grad
    assert not model.features.block1.conv.weight.requires_grad


def test_transplant_checks_every_group_before_copying_any():
    src, dst = models.small_cnn(4, 2, 3), models.small_cnn(4, 2, 3)
    src.features.block2 = models.conv_block(4, 8, downsample=True)  # the second group will not fit
    before = weights(dst)
    with pytest.raises(ValueError, match="different shapes"):
        surgery.transplant(src, dst, 2)
    assert unchanged(dst, before)


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
    assert train.evaluate(model, (IMAGES, LABELS))["loss"] == pytest.approx(history.val_loss[0], rel=1e-4)


# ----------------------------------------------------------------------------- 3. raw errors replaced
RAW_CASES = {
    "seed None": (lambda: data.few_shot(LABELS, 2, seed=None), TypeError, "fixed number"),
    "seed 2.5": (lambda: profile.seed_everything(2.5), TypeError, "whole number"),
    "seed -1": (lambda: data.stratified_split(LABELS, seed=-1), ValueError, "seed"),
    "per_class 2.0": (lambda: data.few_shot(LABELS, 2.0), ValueError, "whole number"),
    "fractions as a string": (lambda: data.stratified_split(LABELS, "0.8"), ValueError, "sequence"),
    "empty labels": (lambda: data.few_shot(torch.tensor([], dtype=torch.long), 1), ValueError, "empty"),
    "labels as a list": (lambda: data.few_shot([0, 1, 1], 1), TypeError, "torch.as_tensor"),
    "evaluate on no images": (lambda: train.evaluate(tiny_cnn(), (IMAGES[:0], LABELS[:0])), ValueError, "empty"),
    "evaluate on images alone": (lambda: train.evaluate(tiny_cnn(), IMAGES), TypeError, "(images, labels)"),
    "7 x 7 images into the course CNN": (lambda: train.predict(models.small_cnn(4, 4, 3), torch.rand(2, 1, 7, 7)),
                                         ValueError, "too small"),
    "RGB images into the grey CNN": (lambda: train.predict(tiny_cnn(), torch.rand(2, 3, 12, 12)),
                                     ValueError, "images.mean(1, keepdim=True)"),
    "a single image without a batch axis": (lambda: train.predict(tiny_cnn(), torch.rand(12, 12)), ValueError, "[None]"),
    "CKA of constant features": (lambda: analysis.linear_cka(torch.ones(10, 4), torch.randn(10, 4)),
                                 ValueError, "constant"),
    "CKA of one sample": (lambda: analysis.linear_cka(torch.randn(1, 4), torch.randn(1, 4)), ValueError, "2 rows"),
    "CKA of zero-width features": (lambda: analysis.linear_cka(torch.randn(5, 0), torch.randn(5, 4)),
                                   ValueError, "1 column"),
    "CKA with NaN": (lambda: analysis.linear_cka(torch.full((5, 2), float("nan")), torch.randn(5, 2)),
                     ValueError, "NaN"),
    "CKA of 1-D vectors": (lambda: analysis.linear_cka(torch.randn(5), torch.randn(5)), ValueError, "[:, None]"),
    "LogME of constant features": (lambda: analysis.logme(torch.ones(20, 3), LABELS[:20]), ValueError, "same for every"),
    "LogME of one class": (lambda: analysis.logme(torch.randn(20, 3), torch.zeros(20, dtype=torch.long)),
                           ValueError, "at least 2 classes"),
    "LogME with NaN": (lambda: analysis.logme(torch.full((20, 3), float("nan")), LABELS[:20]), ValueError, "NaN"),
    "LogME with fewer labels": (lambda: analysis.logme(torch.randn(20, 3), LABELS[:10]), ValueError, "labels"),
    "linear probe of one class": (lambda: train.linear_probe(torch.randn(10, 3), torch.zeros(10, dtype=torch.long)),
                                  ValueError, "at least 2 classes"),
    "linear probe of one sample": (lambda: train.linear_probe(torch.randn(1, 3), LABELS[:1]), ValueError, "2 rows"),
    "linear probe with string labels": (lambda: train.linear_probe(torch.randn(3, 3), np.array(["a", "b", "c"])),
                                        TypeError, ""),
    "load_digits at 4 pixels": (lambda: data.load_digits(4), ValueError, "image_size"),
    "image folder at size 0": (lambda: data.load_image_folder(".", 0), ValueError, "image_size"),
    "$TUTORLIB_THREADS=two": (lambda: _threads_env("two"), ValueError, "whole number of threads"),
    "a DataLoader instead of tensors": (
        lambda: train.evaluate(tiny_cnn(), torch.utils.data.DataLoader(torch.utils.data.TensorDataset(IMAGES, LABELS))),
        TypeError, "(images, labels) pair"),
    "image grid with too few class names": (lambda: __import__("tutorlib").plots.image_grid(IMAGES[:4], LABELS[:4], ["a"]),
                                            ValueError, "class_names"),
    "an explorer control without options": (lambda: __import__("tutorlib").plots.explorer(lambda **k: None, depth=[]),
                                            ValueError, "non-empty list"),
    "show() of a number": (lambda: __import__("tutorlib").show(3), TypeError, "tutorlib.show(train.fit)"),
    "load_halves of a profile name": (lambda: __import__("tutorlib").transfer.load_halves("quick"), TypeError,
                                      "profile.current('quick')"),
    "digits at an unknown size": (lambda: data.load_dataset("digits", "train", "huge"), ValueError, "'small', 'full'"),
    # cutting a model and fine-tuning its top on cached activations
    "finetune with cache='yes'": (lambda: __import__("tutorlib").transfer.finetune(
        tiny_cnn(), (IMAGES, LABELS), steps=1, frozen_groups=1, cache="yes"), TypeError, "True or False"),
    "lite0 with pretrained='no'": (lambda: __import__("tutorlib").transfer.lite0(pretrained="no"), TypeError,
                                   "True or False"),
    "split of a plain Sequential": (lambda: models.split(nn.Sequential(nn.Flatten(), nn.Linear(144, 3)), 1), TypeError,
                                    "surgery.freeze"),
    "split through the head": (lambda: models.split(tiny_cnn(), "head"), ValueError, "head must stay on top"),
    "split at an unknown group": (lambda: models.split(tiny_cnn(), "blocks.4"), ValueError, "block1"),
    "probe_by_stage at the head": (lambda: __import__("tutorlib").transfer.probe_by_stage(
        tiny_cnn(), (IMAGES, LABELS), (IMAGES, LABELS), ["head"]), ValueError, "stages, input to head"),
    "positive_control of a plain Sequential": (lambda: __import__("tutorlib").transfer.positive_control(
        nn.Sequential(nn.Flatten(), nn.Linear(144, 3)), None, 0), TypeError, "load_halves"),
    "derive with an empty purpose": (lambda: __import__("tutorlib").seeds.derive(0, ""), ValueError, "non-empty string"),
    "group_gradient_norms before backward": (lambda: analysis.group_gradient_norms(tiny_cnn()), ValueError, "backward()"),
    "fit on activations with NaN": (lambda: train.fit(nn.Flatten(), (torch.full((4, 2, 2, 2), float("nan")), LABELS[:4]),
                                                      steps=1, lr=1e-3, activations=True), ValueError, "NaN"),
}


def _threads_env(value: str):
    import os

    from tutorlib import threads

    os.environ[threads.ENV_VAR] = value
    try:
        threads.configure()
    finally:
        del os.environ[threads.ENV_VAR]


@pytest.mark.parametrize("case", RAW_CASES)
def test_errors_name_the_fix_not_a_library_internal(case):
    raises_with_fix(*RAW_CASES[case])


def test_a_garbage_gz_under_tutorlib_data_names_the_file(tmp_path, monkeypatch):
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(b"this is not gzip at all")
    monkeypatch.setenv("TUTORLIB_DATA", str(tmp_path))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz.*not a valid gzip IDX file"):
        data.load_fashion_mnist("train", "full")


def test_a_truncated_gz_names_the_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (100).to_bytes(4, "big") + bytes(100))
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ValueError, match="t10k-labels"):
        data.read_idx(path)


def test_results_file_in_a_missing_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORLIB_RESULTS", str(tmp_path / "no" / "such" / "results.jsonl"))
    with pytest.raises(FileNotFoundError, match="mkdir -p"):
        check.report("anything", x=1)


# ----------------------------------------------------------------------------- 4. a learner's photos
def _photo_folder(tmp_path):
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (40, 20), (200, 10, 10)).save(tmp_path / name / "wide.png")
    return tmp_path


def test_exif_rotation_is_applied(tmp_path):
    from PIL import Image

    root = _photo_folder(tmp_path)
    upright = np.zeros((40, 20, 3), dtype=np.uint8)  # tall: top half white
    upright[:20] = 255
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # what the phone saved: wide
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored.save(root / "a" / "phone.jpg", exif=exif.tobytes(), quality=95)
    images, labels, classes = data.load_image_folder(root, 8, return_classes=True, center_crop=False)
    assert classes == ["a", "b"] and labels[0] == 0
    phone = images[0]  # class a's files sort as phone.jpg, wide.png
    assert phone[:, :4].mean() > 0.9 and phone[:, 4:].mean() < 0.1  # white on top: upright


def test_sixteen_bit_png_keeps_its_range(tmp_path):
    from PIL import Image

    root = _photo_folder(tmp_path)
    ramp = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)
    Image.fromarray(ramp).save(root / "b" / "deep.png")
    images, labels = data.load_image_folder(root, 16, grayscale=True)
    deep = images[labels == 1][0, 0]
    assert 0.4 < float(deep.mean()) < 0.6 and float(deep.min()) < 0.05  # not saturated at 1.0


def test_non_square_photos_are_centre_cropped_by_default(tmp_path):
    from PIL import Image

    root = _photo_folder(tmp_path)
    stripes = np.zeros((20, 60), dtype=np.uint8)
    stripes[:, 20:40] = 255  # a white centre third
    Image.fromarray(stripes).save(root / "b" / "stripes.png")
    cropped, labels = data.load_image_folder(root, 10, grayscale=True)
    squashed, _ = data.load_image_folder(root, 10, grayscale=True, center_crop=False)
    assert float(cropped[labels == 1][0].mean()) > 0.9  # the crop is the white centre
    assert float(squashed[labels == 1][0].mean()) < 0.6  # squashing keeps the black sides


def test_a_decompression_bomb_is_named(tmp_path, monkeypatch):
    from PIL import Image

    root = _photo_folder(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 800-pixel photos now count as bombs (> 2x the limit)
    with pytest.raises(ValueError, match="too large to open safely.*MAX_IMAGE_PIXELS"):
        data.load_image_folder(root, 8)


def test_inputs_contract_examples():
    assert inputs.labels(np.array([2, 0, 1], dtype=np.int32)).dtype == torch.long
    assert inputs.images(torch.rand(2, 1, 4, 4, dtype=torch.float64)).dtype == torch.float32
    assert inputs.input_shape((1, 28, 28)) == (1, 1, 28, 28)
