"""tutorlib.recipes: each recipe leaves the pretrained model alone, is seeded, and does what its name says.

The equivalence tests pin each recipe to the steps the chapters ran inline before the recipes moved into
the library, bit for bit, so a chapter's numbers did not change with the move.
"""
import ast
import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_cnn

from tutorlib import evaluation, losses, recipes, surgery, train, transfer
from tutorlib.seeds import seed_everything

ROOT = Path(__file__).resolve().parent.parent
STEPS, LR = 6, 3e-3


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def pretrained_cnn():
    return tiny_cnn(num_classes=4).eval()  # stands for a source model: 4 classes, the target has 3


RECIPES = {
    "linear_probe": lambda m, t: recipes.linear_probe(m, t, seed=1),
    "finetune": lambda m, t: recipes.finetune(m, t, steps=STEPS, lr=LR, seed=1),
    "finetune, block1 frozen": lambda m, t: recipes.finetune(m, t, steps=STEPS, lr=LR, seed=1, frozen_groups=1),
    "discriminative_rates": lambda m, t: recipes.discriminative_rates(m, t, steps=STEPS, lr=LR, seed=1),
    "gradual_unfreezing": lambda m, t: recipes.gradual_unfreezing(m, t, steps=STEPS, lr=LR, seed=1),
    "lp_ft": lambda m, t: recipes.lp_ft(m, t, steps=STEPS, lr=LR, seed=1),
    "l2sp": lambda m, t: recipes.l2sp(m, t, steps=STEPS, lr=LR, alpha=0.1, seed=1),
}


@pytest.mark.parametrize("name", RECIPES)
def test_a_recipe_adapts_a_copy_with_a_head_for_the_target_and_repeats_with_its_seed(blobs, name):
    model = pretrained_cnn()
    before = copy.deepcopy(model)
    tuned = RECIPES[name](model, blobs)
    assert same_weights(model, before)  # the pretrained model is never changed
    assert tuned is not model and not tuned.training
    assert surgery.layer_groups(tuned)[-1][1].out_features == 3
    assert same_weights(tuned, RECIPES[name](model, blobs))  # the seed decides everything


def test_discriminative_rates_is_the_chapters_former_inline_recipe(blobs):
    model = pretrained_cnn()
    seed_everything(1)
    net = surgery.replace_head(copy.deepcopy(model), 3)
    inline, _ = transfer.finetune(net, blobs, steps=STEPS, lr=LR, seed=1, new_head=False, in_place=True,
                                  param_groups=surgery.discriminative_param_groups(net, LR))
    assert same_weights(recipes.discriminative_rates(model, blobs, steps=STEPS, lr=LR, seed=1), inline)


