"""tutorlib.data: every loading path offline, split properties, reshaping helpers, corruptions."""
import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tutorlib import data, manifest


def write_fake_split(folder, split, n=20, seed=0):
    """Official-layout IDX files with random content, written with the same writer `make data` uses."""
    rng = np.random.default_rng(seed)
    prefix = data.IDX_PREFIX[split]
    folder.mkdir(parents=True, exist_ok=True)
    data.write_idx(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), folder / f"{prefix}-images-idx3-ubyte.gz")
    data.write_idx(np.arange(n, dtype=np.uint8) % 10, folder / f"{prefix}-labels-idx1-ubyte.gz")


def test_idx_round_trip(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    data.write_idx(array, tmp_path / "x.gz")
    np.testing.assert_array_equal(data.read_idx(tmp_path / "x.gz"), array)


def test_truncated_idx_is_reported(tmp_path):
    import gzip
    data.write_idx(np.zeros((4, 3, 3), np.uint8), tmp_path / "x.gz")
    raw = gzip.open(tmp_path / "x.gz").read()[:-5]
    (tmp_path / "y").write_bytes(raw)
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(tmp_path / "y")


def test_bundled_subset_is_stratified_and_in_range():
    for split, per_class in (("train", 1500), ("test", 500)):
        images, labels = data.load_fashion_mnist(split)
        assert images.dtype == torch.float32 and labels.dtype == torch.int64
        assert images.shape == (10 * per_class, 1, 28, 28)
        assert 0.0 <= images.min() and images.max() <= 1.0
        assert labels.bincount().tolist() == [per_class] * 10


def test_bundled_subset_hash_is_checked(tmp_path, monkeypatch):
    small = tmp_path / "fashion-mnist-small"
    shutil.copytree(data.SMALL_DIR, small)
    shutil.copy(manifest.PATH, tmp_path / "manifest.json")
    monkeypatch.setattr(data, "SMALL_DIR", small)
    monkeypatch.setattr(manifest, "PATH", tmp_path / "manifest.json")
    assert len(data.load_fashion_mnist("test")[0]) == 5000
    target = small / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[100] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="expected sha256 .* got"):
        data.load_fashion_mnist("test")


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_full_size_from_tutorlib_data(tmp_path, monkeypatch, layout):
    folder = tmp_path if layout == "flat" else tmp_path / "FashionMNIST" / "raw"
    write_fake_split(folder, "train", n=30)
    monkeypatch.setenv("TUTORLIB_DATA", str(tmp_path))
    images, labels = data.load_fashion_mnist("train", size="full")
    assert images.shape == (30, 1, 28, 28) and labels.tolist()[:3] == [0, 1, 2]


