"""The input contract of every public tutorlib function, checked in one place.

A dataset is a pair ``(images, labels)``: images float ``N x C x H x W`` in [0, 1], labels 1-D int64.
Each checker here returns the value in that form (NumPy arrays become tensors, float64 images become
float32, int32 labels become int64) or raises an error that says what was wrong, what was given and
what to do. Functions call them *before* they change anything, so bad input never half-trains a model.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch
import torch.nn as nn

Dataset = tuple[torch.Tensor, torch.Tensor]
Data = Dataset | torch.utils.data.TensorDataset  # what fit / evaluate / extract_features accept


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    if isinstance(x, np.ndarray):
        return f"a {x.dtype} NumPy array of shape {x.shape}"
    return f"a {type(x).__name__}"


def as_tensor(x, name: str) -> torch.Tensor:
    """A tensor as it is, a NumPy array as a tensor; anything else is refused with the fix."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise TypeError(f"{name} is a NumPy array of Python objects; stack it into a numeric array first.")
        return torch.from_numpy(np.ascontiguousarray(x))
    raise TypeError(f"{name} must be a torch tensor (or a NumPy array), got {_describe(x)}. "
                    f"Convert it with torch.as_tensor({name}).")


# ----------------------------------------------------------------------------- numbers
def integer(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """A whole number (int or NumPy int, not bool or float) within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number, got {value!r} ({type(value).__name__}).")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else \
            "positive" if minimum == 1 else f"at least {minimum}"
        raise ValueError(f"{name} must be {bounds}, got {value}.")
    return value


def real(value, name: str, low: float = -math.inf, high: float = math.inf, *, low_open: bool = False) -> float:
    """A finite real number in [low, high] (or (low, high] with `low_open`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}).")
    value = float(value)
    too_low = value <= low if low_open else value < low
    if not math.isfinite(value) or too_low or value > high:
        left = "(" if low_open else "["
        where = "" if (low, high) == (-math.inf, math.inf) else \
            f" > {low:g}" if low_open and high == math.inf else \
            f" >= {low:g}" if high == math.inf else f" in {left}{low:g}, {high:g}]"
        raise ValueError(f"{name} must be a finite number{where}, got {value!r}.")
    return value


def positive(value, name: str) -> float:
    """A finite number > 0 (a learning rate, a temperature, a factor)."""
    return real(value, name, 0.0, low_open=True)


