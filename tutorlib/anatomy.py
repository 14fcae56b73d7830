"""How a model is cut: its layer groups, the chain of stages that computes it, and its head.

One protocol for every model the course cuts (docs/design.md, section 3a). `describe(model)` returns

* ``groups``: ``(name, module)`` pairs, input side first, head last: the units that `surgery.freeze`,
  `surgery.transplant` and discriminative learning rates act on (fastai's layer groups);
* ``stages``: ``(group name or None, module)`` pairs whose composition is ``model(x)``, the head last:
  what `models.split` cuts into a frozen bottom and a trainable top (``None`` names a step without
  weights, such as pooling);
* ``owner`` and ``head``: the module holding the classifier and its attribute name.

Two verbs act on it: `describe(model)` reads the anatomy, `reset_head(model, num_classes)` gives the model
a fresh classifier (timm's own `reset_classifier` where the model has one). `wrapped(inner, step, name)` is
the anatomy of a wrapper that runs one step before its inner network (`models.AdaptInput`,
`pretext.RotationPretext`).

Three readers, tried in order: a model that describes itself with an ``anatomy()`` method (the course
CNN, `models.AdaptInput`); a timm model, read through timm's own API (`group_matcher` for the groups,
`forward_head` for pooling, `get_classifier` for the head); anything else, such as a torchvision classifier,
by its children in the order forward() calls them (stage containers such as ``features`` opened, a lone norm layer joined to the
layer before it, the output flattened before the head, as torchvision's ``forward`` does).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.fx
import torch.nn as nn

from . import inputs

Groups = list[tuple[str, nn.Module]]
Stages = list[tuple[str | None, nn.Module]]
NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
STAGE_CONTAINERS = ("features", "blocks", "layers", "stages")


@dataclass
class Anatomy:
    """A model's groups, its stages (None: it cannot be cut in two, freeze it instead) and its head."""
    groups: Groups
    stages: Stages | None
    owner: nn.Module
    head: str


class Lambda(nn.Module):
    """A function as a stage of an `nn.Sequential` (resizing an input, the course CNN's pooling)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str):
        super().__init__()
        self.fn, self.name = fn, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


def describe(model: nn.Module) -> Anatomy:
    """The model's anatomy: its own `anatomy()`, timm's API, or its children in order."""
    inputs.module(model)
    if callable(getattr(model, "anatomy", None)):
        return model.anatomy()
    if all(callable(getattr(model, a, None)) for a in ("group_matcher", "forward_head", "get_classifier")):
        return _timm_anatomy(model)
    return _children_anatomy(model)


def reset_head(model: nn.Module, num_classes: int, head_name: str | None = None) -> nn.Module:
    """Give `model` a fresh linear classifier with `num_classes` outputs (its dtype and device); return the new head.

    timm's `reset_classifier` where the model has one (the model knows its head); otherwise the last
    `nn.Linear` at the anatomy's head (or at `head_name`), alone or at the end of an `nn.Sequential`.
    """
    num_classes = inputs.integer(num_classes, "num_classes", 1)
    body = describe(inputs.module(model))
    owner, name = body.owner, head_name or body.head
    if head_name is None and callable(getattr(owner, "reset_classifier", None)):
        like = next(owner.parameters(), torch.empty(0))
        owner.reset_classifier(num_classes)
        return owner.get_classifier().to(dtype=like.dtype, device=like.device)
    head = getattr(owner, name, None)
    parent, slot = (owner, name) if isinstance(head, nn.Linear) else (head, _last_linear(head))
    if slot is None:
        children = [n for n, _ in owner.named_children()]
        raise ValueError(f"Could not find a linear head in {type(owner).__name__} at {name!r} (its children are "
                         f"{children}). Pass the attribute that holds it: replace_head(model, {num_classes}, "
                         f"head_name='...').")
    old = getattr(parent, slot) if isinstance(slot, str) else parent[slot]
    new = nn.Linear(old.in_features, num_classes, dtype=old.weight.dtype, device=old.weight.device)
    if isinstance(slot, str):
        setattr(parent, slot, new)
    else:
        parent[slot] = new
    config = getattr(owner, "config", None)
    if isinstance(config, dict) and "num_classes" in config:  # the course CNN records its head; keep it true
        config["num_classes"] = num_classes
    return new


def _last_linear(head: nn.Module | None) -> int | None:
    """The index of the last `nn.Linear` in an `nn.Sequential` head, or None."""
    if not isinstance(head, nn.Sequential):
        return None
    found = [i for i, m in enumerate(head) if isinstance(m, nn.Linear)]
    return found[-1] if found else None


def wrapped(inner: nn.Module, step: Callable[[torch.Tensor], torch.Tensor], name: str) -> Anatomy:
    """The anatomy of a wrapper whose forward is `inner(step(x))`: the inner groups and head, `step` leading its stages."""
    body = describe(inner)
    stages = None if body.stages is None else [(None, Lambda(step, name)), *body.stages]
    return Anatomy(body.groups, stages, body.owner, body.head)


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


Pieces = list[tuple[str, nn.Module, "int | None"]]  # (name, module, group key; None: holds no weights)


def _groups(pieces: Pieces) -> tuple[Groups, dict[int, str]]:
    """One group per key, its pieces joined ('conv_stem+bn1' is one `nn.Sequential`); and each key's name."""
    groups, names = [], {}
    for key in sorted({k for *_, k in pieces if k is not None}):
        members = [(n, m) for n, m, k in pieces if k == key]
        name = "+".join(n for n, _ in members)
        groups.append((name, members[0][1] if len(members) == 1 else nn.Sequential(*[m for _, m in members])))
        names[key] = name
    if not groups:
        raise ValueError("This model has no parameters, so it has no layer groups.")
    return groups, names


