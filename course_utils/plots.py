"""Pictures for the course notebooks (matplotlib; safe without a screen). Every function
returns a ``Figure`` made without pyplot (nothing drawn twice in a notebook, nothing left open
in a script): the last expression of a cell shows it, ``fig.savefig(path)`` saves it,
``show=True`` opens a window. Labels are in English (the default fonts have no Hangul).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from .analysis import receptive_fields

__all__ = ["plot_seed_band", "bubble_chart", "confusion_counts", "confusion_matrix",
           "confusion_matrix_plot", "plot_channels_and_size", "plot_history", "plot_per_layer",
           "plot_receptive_field", "show_feature_maps", "show_filters", "show_images"]


# --------------------------------------------------------------------------- plumbing
_inline_ready = False


def _enable_notebook_display() -> None:
    """Make Jupyter draw our pyplot-free figures as images: IPython registers the PNG formatter
    for ``Figure`` only when the inline backend starts, normally at the first *pyplot* figure;
    until then our figures show as ``<Figure size ...>`` text."""
    global _inline_ready
    if _inline_ready:
        return
    _inline_ready = True
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and hasattr(shell, "kernel"):  # a Jupyter kernel, not a terminal
        shell.run_line_magic("matplotlib", "inline")


def _new_figure(show: bool, **kwargs: Any) -> Figure:
    """A figure outside pyplot (no double display, no leak), or a pyplot one to ``show``."""
    _enable_notebook_display()
    kwargs.setdefault("layout", "constrained")
    if show:
        import matplotlib.pyplot as plt

        return plt.figure(**kwargs)
    return Figure(**kwargs)


def _finish(fig: Figure, show: bool, suptitle: str | None = None) -> Figure:
    if suptitle:
        fig.suptitle(suptitle)
    if show:
        import matplotlib.pyplot as plt

        plt.show()
    return fig


def _numpy(x: Any) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return math.ceil(n / ncols), ncols


def _to_unit_range(img: np.ndarray) -> np.ndarray:
    """Scale an image to [0, 1] for display unless it already is."""
    lo, hi = float(img.min()), float(img.max())
    if lo >= 0.0 and hi <= 1.0:
        return img
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def _hwc(img: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(C, H, W) or (H, W) -> something ``imshow`` draws, and the colour map to use."""
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
    return img, ("gray" if img.ndim == 2 else None)


# --------------------------------------------------------------------------- learning curves
def _is_single_history(h: Any) -> bool:
    return hasattr(h, "to_dict") or (isinstance(h, Mapping) and ("steps" in h or "epochs" in h))


def _as_history_dict(h: Any) -> dict[str, Any]:
    if not _is_single_history(h):
        raise TypeError(f"expected a History or its to_dict(), got {type(h).__name__}")
    return h.to_dict() if hasattr(h, "to_dict") else dict(h)


def _percent(values: list[float]) -> list[float]:
    """Accuracies are fractions in History; show them in percent."""
    return [100.0 * v for v in values] if values and max(values) <= 1.0 else values