def test_full_size_from_debian_folder(tmp_path, monkeypatch):
    write_fake_split(tmp_path / "debian", "test", n=12)
    monkeypatch.delenv("TUTORLIB_DATA", raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian")
    assert data.load_fashion_mnist("test", size="full")[0].shape == (12, 1, 28, 28)


def test_full_size_download_failure_names_the_offline_fix(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("network unreachable")

    monkeypatch.delenv("TUTORLIB_DATA", raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        data.load_fashion_mnist("train", size="full")


def test_full_size_uses_torchvision_download_layout(tmp_path, monkeypatch):
    import torchvision.datasets

    def fake_download(root, train, download):
        write_fake_split(tmp_path / "cache" / "FashionMNIST" / "raw", "train" if train else "test", n=8)

    monkeypatch.delenv("TUTORLIB_DATA", raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", fake_download)
    assert len(data.load_fashion_mnist("train", size="full")[1]) == 8


@pytest.mark.parametrize("split,size", [("validation", "small"), ("train", "medium")])
def test_unknown_split_or_size(split, size):
    with pytest.raises(ValueError, match="choose one of"):
        data.load_fashion_mnist(split, size)


def test_load_digits_is_a_second_domain():
    images, labels = data.load_digits()
    assert images.shape == (1797, 1, 28, 28) and labels.max() == 9
    assert 0 <= images.min() and images.max() <= 1


def _write_png(path, value, size=10):
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def test_load_image_folder(tmp_path):
    for i in range(3):
        _write_png(tmp_path / "cats" / f"{i}.png", 10 * i)
        _write_png(tmp_path / "dogs" / f"{i}.png", 200 + i, size=17)
    images, labels, classes = data.load_image_folder(tmp_path, 16, return_classes=True)
    assert images.shape == (6, 3, 16, 16) and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert classes == ["cats", "dogs"]
    grey, _ = data.load_image_folder(tmp_path, 8, grayscale=True)
    assert grey.shape == (6, 1, 8, 8)


def test_load_image_folder_errors(tmp_path):
    _write_png(tmp_path / "only" / "a.png", 1)
    with pytest.raises(ValueError, match="at least 2"):
        data.load_image_folder(tmp_path, 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is empty"):
        data.load_image_folder(tmp_path, 8)
    (tmp_path / "empty" / "notes.txt").write_text("not an image")  # skipped with a warning
    with pytest.warns(UserWarning, match="notes.txt"), pytest.raises(ValueError, match="is empty"):
        data.load_image_folder(tmp_path, 8)
    (tmp_path / "empty" / "broken.png").write_text("not an image")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="not a readable image"):
        data.load_image_folder(tmp_path, 8)
    with pytest.raises(FileNotFoundError):
        data.load_image_folder(tmp_path / "missing", 8)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(10, 60), min_size=2, max_size=6), seed=st.integers(0, 1000),
       fractions=st.sampled_from([(0.8, 0.1, 0.1), (0.5, 0.5), (0.6, 0.2, 0.2), (0.7, 0.3)]))
def test_stratified_split_properties(counts, seed, fractions):
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    parts = data.stratified_split(labels, fractions, seed=seed)
    joined = torch.cat(parts)
    assert len(joined) == len(labels) and len(torch.unique(joined)) == len(labels)  # disjoint, complete
    for part, frac in zip(parts, fractions):
        per_class = torch.bincount(labels[part], minlength=len(counts))
        for c, n in enumerate(counts):
            assert abs(int(per_class[c]) - frac * n) <= 1  # stratified up to rounding
    again = data.stratified_split(labels, fractions, seed=seed)
    assert all(torch.equal(a, b) for a, b in zip(parts, again))  # deterministic by seed


def test_stratified_split_errors():
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="sum to 1"):
        data.stratified_split(labels, (0.5, 0.6))
    with pytest.raises(ValueError, match="non-negative"):
        data.stratified_split(labels, (1.2, -0.2))
    with pytest.raises(ValueError, match="Class 0 has only 3 samples"):
        data.stratified_split(labels, (0.8, 0.1, 0.1))


def test_few_shot_long_tail_and_select():
    labels = torch.arange(5).repeat_interleave(100)
    idx = data.few_shot(labels, 7, seed=3)
    assert labels[idx].bincount().tolist() == [7] * 5
    assert torch.equal(idx, data.few_shot(labels, 7, seed=3))
    with pytest.raises(ValueError, match="at most 100"):
        data.few_shot(labels, 101)
    tail = labels[data.long_tail(labels, 100, seed=0)].bincount().tolist()
    assert tail[0] == 100 and tail[-1] == 1 and tail == sorted(tail, reverse=True)
    assert labels[data.long_tail(labels, 1)].bincount().tolist() == [100] * 5
    with pytest.raises(ValueError, match=">= 1"):
        data.long_tail(labels, 0.5)
    images = torch.rand(500, 1, 4, 4)
    x, y = data.select_classes((images, labels), [3, 1])
    assert len(x) == 200 and set(y.tolist()) == {0, 1}
    assert torch.equal(x[y == 0], images[labels == 3])


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.6, 1.0])
def test_label_noise_rate_is_exact(rate):
    labels = torch.arange(5).repeat(200)
    noisy = data.add_label_noise(labels, rate, num_classes=5, seed=1)
    assert (noisy != labels).float().mean().item() == pytest.approx(rate)
    assert noisy.min() >= 0 and noisy.max() <= 4


def test_label_noise_errors():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.add_label_noise(torch.zeros(3, dtype=torch.long), 1.5, 2)
    with pytest.raises(ValueError, match="labels must lie"):
        data.add_label_noise(torch.tensor([0, 7]), 0.1, 5)


@pytest.mark.parametrize("kind", data.CORRUPTIONS)
def test_corruptions_shift_images_more_at_higher_severity(kind):
    images, _ = data.load_fashion_mnist("test")
    images = images[:64]
    mild, severe = data.corrupt(images, kind, 1), data.corrupt(images, kind, 5)
    assert mild.shape == images.shape and 0 <= severe.min() and severe.max() <= 1
    assert (severe - images).abs().mean() > (mild - images).abs().mean() > 0
    assert torch.equal(severe, data.corrupt(images, kind, 5))  # seeded


def test_corrupt_errors():
    with pytest.raises(ValueError, match="choose one of"):
        data.corrupt(torch.rand(2, 1, 8, 8), "fog", 3)
    with pytest.raises(ValueError, match="1 to 5"):
        data.corrupt(torch.rand(2, 1, 8, 8), "blur", 6)


def test_label_noise_does_not_follow_the_batch_order_of_the_same_seed():
    """Regression: with one generator per seed, the flipped images were exactly the ones `fit(seed=s)`
    showed first, so the end of the first epoch was all clean labels."""
    labels = torch.arange(5).repeat(200)
    noisy = data.add_label_noise(labels, 0.8, 5, seed=0)
    flipped = set((noisy != labels).nonzero().flatten().tolist())
    first_shown = set(torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:len(flipped)].tolist())
    assert len(flipped & first_shown) < 0.9 * len(flipped)  # about 80% overlap by chance, not 100%
    assert noisy.tolist() == data.add_label_noise(labels, 0.8, 5, seed=0).tolist()  # still reproducible
