"""The package surface (docs/design.md, section 10) and the notebooks' committed state."""
import json
import pathlib
import re
import subprocess

import tutorlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK_PATHS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_public_api_names():
    contract = {
        "data": ["load_fashion_mnist", "load_digits", "load_image_folder", "stratified_split", "select_classes",
                 "few_shot", "long_tail", "add_label_noise", "corrupt"],
        "models": ["small_cnn", "efficientnet_lite", "load_checkpoint", "list_checkpoints"],
        "surgery": ["replace_head", "layer_groups", "freeze", "unfreeze", "discriminative_param_groups",
                    "transplant", "prune_magnitude"],
        "train": ["fit", "train_step", "History", "TrainingDiverged"],
        "evaluation": ["evaluate", "predict", "linear_probe", "extract_features"],
        "losses": ["distillation_loss", "l2sp_penalty", "snapshot"],
        "analysis": ["linear_cka", "gradient_norms", "logme", "count_flops", "latency", "per_class_accuracy"],
        "check": ["expect"],
        "exercises": ["exercise", "answered"],
        "recipes": ["finetune", "linear_probe", "lp_ft", "l2sp", "distill"],
        "profile": ["current"],
        "seeds": ["seed_everything"],
    }
    for module, names in contract.items():
        for name in names:
            assert callable(getattr(getattr(tutorlib, module), name)), f"tutorlib.{module}.{name}"
    assert issubclass(tutorlib.train.TrainingDiverged, RuntimeError)


def test_notebooks_are_committed_without_outputs():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, path.name


def test_no_chapter_writes_to_a_fixed_folder_that_other_accounts_share():
    """On a class's server every student shares /tmp: a fixed name there belongs to whoever made it first, and the
    others could not write it (or would read what someone put there). Chapters make a fresh folder (mkdtemp)."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        code = "".join(c["source"] if isinstance(c["source"], str) else "".join(c["source"])
                       for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        assert "gettempdir()" not in code and "/tmp/" not in code, path.name


def test_every_chapter_sets_some_verdicts_against_a_paper():
    """A verdict names its anchor paper in the call (paper=...) or in its notebooks/verdicts.toml entry."""
    import tomllib

    import nbformat

    registry = tomllib.loads((ROOT / "notebooks" / "verdicts.toml").read_text())
    for path in NOTEBOOK_PATHS:
        sources = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        registered = re.findall(r'check\.registered\(\s*"(\w+)"', sources)
        with_paper = sources.count("paper=") + sum("paper" in registry[key] for key in registered)
        assert with_paper >= 3, f"{path.name}: fewer than 3 verdicts name their anchor paper"


def test_every_asserted_verdict_compares_measured_arms():
    """docs/design.md, section 5: notebooks assert through check.registered (arms, minimum effect, units) and show
    the rest side by side (check.compare), never a bare check.expect on a constant."""
    for path in NOTEBOOK_PATHS:
        code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        assert "check.expect(" not in code, f"{path.name}: state the finding with check.registered"
        findings = code.count("check.compare(") + code.count("ranks.rank_agreement(") + code.count("check.registered(")
        assert findings >= 3, f"{path.name}: fewer than 3 findings"


def test_make_confirm_decides_every_verdict_on_other_seeds():
    import subprocess

    from tutorlib.tools import paths

    dry = subprocess.run(["make", "-n", "confirm"], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0 and "-m tutorlib.course confirm --seeds 20,21,22" in dry.stdout
    assert paths.CONFIRM_SEEDS == "20,21,22"


def test_notebooks_carry_the_kernelspec_jupyterlab_writes_on_save():
    """JupyterLab saves ipykernel's display name; a committed "Python 3" would show as a change after every run."""
    from ipykernel.kernelspec import get_kernel_dict

    expected = {k: get_kernel_dict()[k] for k in ("display_name", "language")}
    for path in NOTEBOOK_PATHS + [ROOT / "tests" / "fixtures" / "mini_chapter.ipynb"]:
        spec = json.loads(path.read_text())["metadata"]["kernelspec"]
        assert {k: spec[k] for k in expected} == expected and spec["name"] == "python3", path.name


