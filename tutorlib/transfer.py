"""The A -> B transfer protocol the chapters share, so notebooks show the idea and not the plumbing.

Fashion-MNIST is cut into two disjoint halves: A = classes 0-4 (T-shirt/top, Trouser, Pullover,
Dress, Coat) is the *source* task, B = classes 5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot) the
*target*. A model is pretrained on A (or on something else), then judged by how well it learns B
from a few labels per class: by a linear probe on frozen features, or by fine-tuning.

Two pitfalls from the course's pilot runs are built in:
* budgets are compared at a fixed number of optimisation *steps*, not epochs (otherwise the
  smallest set trains longest);
* the linear probe trains a fresh head to convergence (L-BFGS), not for a few steps at a
  backbone-sized learning rate.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import inputs
from . import profile as profiles
from .data import HALF_A, HALF_B, Dataset, few_shot, load_fashion_mnist, select_classes, take
from .models import small_cnn
from .surgery import freeze, replace_head
from .train import evaluate, extract_features, fit, linear_probe


@dataclass
class Halves:
    """Train and test sets of the source half A and the target half B, relabelled 0-4 each."""

    a_train: Dataset
    a_test: Dataset
    b_train: Dataset
    b_test: Dataset


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


def epochs_for_steps(n_images: int, batch_size: int, steps: int) -> int:
    """How many epochs give about `steps` optimisation steps on `n_images` (at least one)."""
    for name, value in dict(n_images=n_images, batch_size=batch_size, steps=steps).items():
        inputs.integer(value, name, 1)
    return max(1, round(steps / math.ceil(n_images / batch_size)))


def pretrain(source: Dataset, *, steps: int, width: int = 16, depth: int = 4, lr: float = 3e-3,
             batch_size: int = 128, weight_decay: float = 5e-4, seed: int = 0) -> nn.Module:
    """Train a fresh course CNN on `source` for a fixed number of steps (any number of classes)."""
    torch.manual_seed(seed)
    model = small_cnn(width, depth, num_classes=int(source[1].max()) + 1)
    fit(model, source, epochs=epochs_for_steps(len(source[1]), batch_size, steps), lr=lr,
        batch_size=batch_size, weight_decay=weight_decay, seed=seed, progress=False)
    return model.eval()


def probe_accuracy(model: nn.Module, target_train: Dataset, target_test: Dataset,
                   test_features: torch.Tensor | None = None) -> float:
    """Linear-probe accuracy: frozen features of `model`, a logistic-regression head fit to convergence."""
    probe = linear_probe(extract_features(model, target_train), target_train[1])
    feats = test_features if test_features is not None else extract_features(model, target_test)
    return probe.score(feats, target_test[1])


def finetune(model: nn.Module, target_train: Dataset, *, steps: int, lr: float = 1e-3,
             batch_size: int = 32, frozen_groups: int = 0, seed: int = 0, **fit_kwargs) -> nn.Module:
    """A copy of `model` with a new head for the target, trained for a fixed number of steps.

    frozen_groups: how many layer groups (from the input) stay frozen; 0 = full fine-tuning.
    """
    torch.manual_seed(seed)
    tuned = replace_head(copy.deepcopy(model), int(target_train[1].max()) + 1)
    if frozen_groups:
        freeze(tuned, frozen_groups)
    fit(tuned, target_train, epochs=epochs_for_steps(len(target_train[1]), batch_size, steps), lr=lr,
        batch_size=batch_size, seed=seed, progress=False, **fit_kwargs)
    return tuned.eval()


def finetune_accuracy(model: nn.Module, target_train: Dataset, target_test: Dataset, **kwargs) -> float:
    """Test accuracy on the target after `finetune`."""
    return evaluate(finetune(model, target_train, **kwargs), target_test)["accuracy"]


def probe_comparison(photos: Dataset, train_fraction: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """Chapter 1's question on a learner's own photos: which features does a linear probe read best?

    Raw pixels, the course CNN pretrained on Fashion-MNIST A (grey 28 x 28) and ImageNet
    EfficientNet-Lite0 (colour, 64 x 64), each probed on the same stratified train/test split.
    """
    from .data import stratified_split
    from .models import efficientnet_lite, load_checkpoint

    images, labels = inputs.class_dataset(photos, "photos")
    fraction = inputs.real(train_fraction, "train_fraction", 0.0, 1.0, low_open=True)
    train_idx, test_idx = stratified_split(labels, (fraction, 1 - fraction), seed=seed)
    grey28 = F.interpolate(images.mean(1, keepdim=True), size=(28, 28), mode="bilinear", antialias=True).clamp(0, 1)
    sources = {"raw pixels (28 x 28 grey)": lambda: grey28.flatten(1),
               "course CNN A_w16 (Fashion-MNIST A)": lambda: extract_features(load_checkpoint("A_w16"), grey28),
               "EfficientNet-Lite0 (ImageNet, 64 px)": lambda: extract_features(
                   efficientnet_lite("lite0", input_size=64), images)}
    rows = []
    for name, features in sources.items():
        feats = features()
        probe = linear_probe(feats[train_idx], labels[train_idx], seed=seed)
        rows.append({"features": name, "probe accuracy": probe.score(feats[test_idx], labels[test_idx])})
    return pd.DataFrame(rows).set_index("features")


def pixels(data: Dataset) -> torch.Tensor:
    """Raw pixels as features: the baseline every pretrained representation must beat."""
    return inputs.dataset(data)[0].flatten(1)
