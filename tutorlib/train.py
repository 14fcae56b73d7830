"""One training loop for the whole course, plus evaluation, feature extraction and linear probes.

`fit` is plain PyTorch you can read top to bottom: shuffle in-memory tensors, forward, loss,
backward, log the gradient norm, optionally clip, step, schedule the learning rate. Around it sit
the guards a learner needs: early stopping that restores the best weights, a NaN/inf guard that
restores the last good weights, and Ctrl-C that returns the history so far.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .profile import seed_everything
from .surgery import layer_groups, train_mode

Data = tuple[torch.Tensor, ...] | torch.utils.data.TensorDataset


class TrainingDiverged(RuntimeError):
    """The loss or gradient became NaN/inf. `err.history` holds the history so far."""

    def __init__(self, message: str, history: "History"):
        super().__init__(message)
        self.history = history


@dataclass
class History:
    """What `fit` measured: per-epoch losses and accuracy, per-step learning rate and gradient norm."""

    train_loss: list[float] = field(default_factory=list)  # mean over each epoch's steps
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)  # the last parameter group's (the head's) rate
    grad_norm: list[float] = field(default_factory=list)  # global L2 norm before clipping
    best_epoch: int | None = None  # by validation loss, counted from 0
    stopped_reason: str = "not started"  # completed | early_stopping | interrupted | diverged
    seconds: float = 0.0
    elapsed: list[float] = field(default_factory=list)  # seconds from the start to each epoch's end

    @property
    def epochs_run(self) -> int:
        return len(self.train_loss)

    def to_frame(self) -> pd.DataFrame:
        """Per-epoch table (train loss, val loss, val accuracy)."""
        cols = {"train_loss": self.train_loss, "val_loss": self.val_loss, "val_accuracy": self.val_accuracy}
        return pd.DataFrame({k: v for k, v in cols.items() if v}).rename_axis("epoch")

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- input checks
def as_tensors(data: Data) -> tuple[torch.Tensor, ...]:
    """A `(images, labels, ...)` tuple or a `TensorDataset` -> a tuple of tensors."""
    tensors = tuple(data.tensors) if isinstance(data, torch.utils.data.TensorDataset) else tuple(data)
    if len(tensors) < 2 or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError("Data must be an (images, labels) pair of tensors or a TensorDataset; "
                        f"got {type(data).__name__} of {[type(t).__name__ for t in tensors]}.")
    if len({len(t) for t in tensors}) != 1:
        raise ValueError(f"Images and labels differ in length: {[len(t) for t in tensors]}.")
    return tensors


def check_images(images: torch.Tensor) -> None:
    """The course's image contract: float N x C x H x W in [0, 1]. Fails early with the fix."""
    if not images.is_floating_point():
        raise TypeError(f"Images must be float in [0, 1], got {images.dtype}. Convert with `images.float() / 255`.")
    if images.ndim != 4:
        raise ValueError(f"Images must be N x C x H x W, got shape {tuple(images.shape)}. "
                         f"Add the channel axis with `images.unsqueeze(1)`.")
    lo, hi = float(images.min()), float(images.max())
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"Images must lie in [0, 1], found values in [{lo:.3g}, {hi:.3g}]. "
                         f"Divide uint8 images by 255; models that need normalisation do it themselves.")


def check_labels(labels: torch.Tensor, num_outputs: int) -> None:
    if labels.dtype != torch.long or labels.ndim != 1:
        raise TypeError(f"Labels must be a 1-D int64 tensor, got {labels.dtype} of shape {tuple(labels.shape)}.")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_outputs):
        raise ValueError(f"Labels run from {int(labels.min())} to {int(labels.max())} but the model has "
                         f"{num_outputs} outputs. Relabel with data.select_classes or call "
                         f"surgery.replace_head(model, num_classes).")


def is_shape_error(err: RuntimeError) -> bool:
    return any(word in str(err) for word in ("channels", "shape", "size", "dimension"))


def input_mismatch(model: nn.Module, images: torch.Tensor, err: RuntimeError) -> ValueError:
    """Turn PyTorch's shape error deep inside a layer into one that says what to change."""
    return ValueError(
        f"{type(model).__name__} cannot take images of shape C x H x W = {tuple(images.shape[1:])}: {err}. "
        f"Grayscale images into an RGB model: wrap it with models.AdaptInput(model, image_size) or pass "
        f"images.expand(-1, 3, -1, -1); your own network: build it with in_channels={images.shape[1]}.")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but this machine has no usable CUDA GPU. "
                         f"Use device='cpu' (the course's default) or device='auto'.")
    return torch.device(device)


# ----------------------------------------------------------------------------- the loop
def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate: linear warmup, then cosine decay to 0 (or constant)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(params, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"Unknown optimizer {name!r}; choose 'adamw' or 'sgd'.")


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return copy.deepcopy(model.state_dict())


