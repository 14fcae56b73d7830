"""Many draws at once: K copies of the course CNN trained as one computation, each as `train.fit` would train it.

Why: a verdict decides over many paired draws (its own target images, initialisation and batch order each),
and one small network at a time leaves the CPU waiting on Python and on tiny convolutions. Here the K
copies become one wide network: each convolution a grouped convolution (group k is copy k), each BatchNorm
one layer over K x C channels (channel statistics stay per copy), the head one batched matrix product. Copy k
sees only its own images, in its own order, so its gradient is the one it would get alone, and AdamW or SGD,
acting element by element, takes the step `fit` would take. Clipping and the reported gradient norm are per
copy. `tests/test_engine.py` checks the copies against one-by-one `fit` runs, weight by weight.

    histories = engine.fit_many(models, targets, steps=120, lr=3e-3, seeds=draw_seeds)

`models` are course CNNs of one architecture (`models.small_cnn`), prepared as a recipe would prepare them
(a fresh head, frozen groups); they are trained in place. The learner-facing loop stays `train.fit`.
"""
from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from . import inputs
from .data import Dataset
from .models import SmallCNN
from .recipes import _start as fresh_head_copy  # finetune's first step, so the draws start where it starts
from .surgery import train_mode
from .train import History, TrainingDiverged, _make_optimizer, batches, lr_factor

__all__ = ["fit_many", "evaluate_many", "finetune_many"]


