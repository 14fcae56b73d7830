"""Fashion-MNIST's files: the IDX format, and where the files are found.

The bundled subset (data/fashion-mnist-small, each file checked against data/manifest.json by sha256), or the
full dataset from $TUTORLIB_DATA, Debian's package dataset-fashion-mnist, or a download into the cache when
online. `data.load_fashion_mnist` turns them into the course's tensors; the bundle tool writes them.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from . import manifest
from .manifest import DATA_DIR, sha256

SMALL_DIR = DATA_DIR / "fashion-mnist-small"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_DIR = Path.home() / ".cache" / "tutorlib"
IDX_PREFIX = {"train": "train", "test": "t10k"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format, optionally gzipped) into a NumPy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path} could not be read ({err}): it is not a valid{' gzip' if opener is gzip.open else ''} "
                         f"IDX file. Download the official file again or remove it.") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number {raw[:4].hex()}). "
                         f"Download the official file again or remove it.")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path} is truncated inside its header. Download the official file again.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(shape):
        raise ValueError(f"{path} is truncated: header says {shape}, found {body.size} bytes of data.")
    return body.reshape(shape)


def write_idx(array: np.ndarray, path: str | Path) -> None:
    """Write a uint8 array as a gzipped IDX file (used to build the bundled subset and in tests)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.GzipFile(path, "wb", mtime=0) as f:  # mtime=0 keeps the file's sha256 reproducible
        f.write(header + array.tobytes())


# ----------------------------------------------------------------------------- where the files are
def find_idx_files(folder: Path, split: str) -> tuple[Path, Path] | None:
    """The image and label files of `split` in `folder` (plain or .gz, flat or torchvision layout)."""
    prefix = IDX_PREFIX[split]
    for sub in (folder, folder / "FashionMNIST" / "raw", folder / "fashion-mnist"):
        for ext in ("", ".gz"):
            images = sub / f"{prefix}-images-idx3-ubyte{ext}"
            labels = sub / f"{prefix}-labels-idx1-ubyte{ext}"
            if images.exists() and labels.exists():
                return images, labels
    return None


def _full_data_folders() -> list[Path]:
    """Where the full dataset is looked for, in order: $TUTORLIB_DATA, Debian's package, the cache."""
    folders = [Path(os.environ["TUTORLIB_DATA"])] if os.environ.get("TUTORLIB_DATA") else []
    return folders + [DEBIAN_DIR, CACHE_DIR]


def _download_full(split: str) -> tuple[Path, Path]:
    """Last resort when online: let torchvision fetch the official files into the cache."""
    from torchvision.datasets import FashionMNIST

    try:
        FashionMNIST(str(CACHE_DIR), train=(split == "train"), download=True)
    except Exception as err:  # no network, proxy, disk full ...
        tried = ", ".join(str(p) for p in _full_data_folders())
        raise FileNotFoundError(
            f"The full Fashion-MNIST {split!r} split was not found (looked in {tried}) and the download "
            f"failed ({err}). Offline fix: `apt-get install dataset-fashion-mnist`, or put the four "
            f"official IDX files in a folder and set TUTORLIB_DATA to it. Or use size='small'."
        ) from err
    return find_idx_files(CACHE_DIR, split)


def small_files(split: str) -> tuple[Path, Path]:
    """The bundled subset's files, after checking their sha256 against data/manifest.json."""
    entries = manifest.section("fashion_mnist_small").get("files")
    if not entries:
        raise FileNotFoundError(f"{manifest.PATH} lists no bundled data. Restore it with "
                                f"`git checkout -- data/` (in a clone; or reinstall the course's wheel) or rebuild the bundled data with `make data`.")
    paths = find_idx_files(SMALL_DIR, split)
    if paths is None:
        raise FileNotFoundError(f"The bundled {split!r} files are missing from {SMALL_DIR}. Run `make data`.")
    for path in paths:
        expected, actual = entries[path.name]["sha256"], sha256(path)
        if expected != actual:
            raise ValueError(
                f"{path} does not match data/manifest.json (expected sha256 {expected}, got {actual}). "
                f"The file is corrupt or was changed: restore it with `git checkout -- data/` or `make data` (in a clone), or reinstall the course's wheel."
            )
    return paths


def full_files(split: str) -> tuple[Path, Path]:
    """The full dataset's files of `split`: the first folder that has them, else a download (when online)."""
    found = next((p for f in _full_data_folders() if (p := find_idx_files(f, split))), None)
    return found or _download_full(split)
