"""Build the bundled Fashion-MNIST subset in data/ from the official IDX files (`make data`).

    python -m tutorlib.tools.bundle [--source FOLDER] [--train-per-class 1500] [--test-per-class 500]

The subset is stratified (equal images per class), drawn with a fixed seed from the official
train and test splits, and written as gzipped IDX files with their sha256 in data/manifest.json.
Run twice, it writes byte-identical files.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from .. import manifest
from ..data import CLASS_NAMES, few_shot
from ..datafiles import DEBIAN_DIR, SMALL_DIR, find_idx_files, read_idx, write_idx

LICENCE = """Fashion-MNIST subset bundled with this course.

Source: Fashion-MNIST by Zalando SE, https://github.com/zalandoresearch/fashion-mnist
(Xiao, Rasul, Vollgraf 2017, arXiv:1708.07747), official IDX files as packaged by Debian
(dataset-fashion-mnist). The subset in fashion-mnist-small/ was drawn by `python -m tutorlib.tools.bundle`.

The MIT License (MIT)
Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT
OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def build(source: Path, out: Path, per_class: dict[str, int], seed: int = 0) -> dict:
    """Write the stratified subset of each split to `out`; return its manifest entry."""
    out.mkdir(parents=True, exist_ok=True)
    files, counts = {}, {}
    for split, n in per_class.items():
        paths = find_idx_files(source, split)
        if paths is None:
            raise FileNotFoundError(f"No official {split!r} IDX files in {source}. "
                                    f"Install them with `apt-get install dataset-fashion-mnist`.")
        images, labels = read_idx(paths[0]), read_idx(paths[1])
        keep = few_shot(torch.from_numpy(labels.astype(np.int64)), n, seed=seed).numpy()
        for kind, array in (("images", images[keep]), ("labels", labels[keep])):
            name = f"{paths[0].name.split('-')[0]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz"
            write_idx(array, out / name)
            files[name] = {"sha256": manifest.sha256(out / name), "bytes": (out / name).stat().st_size,
                           "source": paths[0 if kind == "images" else 1].name}
        counts[split] = {CLASS_NAMES[c]: int((labels[keep] == c).sum()) for c in range(10)}
    return {"description": "Stratified subset of Fashion-MNIST (official train and test splits)",
            "folder": str(out.relative_to(manifest.DATA_DIR)), "seed": seed, "per_class": per_class,
            "per_class_counts": counts, "files": files, "licence": "MIT (Zalando SE), see LICENSE-fashion-mnist.txt",
            "source": "Fashion-MNIST, Xiao et al. 2017, via Debian package dataset-fashion-mnist"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEBIAN_DIR, help="folder with the official IDX files")
    parser.add_argument("--train-per-class", type=int, default=1500)
    parser.add_argument("--test-per-class", type=int, default=500)
    args = parser.parse_args(argv)
    entry = build(args.source, SMALL_DIR, {"train": args.train_per_class, "test": args.test_per_class})
    manifest.record("fashion_mnist_small", entry)
    (manifest.DATA_DIR / "LICENSE-fashion-mnist.txt").write_text(LICENCE)
    total = sum(f["bytes"] for f in entry["files"].values())
    print(f"Wrote {len(entry['files'])} files ({total / 1e6:.1f} MB) to {SMALL_DIR} and updated {manifest.PATH}.")


if __name__ == "__main__":
    main()
