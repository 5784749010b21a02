"""Parameters, MACs, layer shapes and receptive fields, computed from the models themselves.

Functions that take a model leave it untouched: they run a copy whose weights live on the
``meta`` device (shapes only: VGG-19 in a fraction of a second), or a real CPU copy when the
forward pass needs actual values. MACs count what the papers count: one multiply-accumulate per
weight use in convolutions and fully connected layers; bias, batch norm, activations and pooling
are not counted (ResNet's Table 1 calls this "FLOPs"). ``input_size`` may be (N, C, H, W) or
(C, H, W); by default the model's own ``input_size`` (course models), else (1, 3, 224, 224).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

DEFAULT_INPUT_SIZE = (1, 3, 224, 224)

# Layers that change the shape of the data: the rows of a shape trace or memory table.
TRACE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d, nn.Linear,
)


# --------------------------------------------------------------------------- parameters
def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Parameters of ``model`` (by default only those with ``requires_grad``); tied ones once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def conv_params(kernel_size: int, in_channels: int, out_channels: int | None = None, *,
                layers: int = 1, bias: bool = False) -> int:
    """Parameters of ``layers`` stacked k x k convolutions, C_in -> C_out (default C_in) -> ...

    Without bias, as the VGG paper counts: one 7x7 layer on C channels has 49 C^2 weights,
    three 3x3 layers 27 C^2."""
    out_channels = in_channels if out_channels is None else out_channels
    total, c_in = 0, in_channels
    for _ in range(layers):
        total += kernel_size * kernel_size * c_in * out_channels + (out_channels if bias else 0)
        c_in = out_channels
    return total


# --------------------------------------------------------------------------- running a copy
def _normalize_input_size(model: nn.Module, input_size: Sequence[int] | None) -> tuple[int, ...]:
    if input_size is None:
        native = getattr(model, "input_size", None)
        if native is not None and len(tuple(native)) == 3:
            return (1, *(int(v) for v in native))
        return DEFAULT_INPUT_SIZE
    size = tuple(int(v) for v in input_size)
    return (1, *size) if len(size) == 3 else size  # (C, H, W): one image


def _meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` on the ``meta`` device. A memo pre-filled with meta versions of the
    parameters and buffers keeps ``deepcopy`` from copying any weight data."""
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(p.detach().to("meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = b.detach().to("meta")
    clone = copy.deepcopy(model, memo)
    clone.eval()  # count inference: no GoogLeNet auxiliary heads, dropout is a no-op
    return clone


def _run(model: nn.Module, input_size: Sequence[int] | None, job: Any) -> Any:
    """``job(net, x)`` with zeros ``x`` of ``input_size`` on a meta copy of ``model``, or on a
    real CPU copy if the forward reads values (``.item()``, an op without a meta kernel). A
    model's own ``ValueError`` passes through; a shape error from inside PyTorch becomes a
    ``ValueError`` naming model and input."""
    size = _normalize_input_size(model, input_size)
    try:
        try:
            return job(_meta_copy(model), torch.zeros(size, device="meta"))
        except RuntimeError as err:  # NotImplementedError (no meta kernel) is one too
            if not isinstance(err, NotImplementedError) and "meta" not in str(err).lower():
                raise
            return job(copy.deepcopy(model).cpu().eval(), torch.zeros(size, device="cpu"))
    except RuntimeError as err:
        raise ValueError(f"{type(model).__name__} could not run on an input of shape {size}: "
                         f"{err}") from err


def _forward(net: nn.Module, x: torch.Tensor, modules: Iterable[tuple[str, nn.Module]] = (),
             pre: Any = None, post: Any = None, inside: Any = None) -> Any:
    """``net(x)`` without gradients (and inside ``inside``, e.g. a FLOP counter), with hooks
    ``pre(name, module, inputs)`` / ``post(name, module, inputs, output)`` on the named modules
    while it runs. Hooks must return None (a value would replace the inputs / output)."""
    handles = []
    for name, module in modules:
        if pre is not None:
            handles.append(module.register_forward_pre_hook(functools.partial(pre, name)))
        if post is not None:
            handles.append(module.register_forward_hook(functools.partial(post, name)))
    try:
        with torch.no_grad(), inside if inside is not None else contextlib.nullcontext():
            return net(x)
    finally:
        for handle in handles:
            handle.remove()


def _out_shape(output: Any) -> tuple[int, ...] | None:
    if isinstance(output, (tuple, list)):  # e.g. GoogLeNet's (logits, aux1, aux2)
        output = output[0] if output else None
    if isinstance(output, torch.Tensor):
        return tuple(int(v) for v in output.shape[1:])  # drop the batch dimension
    return None


# --------------------------------------------------------------------------- MACs
def count_macs(model: nn.Module, input_size: Sequence[int] | None = None, *,
               by_module: bool = False, depth: int = 1) -> int | dict[str, int]:
    """Multiply-accumulates of one forward pass (eval mode): ``FlopCounterMode``'s FLOPs / 2.

    The lecture's 5x5 convolution with 32 filters on a 32x32x200 input (same padding) gives
    (32*32*32) * (5*5*200) = 163,840,000. ``by_module=True``: :func:`macs_by_module` instead.
    """
    if by_module:
        return macs_by_module(model, input_size, depth=depth)
    return _profile(model, input_size, depth=0)[1]  # depth 0: no per-module rows, the total


def _profile(model: nn.Module, input_size: Sequence[int] | None,
             depth: int) -> tuple[list[dict[str, Any]], int]:
    """One run under a FLOP counter: :func:`module_table`'s rows and the total MACs."""

    def job(net: nn.Module, x: torch.Tensor) -> tuple[list[dict[str, Any]], int]:
        listed = {}  # the modules `depth` levels down, and leaves shallower than that
        for name, m in net.named_modules():
            level = name.count(".") + 1 if name else 0
            if name and (level == depth or (level < depth and not list(m.children()))):
                listed[name] = m
        # A forward hook fires when a module *finishes*; the pre-hook gives the order in which
        # stages start, which is the order a reader expects. Only a module's first call counts.
        in_shapes: dict[str, Any] = {}
        shapes: dict[str, Any] = {}

        def started(name: str, _mod: nn.Module, inputs: Any) -> None:
            in_shapes.setdefault(name, _out_shape(inputs))

        def finished(name: str, _mod: nn.Module, _inputs: Any, output: Any) -> None:
            shapes.setdefault(name, _out_shape(output))

        counter = FlopCounterMode(display=False)
        _forward(net, x, listed.items(), pre=started, post=finished, inside=counter)
        flops = counter.get_flop_counts()  # keyed "<RootClass>.<path>"
        rows = [{"layer": name, "type": type(listed[name]).__name__, "in_shape": in_shape,
                 "shape": shapes.get(name), "params": count_params(listed[name], False),
                 "macs": sum(flops.get(f"{type(net).__name__}.{name}", {}).values()) // 2}
                for name, in_shape in in_shapes.items()]
        return rows, counter.get_total_flops() // 2

    return _run(model, input_size, job)


def macs_by_module(model: nn.Module, input_size: Sequence[int] | None = None,
                   depth: int = 1) -> dict[str, int]:
    """MACs of each submodule ``depth`` levels down (``"inception3a"``, ``"layer1.0"``), in
    execution order; a shallower leaf (``fc``) is listed as itself, pooling and ReLU with 0.
    MACs done directly in a parent's ``forward`` are reported under ``"(other)"``, so the
    values always add up to :func:`count_macs`.
    """
    rows, total = _profile(model, input_size, depth)
    result = {row["layer"]: row["macs"] for row in rows}
    rest = total - sum(result.values())
    if rest:
        result["(other)"] = rest
    return result


def module_table(model: nn.Module, input_size: Sequence[int] | None = None,
                 depth: int = 1) -> list[dict[str, Any]]:
    """Rows ``{"layer", "type", "in_shape", "shape" (per image), "params", "macs"}``, one per
    submodule ``depth`` levels down that runs (not GoogLeNet's auxiliary heads in eval mode), in
    execution order: GoogLeNet's Table 1 rows, or ResNet's stages (conv1, layer1 ... fc).
    """
    return _profile(model, input_size, depth)[0]


# --------------------------------------------------------------------------- shapes
def shape_trace(model: nn.Module, input_size: Sequence[int] | None = None,
                types: tuple[type[nn.Module], ...] = TRACE_TYPES) -> list[dict[str, Any]]:
    """Rows ``{"layer", "type", "shape" (per image), "params"}``, one per call of a conv /
    pooling / linear layer (a module called twice gives two rows), in the order they run.
    """

    def job(net: nn.Module, x: torch.Tensor) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []

        def record(name: str, mod: nn.Module, _inputs: Any, output: Any) -> None:
            rows.append({"layer": name, "type": type(mod).__name__, "shape": _out_shape(output),
                         "params": count_params(mod, trainable_only=False)})

        _forward(net, x, [(name, m) for name, m in net.named_modules() if isinstance(m, types)],
                 post=record)
        return rows

    return _run(model, input_size, job)


def memory_table(model: nn.Module, input_size: Sequence[int] | None = None,
                 bytes_per_value: int = 4,
                 types: tuple[type[nn.Module], ...] = TRACE_TYPES) -> list[dict[str, Any]]:
    """CS231n's view: where the activation memory and the parameters live. Rows ``{"layer",
    "type", "shape", "activations" (output values per image), "memory_bytes", "params"}`` for
    the input and each :func:`shape_trace` row, at ``bytes_per_value`` (4: float32).
    """
    size = _normalize_input_size(model, input_size)

    def row(layer: str, type_: str, shape: Any, n: int, params: int) -> dict[str, Any]:
        return {"layer": layer, "type": type_, "shape": shape, "activations": n,
                "memory_bytes": n * bytes_per_value, "params": params}

    rows = [row("input", "Input", tuple(size[1:]), math.prod(size[1:]), 0)]
    for r in shape_trace(model, size, types=types):
        n = math.prod(r["shape"]) if r["shape"] else 0
        rows.append(row(r["layer"], r["type"], r["shape"], n, r["params"]))
    return rows


class LayerTable:
    """torchinfo's ``ModelStatistics`` (``.stats``, attributes reachable directly) that prints
    the same text on every machine: its enum-valued unit labels written as K/M/G."""

    _UNITS = {"Units.TERABYTES": "T", "Units.GIGABYTES": "G", "Units.MEGABYTES": "M",
              "Units.KILOBYTES": "K", "Units.NONE": ""}

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


def layer_table(model: nn.Module, input_size: Sequence[int] | None = None, depth: int = 3,
                col_names: Sequence[str] = ("kernel_size", "output_size", "num_params"),
                **kwargs: Any) -> LayerTable:
    """torchinfo's layer-by-layer summary (``print`` it), on meta tensors: instant, same text
    on every machine. Keywords go to ``torchinfo.summary``. Its "mult-adds" include bias
    additions; :func:`count_macs` follows the papers and does not.
    """
    import torchinfo

    size = _normalize_input_size(model, input_size)
    try:
        stats = torchinfo.summary(_meta_copy(model), input_size=size, device="meta", depth=depth,
                                  col_names=tuple(col_names), verbose=0, **kwargs)
    except RuntimeError as err:
        # torchinfo wraps everything in "Failed to run torchinfo"; a model's own ValueError
        # ("AlexNet needs at least 63x63 ...") is the message a student needs.
        if isinstance(err.__cause__, ValueError):
            raise err.__cause__ from None
        raise
    return LayerTable(stats)


def capture_activations(model: nn.Module, x: torch.Tensor,
                        layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Outputs of the submodules named in ``layers`` (e.g. ``["features.c1"]``) for input
    ``x``: detached, on the CPU. The model runs as it is (``model.eval()`` it first).
    """
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise KeyError(f"{type(model).__name__} has no submodule {missing}; some names: "
                       f"{[n for n in modules if n][:12]}")
    captured: dict[str, torch.Tensor] = {}

    def keep(name: str, _mod: nn.Module, _inputs: Any, output: Any) -> None:
        out = output[0] if isinstance(output, (tuple, list)) else output
        captured[name] = out.detach().cpu()

    _forward(model, x, [(name, modules[name]) for name in layers], post=keep)
    return {name: captured[name] for name in layers}


# --------------------------------------------------------------------------- arithmetic
def conv_output_size(i: int, k: int, p: int = 0, s: int = 1, d: int = 1) -> int:
    """Output size of a convolution or pooling layer: floor((i - k + 2p) / s) + 1, with
    dilation ``d`` spanning d(k - 1) + 1 pixels. AlexNet's conv1: ``(227, 11, s=4) == 55``.
    """
    out = (i - (d * (k - 1) + 1) + 2 * p) // s + 1
    if out < 1:
        raise ValueError(f"a {k}x{k} kernel (stride {s}, padding {p}) does not fit an input "
                         f"of size {i}")
    return out


def _as_kernel_stride(layers: Iterable[Any] | nn.Module) -> list[tuple[int, int]]:
    if isinstance(layers, nn.Module):
        return [(k, s) for _name, k, s in chain_layers(layers)]
    return [(layer, 1) if isinstance(layer, int)  # a bare kernel size: stride 1
            else (int(layer[0]), int(layer[1] if len(layer) > 1 else 1)) for layer in layers]


def receptive_fields(layers: Iterable[Any] | nn.Module) -> list[int]:
    """Receptive field (input pixels) after each layer of a chain of ``(kernel, stride)`` pairs
    (or bare kernel sizes) or of a plain sequential model (see :func:`chain_layers`). Each layer
    widens it by (k - 1) times the product of the strides before: ``[3, 3, 3]`` -> [3, 5, 7].
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


def chain_layers(model: nn.Module) -> list[tuple[str, int, int]]:
    """(name, kernel, stride) of each conv / max-pool / avg-pool layer, in definition order:
    meaningful for plain chains (VGG's ``features``), not for branching networks."""
    def first(v: Any) -> int:  # (3, 3) -> 3
        return int(v if isinstance(v, int) else v[0])

    return [(name, first(m.kernel_size), first(m.kernel_size if m.stride is None else m.stride))
            for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))]


# --------------------------------------------------------------------------- printing
# Integer columns that read better without thousands separators (2014, not 2,014).
PLAIN_INT_COLUMNS = frozenset({"year", "depth", "epoch", "step", "k", "s", "p", "kernel", "stride"})


def _fmt(value: Any, column: str = "") -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value) if column in PLAIN_INT_COLUMNS else f"{value:,}"
    if isinstance(value, float):
        return f"{int(value):,}" if value.is_integer() and abs(value) >= 1e4 else f"{value:.6g}"
    if isinstance(value, tuple):
        return " x ".join(str(v) for v in value)
    return "-" if value is None else str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
                 totals: Sequence[str] = (), formats: dict[str, str] | None = None) -> str:
    """Rows of dicts as a fixed-width text table (``print`` it). Integers get thousands
    separators (not year-like columns), floats six significant digits, shapes ``64 x 56 x 56``,
    missing values ``-``. ``columns``: which, in order (default: the first row's keys);
    ``totals``: columns summed in a last row; ``formats``: e.g. ``{"top5": "{:.1f}%"}``.
    """
    if not rows:
        return "(empty table)"
    columns = list(columns) if columns is not None else list(rows[0].keys())
    formats = formats or {}

    def cell(row: dict[str, Any], c: str) -> str:
        value = row.get(c)
        return formats[c].format(value) if c in formats and value is not None else _fmt(value, c)

    body = [[cell(row, c) for c in columns] for row in rows]
    if totals:
        body.append([_fmt(sum(row.get(c) or 0 for row in rows), c) if c in totals
                     else ("total" if i == 0 else "") for i, c in enumerate(columns)])
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row.get(c), (int, float)) or row.get(c) is None for row in rows)
               for c in columns]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(w) if num else cell.ljust(w)
                         for cell, w, num in zip(cells, widths, numeric, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [line(columns), rule, *(line(r) for r in body[: len(rows)])]
    if totals:
        lines += [rule, line(body[-1])]
    return "\n".join(lines)