@pytest.mark.parametrize("discriminative", [False, True])
def test_gradual_unfreezing_is_the_chapters_former_inline_recipe(blobs, discriminative):
    model = pretrained_cnn()
    seed_everything(1)
    net = surgery.replace_head(copy.deepcopy(model), 3)
    n = len(surgery.layer_groups(net))
    surgery.freeze(net, n - 1)
    for stage in range(n):
        surgery.unfreeze(net, n - 1 - stage)
        groups = surgery.discriminative_param_groups(net, LR) if discriminative else None
        transfer.finetune(net, blobs, steps=STEPS // n, lr=LR, seed=1, new_head=False, in_place=True, param_groups=groups)
    tuned = recipes.gradual_unfreezing(model, blobs, steps=STEPS, lr=LR, seed=1, discriminative=discriminative)
    assert same_weights(tuned, net)
    assert all(p.requires_grad for p in tuned.parameters())  # the last stage trains every group


def test_gradual_unfreezing_reaches_every_group_and_says_when_steps_are_too_few(blobs):
    model = pretrained_cnn()
    moved = recipes.gradual_unfreezing(model, blobs, steps=3, lr=LR, seed=1)  # one step per stage
    for (group, before), (_, after) in zip(surgery.layer_groups(model)[:-1], surgery.layer_groups(moved)[:-1]):
        assert not same_weights(before, after), f"{group} never trained"
    with pytest.raises(ValueError, match="steps >= 3"):
        recipes.gradual_unfreezing(model, blobs, steps=2, lr=LR, seed=1)


@pytest.mark.parametrize("method", ["FT", "LP-FT", "L2-SP"])
def test_finetune_lp_ft_and_l2sp_are_chapter_6s_former_inline_recipes(blobs, method):
    model = pretrained_cnn()
    if method == "LP-FT":
        net = transfer.probe_head(model, blobs, seed=1)
    else:
        seed_everything(1)
        net = surgery.replace_head(copy.deepcopy(model), 3)
    start, loss_fn = model.state_dict(), None
    if method == "L2-SP":
        loss_fn = lambda logits, labels: F.cross_entropy(logits, labels) + losses.l2sp_penalty(net, start, 0.1)  # noqa: E731
    inline, _ = transfer.finetune(net, blobs, lr=LR, seed=1, new_head=False, in_place=True, loss_fn=loss_fn,
                                  steps=STEPS, batch_size=16)
    recipe = {"FT": lambda: recipes.finetune(model, blobs, steps=STEPS, lr=LR, seed=1, batch_size=16),
              "LP-FT": lambda: recipes.lp_ft(model, blobs, steps=STEPS, lr=LR, seed=1, batch_size=16),
              "L2-SP": lambda: recipes.l2sp(model, blobs, steps=STEPS, lr=LR, alpha=0.1, seed=1, batch_size=16)}[method]
    assert same_weights(recipe(), inline)


def test_lp_ft_starts_from_the_linear_probe(blobs):
    model = pretrained_cnn()
    probe = recipes.linear_probe(model, blobs, seed=1)
    no_steps = recipes.lp_ft(model, blobs, steps=1, lr=1e-12, seed=1)
    head = lambda m: surgery.layer_groups(m)[-1][1].weight  # noqa: E731
    assert torch.allclose(head(no_steps), head(probe), atol=1e-6)


def test_l2sp_keeps_the_body_closer_to_its_pretrained_weights_than_plain_finetuning(blobs):
    model = pretrained_cnn()
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    def body_moved(tuned):
        from tutorlib import analysis
        return float(analysis.weight_distance(tuned, reference).drop("head").pow(2).sum())

    plain = recipes.finetune(model, blobs, steps=30, lr=1e-2, seed=1)
    pulled = recipes.l2sp(model, blobs, steps=30, lr=1e-2, alpha=50.0, seed=1)
    assert body_moved(pulled) < 0.5 * body_moved(plain)


def test_l2sp_refuses_a_negative_pull(blobs):
    with pytest.raises(ValueError, match="alpha"):
        recipes.l2sp(pretrained_cnn(), blobs, steps=STEPS, lr=LR, alpha=-1.0)


@pytest.mark.parametrize("hard", [False, True])
def test_distill_trains_the_student_on_the_teachers_outputs_only(blobs, hard):
    images, _ = blobs
    teacher_logits = evaluation.predict(pretrained_cnn(), images)[:, :3]
    student = recipes.distill(tiny_cnn(), images, teacher_logits, steps=STEPS, lr=LR, seed=1, hard_labels=hard)
    reference = tiny_cnn()
    targets = (images, teacher_logits.argmax(1), teacher_logits)
    loss = (lambda lg, y, t: F.cross_entropy(lg, y)) if hard else \
        (lambda lg, y, t: losses.distillation_loss(lg, t, y, 4.0, alpha=1.0))
    train.fit(reference, targets, steps=STEPS, lr=LR, batch_size=128, seed=1, progress=False, loss_fn=loss)
    assert same_weights(student, reference)


def notebook_functions():
    """(chapter, function name, source) for every function a chapter defines."""
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code":
                for node in ast.walk(ast.parse(source)):
                    if isinstance(node, ast.FunctionDef):
                        yield path.name, node.name, node


def test_no_chapter_defines_a_training_recipe_of_its_own():
    """Chapters call tutorlib.recipes; only an explorer's callback (a figure for one setting) calls the loop itself."""
    own = []
    for chapter, name, node in notebook_functions():
        calls = {f"{c.func.value.id}.{c.func.attr}" for c in ast.walk(node) if isinstance(c, ast.Call)
                 and isinstance(c.func, ast.Attribute) and isinstance(c.func.value, ast.Name)}
        if calls & {"train.fit", "transfer.finetune", "train.train_step"} and name != "explore":
            own.append(f"{chapter}: {name}")
    assert not own, own
    assert any(name == "explore" for _, name, _ in notebook_functions())  # the scan sees the chapters' functions


def rate_of(model, **options):
    """train_fn for choose_on_validation: plain fine-tuning of `model` at the option's learning rate."""
    return lambda part, lr: recipes.finetune(model, part, lr=lr, steps=STEPS, seed=1, **options)


def test_choose_on_validation_keeps_the_best_rate_and_its_model(blobs):
    model, rates = pretrained_cnn(), (1e-4, 3e-3, 3e-2)
    lr, tuned, scores = transfer.choose_on_validation(rate_of(model), blobs, rates, validation=blobs)
    expected = [evaluation.evaluate(recipes.finetune(model, blobs, steps=STEPS, lr=r, seed=1), blobs)["accuracy"]
                for r in rates]
    assert list(scores.values()) == expected
    assert lr == rates[expected.index(max(expected))]  # the first of the best, as a learner reading a table would
    assert same_weights(tuned, recipes.finetune(model, blobs, steps=STEPS, lr=lr, seed=1))


def test_choose_on_validation_never_picks_a_diverged_option_and_says_when_all_diverged(blobs):
    def fragile(part, lr):  # stands for a recipe that blows up above a rate
        if lr > 1e-2:
            raise train.TrainingDiverged("loss became NaN", train.History())
        return recipes.finetune(pretrained_cnn(), part, lr=lr, steps=STEPS, seed=1)

    choice = transfer.choose_on_validation(fragile, blobs, (1.0, 3e-3), validation=blobs)
    assert choice.option == 3e-3 and choice.scores[1.0] != choice.scores[1.0]  # NaN: diverged, never picked
    with pytest.raises(train.TrainingDiverged, match="smaller learning rates"):
        transfer.choose_on_validation(fragile, blobs, (1.0, 3.0), validation=blobs)


@pytest.mark.parametrize("bad, error, words", [
    (dict(options=()), ValueError, "at least one option"), (dict(options=0.1), ValueError, "must be a list"),
    (dict(train_fn="finetune"), TypeError, "train_fn must be a function"),
    (dict(validation=(torch.zeros(3, 1, 28, 28), torch.zeros(4).long())), ValueError, "validation")])
def test_choose_on_validation_refuses_bad_input_with_the_fix(blobs, bad, error, words):
    args = dict(train_fn=rate_of(pretrained_cnn()), options=(0.01,), validation=blobs) | bad
    with pytest.raises(error, match=words):
        transfer.choose_on_validation(args["train_fn"], blobs, args["options"], validation=args["validation"])
