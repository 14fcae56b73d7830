"""Datasets as in-memory tensors, and the ways the chapters reshape them.

A dataset in this course is a pair ``(images, labels)``: images float32 ``N x C x H x W`` in [0, 1],
labels int64. Everything here returns such pairs or index tensors into them, so a whole
experiment's data fits in memory and batching is plain tensor slicing.
"""
from __future__ import annotations

import math
import numbers
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import datafiles, inputs, seeds
from .inputs import Dataset


CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
HALF_A = (0, 1, 2, 3, 4)  # the source task in most chapters: mostly upper-body clothing
HALF_B = (5, 6, 7, 8, 9)  # the target task: footwear, shirts and bags
SPLITS = ("train", "test")
SIZES = ("small", "full")
CORRUPTIONS = ("gaussian_noise", "blur", "contrast", "invert", "rotate")


def _to_dataset(images: np.ndarray, labels: np.ndarray) -> Dataset:
    """uint8 ``N x H x W`` (or ``N x H x W x C``) images and labels -> the course's tensor pair."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).float().div_(255.0)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(np.array(labels)).long()


# ----------------------------------------------------------------------------- Fashion-MNIST
def load_fashion_mnist(split: str = "train", size: str = "small") -> Dataset:
    """Fashion-MNIST as tensors: the bundled stratified subset (offline) or the full dataset.

    split: "train" or "test". size: "small" (1,500 train / 500 test images per class, in the repo)
    or "full" (60,000 / 10,000; from $TUTORLIB_DATA, Debian's dataset-fashion-mnist, or a download).
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {SPLITS}.")
    if size not in SIZES:
        raise ValueError(f"Unknown size {size!r}; choose one of {SIZES}.")
    images_path, labels_path = datafiles.small_files(split) if size == "small" else datafiles.full_files(split)
    images, labels = datafiles.read_idx(images_path), datafiles.read_idx(labels_path)
    if len(images) != len(labels):
        raise ValueError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels.")
    return _to_dataset(images, labels)


def load_digits(image_size: int = 28) -> Dataset:
    """scikit-learn's 1,797 real 8x8 handwritten digits, upsampled to `image_size`: a second domain."""
    from sklearn.datasets import load_digits as sklearn_digits

    image_size = inputs.integer(image_size, "image_size", 8)
    bunch = sklearn_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False).clamp_(0, 1)
    return x, torch.tensor(bunch.target, dtype=torch.long)


DATASETS = ("fashion_mnist", "digits")


def _load_dataset(name: str, split: str = "train", size: str = "small") -> Dataset:
    """Any course dataset by name, so a typo gets the list of names instead of an AttributeError.

    "digits" has no official split: a fixed stratified 80/20 split (seed 0) gives "train" and "test".
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {DATASETS}.")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {SPLITS}.")
    if size not in SIZES:
        raise ValueError(f"Unknown size {size!r}; choose one of {SIZES}.")
    if name == "fashion_mnist":
        return load_fashion_mnist(split, size)
    digits = load_digits()
    train_idx, test_idx = stratified_split(digits[1], (0.8, 0.2), seed=0)
    return take(digits, train_idx if split == "train" else test_idx)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _centre_square(img):
    """The largest centred square of a PIL image (so resizing does not squash a non-square photo)."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def _read_image(path: Path, image_size: int, grayscale: bool, center_crop: bool) -> np.ndarray:
    """One photo as float32 H x W (grey) or H x W x 3 in [0, 1]: upright (EXIF), 16-bit aware, resized."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)  # phones store "rotate me" in EXIF instead of rotating pixels
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: scale, don't clip at 255
            depth = 65535.0 if img.mode.startswith("I;16") or np.asarray(img).max() > 255 else 255.0
            img = Image.fromarray((np.asarray(img, dtype=np.float32) / depth * 255).round().astype(np.uint8))
        img = img.convert("L" if grayscale else "RGB")
        if center_crop:
            img = _centre_square(img)
        img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def _image_files(folder: Path) -> list[Path]:
    """The images in a class folder; other files (desktop.ini, notes.txt) are skipped with a warning."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    skipped = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if skipped:
        warnings.warn(f"Skipped {len(skipped)} file(s) in {folder} that are not images: {skipped[:5]}", stacklevel=3)
    return [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]


