"""A submission's answers as plain data: written in its own kernel, read back and checked in another one.

Why: a self-check that runs in the submission's kernel can be rebound by the submission. Read back as JSON
and tensors (`torch.load(weights_only=True)`, never a pickle), the answers are checked in a kernel that runs
the answer key, which the submission never touches and whose hidden tests it never sees.
"""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

ANSWERS_JSON, ANSWERS_PT = "answers.json", "answers.pt"
MAX_BYTES = 256 * 2**20  # a course model's weights are a few MB; more is not an answer
PLAIN = (type(None), bool, int, float, str)


def export(names: list[str], namespace: dict, folder: str = ".") -> None:
    """Write the answers `names` from `namespace` (the kernel's globals) to `folder`: runs in the submission's kernel."""
    import torch

    described, tensors = {}, {}
    for name in names:
        value = namespace.get(name, Ellipsis)
        if value is Ellipsis:
            described[name] = {"kind": "missing"}
        elif isinstance(value, torch.nn.Module):
            described[name] = {"kind": "model"}
            tensors[name] = {k: v.detach().clone() for k, v in value.state_dict().items()}
        elif isinstance(value, torch.Tensor):
            described[name], tensors[name] = {"kind": "tensor"}, value.detach().clone()
        elif isinstance(value, PLAIN) or (hasattr(value, "item") and getattr(value, "ndim", None) == 0):
            plain = value if isinstance(value, PLAIN) else value.item()  # a NumPy number: its Python value
            described[name] = {"kind": "value", "value": plain}
        else:
            described[name] = {"kind": "unsupported", "type": type(value).__name__}
    Path(folder, ANSWERS_JSON).write_text(json.dumps(described))
    torch.save(tensors, Path(folder, ANSWERS_PT))


def read(folder: Path, names: list[str]) -> dict[str, dict] | None:
    """The answers a submission's kernel wrote, validated as data; None if it wrote none (it was stopped)."""
    import torch

    text_path, tensor_path = Path(folder, ANSWERS_JSON), Path(folder, ANSWERS_PT)
    if not text_path.is_file() or not tensor_path.is_file():
        return None
    if text_path.stat().st_size > MAX_BYTES or tensor_path.stat().st_size > MAX_BYTES:
        return {name: _unreadable("larger than any answer") for name in names}
    try:
        described = json.loads(text_path.read_text())
        with warnings.catch_warnings():  # torch's notes on a file it refuses are about the file, not for the teacher
            warnings.simplefilter("ignore")
            tensors = torch.load(tensor_path, weights_only=True, map_location="cpu")
    except Exception as err:  # anything the submission wrote is untrusted: a bad file is a wrong answer
        return {name: _unreadable(type(err).__name__) for name in names}
    if not isinstance(described, dict) or not isinstance(tensors, dict):
        return {name: _unreadable("not a table of answers") for name in names}
    return {name: _validated(described.get(name), tensors.get(name)) for name in names}


def _validated(entry: Any, tensor: Any) -> dict:
    import torch

    kind = entry.get("kind") if isinstance(entry, dict) else None
    if kind == "missing":
        return {"kind": "missing"}
    if kind == "value" and isinstance(entry.get("value"), PLAIN):
        return {"kind": "value", "value": entry["value"]}
    if kind == "tensor" and isinstance(tensor, torch.Tensor):
        return {"kind": "tensor", "tensor": tensor}
    if kind == "model" and isinstance(tensor, dict) and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensor.items()):
        return {"kind": "model", "tensor": tensor}
    if kind == "unsupported" and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,60}", str(entry.get("type"))):
        return {"kind": "unsupported", "type": entry["type"]}
    return _unreadable("not a value the grader reads back")


def _unreadable(why: str) -> dict:
    return {"kind": "unreadable", "why": why}


def binding(names: list[str], answers: dict[str, dict], folder: Path, tag: str) -> str:
    """Code that sets `names` to the answers in the checking kernel (tensors go through files in `folder`)."""
    import torch

    lines = []
    for i, name in enumerate(names):
        answer = answers[name]
        kind = answer["kind"]
        if kind in ("model", "tensor"):
            path = Path(folder, f"answer-{tag}-{i}.pt")
            torch.save(answer["tensor"], path)
            loaded = f"__torch.load({str(path)!r}, weights_only=True)"
            lines.append(f"{name} = __answers.as_model(__key_answers[{i}], {loaded})" if kind == "model"
                         else f"{name} = {loaded}")
        elif kind == "value":
            lines.append(f"{name} = __json.loads({json.dumps(answer['value'])!r})")
        elif kind == "missing":
            lines.append(f"{name} = None  # not defined after the submission ran")
        else:
            why = (f"{name} is a {answer['type']}; the grader reads back numbers, text, tensors and models"
                   if kind == "unsupported" else f"{name} could not be read back ({answer['why']})")
            lines.append(f"raise AssertionError({'Not yet: ' + why!r})")
    return "\n".join(lines)


def as_model(like: Any, state: dict) -> Any:
    """The answer key's own model for this exercise, carrying the submission's weights."""
    import copy

    import torch

    if not isinstance(like, torch.nn.Module):
        raise AssertionError("Not yet: this exercise's answer is not a model, but the submission gave one.")
    model = copy.deepcopy(like)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as err:
        raise AssertionError(f"Not yet: the answer is not a model of the expected architecture "
                             f"({str(err).splitlines()[0][:160]}).") from None
    return model
