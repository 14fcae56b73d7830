"""tutorlib.data: every loading path offline, split properties, reshaping helpers, corruptions."""
import shutil

import numpy as np
import pytest
import torch
from helpers import FEW, LABELS
from hypothesis import given, settings
from hypothesis import strategies as st

from tutorlib import data, datafiles, manifest


def write_fake_split(folder, split, n=20, seed=0):
    """Official-layout IDX files with random content, written with the same writer `make data` uses."""
    rng = np.random.default_rng(seed)
    prefix = datafiles.IDX_PREFIX[split]
    folder.mkdir(parents=True, exist_ok=True)
    datafiles.write_idx(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), folder / f"{prefix}-images-idx3-ubyte.gz")
    datafiles.write_idx(np.arange(n, dtype=np.uint8) % 10, folder / f"{prefix}-labels-idx1-ubyte.gz")


def test_bundled_subset_is_stratified_and_in_range():
    for split, per_class in (("train", 1500), ("test", 500)):
        images, labels = data.load_fashion_mnist(split)
        assert images.dtype == torch.float32 and labels.dtype == torch.int64
        assert images.shape == (10 * per_class, 1, 28, 28)
        assert 0.0 <= images.min() and images.max() <= 1.0
        assert labels.bincount().tolist() == [per_class] * 10


def test_bundled_subset_hash_is_checked(tmp_path, monkeypatch):
    small = tmp_path / "fashion-mnist-small"
    shutil.copytree(datafiles.SMALL_DIR, small)
    shutil.copy(manifest.PATH, tmp_path / "manifest.json")
    monkeypatch.setattr(datafiles, "SMALL_DIR", small)
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
    monkeypatch.setattr(datafiles, "DEBIAN_DIR", tmp_path / "debian")
    assert data.load_fashion_mnist("test", size="full")[0].shape == (12, 1, 28, 28)