def load_image_folder(root: str | Path, image_size: int, grayscale: bool = False,
                      return_classes: bool = False, center_crop: bool = True):
    """A learner's own photos, one sub-folder per class, read once into a tensor pair.

    Each photo is turned upright by its EXIF tag, cropped to its centred square (`center_crop=False`
    squashes it instead) and resized to `image_size`. Files that are not images are skipped with a
    warning. Returns ``(images, labels)``, or ``(images, labels, class_names)`` with `return_classes=True`.
    """
    from PIL import Image, UnidentifiedImageError

    image_size = inputs.integer(image_size, "image_size", 1)
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path (str or Path), got {type(root).__name__}.")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder. Expected one sub-folder per class with images inside.")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise ValueError(f"{root} has {len(classes)} class folder(s) {classes}; a classifier needs at least 2 "
                         f"sub-folders, one per class (e.g. {root}/cats/*.jpg and {root}/dogs/*.jpg).")
    images, labels = [], []
    for label, name in enumerate(classes):
        files = _image_files(root / name)
        if not files:
            raise ValueError(f"Class folder {root / name} is empty (no {'/'.join(sorted(IMAGE_SUFFIXES))} "
                             f"files): add images or remove the folder.")
        for path in files:
            try:
                images.append(_read_image(path, image_size, grayscale, center_crop))
            except Image.DecompressionBombError as err:
                raise ValueError(f"{path} is too large to open safely ({err}). Shrink the photo, or raise "
                                 f"PIL.Image.MAX_IMAGE_PIXELS if you trust the file.") from err
            except (UnidentifiedImageError, OSError, ValueError) as err:
                raise ValueError(f"{path} is not a readable image ({err}). Remove it or convert it to "
                                 f"one of {sorted(IMAGE_SUFFIXES)}.") from err
            labels.append(label)
    x, y = _to_dataset(np.stack(images), np.array(labels))
    return (x, y, classes) if return_classes else (x, y)


def sample_photo_folder(root: str | Path, per_class: int = 20, seed: int = 0) -> Path:
    """A tiny photo folder to try `load_image_folder` on: crops of scikit-learn's two bundled photos.

    Class "china" holds crops of a temple photo, class "flower" crops of a flower photo, as JPEG files,
    one sub-folder per class: the layout your own photos need. Returns `root`.
    """
    from PIL import Image
    from sklearn.datasets import load_sample_images

    per_class, seed = inputs.integer(per_class, "per_class", 2), inputs.seed(seed)
    rng = np.random.default_rng(seed)
    root = Path(root)
    for name, photo in zip(("china", "flower"), load_sample_images().images):
        (root / name).mkdir(parents=True, exist_ok=True)
        h, w = photo.shape[:2]
        for i in range(per_class):
            side = int(rng.uniform(0.3, 0.7) * min(h, w))
            top, left = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
            crop = Image.fromarray(photo[top:top + side, left:left + side])
            _save_whole(crop, root / name / f"{name}_{i:02d}.jpg")
    return root


def _save_whole(image, path: Path) -> None:
    """Save a JPEG under a temporary name, then rename it: a reader (or a second notebook making the same
    folder at the same time) never sees a half-written photo. The temporary file sits in the folder's root,
    where `load_image_folder` looks for class folders only."""
    import tempfile

    handle, temporary = tempfile.mkstemp(suffix=".jpg", dir=path.parent.parent)
    os.close(handle)
    try:
        image.save(temporary, format="JPEG", quality=90)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


# ----------------------------------------------------------------------------- subsets
def take(data: Dataset, index: torch.Tensor) -> Dataset:
    """The rows `index` of a dataset pair."""
    images, labels = inputs.class_dataset(data)
    index = inputs.as_tensor(index, "index")
    if index.dtype == torch.bool:
        if index.shape != labels.shape:
            raise ValueError(f"A boolean mask must have one entry per sample ({len(labels)}), got {tuple(index.shape)}.")
        return images[index], labels[index]
    if index.ndim != 1 or index.is_floating_point():
        raise TypeError(f"index must be a 1-D tensor of whole-number row indices (or a boolean mask), got "
                        f"{index.dtype} of shape {tuple(index.shape)}.")
    if len(index) and (int(index.min()) < -len(labels) or int(index.max()) >= len(labels)):
        raise ValueError(f"index runs from {int(index.min())} to {int(index.max())} but the dataset has "
                         f"{len(labels)} samples.")
    return images[index], labels[index]


