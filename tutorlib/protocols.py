"""The measurements that registered verdicts run: one function per question, its arguments in the registry.

Why: a verdict is pre-registered only if its question is (docs/design.md, section 5a). A protocol returns the
paired units as one table, indexed by (pretrain_seed, seed, draw), one column per measured arm, and its
`attrs["protocol"]` names the function and the arguments that fix the question. `check.registered(key, table)`
refuses a table from another protocol or other arguments, and `python -m tutorlib.tools.pilot KEY` runs the
same function on the exploration seeds. What a profile changes (seeds, draws per unit, pretraining runs) is
not part of the question and is passed apart.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import analysis, models, surgery
from .seeds import derive, seed_everything
from .transfer import Halves

UNIT_INDEX = ["pretrain_seed", "seed", "draw"]  # check.CLUSTER_LEVEL first: units cluster by pretraining run


def units(pretrain_seeds, seeds, draws: int) -> list[tuple[int, int, int, int]]:
    """Every unit (pretrain_seed, seed, draw, its own seed): draws spread over the zoo's pretraining runs."""
    return [(p, s, k, derive(s, f"draw {k} pretrain {p}")) for p in pretrain_seeds for s in seeds for k in range(draws)]


def _table(rows: list[dict], function: str, args: dict) -> pd.DataFrame:
    table = pd.DataFrame(rows).set_index(UNIT_INDEX).sort_index()
    table.attrs["protocol"] = {"function": function, "args": args}
    return table


# ----------------------------------------------------------------------------- chapter 3: the first step
SIGMOID_MLP = dict(depth=8, init="xavier", activation="sigmoid")  # Glorot & Bengio 2010's vanishing setting


def _log10_first_and_last(net, images, labels, by_group: bool = True) -> tuple[float, float]:
    """log10 gradient norm of the first and the last body group (the head left out) after one backward pass."""
    F.cross_entropy(net(images), labels).backward()
    norms = analysis.group_gradient_norms(net) if by_group else analysis.gradient_norms(net)
    body = norms.iloc[:-1]  # the fresh head is last
    return float(np.log10(body.iloc[0])), float(np.log10(body.iloc[-1]))


def first_step_gradients(halves: Halves, seeds, pretrain_seeds, draws: int, *, batch: int = 32,
                         labels_per_class: int = 50) -> pd.DataFrame:
    """Do gradients vanish at the first fine-tuning step? One B batch, a fresh 5-class head, one backward pass.

    Per unit: the course CNN A_w16 (that unit's pretraining run), ImageNet Lite0 (the published checkpoint)
    and a plain 8-layer sigmoid MLP at Xavier init, where gradients do vanish toward the input (the
    measurement's sensitivity arm), each on the unit's own batch and head initialisation.
    """
    rows = []
    for p, s, k, draw_seed in tqdm(units(pretrain_seeds, seeds, draws), desc="first-step gradients"):
        images, labels = halves.target(labels_per_class, seed=draw_seed)
        images, labels = images[:batch], labels[:batch]
        measured = {}
        for name, make, by_group in (("A_w16", lambda: models.load_checkpoint("A_w16", pretrain_seed=p), True),
                                     ("Lite0", lambda: models.lite0(seed=draw_seed), True),
                                     ("sigmoid MLP", lambda: models.plain_net(num_classes=5, **SIGMOID_MLP), False)):
            seed_everything(draw_seed)  # the fresh head's (and the MLP's) initialisation
            net = make()
            if name != "sigmoid MLP":
                surgery.replace_head(net, 5)
            measured[name] = _log10_first_and_last(net.train(), images, labels, by_group)
        rows.append({"pretrain_seed": p, "seed": s, "draw": k,
                     "log10 block1 gradient": measured["A_w16"][0], "log10 block4 gradient": measured["A_w16"][1],
                     "log10 stem gradient": measured["Lite0"][0],
                     "log10 head-convolution gradient": measured["Lite0"][1],
                     "log10 ratio, A_w16": measured["A_w16"][0] - measured["A_w16"][1],
                     "log10 ratio, sigmoid MLP": measured["sigmoid MLP"][0] - measured["sigmoid MLP"][1],
                     "log10 ratio, Lite0": measured["Lite0"][0] - measured["Lite0"][1]})
    return _table(rows, "first_step_gradients", {"batch": batch, "labels_per_class": labels_per_class})


PROTOCOLS: dict[str, Callable[..., pd.DataFrame]] = {"first_step_gradients": first_step_gradients}
