"""Graph IR → `torch.fx.GraphModule`: one straight-line `forward`, modules named by label paths.

Contract of `to_graph_module(graph)`:
- `graph` has no ERROR node (`graph.ok`); the result is a `CnncModule` (a GraphModule) whose
  forward takes `[N, *graph.input_type.shape]` and returns `[N, *graph.output_type.shape]`; a
  network with several inputs takes one argument per input, by its name (`forward(image, depth)`),
  and one with several outputs returns a tuple or a dict (`{"out": …, "aux": …}`) of them.
- Every IR node but the input becomes exactly one fx node: `call_module` for ops that are torch
  modules (registered under the node's path: `layer1.0.conv1`, so state_dict keys are
  `layer1.0.conv1.weight`), `call_function` for merges (`operator.add`, `operator.mul`,
  `torch.cat`; an `Add` whose input nothing else reads is `add_` into it, as torchvision's
  `out += identity`). `fx_node.meta["cnnc_id"]` holds the IR node id.
- Path prefixes become containers: a labelled sequence an `nn.Sequential`, a block instance a
  `Block` that prints with the block's name and arguments (`(0): Bottleneck(64, stride = 2`).
  Parameter-free modules (ReLU, pools) add no state_dict keys, so the keys are those of a
  hand-written model with the same names (torchvision's, for the zoo).
- Weights follow `init.init_parameters`; the same `seed` gives the same state_dict. On the `meta`
  device nothing is initialised (shape and FLOP checks use that).
"""

from __future__ import annotations

import contextlib
import copy
import operator

import torch
from torch import fx, nn

from cnnc.compiler.ir import Graph, Node
from cnnc.compiler.lower import layers, modules
from cnnc.compiler.lower.init import init_parameters
from cnnc.compiler.lower.naming import (  # noqa: F401  (fx's names, as callers import them)
    Block,
    check_names,
    class_name,
    reserved_names,
)
from cnnc.compiler.lower.source import to_source
from cnnc.compiler.lower.walk import Walk, outputs
from cnnc.compiler.ops import Lowering

_FUNCTIONS = {"operator.add": operator.add, "operator.mul": operator.mul, "torch.cat": torch.cat}


class CnncModule(fx.GraphModule):
    """A GraphModule that keeps the IR it came from (`cnnc_graph`) and prints as a module tree."""

    cnnc_graph: Graph

    def cnnc_summary(self):
        """Static analysis of the IR (params, MACs, per-layer rows); see `analysis.summary`."""
        from cnnc.compiler.analysis.summary import summarize

        return summarize(self.cnnc_graph)

    def cnnc_source(self, seed: int | None = None) -> str:
        """The standalone PyTorch source of this network (see `lower.source`)."""
        return to_source(self.cnnc_graph, seed=seed)

    def __str__(self) -> str:
        return nn.Module.__repr__(self)  # the module tree; `model.code` shows the forward

    def _repr_svg_(self):
        """Jupyter shows a compiled model as the diagram of its network."""
        return self.cnnc_graph._repr_svg_()

    def __deepcopy__(self, memo):
        memo[id(self.cnnc_graph)] = self.cnnc_graph  # frozen: shared, not copied
        res = super().__deepcopy__(memo)
        for name, child in self.named_children():  # memoised copies: Sequential and Block kept
            setattr(res, name, copy.deepcopy(child, memo))
        res.cnnc_graph = self.cnnc_graph
        return res


def to_graph_module(graph: Graph, seed: int | None = None, device=None) -> CnncModule:
    """See the module docstring. `device` is where the weights live (default CPU)."""

    def make(root: nn.Module) -> CnncModule:
        gm = graph_module(root, build_fx_graph(graph), class_name(graph.network))
        gm.cnnc_graph = graph
        return gm

    return lower(graph, make, seed, device)


