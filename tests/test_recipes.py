"""tutorlib.recipes: one signature and one result; each leaves the pretrained model alone, is seeded, composes
`train.fit` as its docstring says, and does what its name says."""
import ast
import copy
import inspect
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_cnn

from tutorlib import evaluation, losses, models, recipes, seeds, surgery, train, transfer

ROOT = Path(__file__).resolve().parent.parent
STEPS, LR = 6, 3e-3


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def pretrained_cnn():
    return tiny_cnn(num_classes=4).eval()  # stands for a source model: 4 classes, the target has 3


@pytest.mark.parametrize("name", recipes.RECIPES)
def test_every_recipe_adapts_a_copy_and_returns_it_with_its_history(blobs, name):
    model = pretrained_cnn()
    before = copy.deepcopy(model)
    tuned, history = recipes.RECIPES[name](model, blobs, steps=STEPS, lr=LR, seed=1)
    assert same_weights(model, before)  # the pretrained model is never changed
    assert tuned is not model and not tuned.training and isinstance(history, train.History)
    assert surgery.layer_groups(tuned)[-1][1].out_features == 3
    assert history.steps_run == (0 if name == "LP" else STEPS)  # LP fits by L-BFGS: no steps of a budget
    assert same_weights(tuned, recipes.RECIPES[name](model, blobs, steps=STEPS, lr=LR, seed=1)[0])  # the seed decides


def test_the_registry_lists_every_recipe_with_one_signature():
    listed = set(recipes.RECIPES.values()) | {recipes.distill}
    assert {getattr(recipes, name) for name in recipes.__all__ if name != "RECIPES"} == listed
    for recipe in listed:
        params = inspect.signature(recipe).parameters
        assert list(params)[:2] == ["model", "target"] and {"steps", "lr", "seed"} <= set(params), recipe.__name__
        assert all(params[p].kind is inspect.Parameter.KEYWORD_ONLY for p in ("steps", "lr", "seed"))


def fresh_head(model, seed=1, num_classes=3):
    """What every recipe starts from: a copy, a new head drawn from the seed."""
    seeds.seed_everything(seed)
    return surgery.replace_head(copy.deepcopy(model), num_classes)


def test_finetune_is_a_fresh_head_then_fit(blobs):
    model = pretrained_cnn()
    net = fresh_head(model)
    history = train.fit(net, blobs, steps=STEPS, lr=LR, batch_size=32, seed=1, progress=False)
    tuned, recipe_history = recipes.finetune(model, blobs, steps=STEPS, lr=LR, seed=1)
    assert same_weights(tuned, net) and recipe_history.step_loss == history.step_loss


def test_discriminative_rates_is_fit_with_the_groups_rates(blobs):
    model = pretrained_cnn()
    net = fresh_head(model)
    train.fit(net, blobs, steps=STEPS, lr=LR, batch_size=32, seed=1, progress=False,
              param_groups=surgery.discriminative_param_groups(net, LR))
    assert same_weights(recipes.discriminative_rates(model, blobs, steps=STEPS, lr=LR, seed=1)[0], net)