def plot_history(history: Any, *, title: str | None = None, show: bool = False,
                 figsize: tuple[float, float] = (10, 3.8)) -> Figure:
    """Loss (left) and accuracy (right) of one run, or of ``{label: history}`` side by side:
    per-step training values as lines, per-epoch test values as markers at the last step of
    their epoch (or against the epoch, without step records)."""
    runs = {"": history} if _is_single_history(history) else dict(history)
    fig = _new_figure(show, figsize=figsize)
    ax_loss, ax_acc = fig.subplots(1, 2)
    use_steps = any(_as_history_dict(h).get("steps") for h in runs.values())
    for i, (label, h) in enumerate(runs.items()):
        data = _as_history_dict(h)
        color, prefix = f"C{i % 10}", f"{label} " if label else ""
        steps, epochs = data.get("steps") or [], data.get("epochs") or []
        if use_steps and steps:
            xs = [s["step"] for s in steps]
            ax_loss.plot(xs, [s["loss"] for s in steps], color=color, lw=1,
                         label=f"{prefix}train (per step)")
            if all(s.get("acc") is not None for s in steps):
                ax_acc.plot(xs, _percent([s["acc"] for s in steps]), color=color, lw=1,
                            label=f"{prefix}train (per step)")
        # x position of each epoch's summary: the last step of that epoch, or the epoch number
        last_step = {s.get("epoch"): s["step"] for s in steps}
        ex = [last_step.get(e["epoch"], e["epoch"]) if use_steps else e["epoch"] for e in epochs]
        for key, ax, marker, what in [("train_loss", ax_loss, "o", "train (epoch)"),
                                      ("test_loss", ax_loss, "s", "test (epoch)"),
                                      ("train_acc", ax_acc, "o", "train (epoch)"),
                                      ("test_acc", ax_acc, "s", "test (epoch)")]:
            if use_steps and steps and key.startswith("train"):
                continue  # the per-step line already shows training
            pts = [(x, e[key]) for x, e in zip(ex, epochs, strict=True) if e.get(key) is not None]
            if not pts:
                continue
            xs_, ys_ = zip(*pts, strict=True)
            ys_ = _percent(list(ys_)) if key.endswith("acc") else list(ys_)
            ax.plot(xs_, ys_, marker=marker, ls="--", color=color, ms=6, label=f"{prefix}{what}")
    xlabel = "step" if use_steps else "epoch"
    ax_loss.set(xlabel=xlabel, ylabel="loss", title="Loss")
    ax_acc.set(xlabel=xlabel, ylabel="accuracy (%)", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return _finish(fig, show, title)


def plot_seed_band(runs: dict[str, Sequence[Any]], *, key: str = "loss", title: str | None = None,
                   ylabel: str | None = None, show: bool = False,
                   figsize: tuple[float, float] = (7, 3.6)) -> Figure:
    """Per-step training ``key`` of ``{label: [History per seed]}``: the mean as a line, min to
    max as a band. Bands that do not overlap differ by more than the seeds do."""
    fig = _new_figure(show, figsize=figsize)
    ax = fig.subplots()
    for i, (label, histories) in enumerate(runs.items()):
        records = [_as_history_dict(h)["steps"] for h in histories]
        n = min(len(r) for r in records)  # same read points for every seed
        xs = [s["step"] for s in records[0][:n]]
        values = np.array([[s[key] for s in r[:n]] for r in records])
        if key == "acc":
            values = values * 100
        ax.plot(xs, values.mean(axis=0), color=f"C{i}", lw=1.5,
                label=f"{label} (mean of {len(histories)} seeds)")
        ax.fill_between(xs, values.min(axis=0), values.max(axis=0), color=f"C{i}", alpha=0.25)
    ax.set(xlabel="step", ylabel=ylabel or ("accuracy (%)" if key == "acc" else key))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return _finish(fig, show)


def plot_reference_figure6(reference: Mapping[str, Any], live: dict[str, Sequence[Any]] | None = None,
                           *, title: str | None = None, show: bool = False) -> Figure:
    """ResNet's Figure 6 from a reference run (``course_utils.reference_runs``): per epoch the
    training error (dashed) and test error (solid) of the plain nets (one panel) and the
    residual nets (the next), as in the paper; a family the run has not reached yet is marked
    as missing. With ``live`` ({label: [History per seed]}) a
    first panel shows the notebook's own short run (training loss per step, mean of the seeds)
    for comparison."""
    runs = reference["runs"]
    panels = [("plain", "plain networks"), ("resnet", "residual networks")]
    # one colour per network in every panel: the live run's order first (so that it matches
    # the notebook's own figure of that run, plot_seed_band), then the others by name
    order = list(live or ()) + sorted(set(runs) - set(live or ()))
    colour = {name: f"C{i}" for i, name in enumerate(order)}
    fig = _new_figure(show, figsize=(4.2 * (len(panels) + (live is not None)), 3.4))
    axes = list(fig.subplots(1, len(panels) + (live is not None), squeeze=False)[0])
    if live is not None:
        ax = axes.pop(0)
        for label, histories in live.items():
            records = [_as_history_dict(h)["steps"] for h in histories]
            n = min(len(r) for r in records)
            ax.plot([s["step"] for s in records[0][:n]],
                    np.mean([[s["loss"] for s in r[:n]] for r in records], axis=0),
                    color=colour[label], lw=1.5, label=label)
        ax.set(xlabel="step", ylabel="training loss", title="this notebook's short run")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    for ax, (kind, panel_title) in zip(axes, panels, strict=True):
        names = sorted((n for n in runs if n.startswith(kind)), key=lambda n: int(n[len(kind):]))
        if not names:  # a reference run still under way: say so instead of an empty frame
            ax.text(0.5, 0.5, f"{panel_title}:\nnot in this reference run yet", ha="center",
                    va="center", transform=ax.transAxes)
        for name in names:
            rows = runs[name]["epochs"]
            epochs = [r["epoch"] for r in rows]
            ax.plot(epochs, [r["train_error"] for r in rows], ls="--", color=colour[name], lw=1.2)
            ax.plot(epochs, [r["test_error"] for r in rows], ls="-", color=colour[name], lw=1.8,
                    label=f"{kind}-{name[len(kind):]}")
        ax.set(xlabel="epoch", ylabel="error (%)", title=f"reference run: {panel_title}")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        if names:
            ax.legend(fontsize="x-small", title="dashed: training, solid: test",
                      title_fontsize="x-small")
    top = max(ax.get_ylim()[1] for ax in axes)  # one scale for both panels, as in the paper
    for ax in axes:
        ax.set_ylim(0, top)
    return _finish(fig, show, title)


# --------------------------------------------------------------------------- images
def show_images(images: Any, labels: Any = None, classes: Sequence[str] | None = None, *,
                predictions: Any = None, titles: Sequence[str] | None = None, ncols: int = 8,
                title: str | None = None, show: bool = False, size: float = 1.4) -> Figure:
    """A grid of images (N, C, H, W) / (N, H, W) with their labels (and predictions: red when
    wrong), or ``titles``. Values outside [0, 1] are rescaled per image (``data.denormalize``
    first for true colours); ``classes`` turns label indices into names."""
    imgs = [_numpy(im) for im in images]
    if not imgs:
        raise ValueError("show_images needs at least one image")
    nrows, ncols = _grid(len(imgs), ncols)
    fig = _new_figure(show, figsize=(size * ncols, size * nrows + (0.4 if title else 0)))
    labels = None if labels is None else [int(v) for v in _numpy(labels).reshape(-1)]
    preds = None if predictions is None else [int(v) for v in _numpy(predictions).reshape(-1)]

    def name(i: int) -> str:
        return classes[i] if classes is not None else str(i)

    for i, img in enumerate(imgs):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        pic, cmap = _hwc(_to_unit_range(img))
        ax.imshow(pic, cmap=cmap, vmin=0, vmax=1)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
        elif labels is not None and preds is not None:
            ok = labels[i] == preds[i]
            ax.set_title(f"{name(preds[i])}" + ("" if ok else f"\n(true: {name(labels[i])})"),
                         color="black" if ok else "red", fontsize=8)
        elif labels is not None:
            ax.set_title(name(labels[i]), fontsize=8)
        elif preds is not None:
            ax.set_title(name(preds[i]), fontsize=8)
    return _finish(fig, show, title)


def _mosaic(tiles: torch.Tensor, ncols: int) -> np.ndarray:
    """(N, C, H, W) tiles (C = 1 or 3), each scaled to [0, 1], as one image for ``imshow``
    (``make_grid``); the 1-pixel gaps are NaN for grey tiles (blank whatever the colour map)
    and white for colour tiles."""
    grey = tiles.shape[1] == 1
    grid = make_grid(tiles.detach().float().cpu(), nrow=ncols, padding=1, normalize=True,
                     scale_each=True, pad_value=float("nan") if grey else 1.0)
    # make_grid copies a grey channel into three; imshow wants (H, W) or (H, W, 3).
    return grid[0].numpy() if grey else grid.permute(1, 2, 0).numpy()


def show_filters(weight: Any, *, ncols: int | None = None, title: str | None = None,
                 show: bool = False, size: float = 8.0) -> Figure:
    """The kernels of an ``nn.Conv2d`` (or its weight) as one grid, each scaled on its own: in
    colour with 3 input channels (AlexNet's conv1: 8 rows of 12), else the first channel."""
    w = torch.as_tensor(weight.weight if isinstance(weight, torch.nn.Module) else weight).detach()
    if w.dim() != 4:
        raise ValueError(f"expected conv weights (out, in, kh, kw), got shape {tuple(w.shape)}")
    tiles = w if w.shape[1] == 3 else w[:, :1]
    n = tiles.shape[0]
    ncols = ncols or min(n, 12 if n >= 48 else 8)
    nrows = math.ceil(n / ncols)
    fig = _new_figure(show, figsize=(size, size * nrows / ncols + (0.5 if title else 0.2)))
    ax = fig.add_subplot(1, 1, 1)
    pic = _mosaic(tiles, ncols)
    ax.imshow(pic, cmap="gray" if pic.ndim == 2 else None, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title or f"{n} filters of {w.shape[2]}x{w.shape[3]}x{w.shape[1]}")
    return _finish(fig, show)


def show_feature_maps(activations: Any, *, max_maps: int = 16, ncols: int = 8,
                      title: str | None = None, cmap: str = "viridis", show: bool = False,
                      size: float = 1.4) -> Figure:
    """Feature maps, each scaled on its own: of a tensor (C, H, W) or (1, C, H, W) the first
    ``max_maps`` channels, one panel each; of ``{name: tensor}`` one mosaic per name, in a row.
    """
    if isinstance(activations, Mapping):
        items = list(activations.items())
        fig = _new_figure(show, figsize=(3.2 * len(items), 3.6))
        axes = np.atleast_1d(fig.subplots(1, len(items)))
        for ax, (name, act) in zip(axes, items, strict=True):
            a = torch.as_tensor(act).detach()
            a = a[0] if a.dim() == 4 else a
            tiles = a[:max_maps].unsqueeze(1)
            cols = math.ceil(math.sqrt(tiles.shape[0]))
            ax.imshow(_mosaic(tiles, cols), cmap=cmap, interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(f"{name}\n{a.shape[0]} x {a.shape[1]} x {a.shape[2]}", fontsize=9)
    else:
        a = torch.as_tensor(activations).detach()
        a = a[0] if a.dim() == 4 else a
        if a.dim() != 3:
            raise ValueError(f"expected activations (C, H, W), got shape {tuple(a.shape)}")
        n = min(max_maps, a.shape[0])
        nrows, ncols = _grid(n, ncols)
        fig = _new_figure(show, figsize=(size * ncols, size * nrows + 0.4))
        for i in range(n):
            ax = fig.add_subplot(nrows, ncols, i + 1)
            ax.imshow(_numpy(a[i]), cmap=cmap, interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(f"ch {i}", fontsize=8)
    return _finish(fig, show, title)


# --------------------------------------------------------------------------- confusion matrix
def confusion_counts(y_true: Any, y_pred: Any, num_classes: int | None = None) -> torch.Tensor:
    """Counts ``m[true, predicted]`` as an int64 tensor (rows: true class)."""
    t = torch.as_tensor(_numpy(y_true)).long().reshape(-1)
    p = torch.as_tensor(_numpy(y_pred)).long().reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.numel()} labels but y_pred has {p.numel()}")
    k = num_classes or int(max(t.max(), p.max())) + 1
    return torch.bincount(t * k + p, minlength=k * k).reshape(k, k)


def confusion_matrix_plot(y_true: Any, y_pred: Any, classes: Sequence[str] | None = None, *,
                          normalize: bool = False, title: str | None = None,
                          show: bool = False) -> Figure:
    """The confusion matrix as a heat map with the count (or row fraction) in each cell."""
    m = confusion_counts(y_true, y_pred, len(classes) if classes is not None else None).double()
    k = m.shape[0]
    if normalize:
        m = m / m.sum(dim=1, keepdim=True).clamp(min=1)
    names = list(classes) if classes is not None else [str(i) for i in range(k)]
    side = max(4.0, 0.5 * k + 2)
    fig = _new_figure(show, figsize=(side + 1, side))
    ax = fig.add_subplot(1, 1, 1)
    fig.colorbar(ax.imshow(m.numpy(), cmap="Blues"), ax=ax, shrink=0.8)
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true",
           title=title or "Confusion matrix")
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticklabels(names)
    threshold = float(m.max()) / 2
    for i in range(k):
        for j in range(k):
            v = float(m[i, j])
            ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center",
                    fontsize=7, color="white" if v > threshold else "black")
    return _finish(fig, show)


