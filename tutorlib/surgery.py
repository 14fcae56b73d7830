"""Model surgery: split a network into layer groups, freeze, unfreeze, transplant, re-head, prune.

Works on any `nn.Module` a learner brings: the course CNN, timm models (EfficientNet-Lite, ResNet)
and torchvision models (ResNet-18, MobileNetV3). The semantics follow fastai:

* a *layer group* is a unit the network is cut at, ordered from the input to the head;
* *frozen* means ``requires_grad=False`` and, unless ``train_bn=True``, BatchNorm layers kept in eval
  mode so their running statistics do not move, also when your own loop calls ``model.train()``
  (like torchvision's ``FrozenBatchNorm2d``, but the layer keeps its class and its state_dict).
  `unfreeze` undoes both.
"""
from __future__ import annotations

import numbers

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

from . import anatomy, inputs
from .anatomy import NORM_LAYERS, Groups

BATCH_NORMS = nn.modules.batchnorm._BatchNorm


def layer_groups(model: nn.Module) -> Groups:
    """The model's layer groups as ordered ``(name, module)`` pairs, input side first, head last (see `anatomy`)."""
    return anatomy.describe(model).groups


def group_names(model: nn.Module) -> list[str]:
    return [name for name, _ in layer_groups(model)]


def resolve_depth(groups: Groups, up_to: int | str) -> int:
    """Turn `up_to` (a count or a group name) into the number of groups from the input side."""
    names = [n for n, _ in groups]
    if isinstance(up_to, str):
        if up_to not in names:
            raise ValueError(f"Unknown layer group {up_to!r}. This model's groups, input to head: {names}.")
        return names.index(up_to) + 1
    if isinstance(up_to, numbers.Integral) and not isinstance(up_to, bool):
        up_to = int(up_to)  # NumPy's int64 (a DataFrame's column) is a depth too
    if isinstance(up_to, bool) or not isinstance(up_to, int) or not 0 <= up_to <= len(names):
        raise ValueError(f"Depth {up_to!r} is out of range: use an int from 0 to {len(names)} or a group name. "
                         f"This model's groups, input to head: {names}.")
    return up_to


