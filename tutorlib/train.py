"""One training loop for the whole course.

`train_step` is the lesson: forward, loss, backward, gradient norm, optional clipping, optimiser step.
`fit` repeats it for a budget of steps (or epochs) over in-memory tensors, with the guards a learner
needs around it, each a named helper: every input checked before the first step, a warmup + cosine
schedule, a snapshot of the weights at each epoch start that is restored if the loss turns NaN/inf,
early stopping that restores the best weights, and Ctrl-C that returns the history so far.

Evaluation, features and probes live in `tutorlib.evaluation`, extra losses in `tutorlib.losses`.
"""
from __future__ import annotations

import contextlib
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
from ._execution import fast_format, input_mismatch, is_shape_error, modes_kept, resolve_device
from .evaluation import evaluate
from .inputs import Data
from .seeds import seed_everything
from .surgery import train_mode

__all__ = ["History", "TrainingDiverged", "fit", "train_step", "lr_factor", "batches"]

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

    def log_step(self, loss: float, lr: float, grad_norm: float) -> None:
        self.step_loss.append(loss)
        self.lr.append(lr)
        self.grad_norm.append(grad_norm)

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

    @classmethod
    def concat(cls, stages: list["History"]) -> "History":
        """One History of several fits run one after the other (gradual unfreezing's stages)."""
        joined = cls(stopped_reason=stages[-1].stopped_reason if stages else "not started")
        for stage in stages:
            offset = joined.seconds
            for name in ("train_loss", "val_loss", "val_accuracy", "step_loss", "lr", "grad_norm"):
                getattr(joined, name).extend(getattr(stage, name))
            joined.elapsed.extend(offset + t for t in stage.elapsed)
            joined.seconds += stage.seconds
        return joined


# ----------------------------------------------------------------------------- one step
class _NonFiniteLoss(ArithmeticError):
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
        raise _NonFiniteLoss(loss.item(), norm.item())
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


def _make_optimizer(params, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, or SGD with momentum 0.9: the two the chapters compare (the one place a name is checked)."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"Unknown optimizer {name!r}; choose 'adamw' or 'sgd'.")


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch's shuffled index batches. A last batch of a single sample joins the one before it:
    BatchNorm cannot normalise one sample, and a lone sample would get a whole step to itself."""
    order = torch.randperm(n, generator=generator)
    cuts = list(range(0, n, batch_size)) + [n]
    if len(cuts) > 2 and cuts[-1] - cuts[-2] == 1:
        del cuts[-2]
    return [order[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


# ----------------------------------------------------------------------------- checks before the first step
def _check_options(lr, batch_size, weight_decay, warmup_steps, schedule, clip_grad_norm, early_stopping, val) -> None:
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


def _step_budget(steps: int | None, epochs: int | None, n: int, batch_size: int) -> int:
    """The number of optimisation steps: `steps` itself, or `epochs` passes over `n` samples."""
    if (steps is None) == (epochs is None):
        raise ValueError(f"Give exactly one budget: steps=... (what the chapters compare at) or epochs=...; "
                         f"got steps={steps!r}, epochs={epochs!r}.")
    if steps is not None:
        return inputs.integer(steps, "steps", 1)
    epochs = inputs.integer(epochs, "epochs (epochs and batch_size must be >= 1)", 1)
    return epochs * len(batches(n, batch_size, torch.Generator()))


def _checked_param_groups(model: nn.Module, param_groups: list[dict] | None, lr: float) -> list[dict]:
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


def _snapshot(model: nn.Module) -> dict:
    """A copy of the weights and buffers to restore later; cloning tensors is ~4x cheaper than a deepcopy,
    which matters when a few-shot epoch is a single step."""
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _diverged(model, good_state, history, loss, norm, lr) -> TrainingDiverged:
    """Restore the last good weights; the error says what to change."""
    _restore(model, good_state)
    history.stopped_reason = "diverged"
    epoch, step = history.epochs_run, history.steps_run
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


class _NonFiniteValidation(ArithmeticError):
    """Early stopping met a NaN/inf validation loss: it cannot tell whether the run improved."""


@dataclass
class _Best:
    """Early stopping's memory: the best validation loss, its epoch and a copy of its weights."""

    loss: float = math.inf
    state: dict | None = None

    def update(self, model: nn.Module, history: History, patience: int | None) -> bool:
        """Record the last epoch's validation loss; True when patience has run out."""
        epoch = history.epochs_run - 1
        if not math.isfinite(history.val_loss[-1]):  # never better; early stopping cannot judge the run
            if patience is None:
                return False
            raise _NonFiniteValidation(f"early stopping met a validation loss of {history.val_loss[-1]} at epoch {epoch}")
        if history.val_loss[-1] < self.loss:
            self.loss, history.best_epoch, self.state = history.val_loss[-1], epoch, _snapshot(model)
            return False
        return patience is not None and epoch - history.best_epoch >= patience


def _end_of_epoch(model, history: History, val, device, started: float, losses: list[float]) -> None:
    history.train_loss.append(sum(losses) / len(losses))
    if val is not None:
        scores = evaluate(model, val, device=device)
        history.val_loss.append(scores["loss"])
        history.val_accuracy.append(scores["accuracy"])
    history.elapsed.append(time.perf_counter() - started)


@dataclass
class _Guard:
    """The weights at the start of the current epoch: what a NaN puts back."""

    epoch_start: dict | None = None


@contextlib.contextmanager
def _guards(model: nn.Module, history: History, best: _Best, opt, bar, started: float):
    """Around the loop: NaN/inf restores the epoch's start, Ctrl-C returns the history, a crash keeps the weights."""
    guard = _Guard()
    try:
        yield guard
    except _NonFiniteLoss as bad:
        raise _diverged(model, guard.epoch_start, history, *bad.args, opt.param_groups[-1]["lr"]) from None
    except _NonFiniteValidation as bad:
        raise _diverged_on_val(model, best.state or guard.epoch_start, history, str(bad)) from None
    except KeyboardInterrupt:
        history.stopped_reason = "interrupted"
        print(f"Interrupted after {history.epochs_run} epochs; returning the history so far"
              + (f" with the best weights (epoch {history.best_epoch})." if best.state else "."))
        _restore(model, best.state)
    except Exception as err:  # a crash in a hook or a loss: keep the weights and history the learner has
        history.stopped_reason = "crashed"
        _restore(model, best.state or guard.epoch_start)
        err.history = history
        raise
    finally:
        bar.close()
        history.seconds = time.perf_counter() - started


# ----------------------------------------------------------------------------- fit
def _checked(model: nn.Module, train: Data, val: Data | None, loss_fn, activations: bool):
    """(train tensors, val, loss_fn, whether labels are classes), every one checked before a step is taken."""
    inputs.module(model)
    tensors = inputs.dataset(train, "train", unit_range=not activations)
    val = inputs.class_dataset(val, "val") if val is not None else None
    loss_fn = loss_fn or F.cross_entropy
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function loss_fn(logits, labels, *extra) -> scalar tensor, got "
                        f"{loss_fn!r}. For cross-entropy leave it out.")
    if loss_fn is F.cross_entropy:
        tensors = (tensors[0], inputs.labels(tensors[1], "train labels"), *tensors[2:])
    return tensors, val, loss_fn, loss_fn is F.cross_entropy or not tensors[1].is_floating_point()