class _Stack(nn.Module):
    """K course CNNs of one architecture as one network: parameters of shape (K, ...), input N x K*C x H x W."""

    def __init__(self, nets: list[SmallCNN]):
        super().__init__()
        self.k = len(nets)
        self.blocks = [name for name, _ in nets[0].features.named_children()]
        self.weights = nn.ParameterDict()
        for name, tensor in nets[0].named_parameters():
            stacked = torch.stack([dict(net.named_parameters())[name].detach() for net in nets]).clone()
            self.weights[name.replace(".", "__")] = nn.Parameter(stacked, requires_grad=tensor.requires_grad)
        for name, _ in nets[0].named_buffers():
            if not name.endswith("num_batches_tracked"):
                self.register_buffer(name.replace(".", "__"), torch.stack([dict(net.named_buffers())[name]
                                                                           for net in nets]).clone())
        self.bn_training = {b: getattr(nets[0].features, b).bn.training for b in self.blocks
                            if hasattr(getattr(nets[0].features, b), "bn")}
        self.pools = {b: hasattr(getattr(nets[0].features, b), "pool") for b in self.blocks}

    def _p(self, name: str) -> torch.Tensor:
        return self.weights[name.replace(".", "__")]

    def _block(self, x: torch.Tensor, b: str, training: bool) -> torch.Tensor:
        w = self._p(f"features.{b}.conv.weight")
        bias = self.weights.get(f"features__{b}__conv__bias")
        x = F.conv2d(x, w.flatten(0, 1), None if bias is None else bias.flatten(), padding=1, groups=self.k)
        if b in self.bn_training:
            mean, var = getattr(self, f"features__{b}__bn__running_mean"), getattr(self, f"features__{b}__bn__running_var")
            x = F.batch_norm(x, mean.view(-1), var.view(-1), self._p(f"features.{b}.bn.weight").flatten(),
                             self._p(f"features.{b}.bn.bias").flatten(), training and self.bn_training[b], 0.1, 1e-5)
        x = F.relu(x, inplace=True)  # as the course CNN's nn.ReLU(inplace=True): one activation less to keep
        return F.max_pool2d(x, 2) if self.pools[b] else x

    def forward(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        """x: N x K*C x H x W (copy k's images in channels k*C ... (k+1)*C); logits N x K x classes."""
        for b in self.blocks:
            x = self._block(x, b, training)
        features = x.mean(dim=(2, 3)).view(len(x), self.k, -1)
        return torch.einsum("nkf,kcf->nkc", features, self._p("head.weight")) + self._p("head.bias")

    def copy_back(self, nets: list[SmallCNN]) -> None:
        """Write copy k's weights and running statistics into nets[k]."""
        with torch.no_grad():
            for k, net in enumerate(nets):
                for name, p in net.named_parameters():
                    p.copy_(self._p(name)[k])
                for name, buf in net.named_buffers():
                    if not name.endswith("num_batches_tracked"):
                        buf.copy_(getattr(self, name.replace(".", "__"))[k])


def _checked(nets, datasets, seeds) -> tuple[list[SmallCNN], list[Dataset]]:
    """One architecture, one dataset and one seed per copy, datasets of one size (so the batches line up)."""
    if not nets or not all(isinstance(n, SmallCNN) for n in nets):
        raise TypeError("fit_many trains course CNNs (models.small_cnn / fresh_cnn / load_checkpoint): pass a "
                        "non-empty list of them; for another model, call train.fit once per draw.")
    if any(n.config != nets[0].config for n in nets):
        raise ValueError("fit_many needs copies of one architecture (width, depth, classes): got "
                         f"{sorted({str(n.config) for n in nets})}.")
    if not (len(nets) == len(datasets) == len(seeds)):
        raise ValueError(f"One dataset and one seed per model: got {len(nets)} models, {len(datasets)} datasets, "
                         f"{len(seeds)} seeds.")
    datasets = [inputs.class_dataset(d, f"datasets[{i}]") for i, d in enumerate(datasets)]
    if len({len(d[1]) for d in datasets}) != 1:
        raise ValueError("fit_many's draws must hold the same number of images (e.g. the same labels per class), "
                         f"so every copy's batches have one size; got {sorted({len(d[1]) for d in datasets})}.")
    return list(nets), datasets


def _step(stack, opt, tensors, orders, clip_grad_norm) -> tuple[list[float], list[float]]:
    """One step of every copy: its own batch, its own loss; per-copy gradient norms (before clipping)."""
    x = torch.cat([images[i] for (images, _), i in zip(tensors, orders)], dim=1)
    logits = stack(x.contiguous(memory_format=torch.channels_last), training=True)
    losses = torch.stack([F.cross_entropy(logits[:, k], labels[i]) for k, ((_, labels), i)
                          in enumerate(zip(tensors, orders))])
    opt.zero_grad(set_to_none=True)
    losses.sum().backward()  # copies share no weight: each gradient is its own loss's
    grads = [p.grad for p in stack.parameters() if p.grad is not None]
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads))  # one global norm per copy
    if not (torch.isfinite(losses).all() and torch.isfinite(norms).all()):
        bad = [k for k in range(len(losses)) if not (torch.isfinite(losses[k]) and torch.isfinite(norms[k]))]
        raise TrainingDiverged(f"Copies {bad} diverged (NaN/inf loss or gradient); nothing was stepped. Try a lower "
                               f"learning rate or clip_grad_norm, or train those draws one by one with train.fit.",
                               History(stopped_reason="diverged"))
    if clip_grad_norm is not None:
        scale = (clip_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *[1] * (g.ndim - 1)))
    opt.step()
    return losses.tolist(), norms.tolist()


# Image-copies in one pass: past about 256 (12 MB a layer at width 16) the activations leave the CPU's cache and
# every copy runs slower than alone (benchmarks/NOTES.md, "Many draws at once"); more copies go in groups.
CACHE_IMAGES = 256


