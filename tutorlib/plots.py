"""The course's figures, so every chapter looks the same. Each function returns a matplotlib Figure.

Figures are built with `matplotlib.figure.Figure` rather than pyplot, so a notebook shows each
one exactly once (as the cell's value) and loops do not leak open figures.
Results tables are "long" DataFrames: one row per measurement, a `seed` column where seeds vary;
error bars are the standard deviation over seeds.
"""
from __future__ import annotations

import io
from typing import Mapping

import pandas as pd
import seaborn as sns
import torch
from matplotlib import ticker
from matplotlib.figure import Figure

from . import i18n, inputs

PALETTE = "colorblind"


def _png(fig: Figure) -> bytes:
    i18n.translate_figure(fig)  # the Chinese edition's labels (TUTORLIB_LANG=zh); nothing in English
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _register_notebook_display() -> None:
    """Let Jupyter show these pyplot-free Figures as PNG when they are a cell's value."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, _png)


_register_notebook_display()


def _frame(df, *columns: str | None) -> pd.DataFrame:
    """A non-empty DataFrame that has the named columns; else an error that lists the ones it has."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"Plots take a pandas DataFrame (one row per measurement), got {type(df).__name__}. "
                        f"Build one with pd.DataFrame(rows).")
    missing = [c for c in columns if c is not None and c not in df.columns]
    if missing:
        raise ValueError(f"Column(s) {missing} are not in the table; it has {list(df.columns)}.")
    if df.empty:
        raise ValueError("The table is empty: run the experiment cell above first.")
    return df


def _figure(ncols: int = 1, width: float = 5.0, height: float = 3.6, sharey: bool = False):
    sns.set_theme(style="whitegrid", context="notebook", palette=PALETTE)
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False, sharey=sharey)[0]
    return fig, axes


def _panels(df: pd.DataFrame, panel: str | None, draw, width: float, title: str | None, xlabel, ylabel) -> Figure:
    """One axes per value of the `panel` column (e.g. the course CNN beside Lite0), same y scale, one legend."""
    parts = [(None, df)] if panel is None else list(df.groupby(panel, sort=False))
    fig, axes = _figure(ncols=len(parts), width=width, sharey=panel is not None)
    for i, (ax, (name, part)) in enumerate(zip(axes, parts)):
        draw(ax, part)
        if i < len(parts) - 1 and ax.get_legend() is not None:
            ax.get_legend().remove()
        _finish(ax, title if panel is None else str(name), xlabel, ylabel)
    if panel is not None and title:
        fig.suptitle(title)
    return fig


def _slant(ax, degrees: float) -> None:
    """Slant the x labels so that each ends at its tick: long names never run into each other."""
    for label in ax.get_xticklabels():
        label.set(rotation=degrees, ha="right", rotation_mode="anchor")


