"""The A -> B transfer protocol the chapters share, so notebooks show the idea and not the plumbing.

Fashion-MNIST is cut into two disjoint halves: A = classes 0-4 (T-shirt/top, Trouser, Pullover,
Dress, Coat) is the *source* task, B = classes 5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot) the
*target*. A model is pretrained on A (or on something else), then judged by how well it learns B
from a few labels per class: by a linear probe on frozen features, or by fine-tuning.

Two pitfalls from the course's pilot runs are built in (here and in `tutorlib.recipes`, the ways to adapt
a model): budgets are compared at a fixed number of optimisation *steps*, not epochs (otherwise the
smallest set trains longest); the linear probe trains a fresh head to convergence (L-BFGS), not for a
few steps at a backbone-sized learning rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import pandas as pd
import torch
import torch.nn as nn

from . import inputs
from . import profile as profiles
from .data import HALF_A, HALF_B, Dataset, few_shot, load_fashion_mnist, select_classes, take
from .models import fresh_cnn, split
from .surgery import layer_groups
from .evaluation import evaluate, extract_features, linear_probe, predict
from .train import History, TrainingDiverged, fit


@dataclass
class Halves:
    """Train and test sets of the source half A and the target half B, relabelled 0-4 each."""

    a_train: Dataset
    a_test: Dataset
    b_train: Dataset
    b_test: Dataset

    def target(self, per_class: int, seed: int) -> Dataset:
        """The few-shot target of a run: `per_class` labelled images of each B class, drawn by `seed`."""
        return take(self.b_train, few_shot(self.b_train[1], per_class, seed=seed))

    def b_test_sample(self, per_class: int) -> Dataset:
        """A fixed, stratified part of B's test set, for models too slow to score on all of it (Lite0)."""
        per_class = min(inputs.integer(per_class, "per_class", 1), int(self.b_test[1].bincount().min()))
        return take(self.b_test, few_shot(self.b_test[1], per_class, seed=0))


def load_halves(prof: profiles.Profile | None = None) -> Halves:
    """A and B at the size the run profile asks for (a stratified, fixed subset of each split)."""
    prof = prof or profiles.current()
    if not isinstance(prof, profiles.Profile):
        raise TypeError(f"load_halves takes a Profile such as profile.current('quick'), got {prof!r}.")
    train, test = load_fashion_mnist("train", prof.data_size), load_fashion_mnist("test", prof.data_size)
    train = take(train, few_shot(train[1], prof.train_per_class, seed=0))
    test = take(test, few_shot(test[1], prof.test_per_class, seed=0))
    return Halves(select_classes(train, HALF_A), select_classes(test, HALF_A),
                  select_classes(train, HALF_B), select_classes(test, HALF_B))


def pretrain(source: Dataset, *, steps: int, width: int = 16, depth: int = 4, lr: float = 3e-3,
             batch_size: int = 128, weight_decay: float = 5e-4, seed: int = 0) -> nn.Module:
    """Train a fresh course CNN on `source` for a fixed number of steps (any number of classes)."""
    model = fresh_cnn(width, depth, int(inputs.class_dataset(source, "source")[1].max()) + 1, seed)
    fit(model, source, steps=steps, lr=lr, batch_size=batch_size, weight_decay=weight_decay, seed=seed,
        progress=False)
    return model.eval()


def probe_accuracy(model: nn.Module, target_train: Dataset, target_test: Dataset,
                   test_features: torch.Tensor | None = None) -> float:
    """Linear-probe accuracy: frozen features of `model`, a logistic-regression head fit to convergence."""
    probe = linear_probe(extract_features(model, target_train), target_train[1])
    feats = test_features if test_features is not None else extract_features(model, target_test)
    return probe.score(feats, target_test[1])


