"""The graph IR: shaped nodes, with a frozen networkx DiGraph of them made on first use.

Node contract (one page, as fx's `Node` docstring):
- `id`: unique int; every input has a smaller id, so sorting by id is a topological order.
- `op`: a key of `ops.REGISTRY` (`Input` for the network's input).
- `args`: the op's arguments under torch.nn's names, completed by `infer` (`in_channels`, …).
- `inputs`: ids of the nodes whose outputs feed this one, in argument order.
- `type`: a `TensorType`, or `ERROR` when it could not be inferred; `error` then holds the reason on
  the node where inference failed (downstream nodes are poisoned silently).
- `path`: the label path (`("layer2", "0", "conv1")`), unique per node; it becomes the module name.
- `span`: the source that made the node; `instantiated_at`: the chain of block instances it lies in.

A `Graph` never changes after `elaborate`. Analyses return new mappings keyed by node id.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from types import MappingProxyType

from cnnc.compiler.ops import REGISTRY
from cnnc.compiler.types import ERROR, TensorType, Type, is_error
from cnnc.dsl.records import field, record
from cnnc.dsl.source import Span

TYPE_CHECKING = False  # `typing` stays unimported at run time (start-up); annotations only
if TYPE_CHECKING:
    from typing import Any


@record
class Instance:
    """One block instantiation: where it was made and what it was called with."""

    path: tuple[str, ...]
    call: str  # `Bottleneck(128, stride = 2)`, with evaluated arguments
    span: Span | None


@record
class Node:
    id: int
    op: str
    args: Mapping[str, Any]
    inputs: tuple[int, ...]
    type: Type
    path: tuple[str, ...]
    span: Span | None = field(default=None, compare=False)
    instantiated_at: tuple[Instance, ...] = field(default=(), compare=False)
    error: str | None = None

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def spec(self):
        return REGISTRY[self.op]


@record
class Scope:
    """A named group of nodes: a block instance (`kind="block"`) or a labelled sequence (`"seq"`)."""

    path: tuple[str, ...]
    kind: str
    title: str  # `Bottleneck(128, stride = 2)` or `Sequential`
    span: Span | None = field(default=None, compare=False)


class Graph:
    """A frozen, shaped DAG of `Node`s with its inputs and outputs.

    Inputs are the `Input` nodes, in declaration order (`inputs`); a network with several names
    each (`node.args["name"]`, also its path). Outputs are `(key, node id)` pairs: one with key None
    for a network returning a tensor (`output_kind` "tensor"), keys 0, 1, … for a tuple ("tuple"),
    names for named outputs ("dict"). `output` and `input` are the first of each, which is all a
    single-tensor network has.
    """

    def __init__(
        self,
        network: str,
        nodes,
        outputs,
        scopes=(),
        input_type=None,
        output_kind: str = "tensor",
        frozen=frozenset(),
        replaced=(),
    ):
        self.network = network
        # a derived network's parts: module paths whose parameters are not trained, and the label
        # paths whose layers replaced the parent's (a checkpoint of the parent has other tensors there)
        self.frozen: frozenset[tuple[str, ...]] = frozenset(frozen)
        self.replaced: tuple[tuple[str, ...], ...] = tuple(replaced)
        self._nodes: dict[int, Node] = {n.id: n for n in sorted(nodes, key=lambda n: n.id)}
        if outputs is None or isinstance(outputs, int):  # one tensor, by node id
            outputs = ((None, outputs),) if outputs is not None else ()
        self.outputs: tuple[tuple[int | str | None, int], ...] = tuple(outputs)
        self.output_kind = output_kind
        self.output: int | None = self.outputs[0][1] if self.outputs else None
        self.inputs: tuple[int, ...] = tuple(n.id for n in self._nodes.values() if n.op == "Input")
        self.scopes: Mapping[tuple[str, ...], Scope] = MappingProxyType({s.path: s for s in scopes})
        first = self._nodes[self.inputs[0]] if self.inputs else None
        self.input_type: TensorType | None = input_type or (
            first.type if first is not None else None
        )
        self._users: dict[int, list[int]] = {i: [] for i in self._nodes}
        for node in self._nodes.values():  # in id order, so each list comes out sorted
            for src in dict.fromkeys(node.inputs):
                self._users.setdefault(src, []).append(node.id)

    @cached_property
    def nx(self):
        """The graph as a frozen networkx DiGraph, for graph algorithms: networkx is the IR's graph
        library, and this is its one door (node ids as nodes, an edge per input with its `port`);
        read it rather than the Graph's private tables. Built on first use: importing networkx costs
        more than checking a whole network, and the analysis path needs none."""
        import networkx as nx

        g = nx.DiGraph()
        for node in self._nodes.values():
            g.add_node(node.id)
            for port, src in enumerate(node.inputs):
                g.add_edge(src, node.id, port=port)
        return nx.freeze(g)

    # access
    def nodes_in_order(self) -> list[Node]:
        return list(self._nodes.values())

    def node(self, node_id: int) -> Node:
        return self._nodes[node_id]

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node_id: int) -> bool:
        return node_id in self._nodes

    @property
    def input(self) -> Node | None:
        return next((n for n in self._nodes.values() if n.op == "Input"), None)

    @property
    def output_type(self) -> Type:
        return self._nodes[self.output].type if self.output is not None else ERROR

    @property
    def single(self) -> bool:
        """One unnamed input and one tensor out: the shape every classifier has."""
        return (
            len(self.inputs) <= 1
            and self.output_kind == "tensor"
            and "name" not in (self.input.args if self.input is not None else {})
        )

    def io_text(self) -> str:
        """`[3, 224, 224] → [1000]`; each named input and each output by name when there are several
        (`image [3, 224, 224], depth [1, 224, 224] → out [21, 224, 224], aux [21, 224, 224]`)."""
        if self.single:
            return f"{self.input_type} → {self.output_type}"
        ins = ", ".join(
            " ".join(filter(None, (self._nodes[i].args.get("name"), str(self._nodes[i].type))))
            for i in self.inputs
        )
        outs = ", ".join(f"{k} {self._nodes[i].type}" for k, i in self.outputs)
        return f"{ins} → {outs}"

    def is_output(self, node_id: int) -> bool:
        return node_id in self._output_ids

    @cached_property
    def _output_ids(self) -> frozenset[int]:
        return frozenset(i for _, i in self.outputs)

    def input_name(self, node_id: int) -> str:
        """An input's name: its declared name, `x` for the one unnamed input."""
        return self._nodes[node_id].args.get("name", "x")

    def users(self, node_id: int) -> list[int]:
        return list(self._users.get(node_id, ()))

    def first_error(self) -> Node | None:
        """The first node where inference failed; found once (renderers ask per cluster)."""
        return self._first_error

    @cached_property
    def _first_error(self) -> Node | None:
        return next((n for n in self._nodes.values() if n.error is not None), None)

    @property
    def ok(self) -> bool:
        return self.output is not None and all(not is_error(n.type) for n in self._nodes.values())

    # printing
    def __str__(self) -> str:
        return "\n".join(format_node(n) for n in self._nodes.values())

    # Graph → SVG text, for notebooks: the render room draws, and the IR may not import it (STYLE.md
    # §3), so a graph draws itself only with a renderer handed to it (`drawn_by`; the API's graphs)
    _diagram = None

    def drawn_by(self, diagram) -> Graph:
        """This graph, shown in notebooks as `diagram(graph)` (SVG text) draws it. A shallow copy:
        the nodes, frozen, are shared; the graph itself is left as it was."""
        import copy

        twin = copy.copy(self)
        twin._diagram = diagram
        return twin

    def _repr_svg_(self):
        """Jupyter shows the graph as its diagram when it has a renderer (`drawn_by`)."""
        return self._diagram(self) if self._diagram is not None else None

    # checking
    def lint(self) -> list[str]:
        """Internal invariants; a non-empty result is a bug in cnnc, not in the user's program."""
        problems = []
        paths: dict[tuple, int] = {}
        for n in self._nodes.values():
            problems += _lint_node(self, n)
            if n.path in paths:
                problems.append(f"%{n.id} and %{paths[n.path]} share the path `{n.name}`")
            paths[n.path] = n.id
        for key, out in self.outputs:
            if out not in self._nodes:
                problems.append(f"output {key!r} %{out} is not a node")
        return problems


