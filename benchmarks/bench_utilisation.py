"""5. Hardware utilisation: the course CNN's training FLOP/s as a fraction of this machine's matmul FLOP/s.

The ceiling is `torch.mm` of two 2048 x 2048 float32 matrices (2 n^3 FLOPs), on the same threads.
A training step costs about three forward passes (forward, and backward through activations and
weights), so training FLOP/s = 3 x forward FLOPs per image (`analysis.count_flops`) x images/s.
"""
from __future__ import annotations

import torch

from common import halves, interleave, table
from tutorlib import analysis, evaluation, models, train

N = 2048


def matmul(a: torch.Tensor, b: torch.Tensor) -> None:
    for _ in range(5):
        torch.mm(a, b)


def run(repeats: int = 3) -> tuple[list[dict], dict]:
    (images, labels), _, _ = halves()
    a, b = torch.rand(N, N), torch.rand(N, N)
    torch.manual_seed(0)
    cnn = models.small_cnn(16, 4, num_classes=5)
    lite0 = models.efficientnet_lite("lite0", input_size=64).eval()
    probe_images = images[:1000]
    t = interleave({
        "matmul": lambda: matmul(a, b),
        "CNN training epoch": lambda: train.fit(cnn, (images, labels), epochs=1, lr=1e-3, seed=0, progress=False),
        "CNN inference": lambda: evaluation.predict(cnn, images),
        "Lite0 inference": lambda: evaluation.predict(lite0, probe_images, batch_size=256),
    }, repeats)
    peak = 5 * 2 * N ** 3 / t.median("matmul")
    cnn_flops = analysis.count_flops(cnn, (1, 28, 28))
    lite_flops = analysis.count_flops(lite0, (1, 28, 28))
    achieved = {"CNN training epoch": 3 * cnn_flops * len(images) / t.median("CNN training epoch"),
                "CNN inference": cnn_flops * len(images) / t.median("CNN inference"),
                "Lite0 inference": lite_flops * len(probe_images) / t.median("Lite0 inference")}
    rows = [{"figure": f"5. utilisation: {arm} (forward {flops / 1e6:.1f} MFLOP/image)",
             "ours (s)": t.spread(arm), "baseline (s)": f"matmul {peak / 1e9:.0f} GFLOP/s",
             "ratio (median, min-max)": f"{achieved[arm] / 1e9:.1f} GFLOP/s = {achieved[arm] / peak:.1%} of matmul",
             "target": "report", "met": "-"}
            for arm, flops in (("CNN training epoch", cnn_flops), ("CNN inference", cnn_flops),
                               ("Lite0 inference", lite_flops))]
    return rows, {"matmul_gflops": peak / 1e9, "achieved_gflops": {k: v / 1e9 for k, v in achieved.items()}}


if __name__ == "__main__":
    rows, facts = run()
    print(table(rows)), print(facts)