def _log_x(ax, values: pd.Series) -> None:
    """A log x axis labelled at the measured values when there are few (matplotlib's own labels collide
    on a range under a decade, e.g. 4,000-65,000 parameters)."""
    ax.set_xscale("log")
    ticks = sorted(set(float(v) for v in values if v > 0))
    if len(ticks) <= 8:
        ax.set_xticks(ticks, [_compact(v) for v in ticks])
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def _compact(value: float) -> str:
    """4213 -> '4.2k', 3400000 -> '3.4M', 0.03 -> '0.03': short tick labels."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.2g}{suffix}"
    return f"{value:g}"


def _finish(ax, title: str | None, xlabel: str | None, ylabel: str | None) -> None:
    if title:
        ax.set_title(title)
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if ax.get_legend() is not None:  # outside the axes, so it never hides data
        longest = max((len(t.get_text()) for t in ax.get_legend().get_texts()), default=0)
        if longest > 24:  # long names: below the plot, where they do not squeeze it
            ax.legend(frameon=False, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.22))
        else:
            ax.legend(frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def lines(df: pd.DataFrame, x: str, y: str, hue: str | None = None, *, title: str | None = None,
          xlabel: str | None = None, ylabel: str | None = None, logx: bool = False,
          logy: bool = False, reference: float | None = None, reference_label: str = "",
          panel: str | None = None) -> Figure:
    """Mean of `y` against `x` per `hue`, with standard-deviation bars over the seeds.

    On a log y axis the bars show the seeds' min-max range instead: mean - sd can fall below zero there.
    panel: a column whose values get one plot each, side by side (e.g. "model").
    """
    _frame(df, x, y, hue, panel)

    def draw(ax, part):
        sns.lineplot(data=part, x=x, y=y, hue=hue, style=hue, markers=True, dashes=False,
                     errorbar=("pi", 100) if logy else "sd", err_style="bars", ax=ax)
        if reference is not None:
            ax.axhline(reference, color="grey", linestyle="--", linewidth=1, label=reference_label)
            ax.legend()
        if logx:
            _log_x(ax, part[x])
        if logy:
            ax.set_yscale("log")
    return _panels(df, panel, draw, 5.0, title, xlabel, ylabel)


def bars(df: pd.DataFrame, x: str, y: str, hue: str | None = None, *, title: str | None = None,
         xlabel: str | None = None, ylabel: str | None = None, ylim: tuple[float, float] | None = None,
         horizontal: bool = False, order: list | None = None, panel: str | None = None,
         reference: float | None = None, reference_label: str = "") -> Figure:
    """Mean of `y` per category with standard-deviation error bars and each seed as a dot.

    panel: a column whose values get one plot each, side by side (e.g. "model").
    reference: a value to draw across the plot (e.g. a registered margin), labelled `reference_label`.
    """
    _frame(df, x, y, hue, panel)
    xy = dict(x=y, y=x, order=order) if horizontal else dict(x=x, y=y, order=order)

    def draw(ax, part):
        sns.barplot(data=part, hue=hue, errorbar="sd", capsize=0.1, alpha=0.8, ax=ax, **xy)
        black = dict(palette={level: "black" for level in part[hue].unique()}) if hue else dict(color="black")
        sns.stripplot(data=part, hue=hue, dodge=hue is not None, size=3, legend=False, ax=ax, **black, **xy)
        if ylim:
            (ax.set_xlim if horizontal else ax.set_ylim)(*ylim)
        if reference is not None:
            (ax.axvline if horizontal else ax.axhline)(reference, color="grey", linestyle="--", linewidth=1,
                                                       label=reference_label)
            ax.legend()
        if not horizontal:
            _slant(ax, 20)
    return _panels(df, panel, draw, 6.0 if panel is None else 4.5, title,
                   ylabel if horizontal else xlabel, xlabel if horizontal else ylabel)


def _annotate_apart(ax, points, texts: list[str], line: float = 11.0) -> None:
    """Label each point; a label that would sit on one already placed moves down (with a leader line).

    Labels of points in the right third of the axes go to their left, so they stay inside the plot.
    """
    ax.get_xlim(), ax.get_ylim()  # settle autoscaling before converting data to pixels
    pixels = ax.transData.transform(points)
    right_edge = ax.transAxes.transform((1, 1))[0]
    left_edge = ax.transAxes.transform((0, 0))[0]
    placed: list[tuple[float, float, float]] = []  # left, right, baseline of each label, in pixels
    for i in sorted(range(len(texts)), key=lambda i: -pixels[i][1]):
        (px, py), width = pixels[i], 5.5 * len(texts[i])
        to_left = px > left_edge + 2 / 3 * (right_edge - left_edge)
        left = px - 5 - width if to_left else px + 5
        dy = 4.0
        while any(left < r and l < left + width and abs(py + dy - b) < line for l, r, b in placed):
            dy -= line
        placed.append((left, left + width, py + dy))
        leader = dict(arrowstyle="-", color="grey", linewidth=0.5, shrinkA=0) if dy < 0 else None
        ax.annotate(texts[i], points[i], textcoords="offset pixels", xytext=(-5 if to_left else 5, dy),
                    ha="right" if to_left else "left", fontsize="x-small", arrowprops=leader)


def scatter(df: pd.DataFrame, x: str, y: str, hue: str | None = None, *, label: str | None = None,
            title: str | None = None, xlabel: str | None = None, ylabel: str | None = None,
            logx: bool = False, diagonal: bool = False) -> Figure:
    """One point per row, optionally annotated with the `label` column (models, methods)."""
    _frame(df, x, y, hue, label)
    fig, (ax,) = _figure()
    sns.scatterplot(data=df, x=x, y=y, hue=hue, style=hue, s=70, ax=ax)
    if label:
        _annotate_apart(ax, df[[x, y]].to_numpy(dtype=float), df[label].astype(str).tolist())
    if diagonal:
        lo = min(df[x].min(), df[y].min())
        hi = max(df[x].max(), df[y].max())
        ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1)
    if logx:
        _log_x(ax, df[x])
    _finish(ax, title, xlabel, ylabel)
    return fig


def training_curves(histories: Mapping[str, object], *, title: str | None = None) -> Figure:
    """Loss and gradient norm (log scale) per step, and validation accuracy per epoch when recorded."""
    if not isinstance(histories, Mapping) or not histories or \
            not all(hasattr(h, "step_loss") for h in histories.values()):
        raise TypeError("training_curves takes a dict of name -> History (what train.fit returns), e.g. "
                        "{'warmup': history}.")
    with_val = any(h.val_accuracy for h in histories.values())
    fig, axes = _figure(ncols=3 if with_val else 2, width=4.2)
    colors = sns.color_palette("tab10", len(histories))  # the most distinct hues for many runs
    for color, (name, h) in zip(colors, histories.items()):
        axes[0].plot(h.step_loss, label=name, linewidth=1, color=color)
        axes[1].plot(h.grad_norm, linewidth=1, color=color)
        if h.val_accuracy:
            axes[2].plot(range(1, len(h.val_accuracy) + 1), h.val_accuracy, marker="o", color=color)
    axes[1].set_yscale("log")
    labels = [("step", "training loss"), ("step", "gradient norm"), ("epoch", "validation accuracy")]
    for ax, (xl, yl) in zip(axes, labels):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
    fig.legend(loc="outside lower center", ncols=min(3, len(histories)), frameon=False, fontsize="small")  # long run names never squeeze the panels
    if title:
        fig.suptitle(title)
    return fig


def layer_profile(df: pd.DataFrame, layer: str, value: str, hue: str | None = None, *,
                  title: str | None = None, ylabel: str | None = None, logy: bool = False,
                  panel: str | None = None) -> Figure:
    """A value per layer, input on the left and output on the right (gradient norms, CKA, distances).

    panel: a column whose values get one plot each, side by side (e.g. "model"; their layers differ).
    """
    _frame(df, layer, value, hue, panel)

    def draw(ax, part):
        order = list(dict.fromkeys(part[layer]))  # this panel's layers, in the order measured
        sns.pointplot(data=part, x=layer, y=value, hue=hue, errorbar="sd", dodge=0.2 if hue else False, order=order, ax=ax)
        if logy:
            ax.set_yscale("log")
        _slant(ax, 30)
    return _panels(df, panel, draw, 6.0 if panel is None else 5.0, title, "layer (input → output)", ylabel)


def image_grid(images: torch.Tensor, labels: torch.Tensor | None = None, class_names=None, *,
               ncols: int = 10, title: str | None = None) -> Figure:
    """A grid of images with their class names, to look at the data before modelling it."""
    images = inputs.images(images)
    ncols = inputs.integer(ncols, "ncols", 1)
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels.")
    if labels is not None and class_names is not None and len(class_names) <= int(max(labels)):
        raise ValueError(f"class_names has {len(class_names)} names but the labels go up to {int(max(labels))}.")
    n = len(images)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(1.2 * ncols, 1.35 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < n:
            img = images[i].permute(1, 2, 0).squeeze(-1).numpy()
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            if labels is not None:
                c = int(labels[i])
                ax.set_title(class_names[c] if class_names else str(c), fontsize="x-small")
    if title:
        fig.suptitle(title)
    return fig


def headless() -> bool:
    """True when notebooks run without a person watching (tests, `make course`): widgets can't respond there."""
    import os

    return os.environ.get("TUTORLIB_HEADLESS", "") not in ("", "0")


