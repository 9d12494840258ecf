"""IR node → the torch call that runs it, described as data (no torch import here).

Both lowerings read this one table: `fx.py` instantiates the descriptions, `source.py` prints them.
So a rule such as "BatchNorm on a vector is BatchNorm1d" or "Softmax's dim skips the batch" lives
in one place.

Contract:
- `layer(graph, node)` → `Layer(ctor, args, kwargs)` for every op but the merges and `Input`:
  `torch.nn.<ctor>(*args, **kwargs)` builds the module; `ctor` is the registry's `torch_ctor`
  (BatchNorm on a vector excepted). Keyword arguments equal to torch's defaults
  are left out, so printed constructors read like torchvision's (`nn.Conv2d(3, 64, kernel_size=7,
  stride=2, padding=3, bias=False)`).
- `bare_parameter(node)` describes a LayerScale, a parameter rather than a module.
- `merge_function(node)` names the function a merge applies to its inputs: `operator.add`,
  `operator.mul` (both folded left over more than two inputs) or `torch.cat` (on dim 1).
- `runs_in_place(graph, node)` says when an activation may overwrite its input (`inplace=True`, as
  torchvision writes it), and `add_target(graph, node)` picks the input an `Add` may accumulate into
  (`out += identity`, as torchvision's ResNet does). Both are the memory analysis's rule
  (`compiler/analysis/memory.py`), re-exported here: the memory column and the module agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cnnc.compiler.analysis.memory import add_target, runs_in_place
from cnnc.compiler.ir import Graph, Node
from cnnc.compiler.ops.extra import BARE_PARAMETER

__all__ = ["Layer", "add_target", "bare_parameter", "kind", "layer", "merge_function", "runs_in_place"]

MERGES = frozenset({"Add", "Mul", "Concat"})


@dataclass(frozen=True, slots=True)
class Layer:
    """`torch.nn.<ctor>(*args, **kwargs)`."""

    ctor: str  # a torch.nn class name ("Conv2d"), or a class of lower/layers.py by its dotted path
    args: tuple
    kwargs: Mapping[str, Any]


def kind(node: Node) -> str:
    """How a node lowers: "input", "merge" (a function), "parameter" (LayerScale) or "module"."""
    if node.op == "Input":
        return "input"
    if node.op in MERGES:
        return "merge"
    return "parameter" if node.op in BARE_PARAMETER else "module"


def layer(graph: Graph, node: Node) -> Layer:
    """The module that runs `node` (not a merge, not the input)."""
    args, kwargs = _BUILDERS[node.op](graph, node)
    ctor = node.spec.torch_ctor.removeprefix("torch.nn.")
    if node.op == "BatchNorm" and node.type.rank == 1:
        ctor = "BatchNorm1d"  # [N] after Flatten; the registry names the [C, H, W] case
    return Layer(ctor, args, kwargs)


def bare_parameter(node: Node) -> tuple[tuple[int, ...], float]:
    """(shape, initial value) of a LayerScale's parameter. It is kept on the enclosing module under
    the node's own name and multiplied in, `x * self.features[1][0].layer_scale`, as torchvision's
    ConvNeXt does."""
    assert node.op in BARE_PARAMETER
    return (node.args["channels"], 1, 1), node.args["init"]


def merge_function(node: Node) -> str:
    """`operator.add`, `operator.mul` or `torch.cat`, as the registry names it."""
    return node.spec.torch_ctor


def single(value):
    """(3, 3) → 3: how torchvision writes square kernels; other values unchanged."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return value[0]
    return value


def _kw(args: Mapping, defaults: Mapping) -> dict:
    """The arguments that differ from torch's defaults, pairs of equal sides written once."""
    return {k: single(args[k]) for k, default in defaults.items() if single(args[k]) != default}


def _conv(graph, n):
    a = n.args
    kwargs = {"kernel_size": single(a["kernel_size"])}
    kwargs |= _kw(a, {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True})
    return (a["in_channels"], a["out_channels"]), kwargs


def _linear(graph, n):
    return (n.args["in_features"], n.args["out_features"]), _kw(n.args, {"bias": True})


def _batchnorm(graph, n):
    return (n.args["num_features"],), _kw(n.args, {"eps": 1e-5, "momentum": 0.1, "affine": True})


def _lrn(graph, n):
    return (n.args["size"],), _kw(n.args, {"alpha": 1e-4, "beta": 0.75, "k": 1.0})


def _window(defaults: dict) -> Callable:
    """Max and average pools: torch's stride defaults to the kernel, as the IR's does."""

    def build(graph, n):
        a = n.args
        kwargs = {"kernel_size": single(a["kernel_size"])}
        if a["stride"] != a["kernel_size"]:
            kwargs["stride"] = single(a["stride"])
        return (), kwargs | _kw(a, defaults)

    return build


def _softmax(graph, n):
    dim = n.args["dim"]
    return (), {"dim": dim + 1 if dim >= 0 else dim}  # the DSL does not count the batch


def _activation(graph, n):
    kwargs = _kw(n.args, {"negative_slope": 0.01}) if n.op == "LeakyReLU" else {}
    if runs_in_place(graph, n):
        kwargs["inplace"] = True
    return (), kwargs


def _positional(*names: str) -> Callable:
    return lambda graph, n: (tuple(n.args[k] for k in names), {})


_BUILDERS: dict[str, Callable[[Graph, Node], tuple[tuple, dict]]] = {
    "Conv": _conv,
    "Linear": _linear,
    "BatchNorm": _batchnorm,
    "LocalResponseNorm": _lrn,
    "MaxPool": _window({"padding": 0, "dilation": 1, "ceil_mode": False}),
    "AvgPool": _window({"padding": 0, "ceil_mode": False, "count_include_pad": True}),
    "AdaptiveAvgPool": _positional("output_size"),
    "AdaptiveMaxPool": _positional("output_size"),
    "GlobalAvgPool": _positional(
        "output_size"
    ),  # AdaptiveAvgPool2d((1, 1)), as torchvision writes it
    "Softmax": _softmax,
    **dict.fromkeys(
        (
            "ReLU",
            "ReLU6",
            "LeakyReLU",
            "Sigmoid",
            "Tanh",
            "Hardswish",
            "Hardsigmoid",
            "SiLU",
            "GELU",
        ),
        _activation,
    ),
    "Flatten": _positional(),
    "Dropout": lambda graph, n: ((), _kw(n.args, {"p": 0.5})),
    "Identity": _positional(),
    "ChannelShuffle": _positional("groups"),
    # ops of compiler/ops/extra.py; their modules are in compiler/lower/layers.py
    "StochasticDepth": _positional("p"),
    "Chunk": _positional("chunks", "index"),
    "Scale": _positional("value"),
    "LayerNorm2d": lambda graph, n: ((n.args["normalized_shape"],), {"eps": n.args["eps"]}),
    "PointwiseLinear": _linear,
}


def lowered_ops() -> set[str]:
    """Every op this table knows (a contract test compares it with the registry)."""
    return set(_BUILDERS) | MERGES | BARE_PARAMETER | {"Input"}
