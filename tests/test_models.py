"""course_utils.models: the papers' shapes, torchvision equivalence, clear input errors
(the parameter counts of papers.PARAMS are checked against every model in test_papers.py).

Most tests build models on the meta device: shapes and parameter counts without
allocating or computing anything, so the whole file stays cheap on a busy CPU.
"""

from __future__ import annotations

import re

import pytest
import torch
import torchvision
from fake_weights import random_state_dict
from torch import nn

from course_utils import papers
from course_utils.models import Inception, NaiveInception, cifar_resnet, get_model, list_models

# Variants that add no parameters of their own: their count is the default model's
# (papers.PARAMS). Every other count, variants included, is checked in test_papers.py.
NO_NEW_PARAMETERS = [
    ("alexnet", {"lrn": False}),  # LRN has no parameters
    ("vgg11", {"lrn": True}),  # config A-LRN
    ("resnet50", {"stride_in_3x3": True}),  # where the stride goes
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread. The inputs here are tiny, and on a small busy CPU two threads
    waiting for each other at every operator made this file 10x slower, not faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def on_meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return get_model(name, **kwargs)


def meta_batch(model: nn.Module, size: int | None = None, channels: int | None = None):
    c, h, _ = model.input_size
    size = size or h
    return torch.empty(2, channels or c, size, size, device="meta")


def output_sizes(model: nn.Module, modules: dict[str, nn.Module], x: torch.Tensor) -> dict:
    """Run ``model`` on ``x`` and return each listed module's output shape (minus N)."""
    sizes = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, key=key: sizes.__setitem__(key, out.shape[1:]))
        for key, m in modules.items()
    ]
    model(x)
    for h in hooks:
        h.remove()
    return {key: tuple(s) for key, s in sizes.items()}


# ---------------------------------------------------------------- registry


def test_every_registered_model_has_a_target_parameter_count():
    assert set(list_models()) <= set(papers.PARAMS)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown model 'resnet51'") as err:
        get_model("resnet51")
    for name in ("lenet5", "vgg16_bn", "googlenet", "resnet50", "densenet121"):
        assert name in str(err.value)


def test_option_errors_are_clear():
    with pytest.raises(ValueError, match="activation"):
        get_model("lenet5", activation="sigmoid")
    with pytest.raises(ValueError, match="groups"):
        on_meta("alexnet", groups=4)
    with pytest.raises(ValueError, match="'C' or 'D'"):
        on_meta("vgg16", config="E")
    with pytest.raises(ValueError, match="6n"):
        cifar_resnet(21)


# ---------------------------------------------------------------- parameter counts


@pytest.fixture(scope="module")
def meta_models():
    """Every registered model with its default arguments, on the meta device."""
    return {name: on_meta(name) for name in list_models()}


@pytest.mark.parametrize(("name", "kwargs"), NO_NEW_PARAMETERS)
def test_variant_without_parameters_of_its_own(name, kwargs):
    assert count_params(on_meta(name, **kwargs)) == papers.PARAMS[name].value


# ---------------------------------------------------------------- shapes


@pytest.fixture(scope="module")
def small_io_models():
    """Every model with 7 classes and 1 input channel, on the meta device."""
    return {name: on_meta(name, num_classes=7, in_channels=1) for name in list_models()}


@pytest.mark.parametrize("name", list_models())
def test_forward_shape_with_num_classes_and_in_channels(small_io_models, name):
    model = small_io_models[name]
    assert model.input_size[0] == model.in_channels == 1
    assert model(meta_batch(model)).shape == (2, 7)


# One model per design: the deeper siblings share the code (and take longer on meta).
@pytest.mark.parametrize(
    "name",
    ["basic_cnn", "lenet5", "alexnet", "vgg11", "googlenet", "resnet18", "resnet50", "resnet20"]
    + ["densenet121"],
)
def test_min_input_size_works(small_io_models, name):
    model = small_io_models[name]
    assert model(meta_batch(model, size=model.min_input_size)).shape == (2, 7)


@pytest.mark.parametrize(
    ("name", "input_size"),
    [
        ("basic_cnn", (1, 28, 28)),
        ("lenet5", (1, 32, 32)),
        ("alexnet", (3, 227, 227)),
        ("vgg16", (3, 224, 224)),
        ("googlenet", (3, 224, 224)),
        ("resnet50", (3, 224, 224)),
        ("resnet56", (3, 32, 32)),
        ("densenet121", (3, 224, 224)),
    ],
)
def test_native_input_size(meta_models, name, input_size):
    assert meta_models[name].input_size == input_size


