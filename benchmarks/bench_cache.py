"""3c. Fine-tuning above a frozen cut: run the frozen stages once (`cache=True`) vs on every step.

Chapters 2, 4 and 6 fine-tune ImageNet EfficientNet-Lite0 (64 px) with its first stages frozen. Frozen
stages give the same output every step, so `recipes.finetune(..., cache=True)` runs them once over the
training set and trains the top on what they produced; `cache=False` is the usual way (`surgery.freeze`),
the frozen stages running forward on every batch. Same model, seed, batch order and steps, so the two
must end with the same test accuracy; the figure is the ratio of their wall times, in one run.
"""
from __future__ import annotations

from common import halves, interleave
from tutorlib import data, evaluation, models, recipes

STEPS, PER_CLASS, CUTS = 60, 50, ("blocks.2", "blocks.4")


def run(repeats: int = 2) -> tuple[list[dict], dict]:
    _, b_train, b_test = halves()
    target = data.take(b_train, data.few_shot(b_train[1], PER_CLASS, seed=0))
    test_set = data.take(b_test, data.few_shot(b_test[1], 100, seed=0))
    lite = models.lite0()

    def tune(cut: str, cache: bool):
        tuned, _ = recipes.finetune(lite, target, steps=STEPS, lr=1e-3, seed=0, frozen_groups=cut, cache=cache)
        return evaluation.evaluate(tuned, test_set)["accuracy"]

    rows, facts = [], {}
    for cut in CUTS:
        t = interleave({"cached": lambda: tune(cut, True), "frozen": lambda: tune(cut, False)}, repeats)
        acc = {k: v[0] for k, v in t.results.items()}
        speedup = t.median("frozen") / t.median("cached")
        gap = abs(acc["cached"] - acc["frozen"]) * 100
        rows.append({"figure": f"3c. Lite0 fine-tuned above {cut} for {STEPS} steps: frozen stages run once "
                               f"(cache=True) vs on every step (accuracy {acc['cached']:.3f} vs {acc['frozen']:.3f})",
                     "ours (s)": t.spread("cached"), "baseline (s)": t.spread("frozen"),
                     "ratio (median, min-max)": t.ratio("cached", "frozen"), "target": "faster, same accuracy",
                     "met": f"{'yes' if speedup > 1 and gap <= 0.5 else 'no'}: {speedup:.1f}x, gap {gap:.1f} pt"})
        facts[cut] = {"accuracy": acc, "speedup": speedup}
    return rows, {"setup": f"B, {PER_CLASS} train images per class, 500 test images, Lite0 at 64 px, "
                           f"{repeats} interleaved repeats", **facts}


if __name__ == "__main__":
    from common import table

    print(table(run()[0]))
