"""tutorlib.anatomy: one protocol (groups, stages, head) cuts the course CNN, timm and torchvision models alike."""
import re
from pathlib import Path

import pytest
import timm
import torch
import torch.nn as nn
import torchvision

from tutorlib import anatomy, models, pretext, surgery

GREY, COLOUR = torch.rand(2, 1, 28, 28), torch.rand(2, 3, 64, 64)
MODELS = {  # name: (model factory, an input batch, expected groups)
    "course CNN": (lambda: models.small_cnn(width=4), GREY, ["block1", "block2", "block3", "block4", "head"]),
    "plain net": (lambda: models.plain_net(3, width=8), GREY, ["1", "3", "5"]),
    "timm ResNet-18": (lambda: timm.create_model("resnet18", num_classes=7), COLOUR,
                       ["conv1+bn1", "layer1", "layer2", "layer3", "layer4", "fc"]),
    "timm Lite0 in AdaptInput": (lambda: models.efficientnet_lite("lite0", pretrained=False, input_size=32), GREY,
                                 ["conv_stem+bn1"] + [f"blocks.{i}" for i in range(7)] + ["conv_head+bn2", "classifier"]),
    "torchvision MobileNetV3": (lambda: torchvision.models.mobilenet_v3_small(num_classes=7), COLOUR,
                                [f"features.{i}" for i in range(13)] + ["classifier"]),
    "torchvision ResNet-18": (lambda: torchvision.models.resnet18(num_classes=7), COLOUR,
                              ["conv1+bn1", "layer1", "layer2", "layer3", "layer4", "fc"]),
    "rotation pretext": (lambda: pretext.RotationPretext(models.small_cnn(width=4, num_classes=4)), GREY,
                         ["block1", "block2", "block3", "block4", "head"]),
}


def _run(chain, x):
    for _, stage in chain:
        x = stage(x)
    return x


@pytest.mark.parametrize("name", MODELS)
def test_the_stages_compute_the_model_and_the_groups_hold_every_weight_once(name):
    make, x, groups = MODELS[name]
    torch.manual_seed(0)
    model = make().eval()
    body = anatomy.describe(model)
    assert [n for n, _ in body.groups] == groups
    held = [id(p) for _, g in body.groups for p in g.parameters()]
    assert len(held) == len(set(held)) and set(held) == {id(p) for p in model.parameters()}
    assert torch.allclose(_run(body.stages, x), model(x), atol=1e-5)
    assert [n for n, _ in body.stages if n is not None] == groups  # each group cut at one place, in order
    assert body.stages[-1][0] == groups[-1]  # the head comes last: stages[:-1] are the features


@pytest.mark.parametrize("name", MODELS)
def test_split_freeze_and_replace_head_go_through_the_protocol(name):
    make, x, groups = MODELS[name]
    torch.manual_seed(0)
    model = make().eval()
    bottom, top = models.split(model, groups[1])
    assert torch.allclose(top(bottom(x)), model(x), atol=1e-5)
    surgery.freeze(model, groups[-2])
    head = surgery.layer_groups(model)[-1][1]
    assert all(p.requires_grad for p in head.parameters())
    assert not any(p.requires_grad for _, g in surgery.layer_groups(model)[:-1] for p in g.parameters())
    surgery.replace_head(model, 3)
    assert model(x).shape == (len(x) * (4 if name == "rotation pretext" else 1), 3)


def test_a_timm_head_that_is_more_than_a_classifier_cannot_be_cut_and_says_what_to_do():
    model = timm.create_model("mobilenetv3_small_050", num_classes=7)  # its head: conv_head, then classifier
    body = anatomy.describe(model)
    assert body.groups[-1][0] == "conv_head+classifier" and body.stages is None
    with pytest.raises(TypeError, match="surgery.freeze"):
        models.split(model, "blocks.2")
    surgery.freeze(model, "blocks.5")  # freezing still works: it needs only the groups
    assert [p.requires_grad for p in model.get_classifier().parameters()] == [True, True]


def test_a_model_without_weights_has_no_groups():
    with pytest.raises(ValueError, match="no parameters"):
        anatomy.describe(nn.Sequential(nn.ReLU(), nn.Flatten()))


def test_only_anatomy_reads_a_models_structure():
    """surgery, models, recipes and the rest ask `anatomy`; none guesses from names or types.

    What a guess looks like: timm's API read directly, a stage-container name, a type test of a head or of one
    of the course's models, a model's `config` read for its architecture.
    """
    root = Path(anatomy.__file__).parent
    guesses = re.compile(r"group_matcher|reset_classifier|get_classifier|STAGE_CONTAINERS|HEAD_NAMES|\.config\["
                         r"|isinstance\((head|[^)]*(SmallCNN|AdaptInput))")
    # engine.py is the one other module that knows a structure, on purpose: it re-implements the course CNN's
    # forward for K copies at once, and refuses every other model (tests/test_engine.py).
    readers = [p.name for p in root.glob("*.py") if p.name not in ("anatomy.py", "engine.py")
               and guesses.search(p.read_text())]
    assert guesses.search("head = getattr(owner, name)\nif isinstance(head, nn.Linear):")  # what replace_head did
    assert guesses.search('fresh_cnn(config["width"])') is None and guesses.search('model.config["width"]')
    assert readers == [], f"these modules read a model's structure themselves: {readers}"


def test_a_vits_own_tokens_freeze_with_its_stem_and_it_is_never_cut():
    """timm puts cls_token and pos_embed in the stem group; the forward that adds them is not a chain."""
    import timm

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5, img_size=32, patch_size=8)
    body = anatomy.describe(vit)
    assert body.groups[0][0] == "cls_token+pos_embed+patch_embed" and body.stages is None
    surgery.freeze(vit, len(body.groups) - 1)
    assert [n for n, p in vit.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]


def test_a_model_with_parameters_outside_its_layers_is_refused_not_misread():
    """A head applied with F.linear on root parameters: no reading of the children can find it."""
    import torch.nn.functional as F

    class FunctionalHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.w, self.b = nn.Parameter(torch.randn(5, 4)), nn.Parameter(torch.zeros(5))

        def forward(self, x):
            return F.linear(self.conv(x).mean((2, 3)), self.w, self.b)

    with pytest.raises(ValueError, match=r"parameters of its own, outside any layer \(\['w', 'b'\]\).*nn.Linear"):
        surgery.freeze(FunctionalHead(), 1)


def test_the_head_is_what_forward_computes_last_not_the_attribute_defined_last():
    """A head defined before the body: fx reads the order of the calls, so the head is still found and cut last."""

    class HeadFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 5)
            self.unused = nn.Linear(3, 3)  # never called: it joins no stage after the head
            self.body = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

        def forward(self, x):
            return self.head(self.body(x))

    model = HeadFirst()
    assert [name for name, _ in anatomy.describe(model).groups][-1] == "head"
    surgery.replace_head(model, 3)
    assert model.head.out_features == 3 and model(torch.rand(2, 1, 8, 8)).shape == (2, 3)
    surgery.freeze(model, len(anatomy.describe(model).groups) - 1)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
