"""How big is a network, how much does it compute, and what shapes flow through it?

The lecture compares architectures by a handful of numbers: parameters, multiply-accumulate
operations (MACs) per image, the output size of every layer and the receptive field of
stacked convolutions. This module computes them from the models themselves, so a notebook
never types a number that the code could get wrong.

Functions that take a model leave it untouched: they run a copy whose weights live on the
``meta`` device (shapes only, so VGG-19 takes a fraction of a second), or a real CPU copy when
the forward pass needs actual values. Counting: ``count_params``, ``count_macs`` (from
``torch.utils.flop_counter``), ``macs_by_module``; tables a notebook prints with
``format_table``: ``module_table`` (per submodule: input/output shape, params, MACs),
``shape_trace``, ``memory_table``, ``layer_table`` (torchinfo); feature maps:
``capture_activations``; the lecture's arithmetic: ``conv_output_size``, ``conv_params``,
``receptive_field(s)``, ``chain_layers``.

Conventions. MACs count what the papers count: the multiplications of convolutions and
fully connected layers (one multiply-accumulate per weight use). Bias additions, batch norm,
activations and pooling are not counted; ResNet's Table 1 calls the same quantity "FLOPs"
(multiply-adds). ``input_size`` may be (N, C, H, W) or (C, H, W); when omitted, the model's
own ``input_size`` attribute (course models) is used, else (1, 3, 224, 224).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

DEFAULT_INPUT_SIZE = (1, 3, 224, 224)

# Layers that change the shape of the data: the rows of a shape trace or memory table.
TRACE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Linear,
)


# --------------------------------------------------------------------------- parameters
def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters of ``model`` (only those with ``requires_grad`` by default).

    Tied parameters (one tensor used twice) are counted once, as ``model.parameters()`` does.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def conv_params(
    kernel_size: int,
    in_channels: int,
    out_channels: int | None = None,
    *,
    layers: int = 1,
    bias: bool = False,
) -> int:
    """Parameters of ``layers`` stacked ``kernel_size`` x ``kernel_size`` convolutions.

    The first layer maps ``in_channels`` to ``out_channels`` (default: the same C), the others
    keep ``out_channels``. Without bias, as the VGG paper counts: one 7x7 layer on C channels
    has 49 C^2 weights, three 3x3 layers 27 C^2.
    """
    out_channels = in_channels if out_channels is None else out_channels
    k2 = kernel_size * kernel_size
    total = 0
    c_in = in_channels
    for _ in range(layers):
        total += k2 * c_in * out_channels + (out_channels if bias else 0)
        c_in = out_channels
    return total


# --------------------------------------------------------------------------- meta copies
def _normalize_input_size(model: nn.Module, input_size: Sequence[int] | None) -> tuple[int, ...]:
    if input_size is None:
        native = getattr(model, "input_size", None)
        if native is not None and len(tuple(native)) == 3:
            return (1, *(int(v) for v in native))
        return DEFAULT_INPUT_SIZE
    size = tuple(int(v) for v in input_size)
    if len(size) == 3:  # (C, H, W): one image
        size = (1, *size)
    return size


def _meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers live on the ``meta`` device.

    ``deepcopy`` consults its memo before copying anything, so pre-filling it with meta
    versions of every parameter and buffer means no weight data is copied at all: the copy
    is instant even for VGG-19's 144 M parameters, and the original model is not touched.
    """
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(p.detach().to("meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = b.detach().to("meta")
    clone = copy.deepcopy(model, memo)
    clone.eval()  # count inference: no GoogLeNet auxiliary heads, dropout is a no-op
    return clone


def _model_name(model: nn.Module) -> str:
    return type(model).__name__


def _forward(net: nn.Module, device: str, input_size: tuple[int, ...], inside: Any = None) -> Any:
    """One forward pass of ``net`` on zeros of ``input_size`` on ``device``."""
    import contextlib

    x = torch.zeros(input_size, device=device)
    with torch.no_grad(), inside if inside is not None else contextlib.nullcontext():
        return net(x)


def _on_meta_or_cpu(model: nn.Module, job: Any) -> Any:
    """``job(net, device)`` on a meta copy of ``model``; on a real CPU copy if meta can't.

    Meta tensors have shapes but no data, so a forward that reads values (``.item()``, an op
    without a meta kernel) fails there; then the job runs again, from scratch, on a real copy.
    A model's own ``ValueError`` (e.g. "AlexNet needs at least 63x63") passes through; a shape
    error from deep inside PyTorch becomes a ``ValueError`` naming the model.
    """
    try:
        try:
            return job(_meta_copy(model), "meta")
        except (NotImplementedError, RuntimeError) as err:
            if isinstance(err, RuntimeError) and "meta" not in str(err).lower():
                raise
            return job(copy.deepcopy(model).cpu().eval(), "cpu")
    except RuntimeError as err:
        raise ValueError(f"{_model_name(model)} could not run: {err}") from err


def _with_size(model: nn.Module, size: tuple[int, ...], job: Any) -> Any:
    """:func:`_on_meta_or_cpu` with the input shape in the error message."""
    try:
        return _on_meta_or_cpu(model, job)
    except ValueError as err:
        if isinstance(err.__cause__, RuntimeError):  # ours, not the model's own message
            raise ValueError(
                f"{_model_name(model)} could not run on an input of shape {size}: "
                f"{err.__cause__}"
            ) from err.__cause__
        raise


def _hook_calls(model: nn.Module, fn) -> list[Any]:
    """Register ``fn(name, module, inputs, output)`` as a forward hook on every submodule."""
    handles = []
    for name, module in model.named_modules():

        def hook(mod, inputs, output, _name=name):
            fn(_name, mod, inputs, output)

        handles.append(module.register_forward_hook(hook))
    return handles


# --------------------------------------------------------------------------- MACs
def count_macs(
    model: nn.Module,
    input_size: Sequence[int] | None = None,
    *,
    by_module: bool = False,
    depth: int = 1,
) -> int | dict[str, int]:
    """Multiply-accumulate operations of one forward pass (eval mode) for ``input_size``.

    ``FlopCounterMode`` counts 2 FLOPs per multiply-add, so MACs = FLOPs / 2. The lecture's
    worked example, a 5x5 convolution with 32 filters on a 32x32x200 input (same padding),
    gives (32*32*32) * (5*5*200) = 163,840,000. With ``by_module=True`` the result is
    :func:`macs_by_module` instead of the total.
    """
    if by_module:
        return macs_by_module(model, input_size, depth=depth)
    size = _normalize_input_size(model, input_size)

    def job(net: nn.Module, device: str) -> int:
        counter = FlopCounterMode(display=False)
        _forward(net, device, size, inside=counter)
        return counter.get_total_flops() // 2

    return _with_size(model, size, job)


def _profile(
    model: nn.Module, input_size: Sequence[int] | None, depth: int
) -> tuple[list[str], dict[str, Any], dict[str, int], int, nn.Module]:
    """One run: the modules ``depth`` levels down in the order they start, their input and
    output shapes ({"in_shape": ..., "shape": ...}), their MACs, the total MACs, and the copy
    that ran (for parameter counts)."""
    size = _normalize_input_size(model, input_size)

    def job(net: nn.Module, device: str):
        root = _model_name(net)
        is_leaf = {name: len(list(m.children())) == 0 for name, m in net.named_modules()}

        def listed(name: str) -> bool:
            level = name.count(".") + 1 if name else 0
            return bool(name) and (level == depth or (level < depth and is_leaf[name]))

        order: list[str] = []
        shapes: dict[str, Any] = {}
        in_shapes: dict[str, Any] = {}
        handles = []
        for name, module in net.named_modules():
            if not listed(name):
                continue

            # A forward hook fires when a module *finishes*; the pre-hook gives the order in
            # which stages start, which is the order a reader expects.
            def pre_hook(_mod, inputs, _name=name):
                if _name not in order:
                    order.append(_name)
                    in_shapes[_name] = _out_shape(inputs)

            def hook(_mod, _inputs, output, _name=name):
                shapes.setdefault(_name, _out_shape(output))

            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(hook))
        counter = FlopCounterMode(display=False)
        try:
            _forward(net, device, size, inside=counter)
        finally:
            for h in handles:
                h.remove()
        flops = counter.get_flop_counts()
        # ModuleTracker names modules "<RootClass>.<path>"; strip the root's name.
        macs = {name: sum(flops.get(f"{root}.{name}", {}).values()) // 2 for name in order}
        return order, {"in_shape": in_shapes, "shape": shapes}, macs, \
            counter.get_total_flops() // 2, net

    return _with_size(model, size, job)


def macs_by_module(
    model: nn.Module, input_size: Sequence[int] | None = None, depth: int = 1
) -> dict[str, int]:
    """MACs of each submodule ``depth`` levels below the model, in execution order.

    Names are those of ``model.named_modules()`` (e.g. ``"inception3a"``, ``"layer1.0"``).
    A leaf module shallower than ``depth`` (e.g. ``fc``) is listed as itself. Modules that
    compute nothing countable (pooling, ReLU) appear with 0 so that a table keeps every
    stage. MACs done directly in a parent's ``forward`` (not inside any listed submodule)
    are reported under ``"(other)"``, so the values always add up to :func:`count_macs`.
    """
    order, _shapes, macs, total, _clone = _profile(model, input_size, depth)
    result = {name: macs[name] for name in order}
    rest = total - sum(result.values())
    if rest:
        result["(other)"] = rest
    return result


def module_table(
    model: nn.Module, input_size: Sequence[int] | None = None, depth: int = 1
) -> list[dict[str, Any]]:
    """One row per submodule ``depth`` levels down, in execution order, for paper tables.

    Rows: ``{"layer", "type", "in_shape", "shape" (input and output, per image), "params",
    "macs"}``. With
    ``depth=1`` GoogLeNet gives Table 1's rows (conv1 ... inception5b, fc) and ResNet its
    stages (conv1, layer1 ... layer4, fc). Parameters of modules that did not run (e.g.
    auxiliary heads in eval mode) are not listed.
    """
    order, shapes, macs, _total, clone = _profile(model, input_size, depth)
    modules = dict(clone.named_modules())
    return [
        {
            "layer": name,
            "type": type(modules[name]).__name__,
            "in_shape": shapes["in_shape"].get(name),
            "shape": shapes["shape"].get(name),
            "params": count_params(modules[name], trainable_only=False),
            "macs": macs[name],
        }
        for name in order
    ]


# --------------------------------------------------------------------------- shapes
def _out_shape(output: Any) -> tuple[int, ...] | None:
    if isinstance(output, (tuple, list)):  # e.g. GoogLeNet's (logits, aux1, aux2)
        output = output[0] if output else None
    if isinstance(output, torch.Tensor):
        return tuple(int(v) for v in output.shape[1:])  # drop the batch dimension
    return None


def shape_trace(
    model: nn.Module,
    input_size: Sequence[int] | None = None,
    types: tuple[type[nn.Module], ...] = TRACE_TYPES,
) -> list[dict[str, Any]]:
    """Output shape of every conv / pooling / linear layer, in the order they run.

    Returns rows ``{"layer": name, "type": class name, "shape": (C, H, W) or (features,),
    "params": int}`` (per image, batch dimension dropped). A module called twice gives two
    rows. Runs on meta tensors: no computation, any input size the model accepts.
    """
    size = _normalize_input_size(model, input_size)

    def job(net: nn.Module, device: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []

        def record(name, mod, _inputs, output):
            if isinstance(mod, types):
                rows.append(
                    {
                        "layer": name,
                        "type": type(mod).__name__,
                        "shape": _out_shape(output),
                        "params": count_params(mod, trainable_only=False),
                    }
                )

        handles = _hook_calls(net, record)
        try:
            _forward(net, device, size)
        finally:
            for h in handles:
                h.remove()
        return rows

    return _with_size(model, size, job)


def memory_table(
    model: nn.Module,
    input_size: Sequence[int] | None = None,
    bytes_per_value: int = 4,
    types: tuple[type[nn.Module], ...] = TRACE_TYPES,
) -> list[dict[str, Any]]:
    """CS231n's per-layer view: where the activation memory and the parameters live.

    One row for the input and one per conv / pooling / linear layer:
    ``{"layer", "type", "shape", "activations", "memory_bytes", "params"}`` where
    ``activations`` is the number of output values for one image and ``memory_bytes`` their
    size at ``bytes_per_value`` (4 for float32). For VGG-16 the early convolutions hold most
    of the memory and the fully connected layers most of the parameters.
    """
    size = _normalize_input_size(model, input_size)
    rows = [
        {
            "layer": "input",
            "type": "Input",
            "shape": tuple(size[1:]),
            "activations": math.prod(size[1:]),
            "memory_bytes": math.prod(size[1:]) * bytes_per_value,
            "params": 0,
        }
    ]
    for row in shape_trace(model, size, types=types):
        n = math.prod(row["shape"]) if row["shape"] else 0
        rows.append(
            {
                "layer": row["layer"],
                "type": row["type"],
                "shape": row["shape"],
                "activations": n,
                "memory_bytes": n * bytes_per_value,
                "params": row["params"],
            }
        )
    return rows


class LayerTable:
    """torchinfo's summary, printable as text that is the same on every machine.

    ``str(table)`` / ``print(table)`` gives torchinfo's table (with its enum-valued unit
    labels written as K/M/G); ``table.stats`` is torchinfo's ``ModelStatistics`` and its
    attributes (``total_params``, ``summary_list``, ...) are reachable on the table directly.
    """

    _UNITS = {
        "Units.TERABYTES": "T",
        "Units.GIGABYTES": "G",
        "Units.MEGABYTES": "M",
        "Units.KILOBYTES": "K",
        "Units.NONE": "",
    }

    def __init__(self, stats: Any) -> None:
        self.stats = stats

    def __str__(self) -> str:
        text = str(self.stats)
        for raw, short in self._UNITS.items():
            text = text.replace(raw, short)
        return text

    __repr__ = __str__

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stats, name)


def layer_table(
    model: nn.Module,
    input_size: Sequence[int] | None = None,
    depth: int = 3,
    col_names: Sequence[str] = ("kernel_size", "output_size", "num_params"),
    **kwargs: Any,
) -> LayerTable:
    """torchinfo's layer-by-layer summary (``print`` it).

    Runs on meta tensors, so it is instant and its text is the same on every machine (no
    timings, no device). ``depth`` is how many levels of submodules to list; ``col_names``
    and other keywords go to ``torchinfo.summary``. Note that torchinfo's "mult-adds" (its
    total line, or the ``"mult_adds"`` column) include bias additions; :func:`count_macs`
    follows the papers and does not.
    """
    import torchinfo

    size = _normalize_input_size(model, input_size)
    try:
        stats = torchinfo.summary(
            _meta_copy(model),
            input_size=size,
            device="meta",
            depth=depth,
            col_names=tuple(col_names),
            verbose=0,
            **kwargs,
        )
    except RuntimeError as err:
        # torchinfo wraps everything in "Failed to run torchinfo"; a model's own ValueError
        # ("AlexNet needs at least 63x63 ...") is the message a student needs.
        if isinstance(err.__cause__, ValueError):
            raise err.__cause__ from None
        raise
    return LayerTable(stats)


def capture_activations(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Outputs of the named submodules for input ``x`` (real tensors, no gradient).

    ``layers`` are names from ``model.named_modules()`` (e.g. ``["features.c1"]`` for
    LeNet-5's C1, or the four ``inception3a.branch*`` of GoogLeNet). The model runs as it is
    (call ``model.eval()`` first for inference behaviour); returned tensors are detached and
    on the CPU, in the order of ``layers``.
    """
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise KeyError(f"{_model_name(model)} has no submodule {missing}; some names: "
                       f"{[n for n in modules if n][:12]}")
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for name in layers:

        def hook(_mod, _inputs, output, _name=name):
            out = output[0] if isinstance(output, (tuple, list)) else output
            captured[_name] = out.detach().cpu()

        handles.append(modules[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return {name: captured[name] for name in layers}


# --------------------------------------------------------------------------- arithmetic
def conv_output_size(i: int, k: int, p: int = 0, s: int = 1, d: int = 1) -> int:
    """Output size of a convolution or pooling layer: floor((i - k + 2p) / s) + 1.

    ``d`` is the dilation (the kernel then spans d(k - 1) + 1 pixels). AlexNet's conv1:
    ``conv_output_size(227, 11, s=4) == 55``; its first pooling ``(55, 3, s=2) == 27``.
    """
    span = d * (k - 1) + 1
    out = (i - span + 2 * p) // s + 1
    if out < 1:
        raise ValueError(
            f"a {k}x{k} kernel (stride {s}, padding {p}) does not fit an input of size {i}"
        )
    return out


def _as_kernel_stride(layers: Iterable[Any] | nn.Module) -> list[tuple[int, int]]:
    if isinstance(layers, nn.Module):
        return [(k, s) for _name, k, s in chain_layers(layers)]
    pairs = []
    for layer in layers:
        if isinstance(layer, int):  # a bare kernel size: stride 1
            pairs.append((layer, 1))
        else:
            k, s = layer[0], layer[1] if len(layer) > 1 else 1
            pairs.append((int(k), int(s)))
    return pairs


def receptive_fields(layers: Iterable[Any] | nn.Module) -> list[int]:
    """Receptive field (in input pixels) after each layer of a chain.

    ``layers`` is a list of ``(kernel, stride)`` pairs (or bare kernel sizes, stride 1), or a
    plain sequential model (see :func:`chain_layers`). Each layer widens the field by
    (k - 1) times the product of the strides before it:
    ``receptive_fields([3, 3, 3]) == [3, 5, 7]``.
    """
    rf, jump, out = 1, 1, []
    for k, s in _as_kernel_stride(layers):
        rf += (k - 1) * jump
        jump *= s
        out.append(rf)
    return out


def receptive_field(layers: Iterable[Any] | nn.Module) -> int:
    """Receptive field of the whole chain: two 3x3 convolutions see 5x5, three see 7x7."""
    fields = receptive_fields(layers)
    return fields[-1] if fields else 1


def _pair(v: Any) -> int:
    v = v if isinstance(v, int) else v[0]
    return int(v)


def chain_layers(model: nn.Module) -> list[tuple[str, int, int]]:
    """(name, kernel, stride) of each conv / max-pool / avg-pool layer, in definition order.

    Meaningful for plain chains (LeNet, AlexNet, VGG's ``features``), where definition order is
    execution order; branching networks (Inception, ResNet) have no single chain.
    """
    out = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            stride = m.stride if m.stride is not None else m.kernel_size
            out.append((name, _pair(m.kernel_size), _pair(stride)))
    return out


# --------------------------------------------------------------------------- printing
# Integer columns that read better without thousands separators (2014, not 2,014).
PLAIN_INT_COLUMNS = frozenset({"year", "depth", "epoch", "step", "k", "s", "p", "kernel", "stride"})


def _fmt(value: Any, column: str = "") -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value) if column in PLAIN_INT_COLUMNS else f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1e4:
            return f"{int(value):,}"
        return f"{value:.6g}"
    if isinstance(value, tuple):
        return " x ".join(str(v) for v in value)
    if value is None:
        return "-"
    return str(value)


def format_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str] | None = None,
    totals: Sequence[str] = (),
    formats: dict[str, str] | None = None,
) -> str:
    """Rows of dicts as a fixed-width text table (``print`` it in a notebook).

    Integers get thousands separators (except year/depth-like columns), floats up to six
    significant digits, shapes print as ``64 x 56 x 56``, missing values as ``-``.
    ``columns`` picks and orders the columns (default: the keys of the first row); the columns
    named in ``totals`` are summed in a last row; ``formats`` maps a column to a format string,
    e.g. ``{"macs": "{:,.0f}", "top5": "{:.1f}%"}``.
    """
    if not rows:
        return "(empty table)"
    columns = list(columns) if columns is not None else list(rows[0].keys())
    formats = formats or {}

    def cell(row: dict[str, Any], c: str) -> str:
        value = row.get(c)
        if c in formats and value is not None:
            return formats[c].format(value)
        return _fmt(value, c)

    body = [[cell(row, c) for c in columns] for row in rows]
    if totals:
        total_row = []
        for i, c in enumerate(columns):
            if c in totals:
                total_row.append(_fmt(sum(row.get(c) or 0 for row in rows), c))
            else:
                total_row.append("total" if i == 0 else "")
        body.append(total_row)
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(row.get(c), (int, float)) or row.get(c) is None for row in rows)
        for c in columns
    ]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(w) if num else cell.ljust(w)
            for cell, w, num in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [line(columns), rule, *(line(r) for r in body[: len(rows)])]
    if totals:
        lines += [rule, line(body[-1])]
    return "\n".join(lines)
