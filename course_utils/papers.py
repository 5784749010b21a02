"""Published numbers, each with the paper and table it comes from.

Notebooks and tests read every published figure from here, so that a number is typed once
and always travels with its source. Only figures checked against the papers are listed; where
the lecture quotes a number differently from the paper, both are recorded (``LECTURE``) with
a note that explains the difference.

Tables (plain data): ``SOURCES`` (key -> citation), ``ARCHITECTURES``, ``PARAMS`` (the exact
counts our models reproduce, keyed by registry name or name_variant; a model built as
torchvision builds it takes its count from ``TORCHVISION``), ``PAPER_PARAMS`` (as the papers
print them: "60 million"), ``LENET5_LAYER_PARAMS``, ``MACS`` (per image; ResNet Table 1
"FLOPs" are multiply-adds), ``GOOGLENET_TABLE1``, ``IMAGENET_ERRORS``, ``ILSVRC_WINNERS``,
``CIFAR10_ERRORS``, ``MNIST_ERRORS``, ``ALEXNET_LAYER_NEURONS``, ``LENET5_PAPER_LR``,
``TORCHVISION`` (one protocol for all models: use it for charts), ``LECTURE``,
``CS231N_VGG16``, ``COMPARISON_MODELS``.
Helpers: :func:`errors_for`, :func:`summary_rows`.

Conventions: error rates in percent; parameters and MACs as plain numbers (not millions).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# --------------------------------------------------------------------------- sources
SOURCES: dict[str, str] = {
    "lecun1998": "LeCun, Bottou, Bengio, Haffner, 'Gradient-Based Learning Applied to Document "
                 "Recognition', Proc. IEEE 86(11), 1998",
    "krizhevsky2012": "Krizhevsky, Sutskever, Hinton, 'ImageNet Classification with Deep "
                      "Convolutional Neural Networks', NIPS 2012",
    "simonyan2015": "Simonyan, Zisserman, 'Very Deep Convolutional Networks for Large-Scale "
                    "Image Recognition', ICLR 2015 (arXiv:1409.1556)",
    "szegedy2015": "Szegedy et al., 'Going Deeper with Convolutions', CVPR 2015 "
                   "(arXiv:1409.4842, 2014)",
    "he2016": "He, Zhang, Ren, Sun, 'Deep Residual Learning for Image Recognition', CVPR 2016 "
              "(arXiv:1512.03385, 2015)",
    "huang2017": "Huang, Liu, van der Maaten, Weinberger, 'Densely Connected Convolutional "
                 "Networks', CVPR 2017 (arXiv:1608.06993, 2016)",
    "russakovsky2015": "Russakovsky et al., 'ImageNet Large Scale Visual Recognition "
                       "Challenge', IJCV 2015",
    "torchvision": "torchvision model weights metadata (IMAGENET1K_V1: acc@1, acc@5, GFLOPS), "
                   "https://pytorch.org/vision/stable/models.html",
    "cs231n": "Stanford CS231n, Lecture 9 'CNN Architectures' (2017 slides, VGGNet) and the "
              "course notes 'Convolutional Neural Networks' (case study VGGNet)",
    "lecture": "Week 5 lecture 'Advanced CNN Architectures' (Korean slides, sections 5.1-5.7)",
    "design": "course targets (the parameter counts every course model reproduces, "
              "checked by the course's tests)",
}


@dataclass(frozen=True)
class Published:
    """One published number and where it was printed."""

    value: float
    source: str
    note: str = ""


@dataclass(frozen=True)
class Architecture:
    name: str  # as the paper / lecture writes it
    year: int  # year of the paper (or of the ILSVRC entry)
    depth: int  # layers with weights (conv + fully connected), the lecture's definition
    paper: str  # key into SOURCES
    ilsvrc: str = ""  # e.g. "1st 2012"
    note: str = ""


@dataclass(frozen=True)
class ErrorRate:
    """A top-1 / top-5 error (percent) with its evaluation protocol and source."""

    model: str  # registry name where one exists ("alexnet", "vgg16", ...), else paper's name
    top1: float | None
    top5: float | None
    split: str  # "val" or "test" (ILSVRC-2012 unless stated in `setting`)
    setting: str  # e.g. "1 model, 10 crops", "ensemble of 7"
    source: str
    single_model: bool = True


@dataclass(frozen=True)
class InceptionRow:
    """One row of GoogLeNet's Table 1, exactly as printed (params in K, ops in M)."""

    name: str  # "conv1", "maxpool1", "inception3a", ... (registry-style names)
    type: str  # "convolution", "max pool", "inception", "avg pool", "dropout", "linear"
    patch: str  # "7x7/2" or ""
    output: tuple[int, int, int]  # (H, W, C) as the paper writes it
    depth: int
    n1x1: int | None = None
    n3x3_reduce: int | None = None
    n3x3: int | None = None
    n5x5_reduce: int | None = None
    n5x5: int | None = None
    pool_proj: int | None = None
    params_k: float | None = None
    ops_m: float | None = None


