"""Train the course checkpoints that chapters share (`make checkpoints`).

    python -m tutorlib.tools.checkpoints                       # all of them: the shipped zoo
    python -m tutorlib.tools.checkpoints A_w16                 # just one (pretraining seed 0)
    python -m tutorlib.tools.checkpoints --seeds 100,101,102   # the zoo's arms pretrained with other seeds
    python -m tutorlib.tools.checkpoints --list

Each recipe is a plain dict, written into data/manifest.json beside the file's sha256 and the
measured accuracy, so a checkpoint says exactly how it was made. A pretraining seed picks the init and
the batch order; on the same torch version, thread count and CPU a rerun gives the same file, byte for
byte. The zoo: every arm an asserted verdict compares is pretrained with several seeds (`ZOO_ARMS` x
`ZOO_SEEDS`), so a verdict's units can span pretraining runs and not one checkpoint (docs/design.md, 5a).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn as nn

from .. import inputs, manifest, threads
from ..data import HALF_A, HALF_B, load_fashion_mnist, select_classes
from ..models import CHECKPOINT_DIR, checkpoint_key, small_cnn
from ..pretext import RotationPretext, rotation_loss, rotations
from ..seeds import seed_everything
from ..train import evaluate, fit

HALVES = {"A": HALF_A, "B": HALF_B}

RECIPES: dict[str, dict] = {
    "A_w8": dict(task="classes", half="A", width=8, depth=4, epochs=8, lr=3e-3, weight_decay=5e-4),
    "A_w16": dict(task="classes", half="A", width=16, depth=4, epochs=8, lr=3e-3, weight_decay=5e-4),
    "A_w64": dict(task="classes", half="A", width=64, depth=4, epochs=8, lr=3e-3, weight_decay=5e-4),
    "A_w16_d6": dict(task="classes", half="A", width=16, depth=6, epochs=8, lr=3e-3, weight_decay=5e-4),
    "B_w16": dict(task="classes", half="B", width=16, depth=4, epochs=8, lr=3e-3, weight_decay=5e-4),
    "A_w32": dict(task="classes", half="A", width=32, depth=4, epochs=8, lr=3e-3, weight_decay=5e-4),
    "B_w32": dict(task="classes", half="B", width=32, depth=4, epochs=8, lr=3e-3, weight_decay=5e-4),
    "A_rotation_w16": dict(task="rotation", half="A", width=16, depth=4, epochs=4, lr=3e-3, weight_decay=5e-4),
}
COMMON = dict(batch_size=128, optimizer="adamw", schedule="cosine",
              data="bundled Fashion-MNIST subset, 1,500 train / 500 test images per class")
ZOO_ARMS = ("A_w8", "A_w16", "A_w32", "B_w16", "A_rotation_w16")  # the checkpoints asserted verdicts compare
ZOO_SEEDS = (0, 1, 2, 3, 4)  # pretraining seeds shipped for each; seed 0 is the checkpoint of the plain name
WIDTH_ARMS, MORE_SEEDS = ("A_w8", "A_w32"), (5, 6, 7, 8, 9)  # ten runs each: chapter 2's capacity question


# ----------------------------------------------------------------------------- training
def train_checkpoint(recipe: dict, progress: bool = True, seed: int = 0) -> tuple[nn.Module, dict]:
    """Train one recipe from pretraining seed `seed` (init and batch order); return the model and its metrics."""
    seed_everything(seed)
    classes = HALVES[recipe["half"]]
    train = select_classes(load_fashion_mnist("train"), classes)
    test = select_classes(load_fashion_mnist("test"), classes)
    rotation = recipe["task"] == "rotation"
    model = small_cnn(recipe["width"], recipe["depth"], num_classes=4 if rotation else len(classes))
    trained = RotationPretext(model) if rotation else model
    if rotation:  # no class labels: the targets are made from the images themselves
        train = (train[0], torch.zeros(len(train[0]), dtype=torch.long))
    history = fit(trained, train, epochs=recipe["epochs"], lr=recipe["lr"], weight_decay=recipe["weight_decay"],
                  batch_size=COMMON["batch_size"], seed=seed, progress=progress,
                  loss_fn=rotation_loss if rotation else None)
    eval_set = rotations(test[0]) if rotation else test
    metrics = {"test_accuracy": round(evaluate(model, eval_set)["accuracy"], 4),
               "metric_on": "rotation prediction, A test images" if rotation else f"classes of {recipe['half']}, test split",
               "final_train_loss": round(history.train_loss[-1], 4), "train_seconds": round(history.seconds, 1)}
    return model, metrics


def portable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights as fresh contiguous tensors, so the file's bytes depend on the values alone."""
    return {k: v.detach().clone(memory_format=torch.contiguous_format) for k, v in model.state_dict().items()}