def test_lenet_shapes_follow_the_paper():
    model = on_meta("lenet5")
    f = model.features
    sizes = output_sizes(
        model, {"C1": f.c1, "S2": f.s2, "C3": f.c3, "S4": f.s4, "C5": f.c5}, meta_batch(model)
    )
    assert sizes == {
        "C1": (6, 28, 28),
        "S2": (6, 14, 14),
        "C3": (16, 10, 10),
        "S4": (16, 5, 5),
        "C5": (120, 1, 1),
    }
    assert model.classifier.f6.out_features == 84


@pytest.mark.parametrize(("activation", "pooling"), [("relu", "max"), ("tanh", "max")])
def test_lenet_variants(activation, pooling):
    model = get_model("lenet5", activation=activation, pooling=pooling)
    assert isinstance(model.features.c1_act, nn.ReLU if activation == "relu" else nn.Tanh)
    assert isinstance(model.features.s2, nn.MaxPool2d)
    assert model(torch.randn(3, 1, 32, 32)).shape == (3, 10)


def test_lenet_c3_connection_table():
    model = get_model("lenet5", c3_table=True)
    x = torch.randn(2, 1, 32, 32)
    assert model(x).shape == (2, 10)
    assert count_params(model.features.c3) == papers.LENET5_LAYER_PARAMS["C3"].value
    # Table I: C3 map 0 sees S2 maps 0, 1, 2 only; changing map 3 must not change it.
    s2 = torch.randn(1, 6, 14, 14)
    changed = s2.clone()
    changed[:, 3] += 1.0
    c3 = model.features.c3
    assert torch.equal(c3(s2)[:, 0], c3(changed)[:, 0])
    assert not torch.equal(c3(s2)[:, 1], c3(changed)[:, 1])


def test_basic_cnn_shapes():
    model = on_meta("basic_cnn")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    modules = {"conv1": convs[0], "conv2": convs[1], "pool1": pools[0], "conv3": convs[2]}
    sizes = output_sizes(model, modules | {"pool2": pools[1]}, meta_batch(model))
    assert [s[-1] for s in sizes.values()] == [24, 20, 10, 6, 3]


def test_alexnet_shapes_227_55_27():
    model = on_meta("alexnet")
    f = model.features
    sizes = output_sizes(
        model, {"conv1": f.conv1, "pool1": f.pool1, "pool5": f.pool5}, meta_batch(model)
    )
    assert sizes == {"conv1": (96, 55, 55), "pool1": (96, 27, 27), "pool5": (256, 6, 6)}


def test_alexnet_groups_split_conv2_conv4_conv5_only():
    model = on_meta("alexnet", groups=2)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    assert convs[1].weight.shape == (256, 48, 5, 5)  # each GPU's 128 kernels see 48 maps
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.features) == 2
    plain = on_meta("alexnet", lrn=False)
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in plain.features)


def test_alexnet_tanh_variant():
    model = on_meta("alexnet", activation="tanh")
    assert count_params(model) == papers.PARAMS["alexnet"].value
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 7  # conv1-5, fc6, fc7


def test_alexnet_paper_init():
    model = get_model("alexnet", paper_init=True)
    f, c = model.features, model.classifier
    layers = {"conv1": f.conv1, "conv2": f.conv2, "conv3": f.conv3, "fc6": c.fc6, "fc8": c.fc8}
    assert {name: layer.bias.mean().item() for name, layer in layers.items()} == {
        "conv1": 0.0,
        "conv2": 1.0,
        "conv3": 0.0,
        "fc6": 1.0,
        "fc8": 0.0,
    }
    assert f.conv3.weight.std().item() == pytest.approx(0.01, rel=0.05)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 67, 67)).shape == (2, 1000)


def test_vgg_config_c_and_a_lrn():
    kernels = [
        m.kernel_size[0] for m in on_meta("vgg16", config="C").features if isinstance(m, nn.Conv2d)
    ]
    assert kernels == [3] * 6 + [1] + [3, 3, 1] + [3, 3, 1]
    a_lrn = on_meta("vgg11", lrn=True)
    assert a_lrn.config == "A-LRN" and isinstance(a_lrn.features[2], nn.LocalResponseNorm)