def fit_many(nets: list[SmallCNN], datasets: list[Dataset], *, steps: int, lr: float, seeds: list[int],
             batch_size: int = 32, optimizer: str = "adamw", weight_decay: float = 0.0, warmup_steps: int = 0,
             schedule: str = "cosine", clip_grad_norm: float | None = None) -> list[History]:
    """Train nets[k] on datasets[k] with seeds[k], all K at once, as `train.fit(net, data, steps=..., seed=...)`
    would one by one; return one History per copy (per-step loss, rate and gradient norm)."""
    nets, datasets = _checked(nets, datasets, seeds)
    steps = inputs.integer(steps, "steps", 1)
    batch_size = inputs.integer(batch_size, "batch_size", 1)
    options = dict(steps=steps, lr=lr, batch_size=batch_size, optimizer=optimizer, weight_decay=weight_decay,
                   warmup_steps=warmup_steps, schedule=schedule, clip_grad_norm=clip_grad_norm)
    group = max(1, CACHE_IMAGES // min(batch_size, len(datasets[0][1])))
    return [h for i in range(0, len(nets), group)
            for h in _fit_group(nets[i:i + group], datasets[i:i + group], seeds[i:i + group], **options)]


def _fit_group(nets, datasets, seeds, *, steps, lr, batch_size, optimizer, weight_decay, warmup_steps, schedule,
               clip_grad_norm) -> list[History]:
    """fit_many for copies whose activations fit in the cache together."""
    stack = _Stack([train_mode(net) for net in nets])  # as fit: BatchNorm trains unless frozen
    params = [p for p in stack.parameters() if p.requires_grad]
    opt = _make_optimizer(params, optimizer, lr, weight_decay)
    generators = [torch.Generator().manual_seed(inputs.seed(s)) for s in seeds]
    histories, done = [History() for _ in nets], 0
    while done < steps:
        epoch = [batches(len(d[1]), batch_size, g) for d, g in zip(datasets, generators)]  # each copy its order
        run = list(zip(*epoch))[:steps - done]
        for orders in run:
            for group in opt.param_groups:
                group["lr"] = lr * lr_factor(done, steps, warmup_steps, schedule)
            losses, norms = _step(stack, opt, datasets, orders, clip_grad_norm)
            for h, loss, norm in zip(histories, losses, norms):
                h.log_step(loss, opt.param_groups[-1]["lr"], norm)
            done += 1
        for h in histories:
            h.train_loss.append(sum(h.step_loss[-len(run):]) / len(run))
    stack.copy_back(nets)
    for h in histories:
        h.stopped_reason = "completed"
    return histories


@torch.inference_mode()
def evaluate_many(nets: list[SmallCNN], test: Dataset) -> list[float]:
    """Each copy's accuracy on one test set, scored together (each image batch runs once through the wide network)."""
    images, labels = inputs.class_dataset(test, "test")
    stack = _Stack(list(nets))
    step = max(1, CACHE_IMAGES // len(nets))
    correct = torch.zeros(len(nets))
    for i in range(0, len(labels), step):
        x = images[i:i + step].repeat(1, len(nets), 1, 1).contiguous(memory_format=torch.channels_last)
        correct += (stack(x).argmax(2) == labels[i:i + step, None]).sum(0)
    return (correct / len(labels)).tolist()


def finetune_many(models: list[nn.Module], targets: list[Dataset], *, steps: int, lr: float,
                  seeds: list[int]) -> list[SmallCNN]:
    """`recipes.finetune(models[k], targets[k], steps=..., lr=..., seed=seeds[k])` for every k, trained together.

    The steps `finetune` takes one draw at a time (a copy with a fresh head, every group trained, batches of
    32), about 1.5x faster on a 2-core CPU: the fine-tuning in verdict loops, where one measurement needs many
    draws. Course CNNs only; returns the fine-tuned copies in eval mode (`models` are left as they were).
    """
    if not (len(models) == len(targets) == len(seeds)):
        raise ValueError(f"One target and one seed per model: got {len(models)} models, {len(targets)} targets, "
                         f"{len(seeds)} seeds.")
    nets = [fresh_head_copy(m, t, s) for m, t, s in zip(models, targets, seeds)]
    fit_many(nets, targets, steps=steps, lr=lr, seeds=seeds)
    return [net.eval() for net in nets]
