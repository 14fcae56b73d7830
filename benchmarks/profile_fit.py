"""Where a training step's time goes: torch.profiler over `fit` on the width-16 course CNN.

    python benchmarks/profile_fit.py [--rows 15]

Prints the operators that take the most CPU time (self time, so nothing is counted twice), and the
share spent outside PyTorch operators (Python, the loop's bookkeeping).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import halves  # noqa: E402
from tutorlib import models, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args()
    (images, labels), _, _ = halves()
    torch.manual_seed(0)
    model = models.small_cnn(16, 4, num_classes=5)
    train.fit(model, (images[:1024], labels[:1024]), epochs=1, lr=1e-3, seed=0, progress=False)  # warm-up
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train.fit(model, (images, labels), epochs=1, lr=1e-3, seed=0, progress=False)
    wall = time.perf_counter() - start
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    op_seconds = sum(e.self_cpu_time_total for e in events) / 1e6
    print(f"wall {wall:.2f} s under the profiler; operators' self time {op_seconds:.2f} s "
          f"(summed over {torch.get_num_threads()} threads' dispatch, so compare shares, not seconds)")


if __name__ == "__main__":
    main()