def test_full_size_download_failure_names_the_offline_fix(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("network unreachable")

    monkeypatch.delenv("TUTORLIB_DATA", raising=False)
    monkeypatch.setattr(datafiles, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(datafiles, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        data.load_fashion_mnist("train", size="full")


def test_full_size_uses_torchvision_download_layout(tmp_path, monkeypatch):
    import torchvision.datasets

    def fake_download(root, train, download):
        write_fake_split(tmp_path / "cache" / "FashionMNIST" / "raw", "train" if train else "test", n=8)

    monkeypatch.delenv("TUTORLIB_DATA", raising=False)
    monkeypatch.setattr(datafiles, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(datafiles, "CACHE_DIR", tmp_path / "cache")
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


# ----------------------------------------------------------------------------- bad input and faults
DATA_CASES = {
    "unknown dataset": (lambda: data._load_dataset("fashion-mnist"), ValueError, "'fashion_mnist'"),
    "unknown dataset split": (lambda: data._load_dataset("digits", "validation"), ValueError, "'test'"),
    "unknown split": (lambda: data.load_fashion_mnist("val"), ValueError, "'train', 'test'"),
    "unknown size": (lambda: data.load_fashion_mnist("train", "medium"), ValueError, "'small', 'full'"),
    "fractions sum to 0.9": (lambda: data.stratified_split(LABELS, (0.5, 0.2, 0.2)), ValueError, "sum to 1"),
    "negative fraction": (lambda: data.stratified_split(LABELS, (1.2, -0.2)), ValueError, "non-negative"),
    "class too small to split": (lambda: data.stratified_split(FEW, (0.8, 0.1, 0.1)), ValueError, "Class 2"),
    "few_shot beyond class size": (lambda: data.few_shot(FEW, 2), ValueError, "Class 2"),
    "few_shot zero shots": (lambda: data.few_shot(LABELS, 0), ValueError, "at least 1"),
    "imbalance ratio below 1": (lambda: data.long_tail(LABELS, 0.5), ValueError, ">= 1"),
    "noise rate above 1": (lambda: data.add_label_noise(LABELS, 1.5, 3), ValueError, "[0, 1]"),
    "noise rate below 0": (lambda: data.add_label_noise(LABELS, -0.1, 3), ValueError, "[0, 1]"),
    "noisy labels outside num_classes": (lambda: data.add_label_noise(LABELS, 0.1, 2), ValueError, "0..1"),
    "unknown corruption": (lambda: data.corrupt(torch.rand(2, 1, 8, 8), "fog"), ValueError, "gaussian_noise"),
    "severity 0": (lambda: data.corrupt(torch.rand(2, 1, 8, 8), "blur", 0), ValueError, "1 to 5"),
    "severity 6": (lambda: data.corrupt(torch.rand(2, 1, 8, 8), "blur", 6), ValueError, "1 to 5"),
}


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_data_arguments_name_the_valid_choices(case):
    call, error, expected_text = DATA_CASES[case]
    with pytest.raises(error) as info:
        call()
    assert expected_text in str(info.value)


def test_image_folder_faults_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="one sub-folder per class"):
        data.load_image_folder(tmp_path / "nowhere", 16)
    (tmp_path / "cats").mkdir()
    with pytest.raises(ValueError, match="at least 2"):
        data.load_image_folder(tmp_path, 16)
    (tmp_path / "dogs").mkdir()
    with pytest.raises(ValueError, match="is empty"):
        data.load_image_folder(tmp_path, 16)


def test_image_folder_with_a_corrupt_image_names_the_file(tmp_path):
    from PIL import Image

    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        Image.new("L", (8, 8), 128).save(tmp_path / name / "ok.png")
    (tmp_path / "dogs" / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="broken.png"):
        data.load_image_folder(tmp_path, 16)


def test_a_garbage_gz_under_tutorlib_data_names_the_file(tmp_path, monkeypatch):
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(b"this is not gzip at all")
    monkeypatch.setenv("TUTORLIB_DATA", str(tmp_path))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz.*not a valid gzip IDX file"):
        data.load_fashion_mnist("train", "full")


def _photo_folder(tmp_path):
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (40, 20), (200, 10, 10)).save(tmp_path / name / "wide.png")
    return tmp_path


def test_exif_rotation_is_applied(tmp_path):
    from PIL import Image

    root = _photo_folder(tmp_path)
    upright = np.zeros((40, 20, 3), dtype=np.uint8)  # tall: top half white
    upright[:20] = 255
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # what the phone saved: wide
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored.save(root / "a" / "phone.jpg", exif=exif.tobytes(), quality=95)
    images, labels, classes = data.load_image_folder(root, 8, return_classes=True, center_crop=False)
    assert classes == ["a", "b"] and labels[0] == 0
    phone = images[0]  # class a's files sort as phone.jpg, wide.png
    assert phone[:, :4].mean() > 0.9 and phone[:, 4:].mean() < 0.1  # white on top: upright


def test_sixteen_bit_png_keeps_its_range(tmp_path):
    from PIL import Image

    root = _photo_folder(tmp_path)
    ramp = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)
    Image.fromarray(ramp).save(root / "b" / "deep.png")
    images, labels = data.load_image_folder(root, 16, grayscale=True)
    deep = images[labels == 1][0, 0]
    assert 0.4 < float(deep.mean()) < 0.6 and float(deep.min()) < 0.05  # not saturated at 1.0


def test_non_square_photos_are_centre_cropped_by_default(tmp_path):
    from PIL import Image

    root = _photo_folder(tmp_path)
    stripes = np.zeros((20, 60), dtype=np.uint8)
    stripes[:, 20:40] = 255  # a white centre third
    Image.fromarray(stripes).save(root / "b" / "stripes.png")
    cropped, labels = data.load_image_folder(root, 10, grayscale=True)
    squashed, _ = data.load_image_folder(root, 10, grayscale=True, center_crop=False)
    assert float(cropped[labels == 1][0].mean()) > 0.9  # the crop is the white centre
    assert float(squashed[labels == 1][0].mean()) < 0.6  # squashing keeps the black sides


def test_a_decompression_bomb_is_named(tmp_path, monkeypatch):
    from PIL import Image

    root = _photo_folder(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 800-pixel photos now count as bombs (> 2x the limit)
    with pytest.raises(ValueError, match="too large to open safely.*MAX_IMAGE_PIXELS"):
        data.load_image_folder(root, 8)


def test_two_notebooks_making_the_sample_photo_folder_at_once_never_show_a_half_written_photo(tmp_path):
    """Two chapters (make test runs two at a time) write the same folder while one of them reads it."""
    import threading

    root, errors, done = tmp_path / "photos", [], threading.Event()
    data.sample_photo_folder(root, per_class=4)

    def write():
        for _ in range(5):
            data.sample_photo_folder(root, per_class=4)
        done.set()

    def read():
        while not done.is_set():
            try:
                data.load_image_folder(root, image_size=32)
            except Exception as err:  # a half-written JPEG: "not a readable image"
                errors.append(err)

    threads = [threading.Thread(target=write), threading.Thread(target=write), threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert sorted(p.name for p in root.iterdir()) == ["china", "flower"]  # no temporary file left behind
