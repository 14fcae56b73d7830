"""The measurements that registered verdicts run: one function per question, its arguments in the registry.

Why: a verdict is pre-registered only if its question is (docs/design.md, section 5a). A protocol returns the
paired units as one table, indexed by (pretrain_seed, seed, draw), one column per measured arm, and its
`attrs["protocol"]` names the function and the arguments that fix the question. `check.registered(key, table)`
refuses a table from another protocol or other arguments, and `python -m tutorlib.tools.pilot KEY` runs the
same function on the exploration seeds. What a profile changes (seeds, draws per unit, pretraining runs) is
not part of the question and is passed apart.
"""
from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import analysis, data, engine, evaluation, inputs, models, recipes, surgery, train, transfer
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


def _pretrained_and_random(halves: Halves, checkpoint: str, grid, shots: int, steps: int,
                           lr: float) -> tuple[list[float], list[float]]:
    """B accuracy per unit of `grid`: the checkpoint's run and its random twin, fine-tuned alike on its labels."""
    runs = {p: models.load_checkpoint(checkpoint, pretrain_seed=p) for p, *_ in grid}
    targets = [halves.target(shots, seed=d) for *_, d in grid]
    nets = [runs[p] for p, *_ in grid] + [runs[p].random_twin(d) for p, _, _, d in grid]
    tuned = engine.finetune_many(nets, targets * 2, steps=steps, lr=lr, seeds=[d for *_, d in grid] * 2)
    accuracy = engine.evaluate_many(tuned, halves.b_test)
    return accuracy[:len(grid)], accuracy[len(grid):]


def _finetuned_means(halves: Halves, nets: list, unit_seed: int, shots: int, targets: int, steps: int,
                     lr: float) -> list[float]:
    """Each of `nets` fine-tuned on the unit's `targets` draws of `shots` labels per class of B: its mean accuracy."""
    draw_seeds = [derive(unit_seed, f"target {t}") for t in range(targets)]
    tuned = engine.finetune_many([n for n in nets for _ in draw_seeds],
                                 [halves.target(shots, d) for d in draw_seeds] * len(nets), steps=steps, lr=lr,
                                 seeds=draw_seeds * len(nets))
    accuracy = engine.evaluate_many(tuned, halves.b_test)
    return [float(np.mean(accuracy[i * targets:(i + 1) * targets])) for i in range(len(nets))]


# ----------------------------------------------------------------------------- chapter 1: the positive control
def positive_control(halves: Halves, seeds, pretrain_seeds, draws: int, *, checkpoint: str = "A_w16", shots: int = 5,
                     steps: int = 120, lr: float = 1e-3) -> pd.DataFrame:
    """Does pretraining on A help at all? The control every comparison of sources needs, over pretraining runs.

    Per unit: the checkpoint (that unit's pretraining run) and the same CNN at random initialisation (its
    `random_twin`, from the unit's seed), each fine-tuned whole with a fresh head on the unit's `shots` labels
    per class of B (`engine.finetune_many`: `recipes.finetune`'s steps, every unit trained together) and scored
    on B's test set.
    """
    grid = units(pretrain_seeds, seeds, draws)
    pretrained, random_init = _pretrained_and_random(halves, checkpoint, grid, shots, steps, lr)
    rows = [{"pretrain_seed": p, "seed": s, "draw": k, "pretrained": pretrained[i], "random init": random_init[i]}
            for i, (p, s, k, _) in enumerate(grid)]
    return _table(rows, "positive_control", dict(checkpoint=checkpoint, shots=shots, steps=steps, lr=lr))