def fit(model: nn.Module, train: Data, val: Data | None = None, *, epochs: int, lr: float,
        batch_size: int = 128, optimizer: str = "adamw", weight_decay: float = 0.0,
        warmup_steps: int = 0, schedule: str = "cosine", clip_grad_norm: float | None = None,
        early_stopping: int | None = None, param_groups: list[dict] | None = None,
        loss_fn: Callable[..., torch.Tensor] | None = None, progress: bool = True,
        seed: int | None = None, device: str = "cpu") -> History:
    """Train `model` in place on in-memory tensors and return its `History`.

    train: ``(images, labels)`` or ``(images, labels, extra...)``; `loss_fn(logits, labels, *extra)`
    defaults to cross-entropy. early_stopping: patience in epochs on validation loss; the best
    weights are restored. param_groups: e.g. `surgery.discriminative_param_groups(model, lr)`.
    """
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"Unknown schedule {schedule!r}; choose 'cosine' or 'constant'.")
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0; got {epochs}, {batch_size}, {lr}.")
    if early_stopping is not None and val is None:
        raise ValueError("early_stopping needs validation data: pass val=(images, labels).")
    dev = resolve_device(device)
    tensors = tuple(t.to(dev) for t in as_tensors(train))
    check_images(tensors[0])
    generator = seed_everything(seed) if seed is not None else torch.Generator().manual_seed(
        int(torch.randint(0, 2**31, ())))
    model.to(dev, memory_format=torch.channels_last)  # ~1.7x faster convolutions on CPU (benchmarks/)
    groups = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad]}]
    opt = make_optimizer(groups, optimizer, lr, weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]
    params = [p for g in opt.param_groups for p in g["params"]]
    if not params:
        raise ValueError("No trainable parameters: everything is frozen. Call surgery.unfreeze(model).")
    loss_fn = loss_fn or F.cross_entropy
    class_labels = tensors[1].dtype == torch.long or (loss_fn is F.cross_entropy and tensors[1].ndim == 1)
    n, total_steps = len(tensors[0]), epochs * math.ceil(len(tensors[0]) / batch_size)
    history, best_state, good_state, best_loss, step = History(), None, None, math.inf, 0
    started = time.perf_counter()
    bar = tqdm(total=total_steps, desc="fit", disable=not progress, leave=False)
    try:
        for epoch in range(epochs):
            good_state = _snapshot(model)  # restored if this epoch diverges
            train_mode(model)
            order, epoch_losses = torch.randperm(n, generator=generator).to(dev), []
            for start in range(0, n, batch_size):
                batch = [t[order[start:start + batch_size]] for t in tensors]
                factor = lr_factor(step, total_steps, warmup_steps, schedule)
                for g, base in zip(opt.param_groups, base_lrs):
                    g["lr"] = base * factor
                logits = _forward(model, batch[0], first_step=step == 0)
                if step == 0 and class_labels:
                    check_labels(tensors[1], logits.shape[1])
                loss = loss_fn(logits, *batch[1:])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
                if not (torch.isfinite(loss) and torch.isfinite(norm)):
                    _diverged(model, good_state, history, epoch, step, loss.item(), norm.item(),
                              opt.param_groups[-1]["lr"])
                if clip_grad_norm is not None:
                    torch.nn.utils.clip_grads_with_norm_(params, clip_grad_norm, norm)
                opt.step()
                step += 1
                epoch_losses.append(loss.item())
                history.step_loss.append(epoch_losses[-1])
                history.lr.append(opt.param_groups[-1]["lr"])
                history.grad_norm.append(float(norm))
                bar.update()
            history.train_loss.append(sum(epoch_losses) / len(epoch_losses))
            postfix = {"loss": f"{history.train_loss[-1]:.3f}"}
            scores = evaluate(model, val, device=device) if val is not None else None
            history.elapsed.append(time.perf_counter() - started)
            if scores is not None:
                history.val_loss.append(scores["loss"])
                history.val_accuracy.append(scores["accuracy"])
                postfix["val_acc"] = f"{scores['accuracy']:.3f}"
                if scores["loss"] < best_loss:
                    best_loss, history.best_epoch, best_state = scores["loss"], epoch, _snapshot(model)
                elif early_stopping is not None and epoch - history.best_epoch >= early_stopping:
                    history.stopped_reason = "early_stopping"
                    break
            bar.set_postfix(postfix)
        else:
            history.stopped_reason = "completed"
    except KeyboardInterrupt:
        history.stopped_reason = "interrupted"
        print(f"Interrupted after {history.epochs_run} epochs; returning the history so far"
              + (" with the best weights (epoch %d)." % history.best_epoch if best_state else "."))
        if best_state is not None:
            model.load_state_dict(best_state)
    finally:
        bar.close()
        history.seconds = time.perf_counter() - started
    if early_stopping is not None and best_state is not None:
        model.load_state_dict(best_state)
    return history


def _forward(model: nn.Module, images: torch.Tensor, first_step: bool) -> torch.Tensor:
    """The model's logits; on the first step a shape error becomes one that says what to change."""
    try:
        return model(images)
    except RuntimeError as err:
        if first_step and is_shape_error(err):
            raise input_mismatch(model, images, err) from err
        raise