def flag(value, name: str) -> bool:
    """A True/False option (a string such as "no" would be truthy and silently mean yes)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {_describe(value)}.")
    return value


def seed(value) -> int:
    """A seed: a whole number from 0 to 2**32 - 1 (what Python, NumPy and torch all accept)."""
    if value is None:
        raise TypeError("seed must be a whole number such as 0, got None. Pick any fixed number so reruns match.")
    return integer(value, "seed", 0, 2**32 - 1)


# ----------------------------------------------------------------------------- tensors
def images(x, name: str = "images", unit_range: bool = True) -> torch.Tensor:
    """The course's image contract: float N x C x H x W in [0, 1], finite, at least one image.

    unit_range=False accepts any finite values: activations cached from a frozen bottom (`models.split`).
    """
    x = as_tensor(x, name)
    if not x.is_floating_point():
        raise TypeError(f"{name} must be float in [0, 1], got {x.dtype}. Convert with `{name}.float() / 255`.")
    if x.ndim != 4:
        fix = "Add the channel axis with `images.unsqueeze(1)`." if x.ndim == 3 else \
            "A single image needs a batch axis too: `image[None]`." if x.ndim in (2,) else \
            "Reshape them to N x C x H x W."
        raise ValueError(f"{name} must be N x C x H x W, got shape {tuple(x.shape)}. {fix}")
    if len(x) == 0 or x[0].numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): pass at least one image with pixels.")
    if x.dtype != torch.float32:
        x = x.float()
    lo, hi = float(x.min()), float(x.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        kind = "images must be finite and lie in [0, 1]" if unit_range else "activations must be finite"
        raise ValueError(f"{name} contain NaN or inf ({kind}). Replace them, e.g. with torch.nan_to_num, "
                         f"or find the step that produced them.")
    if unit_range and (lo < -1e-6 or hi > 1 + 1e-6):
        raise ValueError(f"{name} must lie in [0, 1], found values in [{lo:.3g}, {hi:.3g}]. Divide uint8 images "
                         f"by 255 and replace NaN; models that need normalisation do it themselves.")
    return x


def labels(y, name: str = "labels", num_classes: int | None = None) -> torch.Tensor:
    """Class labels: 1-D int64, non-negative, and below `num_classes` when it is given."""
    y = as_tensor(y, name)
    if y.ndim == 2 and y.shape[1] == 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(y.shape)}. Flatten them: `labels.flatten()`.")
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D tensor of class indices, got shape {tuple(y.shape)}"
                         + (" (one-hot? use `labels.argmax(1)`)." if y.ndim == 2 else "."))
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise TypeError(f"{name} must be a 1-D int64 tensor of class indices, got {y.dtype} of shape "
                        f"{tuple(y.shape)}. Convert whole-number labels with `labels.long()`.")
    if len(y) == 0:
        raise ValueError(f"{name} is empty: pass at least one labelled sample.")
    y = y.long()
    lo, hi = int(y.min()), int(y.max())
    if lo < 0:
        raise ValueError(f"{name} must be class indices 0, 1, 2, ...; found {lo}. Relabel them "
                         f"(e.g. with data.select_classes).")
    if num_classes is not None and hi >= num_classes:
        raise ValueError(f"{name} run from {lo} to {hi} but the model has {num_classes} outputs. Relabel with "
                         f"data.select_classes or call surgery.replace_head(model, {hi + 1}).")
    return y


def dataset(data, name: str = "data", unit_range: bool = True) -> tuple[torch.Tensor, ...]:
    """``(images, labels, extra...)`` or a TensorDataset -> checked tensors of one length."""
    if isinstance(data, torch.utils.data.TensorDataset):
        data = tuple(data.tensors)
    if isinstance(data, (torch.Tensor, np.ndarray)) or not isinstance(data, (tuple, list)) or len(data) < 2:
        raise TypeError(f"{name} must be an (images, labels) pair of tensors or a TensorDataset; got "
                        f"{_describe(data)}" + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else "")
                        + ". Pass (images, labels).")
    tensors = [as_tensor(t, f"{name}[{i}]") for i, t in enumerate(data)]
    if len({len(t) for t in tensors}) != 1:
        raise ValueError(f"{name}: images and labels differ in length: {[len(t) for t in tensors]}. "
                         f"Take the same rows of each (data.take).")
    return (images(tensors[0], f"{name} images", unit_range), *tensors[1:])


def class_dataset(data, name: str = "data", num_classes: int | None = None) -> Dataset:
    """A labelled dataset whose labels are class indices: ``(images, labels)``."""
    tensors = dataset(data, name)
    return tensors[0], labels(tensors[1], f"{name} labels", num_classes)


def features(f, name: str = "features", min_rows: int = 1) -> torch.Tensor:
    """An N x D matrix of finite numbers (conv maps are flattened), with at least `min_rows` rows."""
    f = as_tensor(f, name)
    if f.ndim < 2:
        raise ValueError(f"{name} must be N x D (one row per example), got shape {tuple(f.shape)}. "
                         f"For one feature per example use `{name}[:, None]`.")
    if not (f.is_floating_point() or f.dtype in (torch.int32, torch.int64, torch.uint8)):
        raise TypeError(f"{name} must be numeric, got {f.dtype}.")
    f = f.flatten(1).float()
    if len(f) < min_rows or f.shape[1] == 0:
        raise ValueError(f"{name} has shape {tuple(f.shape)}: it needs at least {min_rows} rows and 1 column.")
    if not torch.isfinite(f).all():
        raise ValueError(f"{name} contain NaN or inf ({int((~torch.isfinite(f)).sum())} values). "
                         f"Check the model that produced them (a diverged run?).")
    return f


def module(model, name: str = "model") -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {_describe(model)}.")
    return model


def input_shape(shape, batch_size: int = 1) -> tuple[int, ...]:
    """One example's shape, e.g. ``(C, H, W)``, gets a batch axis; a 4-D ``(N, C, H, W)`` is used as it is."""
    shape = tuple(shape) if isinstance(shape, (tuple, list, torch.Size)) else None
    if not shape or len(shape) > 4 or any(
            isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in shape):
        raise ValueError(f"input_shape must be one example's shape such as (1, 28, 28) (or a full (N, C, H, W)) "
                         f"of positive whole numbers; got {shape!r}.")
    return tuple(int(d) for d in shape) if len(shape) == 4 else (batch_size, *map(int, shape))