_SHORT = {  # SOURCES key -> the short name that starts every source string
    "lecun1998": "LeCun et al. 1998", "krizhevsky2012": "Krizhevsky et al. 2012",
    "simonyan2015": "Simonyan & Zisserman 2015 (VGG)",
    "szegedy2015": "Szegedy et al. 2015 (GoogLeNet)", "he2016": "He et al. 2016 (ResNet)",
    "huang2017": "Huang et al. 2017 (DenseNet)", "russakovsky2015": "Russakovsky et al. 2015",
    "torchvision": "torchvision weights metadata", "cs231n": "CS231n", "lecture": "Lecture",
    "design": "course targets",
}


def _src(key: str, where: str) -> str:
    """'Author year, Table N' style source string built from SOURCES keys."""
    return f"{_SHORT[key]}, {where}" if where else _SHORT[key]


# --------------------------------------------------------------------------- architectures
# (key, name, year, depth, paper[, ilsvrc, note]). depth counts the layers with weights, the
# lecture's convention (convolutions + fully connected, no pooling, no projection shortcuts);
# LeCun et al. 1998 (Sec. II-B) count LeNet-5 as 7 layers, S2 and S4 included.
ARCHITECTURES: dict[str, Architecture] = {key: Architecture(*row) for key, *row in [
    ("lenet5", "LeNet-5", 1998, 5, "lecun1998", "", "3 conv + 2 fully connected"),
    ("alexnet", "AlexNet", 2012, 8, "krizhevsky2012", "1st 2012", "5 conv + 3 fully connected"),
    ("vgg11", "VGG-11 (A)", 2014, 11, "simonyan2015", "", "8 conv + 3 FC"),
    ("vgg13", "VGG-13 (B)", 2014, 13, "simonyan2015", "", "10 conv + 3 FC"),
    ("vgg16", "VGG-16 (D)", 2014, 16, "simonyan2015", "2nd 2014", "13 conv + 3 fully connected"),
    ("vgg19", "VGG-19 (E)", 2014, 19, "simonyan2015", "2nd 2014", "16 conv + 3 fully connected"),
    ("googlenet", "GoogLeNet", 2014, 22, "szegedy2015", "1st 2014",
     "22 layers with parameters (27 counting pooling), Sec. 5"),
    ("resnet18", "ResNet-18", 2015, 18, "he2016"), ("resnet34", "ResNet-34", 2015, 34, "he2016"),
    ("resnet50", "ResNet-50", 2015, 50, "he2016"), ("resnet101", "ResNet-101", 2015, 101, "he2016"),
    ("resnet152", "ResNet-152", 2015, 152, "he2016", "1st 2015",
     "the ILSVRC 2015 ensemble used ResNets"),
    ("densenet121", "DenseNet-121", 2017, 121, "huang2017"),
    ("densenet169", "DenseNet-169", 2017, 169, "huang2017"),
    ("densenet201", "DenseNet-201", 2017, 201, "huang2017"),
    ("densenet264", "DenseNet-264", 2017, 264, "huang2017"),
]}

# The seven architectures of the closing comparison (notebook 07).
COMPARISON_MODELS: tuple[str, ...] = (
    "lenet5", "alexnet", "vgg16", "vgg19", "googlenet", "resnet50", "densenet121",
)

