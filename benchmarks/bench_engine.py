"""8. Many draws at once: `engine.fit_many` against one-by-one `train.fit`, for chapter 1's positive-control protocol.

A draw: a fresh width-16 course CNN fine-tuned for 120 steps (AdamW, lr 3e-3, batch 32) on 5 labelled images per
class of B, then scored on B's 2,500 test images. Draws per minute, both ways, in one run; and the batched
training step's FLOP/s as a share of this machine's float32 matmul rate (`bench_utilisation.py`'s ceiling)
next to one-by-one `fit`'s. A training step costs about three forward passes (forward, backward through
activations and weights).
"""
from __future__ import annotations

import torch

from common import halves, interleave, table
from tutorlib import analysis, engine, evaluation, models, seeds, train

K, STEPS, SHOTS, WIDTH, N = 16, 120, 5, 16, 2048


def _targets(b_train):
    draw_seeds = [seeds.derive(0, f"draw {k}") for k in range(K)]
    from tutorlib.data import few_shot, take
    return draw_seeds, [take(b_train, few_shot(b_train[1], SHOTS, seed=s)) for s in draw_seeds]


def one_by_one(draw_seeds, targets, test):
    for s, t in zip(draw_seeds, targets):
        net = models.fresh_cnn(WIDTH, 4, 5, seed=s)
        train.fit(net, t, steps=STEPS, lr=3e-3, batch_size=32, seed=s, progress=False)
        evaluation.evaluate(net, test)


def together(draw_seeds, targets, test):
    nets = [models.fresh_cnn(WIDTH, 4, 5, seed=s) for s in draw_seeds]
    engine.fit_many(nets, targets, steps=STEPS, lr=3e-3, seeds=draw_seeds)
    engine.evaluate_many(nets, test)


def run(repeats: int = 3) -> tuple[list[dict], dict]:
    _, b_train, b_test = halves()
    draw_seeds, targets = _targets(b_train)
    a, b = torch.rand(N, N), torch.rand(N, N)
    t = interleave({"one by one": lambda: one_by_one(draw_seeds, targets, b_test),
                    "together": lambda: together(draw_seeds, targets, b_test),
                    "matmul": lambda: [torch.mm(a, b) for _ in range(5)]}, repeats)
    peak = 5 * 2 * N ** 3 / t.median("matmul")
    flops = analysis.count_flops(models.fresh_cnn(WIDTH, 4, 5), (1, 28, 28))
    train_flops = 3 * flops * K * STEPS * SHOTS * 5 + flops * K * len(b_test[1])  # 25 images a step; scoring
    rows = [{"figure": f"8. {K} few-shot draws (width {WIDTH}, {STEPS} steps, {SHOTS}/class, scored on "
                       f"{len(b_test[1])}): engine.fit_many vs one-by-one fit",
             "ours (s)": t.spread("together"), "baseline (s)": t.spread("one by one"),
             "ratio (median, min-max)": t.ratio("together", "one by one"), "target": "<= 0.25 (>= 4x draws/min)",
             "met": "yes" if t.median("together") <= 0.25 * t.median("one by one") else "no"}]
    facts = {"draws_per_minute": {arm: 60 * K / t.median(arm) for arm in ("one by one", "together")},
             "matmul_gflops": peak / 1e9,
             "share_of_matmul": {arm: train_flops / t.median(arm) / peak for arm in ("one by one", "together")}}
    return rows, facts


if __name__ == "__main__":
    rows, facts = run()
    print(table(rows)), print(facts)