class _StayInEval:
    """A frozen BatchNorm's `train` method: whatever mode is asked for, the layer stays in eval."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __call__(self, mode: bool = True) -> nn.Module:
        return nn.Module.train(self.module, False)


def _hold_in_eval(bn: nn.Module, frozen: bool) -> None:
    """frozen=True: `bn` stays in eval through any later `model.train()`; False: it follows its model again."""
    if frozen:
        bn.train = _StayInEval(bn)
        nn.Module.train(bn, False)
    elif isinstance(bn.__dict__.get("train"), _StayInEval):
        del bn.__dict__["train"]


def _is_held(bn: nn.Module) -> bool:
    return isinstance(bn.__dict__.get("train"), _StayInEval)


def _set_bn_eval(model: nn.Module) -> nn.Module:
    """Hold every BatchNorm whose parameters are all frozen in eval mode (fastai's rule)."""
    for m in model.modules():
        params = list(m.parameters(recurse=False))
        if isinstance(m, BATCH_NORMS) and params:
            frozen = not any(p.requires_grad for p in params)
            if frozen != _is_held(m):
                _hold_in_eval(m, frozen)
                m.training = model.training and not frozen
    return model


def train_mode(model: nn.Module) -> nn.Module:
    """``model.train()`` with fastai's frozen-BatchNorm rule applied (`fit` calls it each epoch)."""
    return _set_bn_eval(model.train())


def _set_trainable(groups: Groups, n_frozen: int, train_bn: bool) -> None:
    for i, (_, module) in enumerate(groups):
        for m in module.modules():
            keep_training = i >= n_frozen or (train_bn and isinstance(m, NORM_LAYERS))
            for p in m.parameters(recurse=False):
                p.requires_grad = keep_training
            if isinstance(m, BATCH_NORMS):
                _hold_in_eval(m, frozen=not keep_training)


def freeze(model: nn.Module, up_to: int | str, train_bn: bool = False) -> nn.Module:
    """Freeze the first `up_to` groups (or through the group named `up_to`); the rest train.

    train_bn=True keeps BatchNorm layers of frozen groups trainable and updating (fastai's default).
    """
    groups = layer_groups(model)
    depth = resolve_depth(groups, up_to)
    if not isinstance(train_bn, bool):
        raise TypeError(f"train_bn must be True or False, got {train_bn!r}.")
    _set_trainable(groups, depth, train_bn)
    return _set_bn_eval(model.train(model.training))  # frozen BN drops to eval, the rest keeps its mode


def freeze_bn(model: nn.Module) -> nn.Module:
    """Hold every BatchNorm at its pretrained statistics, scale and shift, in trained groups too.

    detectron2's FrozenBatchNorm2d: with small batches from a new domain, batch statistics are noisy
    and the running ones drift away from what the pretrained layers above expect.
    """
    for m in inputs.module(model).modules():
        if isinstance(m, BATCH_NORMS):
            for p in m.parameters(recurse=False):
                p.requires_grad = False
            _hold_in_eval(m, frozen=True)
    return model


def thaw(model: nn.Module) -> nn.Module:
    """Every weight trainable and every BatchNorm following its model again: undo any earlier freeze.

    What a recipe starts from, so a freeze left on a model from an earlier cell cannot silently hold
    part of it still (no layer groups needed: it acts on every module).
    """
    for m in inputs.module(model).modules():
        for p in m.parameters(recurse=False):
            p.requires_grad = True
        if _is_held(m):
            _hold_in_eval(m, frozen=False)
            m.train(model.training)
    return model


def unfreeze(model: nn.Module, from_group: int | str = 0) -> nn.Module:
    """Make groups trainable from `from_group` (index or name) to the head; earlier groups stay as they are.

    ``unfreeze(model)`` unfreezes everything; stepping `from_group` down one group per epoch is
    gradual unfreezing (Howard & Ruder 2018).
    """
    groups = layer_groups(model)
    start = resolve_depth(groups, from_group) - (1 if isinstance(from_group, str) else 0)
    for _, module in groups[start:]:
        for p in module.parameters():
            p.requires_grad = True
        for m in module.modules():
            if isinstance(m, BATCH_NORMS):
                _hold_in_eval(m, frozen=False)
                m.train(model.training)
    return model


def train_only(model: nn.Module, groups: list[str], train_bn: bool = False) -> nn.Module:
    """Freeze every layer group except those named (surgical fine-tuning, Lee et al. 2023)."""
    names = group_names(model)
    if isinstance(groups, str) or not isinstance(groups, (list, tuple, set)):
        raise TypeError(f"groups must be a list of group names, e.g. ['{names[0]}']; got {groups!r}.")
    unknown = [g for g in groups if g not in names]
    if unknown:
        raise ValueError(f"Unknown layer group(s) {unknown}. This model's groups, input to head: {names}.")
    for name, module in layer_groups(model):
        for m in module.modules():
            trains = name in groups or (train_bn and isinstance(m, NORM_LAYERS))
            for p in m.parameters(recurse=False):
                p.requires_grad = trains
            if isinstance(m, BATCH_NORMS):
                _hold_in_eval(m, frozen=not trains)
                m.train(model.training)
    return _set_bn_eval(model)


def replace_head(model: nn.Module, num_classes: int, head_name: str | None = None) -> nn.Module:
    """Swap the final linear classifier for a fresh one with `num_classes` outputs (the model's dtype and device)."""
    anatomy.reset_head(model, num_classes, head_name)
    return model


def discriminative_param_groups(model: nn.Module, base_lr: float, factor: float = 2.6) -> list[dict]:
    """Optimizer parameter groups: the head at `base_lr`, each group nearer the input `factor` x lower.

    Covers every trainable parameter exactly once (frozen ones are left out). ULMFiT's factor is 2.6.
    """
    base_lr, factor = inputs.positive(base_lr, "base_lr"), inputs.positive(factor, "factor")
    groups, seen, out = layer_groups(model), set(), []
    for i, (name, module) in enumerate(groups):
        params = [p for p in module.parameters() if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for p in params)
        if params:
            out.append({"params": params, "lr": base_lr / factor ** (len(groups) - 1 - i), "name": name})
    leftover = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
    if not out and not leftover:
        raise ValueError("The model has no trainable parameters: unfreeze some groups first.")
    if leftover:  # parameters outside every group (rare) train with the head
        out.append({"params": leftover, "lr": base_lr, "name": "other"})
    return out


def transplant(src: nn.Module, dst: nn.Module, n_groups: int | str, freeze: bool = True,
               train_bn: bool = False) -> nn.Module:
    """Copy the first `n_groups` groups of `src` into `dst` (Yosinski's AnB / AnB+), frozen or not."""
    src_groups, dst_groups = layer_groups(inputs.module(src, "src")), layer_groups(inputs.module(dst, "dst"))
    if [n for n, _ in src_groups] != [n for n, _ in dst_groups]:
        raise ValueError(f"src and dst have different layer groups: {[n for n, _ in src_groups]} vs "
                         f"{[n for n, _ in dst_groups]}. Transplant between models of one architecture.")
    n = resolve_depth(dst_groups, n_groups)
    if not isinstance(freeze, bool) or not isinstance(train_bn, bool):
        raise TypeError(f"freeze and train_bn must be True or False, got {freeze!r} and {train_bn!r}.")
    for (name, s), (_, d) in zip(src_groups[:n], dst_groups[:n]):  # check every group before copying any
        theirs, ours = s.state_dict(), d.state_dict()
        masked = [k for k in (theirs.keys() ^ ours.keys()) if k.endswith(("_orig", "_mask"))]
        if masked:
            pruned = "src" if any(k in theirs for k in masked) else "dst"
            raise ValueError(f"Group {name!r} of {pruned} is pruned with masks still attached ({masked[0]}): make the "
                             f"pruning permanent first, prune_magnitude(model, amount, permanent=True), so its "
                             f"weights are plain tensors (the zeros stay).")
        if theirs.keys() != ours.keys() or any(theirs[k].shape != ours[k].shape for k in ours):
            raise ValueError(f"Group {name!r} has different shapes in src and dst (e.g. another width). "
                             f"Transplant between models of one architecture and width.")
    for (_, s), (_, d) in zip(src_groups[:n], dst_groups[:n]):
        d.load_state_dict(s.state_dict())
    _set_trainable(dst_groups, n if freeze else 0, train_bn)
    return _set_bn_eval(dst)


def prune_magnitude(model: nn.Module, amount: float, permanent: bool = False) -> nn.Module:
    """Global magnitude pruning (Han et al. 2015): zero the smallest weights until `amount` of all conv/linear weights are zero.

    `amount` is the sparsity the model ends with, also when it was pruned before: pruning to 0.5 twice
    leaves 50% zeros, and 0.5 then 0.9 prunes further. The zeros are kept by a mask during further
    training; `permanent=True` bakes them into the weights.
    """
    # A float: torch reads an int amount as a *count* of weights, so amount=1 would prune one weight.
    amount = inputs.real(amount, "amount (the fraction of weights to remove)", 0.0, 1.0)
    targets = [(m, "weight") for m in inputs.module(model).modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not targets:
        raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layers to prune.")
    masks = [getattr(m, "weight_mask", torch.ones_like(m.weight)) for m, _ in targets]
    total, pruned = sum(k.numel() for k in masks), sum(int((k == 0).sum()) for k in masks)
    if pruned > round(amount * total):
        raise ValueError(f"The model is already pruned to {pruned / total:.1%} of its weights; pruning cannot lower "
                         f"that to {amount:.1%}. Start again from unpruned weights (e.g. reload the checkpoint).")
    model.to(memory_format=torch.contiguous_format)  # torch's pruning flattens weights with .view()
    # torch prunes a fraction of the weights a mask still keeps; that fraction reaches `amount` of all.
    remaining = total - pruned
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured,
                              amount=(round(amount * total) - pruned) / remaining if remaining else 0.0)
    if permanent:
        for m, name in targets:
            prune.remove(m, name)
    return model


def summary(model: nn.Module) -> pd.DataFrame:
    """One row per layer group: parameters, how many train, and whether its BatchNorms are updating."""
    rows = []
    for name, module in layer_groups(model):
        params = list(module.parameters())
        bns = [m for m in module.modules() if isinstance(m, BATCH_NORMS)]
        rows.append({"group": name, "params": sum(p.numel() for p in params),
                     "trainable": sum(p.numel() for p in params if p.requires_grad),
                     "bn_updating": (all(m.training for m in bns) if bns else None)})
    return pd.DataFrame(rows)