# --------------------------------------------------------------------------- torchvision
# torchvision's single-crop (224, resize 256) ImageNet-1K validation accuracy of its own
# implementations, and its "GFLOPS" column, which counts multiply-adds (= our count_macs).
TORCHVISION: dict[str, dict[str, float]] = {
    "alexnet": {"acc1": 56.522, "acc5": 79.066, "gmacs": 0.714, "params": 61_100_840},
    "vgg11": {"acc1": 69.020, "acc5": 88.628, "gmacs": 7.609, "params": 132_863_336},
    "vgg13": {"acc1": 69.928, "acc5": 89.246, "gmacs": 11.308, "params": 133_047_848},
    "vgg16": {"acc1": 71.592, "acc5": 90.382, "gmacs": 15.470, "params": 138_357_544},
    "vgg19": {"acc1": 72.376, "acc5": 90.876, "gmacs": 19.632, "params": 143_667_240},
    "vgg11_bn": {"acc1": 70.370, "acc5": 89.810, "gmacs": 7.609, "params": 132_868_840},
    "vgg13_bn": {"acc1": 71.586, "acc5": 90.374, "gmacs": 11.308, "params": 133_053_736},
    "vgg16_bn": {"acc1": 73.360, "acc5": 91.516, "gmacs": 15.470, "params": 138_365_992},
    "vgg19_bn": {"acc1": 74.218, "acc5": 91.842, "gmacs": 19.632, "params": 143_678_248},
    "googlenet": {"acc1": 69.778, "acc5": 89.530, "gmacs": 1.498, "params": 6_624_904},
    "resnet18": {"acc1": 69.758, "acc5": 89.078, "gmacs": 1.814, "params": 11_689_512},
    "resnet34": {"acc1": 73.314, "acc5": 91.420, "gmacs": 3.664, "params": 21_797_672},
    "resnet50": {"acc1": 76.130, "acc5": 92.862, "gmacs": 4.089, "params": 25_557_032},
    "resnet101": {"acc1": 77.374, "acc5": 93.546, "gmacs": 7.801, "params": 44_549_160},
    "resnet152": {"acc1": 78.312, "acc5": 94.046, "gmacs": 11.514, "params": 60_192_808},
    "densenet121": {"acc1": 74.434, "acc5": 91.972, "gmacs": 2.834, "params": 7_978_856},
    "densenet169": {"acc1": 75.600, "acc5": 92.806, "gmacs": 3.360, "params": 14_149_480},
    "densenet201": {"acc1": 76.896, "acc5": 93.370, "gmacs": 4.291, "params": 20_013_928},
}
TORCHVISION_SOURCE = _src("torchvision", "IMAGENET1K_V1")
TORCHVISION_NOTES: dict[str, str] = {
    "alexnet": "torchvision's AlexNet follows the 'one weird trick' variant (64-192-384-256-256 "
    "filters, 224 input), not the 2012 paper's layer sizes",
    "googlenet": "torchvision's GoogLeNet has batch norm and 3x3 convs in the '5x5' branch",
    "resnet50": "stride in the 3x3 conv of each bottleneck ('v1.5'); the paper's placement "
    "gives 3.8 G",
}

# --------------------------------------------------------------------------- parameters
_D = _src("design", "")
# The CIFAR-10 ResNets of He et al. (Sec. 4.2) by depth, at 10 classes with option A shortcuts.
_CIFAR_RESNETS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}


def _torchvision(model: str, note: str = "= torchvision") -> tuple[str, float, str]:
    """A PARAMS row for a model built as torchvision builds it: its count is TORCHVISION's."""
    return model, TORCHVISION[model]["params"], note


