"""One training loop for the whole course.

`train_step` is the lesson: forward, loss, backward, gradient norm, optional clipping, optimiser step.
`fit` repeats it for a budget of steps (or epochs) over in-memory tensors, with the guards a learner
needs around it, each a named helper: every input checked before the first step, a warmup + cosine
schedule, a snapshot of the weights at each epoch start that is restored if the loss turns NaN/inf,
early stopping that restores the best weights, and Ctrl-C that returns the history so far.

Evaluation, features and probes live in `tutorlib.evaluation`, extra losses in `tutorlib.losses`;
they are re-exported here because the chapters call them as `train.evaluate` and so on.
"""
from __future__ import annotations

import copy
import math
import numbers
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import inputs
from .evaluation import (LinearProbe, evaluate, extract_features, fast_format, input_mismatch,  # noqa: F401
                         is_shape_error, linear_probe, modes_kept, predict, resolve_device)
from .inputs import Data
from .losses import distillation_loss, l2sp_penalty, snapshot  # noqa: F401
from .profile import seed_everything
from .surgery import train_mode

__all__ = ["History", "TrainingDiverged", "fit", "train_step", "lr_factor", "batches",
           # re-exported, so chapters can say train.evaluate(...) and so on:
           "LinearProbe", "distillation_loss", "evaluate", "extract_features", "l2sp_penalty", "linear_probe",
           "predict", "snapshot"]

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "constant")


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
    stopped_reason: str = "not started"  # completed | early_stopping | interrupted | diverged | crashed
    seconds: float = 0.0
    elapsed: list[float] = field(default_factory=list)  # seconds from the start to each epoch's end

    @property
    def epochs_run(self) -> int:
        return len(self.train_loss)

    @property
    def steps_run(self) -> int:
        return len(self.step_loss)

    def latest(self) -> dict[str, str]:
        """The last epoch's numbers, for the progress bar."""
        shown = {"loss": f"{self.train_loss[-1]:.3f}"}
        if self.val_accuracy:
            shown["val_acc"] = f"{self.val_accuracy[-1]:.3f}"
        return shown

    def to_frame(self) -> pd.DataFrame:
        """Per-epoch table (train loss, val loss, val accuracy)."""
        cols = {"train_loss": self.train_loss, "val_loss": self.val_loss, "val_accuracy": self.val_accuracy}
        return pd.DataFrame({k: v for k, v in cols.items() if v}).rename_axis("epoch")

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- one step
class NonFiniteLoss(ArithmeticError):
    """Raised by `train_step` before the optimiser step when the loss or gradient is NaN/inf."""


