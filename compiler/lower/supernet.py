"""Members' graphs → `Supernet`: one `nn.Module` holding the layers of every member, weights shared.

Input: the slots planned from the graphs of the members to cover (`plan_slots`; a space's members,
elaborated by the search side) and a function that elaborates a member from its choice assignment
(`{decision: option label}`). Output: a `Supernet` whose forward runs any covered member's path.

Contract:
- A layer with weights (parameters or buffers) lives once in `store`, under its *slot*: the label
  path, the torch class and its keyword arguments (kernel, stride, padding, groups, …). Every member
  whose layer at that path has that class and those keywords uses the same weights: its positional
  arguments (channel counts: `Conv2d(in, out)`, `BatchNorm2d(c)`, `Linear(in, out)`) may differ,
  and the slot holds the largest of each, the member using the first `c` along every dimension
  (weight slicing, as once-for-all and BigNAS do); a depthwise convolution's `groups`, equal to its
  channels, counts as its width (`slot_of`). Where slicing would not give the member's own
  shapes, each positional variant is a slot of its own (shared only by equal layers).
- A member's forward is its own graph run by a `StepModule` whose modules at the weighted paths are
  `Shared` views of the store (the slot itself when the shapes are equal, else the slot's tensors
  sliced and put in place of the tensors of a weightless copy of the member's layer for the call,
  as `torch.func.functional_call` does);
  weightless layers (ReLU, pools) are the member's own. Gradients and BatchNorm's running
  statistics land in the store.
- `parameters()` are the store's alone: their count is the union of the options, each slot counted
  once at its largest shape. A member outside the covered graphs whose layer needs a slot or a
  shape the store lacks is refused with `NotCovered` (never silently truncated).
- LayerScale's bare parameters are not supported (`NotCovered` names the layer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.func import functional_call

from cnnc.compiler.ir import Graph
from cnnc.compiler.lower import modules
from cnnc.compiler.lower.fx import check_names, container, instantiate, uninitialised
from cnnc.compiler.lower.init import init_parameters
from cnnc.compiler.lower.steps import StepModule
from cnnc.compiler.ops import Lowering

PATHS = 256  # members' networks kept made at once (a long search meets many architectures)


class NotCovered(Exception):
    """A member needs a layer (or a shape of it) that the supernet does not hold."""


def slot_of(node, layer: modules.Layer) -> tuple:
    """What a layer shares its weights by: path, class and keywords (`inplace` aside). A depthwise
    convolution's `groups` is its width (`depthwise`): it is keyed as such, so depthwise layers of
    several widths share one weight, sliced as the other widths are (as once-for-all does)."""
    kwargs = tuple(
        sorted(
            (k, DEPTHWISE if k == "groups" and depthwise(layer) else repr(v))
            for k, v in layer.kwargs.items()
            if k != "inplace"
        )
    )
    return node.path, layer.ctor, kwargs, len(layer.args)


DEPTHWISE = "depthwise"  # a depthwise convolution's `groups` in its slot's key


def depthwise(layer: modules.Layer) -> bool:
    """A convolution whose groups, input and output channels are one count (`groups = c`)."""
    args, groups = layer.args, layer.kwargs.get("groups")
    return (
        layer.ctor in DEPTHWISE_CONVS
        and len(args) >= 2
        and type(groups) is int
        and groups > 1
        and args[0] == args[1] == groups
    )


DEPTHWISE_CONVS = ("Conv1d", "Conv2d", "Conv3d")


def tensor_shapes(layer: modules.Layer) -> dict[str, tuple[int, ...]]:
    """{name: shape} of the parameters and buffers of `layer`, built on `meta` (nothing allocated).

    Remembered by the layer's call, which alone decides them: a member's path asks for each of its
    layers, and building the module was most of what making a path cost."""
    key = (layer.ctor, repr(layer.args), repr(sorted(layer.kwargs.items())))
    shapes = _SHAPES.get(key)
    if shapes is None:
        with torch.device("meta"):
            module = uninitialised(layer)
        tensors = [*module.named_parameters(), *module.named_buffers()]
        shapes = {name: tuple(t.shape) for name, t in tensors}
        if len(_SHAPES) >= SHAPES:
            _SHAPES.clear()
        _SHAPES[key] = shapes
    return dict(shapes)  # the caller's own copy


SHAPES = 4_096  # layer calls whose shapes are remembered (a dict of a few names each)
_SHAPES: dict[tuple, dict[str, tuple[int, ...]]] = {}


def _largest(layers: list[modules.Layer]) -> modules.Layer | None:
    """The layer whose positional arguments are the largest of each, when they are all ints."""
    if any(not all(type(a) is int for a in layer.args) for layer in layers):
        return None
    args = tuple(max(values) for values in zip(*(layer.args for layer in layers)))
    kwargs = dict(layers[0].kwargs)
    if depthwise(layers[0]):  # the widest depthwise convolution: groups = its channels
        kwargs["groups"] = args[0]
    return modules.Layer(layers[0].ctor, args, kwargs)


def _nests(big: modules.Layer, layers: list[modules.Layer]) -> bool:
    """Whether every layer's tensors are leading slices of `big`'s (same names and ranks)."""
    top = tensor_shapes(big)
    for layer in layers:
        shapes = tensor_shapes(layer)
        if shapes.keys() != top.keys():
            return False
        for name, shape in shapes.items():
            if len(shape) != len(top[name]) or any(s > t for s, t in zip(shape, top[name])):
                return False
    return True


def plan_slots(graphs: list[Graph]) -> dict[tuple, list[modules.Layer]]:
    """{slot: the layers the store holds for it}: the largest when every variant nests in it,
    else each distinct variant (module docstring). Nothing is allocated."""
    groups: dict[tuple, list[modules.Layer]] = {}
    for graph in graphs:
        for node, layer in weighted_layers(graph):
            variants = groups.setdefault(slot_of(node, layer), [])
            if layer not in variants:
                variants.append(layer)
    plan = {}
    for key, layers in groups.items():
        big = _largest(layers)
        plan[key] = [big] if big is not None and _nests(big, layers) else layers
    return plan


def store_numel(plan: dict[tuple, list[modules.Layer]]) -> int:
    """Parameters and buffers the store of `plan` holds, counted before anything is allocated."""
    total = 0
    for layers in plan.values():
        for layer in layers:
            for shape in tensor_shapes(layer).values():
                total += math.prod(shape)
    return total


class Shared(nn.Module):
    """A member's layer over a store slot: the slot itself, or its tensors' leading slices."""

    def __init__(self, entry: nn.Module, template: nn.Module | None):
        super().__init__()
        self.entry = entry
        # a weightless copy of the member's own layer (on `meta`), or None when the shapes are equal
        self.template = template
        self.shapes = (
            {}
            if template is None
            else {
                n: tuple(t.shape)
                for n, t in [*template.named_parameters(), *template.named_buffers()]
            }
        )
        self.nested = any("." in name for name in self.shapes)  # tensors of submodules

    def forward(self, *inputs):
        if self.template is None:
            return self.entry(*inputs)
        if self.nested:
            return functional_call(self.template, self.views(), inputs)
        return self._swapped(inputs)

    def _swapped(self, inputs):
        """The template run with the views in place of its own tensors, then put back:
        functional_call's work for a leaf layer, at a fraction of its cost a call."""
        own = self.template._parameters, self.template._buffers
        saved = []
        for name, view in self.views().items():
            table = own[0] if name in own[0] else own[1]
            saved.append((table, name, table[name]))
            table[name] = view
        try:
            return self.template(*inputs)
        finally:
            for table, name, original in saved:
                table[name] = original

    def views(self) -> dict[str, torch.Tensor]:
        """The slot's tensors cut to the member's shapes: leading slices, views of the store."""
        out = {}
        for name, shape in self.shapes.items():
            tensor = _tensor(self.entry, name)
            out[name] = tensor[tuple(slice(0, s) for s in shape)]
        return out


