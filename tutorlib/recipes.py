"""Fine-tuning recipes: each a few named steps over layer groups, to read with `tutorlib.show`.

In the spirit of fastai's `fine_tune`: a recipe says which groups train, with which rates and which loss,
and leaves the loop to `train.fit`. Every recipe has one signature and one result:

    recipe(model, target, *, steps, lr, seed=0, **options) -> (adapted model in eval mode, its History)

and takes the same first steps: a copy of `model` (the pretrained network is never changed) with every
weight trainable again (`surgery.thaw`: a freeze left from an earlier cell cannot hold part of it still),
and a fresh head for the target's classes drawn from `seed`. Then it freezes what it freezes and fits.
`RECIPES` lists them by the name the chapters print, so a chapter picks a method by name.

    linear_probe          a head fit to convergence on frozen features (LP)
    finetune              every group trains, or all but the first `frozen_groups` (FT)
    discriminative_rates  every group trains, each at a rate 2.6x below the group above it (Howard & Ruder 2018)
    gradual_unfreezing    one more group per stage, from the head down (Howard & Ruder 2018)
    lp_ft                 the linear probe first, then full fine-tuning from it (Kumar et al. 2022)
    l2sp                  full fine-tuning with the body pulled towards its pretrained weights (Li et al. 2018)
    distill               a student trained on a teacher's outputs instead of labels (Hinton et al. 2015)

`distill` has the same signature and result, plus the `teacher`; it is not in `RECIPES` because it
needs one.
"""
from __future__ import annotations

import copy
import time
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import anatomy, inputs, losses, surgery, train
from .data import Dataset
from .evaluation import extract_features, linear_probe as fit_probe, predict
from .models import split
from .seeds import seed_everything
from .train import History

__all__ = ["RECIPES", "linear_probe", "finetune", "discriminative_rates", "gradual_unfreezing", "lp_ft", "l2sp",
           "distill"]

Recipe = Callable[..., tuple[nn.Module, History]]


def _start(model: nn.Module, target: Dataset, seed: int) -> nn.Module:
    """A trainable copy of `model` with a fresh classifier for the target's classes, its weights drawn from `seed`."""
    labels = inputs.class_dataset(target, "target")[1]
    lowest, num_classes = int(labels.min()), int(labels.max()) + 1
    if lowest > 0:
        raise ValueError(f"The target's labels run from {lowest} to {num_classes - 1}, but a new head has one output "
                         f"per class from 0: {lowest} of its {num_classes} outputs would never be trained. Relabel "
                         f"them from 0, e.g. data.select_classes(dataset, {sorted(set(labels.tolist()))}).")
    net = surgery.thaw(copy.deepcopy(inputs.module(model)))
    seed_everything(seed)
    anatomy.reset_head(net, num_classes)
    return net


def _fit(net: nn.Module, target: Dataset, *, steps: int, lr: float, seed: int, batch_size: int = 32,
         cached_groups: int = 0, **fit_options) -> tuple[nn.Module, History]:
    """`train.fit` on `net` (or, with `cached_groups`, on its top over the frozen bottom's output); net in eval."""
    trained, data = net, target
    if cached_groups:
        trained, data, fit_options = _cached_top(net, target, cached_groups, fit_options)
    history = train.fit(trained, data, steps=steps, lr=lr, batch_size=batch_size, seed=seed, progress=False,
                        **fit_options)
    return net.eval(), history


def _cached_top(net: nn.Module, target: Dataset, frozen_groups: int, fit_options: dict):
    """The trainable top of `net` and the frozen bottom's output for `target`: the bottom runs once, not every step."""
    for option in ("param_groups", "val"):
        if fit_options.get(option) is not None:
            raise ValueError(f"cache=True trains the top on cached activations, so fit's {option}= (made for "
                             f"the whole model and images) does not apply; drop cache=True to use it.")
    tensors = inputs.dataset(target, "target")
    bottom, top = split(net, frozen_groups, probe=tensors[0][:8])
    return top, (predict(bottom, tensors[0]).clone(), *tensors[1:]), {**fit_options, "activations": True}