def source_data(halves: Halves, seeds, pretrain_seeds, draws: int, *, fraction: float = 0.3, imbalance: float = 100,
                pretrain_steps: int = 120, shots: int = 5, targets: int = 2, steps: int = 40,
                lr: float = 1e-3) -> pd.DataFrame:
    """Which source data transfers? All of A, a part of it, a long tail of it, another domain, and none at all.

    A unit is one source replicate: the course CNN pretrained from one init and batch order (its own
    pretraining run, so `pretrain_seeds` is not used) for `pretrain_steps` on all of A, on a drawn `fraction` of
    A's images per class, on A long-tailed at `imbalance` and on scikit-learn's handwritten digits; beside them
    the same init never pretrained (the positive control). Each is fine-tuned whole on `targets` draws of `shots`
    labels per class of B and scored on B's test set; the unit's score is the mean over those draws.
    """
    fraction = inputs.real(fraction, "fraction", 0.0, 1.0, low_open=True)
    imbalance = inputs.real(imbalance, "imbalance", 1.0)
    draws, targets = inputs.integer(draws, "draws", 1), inputs.integer(targets, "targets", 1)
    a_labels, digits = halves.a_train[1], data.load_digits()
    per_class = max(1, round(fraction * len(a_labels) / len(data.HALF_A)))
    rows = []
    for s, k in tqdm([(s, k) for s in seeds for k in range(draws)], desc="source replicates"):
        unit_seed = derive(s, f"source {k}")
        sources = {"A 100%": halves.a_train,
                   f"A {fraction:.0%}": data.take(halves.a_train, data.few_shot(a_labels, per_class, seed=unit_seed)),
                   f"A imbalance {imbalance:g}": data.take(halves.a_train,
                                                           data.long_tail(a_labels, imbalance, seed=unit_seed)),
                   "digits": digits}
        nets = [transfer.pretrain(source, steps=pretrain_steps, seed=unit_seed) for source in sources.values()]
        nets.append(models.fresh_cnn(seed=unit_seed))  # the init every source started from, never pretrained
        accuracy = _finetuned_means(halves, nets, unit_seed, shots, targets, steps, lr)
        rows.append({"pretrain_seed": unit_seed, "seed": s, "draw": k,
                     **dict(zip([*sources, "random init"], accuracy))})
    return _table(rows, "source_data", dict(fraction=fraction, imbalance=imbalance, pretrain_steps=pretrain_steps,
                                            shots=shots, targets=targets, steps=steps, lr=lr))


# ----------------------------------------------------------------------------- chapter 2: capacity
def capacity(halves: Halves, seeds, pretrain_seeds, draws: int, *, widths: tuple = (8, 32), shots: int = 5,
             steps: int = 120, lr: float = 3e-3) -> pd.DataFrame:
    """Is a small pretrained model at a disadvantage, and does pretraining help the wider one more?

    Per unit: each width's checkpoint A_w{width} (that unit's pretraining run) and the same CNN at random
    initialisation (its `random_twin`, from the unit's seed), each fine-tuned whole with a fresh head on the
    unit's `shots` labels per class of B (`engine.finetune_many`, one width at a time: the same images, steps,
    rate and batch order for every arm) and scored on B's test set.
    """
    grid = units(pretrain_seeds, seeds, draws)
    columns = {}
    for width in widths:
        pretrained, random_init = _pretrained_and_random(halves, f"A_w{width}", grid, shots, steps, lr)
        columns |= {f"width {width}, pretrained": pretrained, f"width {width}, random init": random_init}
    rows = [{"pretrain_seed": p, "seed": s, "draw": k, **{name: acc[i] for name, acc in columns.items()}}
            for i, (p, s, k, _) in enumerate(grid)]
    return _table(rows, "capacity", dict(widths=list(widths), shots=shots, steps=steps, lr=lr))


# ----------------------------------------------------------------------------- chapter 2: pruning
def pruning(halves: Halves, seeds, pretrain_seeds, draws: int, *, width: int = 32, shots: int = 5,
            steps: int = 120, lr: float = 3e-3, retrain_steps: int = 120, retrain_lr: float = 1e-3,
            sparsities: tuple = (0.9, 0.99)) -> pd.DataFrame:
    """Can a fine-tuned network lose most of its weights? Han et al.'s prune-and-retrain on the course CNN.

    Per unit: A_w{width} (that unit's pretraining run) fine-tuned on `shots` labels per class of B, then pruned
    to each sparsity (global magnitude) and re-trained on the same labels, beside the dense network given the
    same re-training; each scored on B's test set.
    """
    rows = []
    for p, s, k, draw_seed in tqdm(units(pretrain_seeds, seeds, draws), desc="pruning"):
        target = halves.target(shots, seed=draw_seed)
        tuned, _ = recipes.finetune(models.load_checkpoint(f"A_w{width}", pretrain_seed=p), target, steps=steps,
                                    lr=lr, seed=draw_seed)
        row = {"pretrain_seed": p, "seed": s, "draw": k}
        for sparsity in (0.0, *sparsities):
            net = surgery.prune_magnitude(copy.deepcopy(tuned), sparsity)
            train.fit(net, target, steps=retrain_steps, lr=retrain_lr, batch_size=32, seed=draw_seed, progress=False)
            name = "dense, re-trained" if sparsity == 0 else f"pruned to {sparsity:.0%}, re-trained"
            row[name] = evaluation.evaluate(net, halves.b_test)["accuracy"]
        rows.append(row)
    args = dict(width=width, shots=shots, steps=steps, lr=lr, retrain_steps=retrain_steps, retrain_lr=retrain_lr,
                sparsities=list(sparsities))
    return _table(rows, "pruning", args)