def _chain(pieces: Pieces, groups: Groups, names: dict[int, str]) -> Stages | None:
    """The pieces in forward order as stages, a group's pieces as its one module (None if they are apart)."""
    modules, stages = dict(groups), []
    for _, module, key in pieces:
        if key is None:
            stages.append((None, module))
        elif stages and stages[-1][0] == names[key]:
            continue
        elif any(name == names[key] for name, _ in stages):
            return None  # another step runs between two pieces of one group: it cannot be cut at one place
        else:
            stages.append((names[key], modules[names[key]]))
    return stages


def _timm_pieces(module: nn.Module, group_of: dict[str, int], prefix: str = "") -> Pieces:
    """(name, module, group) in forward order; a child whose weights span several groups is opened."""
    pieces = []
    for name, child in module.named_children():
        full = prefix + name
        keys = {g for p, g in group_of.items() if p.startswith(full + ".")}
        pieces += _timm_pieces(child, group_of, full + ".") if len(keys) > 1 else [(full, child, keys.pop() if keys else None)]
    return pieces


class _Parameters(nn.Module):
    """Parameters a model holds itself (not in a child), as a module a layer group can hold: the same tensors."""

    def __init__(self, params: dict[str, nn.Parameter]):
        super().__init__()
        for name, param in params.items():
            self.register_parameter(name, param)


def _root_pieces(model: nn.Module, group_of: dict[str, int]) -> Pieces:
    """The model's own parameters, one piece per timm group they belong to (its forward uses them: no chain)."""
    own = dict(model.named_parameters(recurse=False))
    keys = sorted({group_of[n] for n in own})
    return [("+".join(n for n in own if group_of[n] == k), _Parameters({n: p for n, p in own.items() if group_of[n] == k}), k)
            for k in keys]