PARAMS: dict[str, Published] = {key: Published(value, _D, note) for key, value, note in [
    ("basic_cnn", 123_222, "the course's first MNIST CNN, before LeNet-5"),
    ("lenet5", 61_706, "C3 fully connected to S2 and a linear output layer; the paper's partial "
     "C3 table and RBF output give 60,000 trainable parameters (LENET5_LAYER_PARAMS)"),
    ("lenet5_c3_table", 60_806, "c3_table=True: C3 connected as the paper's Table I says "
     "(LENET5_LAYER_PARAMS['C3'] weights instead of 2,416)"),
    ("alexnet", 62_378_344, "one tower, 227x227 input, layer sizes of Krizhevsky 2012"),
    ("alexnet_groups2", 60_965_224, "the paper's two-GPU split (groups=2 in conv2, conv4, conv5)"),
    *map(_torchvision, ["vgg11", "vgg13", "vgg16", "vgg19",
                        "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]),
    ("vgg16_c", 133_638_952, "config C: the last convolution of stages 3 to 5 is 1x1, not 3x3"),
    ("googlenet", 6_998_552, "Table 1 widths, no batch norm, auxiliary heads off"),
    ("googlenet_aux", 13_378_280, "with the two auxiliary classifiers: the lecture's '13M'"),
    *map(_torchvision, ["resnet18", "resnet34"]),
    _torchvision("resnet50", "= torchvision (stride placement does not change it)"),
    *map(_torchvision, ["resnet101", "resnet152"]),
    *[(f"resnet{depth}", count, "option A shortcuts; He et al. Table 6 prints it rounded "
       "(CIFAR10_ERRORS)") for depth, count in _CIFAR_RESNETS.items()],
    ("resnet20_b", 272_474, "shortcut='B': a 1x1 conv + BN projection where a stage halves the "
     "size and doubles the channels"),
    # The plain nets: option A shortcuts have no parameters, so removing them changes nothing.
    *[(f"plain{depth}", _CIFAR_RESNETS[depth], f"= resnet{depth} without its shortcuts")
      for depth in (20, 32, 44, 56)],
    *map(_torchvision, ["densenet121", "densenet169", "densenet201"]),
    ("densenet264", 33_337_704, "torchvision's construction with blocks (6, 12, 64, 48)"),
]}

# Trainable parameters per layer as LeNet-5's paper lists them (Sec. II-B). They add up to
# exactly 60,000; the output layer's RBF parameter vectors were fixed, not learned.
LENET5_LAYER_PARAMS: dict[str, Published] = {
    name: Published(value, _src("lecun1998", "Sec. II-B"), note) for name, value, note in [
        ("C1", 156, "6 maps of 5x5 weights + bias"),
        ("S2", 12, "one coefficient and one bias per map"),
        ("C3", 1_516, "partial connection table (Table I)"),
        ("S4", 32, "one coefficient and one bias per map"),
        ("C5", 48_120, "120 maps fully connected to S4's 16 maps"),
        ("F6", 10_164, "84 units"),
    ]}

# Krizhevsky et al. 2012, Sec. 3.5: "the number of neurons in the network's remaining layers is
# given by 253,440-186,624-64,896-64,896-43,264-4096-4096-1000" (conv1 ... conv5, fc6 ... fc8).
ALEXNET_LAYER_NEURONS: dict[str, Published] = {
    layer: Published(count, _src("krizhevsky2012", "Sec. 3.5 (neurons per layer)"))
    for layer, count in zip(("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"),
                            (253_440, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000),
                            strict=True)}

PAPER_PARAMS: dict[str, Published] = {
    "lenet5": Published(60_000, _src("lecun1998", "Sec. II-B (sum of the per-layer counts)"),
                        "the lecture says about 60 thousand"),
    "alexnet": Published(60_000_000, _src("krizhevsky2012", "abstract ('60 million parameters')")),
    "vgg11": Published(133_000_000, _src("simonyan2015", "Table 2 (A, A-LRN: 133 M)")),
    "vgg11_lrn": Published(133_000_000, _src("simonyan2015", "Table 2 (A-LRN: 133 M)")),
    "vgg13": Published(133_000_000, _src("simonyan2015", "Table 2 (B: 133 M)")),
    "vgg16_c": Published(134_000_000, _src("simonyan2015", "Table 2 (C, with 1x1 convs: 134 M)")),
    "vgg16": Published(138_000_000, _src("simonyan2015", "Table 2 (D: 138 M)")),
    "vgg19": Published(144_000_000, _src("simonyan2015", "Table 2 (E: 144 M)")),
}

# --------------------------------------------------------------------------- MACs
_RESNET_T1 = _src("he2016", "Table 1 (FLOPs = multiply-adds, Sec. 3.3)")
MACS: dict[str, Published] = {
    "resnet18": Published(1.8e9, _RESNET_T1),
    "resnet34": Published(3.6e9, _RESNET_T1),
    "resnet50": Published(3.8e9, _RESNET_T1, "stride 2 in the first 1x1 conv of a bottleneck; "
                          "torchvision's stride in the 3x3 gives 4.09 G (TORCHVISION)"),
    "resnet101": Published(7.6e9, _RESNET_T1),
    "resnet152": Published(11.3e9, _RESNET_T1),
    "plain34": Published(3.6e9, _src("he2016", "Sec. 3.3 (the 34-layer plain baseline)")),
    "vgg16": Published(15.3e9, _src("he2016", "Sec. 4.1 (VGG-16/19: 15.3/19.6 billion FLOPs)")),
    "vgg19": Published(19.6e9, _src("he2016", "Sec. 3.3 (VGG-19: 19.6 billion FLOPs)")),
    "googlenet": Published(
        1.5e9, _src("szegedy2015", "Sec. 1 (a budget of 1.5 billion multiply-adds)"),
        "a design budget, not a measurement; Table 1's ops column adds up to about 1.5 G"),
}

# --------------------------------------------------------------------------- GoogLeNet
def _inception(name: str, output: tuple[int, int, int], *columns: float) -> InceptionRow:
    """An inception row (depth 2): #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj,
    params (K), ops (M)."""
    return InceptionRow(name, "inception", "", output, 2, *columns)


GOOGLENET_TABLE1: list[InceptionRow] = [
    InceptionRow("conv1", "convolution", "7x7/2", (112, 112, 64), 1, params_k=2.7, ops_m=34),
    InceptionRow("maxpool1", "max pool", "3x3/2", (56, 56, 64), 0),
    InceptionRow("conv2", "convolution", "3x3/1", (56, 56, 192), 2, n3x3_reduce=64, n3x3=192,
                 params_k=112, ops_m=360),
    InceptionRow("maxpool2", "max pool", "3x3/2", (28, 28, 192), 0),
    _inception("inception3a", (28, 28, 256), 64, 96, 128, 16, 32, 32, 159, 128),
    _inception("inception3b", (28, 28, 480), 128, 128, 192, 32, 96, 64, 380, 304),
    InceptionRow("maxpool3", "max pool", "3x3/2", (14, 14, 480), 0),
    _inception("inception4a", (14, 14, 512), 192, 96, 208, 16, 48, 64, 364, 73),
    _inception("inception4b", (14, 14, 512), 160, 112, 224, 24, 64, 64, 437, 88),
    _inception("inception4c", (14, 14, 512), 128, 128, 256, 24, 64, 64, 463, 100),
    _inception("inception4d", (14, 14, 528), 112, 144, 288, 32, 64, 64, 580, 119),
    _inception("inception4e", (14, 14, 832), 256, 160, 320, 32, 128, 128, 840, 170),
    InceptionRow("maxpool4", "max pool", "3x3/2", (7, 7, 832), 0),
    _inception("inception5a", (7, 7, 832), 256, 160, 320, 32, 128, 128, 1072, 54),
    _inception("inception5b", (7, 7, 1024), 384, 192, 384, 48, 128, 128, 1388, 71),
    InceptionRow("avgpool", "avg pool", "7x7/1", (1, 1, 1024), 0),
    InceptionRow("dropout", "dropout (40%)", "", (1, 1, 1024), 0),
    InceptionRow("fc", "linear", "", (1, 1, 1000), 1, params_k=1000, ops_m=1),
    InceptionRow("softmax", "softmax", "", (1, 1, 1000), 0),
]
GOOGLENET_TABLE1_SOURCE = _src("szegedy2015", "Table 1")

# Where the printed table disagrees with its own branch widths (computed by analysis.py):
GOOGLENET_TABLE1_NOTES: dict[str, str] = {
    "inception5a": "The paper prints 54M ops and 1072K params; the listed widths (256, 160, 320, "
    "32, 128, 128 on a 7x7x832 input) give 51.1M MACs and 1,042,432 weights. The printed pair "
    "is self-consistent (54M ~ 49 x 1072K x 1024), so the discrepancy is in the table.",
    "conv1": "The paper prints 2.7K params and 34M ops; a 7x7 convolution from 3 to 64 channels "
    "has 9,408 weights and 118M MACs at 112x112. The printed pair is self-consistent (34M = "
    "112 x 112 x 2.7K) but cannot be reproduced from the layer's shape: even without the "
    "three input channels, 7 x 7 x 64 = 3,136 weights, not 2.7K.",
    "params": "The params column appears to use K = 1024 (the paper does not say; 3a: 163,328 "
    "weights = 159.5K; fc: 1,024,000 = 1000K exactly); some rows (4c: 509,440 = 497.5K vs "
    "463K printed) do not match their widths.",
}


def googlenet_table1(name: str) -> InceptionRow:
    """The Table 1 row called ``name`` (e.g. ``"inception3a"``)."""
    for row in GOOGLENET_TABLE1:
        if row.name == name:
            return row
    raise KeyError(f"no GoogLeNet Table 1 row {name!r}; rows: {[r.name for r in GOOGLENET_TABLE1]}")


# --------------------------------------------------------------------------- ImageNet errors
_AX1 = _src("krizhevsky2012", "Table 1 (ILSVRC-2010)")
_AX2 = _src("krizhevsky2012", "Table 2 (ILSVRC-2012)")
_VGG3 = _src("simonyan2015", "Table 3 (single test scale Q=384, trained with S in [256;512])")
_VGG4 = _src("simonyan2015", "Table 4")
_VGG5 = _src("simonyan2015", "Table 5 (scales 256/384/512, multi-crop & dense)")
_VGG5M = _src("simonyan2015", "Table 5 (multi-crop)")
_VGG7 = _src("simonyan2015", "Table 7")
_GN2 = _src("szegedy2015", "Table 2 (ILSVRC 2014 classification results)")
_GN3 = _src("szegedy2015", "Table 3")
_RN2 = _src("he2016", "Table 2 (10-crop testing)")
_RN3 = _src("he2016", "Table 3 (10-crop testing)")
_RN4 = _src("he2016", "Table 4 (single model, multi-scale)")
_RN5 = _src("he2016", "Table 5 (ensembles, test set)")
_DN3 = _src("huang2017", "Table 3 (single-crop / 10-crop)")

IMAGENET_ERRORS: list[ErrorRate] = [
    # AlexNet, ILSVRC-2010 test set (Table 1) and ILSVRC-2012 (Table 2)
    ErrorRate("alexnet", 37.5, 17.0, "test", "ILSVRC-2010 test set, 1 CNN, 10 patches", _AX1),
    ErrorRate("alexnet", 40.7, 18.2, "val", "1 CNN, 10 patches", _AX2),
    ErrorRate("alexnet", 38.1, 16.4, "val", "average of 5 CNNs (16.4% on test too)", _AX2, False),
    ErrorRate("alexnet", 36.7, 15.4, "val", "7 CNNs, two pre-trained on ImageNet Fall 2011",
              _AX2, False),
    ErrorRate("alexnet", None, 15.3, "test", "7 CNNs, two pre-trained on ImageNet Fall 2011 "
              "(the winning entry)", _AX2, False),
    ErrorRate("SIFT + FVs", None, 26.2, "test", "second-best ILSVRC-2012 entry", _AX2, False),
    # VGG (configurations D = VGG-16, E = VGG-19)
    ErrorRate("vgg11", 29.6, 10.4, "val", "config A, S=256, Q=256",
              _src("simonyan2015", "Table 3")),
    ErrorRate("vgg16", 25.6, 8.1, "val", "config D, single scale", _VGG3),
    ErrorRate("vgg19", 25.5, 8.0, "val", "config E, single scale", _VGG3),
    ErrorRate("vgg16", 24.8, 7.5, "val", "config D, test scales 256/384/512", _VGG4),
    ErrorRate("vgg19", 24.8, 7.5, "val", "config E, test scales 256/384/512", _VGG4),
    ErrorRate("vgg16", 24.6, 7.5, "val", "config D, multi-crop", _VGG5M),
    ErrorRate("vgg19", 24.6, 7.4, "val", "config E, multi-crop", _VGG5M),
    ErrorRate("vgg16", 24.4, 7.2, "val", "config D, multi-crop & dense", _VGG5),
    ErrorRate("vgg19", 24.4, 7.1, "val", "config E, multi-crop & dense", _VGG5),
    ErrorRate("vgg", 24.4, 7.0, "test", "best single net, multi-crop & dense (7.1% top-5 val)",
              _VGG7),
    ErrorRate("vgg", 24.7, 7.3, "test", "ILSVRC-2014 submission, 7 nets (7.5% top-5 val)",
              _VGG7, False),
    ErrorRate("vgg", 23.7, 6.8, "test", "2 nets (D and E), multi-crop & dense", _VGG7, False),
    # GoogLeNet (top-1 not reported)
    ErrorRate("googlenet", None, 10.07, "val", "1 model, 1 crop", _GN3),
    ErrorRate("googlenet", None, 7.89, "val", "1 model, 144 crops", _GN3),
    ErrorRate("googlenet", None, 6.67, "test", "7 models, 144 crops (the winning entry)",
              _GN2, False),
    # ResNet
    ErrorRate("resnet18", 27.88, None, "val", "10 crops", _RN2),
    ErrorRate("resnet34", 25.03, None, "val", "10 crops (option A shortcuts)", _RN2),
    ErrorRate("plain18", 27.94, None, "val", "plain 18-layer net, 10 crops", _RN2),
    ErrorRate("plain34", 28.54, 10.02, "val", "plain 34-layer net, 10 crops", _RN3),
    ErrorRate("resnet34", 24.52, 7.46, "val", "option B shortcuts, 10 crops", _RN3),
    ErrorRate("resnet50", 22.85, 6.71, "val", "10 crops", _RN3),
    ErrorRate("resnet101", 21.75, 6.05, "val", "10 crops", _RN3),
    ErrorRate("resnet152", 21.43, 5.71, "val", "10 crops", _RN3),
    ErrorRate("resnet34", 21.84, 5.71, "val", "option B, multi-scale", _RN4),
    ErrorRate("resnet50", 20.74, 5.25, "val", "multi-scale", _RN4),
    ErrorRate("resnet101", 19.87, 4.60, "val", "multi-scale", _RN4),
    ErrorRate("resnet152", 19.38, 4.49, "val", "multi-scale", _RN4),
    ErrorRate("resnet", None, 3.57, "test", "ensemble of 6 models of different depth "
              "(the winning entry)", _RN5, False),
    # DenseNet
    ErrorRate("densenet121", 25.02, 7.71, "val", "single crop", _DN3),
    ErrorRate("densenet169", 23.80, 6.85, "val", "single crop", _DN3),
    ErrorRate("densenet201", 22.58, 6.34, "val", "single crop", _DN3),
    ErrorRate("densenet264", 22.15, 6.12, "val", "single crop", _DN3),
    ErrorRate("densenet121", 23.61, 6.66, "val", "10 crops", _DN3),
    ErrorRate("densenet169", 22.08, 5.92, "val", "10 crops", _DN3),
    ErrorRate("densenet201", 21.46, 5.54, "val", "10 crops", _DN3),
    ErrorRate("densenet264", 20.80, 5.29, "val", "10 crops", _DN3),
]

# One representative single-model figure per architecture for comparison tables: the
# paper's own headline protocol (they differ between papers; the `setting` says which).
HEADLINE_SETTING: dict[str, str] = {
    "alexnet": "1 CNN, 10 patches", "vgg16": "config D, multi-crop & dense",
    "vgg19": "config E, multi-crop & dense", "googlenet": "1 model, 144 crops",
    "resnet18": "10 crops", "resnet34": "option B, multi-scale", "resnet50": "multi-scale",
    "resnet101": "multi-scale", "resnet152": "multi-scale", "densenet121": "single crop",
    "densenet169": "single crop", "densenet201": "single crop", "densenet264": "single crop",
}

# --------------------------------------------------------------------------- ILSVRC
ILSVRC_WINNERS: list[dict[str, Any]] = [
    {"year": 2010, "team": "NEC-UIUC (Lin et al.)", "model": "sparse coding", "top5": 28.2,
     "source": _src("krizhevsky2012", "Table 1 (best ILSVRC-2010 entry)")},
    {"year": 2011, "team": "XRCE", "model": "Fisher vectors", "top5": 25.8,
     "source": _src("russakovsky2015", "the winning entries by year (ILSVRC2011: XRCE)")},
    {"year": 2012, "team": "SuperVision", "model": "AlexNet", "top5": 15.3,
     "source": _GN2, "note": "16.4% without the extra ImageNet Fall 2011 data"},
    {"year": 2013, "team": "Clarifai", "model": "ZFNet-style CNN", "top5": 11.7,
     "source": _GN2, "note": "11.2% with extra data"},
    {"year": 2014, "team": "GoogLeNet", "model": "GoogLeNet", "top5": 6.67, "source": _GN2},
    {"year": 2015, "team": "MSRA", "model": "ResNet", "top5": 3.57, "source": _RN5},
]
ILSVRC_RUNNERS_UP: list[dict[str, Any]] = [
    {"year": 2012, "team": "ISI", "model": "SIFT + Fisher vectors", "top5": 26.2, "source": _AX2},
    {"year": 2014, "team": "VGG", "model": "VGG (7 nets)", "top5": 7.32, "source": _GN2},
    {"year": 2014, "team": "MSRA", "model": "SPP-net", "top5": 7.35, "place": "3rd",
     "source": _GN2},
]
HUMAN_TOP5 = Published(
    5.1, _src("russakovsky2015", "human vs. machine comparison (trained annotator)"),
    "the figure CS231n's ILSVRC chart shows beside the winners")

# --------------------------------------------------------------------------- CIFAR, MNIST
_RN6 = _src("he2016", "Table 6 (CIFAR-10 test error)")
_DN2 = _src("huang2017", "Table 2 (C10+ = standard augmentation)")


def _cifar(model: str, params: float, error: float, source: str, augment: bool = True,
           **note: str) -> dict[str, Any]:
    return {"model": model, "params": params, "error": error, "augment": augment,
            "source": source, **note}


CIFAR10_ERRORS: list[dict[str, Any]] = [
    _cifar("ResNet-20", 0.27e6, 8.75, _RN6), _cifar("ResNet-32", 0.46e6, 7.51, _RN6),
    _cifar("ResNet-44", 0.66e6, 7.17, _RN6), _cifar("ResNet-56", 0.85e6, 6.97, _RN6),
    _cifar("ResNet-110", 1.7e6, 6.43, _RN6, note="best of 5 runs; mean 6.61 +- 0.16"),
    _cifar("ResNet-1202", 19.4e6, 7.93, _RN6),
    _cifar("DenseNet (L=40, k=12)", 1.0e6, 5.24, _DN2),
    _cifar("DenseNet (L=40, k=12)", 1.0e6, 7.00, _DN2, augment=False),
    _cifar("DenseNet (L=100, k=12)", 7.0e6, 4.10, _DN2),
    _cifar("DenseNet-BC (L=100, k=12)", 0.8e6, 4.51, _DN2),
    _cifar("DenseNet-BC (L=250, k=24)", 15.3e6, 3.62, _DN2),
    _cifar("DenseNet-BC (L=190, k=40)", 25.6e6, 3.46, _DN2),
]

MNIST_ERRORS: dict[str, Published] = {
    "lenet5": Published(0.95, _src("lecun1998", "Sec. III-B, Fig. 9 (MNIST test error, %)")),
    "lenet5_distortions": Published(
        0.8, _src("lecun1998", "Sec. III-B, Fig. 9 (training set with artificial distortions)")),
}

# LeNet-5's global learning rate by pass over the data, as (number of passes, rate); None means
# "thereafter". The lecture slide prints 0.005 for the first value; the paper says 0.0005.
LENET5_PAPER_LR: list[tuple[int | None, float]] = [
    (2, 5e-4), (3, 2e-4), (3, 1e-4), (4, 5e-5), (None, 1e-5)]
LENET5_PAPER_LR_SOURCE = _src("lecun1998", "Sec. III-B 'Results'")

# --------------------------------------------------------------------------- CS231n
# The per-layer VGG-16 table of CS231n (seed 001): activations and weights of every layer for
# one 224x224 image. Its printed totals do not all follow from its own rows; the notes say so.
CS231N_VGG16: dict[str, Published] = {
    "activations": Published(
        24e6, _src("cs231n", "Lecture 9, VGGNet slide ('TOTAL memory: 24M * 4 bytes')"),
        "the slide's own per-layer rows (input, 13 conv, 5 pool, 3 FC outputs) add up to "
        "15,237,608 values, about 15.2 M, not 24 M"),
    "memory_bytes": Published(
        96e6, _src("cs231n", "Lecture 9, VGGNet slide ('~= 96MB / image (only forward!)')"),
        "24 M x 4 bytes; the course notes print ~= 93MB for the same product; the rows give "
        "about 61 MB (x2 for the backward pass)"),
    "params": Published(138e6, _src("cs231n", "Lecture 9, VGGNet slide ('TOTAL params: 138M')"),
                        "the rows count weights without biases: 138,344,128; with biases "
                        "138,357,544"),
}

# --------------------------------------------------------------------------- the lecture
LECTURE: dict[str, Published] = {key: Published(value, _src("lecture", where), note)
                                 for key, value, where, note in [
    ("lenet5_params", 60_000, "5.3 ('6만여 개')", "= PAPER_PARAMS['lenet5']"),
    ("alexnet_params", 60_000_000, "5.3 ('6천만 개')",
     "= PAPER_PARAMS['alexnet']; the paper also gives 650,000 neurons"),
    ("alexnet_top5", 15.3, "5.3.5", "ILSVRC-2012 test, 7-CNN ensemble (Krizhevsky 2012, Table 2)"),
    ("alexnet_runner_up_top5", 26.2, "5.3.5", "the lecture calls 26.2% a gap to the runner-up; in "
     "Krizhevsky 2012 (Table 2) 26.2% is the second-best entry's own top-5 test error (a gap of "
     "10.9 points)"),
    ("vgg16_params", 138_000_000, "5.4.2", "= VGG Table 2 (D)"),
    ("vgg19_params", 144_000_000, "5.4.2", "= VGG Table 2 (E)"),
    ("vgg16_top5", 8.1, "5.4.4", "VGG Table 3: config D (VGG-16), scale jittering S in "
     "[256;512], single test scale Q=384, validation set"),
    ("vgg19_top5", 7.4, "5.4.4", "VGG Table 5: config E (VGG-19), multi-crop evaluation, "
     "validation set. Not the same protocol as the 8.1%: like for like, D and E differ by 0.1 "
     "(Table 3: 8.1 vs 8.0; Table 5: 7.5 vs 7.4)"),
    ("googlenet_params", 13_000_000, "5.5", "counts the two auxiliary classifiers "
     "(PARAMS['googlenet_aux']); without them 7.0 M"),
    ("googlenet_top5", 6.67, "5.5.7",
     "ILSVRC 2014 winning entry, 7 models x 144 crops (GoogLeNet Tables 2 and 3)"),
    ("inception_naive_macs", 163_840_000, "5.5.3",
     "(32x32x200) x (5x5x32): a 5x5 conv with 32 filters on a 32x32x200 input"),
    ("inception_bottleneck_macs", 16_384_000, "5.5.3.1",
     "(32x32x200) x (1x1x16) + (32x32x16) x (5x5x32) = 3,276,800 + 13,107,200"),
    ("resnet_single_top5", 4.49, "5.6.5", "the lecture writes 'ResNet-512'; 4.49% is "
     "ResNet-152's single-model top-5 validation error (He et al., Table 4)"),
    ("resnet_ensemble_top5", 3.57, "5.6.5", "ILSVRC 2015 winning ensemble (He et al., Table 5)"),
    ("resnet50_macs", 3.8e9, "5.6.3 (ResNet Table 1)", "= MACS['resnet50']"),
]}


# --------------------------------------------------------------------------- helpers
def errors_for(model: str, *, single_model: bool | None = None) -> list[ErrorRate]:
    """All ImageNet error rates recorded for ``model`` (a registry name like ``"vgg16"``)."""
    return [e for e in IMAGENET_ERRORS
            if e.model == model and (single_model is None or e.single_model == single_model)]


def headline_error(model: str) -> ErrorRate | None:
    """The single-model figure chosen for comparison tables (see ``HEADLINE_SETTING``)."""
    setting = HEADLINE_SETTING.get(model)
    return next((e for e in IMAGENET_ERRORS if e.model == model and e.setting == setting), None)


def summary_rows(models: tuple[str, ...] | list[str] = COMPARISON_MODELS) -> list[dict[str, Any]]:
    """One row per model with the published figures of the comparison table.

    Keys: model, name, year, depth, paper_params, paper_macs, top1, top5, protocol, source.
    Missing figures are ``None`` (e.g. LeNet-5 has no ImageNet result, GoogLeNet no top-1).
    """
    rows = []
    for m in models:
        arch, err = ARCHITECTURES[m], headline_error(m)
        paper_params, macs = PAPER_PARAMS.get(m), MACS.get(m)
        rows.append({
            "model": m, "name": arch.name, "year": arch.year, "depth": arch.depth,
            "paper_params": int(paper_params.value) if paper_params else None,
            "paper_macs": int(macs.value) if macs else None,
            "top1": err.top1 if err else None, "top5": err.top5 if err else None,
            "protocol": err.setting if err else None, "source": err.source if err else None,
        })
    return rows



def as_dicts(records: list[Any]) -> list[dict[str, Any]]:
    """Dataclass records as plain dicts (for ``analysis.format_table``)."""
    return [asdict(r) for r in records]