OUTSIDE = "COURSE" + ".md"  # the brief the project started from; it lives outside the repository
CITED = re.compile(r"\b((?:tests|benchmarks|docs|tutorlib|notebooks|data)/[\w./-]*\.(?:py|md|ipynb|json|txt))\b")


def test_the_files_the_project_cites_are_in_the_repository():
    """Code, tests, docs and notebooks cite only files the repository has (the design lives in docs/design.md)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    missing, checked = [], 0
    for name in tracked:
        if (ROOT / name).exists() and (name.endswith((".py", ".md", ".ipynb", ".toml", ".cff"))
                                       or name in ("Makefile", ".ci/run")):
            text = (ROOT / name).read_text(encoding="utf-8")
            assert OUTSIDE not in text, f"{name} cites {OUTSIDE}, which is not in the repository: cite docs/design.md"
            cited = {c for c in CITED.findall(text) if "*" not in c}
            checked += len(cited)
            missing += [f"{name}: {c}" for c in cited if not (ROOT / c).exists()]
    assert not missing, missing
    assert checked > 30  # the scan sees the citations (README, docs, docstrings)


def test_no_function_in_tutorlib_is_longer_than_a_screen():
    """Learners read the library: every function fits in 45 lines (docs/design.md, the module map)."""
    import ast

    long = []
    for path in sorted((ROOT / "tutorlib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 45:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long


def test_fit_shows_its_loop():
    """`show(train.fit)` is the lesson: the optimizer, the schedule, train_step, validation and the guards, in one screen."""
    import inspect

    from tutorlib import train

    source = inspect.getsource(train.fit)
    assert len(source.splitlines()) <= 45
    for part in ("_make_optimizer(", "lr_factor(", "train_step(", "_end_of_epoch(", "best.update(", "_guards(",
                 "for index in batches(", "while history.steps_run < total_steps"):
        assert part in source, f"fit does not show {part}"


def test_no_chapter_variable_hides_a_tutorlib_module():
    """A chapter's `evaluation = ...` would hide tutorlib.evaluation from every later cell."""
    import ast
    import json

    import tutorlib

    modules = set(tutorlib.__all__)
    hidden = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            for node in ast.walk(ast.parse("".join(cell["source"]))):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id in modules:
                    hidden.append(f"{path.name}: {node.id}")
                if isinstance(node, ast.arg) and node.arg in modules:
                    hidden.append(f"{path.name}: parameter {node.arg}")
    assert not hidden, hidden


def test_no_import_cycle_between_tutorlib_modules():
    """Each module imports only modules below it (module-level imports), so any one can be read on its own."""
    import ast

    package = ROOT / "tutorlib"
    graph = {}
    for path in package.glob("*.py"):
        names = set()
        for node in ast.parse(path.read_text()).body:  # module level only: imports inside functions are lazy
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names |= {node.module} if node.module else {alias.name for alias in node.names}
        graph[path.stem] = {n.split(".")[0] for n in names} - {path.stem}

    def visit(module, trail):
        assert module not in trail, f"import cycle: {' -> '.join(trail + [module])}"
        for imported in graph.get(module, ()):
            visit(imported, trail + [module])

    for module in graph:
        visit(module, [])


def test_chapter_code_fits_110_characters_a_line():
    """Learners read the chapters' code: no line runs past 110 characters (the package's own width)."""
    long = [f"{path.name} cell {i}: {line[:60]}..." for path in NOTEBOOK_PATHS
            for i, cell in enumerate(json.loads(path.read_text())["cells"]) if cell["cell_type"] == "code"
            for line in "".join(cell["source"]).splitlines() if len(line) > 110]
    assert not long, long
