"""How a model is run, shared by `evaluation`, `train` and `analysis` (internal: learners call those).

The device a learner asks for (with an error that says what to pass without a GPU), channels-last weights
for the time of a computation, every submodule's train/eval flag restored afterwards, and PyTorch's shape
errors turned into ones that say what to change.
"""
from __future__ import annotations

import contextlib
import re

import torch
import torch.nn as nn


def resolve_device(device: str) -> torch.device:
    """'cpu', 'cuda', 'cuda:1' or 'auto', with an error that says what to pass on a machine without a GPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but this machine has no usable CUDA GPU. "
                         f"Use device='cpu' (the course's default) or device='auto'.")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"Unknown device {device!r}: use 'cpu', 'cuda' or 'auto'.") from err


def _is_channels_last(model: nn.Module) -> bool:
    maps = [p for p in model.parameters() if p.ndim == 4]
    return bool(maps) and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                              for p in maps)


@contextlib.contextmanager
def fast_format(model: nn.Module, device: torch.device):
    """Channels-last weights inside the block (~1.7x faster CPU convolutions, see benchmarks/), the
    model's own format restored after, so a learner's later `.view()` on a weight still works."""
    was_channels_last = _is_channels_last(model)
    model.to(device, memory_format=torch.channels_last)
    try:
        yield model
    finally:
        if not was_channels_last:
            model.to(memory_format=torch.contiguous_format)


@contextlib.contextmanager
def modes_kept(model: nn.Module):
    """Restore every submodule's train/eval flag on exit (a frozen BatchNorm stays in eval)."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def is_shape_error(err: RuntimeError) -> bool:
    return any(word in str(err) for word in ("channels", "shape", "size", "dimension"))


def input_mismatch(model: nn.Module, images: torch.Tensor, err: RuntimeError) -> ValueError:
    """Turn PyTorch's shape error deep inside a layer into one that says what to change."""
    shape, message = tuple(images.shape[1:]), str(err)
    channels = re.search(r"to have (\d+) channels, but got (\d+) channels", message)
    if channels and channels.groups() == ("1", "3"):
        fix = ("Colour images into a grey model: pass `images.mean(1, keepdim=True)` (resized to the model's size), "
               "or build the model with in_channels=3.")
    elif channels and channels.group(1) == "3":
        fix = ("Grey images into a colour (e.g. ImageNet) model: wrap it with models.AdaptInput(model, image_size) "
               "or pass images.expand(-1, 3, -1, -1); your own network: build it with in_channels=1.")
    elif channels:
        fix = f"Build the model with in_channels={shape[0]}, or convert the images to {channels.group(1)} channels."
    elif "too small" in message or "can't be greater than actual input" in message:
        fix = ("They are too small for its pooling, which shrinks them below one pixel. Upsample them first, "
               "e.g. `F.interpolate(images, size=28, mode='bilinear')`, or use a shallower model.")
    else:
        fix = ("Check the image size the model expects; for an ImageNet model wrap it with "
               "models.AdaptInput(model, image_size).")
    return ValueError(f"{type(model).__name__} cannot take images of shape C x H x W = {shape}: {message} {fix}")