def _lint_node(graph: Graph, n: Node) -> list[str]:
    problems = []
    if n.op not in REGISTRY:
        problems.append(f"%{n.id} has unknown op `{n.op}`")
        return problems
    if not REGISTRY[n.op].takes(len(n.inputs)):
        problems.append(
            f"%{n.id} `{n.op}` takes {REGISTRY[n.op].arity} inputs, has {len(n.inputs)}"
        )
    for src in n.inputs:
        if src not in graph or src >= n.id:
            problems.append(f"%{n.id} reads %{src}, which is missing or not earlier")
    if not isinstance(n.type, TensorType) and not is_error(n.type):
        problems.append(f"%{n.id} has type {n.type!r}")
    return problems


def format_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return format_value(value[0])
    if isinstance(value, tuple):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    if isinstance(value, TensorType):
        return str(value)
    if isinstance(value, str):
        return value
    return repr(value)


def format_node(n: Node) -> str:
    """`%7 layer2.0.conv1 = Conv(%6, out_channels=128, kernel_size=3, …) : [128, 28, 28]`."""
    parts = [f"%{i}" for i in n.inputs]
    parts += [f"{k}={format_value(v)}" for k, v in n.args.items() if k != "type"]
    return f"%{n.id} {n.name} = {n.op}({', '.join(parts)}) : {n.type}"
