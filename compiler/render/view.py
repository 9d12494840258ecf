"""Graph → View: what a diagram shows, decided before anything is drawn (no graphviz here).

A `View` is the graph seen at a depth. Scopes (block instances, labelled sequences and merges) whose
path has at most `depth` parts become clusters; a scope of exactly `depth + 1` parts is collapsed into
one box; nodes outside collapsed scopes are drawn as themselves. `depth=None` collapses nothing. So
`depth=0` shows a network's stages as boxes, `depth=1` the stages as clusters of block boxes.

With `fold=True`, a run of collapsed boxes that are identical (same title, params, MACs and shapes)
and chained one to the next (each one's only edge out is the next one's only edge in) becomes one box
marked ×N.

Invariants: every IR node lies in exactly one box; each IR edge between two different boxes is one
View edge (edges between the same two boxes merged); box keys are unique and valid Graphviz IDs
without `:`; boxes come in the order of their first IR node; a box that holds an output is never
folded away.
"""

from __future__ import annotations

from collections.abc import Mapping

from cnnc.compiler.analysis.counts import macs, params
from cnnc.compiler.ir import Graph, Node, Scope
from cnnc.compiler.types import is_error
from cnnc.dsl.records import record, replace

Path = tuple[str, ...]


@record
class Box:
    """One drawn node: a single IR node (`scope is None`) or a collapsed scope."""

    key: str
    members: tuple[int, ...]  # the IR node ids it stands for, in order
    parent: Path  # the cluster it is drawn in; () is the top level
    params: int
    macs: int
    in_shapes: tuple[str, ...]  # shapes of the edges entering it, `64×56×56` (`?` when unknown)
    out_shape: str
    scope: Scope | None = None
    names: tuple[str, ...] = ()  # dotted names of the scopes it shows (several when folded ×N)
    error: str | None = None  # headline of the failing node inside, if any
    poisoned: bool = False  # its output shape is unknown because of a failure upstream

    @property
    def repeat(self) -> int:
        return max(1, len(self.names))


@record
class Edge:
    src: str
    dst: str
    shape: str  # the producer's output shape, `64×56×56`, or `?`
    role: str  # "ok" | "error" (enters the failing node) | "unknown" (carries no shape)
    quiet: bool = False  # the shape repeats the one entering its producer, within one cluster


@record
class View:
    graph: Graph
    depth: int | None
    boxes: tuple[Box, ...]
    edges: tuple[Edge, ...]
    clusters: Mapping[Path, Path]  # drawn cluster → its parent cluster (() for the top level)
    output: str | None  # key of the box that holds the graph's (first) output
    node_box: Mapping[int, str]  # IR node id → box key
    outputs: tuple[tuple[object, int, str], ...] = ()  # (output key, node id, box key), in order


def build_view(graph: Graph, depth: int | None = None, fold: bool = True) -> View:
    """The boxes, edges and clusters of `graph` at `depth` (see module docstring)."""
    node_box = {n.id: _box_key(n, graph.scopes, depth) for n in graph.nodes_in_order()}
    edges = _edges(graph, node_box)
    boxes = _boxes(graph, node_box, edges, depth)
    output = node_box.get(graph.output) if graph.output is not None else None
    if fold and depth is not None:
        kept = {node_box[i] for _, i in graph_outputs(graph)}
        boxes, edges, alias = _fold(boxes, edges, kept)
        node_box = {i: alias.get(k, k) for i, k in node_box.items()}
        output = alias.get(output, output) if output else None
    clusters = _clusters(boxes, graph.scopes, depth)
    edges = _mark_quiet(graph, boxes, edges)
    outputs = tuple((key, i, node_box[i]) for key, i in graph_outputs(graph))
    return View(graph, depth, tuple(boxes), tuple(edges), clusters, output, node_box, outputs)


def graph_outputs(graph: Graph) -> tuple[tuple[object, int], ...]:
    """(key, node id) per output: key None for a network's one tensor, a position or a name for
    several (`Graph.outputs`); a graph without `outputs` has its one `output`."""
    outputs = getattr(graph, "outputs", None)
    if outputs is not None:
        return tuple(outputs)
    return ((None, graph.output),) if graph.output is not None else ()


# -- where each node goes ---------------------------------------------------------------------


def collapsed_scope(path: Path, scopes: Mapping[Path, Scope], depth: int | None) -> Path | None:
    """The scope of `depth + 1` parts that swallows a node at `path`, if any."""
    if depth is None or len(path) <= depth + 1:
        return None
    prefix = path[: depth + 1]
    return prefix if prefix in scopes else None


def enclosing(path: Path, scopes: Mapping[Path, Scope], depth: int | None) -> Path:
    """The innermost scope strictly containing `path` with at most `depth` parts; () for none."""
    limit = len(path) - 1 if depth is None else min(len(path) - 1, depth)
    for k in range(limit, 0, -1):
        if path[:k] in scopes:
            return path[:k]
    return ()


def _box_key(node: Node, scopes, depth) -> str:
    scope = collapsed_scope(node.path, scopes, depth)
    return f"n{node.id}" if scope is None else "s_" + ".".join(scope)


def _edges(graph: Graph, node_box: Mapping[int, str]) -> list[Edge]:
    seen: dict[tuple[str, str], Edge] = {}
    for node in graph.nodes_in_order():
        for src_id in dict.fromkeys(node.inputs):
            src, dst = node_box[src_id], node_box[node.id]
            if src != dst and (src, dst) not in seen:
                seen[(src, dst)] = _edge(graph.node(src_id), node, src, dst)
    return list(seen.values())


