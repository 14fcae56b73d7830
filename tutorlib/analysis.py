"""Measurements the chapters report: representation similarity, gradients, transferability, cost.

Each function answers one question about a model and returns plain numbers (floats, dicts,
pandas objects) so that notebooks can put them in tables and `check.expect` them.
"""
from __future__ import annotations

import math
import statistics
import time

import pandas as pd
import torch
import torch.nn as nn

from . import inputs
from ._execution import input_mismatch, is_shape_error, modes_kept
from .evaluation import predict
from .inputs import Data
from .losses import check_reference, named_weights
from .surgery import layer_groups


# ----------------------------------------------------------------------------- representations
def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear centered kernel alignment (Kornblith et al. 2019) between two N x D activation sets.

    1 means the representations match up to rotation and isotropic scaling; 0 means unrelated.
    """
    x, y = inputs.features(x, "x", min_rows=2).double(), inputs.features(y, "y", min_rows=2).double()
    if len(x) != len(y):
        raise ValueError(f"CKA compares the same N examples: got {len(x)} and {len(y)} rows.")
    x, y = x - x.mean(0), y - y.mean(0)
    for name, f in (("x", x), ("y", y)):
        if float(f.abs().max()) == 0.0:
            raise ValueError(f"{name} is the same for every example (constant features), so CKA is undefined. "
                             f"Check that the layer is not dead (all zeros after ReLU) or the model untrained.")
    if max(x.shape[1], y.shape[1]) > len(x):  # wide (flattened conv) features: the N x N Gram form is cheaper
        gram_x, gram_y = x @ x.T, y @ y.T  # ||Y^T X||^2 = <X X^T, Y Y^T>
        return float((gram_x * gram_y).sum() / (gram_x.norm() * gram_y.norm()))
    cross = (y.T @ x).square().sum()
    return float(cross / ((x.T @ x).norm() * (y.T @ y).norm()))


def weight_distance(model: nn.Module, reference: dict[str, torch.Tensor]) -> pd.Series:
    """L2 distance of each layer group's parameters from `reference` (take it with `losses.snapshot`).

    A group with no parameter of the reference's shape (a head re-sized by `replace_head`) gets NaN.
    """
    current = {id(p): (n, w) for n, p, w in named_weights(inputs.module(model))}  # a pruned layer: its masked weight
    params = dict(current.values())
    shared = [n for n, p in params.items() if isinstance(reference, dict) and n in reference
              and getattr(reference[n], "shape", None) == p.shape]
    if not shared:
        raise ValueError("reference has none of the model's parameter names: take it from the same architecture "
                         "with losses.snapshot(pretrained_model).")
    check_reference(model, reference, shared)
    out = {}
    for group, module in layer_groups(model):
        pairs = [current[id(p)] for p in module.parameters() if id(p) in current]
        diffs = [(p.detach() - reference[n]).square().sum() for n, p in pairs
                 if n in reference and reference[n].shape == p.shape]
        out[group] = float(torch.stack(diffs).sum().sqrt()) if diffs else float("nan")
    return pd.Series(out, name="distance")


# ----------------------------------------------------------------------------- gradients
def gradient_norms(model: nn.Module) -> pd.Series:
    """L2 norm of the weight gradient of every layer that has one, input side first (after backward)."""
    # A pruned layer trains `weight_orig` (its `weight` is weight_orig * mask), so its gradient is there.
    weights = {name: getattr(m, "weight_orig", getattr(m, "weight", None)) for name, m in inputs.module(model).named_modules()}
    norms = {name: float(w.grad.norm()) for name, w in weights.items()
             if isinstance(w, torch.Tensor) and w.grad is not None
             and w.ndim > 1}  # conv and linear weights; norm layers' scales are left out
    if not norms:
        raise ValueError("No layer has a gradient yet: run a forward pass and `loss.backward()` first "
                         "(and check that the weights have requires_grad=True).")
    return pd.Series(norms, name="grad_norm")


def group_gradient_norms(model: nn.Module) -> pd.Series:
    """L2 norm of each layer group's whole gradient, input side first: where a step would move the network."""
    norms = {}
    for name, group in layer_groups(inputs.module(model)):
        grads = [p.grad.flatten() for p in group.parameters() if p.grad is not None]
        if grads:
            norms[name] = float(torch.cat(grads).norm())
    if not norms:
        raise ValueError("No layer group has a gradient yet: run a forward pass and `loss.backward()` first "
                         "(and check that the weights have requires_grad=True).")
    return pd.Series(norms, name="grad_norm")


# ----------------------------------------------------------------------------- transferability
def _logme_one(f: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor, v: torch.Tensor,
               max_iter: int = 100, tol: float = 1e-6) -> tuple[float, float, float]:
    """Evidence maximisation for one target column: returns (evidence / N, alpha, beta)."""
    n, d = f.shape
    proj = v.T @ (f.T @ y)  # V^T F^T y, in the eigenbasis of F^T F
    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        gamma = float((beta * sigma / (alpha + beta * sigma)).sum())
        m = v @ (beta * proj / (alpha + beta * sigma))  # posterior mean of the weights
        m2 = float(m @ m)
        res2 = float((y - f @ m).square().sum())
        new_alpha, new_beta = gamma / m2, (n - gamma) / res2
        done = abs(new_alpha / new_beta - alpha / beta) <= tol * alpha / beta
        alpha, beta = new_alpha, new_beta
        if done:
            break
    m = v @ (beta * proj / (alpha + beta * sigma))
    m2, res2 = float(m @ m), float((y - f @ m).square().sum())
    evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - n / 2 * math.log(2 * math.pi)
                - beta / 2 * res2 - alpha / 2 * m2 - 0.5 * float(torch.log(alpha + beta * sigma).sum()))
    return evidence / n, alpha, beta


