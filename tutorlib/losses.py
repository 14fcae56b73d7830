"""Losses the chapters add to cross-entropy: distillation (chapter 2) and L2-SP (chapter 6).

Both take plain tensors and return a scalar, so they plug into `train.fit(..., loss_fn=...)` or into
a learner's own loop.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import inputs
from .surgery import layer_groups


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """Hinton et al. 2015: KL to the teacher's softened outputs (scaled by T^2) plus hard-label CE."""
    t = inputs.positive(temperature, "temperature")
    alpha = inputs.real(alpha, "alpha", 0.0, 1.0)
    if student_logits.shape != teacher_logits.shape or student_logits.ndim != 2:
        raise ValueError(f"Student and teacher logits must both be N x classes and of one shape; got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}. The student needs as "
                         f"many outputs as the teacher (surgery.replace_head).")
    labels = inputs.labels(labels, num_classes=student_logits.shape[1])
    if len(labels) != len(student_logits):
        raise ValueError(f"{len(student_logits)} rows of logits but {len(labels)} labels.")
    soft = F.kl_div(F.log_softmax(student_logits / t, 1), F.softmax(teacher_logits.detach() / t, 1),
                    reduction="batchmean") * t * t
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def named_weights(model: nn.Module) -> list[tuple[str, nn.Parameter, torch.Tensor]]:
    """(name, parameter, the tensor its layer computes with) for every parameter.

    A layer pruned by `surgery.prune_magnitude` trains `weight_orig` and computes with the masked
    `weight`; it is listed under the plain name, so pruned and unpruned models compare name by name.
    """
    out = []
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            plain = name.removesuffix("_orig")
            used = plain if plain != name and hasattr(module, plain + "_mask") else name
            out.append((f"{module_name}.{used}" if module_name else used, p, getattr(module, used)))
    return out


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the model's parameters: a reference that later training cannot move.

    `model.state_dict()` shares memory with the live weights, so an L2-SP penalty or weight distance
    measured against it is always 0. Take the reference with this instead.
    """
    return {name: w.detach().clone() for name, _, w in named_weights(inputs.module(model))}


def check_reference(model: nn.Module, reference: dict[str, torch.Tensor], names: list[str]) -> None:
    """The reference must cover the named parameters, with their shapes, in memory of its own."""
    if not isinstance(reference, dict):
        raise TypeError(f"reference must be a dict of name -> tensor (losses.snapshot(model)), got "
                        f"{type(reference).__name__}.")
    params = {n: w for n, _, w in named_weights(model)}
    missing = [n for n in names if n not in reference]
    if missing:
        raise ValueError(f"reference lacks {len(missing)} of the model's parameters (e.g. {missing[:3]}). "
                         f"Take it from the same architecture with losses.snapshot(pretrained_model).")
    for n in names:
        ref, p = reference[n], params[n]
        if not isinstance(ref, torch.Tensor) or ref.shape != p.shape:
            raise ValueError(f"reference[{n!r}] has shape {tuple(getattr(ref, 'shape', ()))}, the model's "
                             f"{tuple(p.shape)}: the reference comes from another architecture.")
        if ref.untyped_storage().data_ptr() == p.untyped_storage().data_ptr():
            raise ValueError(f"reference[{n!r}] shares memory with the model's live weight, so the distance would "
                             f"always be 0. Take the reference with losses.snapshot(model) (not state_dict()).")


def l2sp_penalty(model: nn.Module, reference: dict[str, torch.Tensor], alpha: float = 0.01) -> torch.Tensor:
    """Li et al. 2018: alpha/2 * ||w - w_pretrained||^2 over the body; the new head is left out."""
    alpha = inputs.real(alpha, "alpha", 0.0)
    head_ids = {id(p) for p in layer_groups(model)[-1][1].parameters()}
    weights = named_weights(model)
    names = [n for n, p, _ in weights if id(p) not in head_ids and p.requires_grad]
    if not names:
        raise ValueError("l2sp_penalty: the body has no trainable parameters, so the penalty is undefined. "
                         "Unfreeze the body (surgery.unfreeze) or drop the penalty.")
    check_reference(model, reference, names)
    params = {n: w for n, _, w in weights}
    terms = [(params[n] - reference[n].to(params[n].device)).square().sum() for n in names]
    return 0.5 * alpha * torch.stack(terms).sum()
