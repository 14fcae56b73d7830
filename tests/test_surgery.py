"""tutorlib.surgery on the course CNN, timm EfficientNet-Lite0 and torchvision ResNet-18 / MobileNetV3."""
import copy

import pytest
import timm
import torch
import torch.nn as nn
import torchvision
from helpers import GOOD, IMAGES, tiny_cnn, unchanged, weights

from tutorlib import analysis, evaluation, losses, models, surgery
from tutorlib.surgery import BATCH_NORMS

MODELS = {
    "course_cnn": lambda: models.small_cnn(16, 4, 5),
    "timm_lite0": lambda: timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=5),
    "tv_resnet18": lambda: torchvision.models.resnet18(weights=None, num_classes=5),
    "tv_mobilenet_v3": lambda: torchvision.models.mobilenet_v3_small(weights=None, num_classes=5),
}
HEADS = {"course_cnn": "head", "timm_lite0": "classifier", "tv_resnet18": "fc", "tv_mobilenet_v3": "classifier"}


@pytest.fixture(params=list(MODELS))
def named_model(request):
    torch.manual_seed(0)
    return request.param, MODELS[request.param]()


def test_groups_are_ordered_and_cover_every_parameter(named_model):
    name, model = named_model
    groups = surgery.layer_groups(model)
    assert len(groups) >= 4 and groups[-1][0] == HEADS[name]
    in_groups = {id(p) for _, m in groups for p in m.parameters()}
    assert in_groups == {id(p) for p in model.parameters()}


def test_freeze_n_groups_freezes_exactly_those_and_keeps_their_bn_in_eval(named_model):
    _, model = named_model
    groups = surgery.layer_groups(model)
    surgery.freeze(model, 2)
    surgery.train_mode(model)
    for i, (_, module) in enumerate(groups):
        frozen = i < 2
        assert all(p.requires_grad != frozen for p in module.parameters())
        for bn in (m for m in module.modules() if isinstance(m, BATCH_NORMS)):
            assert bn.training != frozen


def test_frozen_bn_statistics_do_not_move(named_model):
    _, model = named_model
    surgery.freeze(model, 1)
    surgery.train_mode(model)
    first = surgery.layer_groups(model)[0][1]
    bn = next(m for m in first.modules() if isinstance(m, BATCH_NORMS))
    before = bn.running_mean.clone()
    model(torch.rand(4, 3 if not isinstance(model, models.SmallCNN) else 1, 64, 64))
    assert torch.equal(before, bn.running_mean)


def test_train_bn_keeps_norm_layers_training(named_model):
    _, model = named_model
    surgery.freeze(model, 2, train_bn=True)
    surgery.train_mode(model)
    for _, module in surgery.layer_groups(model)[:2]:
        for m in module.modules():
            if isinstance(m, BATCH_NORMS):
                assert m.training and all(p.requires_grad for p in m.parameters())
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                assert not m.weight.requires_grad


def test_freeze_by_name_and_bad_names(named_model):
    _, model = named_model
    names = surgery.group_names(model)
    surgery.freeze(model, names[1])
    assert not any(p.requires_grad for _, m in surgery.layer_groups(model)[:2] for p in m.parameters())
    with pytest.raises(ValueError) as err:
        surgery.freeze(model, "block99")
    assert names[0] in str(err.value) and names[-1] in str(err.value)
    with pytest.raises(ValueError, match="out of range"):
        surgery.freeze(model, len(names) + 1)


def test_unfreeze_from_a_group(named_model):
    _, model = named_model
    n = len(surgery.layer_groups(model))
    surgery.freeze(model, n)
    assert not any(p.requires_grad for p in model.parameters())
    surgery.unfreeze(model, n - 2)
    flags = [all(p.requires_grad for p in m.parameters()) for _, m in surgery.layer_groups(model)]
    assert flags == [False] * (n - 2) + [True, True]
    surgery.unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())


