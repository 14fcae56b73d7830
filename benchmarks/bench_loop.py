"""1. Training-loop overhead: `tutorlib.train.fit` vs a minimal hand-written PyTorch loop.

Same model, data, batches (the same seeded permutation), steps and optimizer. The hand loop is run
twice: as a beginner writes it, and with the model in channels-last memory format as `fit` does,
so the second ratio isolates what `fit`'s extras cost (NaN guard, gradient-norm log, per-epoch
snapshot, learning-rate schedule).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from common import halves, interleave, table
from tutorlib import models, train
from tutorlib.seeds import seed_everything

EPOCHS, BATCH, LR, SEED = 2, 128, 3e-3, 0


def fresh_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return models.small_cnn(16, 4, num_classes=5)


def hand_loop(images: torch.Tensor, labels: torch.Tensor, channels_last: bool) -> float:
    model = fresh_model()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    generator = seed_everything(SEED)
    for _ in range(EPOCHS):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), BATCH):
            idx = order[start:start + BATCH]
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return loss.item()


def with_fit(images: torch.Tensor, labels: torch.Tensor) -> float:
    history = train.fit(fresh_model(), (images, labels), epochs=EPOCHS, lr=LR, batch_size=BATCH,
                        schedule="constant", seed=SEED, progress=False)
    return history.step_loss[-1]


def run(repeats: int = 5) -> tuple[list[dict], dict]:
    (images, labels), _, _ = halves()
    t = interleave({"fit": lambda: with_fit(images, labels),
                    "hand loop": lambda: hand_loop(images, labels, channels_last=False),
                    "hand loop, channels-last": lambda: hand_loop(images, labels, channels_last=True)}, repeats)
    n = EPOCHS * len(images)
    loss_gap = max(abs(a - b) for a, b in zip(t.results["fit"], t.results["hand loop, channels-last"]))
    rows = [
        {"figure": "1. training loop: `fit` / hand loop (channels-last, same as fit)",
         "ours (s)": t.spread("fit"), "baseline (s)": t.spread("hand loop, channels-last"),
         "ratio (median, min-max)": t.ratio("fit", "hand loop, channels-last"), "target": "<= 1.05",
         "met": "yes" if t.median("fit") / t.median("hand loop, channels-last") <= 1.05 else "no"},
        {"figure": "1b. training loop: `fit` / hand loop as usually written (contiguous)",
         "ours (s)": t.spread("fit"), "baseline (s)": t.spread("hand loop"),
         "ratio (median, min-max)": t.ratio("fit", "hand loop"), "target": "<= 1.05",
         "met": "yes" if t.median("fit") / t.median("hand loop") <= 1.05 else "no"},
    ]
    facts = {"images_per_second_fit": n / t.median("fit"), "final_loss_gap": loss_gap,
             "setup": f"width-16 CNN, {len(images)} images x {EPOCHS} epochs, batch {BATCH}, AdamW lr {LR}, "
                      f"{repeats} interleaved repeats"}
    return rows, facts


if __name__ == "__main__":
    rows, facts = run()
    print(table(rows)), print(facts)