def lower(graph: Graph, make, seed: int | None = None, device=None):
    """`make(root)`, the network's module over the modules of `graph` (`build_modules`), initialised
    from `seed` and moved to `device` (default CPU; on `meta` nothing is initialised), its frozen
    parameters frozen. Shared by `to_graph_module` and `steps.to_step_module`."""
    if not graph.ok:
        raise ValueError(f"cannot lower `{graph.network}`: the graph has errors")
    check_names(graph)
    device = torch.device(device or "cpu")
    on_meta = device.type == "meta"
    # built on the CPU (the same seed, the same weights anywhere), storage left uninitialised
    with torch.device("meta") if on_meta else contextlib.nullcontext():
        root = build_modules(graph)
    model = make(root)
    if not on_meta:
        init_parameters(model, seed)  # every value set once, as `init_parameters` says
        fill_bare_parameters(model, graph)
        if device != torch.device("cpu"):
            model.to(device)
    freeze(model, graph)
    return model


def graph_module(root: nn.Module, fx_graph: fx.Graph, name: str) -> CnncModule:
    """A `CnncModule` named `name` that runs `fx_graph` over `root`'s own modules and parameters.

    `root`'s children (its `nn.Sequential` and `Block` containers included) and parameters are
    moved over as they are, in their order, and the forward is generated once: GraphModule's own
    constructor would copy each target into plain containers and generate code for them."""
    gm = CnncModule({}, fx.Graph(), class_name=name)  # an empty forward, replaced below
    gm.training = root.training
    adopt(gm, root)
    gm.graph = fx_graph  # generates and compiles `forward`
    return gm


def adopt(module: nn.Module, root: nn.Module) -> None:
    """Register `root`'s own parameters (a LayerScale of the network itself) and children on
    `module`, as they are and in their order."""
    for key, param in root._parameters.items():
        module.register_parameter(key, param)
    for key, child in root._modules.items():
        module.add_module(key, child)


def freeze(gm: nn.Module, graph: Graph) -> None:
    """A derived network's `freeze`: those modules' parameters do not take gradients."""
    for path in sorted(graph.frozen):
        if path:
            for p in gm.get_submodule(".".join(path)).parameters(recurse=False):
                p.requires_grad_(False)


# ---------------------------------------------------------------------------------------------
# Modules


def build_modules(graph: Graph) -> nn.Module:
    """A root module holding every op's module at its path, containers made at first use.
    Parameters are allocated but not initialised (see `uninitialised`)."""
    root = nn.Module()
    for node in graph.nodes_in_order():
        if modules.kind(node) is Lowering.MODULE:
            parent = container(root, graph, node.path[:-1])
            parent.add_module(node.path[-1], uninitialised(modules.layer(graph, node)))
        elif modules.kind(node) is Lowering.PARAMETER:
            shape, _ = modules.bare_parameter(node)
            parent = container(root, graph, node.path[:-1])
            parent.register_parameter(node.path[-1], nn.Parameter(torch.empty(shape)))
    return root


def fill_bare_parameters(gm: nn.Module, graph: Graph) -> None:
    """Give each LayerScale its initial value (they draw nothing from the generator)."""
    with torch.no_grad():
        for node in graph.nodes_in_order():
            if modules.kind(node) is Lowering.PARAMETER:
                gm.get_parameter(node.name).fill_(modules.bare_parameter(node)[1])


def instantiate(spec: modules.Layer) -> nn.Module:
    """The module `spec` describes, initialised by its own constructor."""
    return layer_class(spec)(*spec.args, **spec.kwargs)


def layer_class(spec: modules.Layer) -> type[nn.Module]:
    if spec.ctor.startswith("cnnc."):  # an op torch.nn lacks: compiler/lower/layers.py
        return getattr(layers, spec.ctor.rpartition(".")[2])
    return getattr(nn, spec.ctor)


def _skip_reset() -> None:
    """Stands in for a module's `reset_parameters` while its constructor runs."""


def uninitialised(spec: modules.Layer) -> nn.Module:
    """The module `spec` describes, its constructor's `reset_parameters` skipped: parameters hold
    whatever their fresh storage held (as `to_empty` leaves them) until `init_parameters` sets them,
    so each value is drawn once and the global generator is not touched. Buffers a constructor
    fills itself (BatchNorm's running statistics) keep their values. The class is `spec`'s own."""
    cls = layer_class(spec)
    module = cls.__new__(cls)
    # an instance attribute hides the method from the constructor's `self.reset_parameters()`
    object.__setattr__(module, "reset_parameters", _skip_reset)
    module.__init__(*spec.args, **spec.kwargs)
    del module.__dict__["reset_parameters"]
    return module