def test_discriminative_groups_cover_trainable_params_once_with_lr_falling_to_the_input(named_model):
    _, model = named_model
    surgery.freeze(model, 1)
    groups = surgery.discriminative_param_groups(model, base_lr=1e-3, factor=2.6)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    assert groups[-1]["lr"] == pytest.approx(1e-3)
    for nearer_input, nearer_head in zip(groups[:-1], groups[1:]):
        assert nearer_input["lr"] == pytest.approx(nearer_head["lr"] / 2.6)
    torch.optim.AdamW(groups)  # accepted by a real optimizer


def test_replace_head(named_model):
    name, model = named_model
    surgery.replace_head(model, 7)
    x = torch.rand(2, 1 if name == "course_cnn" else 3, 64, 64)
    assert model.eval()(x).shape == (2, 7)


def test_replace_head_on_adapted_lite0_and_unknown_head():
    model = models.efficientnet_lite("lite0", pretrained=False, input_size=32)
    surgery.replace_head(model, 3)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 3)
    odd = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Identity())
    with pytest.raises(ValueError, match="head_name="):
        surgery.replace_head(odd, 3)


def test_transplant_copies_and_freezes():
    torch.manual_seed(0)
    src, dst = models.small_cnn(8, 4, 5), models.small_cnn(8, 4, 5)
    surgery.transplant(src, dst, 2, freeze=True)
    for (name, s), (_, d) in list(zip(surgery.layer_groups(src), surgery.layer_groups(dst)))[:2]:
        for a, b in zip(s.state_dict().values(), d.state_dict().values()):
            assert torch.equal(a, b)
        assert not any(p.requires_grad for p in d.parameters())
    assert not torch.equal(src.features.block3.conv.weight, dst.features.block3.conv.weight)
    assert dst.features.block3.conv.weight.requires_grad
    with pytest.raises(ValueError, match="different layer groups"):
        surgery.transplant(src, models.small_cnn(8, 3, 5), 1)


def test_prune_magnitude_reaches_the_asked_sparsity():
    from tutorlib.analysis import sparsity

    model = models.small_cnn(16, 4, 5)
    surgery.prune_magnitude(model, 0.7)
    assert sparsity(model) == pytest.approx(0.7, abs=0.01)
    surgery.prune_magnitude(model, 0.7)  # `amount` is the sparsity to end with, not a fraction of what is left
    assert sparsity(model) == pytest.approx(0.7, abs=0.01)
    surgery.prune_magnitude(model, 0.7, permanent=True)
    assert sparsity(model) == pytest.approx(0.7, abs=0.01) and not hasattr(model.head, "weight_mask")
    surgery.prune_magnitude(model, 0.9)
    assert sparsity(model) == pytest.approx(0.9, abs=0.01)
    with pytest.raises(ValueError, match="already pruned to 90"):
        surgery.prune_magnitude(model, 0.5)
    with pytest.raises(ValueError):
        surgery.prune_magnitude(model, 1.5)


def test_gradient_norms_of_a_pruned_model_are_read_from_the_weights_that_train():
    from tutorlib.analysis import gradient_norms

    model = surgery.prune_magnitude(models.small_cnn(8, 2, 3), 0.5)
    torch.nn.functional.cross_entropy(model(torch.rand(4, 1, 28, 28)), torch.tensor([0, 1, 2, 0])).backward()
    norms = gradient_norms(model)
    assert len(norms) == 3 and (norms > 0).all()


def test_replace_head_keeps_the_model_dtype():
    model = surgery.replace_head(models.small_cnn(8, 2, 3).double(), 5)
    assert model.head.weight.dtype == torch.float64
    assert model(torch.rand(2, 1, 28, 28, dtype=torch.float64)).shape == (2, 5)
    lite = surgery.replace_head(models.efficientnet_lite("lite0", pretrained=False).double(), 4)
    assert lite.get_classifier().weight.dtype == torch.float64