# ----------------------------------------------------------------------------- chapter 5: a noisy source
def source_noise(halves: Halves, seeds, pretrain_seeds, draws: int, *, noise: float = 0.4, pretrain_steps: int = 120,
                 shots: int = 5, targets: int = 2, steps: int = 120, lr: float = 1e-3) -> pd.DataFrame:
    """Does label noise in the source hurt transfer? Sources compared by fine-tuning, where a harm might show.

    A unit is one source replicate: the course CNN pretrained on A three times with one init and batch order
    (its own pretraining run, so `pretrain_seeds` is not used): on clean labels, with `noise` of them wrong
    (symmetric), and with every label drawn at random (no signal: the sensitivity arm). Each is fine-tuned on
    `targets` draws of `shots` labels per class of B (chapter 1's positive-control regime) and scored on B's
    test set; the unit's score is the mean over those draws. `draws`: replicates per seed.
    """
    draws, targets = inputs.integer(draws, "draws", 1), inputs.integer(targets, "targets", 1)
    rows = []
    for s, k in tqdm([(s, k) for s in seeds for k in range(draws)], desc="source replicates"):
        unit_seed, labels = derive(s, f"source {k}"), halves.a_train[1]
        shuffled = torch.randint(0, 5, labels.shape, generator=torch.Generator().manual_seed(unit_seed))
        sources = {"clean source": labels, f"{noise:.0%} noisy source": data.add_label_noise(labels, noise, 5,
                                                                                             seed=unit_seed),
                   "random-label source": shuffled}
        nets = [transfer.pretrain((halves.a_train[0], y), steps=pretrain_steps, seed=unit_seed) for y in sources.values()]
        accuracy = _finetuned_means(halves, nets, unit_seed, shots, targets, steps, lr)
        rows.append({"pretrain_seed": unit_seed, "seed": s, "draw": k, **dict(zip(sources, accuracy))})
    return _table(rows, "source_noise", dict(noise=noise, pretrain_steps=pretrain_steps, shots=shots, targets=targets,
                                             steps=steps, lr=lr))


# ----------------------------------------------------------------------------- chapter 4: how deep to freeze
def freeze_depth(halves: Halves, seeds, pretrain_seeds, draws: int, *, checkpoint: str = "A_w16", labelled: int = 70,
                 validation: int = 20, steps: int = 160, lr: float = 3e-3, depths: tuple = (1, 2, 3)) -> pd.DataFrame:
    """Do frozen layers cost accuracy at the depth a learner would pick? And does freezing all but the head?

    Per unit: the checkpoint (that unit's pretraining run) fine-tuned on `labelled - validation` labels per
    class of B with 0 blocks frozen (full fine-tuning), with each of `depths` frozen, and with every block
    frozen (only the head trains: the sensitivity arm), all with the same steps, rate, head initialisation
    and batch order. The learner's depth is the one of `depths` that scores best on the `validation` held-out
    labels per class (the shallowest on a tie); every arm is scored on B's test set.
    """
    rows = []
    for p, s, k, draw_seed in tqdm(units(pretrain_seeds, seeds, draws), desc="freeze depths"):
        labelled_set = halves.target(labelled, seed=draw_seed)
        parts = data.stratified_split(labelled_set[1], ((labelled - validation) / labelled, validation / labelled),
                                      seed=draw_seed)
        train_part, val_part = (data.take(labelled_set, index) for index in parts)
        start = models.load_checkpoint(checkpoint, pretrain_seed=p)
        head_only = len(surgery.layer_groups(start)) - 1  # every group but the head frozen
        tuned = {d: recipes.finetune(start, train_part, steps=steps, lr=lr, seed=draw_seed, frozen_groups=d)[0]
                 for d in (0, *depths, head_only)}
        chosen = transfer.choose_on_validation(lambda part, d: tuned[d], train_part, depths, validation=val_part).option
        test = {d: evaluation.evaluate(net, halves.b_test)["accuracy"] for d, net in tuned.items()}
        rows.append({"pretrain_seed": p, "seed": s, "draw": k, "full fine-tuning": test[0],
                     "depth chosen on validation": test[chosen], "chosen depth": chosen,
                     **{f"{d} blocks frozen": test[d] for d in depths}, "all but the head frozen": test[head_only]})
    return _table(rows, "freeze_depth", dict(checkpoint=checkpoint, labelled=labelled, validation=validation,
                                             steps=steps, lr=lr, depths=list(depths)))