def _tensor(module: nn.Module, name: str) -> torch.Tensor:
    try:
        return module.get_parameter(name)
    except AttributeError:
        return module.get_buffer(name)


class Supernet(nn.Module):
    """Every covered member's layers, shared (module docstring). `set_member(assignment)` picks the
    path `forward(x)` runs; `forward(x, member=assignment)` runs another without changing it."""

    def __init__(
        self,
        plan: dict[tuple, list[modules.Layer]],
        elaborate: Callable[[Mapping[str, str]], Graph],
        seed: int | None = None,
    ):
        super().__init__()
        self.store = nn.ModuleDict()
        self._elaborate = elaborate
        self._slots: dict[tuple, list[tuple[str, modules.Layer]]] = {}
        # each architecture's network over the store, by the graph's text; not registered (they
        # hold no weights of their own), the oldest let go beyond PATHS
        self._paths: dict[str, StepModule] = {}
        self._texts: dict[int, tuple[Graph, str]] = {}  # id(graph) -> (graph, str(graph))
        self._current: Graph | None = None
        self._per_path: dict[str, int] = {}
        for key, layers in plan.items():
            for layer in layers:
                self._add_slot(key, layer)
        init_parameters(self.store, seed)

    # -- the store ---------------------------------------------------------------------------

    def _add_slot(self, key: tuple, layer: modules.Layer) -> None:
        """The slot's module, named `blocks/0/conv:1`: its path, then a count per path (a name no
        attribute of ModuleDict can have)."""
        path = "/".join(key[0])
        self._per_path[path] = self._per_path.get(path, -1) + 1
        name = f"{path}:{self._per_path[path]}"
        self.store[name] = uninitialised(layer)
        self._slots.setdefault(key, []).append((name, layer))

    def slot(self, node, layer: modules.Layer) -> tuple[str, nn.Module]:
        """The store entry a member's layer uses (its name and module); `NotCovered` if none fits."""
        for name, big in self._slots.get(slot_of(node, layer), []):
            if big == layer or _nests(big, [layer]):
                return name, self.store[name]
        raise NotCovered(f"the supernet holds no weights for `{node.name}` as {_call(layer)}")

    # -- members -----------------------------------------------------------------------------

    def set_member(self, assignment: Mapping[str, str]) -> Graph:
        """Run `assignment`'s member from now on (`{decision: option label}`); returns its graph."""
        self._current = self._elaborate(assignment)
        self.path(self._current)
        return self._current

    def path(self, graph: Graph) -> StepModule:
        """The member's network over the store (made once per architecture)."""
        key = self._text(graph)
        found = self._paths.get(key)
        if found is None:
            check_names(graph)  # labels that torch would refuse as module names (E0207)
            found = StepModule(self._member_root(graph), graph)
            if len(self._paths) >= PATHS:
                del self._paths[next(iter(self._paths))]
            self._paths[key] = found
        return found

    def _text(self, graph: Graph) -> str:
        """The graph's text, which names its architecture. A dump of every node, so remembered per
        graph object: training and scoring pass the same few graphs at every batch. The graph is
        held beside its text, so its id cannot be reused while remembered."""
        known = self._texts.get(id(graph))
        if known is not None and known[0] is graph:
            return known[1]
        if len(self._texts) >= PATHS:
            del self._texts[next(iter(self._texts))]
        text = str(graph)
        self._texts[id(graph)] = (graph, text)
        return text

    def _member_root(self, graph: Graph) -> nn.Module:
        root = nn.Module()
        for node in graph.nodes_in_order():
            if modules.kind(node) is Lowering.PARAMETER:
                raise NotCovered(f"`{node.name}`: a supernet does not hold bare parameters yet")
            if modules.kind(node) is not Lowering.MODULE:
                continue
            layer = modules.layer(graph, node)
            module = self._shared(node, layer) if tensor_shapes(layer) else instantiate(layer)
            container(root, graph, node.path[:-1]).add_module(node.path[-1], module)
        return root

    def _shared(self, node, layer: modules.Layer) -> Shared:
        name, entry = self.slot(node, layer)
        if self._slot_layer(name) == layer:
            return Shared(entry, None)
        with torch.device("meta"):
            template = uninitialised(layer)
        return Shared(entry, template)

    def slices(self, graph: Graph) -> bool:
        """Whether the member uses some slot at a smaller shape than the slot's own."""
        for node, layer in weighted_layers(graph):
            name, _ = self.slot(node, layer)
            if self._slot_layer(name) != layer:
                return True
        return False

    def _slot_layer(self, name: str) -> modules.Layer:
        return next(layer for slots in self._slots.values() for n, layer in slots if n == name)

    def forward(self, *inputs, member: Mapping[str, str] | Graph | None = None):
        graph = self._graph(member)
        net = self.path(graph)
        net.train(self.training)
        return net(*inputs)

    def _graph(self, member) -> Graph:
        if member is None:
            if self._current is None:
                raise RuntimeError("no member chosen: call `set_member({...})` or pass `member=`")
            return self._current
        return member if isinstance(member, Graph) else self._elaborate(member)

    def member_state_dict(self, member: Mapping[str, str] | Graph) -> dict[str, torch.Tensor]:
        """The member's weights as its own module's state_dict (keys `blocks.0.conv.weight`), each a
        copy of its slice of the store: loaded into `to_step_module(graph)` it computes the same."""
        graph = self._graph(member)
        out = {}
        for node, layer in weighted_layers(graph):
            shared = self._shared(node, layer)
            tensors = shared.views() if shared.template is not None else shared.entry.state_dict()
            for name, tensor in tensors.items():
                out[f"{node.name}.{name}"] = tensor.detach().clone()
        return out


def weighted_layers(graph: Graph):
    """(node, layer) for each module of `graph` that holds parameters or buffers, in order."""
    for node in graph.nodes_in_order():
        if modules.kind(node) is Lowering.MODULE:
            layer = modules.layer(graph, node)
            if tensor_shapes(layer):
                yield node, layer


def _call(layer: modules.Layer) -> str:
    args = [repr(a) for a in layer.args] + [f"{k}={v!r}" for k, v in layer.kwargs.items()]
    return f"{layer.ctor}({', '.join(args)})"