def train_step(model: nn.Module, batch: list[torch.Tensor], opt: torch.optim.Optimizer, loss_fn: Callable,
               clip_grad_norm: float | None = None) -> tuple[float, float]:
    """One optimisation step; returns (loss, gradient norm before clipping). Nothing moves on NaN/inf."""
    loss = loss_fn(model(batch[0]), *batch[1:])
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        raise ValueError(f"loss_fn must return one number per batch (a 0-d tensor), got "
                         f"{getattr(loss, 'shape', type(loss).__name__)}. Average it: reduction='mean' or `.mean()`.")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
    norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    if not (torch.isfinite(loss) and torch.isfinite(norm)):
        raise NonFiniteLoss(loss.item(), norm.item())
    if clip_grad_norm is not None:
        torch.nn.utils.clip_grads_with_norm_(params, clip_grad_norm, norm)
    opt.step()
    return loss.item(), norm.item()


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
    raise ValueError(f"Unknown optimizer {name!r}; choose one of {OPTIMIZERS}.")


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch's shuffled index batches. A last batch of a single sample joins the one before it:
    BatchNorm cannot normalise one sample, and a lone sample would get a whole step to itself."""
    order = torch.randperm(n, generator=generator)
    cuts = list(range(0, n, batch_size)) + [n]
    if len(cuts) > 2 and cuts[-1] - cuts[-2] == 1:
        del cuts[-2]
    return [order[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


# ----------------------------------------------------------------------------- checks before the first step
def _check_options(lr, batch_size, optimizer, weight_decay, warmup_steps, schedule, clip_grad_norm,
                   early_stopping, val) -> None:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}; choose 'adamw' or 'sgd'.")
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule {schedule!r}; choose 'cosine' or 'constant'.")
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number, lr > 0; got {lr!r}. Typical: 1e-3 (AdamW), 0.05 (SGD).")
    inputs.integer(batch_size, "batch_size", 1)
    inputs.real(weight_decay, "weight_decay", 0.0)
    inputs.integer(warmup_steps, "warmup_steps", 0)
    if clip_grad_norm is not None:
        inputs.positive(clip_grad_norm, "clip_grad_norm (the largest gradient norm allowed; None = no clipping)")
    if early_stopping is not None:
        inputs.integer(early_stopping, "early_stopping (patience in epochs)", 1)
        if val is None:
            raise ValueError("early_stopping needs validation data: pass val=(images, labels).")


def step_budget(steps: int | None, epochs: int | None, n: int, batch_size: int) -> int:
    """The number of optimisation steps: `steps` itself, or `epochs` passes over `n` samples."""
    if (steps is None) == (epochs is None):
        raise ValueError(f"Give exactly one budget: steps=... (what the chapters compare at) or epochs=...; "
                         f"got steps={steps!r}, epochs={epochs!r}.")
    if steps is not None:
        return inputs.integer(steps, "steps", 1)
    epochs = inputs.integer(epochs, "epochs (epochs and batch_size must be >= 1)", 1)
    return epochs * len(batches(n, batch_size, torch.Generator()))


def checked_param_groups(model: nn.Module, param_groups: list[dict] | None, lr: float) -> list[dict]:
    """Every trainable parameter exactly once, each group with a positive learning rate."""
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    if param_groups is None:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    else:
        if not isinstance(param_groups, (list, tuple)) or not param_groups or \
                not all(isinstance(g, dict) and "params" in g for g in param_groups):
            raise ValueError("param_groups must be a non-empty list of {'params': [...], 'lr': ...} dicts, e.g. "
                             "surgery.discriminative_param_groups(model, lr); pass None to train every parameter.")
        groups = [dict(g, params=list(g["params"])) for g in param_groups]
    if not trainable:
        raise ValueError("No trainable parameters: everything is frozen. Call surgery.unfreeze(model).")
    seen: list[int] = [id(p) for g in groups for p in g["params"]]
    foreign, repeated = set(seen) - {id(p) for p in model.parameters()}, len(seen) - len(set(seen))
    missing = trainable - set(seen)
    if foreign or repeated or missing or set(seen) - trainable:
        raise ValueError(f"param_groups must hold every trainable parameter of the model exactly once: "
                         f"{len(missing)} missing, {repeated} repeated, {len(foreign)} from another model, "
                         f"{len(set(seen) - trainable - foreign)} frozen. Build them with "
                         f"surgery.discriminative_param_groups(model, lr) after freezing.")
    for g in groups:
        rate = g.get("lr", lr)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"Every parameter group needs a finite learning rate > 0; group "
                             f"{g.get('name', groups.index(g))!r} has lr={rate!r}.")
    return groups


def _check_first_batch(model: nn.Module, tensors, val, class_labels: bool) -> None:
    """Run the model once in eval mode (no weight or statistic moves) to catch shape and label errors."""
    device = next(model.parameters()).device
    probe = [t[:8].to(device) for t in tensors]
    with modes_kept(model), torch.no_grad():
        model.eval()
        try:
            logits = model(probe[0])
        except RuntimeError as err:
            if is_shape_error(err):
                raise input_mismatch(model, probe[0], err) from err
            raise
        if class_labels:
            inputs.labels(tensors[1], "labels", num_classes=logits.shape[1])
        if val is not None:
            inputs.labels(val[1], "val labels", num_classes=logits.shape[1])


# ----------------------------------------------------------------------------- the guards around the loop
def _restore(model: nn.Module, state: dict | None) -> None:
    if state is not None:
        model.load_state_dict(state)


def _diverged(model, good_state, history, epoch, step, loss, norm, lr) -> TrainingDiverged:
    """Restore the last good weights; the error says what to change."""
    _restore(model, good_state)
    history.stopped_reason = "diverged"
    return TrainingDiverged(
        f"Training diverged at epoch {epoch}, step {step}: loss={loss:.3g}, gradient norm={norm:.3g}, "
        f"lr={lr:.3g}. The model now holds the last good weights (from the start of epoch {epoch}), and "
        f"err.history has the run so far. Try a lower learning rate (e.g. lr={lr / 10:.2g}), "
        f"clip_grad_norm=1.0, or warmup_steps=100; and check the inputs for NaN.", history)


def _diverged_on_val(model, good_state, history, what: str) -> TrainingDiverged:
    """The training loss stayed finite but the validation loss did not: keep the best weights, say why."""
    _restore(model, good_state)
    history.stopped_reason = "diverged"
    return TrainingDiverged(
        f"Training stopped: {what}, though the training loss was finite. The model now holds the best "
        f"weights seen (or those of the epoch's start), and err.history has the run so far. The network "
        f"gives inf or NaN logits on the validation images: lower the learning rate or add clip_grad_norm=1.0, "
        f"and check the validation images for NaN or values far outside [0, 1].", history)


@dataclass
class _Best:
    """Early stopping's memory: the best validation loss, its epoch and a copy of its weights."""

    loss: float = math.inf
    state: dict | None = None

    def update(self, model: nn.Module, history: History, epoch: int, patience: int | None) -> bool:
        """Record this epoch's validation loss; True when patience has run out."""
        if not math.isfinite(history.val_loss[-1]):  # never better; early stopping cannot judge the run
            if patience is None:
                return False
            raise ValueError(f"early stopping met a validation loss of {history.val_loss[-1]} at epoch {epoch}")
        if history.val_loss[-1] < self.loss:
            self.loss, history.best_epoch, self.state = history.val_loss[-1], epoch, copy.deepcopy(model.state_dict())
            return False
        return patience is not None and epoch - history.best_epoch >= patience


