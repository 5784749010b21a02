"""course_utils.papers: every published figure has a source and agrees with the others."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from torch import nn

from course_utils import papers
from course_utils.analysis import count_macs, count_params
from course_utils.models import get_model

DESIGN = Path(__file__).resolve().parents[2] / "shared" / "DESIGN.md"

# The PARAMS keys that are a registry name plus keywords.
VARIANTS = {
    "lenet5_c3_table": ("lenet5", {"c3_table": True}),
    "alexnet_groups2": ("alexnet", {"groups": 2}),
    "vgg16_c": ("vgg16", {"config": "C"}),
    "googlenet_aux": ("googlenet", {"aux_logits": True}),
    "resnet20_b": ("resnet20", {"shortcut": "B"}),
}
KNOWN_SOURCE_PREFIXES = (
    "LeCun", "Krizhevsky", "Simonyan", "Szegedy", "He et al.", "Huang", "Russakovsky",
    "torchvision", "Lecture", "course targets", "CS231n",
)


def _all_figures():
    for table_name in ("PARAMS", "PAPER_PARAMS", "MACS", "LENET5_LAYER_PARAMS", "MNIST_ERRORS",
                       "LECTURE", "CS231N_VGG16"):
        for key, fig in getattr(papers, table_name).items():
            yield f"{table_name}[{key}]", fig
    yield "HUMAN_TOP5", papers.HUMAN_TOP5
    for e in papers.IMAGENET_ERRORS:
        yield f"IMAGENET_ERRORS[{e.model}, {e.setting}]", e


def test_every_figure_has_a_known_source():
    for where, fig in _all_figures():
        assert fig.source.startswith(KNOWN_SOURCE_PREFIXES), (where, fig.source)
    for table in (papers.ILSVRC_WINNERS, papers.ILSVRC_RUNNERS_UP, papers.CIFAR10_ERRORS):
        for row in table:
            assert row["source"].startswith(KNOWN_SOURCE_PREFIXES), row
    assert papers.GOOGLENET_TABLE1_SOURCE.startswith("Szegedy")
    for arch in papers.ARCHITECTURES.values():
        assert arch.paper in papers.SOURCES


def test_error_rates_are_percentages():
    for e in papers.IMAGENET_ERRORS:
        assert e.top1 is not None or e.top5 is not None
        for v in (e.top1, e.top5):
            assert v is None or 0 < v < 100
        if e.top1 is not None and e.top5 is not None:
            assert e.top5 < e.top1
        assert e.split in ("val", "test")


def test_params_agree_with_design_md():
    if not DESIGN.is_file():
        pytest.skip(f"{DESIGN} not present")
    text = DESIGN.read_text(encoding="utf-8")
    section = text[text.index("## 4."):text.index("## 5.")]
    expected = {
        "lenet5": r"lenet5 \(C3 fully connected\) \| ([\d,]+)",
        "alexnet": r"alexnet \(one tower, 227x227, LRN\) \| ([\d,]+)",
        "alexnet_groups2": r"alexnet groups=2 \| ([\d,]+)",
        "vgg19_bn": r"vgg19_bn ([\d,]+)",
    }
    for key, pattern in expected.items():
        assert papers.PARAMS[key].value == int(re.search(pattern, section)[1].replace(",", ""))
    rows = {
        "vgg": ["vgg11", "vgg13", "vgg16", "vgg19"],
        "googlenet": ["googlenet", "googlenet_aux"],
        "resnet": ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"],
        "densenet": ["densenet121", "densenet169", "densenet201", "densenet264"],
    }
    for prefix, keys in rows.items():
        line = next(ln for ln in section.splitlines() if ln.startswith(f"| {prefix}"))
        numbers = [int(n.replace(",", "")) for n in re.findall(r"\d{1,3}(?:,\d{3})+", line)]
        assert numbers[: len(keys)] == [papers.PARAMS[k].value for k in keys], prefix


@pytest.mark.parametrize("key", sorted(papers.PARAMS))
def test_params_match_our_models(key):
    name, kwargs = VARIANTS.get(key, (key, {}))
    with torch.device("meta"):  # no weights allocated: VGG's 138 M parameters are free
        model = get_model(name, **kwargs)
    assert count_params(model) == papers.PARAMS[key].value


def test_paper_params_are_the_rounded_counts():
    for key in ("vgg11", "vgg13", "vgg16", "vgg19"):
        assert round(papers.PARAMS[key].value, -6) == papers.PAPER_PARAMS[key].value
    assert sum(f.value for f in papers.LENET5_LAYER_PARAMS.values()) == 60_000
    assert papers.PAPER_PARAMS["lenet5"].value == papers.LECTURE["lenet5_params"].value
    # Per-layer arithmetic of LeNet-5 (5x5 kernels, one bias per map).
    assert papers.LENET5_LAYER_PARAMS["C1"].value == 6 * (5 * 5 + 1)
    assert papers.LENET5_LAYER_PARAMS["C5"].value == 120 * (16 * 5 * 5 + 1)
    assert papers.LENET5_LAYER_PARAMS["F6"].value == 84 * (120 + 1)
    # The lecture's "13M" for GoogLeNet counts the auxiliary heads.
    assert round(papers.PARAMS["googlenet_aux"].value, -6) == papers.LECTURE[
        "googlenet_params"
    ].value
    # ResNet Table 6 prints the CIFAR-10 nets' counts to two significant digits.
    for row in papers.CIFAR10_ERRORS:
        key = row["model"].lower().replace("-", "")  # "ResNet-20" -> "resnet20"
        if key in papers.PARAMS:
            assert float(f"{papers.PARAMS[key].value:.2g}") == row["params"], key


def test_depth_counts_weight_layers_of_plain_chains():
    for name in ("lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19"):
        with torch.device("meta"):
            model = get_model(name)
        weight_layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
        assert weight_layers == papers.ARCHITECTURES[name].depth, name


def test_googlenet_table1_channel_arithmetic():
    for row in papers.GOOGLENET_TABLE1:
        if row.type == "inception":
            # The module's output depth is the concatenation of its four branches.
            assert row.n1x1 + row.n3x3 + row.n5x5 + row.pool_proj == row.output[2], row.name
    row3a = papers.googlenet_table1("inception3a")
    assert (row3a.n1x1, row3a.n3x3, row3a.n5x5, row3a.pool_proj) == (64, 128, 32, 32)
    total_ops = sum(r.ops_m or 0 for r in papers.GOOGLENET_TABLE1) * 1e6
    assert total_ops == pytest.approx(papers.MACS["googlenet"].value, rel=0.03)
    with pytest.raises(KeyError, match="inception3a"):
        papers.googlenet_table1("inception9z")


def test_worked_example_arithmetic():
    naive = (32 * 32 * 200) * (5 * 5 * 32)
    bottleneck = (32 * 32 * 200) * (1 * 1 * 16) + (32 * 32 * 16) * (5 * 5 * 32)
    assert papers.LECTURE["inception_naive_macs"].value == naive == 163_840_000
    assert papers.LECTURE["inception_bottleneck_macs"].value == bottleneck == 16_384_000


def test_lecture_figures_are_in_the_paper_tables():
    def top5s(model):
        return {e.top5 for e in papers.errors_for(model)}

    assert papers.LECTURE["vgg16_top5"].value in top5s("vgg16")  # Table 3, config D
    assert papers.LECTURE["vgg19_top5"].value in top5s("vgg19")  # Table 5, config E
    assert papers.LECTURE["alexnet_top5"].value in top5s("alexnet")
    assert papers.LECTURE["googlenet_top5"].value in top5s("googlenet")
    assert papers.LECTURE["resnet_single_top5"].value in top5s("resnet152")
    assert papers.LECTURE["resnet_ensemble_top5"].value in top5s("resnet")
    assert papers.LECTURE["resnet50_macs"].value == papers.MACS["resnet50"].value
    assert papers.errors_for("alexnet", single_model=True)[0].top5 == 17.0


def test_ilsvrc_winners_improve_every_year():
    years = [w["year"] for w in papers.ILSVRC_WINNERS]
    errors = [w["top5"] for w in papers.ILSVRC_WINNERS]
    assert years == sorted(years)
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < papers.HUMAN_TOP5.value < errors[-2]  # ResNet beat the human figure


def test_summary_rows_for_the_comparison():
    rows = papers.summary_rows()
    assert [r["model"] for r in rows] == list(papers.COMPARISON_MODELS)
    assert len(rows) == 7
    for r in rows:
        assert r["year"] >= 1998 and r["depth"] >= 5
        if r["model"] != "lenet5":
            assert r["top5"] is not None and r["source"], r
    assert papers.headline_error("lenet5") is None
    keys = {f.name for f in fields(papers.ErrorRate)}
    assert set(papers.as_dicts(papers.IMAGENET_ERRORS[:1])[0]) == keys


def test_torchvision_figures_match_installed_metadata():
    tv = pytest.importorskip("torchvision")
    weights = {
        name: tv.models.get_model_weights(name).IMAGENET1K_V1 for name in papers.TORCHVISION
    }
    for name, w in weights.items():
        meta = w.meta
        fig = papers.TORCHVISION[name]
        assert fig["acc1"] == meta["_metrics"]["ImageNet-1K"]["acc@1"], name
        assert fig["acc5"] == meta["_metrics"]["ImageNet-1K"]["acc@5"], name
        assert fig["gmacs"] == meta["_ops"], name
        assert fig["params"] == meta["num_params"], name


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "googlenet", "resnet50", "densenet121"])
def test_torchvision_gmacs_are_multiply_adds(name):
    tv = pytest.importorskip("torchvision")
    with torch.device("meta"):
        model = tv.models.get_model(name, weights=None, **(
            {"init_weights": False} if name == "googlenet" else {}))
    assert round(count_macs(model) / 1e9, 3) == papers.TORCHVISION[name]["gmacs"]


def test_cs231n_vgg16_totals_and_their_notes():
    from course_utils.analysis import memory_table

    with torch.device("meta"):
        rows = memory_table(get_model("vgg16"))
    # The slide lists input, conv, pool and FC outputs (no adaptive pooling row).
    slide_rows = [r for r in rows if r["type"] != "AdaptiveAvgPool2d"]
    values = sum(r["activations"] for r in slide_rows)
    assert f"{values:,}" in papers.CS231N_VGG16["activations"].note
    assert values < 0.7 * papers.CS231N_VGG16["activations"].value
    weights = sum(r["params"] for r in rows)
    with torch.device("meta"):
        vgg = get_model("vgg16")
    biases = sum(m.bias.numel() for m in vgg.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert f"{weights - biases:,}" in papers.CS231N_VGG16["params"].note
    assert round(weights, -6) == papers.CS231N_VGG16["params"].value
