"""Running a trained model: logits, accuracy, features for a linear probe, and the probe itself.

Everything here leaves the model as it found it: its train/eval mode, its memory format and its
weights. `train.fit` uses the same helpers for its validation pass.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import inputs
from ._execution import fast_format, input_mismatch, is_shape_error, modes_kept, resolve_device
from .inputs import Data
from .surgery import layer_groups


# ----------------------------------------------------------------------------- inference
# Images per forward pass when nothing trains. Small batches keep each layer's activations in the CPU's
# cache: 64 scores Lite0 1.65x faster than 1024 and the course CNN 1.4x (benchmarks/NOTES.md, "batch size").
EVAL_BATCH = 64


def _logits(model: nn.Module, images: torch.Tensor, batch_size: int, dev: torch.device) -> torch.Tensor:
    with torch.inference_mode():
        out = []
        for i in range(0, len(images), batch_size):
            out.append(model(images[i:i + batch_size].to(dev)).float().cpu())
        return torch.cat(out)


def predict(model: nn.Module, images: torch.Tensor, batch_size: int = EVAL_BATCH, device: str = "cpu") -> torch.Tensor:
    """Logits for `images`, in eval mode and without autograd; the model's mode and format are restored."""
    inputs.module(model)
    images = inputs.images(images)
    batch_size = inputs.integer(batch_size, "batch_size", 1)
    dev = resolve_device(device)
    # Convert outside inference mode: weights converted inside it would become inference tensors,
    # which can never be trained again.
    with modes_kept(model), fast_format(model, dev):
        model.eval()
        try:
            return _logits(model, images, batch_size, dev)
        except RuntimeError as err:
            if not is_shape_error(err):
                raise
            raise input_mismatch(model, images, err) from err


def evaluate(model: nn.Module, data: Data, batch_size: int = EVAL_BATCH, device: str = "cpu") -> dict[str, float]:
    """Cross-entropy loss and accuracy of `model` on a labelled dataset."""
    images, labels = inputs.class_dataset(data)
    logits = predict(model, images, batch_size, device)
    labels = inputs.labels(labels, num_classes=logits.shape[1])
    return {"loss": float(F.cross_entropy(logits, labels)),
            "accuracy": float((logits.argmax(1) == labels).float().mean())}


# ----------------------------------------------------------------------------- features
def _find_module(model: nn.Module, layer: str) -> nn.Module:
    groups = dict(layer_groups(model))
    modules = dict(model.named_modules())
    if isinstance(layer, str) and layer in groups:
        return groups[layer]
    if isinstance(layer, str) and layer in modules:
        return modules[layer]
    raise ValueError(f"Unknown layer {layer!r}. Layer groups: {list(groups)}; "
                     f"any module path from model.named_modules() also works.")


POOLS = ("avg", "flatten")


def extract_features(model: nn.Module, data: Data | torch.Tensor, layer: str | None = None,
                     batch_size: int = EVAL_BATCH, pool: str = "avg") -> torch.Tensor:
    """Activations of `layer` (default: what the head sees) for every image, as an N x D tensor.

    Run the backbone once and train on these (see `linear_probe`) instead of once per epoch.
    Conv maps are global-average pooled (`pool="avg"`) or flattened (`pool="flatten"`). The backbone
    runs under inference mode (in `predict`); the features come back as ordinary tensors, so a head
    can train on them.
    """
    images = inputs.images(data) if isinstance(data, torch.Tensor) else inputs.dataset(data)[0]
    if pool not in POOLS:
        raise ValueError(f"Unknown pool {pool!r}; choose one of {POOLS}.")
    module = layer_groups(model)[-1][1] if layer is None else _find_module(model, layer)
    captured: list[torch.Tensor] = []
    if layer is None:  # the head's input
        handle = module.register_forward_pre_hook(lambda m, args: captured.append(args[0]))
    else:
        handle = module.register_forward_hook(lambda m, args, out: captured.append(out))
    try:
        predict(model, images, batch_size)
    finally:
        handle.remove()
    if not captured or not all(isinstance(c, torch.Tensor) for c in captured):
        raise ValueError(f"Layer {layer!r} did not produce a tensor during the forward pass; pick another layer.")
    feats = torch.cat(captured).clone()  # an ordinary tensor, not an inference tensor
    if feats.ndim == 4 and pool == "avg":
        feats = feats.mean(dim=(2, 3))
    return feats.flatten(1)


# ----------------------------------------------------------------------------- linear probes
class LinearProbe(nn.Module):
    """Standardise cached features, then one linear layer: logistic regression in PyTorch."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_classes: int):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(len(mean), num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.mean) / self.std)

    def as_linear(self) -> nn.Linear:
        """The same classifier as one nn.Linear on raw features (standardisation folded in): an LP-FT head."""
        linear = nn.Linear(len(self.mean), self.linear.out_features)
        with torch.no_grad():
            linear.weight.copy_(self.linear.weight / self.std)
            linear.bias.copy_(self.linear.bias - linear.weight @ self.mean)
        return linear

    @torch.inference_mode()
    def score(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        """Accuracy on held-out features."""
        features = inputs.features(features)
        if features.shape[1] != len(self.mean):
            raise ValueError(f"The probe was trained on {len(self.mean)} features per example; these have "
                             f"{features.shape[1]}. Extract them from the same model and layer.")
        labels = inputs.labels(labels)
        if len(labels) != len(features):
            raise ValueError(f"{len(features)} feature rows but {len(labels)} labels.")
        return float((self(features).argmax(1) == labels).float().mean())


def linear_probe(features: torch.Tensor, labels: torch.Tensor, *, weight_decay: float = 1e-3,
                 max_iter: int = 200, seed: int = 0) -> LinearProbe:
    """Fit multinomial logistic regression on frozen features with L-BFGS (full batch, converges).

    Training the head to convergence on cached features avoids the classic artefact of a fresh head
    trained for too few steps at a backbone-sized learning rate.
    """
    features = inputs.features(features, min_rows=2)
    labels = inputs.labels(labels)
    if len(labels) != len(features):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels: take the same examples.")
    if len(torch.unique(labels)) < 2:
        raise ValueError(f"All {len(labels)} labels are class {int(labels[0])}: a classifier needs at least 2 classes.")
    weight_decay = inputs.real(weight_decay, "weight_decay", 0.0)
    max_iter = inputs.integer(max_iter, "max_iter", 1)
    torch.manual_seed(inputs.seed(seed))
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    probe = LinearProbe(mean, std, int(labels.max()) + 1)
    opt = torch.optim.LBFGS(probe.parameters(), lr=1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(probe(features), labels) + weight_decay * probe.linear.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    if not all(math.isfinite(float(p.detach().abs().max())) for p in probe.parameters()):
        raise ValueError("The linear probe diverged (NaN weights). Raise weight_decay or check the features.")
    return probe.eval()