def _end_of_epoch(model, history: History, val, device, started: float, losses: list[float]) -> None:
    history.train_loss.append(sum(losses) / len(losses))
    if val is not None:
        scores = evaluate(model, val, device=device)
        history.val_loss.append(scores["loss"])
        history.val_accuracy.append(scores["accuracy"])
    history.elapsed.append(time.perf_counter() - started)


# ----------------------------------------------------------------------------- fit
def fit(model: nn.Module, train: Data, val: Data | None = None, *, steps: int | None = None,
        epochs: int | None = None, lr: float, batch_size: int = 128, optimizer: str = "adamw",
        weight_decay: float = 0.0, warmup_steps: int = 0, schedule: str = "cosine",
        clip_grad_norm: float | None = None, early_stopping: int | None = None,
        param_groups: list[dict] | None = None, loss_fn: Callable[..., torch.Tensor] | None = None,
        progress: bool = True, seed: int | None = None, device: str = "cpu", activations: bool = False) -> History:
    """Train `model` in place for `steps` optimisation steps (or `epochs` passes) and return its `History`.

    train: ``(images, labels)`` or ``(images, labels, extra...)``; `loss_fn(logits, labels, *extra)`
    defaults to cross-entropy. early_stopping: patience in epochs on validation loss; the best
    weights are restored. param_groups: e.g. `surgery.discriminative_param_groups(model, lr)`.
    activations: the inputs are cached activations of a frozen bottom (any finite values), not images.
    """
    inputs.module(model)
    _check_options(lr, batch_size, optimizer, weight_decay, warmup_steps, schedule, clip_grad_norm,
                   early_stopping, val)
    tensors = inputs.dataset(train, "train", unit_range=not activations)
    val = inputs.class_dataset(val, "val") if val is not None else None
    loss_fn = loss_fn or F.cross_entropy
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function loss_fn(logits, labels, *extra) -> scalar tensor, got "
                        f"{loss_fn!r}. For cross-entropy leave it out.")
    class_labels = loss_fn is F.cross_entropy or not tensors[1].is_floating_point()
    if loss_fn is F.cross_entropy:
        tensors = (tensors[0], inputs.labels(tensors[1], "train labels"), *tensors[2:])
    total_steps = step_budget(steps, epochs, len(tensors[0]), batch_size)
    groups = checked_param_groups(model, param_groups, lr)
    _check_first_batch(model, tensors, val, class_labels)
    generator = torch.Generator().manual_seed(
        inputs.seed(seed) if seed is not None else int(torch.randint(0, 2**31, ())))
    if seed is not None:
        seed_everything(seed)
    dev = resolve_device(device)
    with fast_format(model, dev):
        return _loop(model, tuple(t.to(dev) for t in tensors), val, groups, total_steps, generator,
                     dict(lr=lr, optimizer=optimizer, weight_decay=weight_decay, warmup_steps=warmup_steps,
                          schedule=schedule, clip_grad_norm=clip_grad_norm, early_stopping=early_stopping,
                          batch_size=batch_size, loss_fn=loss_fn, progress=progress, device=device))