def split_off_validation(target: Dataset, per_class: int, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Hold `per_class` images of every class out of a training set, to choose a recipe without the test set."""
    labels = inputs.class_dataset(target, "target")[1]
    val_index = few_shot(labels, inputs.integer(per_class, "per_class", 1), seed=seed)
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val_index] = False
    if keep.sum() == 0 or len(labels[keep].unique()) < len(labels.unique()):
        raise ValueError(f"Holding out {per_class} per class leaves a class with no training images; "
                         f"hold out fewer (per_class < the images per class).")
    return take(target, keep.nonzero().flatten()), take(target, val_index)


class Choice(NamedTuple):
    """What `choose_on_validation` picked: the option, the model trained with it, and every option's score."""

    option: object
    model: nn.Module
    scores: dict


def choose_on_validation(train_fn: Callable[[Dataset, object], nn.Module | tuple[nn.Module, History]], target: Dataset, options, *,
                         validation: Dataset | None = None, val_per_class: int = 10, seed: int = 0) -> Choice:
    """The option whose model scores best on held-out labels (never the test set), that model, and every score.

    Why: a recipe judged at one fixed setting may be judged where nobody would train; a learner picks the
    learning rate (or freeze depth, ...) on held-out labels, and so can a comparison. train_fn(train_part,
    option) returns a trained model, or a recipe's (model, History). Without `validation`, `val_per_class` images per class are held out of
    `target` (drawn from `seed`) and the rest trains. The first of the best wins a tie, as a learner reading
    a table would pick; an option whose run diverges scores NaN and is never picked.
    """
    if not callable(train_fn):
        raise TypeError(f"train_fn must be a function (train_part, option) -> model, got {type(train_fn).__name__}.")
    if isinstance(options, (str, bytes, int, float)):
        raise ValueError(f"options must be a list, e.g. learning rates (3e-4, 1e-3, 3e-3), got {options!r}.")
    options = list(options)
    if not options:
        raise ValueError("choose_on_validation needs at least one option, e.g. learning rates (3e-4, 1e-3, 3e-3).")
    if validation is None:
        target, validation = split_off_validation(target, val_per_class, seed)
    inputs.class_dataset(validation, "validation")
    scores, best, diverged = {}, None, None
    for option in options:
        try:
            model = train_fn(target, option)
        except TrainingDiverged as err:
            scores[option], diverged = float("nan"), err
            continue
        model = model[0] if isinstance(model, tuple) else model
        if not all(torch.isfinite(p).all() for p in inputs.module(model, "what train_fn returned").parameters()):
            scores[option] = float("nan")  # NaN weights predict class 0 everywhere: a finite accuracy, a wrong winner
            continue
        scores[option] = evaluate(model, validation)["accuracy"]
        if best is None or scores[option] > scores[best.option]:
            best = Choice(option, model, scores)
    if best is None:
        raise TrainingDiverged(f"Every option in {options} diverged (or returned NaN weights): add smaller learning "
                               f"rates (or safer options).", diverged.history if diverged else History()) from diverged
    return best


def probe_by_stage(model: nn.Module, target_train: Dataset, target_test: Dataset,
                   stages: list[str] | None = None) -> pd.DataFrame:
    """Linear-probe accuracy on the pooled output of each layer group: where are the features that transfer?

    Yosinski et al. 2014 asked it by freezing; a probe per stage asks it from one forward pass through the
    deepest stage asked for, each stage's output pooled on the way (forward hooks).
    """
    names = [name for name, _ in layer_groups(model)][:-1]
    stages = names if stages is None else [stages] if isinstance(stages, str) else list(stages)
    unknown = [s for s in stages if s not in names]
    if unknown:
        raise ValueError(f"Unknown stage(s) {unknown}; this model's stages, input to head: {names}.")
    train_x, train_y = inputs.class_dataset(target_train, "target_train")
    test_x, test_y = inputs.class_dataset(target_test, "target_test")
    features = {stage: [] for stage in stages}  # stage -> [train features, test features]
    bottom, _ = split(model, max(stages, key=names.index))
    ends = {stage: bottom[len(split(model, stage)[0]) - 1] for stage in stages}  # the module a stage's probe reads
    for x in (train_x, test_x):
        pooled = {stage: [] for stage in stages}
        hooks = [end.register_forward_hook(lambda _m, _i, out, s=stage: pooled[s].append(out.flatten(2).mean(2)))
                 for stage, end in ends.items()]
        try:
            predict(bottom, x)
        finally:
            for hook in hooks:
                hook.remove()
        for stage in stages:
            features[stage].append(torch.cat(pooled[stage]).float())
    rows = []
    for stage in stages:
        train_f, test_f = features[stage]
        probe = linear_probe(train_f, train_y)
        rows.append({"stage": stage, "features": train_f.shape[1], "probe accuracy": probe.score(test_f, test_y)})
    return pd.DataFrame(rows)
