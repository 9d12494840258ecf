"""IR node → the torch call that runs it, described as data (no torch import here).

Both lowerings read this: `fx.py` instantiates the descriptions, `source.py` prints them. Each op's
own rule is in its registry entry (`OpSpec.build`, `OpSpec.lowering`); what is added here is what
depends on the whole graph.

Contract:
- `kind(node)` is the op's `Lowering`: INPUT, MERGE (a function), PARAMETER (LayerScale) or MODULE.
- `layer(graph, node)` → `Layer(ctor, args, kwargs)` for a MODULE node: `torch.nn.<ctor>(*args,
  **kwargs)` builds it (or the class of lower/layers.py that `ctor` names by its dotted path); its
  forward takes the node's inputs in order (x, then the tensor a `like` argument names).
  Keyword arguments equal to torch's defaults are left out, so printed constructors read like
  torchvision's (`nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)`).
- `bare_parameter(node)` describes a LayerScale, a parameter rather than a module.
- `merge_function(node)` names the function a merge applies to its inputs: `operator.add`,
  `operator.mul` (both folded left over more than two inputs) or `torch.cat` (on dim 1).
- `runs_in_place(graph, node)` says when an activation may overwrite its input (`inplace=True`, as
  torchvision writes it), and `add_target(graph, node)` picks the input an `Add` may accumulate into
  (`out += identity`, as torchvision's ResNet does). Both are the memory analysis's rule
  (`compiler/analysis/memory.py`), re-exported here: the memory column and the module agree.
"""

from __future__ import annotations

from cnnc.compiler.analysis.memory import add_target, runs_in_place
from cnnc.compiler.ir import Graph, Node
from cnnc.compiler.ops import REGISTRY, Layer, Lowering

__all__ = [
    "Layer",
    "Lowering",
    "add_target",
    "bare_parameter",
    "kind",
    "layer",
    "merge_function",
    "runs_in_place",
]


def kind(node: Node) -> Lowering:
    """How a node lowers (see `Lowering`)."""
    return node.spec.lowering


def layer(graph: Graph, node: Node) -> Layer:
    """The module that runs `node` (a MODULE node), `inplace=True` where the memory rule allows."""
    assert kind(node) is Lowering.MODULE, node.op
    built = node.spec.build(node)
    if runs_in_place(graph, node):
        built = Layer(built.ctor, built.args, {**built.kwargs, "inplace": True})
    return built


def bare_parameter(node: Node) -> tuple[tuple[int, ...], float]:
    """(shape, initial value) of a LayerScale's parameter. It is kept on the enclosing module under
    the node's own name and multiplied in, `x * self.features[1][0].layer_scale`, as torchvision's
    ConvNeXt does."""
    assert kind(node) is Lowering.PARAMETER, node.op
    shape, value = node.spec.build(node).args
    return shape, value


def merge_function(node: Node) -> str:
    """`operator.add`, `operator.mul` or `torch.cat`, as the registry names it."""
    return node.spec.torch_ctor


def lowered_ops() -> set[str]:
    """Every op with a lowering rule (`check_spec` requires one of each registered op)."""
    return {name for name, spec in REGISTRY.items() if isinstance(spec.lowering, Lowering)}