@pytest.mark.parametrize("discriminative", [False, True])
def test_gradual_unfreezing_is_one_fit_per_stage_from_the_head_down(blobs, discriminative):
    model = pretrained_cnn()
    net = fresh_head(model)
    n = len(surgery.layer_groups(net))
    surgery.freeze(net, n - 1)
    for stage in range(n):
        surgery.unfreeze(net, n - 1 - stage)
        groups = surgery.discriminative_param_groups(net, LR) if discriminative else None
        train.fit(net, blobs, steps=STEPS // n, lr=LR, batch_size=32, seed=1, progress=False, param_groups=groups)
    tuned, history = recipes.gradual_unfreezing(model, blobs, steps=STEPS, lr=LR, seed=1, discriminative=discriminative)
    assert same_weights(tuned, net) and history.steps_run == n * (STEPS // n)
    assert all(p.requires_grad for p in tuned.parameters())  # the last stage trains every group


def test_gradual_unfreezing_reaches_every_group_and_says_when_steps_are_too_few(blobs):
    model = pretrained_cnn()
    moved, _ = recipes.gradual_unfreezing(model, blobs, steps=3, lr=LR, seed=1)  # one step per stage
    for (group, before), (_, after) in zip(surgery.layer_groups(model)[:-1], surgery.layer_groups(moved)[:-1]):
        assert not same_weights(before, after), f"{group} never trained"
    with pytest.raises(ValueError, match="steps >= 3"):
        recipes.gradual_unfreezing(model, blobs, steps=2, lr=LR, seed=1)


def test_lp_ft_is_the_linear_probe_then_fit_and_l2sp_pulls_towards_a_snapshot(blobs):
    model = pretrained_cnn()
    probed, _ = recipes.linear_probe(model, blobs, seed=1)
    train.fit(probed, blobs, steps=STEPS, lr=LR, batch_size=16, seed=1, progress=False)
    assert same_weights(recipes.lp_ft(model, blobs, steps=STEPS, lr=LR, seed=1, batch_size=16)[0], probed)
    net, start = fresh_head(model), losses.snapshot(model)
    loss_fn = lambda logits, labels: F.cross_entropy(logits, labels) + losses.l2sp_penalty(net, start, 0.1)  # noqa: E731
    train.fit(net, blobs, steps=STEPS, lr=LR, batch_size=16, seed=1, progress=False, loss_fn=loss_fn)
    assert same_weights(recipes.l2sp(model, blobs, steps=STEPS, lr=LR, alpha=0.1, seed=1, batch_size=16)[0], net)


def test_lp_ft_starts_from_the_linear_probe_whose_history_holds_its_loss(blobs):
    model = pretrained_cnn()
    probe, history = recipes.linear_probe(model, blobs, seed=1)
    assert len(history.train_loss) == 1 and 0 < history.train_loss[0] < 1.1  # chance on 3 classes: ln 3 = 1.1
    assert history.steps_run == 0 and history.stopped_reason.startswith("completed")
    no_steps, _ = recipes.lp_ft(model, blobs, steps=1, lr=1e-12, seed=1)
    head = lambda m: surgery.layer_groups(m)[-1][1].weight  # noqa: E731
    assert torch.allclose(head(no_steps), head(probe), atol=1e-6)


def test_l2sp_keeps_the_body_closer_to_its_pretrained_weights_than_plain_finetuning(blobs):
    from tutorlib import analysis
    model = pretrained_cnn()
    reference = losses.snapshot(model)

    def body_moved(tuned):
        return float(analysis.weight_distance(tuned, reference).drop("head").pow(2).sum())

    plain, _ = recipes.finetune(model, blobs, steps=30, lr=1e-2, seed=1)
    pulled, _ = recipes.l2sp(model, blobs, steps=30, lr=1e-2, alpha=50.0, seed=1)
    assert body_moved(pulled) < 0.5 * body_moved(plain)
    with pytest.raises(ValueError, match="alpha"):
        recipes.l2sp(model, blobs, steps=STEPS, lr=LR, alpha=-1.0)


@pytest.mark.parametrize("hard", [False, True])
def test_distill_trains_a_copy_of_the_student_on_the_teachers_outputs_only(blobs, hard):
    images, _ = blobs
    teacher, student = pretrained_cnn(), tiny_cnn(num_classes=4)
    before = copy.deepcopy(student)
    distilled, history = recipes.distill(student, blobs, teacher=teacher, steps=STEPS, lr=LR, seed=1,
                                         hard_labels=hard)
    assert same_weights(student, before) and not distilled.training and history.steps_run == STEPS
    teacher_logits = evaluation.predict(teacher, images)
    targets = (images, teacher_logits.argmax(1), teacher_logits)
    loss = (lambda lg, y, t: F.cross_entropy(lg, y)) if hard else \
        (lambda lg, y, t: losses.distillation_loss(lg, t, y, 4.0, alpha=1.0))
    reference = copy.deepcopy(before)
    train.fit(reference, targets, steps=STEPS, lr=LR, batch_size=128, seed=1, progress=False, loss_fn=loss)
    assert same_weights(distilled, reference)
    assert same_weights(recipes.distill(student, images, teacher=teacher, steps=STEPS, lr=LR, seed=1,
                                        hard_labels=hard)[0], distilled)  # bare images: the same
    with pytest.raises(TypeError):
        recipes.distill(student, blobs, teacher="A_w16", steps=STEPS, lr=LR)


@pytest.mark.parametrize("name", ["FT", "discriminative rates", "LP-FT", "L2-SP"])
def test_a_freeze_left_on_the_model_does_not_hold_the_recipe_back(blobs, name):
    """surgery.freeze(m, 2) in an earlier cell, then a recipe: every group still trains, and m stays as it was."""
    model = surgery.freeze(pretrained_cnn(), 2)
    tuned, _ = recipes.RECIPES[name](model, blobs, steps=STEPS, lr=1e-2, seed=1)
    assert all(p.requires_grad for p in tuned.parameters())
    assert not torch.equal(tuned.features.block1.conv.weight, model.features.block1.conv.weight)
    assert not any(p.requires_grad for _, g in surgery.layer_groups(model)[:2] for p in g.parameters())


def test_finetune_trains_a_copy_for_exactly_the_steps_asked(halves):
    start = models.fresh_cnn(width=4, seed=0)
    before = {k: v.clone() for k, v in start.state_dict().items()}
    target = halves.target(4, seed=0)  # 20 images: 25 steps are several epochs
    tuned, history = recipes.finetune(start, target, steps=25, lr=1e-3, batch_size=8, seed=0)
    assert history.steps_run == 25 and not tuned.training
    assert all(torch.equal(v, start.state_dict()[k]) for k, v in before.items())  # the start is untouched
    assert not torch.equal(tuned.features.block1.conv.weight, start.features.block1.conv.weight)
    frozen, _ = recipes.finetune(start, target, steps=5, lr=1e-3, batch_size=8, frozen_groups=2)
    assert torch.equal(frozen.features.block1.conv.weight, start.features.block1.conv.weight)
    assert not any(p.requires_grad for _, g in surgery.layer_groups(frozen)[:2] for p in g.parameters())
    with pytest.raises(TypeError):
        recipes.finetune("A_w16", target, steps=5, lr=1e-3)
    with pytest.raises(ValueError, match="steps"):
        recipes.finetune(start, target, steps=0, lr=1e-3)


@pytest.fixture(scope="module")
def halves():
    from tutorlib import profile
    return transfer.load_halves(profile.current("quick"))


def test_linear_probe_is_the_converged_probe_on_the_unchanged_body(halves):
    model = transfer.pretrain(halves.a_train, steps=20, width=4, seed=0)
    target = halves.target(10, seed=0)
    lp, _ = recipes.linear_probe(model, target)
    assert torch.equal(lp.features.block1.conv.weight, model.features.block1.conv.weight)
    assert lp.head.out_features == 5 and model.head.out_features == 5 and lp.head is not model.head
    expected = transfer.probe_accuracy(model, target, halves.b_test)
    assert evaluation.evaluate(lp, halves.b_test)["accuracy"] == pytest.approx(expected, abs=1e-3)


def test_cached_finetune_equals_freezing(halves):
    """Running the frozen bottom once gives the same model as freezing it (BatchNorm frozen too)."""
    target = halves.target(4, seed=0)
    for model, frozen in ((models.fresh_cnn(width=8, seed=1), 2), (models.lite0(pretrained=False, seed=0), 7)):
        options = dict(steps=6, lr=1e-3, batch_size=8, seed=3, frozen_groups=frozen)
        frozen_run, h1 = recipes.finetune(model, target, **options)
        cached_run, h2 = recipes.finetune(model, target, cache=True, **options)
        assert h1.step_loss == pytest.approx(h2.step_loss, rel=1e-4)
        x = halves.b_test[0][:16]
        with torch.no_grad():  # equal up to rounding (the bottom sees other batch sizes, so sums run in another order)
            moved = (cached_run(x) - surgery.replace_head(copy.deepcopy(model), 5)(x)).abs().max()  # what training did
            differ = (frozen_run(x) - cached_run(x)).abs().max()
        assert moved > 0.05 and differ < 0.01 * moved, (float(differ), float(moved))


@pytest.mark.parametrize("options, match", [
    (dict(frozen_groups=0, cache=True), "frozen_groups > 0"),
    (dict(frozen_groups=2, train_bn=True, cache=True), "train_bn=False"),
    (dict(frozen_groups=2, cache=True, param_groups=[]), "param_groups"),
    (dict(frozen_groups=1, train_bn=True, freeze_bn=True), "choose one"),
    (dict(cache="yes", frozen_groups=1), "cache"),
    (dict(frozen_groups=2, cache=True, val=None), None),
])
def test_finetune_refuses_options_that_contradict_each_other(halves, options, match):
    target = halves.target(2, seed=0)
    if match is None:  # val=None is no validation set at all: allowed
        recipes.finetune(models.fresh_cnn(width=4), target, steps=1, lr=1e-3, batch_size=4, **options)
        return
    with pytest.raises((TypeError, ValueError), match=match):
        recipes.finetune(models.fresh_cnn(width=4), target, steps=1, lr=1e-3, batch_size=4, **options)


def test_freeze_bn_holds_every_batchnorm_while_the_rest_trains(halves):
    start = models.fresh_cnn(width=4, seed=0)
    target = halves.target(4, seed=0)
    tuned, _ = recipes.finetune(start, target, steps=5, lr=1e-3, batch_size=8, seed=0, freeze_bn=True)
    for (name, before), after in zip(start.state_dict().items(), tuned.state_dict().values()):
        if ".bn." in name:  # statistics, scale and shift: all exactly the pretrained ones
            assert torch.equal(before, after), name
    assert not torch.equal(tuned.features.block4.conv.weight, start.features.block4.conv.weight)


def notebook_functions():
    """(chapter, function name, source) for every function a chapter defines."""
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code":
                for node in ast.walk(ast.parse(source)):
                    if isinstance(node, ast.FunctionDef):
                        yield path.name, node.name, node


# An explorer's callback (a figure for one setting), and chapter 4's training of a network it prepared itself
# (transplanted or surgically frozen: no recipe's fresh head or thaw applies), call the loop itself.
TRAINS_AS_IS = {"explore", "train_as_is"}


def test_no_chapter_defines_a_training_recipe_of_its_own():
    """Chapters call tutorlib.recipes, never a fine-tuning of their own around the loop."""
    own = []
    for chapter, name, node in notebook_functions():
        calls = {f"{c.func.value.id}.{c.func.attr}" for c in ast.walk(node) if isinstance(c, ast.Call)
                 and isinstance(c.func, ast.Attribute) and isinstance(c.func.value, ast.Name)}
        if calls & {"train.fit", "train.train_step"} and name not in TRAINS_AS_IS:
            own.append(f"{chapter}: {name}")
    assert not own, own
    assert any(name == "explore" for _, name, _ in notebook_functions())  # the scan sees the chapters' functions


def test_lp_ft_takes_finetunes_freezing_options(blobs):
    model = pretrained_cnn()
    tuned, history = recipes.lp_ft(model, blobs, steps=STEPS, lr=1e-2, seed=1, frozen_groups=1, cache=True)
    assert torch.equal(tuned.features.block1.conv.weight, model.features.block1.conv.weight)
    assert not torch.equal(tuned.features.block2.conv.weight, model.features.block2.conv.weight)
    assert history.steps_run == STEPS