def select_classes(data: Dataset, classes, relabel: bool = True) -> Dataset:
    """Keep only `classes`; with `relabel`, number them 0..k-1 in the order given (for a new head)."""
    images, labels = inputs.class_dataset(data)
    classes = [inputs.integer(c, "each class", 0) for c in (classes if hasattr(classes, "__iter__") else [classes])]
    present = set(torch.unique(labels).tolist())
    if not classes or len(set(classes)) != len(classes) or not set(classes) <= present:
        raise ValueError(f"classes must be distinct labels present in the data; got {classes}, the data has "
                         f"{sorted(present)}. Each class may appear once (its position is its new label).")
    classes = torch.tensor(classes)
    keep = torch.isin(labels, classes)
    new_labels = labels[keep]
    if relabel:
        lookup = torch.full((int(labels.max()) + 1,), -1, dtype=torch.long)
        lookup[classes] = torch.arange(len(classes))
        new_labels = lookup[new_labels]
    return images[keep], new_labels


def _class_indices(labels: torch.Tensor, generator: torch.Generator) -> dict[int, torch.Tensor]:
    """For each class present, its sample indices in a seeded random order."""
    return {int(c): (idx := torch.nonzero(labels == c).flatten())[torch.randperm(len(idx), generator=generator)]
            for c in torch.unique(labels)}


def stratified_split(labels: torch.Tensor, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> list[torch.Tensor]:
    """Index tensors for each fraction, with every class split in the same proportions.

    Deterministic for a given seed; parts are disjoint and together cover every sample.
    """
    labels = inputs.labels(labels)
    seed = inputs.seed(seed)
    if isinstance(fractions, (str, bytes)) or not hasattr(fractions, "__len__") or len(fractions) == 0:
        raise ValueError(f"fractions must be a sequence of numbers that sum to 1, e.g. (0.8, 0.1, 0.1); got {fractions!r}.")
    fractions = [inputs.real(f, "each fraction") for f in fractions]
    if any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions} (sum {sum(fractions):.4f}).")
    parts: list[list[torch.Tensor]] = [[] for _ in fractions]
    cumulative = np.cumsum([0.0] + fractions)
    for c, idx in _class_indices(labels, torch.Generator().manual_seed(seed)).items():
        bounds = np.round(cumulative * len(idx)).astype(int)
        for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            if fractions[i] > 0 and hi <= lo:
                need = math.ceil(1 / min(f for f in fractions if f > 0))
                raise ValueError(f"Class {c} has only {len(idx)} samples, too few to give every part of "
                                 f"{fractions} at least one; it needs about {need}. Use fewer parts or more data.")
            parts[i].append(idx[lo:hi])
    return [torch.sort(torch.cat(p)).values for p in parts]


