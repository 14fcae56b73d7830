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

    def draw(depth, init):
        calls.append((depth, init))
        return plots.bars(__import__("pandas").DataFrame({"init": [init], "loss": [depth / 10]}), "init", "loss")

    monkeypatch.setenv("TUTORLIB_HEADLESS", "1")
    assert isinstance(plots.explorer(draw, depth=[30, 10], init=["he", "xavier"]), Figure)
    assert calls == [(30, "he")]  # headless: the defaults, drawn once, nothing waits for a click

    monkeypatch.setenv("TUTORLIB_HEADLESS", "0")
    widget = plots.explorer(draw, depth=[30, 10], init=["he", "xavier"])
    assert isinstance(widget, ipywidgets.interactive) and calls[-1] == (30, "he")  # defaults drawn at once
    dropdowns = [w for w in widget.children if isinstance(w, ipywidgets.Dropdown)]
    run = next(w for w in widget.children if isinstance(w, ipywidgets.Button))
    assert [d.description for d in dropdowns] == ["depth", "init"] and run.description == "Run"
    dropdowns[0].value, dropdowns[1].value = 10, "xavier"
    assert calls[-1] == (30, "he")  # manual mode: changing a control does not start an experiment
    run.click()
    assert calls[-1] == (10, "xavier")


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