def container(root: nn.Module, graph: Graph, path: tuple[str, ...]) -> nn.Module:
    """The module at `path`, made (with its parents) if missing."""
    module = root
    for depth in range(1, len(path) + 1):
        name = path[depth - 1]
        if name not in module._modules:
            module.add_module(name, new_container(graph, path[:depth]))
        module = module._modules[name]
    return module


def new_container(graph: Graph, path: tuple[str, ...]) -> nn.Module:
    scope = graph.scopes.get(path)
    if scope is not None and scope.kind == "seq":
        return nn.Sequential()
    return Block(scope.title if scope is not None else path[-1])


# ---------------------------------------------------------------------------------------------
# Forward


def build_fx_graph(graph: Graph) -> fx.Graph:
    """One fx node per IR node, in the IR's (topological) order."""
    return FxWalk(graph).run()


class FxWalk(Walk):
    """The IR as an fx graph: each step adds its fx node(s); `meta["cnnc_id"]` names the IR node."""

    def __init__(self, graph: Graph):
        super().__init__(graph)
        self.g = fx.Graph()

    def step(self, node: Node, args: list) -> fx.Node:
        value = super().step(node, args)
        value.meta["cnnc_id"] = node.id
        return value

    def output(self, values: dict) -> fx.Graph:
        self.g.output(outputs(self.graph, values))
        return self.g

    def input(self, node: Node) -> fx.Node:
        return self.g.placeholder(self.graph.input_name(node.id))

    def module(self, node: Node, args: list) -> fx.Node:
        return self.g.call_module(node.name, tuple(args))

    def parameter(self, node: Node, args: list) -> fx.Node:
        scale = self.g.get_attr(node.name)
        return self.g.create_node(
            "call_function", operator.mul, (args[0], scale), name=_fx_name(node)
        )

    def cat(self, node: Node, args: list) -> fx.Node:
        return self.g.create_node(
            "call_function", torch.cat, (args,), {"dim": 1}, name=_fx_name(node)
        )

    def accumulate(self, node: Node, args: list, target: int) -> fx.Node:
        value = args[target]  # `out += identity`: into an input nothing else reads
        for other in args[:target] + args[target + 1 :]:
            value = self.g.create_node(
                "call_method", node.spec.accumulate, (value, other), name=_fx_name(node)
            )
        return value

    def fold(self, node: Node, args: list, function: str) -> fx.Node:
        value = args[0]
        for other in args[1:]:  # a + b + c, folded left as Python evaluates it
            value = self.g.create_node(
                "call_function", _FUNCTIONS[function], (value, other), name=_fx_name(node)
            )
        return value


def merge(g: fx.Graph, graph: Graph, node: Node, inputs: list[fx.Node]) -> fx.Node:
    """The fx node(s) of one merge node of `graph`, added to `g` (FxWalk's merge step, for a lowering
    that builds its own fx graph)."""
    walk = FxWalk(graph)
    walk.g = g
    return walk.merge(node, inputs)


def _fx_name(node: Node) -> str:
    return node.name.replace(".", "_")


def example_inputs(
    graph: Graph, batch: int = 2, device=None, make=torch.randn
) -> tuple[torch.Tensor, ...]:
    """One tensor `[batch, *shape]` per input, in forward's argument order."""
    return tuple(make(batch, *graph.node(i).type.shape, device=device) for i in graph.inputs)


def output_names(graph: Graph) -> list[str]:
    """Names for an exported program's outputs: `y`, the dict's keys, or `y0`, `y1`, … of a tuple."""
    if graph.output_kind == "dict":
        return [str(k) for k, _ in graph.outputs]
    if graph.output_kind == "tuple":
        return [f"y{k}" for k, _ in graph.outputs]
    return ["y"]