def _freeze(net: nn.Module, frozen_groups: int, train_bn: bool, freeze_bn: bool, cache: bool) -> int:
    """Freeze what the options say; return how many groups may be cached (0: none)."""
    for name, value in dict(train_bn=train_bn, freeze_bn=freeze_bn, cache=cache).items():
        inputs.flag(value, name)
    if freeze_bn and train_bn:
        raise ValueError("freeze_bn=True holds every BatchNorm fixed and train_bn=True trains the frozen groups' "
                         "BatchNorm: choose one.")
    if cache and (not frozen_groups or train_bn):
        raise ValueError("cache=True needs frozen_groups > 0 and train_bn=False: only a bottom that never "
                         "changes can be run once. Drop cache=True to train BatchNorm in frozen groups.")
    if frozen_groups:
        surgery.freeze(net, frozen_groups, train_bn=train_bn)
    if freeze_bn:
        surgery.freeze_bn(net)
    return frozen_groups if cache else 0


def linear_probe(model: nn.Module, target: Dataset, *, steps: int | None = None, lr: float | None = None,
                 seed: int = 0) -> tuple[nn.Module, History]:
    """LP: the body frozen as it is; the head is a logistic regression fit to convergence (L-BFGS) on its features.

    The fair "train only the last layer" arm, and LP-FT's first stage. `steps` and `lr` are accepted for the
    one signature and not used: L-BFGS runs until it converges. The History holds one epoch, the probe's final
    training loss (no per-step entries: L-BFGS takes no steps of a budget) and the seconds it took.
    """
    started = time.perf_counter()
    images, labels = inputs.class_dataset(target, "target")
    features = extract_features(inputs.module(model), images)
    probe = fit_probe(features, labels, seed=seed)
    net = surgery.thaw(copy.deepcopy(model))
    anatomy.reset_head(net, int(labels.max()) + 1).load_state_dict(probe.as_linear().state_dict())
    with torch.inference_mode():
        loss = float(F.cross_entropy(probe(features), labels))
    return net.eval(), History(train_loss=[loss], stopped_reason="completed (L-BFGS)",
                               seconds=time.perf_counter() - started)


def finetune(model: nn.Module, target: Dataset, *, steps: int, lr: float, seed: int = 0, frozen_groups: int = 0,
             train_bn: bool = False, freeze_bn: bool = False, cache: bool = False,
             **options) -> tuple[nn.Module, History]:
    """FT: a fresh head, then every group trains (or all but the first `frozen_groups`) for `steps` steps.

    train_bn: the frozen groups' BatchNorm layers still adapt (fastai). freeze_bn: every BatchNorm holds its
    pretrained statistics, scale and shift (detectron2's FrozenBatchNorm2d). cache: the frozen groups run once
    over the target and the top trains on their output (`models.split`), the same as freezing them without
    their forward pass at every step. Other options go to `train.fit` (batch_size=32 by default).
    """
    net = _start(model, target, seed)
    cached = _freeze(net, frozen_groups, train_bn, freeze_bn, cache)
    return _fit(net, target, steps=steps, lr=lr, seed=seed, cached_groups=cached, **options)


def discriminative_rates(model: nn.Module, target: Dataset, *, steps: int, lr: float, seed: int = 0,
                         **options) -> tuple[nn.Module, History]:
    """Every group trains; the head at `lr`, each group below it at the rate above divided by 2.6."""
    net = _start(model, target, seed)
    groups = surgery.discriminative_param_groups(net, lr)
    return _fit(net, target, steps=steps, lr=lr, seed=seed, param_groups=groups, **options)