def _epoch(model, tensors, opt, base_lrs, index_batches, total_steps: int, cfg: dict, history: History, bar) -> list[float]:
    """One pass of `train_step` over `index_batches`, the schedule set before each step; every step is logged."""
    losses = []
    for index in index_batches:
        factor = lr_factor(history.steps_run, total_steps, cfg["warmup_steps"], cfg["schedule"])
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * factor
        loss, norm = train_step(model, [t[index] for t in tensors], opt, cfg["loss_fn"], cfg["clip_grad_norm"])
        losses.append(loss)
        history.step_loss.append(loss)
        history.lr.append(opt.param_groups[-1]["lr"])
        history.grad_norm.append(norm)
        bar.update()
    return losses


def _interrupted(model: nn.Module, history: History, best: _Best) -> None:
    """Ctrl-C: keep the history so far and the best weights seen, and say so."""
    history.stopped_reason = "interrupted"
    print(f"Interrupted after {history.epochs_run} epochs; returning the history so far"
          + (f" with the best weights (epoch {history.best_epoch})." if best.state else "."))
    _restore(model, best.state)


def _loop(model, tensors, val, groups, total_steps, generator, cfg) -> History:
    """Epochs until the step budget is spent, inside the guards."""
    opt = make_optimizer(groups, cfg["optimizer"], cfg["lr"], cfg["weight_decay"])
    base_lrs = [g["lr"] for g in opt.param_groups]
    history, best, good_state, epoch = History(), _Best(), None, 0
    started = time.perf_counter()
    bar = tqdm(total=total_steps, desc="fit", disable=not cfg["progress"], leave=False)
    try:
        while history.steps_run < total_steps:
            good_state = copy.deepcopy(model.state_dict())  # restored if this epoch diverges
            train_mode(model)
            index_batches = batches(len(tensors[0]), cfg["batch_size"], generator)[:total_steps - history.steps_run]
            try:
                losses = _epoch(model, tensors, opt, base_lrs, index_batches, total_steps, cfg, history, bar)
            except NonFiniteLoss as bad:
                raise _diverged(model, good_state, history, epoch, history.steps_run, *bad.args,
                                opt.param_groups[-1]["lr"]) from None
            _end_of_epoch(model, history, val, cfg["device"], started, losses)
            bar.set_postfix(history.latest())
            try:
                if val is not None and best.update(model, history, epoch, cfg["early_stopping"]):
                    history.stopped_reason = "early_stopping"
                    break
            except ValueError as bad:
                raise _diverged_on_val(model, best.state or good_state, history, str(bad)) from None
            epoch += 1
        else:
            history.stopped_reason = "completed"
    except KeyboardInterrupt:
        _interrupted(model, history, best)
    except TrainingDiverged:
        raise
    except Exception as err:  # a crash in a hook or a loss: keep the weights and history the learner has
        history.stopped_reason = "crashed"
        _restore(model, best.state or good_state)
        err.history = history
        raise
    finally:
        bar.close()
        history.seconds = time.perf_counter() - started
    if cfg["early_stopping"] is not None:
        _restore(model, best.state)
    return history
