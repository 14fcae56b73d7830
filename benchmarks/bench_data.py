"""2. Data path: the course's in-memory tensor batching vs a torchvision Dataset + DataLoader.

The baseline is how the PyTorch tutorials feed images: a Dataset that builds a PIL image per sample
and applies `transforms.ToTensor()`, batched by a DataLoader (shuffle, num_workers=0 as in a notebook
on a laptop; more workers compete with the model for the same two cores). Measured over one epoch of
B's 7,500 training images, alone and with a training step on each batch.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from common import halves, interleave, table
from tutorlib import models

BATCH = 128


class PILDataset(Dataset):
    """uint8 arrays -> PIL image -> ToTensor, one sample at a time (the tutorials' pattern)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def tensor_batches(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
    order = torch.randperm(len(images), generator=generator)
    for start in range(0, len(images), BATCH):
        idx = order[start:start + BATCH]
        yield images[idx], labels[idx]


def epoch(batches, model=None, opt=None) -> int:
    seen = 0
    for x, y in batches:
        if model is not None:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        seen += len(y)
    return seen


def run(repeats: int = 3) -> tuple[list[dict], dict]:
    _, (images, labels), _ = halves()
    pil = PILDataset((images[:, 0] * 255).round().byte().numpy(), labels.numpy())
    loader = DataLoader(pil, batch_size=BATCH, shuffle=True, num_workers=0,
                        generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = models.small_cnn(16, 4, num_classes=10).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    t = interleave({"tensors": lambda: epoch(tensor_batches(images, labels, g)),
                    "DataLoader": lambda: epoch(loader),
                    "tensors + train": lambda: epoch(tensor_batches(images, labels, g), model, opt),
                    "DataLoader + train": lambda: epoch(loader, model, opt)}, repeats)
    assert set(t.results["tensors"]) == set(t.results["DataLoader"]) == {len(labels)}
    rows = [
        {"figure": "2. data path, one epoch, data only: tensors vs Dataset+DataLoader (PIL, ToTensor)",
         "ours (s)": t.spread("tensors", fmt="{:.3f}"), "baseline (s)": t.spread("DataLoader", fmt="{:.3f}"),
         "ratio (median, min-max)": t.ratio("tensors", "DataLoader"), "target": "report the speed-up",
         "met": f"{t.median('DataLoader') / t.median('tensors'):.0f}x faster"},
        {"figure": "2b. data path, one training epoch (width-16 CNN): tensors vs DataLoader",
         "ours (s)": t.spread("tensors + train"), "baseline (s)": t.spread("DataLoader + train"),
         "ratio (median, min-max)": t.ratio("tensors + train", "DataLoader + train"), "target": "report the speed-up",
         "met": f"{t.median('DataLoader + train') / t.median('tensors + train'):.2f}x faster"},
    ]
    return rows, {"setup": f"{len(labels)} images of 28x28, batch {BATCH}, {repeats} interleaved repeats"}


if __name__ == "__main__":
    rows, facts = run()
    print(table(rows)), print(facts)
