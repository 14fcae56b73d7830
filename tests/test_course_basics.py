"""Profiles, seeds, verdict cells, the package surface and the notebooks' committed state."""
import json
import pathlib

import pytest
import torch

import tutorlib
from tutorlib import check, profile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_profiles(monkeypatch):
    monkeypatch.setenv("TUTORLIB_PROFILE", "quick")
    assert profile.current().name == "quick"
    assert profile.current("full").data_size == "full"
    monkeypatch.setenv("TUTORLIB_PROFILE", "quik")
    with pytest.raises(ValueError, match="quick"):
        profile.current()
    assert profile.PROFILES["quick"].epochs(5) == 2 and profile.PROFILES["quick"].epochs(1) == 1


def test_seed_everything_repeats():
    g1 = profile.seed_everything(3)
    a = (torch.rand(3), torch.rand(2, generator=g1))
    g2 = profile.seed_everything(3)
    b = (torch.rand(3), torch.rand(2, generator=g2))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_expect_passes_prints_and_records(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUTORLIB_RESULTS", str(tmp_path / "r.jsonl"))
    check.expect(0.9 > 0.8, "pretrained beats scratch", pretrained=0.9, scratch=torch.tensor(0.8))
    assert "PASS pretrained beats scratch: pretrained=0.9, scratch=0.8" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="FAIL gap is positive: gap=-0.0123"):
        check.expect(False, "gap is positive", gap=-0.01234)
    check.report("OOD gain", lp_ft=0.33, ft=0.36)
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [x["status"] for x in lines] == ["PASS", "FAIL", "REPORTED"]


def test_mean_sd_and_exercise():
    assert check.mean_sd([0.8, 0.9, 1.0]) == "0.900 ± 0.100 (n=3)"
    check.exercise(True, "well done", "hint")
    with pytest.raises(AssertionError, match="Not yet: look again"):
        check.exercise(False, "well done", "look again")


def test_public_api_names():
    contract = {
        "data": ["load_fashion_mnist", "load_digits", "load_image_folder", "stratified_split", "select_classes",
                 "few_shot", "long_tail", "add_label_noise", "corrupt"],
        "models": ["small_cnn", "efficientnet_lite", "load_checkpoint", "list_checkpoints"],
        "surgery": ["replace_head", "layer_groups", "freeze", "unfreeze", "discriminative_param_groups",
                    "transplant", "prune_magnitude"],
        "train": ["fit", "evaluate", "linear_probe", "extract_features", "distillation_loss", "l2sp_penalty",
                  "History", "TrainingDiverged"],
        "analysis": ["linear_cka", "gradient_norms", "logme", "count_flops", "latency", "per_class_accuracy"],
        "check": ["expect"],
        "profile": ["current", "seed_everything"],
    }
    for module, names in contract.items():
        for name in names:
            assert callable(getattr(getattr(tutorlib, module), name)), f"tutorlib.{module}.{name}"
    assert issubclass(tutorlib.train.TrainingDiverged, RuntimeError)


def test_plots_return_figures(blobs):
    import pandas as pd
    from matplotlib.figure import Figure
    from tutorlib import plots

    df = pd.DataFrame({"x": [1, 2, 1, 2], "acc": [0.5, 0.6, 0.55, 0.65], "method": ["a", "a", "b", "b"]})
    for fig in (plots.lines(df, "x", "acc", "method"), plots.bars(df, "method", "acc"),
                plots.scatter(df, "x", "acc", label="method"), plots.layer_profile(df, "x", "acc", "method"),
                plots.image_grid(blobs[0][:6], blobs[1][:6], ["a", "b", "c"], ncols=3)):
        assert isinstance(fig, Figure)


def test_notebooks_are_committed_without_outputs():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, path.name