def _generator(seed: int | None) -> torch.Generator:
    """The batch order's own random stream: from `seed` (which also seeds everything else), or fresh."""
    if seed is None:
        return torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))
    seed_everything(inputs.seed(seed))
    return torch.Generator().manual_seed(seed)


def fit(model: nn.Module, train: Data, val: Data | None = None, *,
        steps: int | None = None, epochs: int | None = None,  # the budget: give one
        lr: float, optimizer: str = "adamw", batch_size: int = 128, weight_decay: float = 0.0,
        warmup_steps: int = 0, schedule: str = "cosine", param_groups: list[dict] | None = None,
        clip_grad_norm: float | None = None, early_stopping: int | None = None,  # guards
        loss_fn: Callable[..., torch.Tensor] | None = None, activations: bool = False,
        progress: bool = True, seed: int | None = None, device: str = "cpu") -> History:
    """Train `model` in place for `steps` optimisation steps (or `epochs` passes); return its `History`.

    train: (images, labels[, extra...]); loss_fn(logits, labels, *extra) defaults to cross-entropy.
    early_stopping: patience in epochs on validation loss (the best weights are restored).
    param_groups: e.g. surgery.discriminative_param_groups(model, lr). activations: cached features, not images.
    """
    _check_options(lr, batch_size, weight_decay, warmup_steps, schedule, clip_grad_norm, early_stopping, val)
    tensors, val, loss_fn, class_labels = _checked(model, train, val, loss_fn, activations)
    total_steps = _step_budget(steps, epochs, len(tensors[0]), batch_size)
    opt = _make_optimizer(_checked_param_groups(model, param_groups, lr), optimizer, lr, weight_decay)
    _check_first_batch(model, tensors, val, class_labels)
    generator, dev, base_lrs = _generator(seed), resolve_device(device), [g["lr"] for g in opt.param_groups]
    history, best, started = History(), _Best(), time.perf_counter()
    bar = tqdm(total=total_steps, desc="fit", disable=not progress, leave=False)
    with fast_format(model, dev), _guards(model, history, best, opt, bar, started) as guard:
        tensors = tuple(t.to(dev) for t in tensors)
        while history.steps_run < total_steps:
            guard.epoch_start, losses = _snapshot(model), []
            train_mode(model)
            for index in batches(len(tensors[0]), batch_size, generator)[:total_steps - history.steps_run]:
                for group, base in zip(opt.param_groups, base_lrs):  # warmup, then cosine (or constant)
                    group["lr"] = base * lr_factor(history.steps_run, total_steps, warmup_steps, schedule)
                loss, norm = train_step(model, [t[index] for t in tensors], opt, loss_fn, clip_grad_norm)
                history.log_step(loss, opt.param_groups[-1]["lr"], norm)
                losses.append(loss)
                bar.update()
            _end_of_epoch(model, history, val, device, started, losses)
            bar.set_postfix(history.latest())
            if val is not None and best.update(model, history, early_stopping):
                history.stopped_reason = "early_stopping"
                break
        else:
            history.stopped_reason = "completed"
    if early_stopping is not None:
        _restore(model, best.state)  # the best epoch's weights, also after Ctrl-C
    return history