def logme(features: torch.Tensor, labels: torch.Tensor) -> float:
    """LogME (You et al. 2021): log marginal evidence per sample of a Bayesian linear model on features.

    Higher means the features explain the one-hot labels better, without any fine-tuning. Each class
    column gets its own prior precision alpha and noise precision beta, set by the fixed-point
    evidence-maximisation updates of the paper's Algorithm 1; the score is the mean over classes.
    """
    f = inputs.features(features, min_rows=2).double()
    labels = inputs.labels(labels)
    if len(labels) != len(f):
        raise ValueError(f"{len(f)} feature rows but {len(labels)} labels: take the same examples.")
    classes = torch.unique(labels)
    if len(classes) < 2:
        raise ValueError(f"LogME needs at least 2 classes; all {len(labels)} labels are {int(classes[0])}.")
    if float((f - f.mean(0)).abs().max()) == 0.0:
        raise ValueError("The features are the same for every example, so LogME is undefined (no evidence either "
                         "way). Check that the layer is not dead or the model untrained.")
    sigma, v = torch.linalg.eigh(f.T @ f)
    sigma = sigma.clamp_min(0)
    scores = [_logme_one(f, (labels == c).double(), sigma, v)[0] for c in classes]
    return float(sum(scores) / len(scores))


# ----------------------------------------------------------------------------- cost
def count_flops(model: nn.Module, input_shape) -> int:
    """FLOPs of one forward pass (a multiply-add counts 2), from `torch.utils.flop_counter`.

    input_shape: ``(C, H, W)`` for one image, or a full ``(N, C, H, W)``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    shape = inputs.input_shape(input_shape)
    counter = FlopCounterMode(display=False)
    with modes_kept(inputs.module(model)):
        model.eval()
        with counter, torch.no_grad():
            try:
                model(torch.zeros(shape, device=_device(model)))
            except (RuntimeError, ValueError) as err:  # BatchNorm says "expected 4D input" with a ValueError
                if not is_shape_error(err) and "input" not in str(err):
                    raise
                if len(shape) == 3:
                    raise ValueError(f"input_shape {tuple(input_shape)} has no channel axis, so it was read as "
                                     f"{shape[1:]} one example of {shape[1]} channels: pass (C, H, W), e.g. "
                                     f"(1, {', '.join(map(str, shape[1:]))}).") from err
                raise input_mismatch(model, torch.zeros(shape), err) from err
    return int(counter.get_total_flops())


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.zeros(())).device


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in inputs.module(model).parameters())


def latency(model: nn.Module, input_shape, batch_size: int = 1, repeats: int = 15, warmup: int = 3) -> dict:
    """Wall-clock seconds per forward pass at `batch_size`: median, min and max of `repeats` runs."""
    x = torch.rand(inputs.input_shape(input_shape, inputs.integer(batch_size, "batch_size", 1)),
                   device=_device(inputs.module(model)))
    repeats, warmup = inputs.integer(repeats, "repeats", 1), inputs.integer(warmup, "warmup", 0)
    times = []
    with modes_kept(model), torch.inference_mode():
        model.eval()
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "batch_size": x.shape[0], "threads": torch.get_num_threads()}


def sparsity(model: nn.Module) -> float:
    """Fraction of conv and linear weights that are exactly zero (after `surgery.prune_magnitude`)."""
    weights = [m.weight for m in inputs.module(model).modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not weights:
        raise ValueError(f"{type(model).__name__} has no Conv2d or Linear weights to measure.")
    return float(sum((w == 0).sum() for w in weights) / sum(w.numel() for w in weights))


# ----------------------------------------------------------------------------- accuracy breakdown
def per_class_accuracy(model: nn.Module, data: Data, class_names=None) -> pd.Series:
    """Accuracy on each class separately: where a biased model pays for its majority classes."""
    images, labels = inputs.class_dataset(data)
    logits = predict(model, images)
    labels = inputs.labels(labels, num_classes=logits.shape[1])
    classes = torch.unique(labels).tolist()
    if class_names is not None and len(class_names) <= max(classes):
        raise ValueError(f"class_names has {len(class_names)} names but the labels go up to {max(classes)}.")
    correct = logits.argmax(1) == labels
    acc = {(class_names[c] if class_names else c): float(correct[labels == c].float().mean()) for c in classes}
    return pd.Series(acc, name="accuracy")


def pareto_front(cost, score) -> list[bool]:
    """Which models are Pareto-optimal: no other model is both cheaper (or equal) and better."""
    cost, score = [float(c) for c in cost], [float(s) for s in score]
    if len(cost) != len(score) or not cost:
        raise ValueError(f"cost and score must be non-empty and of one length, got {len(cost)} and {len(score)}.")
    if not all(math.isfinite(v) for v in cost + score):
        raise ValueError("cost and score must be finite: drop the models whose run diverged (NaN) first.")
    return [not any((c2 <= c and s2 > s) or (c2 < c and s2 >= s) for c2, s2 in zip(cost, score))
            for c, s in zip(cost, score)]