confusion_matrix = confusion_matrix_plot  # the name CONVENTIONS.md uses for the plot


# --------------------------------------------------------------------------- architecture plots
def plot_channels_and_size(traces: Mapping[str, Sequence[Mapping[str, Any]]], *,
                           relative: bool = False,
                           title: str | None = "Depth grows while height and width shrink",
                           show: bool = False, figsize: tuple[float, float] = (11, 4)) -> Figure:
    """Channels and height (log scale) after each conv / pooling layer of ``{model name:
    analysis.shape_trace(model)}`` (rows not (C, H, W) skipped). ``relative=True``: x from 0
    to 1, so that networks of different depth line up."""
    fig = _new_figure(show, figsize=figsize)
    ax_c, ax_h = fig.subplots(1, 2)
    for name, rows in traces.items():
        spatial = [r["shape"] for r in rows if r.get("shape") and len(r["shape"]) == 3]
        if not spatial:
            continue
        n = len(spatial)
        xs = [(i + 1) / n for i in range(n)] if relative else list(range(1, n + 1))
        ax_c.plot(xs, [s[0] for s in spatial], marker=".", label=name)
        ax_h.plot(xs, [s[1] for s in spatial], marker=".", label=name)
    xlabel = "fraction of the network" if relative else "conv / pooling layer"
    ax_c.set(xlabel=xlabel, ylabel="channels (depth)", yscale="log", title="Channels")
    ax_h.set(xlabel=xlabel, ylabel="height = width (pixels)", yscale="log", title="Spatial size")
    for ax in (ax_c, ax_h):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    return _finish(fig, show, title)


