"""tutorlib: the small helper library of the course "Pretrained CNNs, tested".

Modules, one per concern (open any of them: they are meant to be read):

* `tutorlib.data`      datasets as in-memory tensors; splits, few-shot, long tail, label noise, corruptions
* `tutorlib.datafiles` Fashion-MNIST's files: the IDX format, the bundled subset (sha256-checked), the full set
* `tutorlib.models`    the course CNN, EfficientNet-Lite with offline ImageNet weights, course checkpoints
* `tutorlib.anatomy`   how a model is cut: its layer groups, its chain of stages, its head (one protocol)
* `tutorlib.surgery`   layer groups, freeze / unfreeze, discriminative learning rates, transplant, pruning
* `tutorlib.train`     `fit` (the one training loop, with `train_step` at its heart)
* `tutorlib.engine`    many draws of the course CNN trained as one computation, each as `fit` trains it
* `tutorlib.evaluation` predict, evaluate, extract_features, linear_probe
* `tutorlib.losses`    distillation and L2-SP losses, `snapshot` for reference weights
* `tutorlib.inputs`    the input contract every public function checks (shapes, dtypes, ranges)
* `tutorlib.threads`   one fixed CPU thread count: the same numbers, and the same speed, idle or busy
* `tutorlib.analysis`  CKA, gradient norms, LogME, FLOPs, latency, per-class accuracy
* `tutorlib.plots`     the course's figures
* `tutorlib.check`     verdict cells: registered interval verdicts (`registered`), reports, `expect`
* `tutorlib.ranks`     Kendall's tau, its chance rate with model families kept, the rank-agreement verdict
* `tutorlib.exercises` the exercises' self-checks (`exercise`, `answered`)
* `tutorlib.i18n`      the Chinese edition at run time (TUTORLIB_LANG=zh): verdict lines, figures and hints in Chinese
* `tutorlib.profile`   run profiles (quick / standard / full), and their seeds ($TUTORLIB_SEEDS)
* `tutorlib.seeds`     `seed_everything`, the one seed helper
* `tutorlib.pretext`   self-supervised pretext tasks (RotNet's rotations)
* `tutorlib.transfer`  the A -> B protocol the chapters share: the halves, targets, pretrain, probes, choosing on validation
* `tutorlib.runtime`   what a chapter starts from: `setup()` (profile, seeds, halves, clock) and `finish()`
* `tutorlib.sources`   chapter 1's experiments: the positive control, probing a learner's own photos
* `tutorlib.recipes`   the ways to adapt a model, one signature each, by name in `RECIPES`: LP, FT, discriminative
                       rates, gradual unfreezing, LP-FT, L2-SP; and distillation
* `tutorlib.manifest`  data/manifest.json: every bundled file and checkpoint with its sha256

`tutorlib._execution` is internal (the device, memory format and modes a model runs in, shared by
evaluation, train and analysis). Maintainer and teacher tools (bundle, checkpoints, the course build, grading and the write-up) are in
`tutorlib.tools`; the notebooks never import them.
"""
from __future__ import annotations

import inspect

from . import (analysis, anatomy, check, data, datafiles, engine, evaluation, exercises, i18n, inputs, losses, manifest,
               models, plots, pretext, profile, ranks, recipes, runtime, seeds, sources, surgery, threads, train, transfer)

threads.configure()  # one fixed thread count per machine: the same numbers idle or busy (see threads.py)

__version__ = "0.1.0"
__all__ = ["analysis", "anatomy", "check", "data", "datafiles", "engine", "evaluation", "exercises", "i18n", "inputs", "losses",
           "manifest", "models", "plots", "pretext", "profile", "ranks", "recipes", "runtime", "seeds", "sources", "surgery",
           "threads", "train", "transfer", "show"]


def show(obj) -> None:
    """Print the source of any tutorlib helper (or any Python function), highlighted in notebooks."""
    try:
        source = inspect.getsource(obj)
    except (TypeError, OSError) as err:
        raise TypeError(f"show() prints the source of a function, class or module, e.g. "
                        f"tutorlib.show(train.fit); got {obj!r}.") from err
    try:
        from IPython.display import Markdown, display

        display(Markdown(f"```python\n{source}\n```"))
    except ImportError:
        print(source)