def machine_kind() -> str:
    """What bitwise reproducibility depends on besides torch and threads: the CPU's vector instructions and maker.

    The maker too: at the same instruction set (AVX512) an Intel Xeon retrained A_w8 (seed 1) to weights up to
    0.45 away from those an AMD EPYC had made, at the same accuracy within 0.002.
    """
    return f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()} {_cpu_vendor()}"


def _cpu_vendor() -> str:
    """'AuthenticAMD', 'GenuineIntel', ... (Linux: /proc/cpuinfo), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def save_checkpoint(name: str, model: nn.Module, recipe: dict, metrics: dict, seed: int = 0) -> dict:
    """Write the weights and their manifest entry (sha256, architecture, recipe with its seed, metrics)."""
    CHECKPOINT_DIR.mkdir(parents=True, exist_ok=True)
    path = CHECKPOINT_DIR / f"{name}.pt"
    torch.save(portable_state(model), path)
    arch = {"name": "small_cnn", **{k: model.config[k] for k in ("width", "depth", "num_classes", "in_channels")}}
    entry = {"file": str(path.relative_to(manifest.DATA_DIR)), "sha256": manifest.sha256(path), "bytes": path.stat().st_size,
             "architecture": arch, "recipe": {**recipe, **COMMON, "seed": seed}, "metrics": metrics,
             "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": machine_kind()}
    manifest.record("checkpoints", entry, key=name)
    return entry


def planned(names: list[str], seeds: list[int] | None) -> list[tuple[str, int]]:
    """(recipe, pretraining seed) pairs to train: the shipped zoo by default, the zoo's arms at `seeds` if given."""
    if seeds is None:
        names = names or list(RECIPES)
        return ([(n, 0) for n in names] + [(n, s) for n in names if n in ZOO_ARMS for s in ZOO_SEEDS[1:]]
                + [(n, s) for n in names if n in WIDTH_ARMS for s in MORE_SEEDS])
    return [(n, s) for n in (names or list(ZOO_ARMS)) for s in seeds]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the course checkpoints into data/checkpoints/.")
    parser.add_argument("names", nargs="*", help=f"which to train (default: all of {list(RECIPES)})")
    parser.add_argument("--seeds", help=f"pretraining seeds, e.g. 100,101,102,103,104 (default: the shipped zoo, "
                                        f"seeds {list(ZOO_SEEDS)} of {list(ZOO_ARMS)} and seed 0 of the others)")
    parser.add_argument("--list", action="store_true", help="print the recipes and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    os.environ[threads.ENV_VAR] = str(threads.MAX_THREADS)  # the count the manifest records: same bytes on every run
    threads.configure()
    if args.list:
        for name, recipe in RECIPES.items():
            shipped = ZOO_SEEDS + MORE_SEEDS if name in WIDTH_ARMS else ZOO_SEEDS if name in ZOO_ARMS else ()
            print(f"{name:16s} {recipe}" + (f"  seeds {list(shipped)}" if shipped else ""))
        return
    unknown = [n for n in args.names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"Unknown checkpoint(s) {unknown}; choose from {list(RECIPES)}.")
    try:
        seeds = [inputs.seed(int(s)) for s in args.seeds.split(",")] if args.seeds else None
    except ValueError as err:
        raise SystemExit(f"--seeds {args.seeds!r} is not a comma-separated list of seeds such as 100,101,102 ({err}).")
    for name, seed in planned(args.names, seeds):
        start = time.perf_counter()
        model, metrics = train_checkpoint(RECIPES[name], progress=not args.quiet, seed=seed)
        key = checkpoint_key(name, seed)
        entry = save_checkpoint(key, model, RECIPES[name], metrics, seed)
        print(f"{key:22s} test accuracy {metrics['test_accuracy']:.4f}  {entry['bytes'] / 1024:.0f} KiB  "
              f"sha256 {entry['sha256'][:12]}  ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