def plot_receptive_field(layers: Any, *, title: str | None = "Receptive field of stacked layers",
                         show: bool = False, figsize: tuple[float, float] = (6, 4)) -> Figure:
    """Receptive field after each layer of a chain (what ``analysis.receptive_fields`` takes) or
    of ``{label: chain}``."""
    chains = dict(layers) if isinstance(layers, Mapping) else {"": layers}
    fig = _new_figure(show, figsize=figsize)
    ax = fig.add_subplot(1, 1, 1)
    for label, chain in chains.items():
        fields = receptive_fields(chain)
        ax.plot(range(1, len(fields) + 1), fields, marker="o", label=label or None)
    ax.set(xlabel="layer", ylabel="receptive field (pixels)", title=title)
    ax.grid(alpha=0.3)
    if any(chains):
        ax.legend(fontsize="small")
    return _finish(fig, show)


def plot_per_layer(series: Mapping[str, Any], *, ylabel: str, xlabel: str = "layer",
                   logy: bool = True, title: str | None = None, show: bool = False,
                   figsize: tuple[float, float] = (7, 4)) -> Figure:
    """One value per layer for several models: ``{label: [values]}`` or ``{label: {layer:
    value}}`` (the first such series names the x ticks, if at most 30)."""
    fig = _new_figure(show, figsize=figsize)
    ax = fig.add_subplot(1, 1, 1)
    names: list[str] | None = None
    for label, values in series.items():
        if isinstance(values, Mapping):
            names = names or list(values.keys())
            values = list(values.values())
        ys = [float(v) for v in values]
        ax.plot(range(1, len(ys) + 1), ys, marker=".", label=label)
    if names and len(names) <= 30:
        ax.set_xticks(range(1, len(names) + 1))
        ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set(xlabel=xlabel, ylabel=ylabel, yscale="log" if logy else "linear", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _finish(fig, show)


def bubble_chart(rows: Sequence[Mapping[str, Any]], *, x: str = "macs", y: str = "top1",
                 size: str = "params", label: str = "name", x_scale: float | None = None,
                 xlabel: str | None = None, ylabel: str | None = None,
                 title: str | None = "Accuracy vs. operations (bubble area: parameters)",
                 show: bool = False, figsize: tuple[float, float] = (8, 5.5)) -> Figure:
    """CS231n-style ``y`` against ``x``, bubble area proportional to ``size`` (rows missing one
    are skipped). Counts over 1e5 show in billions on the x axis unless ``x_scale`` is given."""
    usable = [r for r in rows if all(r.get(k) is not None for k in (x, y, size))]
    if not usable:
        raise ValueError(f"no row has all of {x!r}, {y!r} and {size!r}")
    xs, ys, sizes = (np.array([float(r[k]) for r in usable]) for k in (x, y, size))
    if x_scale is None:
        x_scale = 1e-9 if xs.max() > 1e5 else 1.0
    xs = xs * x_scale
    area = 2000.0 * sizes / sizes.max()  # the largest model gets the largest bubble
    fig = _new_figure(show, figsize=figsize)
    ax = fig.add_subplot(1, 1, 1)
    for i, r in enumerate(usable):
        ax.scatter(xs[i], ys[i], s=max(area[i], 15.0), alpha=0.45, color=f"C{i % 10}",
                   edgecolors="black", linewidths=0.5,
                   label=f"{r.get(label, i)} ({sizes[i] / 1e6:.1f} M params)")
        ax.annotate(str(r.get(label, i)), (xs[i], ys[i]), ha="center", va="center", fontsize=8)
    unit = " (G)" if x_scale == 1e-9 else ""
    ax.set(xlabel=xlabel or f"{x}{unit}", ylabel=ylabel or y, title=title)
    ax.grid(alpha=0.3)
    ax.margins(0.15)
    ax.legend(fontsize="small", markerscale=0.3, loc="best")
    return _finish(fig, show)