# ----------------------------------------------------------------------------- chapter 6: forgetting
def forgetting(halves: Halves, seeds, pretrain_seeds, draws: int, *, checkpoint: str = "A_w16", shots: int = 50,
               steps: int = 200, lr: float = 1e-3, batch_size: int = 32, l2sp_alpha: float = 0.1) -> pd.DataFrame:
    """Does fine-tuning forget the source, and do LP-FT and L2-SP forget less? A's old head on the adapted body.

    Per unit: the checkpoint (that unit's pretraining run) adapted to `shots` labels per class of B by full
    fine-tuning (FT), LP-FT and L2-SP, all at the same rate, steps, head initialisation and batch order; then
    the checkpoint's own A head is put back on each adapted body, and the result is scored on A's test set.
    """
    rows = []
    for p, s, k, draw_seed in tqdm(units(pretrain_seeds, seeds, draws), desc="forgetting"):
        target, start = halves.target(shots, seed=draw_seed), models.load_checkpoint(checkpoint, pretrain_seed=p)
        body = len(surgery.layer_groups(start)) - 1
        row = {"pretrain_seed": p, "seed": s, "draw": k}
        for method, options in (("FT", {}), ("LP-FT", {}), ("L2-SP", {"alpha": l2sp_alpha})):
            adapted = recipes.RECIPES[method](start, target, lr=lr, seed=draw_seed, steps=steps,
                                              batch_size=batch_size, **options)[0]
            a_view = surgery.transplant(adapted, models.load_checkpoint(checkpoint, pretrain_seed=p), n_groups=body,
                                        freeze=False)
            row[method] = evaluation.evaluate(a_view, halves.a_test)["accuracy"]
        rows.append(row)
    return _table(rows, "forgetting", dict(checkpoint=checkpoint, shots=shots, steps=steps, lr=lr,
                                           batch_size=batch_size, l2sp_alpha=l2sp_alpha))


# ----------------------------------------------------------------------------- chapter 7: does the bigger model pay?
def _probe_score(features: tuple[torch.Tensor, torch.Tensor], target_labels, test_labels) -> float:
    """Linear-probe accuracy on (target features, test features), the head fit to convergence (L-BFGS)."""
    return evaluation.linear_probe(features[0], target_labels).score(features[1], test_labels)


def model_size(halves: Halves, seeds, pretrain_seeds, draws: int, *, shots: int = 20, test_per_class: int = 100,
               input_size: int = 64) -> pd.DataFrame:
    """Does the bigger published model transfer better? ImageNet Lite2 against Lite0, as a learner here runs them.

    Per unit: `shots` labels per class of B and `test_per_class` test images per class of B, both drawn by the
    unit's seed, and a linear probe on the frozen features of the published ImageNet Lite0 and Lite2 (each image
    encoded once), of a Lite0 with random weights from the unit's seed (the sensitivity arm: the same measurement
    must see what ImageNet pretraining gives) and on raw pixels (reported). No unit shares a pretraining run of
    the course's (`pretrain_seeds` is not used): each is its own cluster, indexed by its own seed.
    """
    grid = [(s, k, derive(s, f"draw {k}")) for s in seeds for k in range(draws)]
    picks = [(data.few_shot(halves.b_train[1], shots, seed=d), data.few_shot(halves.b_test[1], test_per_class,
                                                                            seed=derive(d, "test images")))
             for *_, d in grid]
    pools = [torch.unique(torch.cat([pick[i] for pick in picks])) for i in (0, 1)]  # sorted, as searchsorted needs
    splits = (halves.b_train, halves.b_test)
    published = {}
    for name in tqdm(("Lite0", "Lite2"), desc="published models: features"):
        net = models.efficientnet_lite(name.lower(), input_size=input_size)
        published[name] = [evaluation.extract_features(net, split[0][pool]) for split, pool in zip(splits, pools)]
    rows = []
    for (s, k, draw_seed), pick in zip(tqdm(grid, desc="model size: probes"), picks):
        images, labels = zip(*[(split[0][index], split[1][index]) for split, index in zip(splits, pick)])
        features = {name: [f[torch.searchsorted(pool, index)] for f, pool, index in zip(feats, pools, pick)]
                    for name, feats in published.items()}
        seed_everything(draw_seed)  # the random Lite0's weights
        random_lite0 = models.efficientnet_lite("lite0", pretrained=False, input_size=input_size)
        features["random Lite0"] = [evaluation.extract_features(random_lite0, x) for x in images]
        features["raw pixels"] = [x.flatten(1) for x in images]
        rows.append({"pretrain_seed": draw_seed, "seed": s, "draw": k,
                     **{name: _probe_score(f, *labels) for name, f in features.items()}})
    return _table(rows, "model_size", dict(shots=shots, test_per_class=test_per_class, input_size=input_size))


PROTOCOLS: dict[str, Callable[..., pd.DataFrame]] = {"first_step_gradients": first_step_gradients,
                                                   "positive_control": positive_control, "capacity": capacity,
                                                   "pruning": pruning, "source_noise": source_noise,
                                                   "source_data": source_data,
                                                   "freeze_depth": freeze_depth, "forgetting": forgetting,
                                                   "model_size": model_size}
