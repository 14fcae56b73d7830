"""7. Speed on a busy machine: training with and without one competing busy process, per thread policy.

A classroom laptop is never idle (a second kernel, the grader, a browser tab). Each arm runs in a fresh
Python process, so torch's thread pool starts as a learner's would:

* "torch default": every core, OpenMP threads spinning while they wait (``TUTORLIB_THREADS`` = cores);
* "tutorlib": no pin; `tutorlib.threads` sets one thread per core but one, once, whatever the load.

Each arm times two workloads, chapter 3's 30-layer plain net with BatchNorm (SGD, batch 64) and the course
CNN of width 16 (AdamW, batch 128), first on an idle machine and then beside `python -c "while True: pass"`;
the idle and busy runs of every arm are interleaved. The figure is busy time / idle time per arm (1.0 = no
slowdown) and each arm's idle time against torch's default. Each run also records its final training
loss: tutorlib's must be the same idle and busy (the count never follows the load).

7b runs chapter 3 (quick profile) in a fresh Jupyter kernel, as `make course` and JupyterLab do, once idle and
once beside the busy process, with tutorlib's default threads.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from common import table

WORKLOAD = r"""
import json, time, torch
from tutorlib import models, train
torch.manual_seed(0)
x, y = torch.rand(2048, 1, 28, 28), torch.randint(0, 10, (2048,))
out = {}
net = models.plain_net(30, width=128, batchnorm=True)
t = time.perf_counter(); train.fit(net, (x, y), steps=96, lr=0.02, batch_size=64, optimizer="sgd", progress=False, seed=0)
out["plain30"] = time.perf_counter() - t
cnn = models.small_cnn(16, 4, 10)
t = time.perf_counter(); train.fit(cnn, (x, y), steps=32, lr=1e-3, batch_size=128, progress=False, seed=0)
out["cnn16"] = time.perf_counter() - t
out["threads_at_end"] = torch.get_num_threads()
torch.manual_seed(0)
seeded = models.small_cnn(16, 4, 10)
out["final_loss"] = train.fit(seeded, (x, y), steps=8, lr=1e-3, batch_size=128, progress=False, seed=0).step_loss[-1]
print(json.dumps(out))
"""

ARMS = {"torch default": {"TUTORLIB_THREADS": str(os.cpu_count())},
        "tutorlib": {}}


def run_arm(env_extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TUTORLIB_THREADS", "OMP_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-c", WORKLOAD], env={**env, **env_extra}, capture_output=True,
                            text=True, timeout=900, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def with_competitor(fn):
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        return fn()
    finally:
        busy.kill()
        busy.wait()


def chapter_seconds(name: str = "03_gradients.ipynb") -> float:
    """Wall time of one chapter, quick profile, in a fresh kernel (as `make course` runs it)."""
    import tempfile
    from pathlib import Path

    from tutorlib.tools.kernels import execute
    from tutorlib.tools.paths import NOTEBOOKS

    os.environ["TUTORLIB_PROFILE"] = "quick"
    start = time.perf_counter()
    _, error, _ = execute(NOTEBOOKS / name, Path(tempfile.mkdtemp()) / "results.jsonl")
    if error:
        raise RuntimeError(f"{name} failed: {error}")
    return time.perf_counter() - start


def run_chapter(repeats: int = 1) -> tuple[list[dict], dict]:
    idle, busy = [], []
    for _ in range(repeats):
        idle.append(chapter_seconds())
        busy.append(with_competitor(chapter_seconds))
    row = {"figure": "7b. chapter 3 (quick) in a kernel: tutorlib", "idle (s)": f"{statistics.median(idle):.0f}",
           "busy (s)": f"{statistics.median(busy):.0f}", "busy / idle": f"{statistics.median(busy) / statistics.median(idle):.2f}",
           "idle / default idle": "-"}
    return [row], {"chapter3_idle_s": idle, "chapter3_busy_s": busy}


def run(repeats: int = 3) -> tuple[list[dict], dict]:
    runs = {(arm, load): [] for arm in ARMS for load in ("idle", "busy")}
    for _ in range(repeats):
        for arm, env in ARMS.items():
            runs[(arm, "idle")].append(run_arm(env))
            runs[(arm, "busy")].append(with_competitor(lambda: run_arm(env)))
    rows = []
    for arm in ARMS:
        for work in ("plain30", "cnn16"):
            idle = statistics.median(r[work] for r in runs[(arm, "idle")])
            busy = statistics.median(r[work] for r in runs[(arm, "busy")])
            default_idle = statistics.median(r[work] for r in runs[("torch default", "idle")])
            rows.append({"figure": f"7. {work}: {arm}", "idle (s)": f"{idle:.2f}", "busy (s)": f"{busy:.2f}",
                         "busy / idle": f"{busy / idle:.2f}", "idle / default idle": f"{idle / default_idle:.2f}"})
    chapter_rows, chapter_facts = run_chapter()
    rows += chapter_rows
    facts = {**chapter_facts, "repeats": repeats, "cpu_count": os.cpu_count(),
             "threads_at_end_busy": {arm: [r["threads_at_end"] for r in runs[(arm, "busy")]] for arm in ARMS},
             "same_loss_idle_and_busy": {arm: len({r["final_loss"] for load in ("idle", "busy") for r in runs[(arm, load)]}) == 1
                                         for arm in ARMS},
             "raw": {f"{a} {l}": v for (a, l), v in runs.items()}}
    return rows, facts


if __name__ == "__main__":
    rows, facts = run()
    print(table(rows))
    print(json.dumps({k: v for k, v in facts.items() if k != "raw"}))
