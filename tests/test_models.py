"""tutorlib.models: the course CNN, offline ImageNet EfficientNet-Lite, hash-checked checkpoints."""
import json
import shutil

import pytest
import torch
import torch.nn as nn

from tutorlib import data, manifest, models, recipes, surgery


def test_small_cnn_shapes_and_groups():
    model = models.small_cnn(width=8, depth=5, num_classes=3)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 3)
    assert [n for n, _ in surgery.layer_groups(model)] == ["block1", "block2", "block3", "block4", "block5", "head"]
    assert model.forward_features(torch.rand(2, 1, 28, 28)).shape == (2, 32)
    with pytest.raises(ValueError, match="positive"):
        models.small_cnn(width=0)


def test_lite0_recognises_the_palace_offline():
    """docs/design.md, section 3: scikit-learn's china.jpg comes out as ImageNet class 698, 'palace'."""
    from sklearn.datasets import load_sample_images

    model = models.efficientnet_lite("lite0")
    with torch.no_grad():
        probs = model(models.imagenet_preprocess(load_sample_images().images[0])).softmax(1)
    assert int(probs.argmax()) == 698


@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_lite1_and_lite2_load(variant):
    model = models.efficientnet_lite(variant, input_size=64)
    with torch.no_grad():
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, 1000)


def test_unknown_lite_variant():
    with pytest.raises(ValueError, match="lite0"):
        models.efficientnet_lite("lite9")


def test_every_checkpoint_loads_and_matches_its_manifest():
    names = models.list_checkpoints()
    assert {"A_w16", "B_w16", "A_w32", "B_w32", "A_rotation_w16"} <= set(names)
    for name in names:
        info = models.checkpoint_info(name)
        model = models.load_checkpoint(name)
        assert model.config["num_classes"] == info["architecture"]["num_classes"]
        assert info["metrics"]["test_accuracy"] > 0.5


def test_checkpoint_reaches_its_recorded_accuracy():
    model = models.load_checkpoint("A_w16")
    test = data.select_classes(data.load_fashion_mnist("test"), data.HALF_A)
    from tutorlib.train import evaluate
    recorded = models.checkpoint_info("A_w16")["metrics"]["test_accuracy"]
    assert evaluate(model, test)["accuracy"] == pytest.approx(recorded, abs=1e-3)


@pytest.fixture
def copied_checkpoints(tmp_path, monkeypatch):
    """A private copy of data/ so tests can damage files."""
    shutil.copytree(models.CHECKPOINT_DIR, tmp_path / "checkpoints")
    shutil.copy(manifest.PATH, tmp_path / "manifest.json")
    monkeypatch.setattr(manifest, "DATA_DIR", tmp_path)
    monkeypatch.setattr(manifest, "PATH", tmp_path / "manifest.json")
    return tmp_path


def test_altered_checkpoint_names_file_and_both_hashes(copied_checkpoints):
    path = copied_checkpoints / "checkpoints" / "A_w16.pt"
    expected = models.checkpoint_info("A_w16")["sha256"]
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ValueError) as err:
        models.load_checkpoint("A_w16")
    assert "A_w16.pt" in str(err.value) and expected in str(err.value) and manifest.sha256(path) in str(err.value)
    assert "make checkpoints" in str(err.value)


def test_missing_and_unknown_checkpoints(copied_checkpoints):
    (copied_checkpoints / "checkpoints" / "B_w16.pt").unlink()
    with pytest.raises(FileNotFoundError, match="make checkpoints"):
        models.load_checkpoint("B_w16")
    with pytest.raises(ValueError, match="Available"):
        models.load_checkpoint("C_w99")


def test_wrong_architecture_is_reported(copied_checkpoints):
    manifest = json.loads((copied_checkpoints / "manifest.json").read_text())
    manifest["checkpoints"]["A_w16"]["architecture"]["width"] = 8
    (copied_checkpoints / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="does not fit the architecture"):
        models.load_checkpoint("A_w16")


def test_no_torch_load_without_weights_only():
    import pathlib
    import re

    import tutorlib

    for path in pathlib.Path(tutorlib.__file__).parent.glob("*.py"):
        for call in re.findall(r"torch\.load\([^)]*\)", path.read_text()):
            assert "weights_only=True" in call, f"{path.name}: {call}"


