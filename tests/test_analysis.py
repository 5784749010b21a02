"""course_utils.analysis: the numbers the lecture and the papers quote, computed from code."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from course_utils import papers
from course_utils.analysis import (
    chain_layers,
    conv_output_size,
    conv_params,
    count_macs,
    count_params,
    format_table,
    layer_table,
    macs_by_module,
    memory_table,
    module_table,
    receptive_field,
    receptive_fields,
    shape_trace,
)
from course_utils.models import get_model


# --------------------------------------------------------------------------- worked example
def test_worked_example_naive_5x5():
    """Lecture 5.5.3: 32 filters of 5x5 on a 32x32x200 input (same padding)."""
    conv = nn.Conv2d(200, 32, kernel_size=5, padding=2)
    assert count_macs(conv, (1, 200, 32, 32)) == papers.LECTURE["inception_naive_macs"].value


def test_worked_example_bottleneck():
    """The same output after a 16-channel 1x1 bottleneck: 3,276,800 + 13,107,200."""
    net = nn.Sequential(nn.Conv2d(200, 16, 1), nn.Conv2d(16, 32, 5, padding=2))
    assert count_macs(net, (200, 32, 32)) == papers.LECTURE["inception_bottleneck_macs"].value
    assert macs_by_module(net, (200, 32, 32)) == {"0": 3_276_800, "1": 13_107_200}


def test_count_macs_linear_and_batch():
    fc = nn.Linear(100, 10)
    assert count_macs(fc, (1, 100)) == 1_000  # one multiply-accumulate per weight, no bias
    assert count_macs(fc, (8, 100)) == 8_000  # scales with the batch


def test_count_macs_leaves_model_untouched():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Dropout(0.5))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_macs(model, (2, 3, 16, 16))
    assert model.training
    for k, v in model.state_dict().items():
        assert v.device.type == "cpu"
        assert torch.equal(v, before[k]), k  # BatchNorm running stats unchanged


def test_count_macs_uses_model_input_size():
    lenet = get_model("lenet5")
    assert count_macs(lenet) == count_macs(lenet, (1, *lenet.input_size))


def test_count_params_trainable_only():
    net = nn.Sequential(nn.Linear(10, 5), nn.Linear(5, 2))
    assert count_params(net) == 55 + 12
    for p in net[0].parameters():
        p.requires_grad_(False)
    assert count_params(net) == 12
    assert count_params(net, trainable_only=False) == 67


def test_macs_by_module_adds_up_and_reports_functional_work():
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.weight = nn.Parameter(torch.randn(10, 4 * 8 * 8))

        def forward(self, x):
            x = self.conv(x).flatten(1)
            return torch.nn.functional.linear(x, self.weight)  # MACs outside any submodule

    model = Head()
    parts = macs_by_module(model, (3, 8, 8))
    assert parts["conv"] == 8 * 8 * 4 * 27
    assert parts["(other)"] == 10 * 256
    assert sum(parts.values()) == count_macs(model, (3, 8, 8))


# --------------------------------------------------------------------------- bad input
def test_wrong_input_surfaces_model_value_error():
    alexnet = get_model("alexnet")
    with pytest.raises(ValueError, match="AlexNet"):
        count_macs(alexnet, (1, 3, 32, 32))
    with pytest.raises(ValueError, match="AlexNet"):
        shape_trace(alexnet, (1, 3, 32, 32))
    with pytest.raises(ValueError, match="AlexNet"):
        layer_table(alexnet, (1, 3, 32, 32))


def test_shape_error_becomes_value_error_naming_model():
    net = nn.Sequential(nn.Conv2d(3, 8, 11, stride=4))
    with pytest.raises(ValueError, match=r"Sequential could not run .*\(1, 3, 8, 8\)"):
        count_macs(net, (1, 3, 8, 8))


def test_value_reading_forward_falls_back_to_a_real_run():
    class Checks(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            if float(x.abs().max()) > 1e6:  # reads a value: impossible on meta tensors
                raise ValueError("input out of range")
            return self.conv(x)

    model = Checks()
    assert count_macs(model, (3, 8, 8)) == 6 * 6 * 4 * 27
    assert [r["shape"] for r in shape_trace(model, (3, 8, 8))] == [(4, 6, 6)]
    assert macs_by_module(model, (3, 8, 8)) == {"conv": 6 * 6 * 4 * 27}


# --------------------------------------------------------------------------- size arithmetic
@pytest.mark.parametrize(
    ("i", "k", "p", "s", "out"),
    [
        (227, 11, 0, 4, 55),  # AlexNet conv1
        (55, 3, 0, 2, 27),  # AlexNet overlapping max pool
        (32, 5, 0, 1, 28),  # LeNet C1
        (28, 2, 0, 2, 14),  # LeNet S2
        (224, 3, 1, 1, 224),  # VGG 3x3 "same" convolution
        (224, 2, 0, 2, 112),  # VGG 2x2 pooling
        (224, 7, 3, 2, 112),  # ResNet / GoogLeNet conv1
    ],
)
def test_conv_output_size(i, k, p, s, out):
    assert conv_output_size(i, k, p=p, s=s) == out


def test_conv_output_size_rejects_too_small_input():
    with pytest.raises(ValueError, match="does not fit"):
        conv_output_size(4, 5)


def test_lenet_size_chain_32_28_14_10_5_1():
    sizes = [32]
    for k, s in [(5, 1), (2, 2), (5, 1), (2, 2), (5, 1)]:
        sizes.append(conv_output_size(sizes[-1], k, s=s))
    assert sizes == [32, 28, 14, 10, 5, 1]


def test_receptive_fields_of_stacked_3x3():
    assert receptive_field([3, 3]) == 5
    assert receptive_field([(3, 1)] * 3) == 7
    assert receptive_fields([3, 3, 3]) == [3, 5, 7]
    assert receptive_fields([(2, 2), (3, 1)]) == [2, 6]  # a stride-2 layer doubles later growth
    assert receptive_field([]) == 1


def test_receptive_field_of_a_model_chain():
    block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.MaxPool2d(2))
    assert chain_layers(block) == [("0", 3, 1), ("2", 3, 1), ("3", 2, 2)]
    assert receptive_fields(block) == [3, 5, 6]


def test_seven_by_seven_versus_three_3x3():
    c = 256
    assert conv_params(7, c) == 49 * c * c
    assert conv_params(3, c, layers=3) == 27 * c * c
    assert conv_params(3, 3, 64, bias=True) == 1_792  # VGG's first layer, with bias


# --------------------------------------------------------------------------- traces and tables
def test_shape_trace_lenet():
    rows = shape_trace(get_model("lenet5"))
    shapes = [r["shape"] for r in rows]
    assert shapes[:5] == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120, 1, 1)]
    assert shapes[-1] == (10,)
    assert sum(r["params"] for r in rows) == count_params(get_model("lenet5"))


def test_shape_trace_alexnet_227_55_27():
    rows = shape_trace(get_model("alexnet"))
    convs = [r for r in rows if r["type"] == "Conv2d"]
    pools = [r for r in rows if r["type"] == "MaxPool2d"]
    assert convs[0]["shape"] == (96, 55, 55)
    assert pools[0]["shape"] == (96, 27, 27)
    assert pools[-1]["shape"] == (256, 6, 6)


def test_memory_table_vgg16_cs231n_view():
    with torch.device("meta"):  # shapes only: no need to allocate 138 M weights
        model = get_model("vgg16")
    rows = memory_table(model)
    assert rows[0]["layer"] == "input" and rows[0]["activations"] == 3 * 224 * 224
    total_params = sum(r["params"] for r in rows)
    assert total_params == papers.PARAMS["vgg16"].value
    fc_params = sum(r["params"] for r in rows if r["type"] == "Linear")
    assert fc_params / total_params > 0.85  # most parameters live in the FC layers
    biggest = max(rows, key=lambda r: r["memory_bytes"])
    assert biggest["shape"] == (64, 224, 224)  # most memory in the first convolutions
    fc_memory = sum(r["memory_bytes"] for r in rows if r["type"] == "Linear")
    assert fc_memory < 0.001 * sum(r["memory_bytes"] for r in rows)
    assert biggest["memory_bytes"] == 64 * 224 * 224 * 4


def test_layer_table_is_deterministic_text():
    lenet = get_model("lenet5")
    first, second = str(layer_table(lenet)), str(layer_table(lenet))
    assert first == second
    assert f"Total params: {papers.PARAMS['lenet5'].value:,}" in first
    assert "Units." not in first
    assert layer_table(lenet).total_params == papers.PARAMS["lenet5"].value


def test_format_table():
    rows = [{"layer": "conv1", "shape": (64, 112, 112), "params": 9408, "year": 2015},
            {"layer": "fc", "shape": (1000,), "params": 1_025_000, "year": 2015, "x": None}]
    text = format_table(rows, columns=["layer", "shape", "params", "year"], totals=["params"])
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "shape", "params", "year"]
    assert "64 x 112 x 112" in lines[2] and "9,408" in lines[2] and "2015" in lines[2]
    assert lines[-1].split() == ["total", "1,034,408"]
    assert format_table(rows, columns=["x"]).splitlines()[-1].strip() == "-"
    assert "9.41e+03" in format_table(rows, columns=["params"], formats={"params": "{:.3g}"})
    assert format_table([]) == "(empty table)"


# --------------------------------------------------------------------------- the papers' numbers
def test_vgg19_mac_count_is_fast():
    count_macs(nn.Linear(2, 2), (1, 2))  # first call pays for imports
    with torch.device("meta"):
        model = get_model("vgg19")
    start = time.perf_counter()
    macs = count_macs(model)
    assert time.perf_counter() - start < 1.0
    assert macs == pytest.approx(papers.MACS["vgg19"].value, rel=0.01)


def test_torchvision_resnet50_is_4_089_gmacs():
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        model = torchvision.models.resnet50()
    expected = papers.TORCHVISION["resnet50"]["gmacs"] * 1e9
    assert count_macs(model) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_resnet_macs_match_table1(name):
    with torch.device("meta"):
        model = get_model(name)
    assert count_macs(model) == pytest.approx(papers.MACS[name].value, rel=0.03)


def test_resnet50_stride_in_3x3_matches_torchvision():
    with torch.device("meta"):
        model = get_model("resnet50", stride_in_3x3=True)
    expected = papers.TORCHVISION["resnet50"]["gmacs"] * 1e9
    assert count_macs(model) == pytest.approx(expected, rel=1e-3)


def _inception_macs_from_widths(row: papers.InceptionRow, in_channels: int) -> int:
    """MACs of a dimension-reduced inception module from its Table 1 widths."""
    h, w, _ = row.output
    per_pixel = (
        in_channels * row.n1x1
        + in_channels * row.n3x3_reduce + row.n3x3_reduce * 9 * row.n3x3
        + in_channels * row.n5x5_reduce + row.n5x5_reduce * 25 * row.n5x5
        + in_channels * row.pool_proj
    )
    return h * w * per_pixel


def test_googlenet_macs_and_inception_modules_match_table1():
    model = get_model("googlenet")
    total = count_macs(model)
    assert total == pytest.approx(papers.MACS["googlenet"].value, rel=0.06)  # "about 1.5 G"
    per_module = macs_by_module(model)
    assert sum(per_module.values()) == total

    in_channels = None
    for row in papers.GOOGLENET_TABLE1:
        if row.type == "inception":
            computed = per_module[row.name]
            # Our module does exactly what its Table 1 widths say ...
            assert computed == _inception_macs_from_widths(row, in_channels), row.name
            paper = row.ops_m * 1e6
            if row.name == "inception5a":
                # ... and the paper's 54M for 5a is the documented exception (51M computed).
                assert row.ops_m == 54
                assert computed == pytest.approx(51.08e6, rel=1e-3)
                assert abs(computed / paper - 1) > 0.05
            else:
                assert computed == pytest.approx(paper, rel=0.02), row.name
        in_channels = row.output[2]


def test_googlenet_aux_heads_do_not_change_inference_macs():
    plain = get_model("googlenet")
    with_aux = get_model("googlenet", aux_logits=True).train()
    assert count_macs(with_aux) == count_macs(plain)  # counted in eval mode: logits only
    assert with_aux.training


def test_module_table_regenerates_googlenet_table1():
    rows = module_table(get_model("googlenet"))
    by_name = {r["layer"]: r for r in rows}
    for paper_row in papers.GOOGLENET_TABLE1:
        if paper_row.type == "inception":
            ours = by_name[paper_row.name]
            h, w, c = paper_row.output
            assert ours["shape"] == (c, h, w), paper_row.name
            assert ours["macs"] == pytest.approx(paper_row.ops_m * 1e6, rel=0.06), paper_row.name
    assert sum(r["params"] for r in rows) == papers.PARAMS["googlenet"].value
    assert sum(r["macs"] for r in rows) == count_macs(get_model("googlenet"))
    assert [r["layer"] for r in rows][:2] == ["conv1", "maxpool1"]


def test_module_table_gives_each_module_its_input_shape_too():
    """DenseNet-121, dense block 1: layer i sees c0 + i*k channels and adds k (Huang et al.,
    Section 3: c0 = 64 after the stem, growth rate k = 32), all at 56x56."""
    rows = [r for r in module_table(get_model("densenet121"), depth=3)
            if r["layer"].startswith("features.denseblock1.")]
    assert len(rows) == 6
    for i, row in enumerate(rows):
        assert row["in_shape"] == (64 + 32 * i, 56, 56), row["layer"]
        assert row["shape"] == (32, 56, 56), row["layer"]
    stages = {r["layer"]: r for r in module_table(get_model("resnet18"))}
    assert stages["layer2"]["in_shape"] == (64, 56, 56) and stages["layer2"]["shape"] == (128, 28, 28)
