"""The course's figures and explorers."""
import pytest


def test_plots_return_figures(blobs):
    import pandas as pd
    from matplotlib.figure import Figure

    from tutorlib import plots

    df = pd.DataFrame({"x": [1, 2, 1, 2], "acc": [0.5, 0.6, 0.55, 0.65], "method": ["a", "a", "b", "b"]})
    for fig in (plots.lines(df, "x", "acc", "method"), plots.bars(df, "method", "acc"),
                plots.scatter(df, "x", "acc", label="method"), plots.layer_profile(df, "x", "acc", "method"),
                plots.image_grid(blobs[0][:6], blobs[1][:6], ["a", "b", "c"], ncols=3)):
        assert isinstance(fig, Figure)


def test_explorer_is_a_widget_in_lab_and_a_static_figure_headless(monkeypatch):
    import ipywidgets
    from matplotlib.figure import Figure

    from tutorlib import plots

    calls = []

    def draw(depth, init, clip=None):
        calls.append((depth, init))
        return plots.bars(__import__("pandas").DataFrame({"init": [init], "loss": [depth / 10]}), "init", "loss")

    monkeypatch.setenv("TUTORLIB_HEADLESS", "1")
    assert isinstance(plots.explorer(draw, depth=[30, 10], init=["he", "xavier"]), Figure)
    assert calls == [(30, "he")]  # headless: the defaults, drawn once, nothing waits for a click

    monkeypatch.setenv("TUTORLIB_HEADLESS", "0")
    widget = plots.explorer(draw, depth=[30, 10], init=["he", "xavier"], clip=[None, 1.0])
    assert isinstance(widget, ipywidgets.VBox) and calls[-1] == (30, "he")  # defaults drawn at once
    parts = widget.children[:-2] + widget.children[-2].children + widget.children[-1:]
    dropdowns = [w for w in parts if isinstance(w, ipywidgets.Dropdown)]
    run = next(w for w in parts if isinstance(w, ipywidgets.Button))
    image = next(w for w in parts if isinstance(w, ipywidgets.Image))
    assert [d.description for d in dropdowns] == ["depth", "init", "clip"] and run.description == "Run"
    assert dropdowns[2].label == "none"  # None shows as "none", not as a blank menu
    first = bytes(image.value)
    assert first.startswith(b"\x89PNG")  # the figure's bytes live in the widget's state (kept across reloads)
    dropdowns[0].value, dropdowns[1].value, dropdowns[2].value = "10", "xavier", "1.0"
    assert calls[-1] == (30, "he")  # changing a control does not start an experiment
    run.click()
    assert calls[-1] == (10, "xavier") and bytes(image.value) != first and not run.disabled


def test_explorer_shows_an_error_from_its_experiment_instead_of_losing_it(monkeypatch):
    import ipywidgets

    from tutorlib import plots

    monkeypatch.setenv("TUTORLIB_HEADLESS", "0")
    import pandas as pd

    def draw(lr):
        if lr > 1:
            raise RuntimeError("diverged")
        return plots.bars(pd.DataFrame({"lr": [lr], "loss": [lr]}), "lr", "loss")

    widget = plots.explorer(draw, lr=[0.1, 5.0])
    menu, (run, status) = widget.children[0], widget.children[1].children
    menu.index = 1
    run.click()
    assert status.value == "RuntimeError: diverged" and not run.disabled
    assert isinstance(widget.children[2], ipywidgets.Image)


def test_panel_puts_each_model_beside_the_other_on_one_y_scale():
    import pandas as pd

    from tutorlib import plots

    df = pd.DataFrame({"model": ["CNN"] * 4 + ["Lite0"] * 4, "layer": ["a", "b"] * 2 + ["c", "d"] * 2,
                       "value": [0.5, 0.6, 0.55, 0.65, 0.8, 0.9, 0.85, 0.95], "arm": ["x", "x", "y", "y"] * 2})
    assert len(plots.layer_profile(df, "layer", "value", panel="model").axes) == 2  # no hue
    for fig in (plots.lines(df, "layer", "value", hue="arm", panel="model"),
                plots.bars(df, "layer", "value", hue="arm", panel="model"),
                plots.layer_profile(df, "layer", "value", hue="arm", panel="model")):
        left, right = fig.axes[:2]
        assert (left.get_title(), right.get_title()) == ("CNN", "Lite0")
        assert left.get_ylim() == right.get_ylim()  # one scale, so the panels compare by eye
        assert (left.get_legend(), right.get_legend() is not None) == (None, True)
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["c", "d"]  # each panel its own layers
    with pytest.raises(ValueError, match="panel_typo"):
        plots.lines(df, "layer", "value", panel="panel_typo")


def test_a_log_x_axis_is_labelled_at_the_measured_values_without_colliding_minor_labels():
    import pandas as pd

    from tutorlib import plots

    df = pd.DataFrame({"params": [4213, 16801, 65537, 4213], "gain": [0.0, 0.04, 0.03, 0.02]})
    ax = plots.lines(df, "params", "gain", logx=True).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4.2k", "17k", "66k"]
    assert all(t.get_text() == "" for t in ax.xaxis.get_minorticklabels())
    rates = pd.DataFrame({"lr": [0.01, 0.1, 1.0], "acc": [0.8, 0.9, 0.5]})
    assert [t.get_text() for t in plots.lines(rates, "lr", "acc", logx=True).axes[0].get_xticklabels()] == ["0.01", "0.1", "1"]
