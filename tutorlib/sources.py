"""Chapter 1's experiments: does a pretrained source help the target at all, and which features read best?

`positive_control` is the control every comparison of sources needs (pretrained vs the same CNN at random
init, over many few-shot draws); `probe_comparison` asks chapter 1's question of a learner's own photos.
Sources compared replicate by replicate, each pretrained from one init, are `protocols.source_data` and
`protocols.source_noise` (registered questions).
"""
from __future__ import annotations

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import inputs
from .data import Dataset, stratified_split
from .evaluation import extract_features, linear_probe
from .models import efficientnet_lite, load_checkpoint
from .engine import evaluate_many, finetune_many
from .seeds import derive
from .transfer import Halves, probe_by_stage


def positive_control(pretrained: nn.Module, halves: Halves, seed: int, *, shots: int = 5, draws: int = 8,
                     steps: int = 120, probe: bool = True) -> pd.DataFrame:
    """`pretrained` against the same CNN at random initialisation on B: does pretraining help at all?

    The control every comparison of sources needs: if pretraining does not beat no pretraining, the
    differences between sources are noise. Each of `draws` rounds gets its own few-shot target, random
    init and batch order (`derive(seed, "draw k")`); the seed's verdict is the mean over the rounds.
    Both arms are fine-tuned whole with a new head (`engine.finetune_many`: `recipes.finetune`'s steps, every
    draw of both arms trained together), and optionally probed block by block.
    The random arm is the model's own `random_twin(seed)` (the course CNN has one).
    """
    if not isinstance(halves, Halves):
        raise TypeError(f"halves must be the Halves from transfer.load_halves(), got {type(halves).__name__}.")
    if not callable(getattr(inputs.module(pretrained, "pretrained"), "random_twin", None)):
        raise TypeError(f"positive_control compares a model with its random twin (`random_twin(seed)`, which the "
                        f"course CNN has), got {type(pretrained).__name__}; for Lite0 compare models.lite0() with "
                        f"models.lite0(pretrained=False).")
    shots, draws, steps = (inputs.integer(v, n, 1) for v, n in ((shots, "shots"), (draws, "draws"), (steps, "steps")))
    draw_seeds = [derive(seed, f"draw {k}") for k in range(draws)]
    targets = [halves.target(shots, d) for d in draw_seeds]
    arms = {"pretrained": [pretrained] * draws, "random init": [pretrained.random_twin(d) for d in draw_seeds]}
    tuned = finetune_many(arms["pretrained"] + arms["random init"], targets * 2, steps=steps, lr=1e-3,
                          seeds=draw_seeds * 2)  # every draw of both arms at once: engine.fit_many
    accuracy = evaluate_many(tuned, halves.b_test)
    rows = []
    for k in range(draws):
        scores = {arm: {"fine-tune": accuracy[k + i * draws]} for i, arm in enumerate(arms)}
        if probe:
            for arm, nets in arms.items():
                by_stage = probe_by_stage(nets[k], targets[k], halves.b_test)
                scores[arm].update({f"probe {s}": a for s, a in zip(by_stage.stage, by_stage["probe accuracy"])})
        rows += [{"seed": seed, "draw": k, "labels per class": shots, "measure": measure,
                  "pretrained": scores["pretrained"][measure], "random init": scores["random init"][measure]}
                 for measure in scores["pretrained"]]
    table = pd.DataFrame(rows)
    table["gain"] = table["pretrained"] - table["random init"]
    return table


def probe_comparison(photos: Dataset, train_fraction: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """Chapter 1's question on a learner's own photos: which features does a linear probe read best?

    Raw pixels, the course CNN pretrained on Fashion-MNIST A (grey 28 x 28) and ImageNet
    EfficientNet-Lite0 (colour, 64 x 64), each probed on the same stratified train/test split.
    """
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