def few_shot(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """Indices of `per_class` random samples of every class: the few-label target sets."""
    labels, seed = inputs.labels(labels), inputs.seed(seed)
    if isinstance(per_class, bool) or not isinstance(per_class, numbers.Integral) or per_class < 1:
        raise ValueError(f"per_class must be a whole number, at least 1, got {per_class!r}.")
    per_class = int(per_class)
    picked = []
    for c, idx in _class_indices(labels, torch.Generator().manual_seed(seed)).items():
        if len(idx) < per_class:
            raise ValueError(f"Class {c} has only {len(idx)} samples; few_shot asked for {per_class} per class. "
                             f"Lower per_class to at most {len(idx)}.")
        picked.append(idx[:per_class])
    return torch.sort(torch.cat(picked)).values


def long_tail(labels: torch.Tensor, imbalance_ratio: float, seed: int = 0) -> torch.Tensor:
    """Indices of an exponentially long-tailed subset: class k keeps n * ratio^(-k/(C-1)) samples.

    Class order is label order, so the lowest label is the majority and the highest the rarest
    (the convention of Cui et al. 2019). `imbalance_ratio` = largest class / smallest class.
    """
    labels, seed = inputs.labels(labels), inputs.seed(seed)
    if isinstance(imbalance_ratio, bool) or not isinstance(imbalance_ratio, numbers.Real) \
            or not math.isfinite(imbalance_ratio) or imbalance_ratio < 1:
        raise ValueError(f"imbalance_ratio is largest/smallest class size and must be >= 1, got {imbalance_ratio!r}.")
    by_class = _class_indices(labels, torch.Generator().manual_seed(seed))
    n_max, steps = min(len(i) for i in by_class.values()), max(len(by_class) - 1, 1)
    picked = [idx[:max(1, int(n_max * imbalance_ratio ** (-rank / steps)))]
              for rank, idx in enumerate(by_class[c] for c in sorted(by_class))]
    return torch.sort(torch.cat(picked)).values


def add_label_noise(labels: torch.Tensor, rate: float, num_classes: int, seed: int = 0) -> torch.Tensor:
    """Symmetric label noise: exactly round(rate * N) labels move to a uniformly random *other* class."""
    labels, seed = inputs.labels(labels), inputs.seed(seed)
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate is the fraction of labels to corrupt and must be in [0, 1], got {rate}.")
    num_classes = inputs.integer(num_classes, "num_classes", 2)
    if num_classes < 2 or int(labels.max()) >= num_classes or int(labels.min()) < 0:
        raise ValueError(f"labels must lie in 0..{num_classes - 1} with num_classes >= 2; "
                         f"got labels in {int(labels.min())}..{int(labels.max())}.")
    g = seeds.stream(seed, "label_noise")  # not `fit`'s batch order for the same seed (see seeds.stream)
    noisy = labels.clone()
    flip = torch.randperm(len(labels), generator=g)[: round(rate * len(labels))]
    offset = torch.randint(1, num_classes, (len(flip),), generator=g)
    noisy[flip] = (labels[flip] + offset) % num_classes
    return noisy


# ----------------------------------------------------------------------------- distribution shift
def _rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image by its own angle (zero padding), in one batched grid sample."""
    theta = torch.deg2rad(degrees)
    cos, sin, zero = torch.cos(theta), torch.sin(theta), torch.zeros_like(theta)
    matrix = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(matrix, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


def corrupt(images: torch.Tensor, kind: str, severity: int = 3, seed: int = 0) -> torch.Tensor:
    """A shifted copy of `images` (like CIFAR-10-C / MNIST-C): `kind` at `severity` 1 (mild) to 5."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"Unknown corruption {kind!r}; choose one of {CORRUPTIONS}.")
    images, seed = inputs.images(images), inputs.seed(seed)
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) or severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"severity must be an integer from 1 to 5, got {severity!r}.")
    g, s = torch.Generator().manual_seed(seed), int(severity) - 1
    if kind == "gaussian_noise":
        sd = (0.08, 0.12, 0.18, 0.26, 0.38)[s]
        out = images + sd * torch.randn(images.shape, generator=g)
    elif kind == "blur":
        from torchvision.transforms.functional import gaussian_blur

        sigma = (0.5, 0.75, 1.0, 1.5, 2.0)[s]
        out = gaussian_blur(images, kernel_size=2 * math.ceil(2 * sigma) + 1, sigma=sigma)
    elif kind == "contrast":
        factor = (0.4, 0.3, 0.2, 0.1, 0.05)[s]
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        out = (images - mean) * factor + mean
    elif kind == "invert":
        alpha = (0.2, 0.4, 0.6, 0.8, 1.0)[s]
        out = images * (1 - alpha) + (1 - images) * alpha
    else:  # rotate: a fixed angle per severity, with a random sign per image
        angle = (10.0, 20.0, 30.0, 45.0, 60.0)[s]
        sign = torch.randint(0, 2, (len(images),), generator=g).float() * 2 - 1
        out = _rotate(images, angle * sign)
    return out.clamp(0.0, 1.0)