def test_lrn_constants_of_each_model():
    """AlexNet's Section 3.3 constants (k=2, n=5, alpha=1e-4, beta=0.75; PyTorch's alpha is n
    times the paper's), also VGG's A-LRN; GoogLeNet's are Caffe's bvlc_googlenet (k=1)."""

    def constants(lrn: nn.LocalResponseNorm) -> tuple:
        return lrn.size, lrn.alpha, lrn.beta, lrn.k

    assert constants(on_meta("alexnet").features.norm1) == (5, 5e-4, 0.75, 2.0)
    assert constants(on_meta("vgg11", lrn=True).features[2]) == (5, 5e-4, 0.75, 2.0)
    assert constants(on_meta("googlenet").lrn1) == (5, 1e-4, 0.75, 1.0)


# Table 1 of Szegedy et al., "output size" column, up to the average pooling (papers.py
# writes H x W x C as the paper does; PyTorch's order is C x H x W).
GOOGLENET_OUTPUTS = {
    row.name: (row.output[2], row.output[0], row.output[1])
    for row in papers.GOOGLENET_TABLE1
    if row.type in ("convolution", "max pool", "inception", "avg pool")
}


def test_googlenet_follows_table_1():
    model = on_meta("googlenet")
    modules = {name: getattr(model, name) for name in GOOGLENET_OUTPUTS}
    assert output_sizes(model, modules, meta_batch(model)) == GOOGLENET_OUTPUTS
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.modules()) == 2
    assert model.dropout.p == 0.4


def test_googlenet_aux_outputs_in_training_only():
    model = on_meta("googlenet", aux_logits=True, num_classes=10)
    x = meta_batch(model)
    out = model.train()(x)
    assert isinstance(out, tuple) and [o.shape for o in out] == [(2, 10)] * 3
    assert model.eval()(x).shape == (2, 10)
    assert on_meta("googlenet").train()(x).shape == (2, 1000)  # aux_logits off
    aux = model.aux1
    assert (aux.pool.kernel_size, aux.pool.stride, aux.conv.conv.out_channels) == (5, 3, 128)
    assert (aux.fc1.out_features, aux.dropout.p) == (1024, 0.7)


def test_googlenet_training_step_reaches_the_aux_heads():
    torch.manual_seed(0)
    model = get_model("googlenet", aux_logits=True, num_classes=10)
    x, y = torch.randn(2, 3, 96, 96), torch.tensor([1, 2])
    logits, aux1, aux2 = model.train()(x)
    loss = nn.functional.cross_entropy(logits, y)
    loss = loss + 0.3 * sum(nn.functional.cross_entropy(a, y) for a in (aux1, aux2))
    loss.backward()
    aux_convs = [model.aux1.conv.conv, model.aux2.conv.conv]
    for conv in [*aux_convs, model.inception3a.branch1x1.conv]:
        assert torch.isfinite(conv.weight.grad).all() and conv.weight.grad.abs().sum() > 0


def test_naive_inception_keeps_the_input_channels():
    naive = NaiveInception(192, 64, 128, 32)
    reduced = Inception(192, 64, 96, 128, 16, 32, 32)
    x = torch.randn(1, 192, 28, 28)
    assert naive(x).shape == (1, 64 + 128 + 32 + 192, 28, 28)
    assert reduced(x).shape == (1, 256, 28, 28)
    assert count_params(reduced) < count_params(naive) / 2


def test_resnet_stride_position():
    # What each placement costs (Table 1's multiply-adds, torchvision's) is test_analysis.py's.
    paper, v15 = on_meta("resnet50"), on_meta("resnet50", stride_in_3x3=True)
    first = paper.layer2[0]
    assert (first.conv1.stride, first.conv2.stride) == ((2, 2), (1, 1))
    first = v15.layer2[0]
    assert (first.conv1.stride, first.conv2.stride) == ((1, 1), (2, 2))
    # A basic block has only 3x3 convolutions: the option changes nothing there.
    assert on_meta("resnet18", stride_in_3x3=True).layer2[0].conv1.stride == (2, 2)


def test_cifar_resnets_and_plain_nets():
    residual, plain = get_model("resnet20"), get_model("plain20")
    assert len([m for m in residual.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]) == 20
    assert all(
        block.downsample is None for layer in (plain.layer1, plain.layer2) for block in layer
    )
    x = torch.randn(2, 3, 32, 32)
    assert residual(x).shape == plain(x).shape == (2, 10)
    assert get_model("resnet20", shortcut="B")(x).shape == (2, 10)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", list_models())
