"""`make data` (tutorlib.tools.bundle) and the manifest it writes, on a small fake copy of the official files."""
import numpy as np
import pytest
import torch

from tutorlib import data, datafiles, manifest
from tutorlib.tools import bundle


@pytest.fixture
def official(tmp_path):
    """Official-format IDX files: 30 train and 12 test images per class, each image tagged with its index."""
    folder = tmp_path / "official"
    folder.mkdir()
    for prefix, n in (("train", 30), ("t10k", 12)):
        labels = np.tile(np.arange(10, dtype=np.uint8), n)
        images = (np.arange(len(labels)) % 251).astype(np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
        datafiles.write_idx(images, folder / f"{prefix}-images-idx3-ubyte.gz")
        datafiles.write_idx(labels, folder / f"{prefix}-labels-idx1-ubyte.gz")
    return folder


@pytest.fixture
def private_data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest, "DATA_DIR", tmp_path)
    monkeypatch.setattr(manifest, "PATH", tmp_path / "manifest.json")
    monkeypatch.setattr(bundle, "SMALL_DIR", tmp_path / "fashion-mnist-small")
    return tmp_path


def test_build_writes_a_stratified_subset_with_hashes(official, private_data_dir):
    out = private_data_dir / "fashion-mnist-small"
    entry = bundle.build(official, out, {"train": 5, "test": 2})
    images, labels = datafiles.read_idx(out / "train-images-idx3-ubyte.gz"), datafiles.read_idx(out / "train-labels-idx1-ubyte.gz")
    assert images.shape == (50, 28, 28) and np.bincount(labels).tolist() == [5] * 10
    assert entry["per_class_counts"]["test"] == {name: 2 for name in data.CLASS_NAMES}
    for name, info in entry["files"].items():
        assert info["sha256"] == manifest.sha256(out / name)


def test_build_is_byte_for_byte_reproducible_and_seeded(official, private_data_dir):
    first = bundle.build(official, private_data_dir / "a", {"train": 5, "test": 2}, seed=0)["files"]
    again = bundle.build(official, private_data_dir / "b", {"train": 5, "test": 2}, seed=0)["files"]
    other = bundle.build(official, private_data_dir / "c", {"train": 5, "test": 2}, seed=1)["files"]
    assert {k: v["sha256"] for k, v in first.items()} == {k: v["sha256"] for k, v in again.items()}
    assert first["train-images-idx3-ubyte.gz"]["sha256"] != other["train-images-idx3-ubyte.gz"]["sha256"]


def test_missing_official_files_name_the_fix(tmp_path, private_data_dir):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        bundle.build(tmp_path / "nowhere", private_data_dir / "out", {"train": 5})


def test_main_records_its_section_and_keeps_the_others(official, private_data_dir, capsys):
    manifest.record("checkpoints", {"x": 1}, key="A_w16")
    bundle.main(["--source", str(official), "--train-per-class", "3", "--test-per-class", "1"])
    written = manifest.read()
    assert written["checkpoints"] == {"A_w16": {"x": 1}}
    assert written["fashion_mnist_small"]["per_class"] == {"train": 3, "test": 1}
    assert (private_data_dir / "LICENSE-fashion-mnist.txt").exists()
    assert "Wrote 4 files" in capsys.readouterr().out


def test_the_bundled_subset_matches_its_manifest():
    entry = manifest.section("fashion_mnist_small")
    for name, info in entry["files"].items():
        assert manifest.sha256(datafiles.SMALL_DIR / name) == info["sha256"]
    labels = torch.from_numpy(datafiles.read_idx(datafiles.SMALL_DIR / "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    assert labels.bincount().tolist() == [entry["per_class"]["test"]] * 10