def gradual_unfreezing(model: nn.Module, target: Dataset, *, steps: int, lr: float, seed: int = 0,
                       discriminative: bool = False, **options) -> tuple[nn.Module, History]:
    """Stage k trains the top k groups (head first) for steps // (number of groups) steps each."""
    inputs.flag(discriminative, "discriminative")
    net = _start(model, target, seed)
    n_groups = len(surgery.layer_groups(net))
    if inputs.integer(steps, "steps", 1) < n_groups:
        raise ValueError(f"gradual_unfreezing gives each of the {n_groups} stages steps // {n_groups} steps: "
                         f"pass steps >= {n_groups}, got {steps}.")
    surgery.freeze(net, n_groups - 1)
    stages = []
    for stage in range(n_groups):
        surgery.unfreeze(net, n_groups - 1 - stage)
        groups = surgery.discriminative_param_groups(net, lr) if discriminative else None
        stages.append(_fit(net, target, steps=steps // n_groups, lr=lr, seed=seed, param_groups=groups,
                           **options)[1])
    return net.eval(), History.concat(stages)


def lp_ft(model: nn.Module, target: Dataset, *, steps: int, lr: float, seed: int = 0, frozen_groups: int = 0,
          train_bn: bool = False, freeze_bn: bool = False, cache: bool = False,
          **options) -> tuple[nn.Module, History]:
    """LP-FT: fit the head first (linear probe), so fine-tuning starts from a head that already fits.

    The fine-tuning stage takes `finetune`'s options (frozen groups, BatchNorm, the cached bottom).
    """
    net, _ = linear_probe(model, target, seed=seed)
    cached = _freeze(net, frozen_groups, train_bn, freeze_bn, cache)
    return _fit(net, target, steps=steps, lr=lr, seed=seed, cached_groups=cached, **options)


def l2sp(model: nn.Module, target: Dataset, *, steps: int, lr: float, seed: int = 0, alpha: float = 0.1,
         **options) -> tuple[nn.Module, History]:
    """L2-SP: cross-entropy + alpha/2 * ||body - pretrained body||^2, so the body stays near what it learned."""
    inputs.positive(alpha, "alpha (the weight of the pull towards the pretrained weights)")
    net, start = _start(model, target, seed), losses.snapshot(model)

    def loss_fn(logits, labels):
        return F.cross_entropy(logits, labels) + losses.l2sp_penalty(net, start, alpha)

    return _fit(net, target, steps=steps, lr=lr, seed=seed, loss_fn=loss_fn, **options)


def distill(model: nn.Module, target: Dataset | torch.Tensor, *, steps: int, lr: float, seed: int = 0,
            teacher: nn.Module, temperature: float = 4.0, hard_labels: bool = False,
            batch_size: int = 128) -> tuple[nn.Module, History]:
    """Train a copy of the student `model` on the teacher's view of the target's images: its probabilities softened
    at `temperature`, or (hard_labels) only its top class. The target's labels, if any, are never read."""
    inputs.flag(hard_labels, "hard_labels")
    images = inputs.images(target, "target") if isinstance(target, torch.Tensor) else inputs.dataset(target)[0]
    teacher_logits = predict(inputs.module(teacher, "teacher"), images)
    student = surgery.thaw(copy.deepcopy(inputs.module(model)))

    def loss_fn(logits, labels, t_logits):
        if hard_labels:
            return F.cross_entropy(logits, labels)
        return losses.distillation_loss(logits, t_logits, labels, temperature, alpha=1.0)

    transfer_set = (images, teacher_logits.argmax(1), teacher_logits)  # images, teacher's labels, its logits
    return _fit(student, transfer_set, steps=steps, lr=lr, seed=seed, batch_size=batch_size, loss_fn=loss_fn)


RECIPES: dict[str, Recipe] = {
    "LP": linear_probe,
    "FT": finetune,
    "discriminative rates": discriminative_rates,
    "gradual unfreezing": gradual_unfreezing,
    "LP-FT": lp_ft,
    "L2-SP": l2sp,
}