def test_prune_after_fit_and_retrain_keeps_zeros(blobs):
    from tutorlib.analysis import sparsity
    from tutorlib.train import fit

    model = models.small_cnn(4, 2, 3)
    fit(model, blobs, epochs=1, lr=1e-2, progress=False)  # leaves the weights channels-last
    surgery.prune_magnitude(model, 0.5)
    fit(model, blobs, epochs=2, lr=1e-2, progress=False)
    assert sparsity(model) == pytest.approx(0.5, abs=0.02)


def test_summary_table():
    model = surgery.freeze(models.small_cnn(8, 4, 5), 2)
    table = surgery.summary(model)
    assert list(table["group"]) == ["block1", "block2", "block3", "block4", "head"]
    assert (table["trainable"][:2] == 0).all() and (table["trainable"][2:] > 0).all()


def test_train_only_trains_exactly_the_named_groups():
    model = models.small_cnn(8, 4, 5)
    surgery.train_only(model, ["block1", "head"])
    surgery.train_mode(model)
    flags = {n: all(p.requires_grad for p in m.parameters()) for n, m in surgery.layer_groups(model)}
    assert flags == {"block1": True, "block2": False, "block3": False, "block4": False, "head": True}
    assert model.features.block1.bn.training and not model.features.block3.bn.training
    with pytest.raises(ValueError, match="block1"):
        surgery.train_only(model, ["blok1"])


def test_a_pruned_model_compares_with_its_pretrained_weights_name_by_name():
    from tutorlib import analysis

    model = models.small_cnn(8, 2, 3)
    reference = losses.snapshot(model)
    surgery.prune_magnitude(model, 0.5)
    distance = analysis.weight_distance(model, reference)
    masked = model.features.block1.conv.weight
    assert distance["block1"] > 0  # the pruned conv counts: half its weights moved to 0
    assert losses.snapshot(model)["features.block1.conv.weight"].equal(masked.detach())
    penalty = losses.l2sp_penalty(model, reference, alpha=2.0)
    penalty.backward()
    assert model.features.block1.conv.weight_orig.grad is not None and float(penalty.detach()) > 0


# ----------------------------------------------------------------------------- bad input and faults
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
    "extract_features from a typo": (lambda m: evaluation.extract_features(m, GOOD, layer="block7"), GROUPS),
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


def test_prune_one_means_all_weights_not_one_weight():
    model = surgery.prune_magnitude(tiny_cnn(), 1)
    assert analysis.sparsity(model) == 1.0


def test_frozen_batchnorm_survives_model_train_in_a_learners_own_loop():
    model = surgery.freeze(tiny_cnn(), 1)
    bn = model.features.block1.bn
    stats = bn.running_mean.clone()
    model.train()  # what every hand-written loop does
    assert not bn.training and model.features.block2.bn.training
    model(IMAGES)
    assert torch.equal(bn.running_mean, stats)
    copied = copy.deepcopy(model).train()
    assert not copied.features.block1.bn.training and copied.features.block2.bn.training
    surgery.unfreeze(model)
    model.train()
    assert bn.training
    model(IMAGES)
    assert not torch.equal(bn.running_mean, stats)


def test_train_bn_true_keeps_frozen_groups_batchnorm_updating():
    model = surgery.freeze(tiny_cnn(), 1, train_bn=True).train()
    assert model.features.block1.bn.training and model.features.block1.bn.weight.requires_grad
    assert not model.features.block1.conv.weight.requires_grad


def test_transplant_checks_every_group_before_copying_any():
    src, dst = models.small_cnn(4, 2, 3), models.small_cnn(4, 2, 3)
    src.features.block2 = models.conv_block(4, 8, downsample=True)  # the second group will not fit
    before = weights(dst)
    with pytest.raises(ValueError, match="different shapes"):
        surgery.transplant(src, dst, 2)
    assert unchanged(dst, before)
