"""Receptive fields over the whole graph, not just a chain.

Per spatial axis, each node gets the standard recurrence's size r, jump j and start s:
    j' = j·S,  r' = r + (K − 1)·j,  s' = s + ((K − 1)/2 − P)·j
with K the dilated kernel. Each op's rule is its registry entry's `rf` (`OpSpec.step`): a step
(K, S, P), `POINTWISE` (the field is unchanged), `GLOBAL` (global pooling, Linear, Flatten of a map:
every input position), `MEET` (merges) or `ORIGIN` (an input: one pixel). Where paths meet (concat,
add, mul) the sizes differ: the result keeps the smallest and the largest (`r_min`, `r_max`) — a
ResNet block's skip path sees less than its main path. An op reading a second tensor for its size
only (`Upsample(like = t)`, `Crop`) steps from its first input.

Sizes are in input pixels. An op that scales up has a fractional stride (upsampling by 2: S = 1/2),
so jumps and sizes may be fractions (`Fraction`, exact); `Field.size` rounds up to whole pixels.
"""

from __future__ import annotations

import math

from cnnc.compiler.ir import Graph, Node
from cnnc.compiler.ops import GLOBAL, MEET, ORIGIN, POINTWISE
from cnnc.compiler.types import is_error
from cnnc.dsl.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from fractions import Fraction


@record
class Axis:
    r_min: int | Fraction
    r_max: int | Fraction
    jump: int | Fraction
    start: float


@record
class Field:
    """Receptive field of one node, along height and width (input pixels)."""

    h: Axis
    w: Axis

    @property
    def size(self) -> int:
        return math.ceil(max(self.h.r_max, self.w.r_max))

    @property
    def size_min(self) -> int:
        return math.ceil(max(self.h.r_min, self.w.r_min))


def receptive_fields(graph: Graph) -> dict[int, Field]:
    out: dict[int, Field] = {}
    for n in graph.nodes_in_order():
        out[n.id] = _field(graph, n, out)
    return out


def _field(graph: Graph, n: Node, done: dict[int, Field]) -> Field:
    if not n.inputs:
        return Field(Axis(1, 1, 1, 0.5), Axis(1, 1, 1, 0.5))
    ins = [done[i] for i in n.inputs]
    if is_error(n.type):
        return _meet_all(graph, n, ins) if len(ins) > 1 else ins[0]
    step = n.spec.step(n.args, tuple(graph.node(i).type for i in n.inputs))
    if step is ORIGIN:
        return Field(Axis(1, 1, 1, 0.5), Axis(1, 1, 1, 0.5))
    if step is MEET:
        return _meet_all(graph, n, ins)
    inp = ins[0]  # a second input (`like = t`) gives a size, not a field
    if step is POINTWISE:
        return inp
    if step is GLOBAL:
        return _global(graph, n, inp)
    return Field(_step(inp.h, step.kernel[0], step.stride[0], step.padding[0]),
                 _step(inp.w, step.kernel[1], step.stride[1], step.padding[1]))


def _meet_all(graph: Graph, n: Node, ins: list[Field]) -> Field:
    grid = _grid_inputs(graph, n, ins)
    return Field(_meet([f.h for f in ins], [f.h for f in grid]), _meet([f.w for f in ins], [f.w for f in grid]))


def _step(a: Axis, k, s, p) -> Axis:
    start = a.start + float((k - 1) / 2 - p) * float(a.jump)
    return Axis(_exact(a.r_min + (k - 1) * a.jump), _exact(a.r_max + (k - 1) * a.jump), _exact(a.jump * s), start)


def _exact(value):
    """A whole Fraction as an int, so the usual integer fields stay ints (no `fractions` import:
    only ops that scale up make Fractions)."""
    return int(value) if type(value) is not int and getattr(value, "denominator", 0) == 1 else value


def _grid_inputs(graph: Graph, n: Node, ins: list[Field]) -> list[Field]:
    """The inputs that keep the output's positions: a broadcast [C, 1, 1] (an SE gate) sees every
    position but has no grid of its own, so its jump and start do not carry over (a stack of SE
    blocks would otherwise multiply the jump by the map's size at every block)."""
    out = n.type
    if is_error(out) or out.rank != 3:
        return ins
    same = [f for i, f in zip(n.inputs, ins)
            if not is_error(graph.node(i).type) and graph.node(i).type.shape[1:] == out.shape[1:]]
    return same or ins


def _meet(axes: list[Axis], grid: list[Axis]) -> Axis:
    widest = max(axes, key=lambda a: a.r_max)
    placed = max(grid, key=lambda a: a.r_max)
    return Axis(min(a.r_min for a in axes), widest.r_max, max(a.jump for a in grid), placed.start)


def _global(graph: Graph, n: Node, inp: Field) -> Field:
    t = graph.node(n.inputs[0]).type
    if is_error(t) or t.rank != 3:
        return inp
    _, height, width = t.shape
    return Field(_cover(inp.h, height), _cover(inp.w, width))


def _cover(a: Axis, size: int) -> Axis:
    """Every one of `size` positions, `jump` apart: r + (size − 1)·j."""
    return Axis(a.r_min + (size - 1) * a.jump, a.r_max + (size - 1) * a.jump, a.jump * size,
                a.start + (size - 1) / 2 * a.jump)
