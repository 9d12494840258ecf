"""Architectures up to graph isomorphism: when two members of a space are the same network.

Input: elaborated graphs (`compiler.ir.Graph`). Output: for each, the index of its architecture in
an `Architectures` registry, new or seen before.

Two graphs are one architecture when a bijection of their nodes keeps every node's label and every
edge's label:
- a node's label is its op, its arguments (torch's names, as the IR prints them) and its shape; a
  network input adds its name, an output its key. Labels and paths of layers are not part of it;
- an edge's label is the operand position it feeds, except into a commutative merge
  (`OpSpec.commutative`: Add, Mul), whose operands are unordered; Concat's are ordered. A node read
  twice by one node (`a + a`) is one edge labelled with both positions;
- an `Identity` is its input (it computes nothing); a `Zero` reads nothing (its input only gives
  the batch size, see `compiler/elaborate/zeros.py`);
- nodes without parameters or randomness that have one label and the same operands are one node
  (they compute one value: a pool of the input taken on two edges of a cell is one pool).

The key is a Weisfeiler–Lehman hash of that labelled graph (`key`); graphs of one key are then
compared exactly with networkx's VF2 matcher, so a hash collision never merges two architectures.
The match is bounded: VF2 may try exponentially many node pairings on graphs the hash cannot tell
apart (crafted, highly symmetric ones); after `MATCH_STEPS` pairings tried, the two are taken as
two architectures. The cost of that answer is at most one architecture evaluated twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import networkx as nx

from cnnc.compiler.ir import format_value

WL_ITERATIONS = 4  # rounds of neighbourhood hashing: enough to tell cells of a few nodes apart
MATCH_STEPS = 200_000  # node pairings one exact match may try (~0.3 s; a real match needs ~nodes)
TRANSPARENT = "Identity"
READS_NOTHING = "Zero"


@dataclass(frozen=True, slots=True)
class Labelled:
    """A graph as the module docstring labels it: node id → label, and (source, target, label)."""

    labels: dict[int, str]
    edges: tuple[tuple[int, int, str], ...]

    def nx(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from((n, {"label": label}) for n, label in self.labels.items())
        g.add_edges_from((a, b, {"label": label}) for a, b, label in self.edges)
        return g


def labelled(graph) -> Labelled:
    """The graph of the module docstring."""
    labels: dict[int, str] = {}
    edges: list[tuple[int, int, str]] = []
    same: dict[int, int] = {}  # a node → the node that computes the same value
    made: dict[tuple, int] = {}  # (label, operands) of each parameter-free node → its id
    for node in graph.nodes_in_order():
        operands = _operands(node, same)
        if node.op == TRANSPARENT and len(operands) == 1:
            same[node.id] = operands[0][0]
            continue
        label = _node_label(node)
        shared = (label, tuple(sorted(operands))) if _pure(graph, node) else None
        if shared is not None and shared in made:
            same[node.id] = made[shared]
            continue
        if shared is not None:
            made[shared] = node.id
        labels[node.id] = label
        edges += [(src, node.id, marks) for src, marks in operands]
    for name, nid in graph.outputs:
        labels[same.get(nid, nid)] += f" out={name}"
    return Labelled(labels, tuple(edges))


def _operands(node, same: dict[int, int]) -> list[tuple[int, str]]:
    """(source, edge label) per distinct source; none for a Zero (it reads nothing)."""
    if node.op == READS_NOTHING:
        return []
    ports: dict[int, list[str]] = {}
    unordered = node.spec.commutative
    for port, src in enumerate(node.inputs):
        ports.setdefault(same.get(src, src), []).append("*" if unordered else str(port))
    return [(src, ",".join(sorted(marks))) for src, marks in ports.items()]


def _pure(graph, node) -> bool:
    """A node without parameters or randomness: two of them with one label and the same operands
    compute one value (two identical pools of one tensor are one pool; two convolutions are not)."""
    spec = node.spec
    if node.op == "Input" or spec.training_tensor:
        return False
    inputs = tuple(graph.node(i).type for i in node.inputs)
    return spec.count_params(node.args, inputs, node.type) == 0


def _node_label(node) -> str:
    args = ", ".join(f"{k}={format_value(v)}" for k, v in sorted(node.args.items()) if k != "type")
    return f"{node.op}({args}) : {node.type}"


def key(g: Labelled) -> str:
    """The Weisfeiler–Lehman hash of `labelled`'s graph: each round, a node's label becomes the hash
    of its label and the sorted (edge label, label) pairs of its predecessors and of its successors;
    the key hashes the sorted labels of every round. Written here rather than networkx's, whose
    hashes of directed graphs changed between versions: a study keeps these keys across runs."""
    ins: dict[int, list] = {n: [] for n in g.labels}
    outs: dict[int, list] = {n: [] for n in g.labels}
    for a, b, label in g.edges:
        ins[b].append((label, a))
        outs[a].append((label, b))
    labels = {n: _digest(label) for n, label in g.labels.items()}
    seen = sorted(labels.values())
    for _ in range(WL_ITERATIONS):
        labels = {
            n: _digest(
                labels[n]
                + "("
                + ",".join(sorted(f"{e}<{labels[a]}" for e, a in ins[n]))
                + ")("
                + ",".join(sorted(f"{e}>{labels[b]}" for e, b in outs[n]))
                + ")"
            )
            for n in g.labels
        }
        seen += sorted(labels.values())
    return _digest("|".join(seen))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _same_label(a: dict, b: dict) -> bool:
    return a["label"] == b["label"]


class _OutOfSteps(Exception):
    pass


def matches(a: nx.DiGraph, b: nx.DiGraph, steps: int = MATCH_STEPS) -> bool:
    """Whether two `Labelled.nx` graphs are one architecture (exactly, not by key); False when the
    match tries more than `steps` node pairings (module docstring)."""
    if a.number_of_nodes() != b.number_of_nodes() or a.number_of_edges() != b.number_of_edges():
        return False
    left = [steps]

    def same_node(x: dict, y: dict) -> bool:  # VF2 asks it of each pairing it tries
        left[0] -= 1
        if left[0] < 0:
            raise _OutOfSteps
        return x["label"] == y["label"]

    matcher = nx.algorithms.isomorphism.DiGraphMatcher(
        a, b, node_match=same_node, edge_match=_same_label
    )
    try:
        return matcher.is_isomorphic()
    except _OutOfSteps:
        return False


class Architectures:
    """The distinct architectures seen so far: `add(graph)` → (index, new)."""

    def __init__(self):
        self._buckets: dict[str, list[tuple[nx.DiGraph, int]]] = {}
        self.count = 0

    def add(self, graph) -> tuple[int, bool]:
        """The index of `graph`'s architecture (0, 1, … in the order first seen); new: not seen."""
        g = labelled(graph)
        bucket = self._buckets.setdefault(key(g), [])
        if bucket:
            mine = g.nx()
            for other, index in bucket:
                if matches(mine, other):
                    return index, False
        index = self.count
        bucket.append((g.nx(), index))
        self.count += 1
        return index, True
