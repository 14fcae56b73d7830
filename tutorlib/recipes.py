"""Fine-tuning recipes: each a few named steps over layer groups, to read with `tutorlib.show`.

In the spirit of fastai's `fine_tune`: a recipe says which groups train, with which rates and which loss,
and leaves the loop to `train.fit` (through `transfer.finetune`). Every recipe starts from a copy of
`model` (the pretrained network is never changed), gives it a fresh head for the target's classes drawn
from `seed`, and returns the adapted model in eval mode. The chapters compare them at equal steps.

    linear_probe          a head fit to convergence on frozen features (LP)
    finetune              every group trains, or all but the first `frozen_groups` (FT)
    discriminative_rates  every group trains, each at a rate 2.6x below the group above it (Howard & Ruder 2018)
    gradual_unfreezing    one more group per stage, from the head down (Howard & Ruder 2018)
    lp_ft                 the linear probe first, then full fine-tuning from it (Kumar et al. 2022)
    l2sp                  full fine-tuning with the body pulled towards its pretrained weights (Li et al. 2018)
    distill               a student trained on a teacher's outputs instead of labels (Hinton et al. 2015)
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import inputs, losses, surgery, train, transfer
from .data import Dataset
from .seeds import seed_everything

__all__ = ["linear_probe", "finetune", "discriminative_rates", "gradual_unfreezing", "lp_ft", "l2sp", "distill"]


def _with_fresh_head(model: nn.Module, target: Dataset, seed: int) -> nn.Module:
    """A copy of `model` with a new classifier for the target's classes, its weights drawn from `seed`."""
    num_classes = int(inputs.class_dataset(target, "target")[1].max()) + 1
    seed_everything(seed)
    return surgery.replace_head(copy.deepcopy(inputs.module(model)), num_classes)


def linear_probe(model: nn.Module, target: Dataset, *, seed: int = 0) -> nn.Module:
    """LP: the body frozen as it is; the head is a logistic regression fit to convergence on its features."""
    return transfer.probe_head(model, target, seed=seed)


def finetune(model: nn.Module, target: Dataset, *, steps: int, lr: float, seed: int = 0, frozen_groups: int = 0,
             **options) -> nn.Module:
    """FT: a fresh head, then every group trains (or all but the first `frozen_groups`) for `steps` steps."""
    return transfer.finetune(model, target, steps=steps, lr=lr, seed=seed, frozen_groups=frozen_groups, **options)[0]


def discriminative_rates(model: nn.Module, target: Dataset, *, steps: int, lr: float, seed: int = 0,
                         **options) -> nn.Module:
    """Every group trains; the head at `lr`, each group below it at the rate above divided by 2.6."""
    net = _with_fresh_head(model, target, seed)
    groups = surgery.discriminative_param_groups(net, lr)  # names net's own parameters: train it in place
    return transfer.finetune(net, target, steps=steps, lr=lr, seed=seed, new_head=False, in_place=True,
                             param_groups=groups, **options)[0]


def gradual_unfreezing(model: nn.Module, target: Dataset, *, steps: int, lr: float, seed: int = 0,
                       discriminative: bool = False, **options) -> nn.Module:
    """Stage k trains the top k groups (head first) for steps // (number of groups) steps each."""
    net = _with_fresh_head(model, target, seed)
    n_groups = len(surgery.layer_groups(net))
    if inputs.integer(steps, "steps", 1) < n_groups:
        raise ValueError(f"gradual_unfreezing gives each of the {n_groups} stages steps // {n_groups} steps: "
                         f"pass steps >= {n_groups}, got {steps}.")
    surgery.freeze(net, n_groups - 1)
    for stage in range(n_groups):
        surgery.unfreeze(net, n_groups - 1 - stage)
        groups = surgery.discriminative_param_groups(net, lr) if discriminative else None
        transfer.finetune(net, target, steps=steps // n_groups, lr=lr, seed=seed, new_head=False, in_place=True,
                          param_groups=groups, **options)
    return net.eval()


def lp_ft(model: nn.Module, target: Dataset, *, steps: int, lr: float, seed: int = 0, **options) -> nn.Module:
    """LP-FT: fit the head first (linear probe), so fine-tuning starts from a head that already fits."""
    net = transfer.probe_head(model, target, seed=seed)
    return transfer.finetune(net, target, steps=steps, lr=lr, seed=seed, new_head=False, in_place=True, **options)[0]


def l2sp(model: nn.Module, target: Dataset, *, steps: int, lr: float, alpha: float, seed: int = 0,
         **options) -> nn.Module:
    """L2-SP: cross-entropy + alpha/2 * ||body - pretrained body||^2, so the body stays near what it learned."""
    inputs.positive(alpha, "alpha (the weight of the pull towards the pretrained weights)")
    net, start = _with_fresh_head(model, target, seed), model.state_dict()

    def loss_fn(logits, labels):  # reads `net` itself: train it in place
        return F.cross_entropy(logits, labels) + losses.l2sp_penalty(net, start, alpha)

    return transfer.finetune(net, target, steps=steps, lr=lr, seed=seed, new_head=False, in_place=True,
                             loss_fn=loss_fn, **options)[0]


def distill(student: nn.Module, images: torch.Tensor, teacher_logits: torch.Tensor, *, steps: int, lr: float,
            seed: int = 0, temperature: float = 4.0, hard_labels: bool = False, batch_size: int = 128) -> nn.Module:
    """Train `student` in place on a teacher's view of `images`: its probabilities softened at `temperature`,
    or (hard_labels) only its top class. No true label is used."""
    inputs.flag(hard_labels, "hard_labels")
    transfer_set = (images, teacher_logits.argmax(1), teacher_logits)  # images, teacher's labels, teacher's logits

    def loss_fn(logits, labels, t_logits):
        if hard_labels:
            return F.cross_entropy(logits, labels)
        return losses.distillation_loss(logits, t_logits, labels, temperature, alpha=1.0)

    train.fit(student, transfer_set, steps=steps, lr=lr, batch_size=batch_size, seed=seed, progress=False,
              loss_fn=loss_fn)
    return student