def test_wrong_channel_count_is_a_clear_error(meta_models, name):
    model = meta_models[name]
    x = meta_batch(model, channels=model.in_channels + 2)
    with pytest.raises(ValueError) as err:
        model(x)
    message = str(err.value)
    assert type(model).__name__ in message
    assert f"{model.in_channels} input channel" in message
    assert str(tuple(x.shape)) in message
    assert "load_data(" in message


@pytest.mark.parametrize("name", list_models())
def test_too_small_image_is_a_clear_error(meta_models, name):
    model = meta_models[name]
    small = model.min_input_size - 1
    x = meta_batch(model, size=small)
    with pytest.raises(ValueError) as err:
        model(x)
    message = str(err.value)
    assert type(model).__name__ in message
    assert str(tuple(x.shape)) in message
    assert f"load_data(..., image_size={model.input_size[1]})" in message


def test_alexnet_on_cifar_sized_images_says_what_it_needs():
    model = on_meta("alexnet")
    message = (
        "AlexNet needs images of at least 67x67 (native input 3x227x227), got shape (8, 3, 32, 32)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        model(torch.empty(8, 3, 32, 32, device="meta"))


def test_fixed_size_models_reject_larger_images_too():
    for name, wrong in [("lenet5", 28), ("lenet5", 36), ("basic_cnn", 32)]:
        model = on_meta(name)
        with pytest.raises(ValueError, match="expects exactly"):
            model(meta_batch(model, size=wrong))


def test_googlenet_aux_heads_need_larger_images_in_training():
    model = on_meta("googlenet", aux_logits=True)
    assert model.min_input_size == 79
    model.train()(meta_batch(model, size=79))
    with pytest.raises(ValueError, match="at least 79x79"):
        model(meta_batch(model, size=78))
    assert on_meta("googlenet")(meta_batch(model, size=32)).shape == (2, 1000)


def test_not_a_batch_of_images():
    model = get_model("lenet5")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        model(torch.randn(1, 32, 32))


def test_the_check_leaves_tracing_and_torchinfo_alone():
    import torchinfo

    model = get_model("lenet5").eval()
    x = torch.randn(2, 1, 32, 32)
    traced = torch.fx.symbolic_trace(model)
    assert torch.equal(traced(x), model(x))
    summary = torchinfo.summary(model, input_size=(1, 1, 32, 32), verbose=0)
    assert summary.total_params == papers.PARAMS["lenet5"].value


# ---------------------------------------------------------------- torchvision equivalence
#
# Where our architecture equals torchvision's, its state dict must load into ours
# (strict: same names, same shapes) and give the same outputs. The weights are random
# values of our own rather than torchvision's initialisation: its constructor would draw
# 120M classifier weights for each VGG (seconds on a busy CPU), while one shared draw
# tests the same thing; and the batch-norm statistics must be random too, otherwise every
# BN is the identity and swapping two of them would go unnoticed. Outputs are compared in
# eval mode (running statistics), on one small image.


def relative_difference(name: str, size: int, shared: dict, **kwargs) -> float:
    """Load torchvision's ``name`` and ours with the same random weights; return the max
    abs difference of their outputs on one random image, relative to the output's scale
    (deep random nets can produce large logits)."""
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)(weights=None)
        ours = get_model(name, **kwargs)
    state = random_state_dict(theirs, shared)
    theirs.load_state_dict(state, assign=True)
    ours.load_state_dict(state, assign=True)  # strict: every name and shape must match
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = theirs.eval()(x), ours.eval()(x)
    scale = max(1.0, expected.abs().max().item())
    return (got - expected).abs().max().item() / scale


@pytest.mark.parametrize(
    "name",
    ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"],
)
def test_vgg_equals_torchvision(name, shared_weights):
    assert relative_difference(name, 32, shared_weights) < 1e-5


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_resnet_with_stride_in_3x3_equals_torchvision(name, shared_weights):
    # 32x32 leaves 8x8 maps in layer1 and 1x1 in layer4: every block still computes.
    assert relative_difference(name, 32, shared_weights, stride_in_3x3=True) < 1e-5


def test_resnet_paper_stride_differs_from_torchvision(shared_weights):
    # Same weights load (same names and shapes), but the computation is different.
    assert relative_difference("resnet50", 32, shared_weights) > 1e-3


def test_densenet121_equals_torchvision(shared_weights):
    assert relative_difference("densenet121", 32, shared_weights) < 1e-5


@pytest.mark.parametrize("name", ["densenet169", "densenet201"])
def test_densenet_state_dict_matches_torchvision(name):
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)(weights=None)
        ours = get_model(name)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
