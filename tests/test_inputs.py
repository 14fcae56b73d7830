"""The input contract (tutorlib.inputs): bad input to any public function gets an error naming the fix.

The cases are data, one line each, so this file is also the catalogue of what tutorlib guards against:
silent wrong results that now raise (or give the right answer), and raw library errors that now say what
was wrong and what to do. Each case checks the exception type and a phrase of the fix.
"""
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import IMAGES, LABELS, tiny_cnn

from tutorlib import (
    analysis,
    check,
    data,
    evaluation,
    inputs,
    losses,
    models,
    seeds,
    surgery,
    train,
)

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
    "predict on images in 0..255": (lambda: evaluation.predict(tiny_cnn(), IMAGES * 255), ValueError, "Divide uint8"),
    "predict with batch_size 0": (lambda: evaluation.predict(tiny_cnn(), IMAGES, batch_size=0), ValueError, "positive"),
    "per_class_accuracy with labels beyond the head": (
        lambda: analysis.per_class_accuracy(tiny_cnn(), (IMAGES, LABELS + 3)), ValueError, "replace_head"),
    "per_class_accuracy on images in 0..255": (
        lambda: analysis.per_class_accuracy(tiny_cnn(), (IMAGES * 255, LABELS)), ValueError, "[0, 1]"),
    "per_class_accuracy with too few class names": (
        lambda: analysis.per_class_accuracy(tiny_cnn(), (IMAGES, LABELS), ["a", "b"]), ValueError, "class_names"),
    "extract_features with pool='max'": (lambda: evaluation.extract_features(tiny_cnn(), IMAGES, pool="max"),
                                         ValueError, "'avg', 'flatten'"),
    "probe score on features of another width": (
        lambda: evaluation.linear_probe(torch.randn(30, 4), LABELS).score(torch.randn(30, 5), LABELS),
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


def test_numpy_labels_and_float64_images_are_converted_not_refused():
    images, labels = IMAGES.double().numpy(), LABELS.numpy().astype(np.int32)
    split = data.stratified_split(labels, (0.5, 0.5))
    assert sum(len(p) for p in split) == 30 and len(set(torch.cat(split).tolist())) == 30
    history = train.fit(tiny_cnn(), (images, labels), steps=2, lr=1e-3, progress=False)
    assert history.steps_run == 2
    model = tiny_cnn()
    converted = evaluation.evaluate(model, (images, labels))
    assert converted == evaluation.evaluate(model, (IMAGES, LABELS))  # the same numbers as float32 / int64


RAW_CASES = {
    "seed None": (lambda: data.few_shot(LABELS, 2, seed=None), TypeError, "fixed number"),
    "seed 2.5": (lambda: seeds.seed_everything(2.5), TypeError, "whole number"),
    "seed -1": (lambda: data.stratified_split(LABELS, seed=-1), ValueError, "seed"),
    "per_class 2.0": (lambda: data.few_shot(LABELS, 2.0), ValueError, "whole number"),
    "fractions as a string": (lambda: data.stratified_split(LABELS, "0.8"), ValueError, "sequence"),
    "empty labels": (lambda: data.few_shot(torch.tensor([], dtype=torch.long), 1), ValueError, "empty"),
    "labels as a list": (lambda: data.few_shot([0, 1, 1], 1), TypeError, "torch.as_tensor"),
    "evaluate on no images": (lambda: evaluation.evaluate(tiny_cnn(), (IMAGES[:0], LABELS[:0])), ValueError, "empty"),
    "evaluate on images alone": (lambda: evaluation.evaluate(tiny_cnn(), IMAGES), TypeError, "(images, labels)"),
    "7 x 7 images into the course CNN": (lambda: evaluation.predict(models.small_cnn(4, 4, 3), torch.rand(2, 1, 7, 7)),
                                         ValueError, "too small"),
    "RGB images into the grey CNN": (lambda: evaluation.predict(tiny_cnn(), torch.rand(2, 3, 12, 12)),
                                     ValueError, "images.mean(1, keepdim=True)"),
    "a single image without a batch axis": (lambda: evaluation.predict(tiny_cnn(), torch.rand(12, 12)), ValueError, "[None]"),
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
    "linear probe of one class": (lambda: evaluation.linear_probe(torch.randn(10, 3), torch.zeros(10, dtype=torch.long)),
                                  ValueError, "at least 2 classes"),
    "linear probe of one sample": (lambda: evaluation.linear_probe(torch.randn(1, 3), LABELS[:1]), ValueError, "2 rows"),
    "linear probe with string labels": (lambda: evaluation.linear_probe(torch.randn(3, 3), np.array(["a", "b", "c"])),
                                        TypeError, ""),
    "load_digits at 4 pixels": (lambda: data.load_digits(4), ValueError, "image_size"),
    "image folder at size 0": (lambda: data.load_image_folder(".", 0), ValueError, "image_size"),
    "$TUTORLIB_THREADS=two": (lambda: _threads_env("two"), ValueError, "whole number of threads"),
    "a DataLoader instead of tensors": (
        lambda: evaluation.evaluate(tiny_cnn(), torch.utils.data.DataLoader(torch.utils.data.TensorDataset(IMAGES, LABELS))),
        TypeError, "(images, labels) pair"),
    "image grid with too few class names": (lambda: __import__("tutorlib").plots.image_grid(IMAGES[:4], LABELS[:4], ["a"]),
                                            ValueError, "class_names"),
    "an explorer control without options": (lambda: __import__("tutorlib").plots.explorer(lambda **k: None, depth=[]),
                                            ValueError, "non-empty list"),
    "show() of a number": (lambda: __import__("tutorlib").show(3), TypeError, "tutorlib.show(train.fit)"),
    "load_halves of a profile name": (lambda: __import__("tutorlib").transfer.load_halves("quick"), TypeError,
                                      "profile.current('quick')"),
    "digits at an unknown size": (lambda: data._load_dataset("digits", "train", "huge"), ValueError, "'small', 'full'"),
    # cutting a model and fine-tuning its top on cached activations
    "finetune with cache='yes'": (lambda: __import__("tutorlib").recipes.finetune(
        tiny_cnn(), (IMAGES, LABELS), steps=1, lr=1e-3, frozen_groups=1, cache="yes"), TypeError, "True or False"),
    "lite0 with pretrained='no'": (lambda: __import__("tutorlib").models.lite0(pretrained="no"), TypeError,
                                   "True or False"),
    "split of a one-layer Sequential": (lambda: models.split(nn.Sequential(nn.Flatten(), nn.Linear(144, 3)), 1),
                                        ValueError, "no bottom to freeze"),
    "split through the head": (lambda: models.split(tiny_cnn(), "head"), ValueError, "head must stay on top"),
    "split at an unknown group": (lambda: models.split(tiny_cnn(), "blocks.4"), ValueError, "block1"),
    "probe_by_stage at the head": (lambda: __import__("tutorlib").transfer.probe_by_stage(
        tiny_cnn(), (IMAGES, LABELS), (IMAGES, LABELS), ["head"]), ValueError, "stages, input to head"),
    "positive_control of a plain Sequential": (lambda: __import__("tutorlib").sources.positive_control(
        nn.Sequential(nn.Flatten(), nn.Linear(144, 3)), None, 0), TypeError, "load_halves"),
    "derive with an empty purpose": (lambda: __import__("tutorlib").seeds.derive(0, ""), ValueError, "non-empty string"),
    "group_gradient_norms before backward": (lambda: analysis.group_gradient_norms(tiny_cnn()), ValueError, "backward()"),
    "fit on activations with NaN": (lambda: train.fit(nn.Flatten(), (torch.full((4, 2, 2, 2), float("nan")), LABELS[:4]),
                                                      steps=1, lr=1e-3, activations=True), ValueError, "NaN"),
    # round three's held-out inputs
    "mean_sd of a NaN": (lambda: check.mean_sd([0.8, float("nan")]), ValueError, "diverged or missing run"),
    "per_seed with a missing run": (lambda: check.per_seed(pd.DataFrame({"seed": [0, 0, 1], "arm": ["a", "b", "a"],
                                                                         "v": [1.0, 2.0, 3.0]}), by="arm", value="v"),
                                    ValueError, "[(1, 'b')]. A missing run is not a diverged one"),
    "$TUTORLIB_THREADS=999": (lambda: _threads_env("999"), ValueError, "more threads than this machine"),
    "finetune on labels 5-7": (lambda: __import__("tutorlib").recipes.finetune(
        tiny_cnn(), (IMAGES[:9], torch.tensor([5, 6, 7] * 3)), steps=1, lr=1e-3), ValueError, "select_classes"),
    "transplant from a masked (pruned) network": (lambda: surgery.transplant(
        surgery.prune_magnitude(tiny_cnn(), 0.5), tiny_cnn(), 1), ValueError, "permanent=True"),
    "count_flops of (12, 12)": (lambda: analysis.count_flops(tiny_cnn(), (12, 12)), ValueError, "pass (C, H, W), e.g. (1, 12, 12)"),
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


def test_inputs_contract_examples():
    assert inputs.labels(np.array([2, 0, 1], dtype=np.int32)).dtype == torch.long
    assert inputs.images(torch.rand(2, 1, 4, 4, dtype=torch.float64)).dtype == torch.float32
    assert inputs.input_shape((1, 28, 28)) == (1, 1, 28, 28)


def test_numpy_numbers_are_numbers_everywhere():
    """A value read from a DataFrame is a NumPy number: as good as a Python one for a threshold or a depth."""
    a = pd.Series({u: 0.8 + 0.01 * u for u in range(6)})
    assert check.effect(a, a - 0.05, "numpy threshold", min_effect=np.float32(0.01)).estimate == pytest.approx(0.05)
    model = surgery.freeze(tiny_cnn(), np.int64(1))
    assert not any(p.requires_grad for p in surgery.layer_groups(model)[0][1].parameters())