def _edge(producer: Node, consumer: Node, src: str, dst: str) -> Edge:
    if is_error(producer.type):
        return Edge(src, dst, "?", "unknown")
    role = "error" if consumer.error is not None else "ok"
    return Edge(src, dst, producer.type.short(), role)


# -- boxes ------------------------------------------------------------------------------------


def _boxes(graph: Graph, node_box, edges: list[Edge], depth) -> list[Box]:
    members: dict[str, list[int]] = {}
    for node_id, key in node_box.items():
        members.setdefault(key, []).append(node_id)
    counts = (params(graph), macs(graph))
    entering: dict[str, list[str]] = {}
    for e in edges:
        entering.setdefault(e.dst, []).append(e.shape)
    outputs = frozenset(i for _, i in graph_outputs(graph))
    return [
        _box(graph, key, ids, counts, entering.get(key, []), node_box, depth, outputs)
        for key, ids in members.items()
    ]


def _box(
    graph: Graph, key: str, ids: list[int], counts, in_shapes, node_box, depth, outputs
) -> Box:
    nodes = [graph.node(i) for i in ids]
    out = _exit_node(graph, nodes, node_box, key, outputs)
    failing = next((n for n in nodes if n.error is not None), None)
    scope = None
    if key.startswith("s_"):
        scope = graph.scopes[collapsed_scope(nodes[0].path, graph.scopes, depth)]
    parent = enclosing(scope.path if scope else nodes[0].path, graph.scopes, depth)
    return Box(
        key=key,
        members=tuple(ids),
        parent=parent,
        params=sum(counts[0][i] for i in ids),
        macs=sum(counts[1][i] for i in ids),
        in_shapes=tuple(dict.fromkeys(in_shapes)),
        out_shape=out.type.short(),
        scope=scope,
        names=(".".join(scope.path),) if scope else (),
        error=failing.error if failing else None,
        poisoned=is_error(out.type) and failing is None,
    )


def _exit_node(graph: Graph, nodes: list[Node], node_box, key: str, outputs) -> Node:
    """The member whose value leaves the box (read outside it, or an output); else the last."""
    for n in nodes:
        if n.id in outputs or any(node_box[u] != key for u in graph.users(n.id)):
            return n
    return nodes[-1]


# -- ×N folding -------------------------------------------------------------------------------


def _fold(boxes: list[Box], edges: list[Edge], outputs: set[str]):
    """Merge runs of identical chained collapsed boxes, never past a box that holds an output;
    returns (boxes, edges, alias key → head key)."""
    outs: dict[str, list[Edge]] = {}
    ins: dict[str, list[Edge]] = {}
    for e in edges:
        outs.setdefault(e.src, []).append(e)
        ins.setdefault(e.dst, []).append(e)
    folded: list[Box] = []
    alias: dict[str, str] = {}
    last: Box | None = None  # the latest box of the run the head of `folded[-1]` stands for
    for box in boxes:
        if (
            last is not None
            and last.key not in outputs
            and _same(last, box)
            and _chained(last, box, outs, ins)
        ):
            head = folded[-1]
            folded[-1] = _merge(head, box)
            alias[box.key] = head.key
        else:
            folded.append(box)
        last = box
    return folded, _relink(edges, alias), alias


def _same(a: Box, b: Box) -> bool:
    if a.scope is None or b.scope is None or a.error or b.error or a.poisoned or b.poisoned:
        return False
    return (a.scope.title, a.parent, a.params, a.macs, a.in_shapes, a.out_shape) == (
        b.scope.title,
        b.parent,
        b.params,
        b.macs,
        b.in_shapes,
        b.out_shape,
    )


def _chained(a: Box, b: Box, outs, ins) -> bool:
    a_out, b_in = outs.get(a.key, []), ins.get(b.key, [])
    return len(a_out) == 1 and len(b_in) == 1 and a_out[0] is b_in[0]


def _merge(head: Box, box: Box) -> Box:
    return replace(
        head,
        members=head.members + box.members,
        params=head.params + box.params,
        macs=head.macs + box.macs,
        names=head.names + box.names,
        out_shape=box.out_shape,
    )


def _relink(edges: list[Edge], alias: Mapping[str, str]) -> list[Edge]:
    out: dict[tuple[str, str], Edge] = {}
    for e in edges:
        src, dst = alias.get(e.src, e.src), alias.get(e.dst, e.dst)
        if src != dst and (src, dst) not in out:
            out[(src, dst)] = replace(e, src=src, dst=dst)
    return list(out.values())


def _mark_quiet(graph: Graph, boxes: list[Box], edges: list[Edge]) -> list[Edge]:
    """Flag the edges whose shape a reader already knows: a single node that kept the shape entering it
    (BatchNorm, ReLU, `+`) feeding a node of the same cluster. Diagrams may leave their label off."""
    by_key = {b.key: b for b in boxes}
    out = []
    for e in edges:
        src, dst = by_key[e.src], by_key[e.dst]
        quiet = e.role == "ok" and _keeps_shape(graph, src) and src.parent == dst.parent
        out.append(replace(e, quiet=quiet))
    return out


def _keeps_shape(graph: Graph, box: Box) -> bool:
    if box.scope is not None:
        return False
    node = graph.node(box.members[0])
    return bool(node.inputs) and graph.node(node.inputs[0]).type == node.type


# -- clusters ---------------------------------------------------------------------------------


def _clusters(boxes: list[Box], scopes: Mapping[Path, Scope], depth) -> dict[Path, Path]:
    """Every scope that holds a drawn box, directly or through nested clusters, with its parent."""
    clusters: dict[Path, Path] = {}
    for box in boxes:
        path = box.parent
        while path and path not in clusters:
            clusters[path] = enclosing(path, scopes, depth)
            path = clusters[path]
    return clusters  # siblings in order of first appearance, which is topological
