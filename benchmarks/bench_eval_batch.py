"""9. Images per forward pass when scoring: `evaluation.predict` at batch 32 to 1024, Lite0 and the course CNN.

Scoring has no gradient to share: every batch size gives the same logits (bit-identical on the machine that
chose the default); what changes is memory. At batch 1024 a Lite0 layer's activations (tens of MB at 64 px)
leave the CPU's cache and every layer allocates fresh pages; at 64 they stay. The course's default (`evaluation.EVAL_BATCH`) is the row marked "default".
"""
from __future__ import annotations

import torch

from common import interleave, table
from tutorlib import evaluation, models

BATCHES = (32, 64, 256, 1024)


def run(repeats: int = 3) -> tuple[list[dict], dict]:
    lite, cnn = models.lite0(), models.load_checkpoint("A_w16")
    cases = {"Lite0, 500 images": (lite, torch.rand(500, 1, 28, 28)),
             "CNN A_w16, 2,500 images": (cnn, torch.rand(2500, 1, 28, 28))}
    rows, facts = [], {}
    for label, (model, images) in cases.items():
        t = interleave({b: (lambda b=b: evaluation.predict(model, images, batch_size=b)) for b in BATCHES}, repeats)
        for b in BATCHES:
            rows.append({"figure": f"9. scoring {label} at batch {b}" + (" (default)" if b == evaluation.EVAL_BATCH else ""),
                         "ours (s)": t.spread(b), "baseline (s)": t.spread(1024),
                         "ratio (median, min-max)": t.ratio(b, 1024), "target": "-", "met": "-"})
        facts[label] = {b: t.median(b) for b in BATCHES}
    return rows, facts


if __name__ == "__main__":
    rows, facts = run()
    print(table(rows)), print(facts)
