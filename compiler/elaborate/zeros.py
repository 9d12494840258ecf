"""What a `Zero` makes dead: the last step of elaboration, before the graph is pruned.

Input: the elaboration's nodes (a list indexed by id) and the outputs' node ids. Output: the same
list with some nodes rewired, the outputs (some moved to an earlier node), and the ids that must be
kept: every node an output's value depends on, and no other (the network's inputs aside).

Rules, each keeping the network's value:
- a `Zero` in a sum is dropped from it (`a + Zero` is `a`), where the other operands alone give the
  sum's shape (a Zero that broadcasts them stays); a sum left with one operand is that operand, and
  a sum of Zeros only is its first Zero of the sum's shape;
- an Identity of a Zero is that Zero;
- a Zero's value depends on nothing, so what feeds it is not kept for its sake; a kept Zero whose
  input is not kept reads the nearest kept tensor above it instead (for the batch size only: its
  `shape` argument keeps its output's shape).

So the params, MACs, memory and modules of a branch that only feeds a Zero are gone from every
analysis and lowering at once.
"""

from __future__ import annotations

from cnnc.compiler.ir import Node
from cnnc.compiler.ops import OpError
from cnnc.compiler.ops.merge import broadcast
from cnnc.compiler.types import is_error
from cnnc.dsl.records import replace

ZERO = "Zero"
SUM = "Add"
SAME = "Identity"


def drop_zeros(nodes: list[Node], outputs: tuple) -> tuple[list[Node], tuple, set[int]]:
    """(nodes rewired, outputs moved, ids to keep): see the module docstring."""
    nodes = list(nodes)
    alias: dict[int, int] = {}
    for i, node in enumerate(nodes):
        inputs = tuple(alias.get(src, src) for src in node.inputs)
        if inputs != node.inputs:
            node = nodes[i] = replace(node, inputs=inputs)
        if node.op == SUM:
            _drop_from_sum(nodes, i, alias)
        elif node.op == SAME and len(inputs) == 1 and nodes[inputs[0]].op == ZERO:
            alias[i] = inputs[0]  # an Identity of zeros is those zeros (a skip from a cut node)
    outputs = tuple((key, alias.get(nid, nid)) for key, nid in outputs)
    keep = _needed(nodes, [nid for _, nid in outputs])
    nearest: dict[int, int] = {}  # many Zeros may read one dead branch: each is searched once
    for i in sorted(keep):
        node = nodes[i]
        if node.op == ZERO and node.inputs and node.inputs[0] not in keep:
            src = node.inputs[0]
            if src not in nearest:
                nearest[src] = _nearest_kept(nodes, src, keep)
            nodes[i] = replace(node, inputs=(nearest[src],))
    return nodes, outputs, keep


def _drop_from_sum(nodes: list[Node], i: int, alias: dict[int, int]) -> None:
    """Drop the Zero operands of the sum `nodes[i]`, or alias it to its one operand left."""
    node = nodes[i]
    zeros = [src for src in node.inputs if nodes[src].op == ZERO]
    if not zeros or is_error(node.type):
        return
    rest = tuple(src for src in node.inputs if nodes[src].op != ZERO)
    if not rest:
        same = [src for src in zeros if nodes[src].type == node.type]
        if same:  # else the Zeros broadcast one another: the sum's shape is none of theirs
            alias[i] = same[0]
        return
    if _sum_type(nodes, rest) != node.type:
        return  # a Zero that broadcasts the others is part of the shape
    if len(rest) == 1:
        alias[i] = rest[0]
    else:
        nodes[i] = replace(node, inputs=rest)


def _sum_type(nodes: list[Node], inputs: tuple[int, ...]):
    out = nodes[inputs[0]].type
    try:
        for src in inputs[1:]:
            out = broadcast("+", out, nodes[src].type)
    except OpError:
        return None
    return out


def _needed(nodes: list[Node], roots: list[int]) -> set[int]:
    """The ids the roots' values depend on: a Zero depends on none of its inputs."""
    keep, stack = set(), list(roots)
    while stack:
        nid = stack.pop()
        if nid not in keep:
            keep.add(nid)
            if nodes[nid].op != ZERO:
                stack.extend(nodes[nid].inputs)
    keep.update(n.id for n in nodes if n.op == "Input")
    return keep


def _nearest_kept(nodes: list[Node], start: int, keep: set[int]) -> int:
    """The kept tensor closest above `start` (breadth first; every chain ends at an input)."""
    seen, frontier = {start}, [start]
    while frontier:
        kept = [nid for nid in frontier if nid in keep]
        if kept:
            return max(kept)  # the latest: the tensor whose life a Zero extends least
        frontier = [src for nid in frontier for src in nodes[nid].inputs if src not in seen]
        seen.update(frontier)
    raise AssertionError(f"%{start} reaches no kept node")  # an input is always kept