def _option_label(value) -> str:
    return "none" if value is None else str(value)


def png_bytes(fig: Figure) -> bytes:
    """A figure as PNG bytes: what an `ipywidgets.Image` shows."""
    i18n.translate_figure(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def explorer(draw, **controls):
    """An ipywidgets explorer around `draw(**values) -> Figure`, or its static figure when headless.

    controls: name -> list of options (a dropdown each); the first option of each is the default.
    The figure lives in an `ipywidgets.Image` whose bytes the kernel holds, so after a page reload
    JupyterLab fetches the controls and the figure together from the kernel and "Run" keeps working.
    Dropdowns carry labels ("none" for None) and map back to the options by position.
    """
    empty = [k for k, v in controls.items() if not isinstance(v, (list, tuple)) or not v]
    if empty:
        raise ValueError(f"Each control needs a non-empty list of options (the first is the default); {empty} has none.")
    defaults = {k: v[0] for k, v in controls.items()}
    if headless():
        return draw(**defaults)
    try:
        import ipywidgets
    except ImportError:
        return draw(**defaults)
    menus = {k: ipywidgets.Dropdown(options=[_option_label(v) for v in values], index=0, description=k,
                                    style={"description_width": "initial"})
             for k, values in controls.items()}
    image = ipywidgets.Image(value=png_bytes(draw(**defaults)), format="png")
    run, status = ipywidgets.Button(description="Run", button_style="primary"), ipywidgets.Label()

    def on_run(_button) -> None:
        values = {k: controls[k][menu.index] for k, menu in menus.items()}
        run.disabled, status.value = True, "running..."
        try:
            image.value = png_bytes(draw(**values))
            status.value = ", ".join(f"{k}={_option_label(v)}" for k, v in values.items())
        except Exception as err:  # a click's error would otherwise vanish into the kernel's log
            status.value = f"{type(err).__name__}: {err}"
        finally:
            run.disabled = False

    run.on_click(on_run)
    return ipywidgets.VBox([*menus.values(), ipywidgets.HBox([run, status]), image])