def _diverged(model, good_state, history, epoch, step, loss, norm, lr) -> None:
    """Restore the last good weights and stop with a message that says what to change."""
    model.load_state_dict(good_state)
    history.stopped_reason = "diverged"
    raise TrainingDiverged(
        f"Training diverged at epoch {epoch}, step {step}: loss={loss:.3g}, gradient norm={norm:.3g}, "
        f"lr={lr:.3g}. The model now holds the last good weights (from the start of epoch {epoch}), and "
        f"err.history has the run so far. Try a lower learning rate (e.g. lr={lr / 10:.2g}), "
        f"clip_grad_norm=1.0, or warmup_steps=100; and check the inputs for NaN.", history)


# ----------------------------------------------------------------------------- evaluation
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1024, device: str = "cpu") -> torch.Tensor:
    """Logits for `images`, in eval mode and without autograd, restoring the model's mode after."""
    was_training, dev = model.training, resolve_device(device)
    # Convert outside inference mode: weights copied inside it would become inference tensors,
    # which can never be trained again.
    model.eval().to(dev, memory_format=torch.channels_last)
    try:
        with torch.inference_mode():
            return torch.cat([model(images[i:i + batch_size].to(dev)).cpu()
                              for i in range(0, len(images), batch_size)])
    except RuntimeError as err:
        if not is_shape_error(err):
            raise
        raise input_mismatch(model, images, err) from err
    finally:
        if was_training:
            train_mode(model)


def evaluate(model: nn.Module, data: Data, batch_size: int = 1024, device: str = "cpu") -> dict[str, float]:
    """Cross-entropy loss and accuracy of `model` on a labelled dataset."""
    images, labels = as_tensors(data)[:2]
    check_images(images)
    logits = predict(model, images, batch_size, device)
    check_labels(labels, logits.shape[1])
    return {"loss": float(F.cross_entropy(logits, labels)),
            "accuracy": float((logits.argmax(1) == labels).float().mean())}


def _find_module(model: nn.Module, layer: str) -> nn.Module:
    groups = dict(layer_groups(model))
    modules = dict(model.named_modules())
    if layer in groups:
        return groups[layer]
    if layer in modules:
        return modules[layer]
    raise ValueError(f"Unknown layer {layer!r}. Layer groups: {list(groups)}; "
                     f"any module path from model.named_modules() also works.")


def extract_features(model: nn.Module, data: Data | torch.Tensor, layer: str | None = None,
                     batch_size: int = 512, pool: str = "avg") -> torch.Tensor:
    """Activations of `layer` (default: what the head sees) for every image, as an N x D tensor.

    Run the backbone once and train on these (see `linear_probe`) instead of once per epoch.
    Conv maps are global-average pooled (`pool="avg"`) or flattened (`pool="flatten"`). The backbone
    runs under inference mode (in `predict`); the features come back as ordinary tensors, so a head
    can train on them.
    """
    images = data if isinstance(data, torch.Tensor) else as_tensors(data)[0]
    check_images(images)
    captured: list[torch.Tensor] = []
    if layer is None:
        head = layer_groups(model)[-1][1]
        handle = head.register_forward_pre_hook(lambda m, args: captured.append(args[0]))
    else:
        module = _find_module(model, layer)
        handle = module.register_forward_hook(lambda m, args, out: captured.append(out))
    try:
        predict(model, images, batch_size)
    finally:
        handle.remove()
    feats = torch.cat(captured)
    if feats.ndim == 4:
        feats = feats.mean(dim=(2, 3)) if pool == "avg" else feats.flatten(1)
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
        return float((self(features).argmax(1) == labels).float().mean())


def linear_probe(features: torch.Tensor, labels: torch.Tensor, *, weight_decay: float = 1e-3,
                 max_iter: int = 200, seed: int = 0) -> LinearProbe:
    """Fit multinomial logistic regression on frozen features with L-BFGS (full batch, converges).

    Training the head to convergence on cached features avoids the classic artefact of a fresh head
    trained for too few steps at a backbone-sized learning rate.
    """
    torch.manual_seed(seed)
    features = features.float()
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    probe = LinearProbe(mean, std, int(labels.max()) + 1)
    opt = torch.optim.LBFGS(probe.parameters(), lr=1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(probe(features), labels) + weight_decay * probe.linear.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return probe.eval()


# ----------------------------------------------------------------------------- extra losses
def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """Hinton et al. 2015: KL to the teacher's softened outputs (scaled by T^2) plus hard-label CE."""
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, 1), F.softmax(teacher_logits / t, 1),
                    reduction="batchmean") * t * t
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def l2sp_penalty(model: nn.Module, reference: dict[str, torch.Tensor], alpha: float = 0.01) -> torch.Tensor:
    """Li et al. 2018: alpha/2 * ||w - w_pretrained||^2 over the body; the new head is left out."""
    head_ids = {id(p) for p in layer_groups(model)[-1][1].parameters()}
    terms = [(p - reference[name]).square().sum() for name, p in model.named_parameters()
             if id(p) not in head_ids and name in reference and p.requires_grad]
    return 0.5 * alpha * torch.stack(terms).sum() if terms else torch.zeros(())