def test_fresh_cnn_depends_on_the_seed_alone():
    a, b, c = models.fresh_cnn(seed=1), models.fresh_cnn(seed=1), models.fresh_cnn(seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.head.weight, c.head.weight)


@pytest.mark.parametrize("frozen", [1, 3, "block4"])
def test_split_recomposes_the_course_cnn_exactly(frozen):
    model = models.fresh_cnn(width=8, seed=0).eval()
    bottom, top = models.split(model, frozen)
    x = torch.rand(6, 1, 28, 28)
    assert torch.equal(top(bottom(x)), model(x))
    assert all(any(p is q for q in model.parameters()) for p in top.parameters())  # shared, not copied


def test_split_recomposes_lite0_exactly(lite_random):
    x = torch.rand(3, 1, 28, 28)
    for frozen in (1, "blocks.4", 9):
        bottom, top = models.split(lite_random, frozen)
        assert torch.allclose(top(bottom(x)), lite_random(x), atol=1e-5)


@pytest.mark.parametrize("frozen", [0, 5, 99, "block9"])
def test_split_refuses_cuts_that_leave_no_head_or_no_bottom(frozen):
    with pytest.raises(ValueError, match="block1"):
        models.split(models.fresh_cnn(width=4), frozen)


def test_lite0_takes_course_images_and_its_random_weights_follow_the_seed(lite_random):
    assert lite_random(torch.rand(2, 1, 28, 28)).shape == (2, 1000)
    assert lite_random.image_size == models.LITE0_PIXELS
    again, other = models.lite0(pretrained=False, seed=0), models.lite0(pretrained=False, seed=1)
    assert torch.equal(again.model.conv_stem.weight, lite_random.model.conv_stem.weight)
    assert not torch.equal(other.model.conv_stem.weight, lite_random.model.conv_stem.weight)


@pytest.fixture(scope="module")
def lite_random():
    return models.lite0(pretrained=False, seed=0).eval()


class _Residual(nn.Module):
    """A model whose forward adds a skip connection its list of children cannot show."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Flatten(), nn.Linear(784, 32))
        self.block = nn.Linear(32, 32)
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        h = self.stem(x)
        return self.head(h + self.block(h).relu())


class _Twice(_Residual):
    """A model that applies one layer twice."""

    def forward(self, x):
        return self.head(self.block(self.block(self.stem(x))))


@pytest.mark.parametrize("kind", [_Residual, _Twice])
def test_split_with_a_probe_refuses_a_model_whose_forward_is_not_its_chain(kind):
    torch.manual_seed(0)
    probe = torch.rand(8, 1, 28, 28)
    for depth in (1, 2):
        models.split(kind(), depth)  # without a probe nothing can be checked
        with pytest.raises(ValueError, match="not its layers one after another.*outputs differ.*without cache=True"):
            models.split(kind(), depth, probe=probe)
    with pytest.raises(ValueError, match="not its layers one after another"):
        recipes.finetune(kind(), (torch.rand(20, 1, 28, 28), torch.arange(20) % 5), steps=1, lr=1e-3,
                         frozen_groups=1, cache=True)


def test_split_with_a_probe_accepts_the_course_models():
    probe = torch.rand(8, 1, 28, 28)
    for model in (models.fresh_cnn(8, 4, 5, seed=0), models.lite0()):
        bottom, top = models.split(model.eval(), 2, probe=probe)
        with torch.no_grad():
            assert torch.allclose(top(bottom(probe)), model(probe), rtol=1e-3, atol=1e-4)


def test_a_new_head_keeps_the_config_true_and_draws_like_any_linear_layer():
    """A source with 10 classes fine-tuned to 5: copies stay one architecture (engine.fit_many), same weights as before."""
    from tutorlib import anatomy
    from tutorlib.seeds import seed_everything

    net = models.fresh_cnn(num_classes=10, seed=3)
    seed_everything(7)
    head = anatomy.reset_head(net, 5)
    assert head is net.head and net.config["num_classes"] == 5 and net.head.out_features == 5
    seed_everything(7)
    assert torch.equal(head.weight, torch.nn.Linear(net.head.in_features, 5).weight)
    assert net.random_twin(0).head.out_features == 5
