"""course_utils.plots: every function returns a Figure with the expected panels, headless."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no screen in CI

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from course_utils.analysis import capture_activations, shape_trace  # noqa: E402
from course_utils.models import get_model  # noqa: E402
from course_utils.plots import (  # noqa: E402
    bubble_chart,
    confusion_counts,
    confusion_matrix,
    confusion_matrix_plot,
    plot_channels_and_size,
    plot_history,
    plot_per_layer,
    plot_receptive_field,
    plot_seed_band,
    show_feature_maps,
    show_filters,
    show_images,
)


def _history(epochs: int = 2, steps_per_epoch: int = 5) -> dict:
    steps, per_epoch = [], []
    step = 0
    for epoch in range(1, epochs + 1):
        for _ in range(steps_per_epoch):
            step += 1
            steps.append({"step": step, "epoch": epoch, "loss": 2.0 / step, "acc": step / 20,
                          "lr": 0.1})
        per_epoch.append({"epoch": epoch, "train_loss": 1.0 / epoch, "train_acc": 0.4 * epoch,
                          "test_loss": 1.2 / epoch, "test_acc": 0.35 * epoch, "top5": 0.9})
    return {"steps": steps, "epochs": per_epoch, "final": {}, "config": {}}


def _png(fig: Figure, tmp_path) -> None:
    path = tmp_path / "fig.png"
    fig.savefig(path)  # renders without a display
    assert path.stat().st_size > 1000


def test_plot_history_single_run(tmp_path):
    fig = plot_history(_history(), title="LeNet-5")
    assert isinstance(fig, Figure)
    ax_loss, ax_acc = fig.axes
    # per-step training line + per-epoch test markers
    assert len(ax_loss.lines) == 2 and len(ax_acc.lines) == 2
    step_line, test_line = ax_acc.lines
    assert list(step_line.get_xdata()) == list(range(1, 11))
    assert list(test_line.get_xdata()) == [5, 10]  # at the last step of each epoch
    assert list(test_line.get_ydata()) == pytest.approx([35.0, 70.0])  # fractions -> percent
    assert ax_acc.get_ylabel() == "accuracy (%)"
    _png(fig, tmp_path)


def test_plot_history_compares_runs_and_accepts_history_objects():
    train = pytest.importorskip("course_utils.train")
    runs = {"tanh": train.History.from_dict(_history()), "relu": _history()}
    fig = plot_history(runs)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any(label.startswith("tanh") for label in labels)
    assert any(label.startswith("relu") for label in labels)
    assert len(fig.axes[0].lines) == 4
    assert isinstance(train.History.from_dict(_history()).plot(), Figure)


def test_plot_seed_band_draws_the_mean_and_the_range_over_seeds(tmp_path):
    def history(offset):
        h = _history()
        for s in h["steps"]:
            s["loss"] += offset
        return h

    fig = plot_seed_band({"plain": [history(0.0), history(0.2), history(0.4)],
                          "resnet": [history(-1.0), history(-0.9)]}, title="seeds")
    ax = fig.axes[0]
    mean_line = ax.lines[0]
    expected = [2.0 / step + 0.2 for step in range(1, 11)]  # mean of the three offsets
    assert list(mean_line.get_ydata()) == pytest.approx(expected)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]  # the fill spans min..max
    assert band.min() == pytest.approx(min(expected) - 0.2)
    assert band.max() == pytest.approx(max(expected) + 0.2)
    assert len(ax.collections) == 2
    assert ax.get_legend_handles_labels()[1] == ["plain (mean of 3 seeds)",
                                                 "resnet (mean of 2 seeds)"]
    _png(fig, tmp_path)


def test_plot_history_epochs_only():
    h = _history()
    h["steps"] = []
    fig = plot_history(h)
    assert fig.axes[0].get_xlabel() == "epoch"
    assert len(fig.axes[1].lines) == 2  # train and test markers per epoch


def test_plot_history_rejects_other_objects():
    with pytest.raises(TypeError):
        plot_history({"run": 3})


def test_show_images_one_axes_per_image(tmp_path):
    x = torch.randn(10, 1, 28, 28)  # normalised values outside [0, 1] are rescaled
    fig = show_images(x, torch.arange(10), predictions=torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 0]),
                      ncols=5)
    assert len(fig.axes) == 10
    assert all(len(ax.images) == 1 for ax in fig.axes)
    assert fig.axes[9].title.get_color() == "red"  # 9 predicted as 0
    assert "true: 9" in fig.axes[9].get_title()
    rgb = show_images(torch.rand(3, 3, 8, 8), [0, 1, 2], classes=["cat", "dog", "ship"])
    assert [ax.get_title() for ax in rgb.axes] == ["cat", "dog", "ship"]
    assert rgb.axes[0].images[0].get_array().shape == (8, 8, 3)
    titled = show_images(torch.rand(2, 1, 8, 8), titles=["first", "second"], title="two")
    assert [ax.get_title() for ax in titled.axes] == ["first", "second"]
    assert titled._suptitle.get_text() == "two"
    _png(rgb, tmp_path)
    with pytest.raises(ValueError):
        show_images([])


def test_show_filters_alexnet_conv1_grid():
    conv = nn.Conv2d(3, 96, 11, stride=4)
    fig = show_filters(conv)
    (ax,) = fig.axes
    img = ax.images[0].get_array()
    # 8 rows x 12 columns of 11x11 RGB tiles, with 1-pixel gaps and border (make_grid)
    assert img.shape == (8 * 12 + 1, 12 * 12 + 1, 3)
    assert "96 filters of 11x11x3" in ax.get_title()
    grey = show_filters(torch.randn(16, 6, 5, 5), ncols=8)  # not RGB: first input channel
    assert grey.axes[0].images[0].get_array().shape == (2 * 6 + 1, 8 * 6 + 1)
    with pytest.raises(ValueError):
        show_filters(torch.randn(3, 3))


def test_show_feature_maps_single_and_branches():
    lenet = get_model("lenet5").eval()
    acts = capture_activations(lenet, torch.randn(1, 1, 32, 32), ["features.c1", "features.c3"])
    assert acts["features.c1"].shape == (1, 6, 28, 28)
    fig = show_feature_maps(acts["features.c1"])
    assert len(fig.axes) == 6
    side = show_feature_maps({"C1": acts["features.c1"], "C3": acts["features.c3"]})
    assert len(side.axes) == 2
    assert side.axes[1].get_title().endswith("16 x 10 x 10")
    limited = show_feature_maps(torch.randn(64, 7, 7), max_maps=10)
    assert len(limited.axes) == 10
    with pytest.raises(KeyError, match="no submodule"):
        capture_activations(lenet, torch.randn(1, 1, 32, 32), ["nope"])


def test_confusion_matrix_counts_and_plot():
    y_true = torch.tensor([0, 0, 1, 1, 2, 2])
    y_pred = torch.tensor([0, 1, 1, 1, 2, 0])
    m = confusion_counts(y_true, y_pred)
    assert m.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert confusion_counts(np.array([0]), np.array([0]), num_classes=4).shape == (4, 4)
    assert confusion_matrix is confusion_matrix_plot  # CONVENTIONS.md's name for the plot
    counts_fig = confusion_matrix(y_true, y_pred)
    assert [t.get_text() for t in counts_fig.axes[0].texts][:3] == ["1", "1", "0"]
    fig = confusion_matrix_plot(y_true, y_pred, ["a", "b", "c"], normalize=True)
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # the matrix and its colour bar
    assert ax.images[0].get_array().shape == (3, 3)
    assert len(ax.texts) == 9
    with pytest.raises(ValueError):
        confusion_counts(torch.tensor([0, 1]), torch.tensor([0]))


def test_plot_channels_and_size():
    traces = {"lenet5": shape_trace(get_model("lenet5")),
              "tiny": shape_trace(nn.Sequential(nn.Conv2d(3, 8, 3), nn.MaxPool2d(2)),
                                  (3, 16, 16))}
    fig = plot_channels_and_size(traces)
    ax_c, ax_h = fig.axes
    assert len(ax_c.lines) == 2
    lenet_line = ax_h.lines[0]
    assert list(lenet_line.get_ydata()) == [28, 14, 10, 5, 1]  # FC rows are skipped
    rel = plot_channels_and_size(traces, relative=True)
    assert max(rel.axes[0].lines[0].get_xdata()) == 1.0


def test_plot_receptive_field():
    fig = plot_receptive_field({"3x3": [3, 3, 3], "5x5": [5, 5]})
    ax = fig.axes[0]
    assert [list(line.get_ydata()) for line in ax.lines] == [[3, 5, 7], [5, 9]]


def test_plot_per_layer():
    fig = plot_per_layer({"plain": [1e-4, 1e-3, 1e-2], "residual": {"a": 1.0, "b": 1.0, "c": 2.0}},
                         ylabel="gradient norm")
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]


def test_bubble_chart(tmp_path):
    rows = [
        {"name": "AlexNet", "macs": 0.7e9, "params": 61e6, "top1": 56.5},
        {"name": "VGG-16", "macs": 15.5e9, "params": 138e6, "top1": 71.6},
        {"name": "ResNet-50", "macs": 4.1e9, "params": 25.6e6, "top1": 76.1},
        {"name": "LeNet-5", "macs": 0.4e6, "params": 61706, "top1": None},  # skipped
    ]
    fig = bubble_chart(rows)
    ax = fig.axes[0]
    assert len(ax.collections) == 3
    offsets = [tuple(c.get_offsets()[0]) for c in ax.collections]
    assert offsets[1] == pytest.approx((15.5, 71.6))  # MACs shown in billions
    sizes = [c.get_sizes()[0] for c in ax.collections]
    assert sizes[1] == max(sizes)  # VGG-16 has the most parameters
    assert ax.get_xlabel() == "macs (G)"
    _png(fig, tmp_path)
    with pytest.raises(ValueError):
        bubble_chart([{"name": "x"}])


def test_a_fresh_kernel_shows_our_figures_as_images(tmp_path):
    """Figures made without pyplot must still render as PNG in a new Jupyter kernel
    (IPython registers the Figure formatter only with the inline backend)."""
    import nbformat
    import papermill

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from course_utils import plots\n"
        "plots.plot_history({'steps': [{'step': 1, 'epoch': 1, 'loss': 1.0, 'acc': 0.5}],\n"
        "                    'epochs': [{'epoch': 1, 'train_loss': 1.0, 'train_acc': 0.5,\n"
        "                                'test_loss': 1.1, 'test_acc': 0.4}]})")]
    nbformat.write(nb, tmp_path / "in.ipynb")
    out = papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"),
                                     kernel_name="python3", progress_bar=False)
    kinds = [kind for output in out.cells[0].outputs for kind in output.get("data", {})]
    assert "image/png" in kinds