def _unjoined(matcher: dict) -> dict:
    """timm's matcher with the head convolution a group of its own (timm joins it to the last stage)."""
    from timm.models._manipulate import MATCH_PREV_GROUP  # timm's "join the group before" mark

    def own(spec):
        if isinstance(spec, (list, tuple)) and spec and isinstance(spec[0], (list, tuple)):
            return [(regex, (MATCH_PREV_GROUP[0] - 1,) if suffix == MATCH_PREV_GROUP else suffix) for regex, suffix in spec]
        return spec
    return {name: own(spec) for name, spec in matcher.items()}


def _timm_anatomy(model: nn.Module) -> Anatomy:
    """timm's coarse `group_matcher` gives the groups; `forward_head` pools; `get_classifier` is the head."""
    from timm.models import group_parameters

    group_of = group_parameters(model, _unjoined(model.group_matcher(coarse=True)), reverse=True)
    roots = _root_pieces(model, group_of)  # e.g. a ViT's cls_token and pos_embed, in timm's stem group
    pieces = roots + _timm_pieces(model, group_of)
    groups, names = _groups(pieces)
    classifier = model.get_classifier()
    head_key = next(k for _, m, k in pieces if any(s is classifier for s in m.modules()))
    head_name = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or next(n for n, _, k in pieces if k == head_key)
    last_feature = max(i for i, (*_, k) in enumerate(pieces) if k is not None and k != head_key)
    stages = None if roots else _chain(pieces[:last_feature + 1], groups, names)
    if stages is None or groups[-1][1] is not classifier:  # e.g. a head with its own norm layer: freeze instead
        return Anatomy(groups, None, model, head_name)
    # timm's own pooling (and dropout, which follows the model's train/eval flag) up to the classifier
    pool = Lambda(lambda x: model.forward_head(x, pre_logits=True), "timm forward_head: pooling")
    return Anatomy(groups, stages + [(None, pool), (groups[-1][0], classifier)], model, head_name)


def _children_as_called(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's children in the order its forward() first calls them (read by torch.fx, without an input).

    Why: the head is what the model computes last, not the attribute defined last. A forward that fx cannot
    trace (control flow on values) keeps the order of definition; children forward() never calls come first.
    """
    children = list(model.named_children())
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # fx raises many kinds on untraceable code; the order of definition is the fallback
        return children
    first_call: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            first_call.setdefault(str(node.target).split(".")[0], len(first_call))
    return sorted(children, key=lambda item: first_call.get(item[0], -1))


def _children_anatomy(model: nn.Module) -> Anatomy:
    """Children in order (stage containers opened); a lone norm layer joins the layer before it."""
    own = [name for name, _ in model.named_parameters(recurse=False)]
    if own:
        raise ValueError(f"{type(model).__name__} holds parameters of its own, outside any layer ({own}): they may be "
                         f"its head, applied in forward() (e.g. with F.linear), and no reading of its children can "
                         f"tell. Hold them in a module (e.g. an nn.Linear) or give the model an anatomy() method "
                         f"(docs/design.md, section 3a).")
    pieces: Pieces = []
    for name, child in _children_as_called(model):
        opened = name in STAGE_CONTAINERS and isinstance(child, (nn.Sequential, nn.ModuleList))
        for piece_name, piece in ([(f"{name}.{n}", m) for n, m in child.named_children()] if opened else [(name, child)]):
            keys = [k for *_, k in pieces if k is not None]
            key = None
            if _has_params(piece):
                key = keys[-1] if keys and isinstance(piece, NORM_LAYERS) else len(set(keys))
            pieces.append((piece_name, piece, key))
    groups, names = _groups(pieces)
    head_at = max(i for i, (*_, k) in enumerate(pieces) if k is not None)
    stages = _chain(pieces[:head_at], groups, names)
    if stages is not None and pieces[head_at][2] not in {k for *_, k in pieces[:head_at]}:
        stages += [(None, nn.Flatten(1)), (groups[-1][0], pieces[head_at][1]), *[(None, m) for _, m, _ in pieces[head_at + 1:]]]
    else:
        stages = None
    return Anatomy(groups, stages, model, groups[-1][0])
