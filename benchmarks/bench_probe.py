"""3. Frozen backbones: train the head on cached features vs run the frozen backbone every epoch.

The baseline is the PyTorch transfer-learning tutorial's fixed-feature-extractor recipe: the frozen
backbone runs on every batch of every epoch, the new head trains with SGD (momentum 0.9, lr 1e-3,
batch 4, StepLR(7, 0.1)) for 25 epochs. "Cached" trains the same head with the same recipe and the
same batch order, on features computed once (`evaluation.extract_features`), so the accuracy must match;
the course's own `evaluation.linear_probe` (L-BFGS on standardised cached features) is shown beside them.
Backbone: EfficientNet-Lite0 with ImageNet weights at 64 px, as in chapters 1 and 7.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import halves, interleave, table
from tutorlib import data, evaluation, models

EPOCHS, BATCH, PER_CLASS = 25, 4, 100


def train_head(batches_per_epoch, n_features: int, num_classes: int) -> nn.Linear:
    """The tutorial's head recipe; `batches_per_epoch(epoch)` yields (features, labels)."""
    torch.manual_seed(0)
    head = nn.Linear(n_features, num_classes)
    opt = torch.optim.SGD(head.parameters(), lr=1e-3, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.1)
    for epoch in range(EPOCHS):
        for feats, labels in batches_per_epoch(epoch):
            loss = F.cross_entropy(head(feats), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    return head


def orders(n: int):
    g = torch.Generator().manual_seed(0)
    return [torch.randperm(n, generator=g) for _ in range(EPOCHS)]


def cached(backbone, train_set, test_set) -> float:
    feats, test_feats = evaluation.extract_features(backbone, train_set), evaluation.extract_features(backbone, test_set)
    labels, perm = train_set[1], orders(len(train_set[1]))
    head = train_head(lambda e: ((feats[perm[e][i:i + BATCH]], labels[perm[e][i:i + BATCH]])
                                 for i in range(0, len(labels), BATCH)), feats.shape[1], 5)
    return float((head(test_feats).argmax(1) == test_set[1]).float().mean())


@torch.no_grad()
def backbone_features(backbone, images: torch.Tensor) -> torch.Tensor:
    return evaluation.extract_features(backbone, images, batch_size=BATCH)


def per_epoch_backbone(backbone, train_set, test_set) -> float:
    images, labels = train_set
    perm = orders(len(labels))

    def batches(e):
        for i in range(0, len(labels), BATCH):
            idx = perm[e][i:i + BATCH]
            yield backbone_features(backbone, images[idx]), labels[idx]  # the frozen backbone, every batch

    head = train_head(batches, 1280, 5)
    return float((head(backbone_features(backbone, test_set[0])).argmax(1) == test_set[1]).float().mean())


def course_probe(backbone, train_set, test_set) -> float:
    probe = evaluation.linear_probe(evaluation.extract_features(backbone, train_set), train_set[1])
    return probe.score(evaluation.extract_features(backbone, test_set), test_set[1])


def run(repeats: int = 2) -> tuple[list[dict], dict]:
    _, b_train, b_test = halves()
    train_set = data.take(b_train, data.few_shot(b_train[1], PER_CLASS, seed=0))
    test_set = data.take(b_test, data.few_shot(b_test[1], PER_CLASS, seed=0))
    backbone = models.efficientnet_lite("lite0", input_size=64).eval()
    t = interleave({"cached": lambda: cached(backbone, train_set, test_set),
                    "per-epoch backbone": lambda: per_epoch_backbone(backbone, train_set, test_set),
                    "linear_probe": lambda: course_probe(backbone, train_set, test_set)}, repeats, warmup=False)
    acc = {k: v[0] for k, v in t.results.items()}
    gap = abs(acc["cached"] - acc["per-epoch backbone"]) * 100
    speedup = t.median("per-epoch backbone") / t.median("cached")
    rows = [
        {"figure": f"3. frozen Lite0, head trained 25 epochs: cached features vs backbone every epoch "
                   f"(accuracy {acc['cached']:.3f} vs {acc['per-epoch backbone']:.3f})",
         "ours (s)": t.spread("cached"), "baseline (s)": t.spread("per-epoch backbone"),
         "ratio (median, min-max)": t.ratio("cached", "per-epoch backbone"), "target": ">= 5x faster, accuracy within 0.5 pt",
         "met": f"{'yes' if speedup >= 5 and gap <= 0.5 else 'no'}: {speedup:.1f}x, gap {gap:.1f} pt"},
        {"figure": f"3b. course `linear_probe` (L-BFGS, cached) vs backbone every epoch (accuracy {acc['linear_probe']:.3f})",
         "ours (s)": t.spread("linear_probe"), "baseline (s)": t.spread("per-epoch backbone"),
         "ratio (median, min-max)": t.ratio("linear_probe", "per-epoch backbone"), "target": "report",
         "met": f"{t.median('per-epoch backbone') / t.median('linear_probe'):.1f}x faster, "
                f"{(acc['linear_probe'] - acc['per-epoch backbone']) * 100:+.1f} pt"},
    ]
    return rows, {"setup": f"B, {PER_CLASS} train / {PER_CLASS} test images per class, Lite0 at 64 px, "
                           f"{repeats} interleaved repeats", "accuracy": acc}


if __name__ == "__main__":
    rows, facts = run()
    print(table(rows)), print(facts)
