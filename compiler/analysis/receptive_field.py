"""Receptive fields over the whole graph, exact for every position, in integers.

The field of an output position is the set of network-input pixels its value depends on; its size
along an axis is the span from the first of them to the last. Each op says which input positions
each output position reads (`OpSpec.rf`: a `Reads` pattern per axis, see `compiler/ops/reads.py`,
or `POINTWISE`, `GLOBAL`, `MEET`, `ORIGIN`), and this pass composes those patterns, per axis, in
one of two ways:

- **Local fields** (`Axis`): a periodic lattice over every integer position. Position
  q·period + r spans q·advance + [lo[r], hi[r]]; positions past a map's edge are those of a larger
  input, so a field is the one a position has where the input does not clip it — the usual
  receptive field, made exact per position. An upsampled map repeats every few positions (U-Net's
  head: 188 or 204 pixels, period 16), a conv's map every position. Where paths meet, each
  position's span is the union of its spans on each path.
- **Fields at the declared input** (`Clipped`): the span of every position of the map, reading
  only positions that exist (padding reads nothing), so the input's edges clip them. A node gets
  these once its field depends on a global op (global pooling, Flatten, Linear, a Softmax over an
  axis: they read every position of a map, whose extent is that of the declared input), where
  paths stepping through the input at different rates meet (no common period), or where a pattern
  would repeat only after `MAX_PERIOD` positions. A node every position of which sees the whole
  input says so (`whole`), and later global operations add nothing.

A reshape from one map to another regroups positions (each output position reads input positions
that are not a product of rows and columns): its field, and those after it, are taken as the span
of every position it reads, an upper bound, flagged `exact` False.

Normalisation statistics (GroupNorm, InstanceNorm, BatchNorm in training) are not part of a field:
norms are per-position ops here, as BatchNorm is at inference. A field is the union over a node's
channels (a `Chunk` of a concat keeps the union of the concat's inputs, an upper bound for its
channels), and a product depends on both factors (even where one is a constant, a border that reads
only padding).

`rf` is the largest span any position of a node's map has (the larger of the two axes), `rf_min`
the smallest. The work is bounded before it is spent: at most `MAX_WORK` positions looked at for a
graph, maps of at most `MAX_CLIPPED` positions kept one by one; past those bounds (only
pathological graphs reach them) a field is an upper bound, flagged `exact` False.
"""

from __future__ import annotations

import math
import operator

from cnnc.compiler.ir import Graph, Node
from cnnc.compiler.ops import GLOBAL, MEET, ORIGIN, POINTWISE, REGROUPED
from cnnc.compiler.ops.reads import Reads
from cnnc.compiler.types import is_error
from cnnc.dsl.records import record

MAX_PERIOD = 4096  # positions after which a lattice must repeat
MAX_CLIPPED = 1 << 14  # positions of a map kept one by one
MAX_WORK = (
    1 << 19
)  # positions looked at or kept in all, for one graph (the zoo needs 39,000 at most)

NOTHING = (1 << 62, -(1 << 62))  # the span of a position that reads nothing


@record
class Axis:
    """Local fields along one axis: see the module docstring."""

    period: int
    advance: int
    lo: tuple[int, ...]
    hi: tuple[int, ...]


@record
class Clipped:
    """Fields at the declared input along one axis: the span of each of the map's positions."""

    lo: tuple[int, ...]
    hi: tuple[int, ...]


@record
class Extent:
    """What a node's positions see along one axis: the smallest and largest span, input pixels."""

    smallest: int
    largest: int
    whole: bool  # every position sees the whole input axis


@record
class Field:
    """Receptive field of one node, along height and width."""

    h: Extent
    w: Extent
    exact: bool = True  # False past the bounds: sizes are upper bounds
    clipped: bool = False  # at the declared input (its edges clip the spans), not where it does not

    @property
    def size(self) -> int:
        return max(self.h.largest, self.w.largest)

    @property
    def size_min(self) -> int:
        return max(self.h.smallest, self.w.smallest)

    @property
    def whole(self) -> bool:
        return self.exact and self.h.whole and self.w.whole


class Budget:
    """Positions the pass may still look at (`MAX_WORK` for a graph)."""

    __slots__ = ("left",)

    def __init__(self, left: int):
        self.left = left

    def spend(self, work: int) -> bool:
        """Whether `work` fits; if so it is spent."""
        if work > self.left:
            return False
        self.left -= work
        return True


@record
class Patterns:
    """Per node id: local fields along (height, width), or None where the node has fields at the
    declared input only; those (`clipped`) where they were needed and fit the bounds."""

    local: dict
    clipped: dict
    inexact: frozenset  # nodes whose spans are upper bounds (they read a regrouping reshape)


def receptive_fields(graph: Graph) -> dict[int, Field]:
    inputs = _spatial(graph.input_type) if graph.input_type is not None else (1, 1)
    found = patterns(graph)
    out: dict[int, Field] = {}
    seen: dict[
        tuple, Extent
    ] = {}  # an axis passed on unchanged (a per-position op) is measured once
    for n in graph.nodes_in_order():
        sizes = _spatial(n.type)
        local, clipped = found.local[n.id], found.clipped.get(n.id)
        if local is not None:
            keys = [(id(a), m) for a, m in zip(local, sizes)]
            h, w = (
                seen[k] if k in seen else seen.setdefault(k, _extent(a, m))
                for k, a, m in zip(keys, local, sizes)
            )
            out[n.id] = Field(h, w)
        elif clipped is not None:
            h, w = (_clipped_extent(c, size) for c, size in zip(clipped, inputs))
            out[n.id] = Field(h, w, n.id not in found.inexact, clipped=True)
        else:  # past the bounds: at most the whole input
            out[n.id] = Field(
                Extent(inputs[0], inputs[0], False),
                Extent(inputs[1], inputs[1], False),
                False,
                True,
            )
    return out


def patterns(graph: Graph) -> Patterns:
    budget = Budget(MAX_WORK)
    steps = {n.id: _step(graph, n) for n in graph.nodes_in_order()}
    local: dict[int, tuple[Axis, Axis] | None] = {}
    for n in graph.nodes_in_order():
        local[n.id] = _local(graph, n, steps[n.id], local, budget)
    inexact: set[int] = set()
    for n in graph.nodes_in_order():
        if steps[n.id] is REGROUPED or any(i in inexact for i in n.inputs):
            inexact.add(n.id)
    return Patterns(local, _clipped_fields(graph, steps, local, budget), frozenset(inexact))


def _spatial(t) -> tuple[int, int]:
    """Positions along (height, width): a vector, or a failed node, is one position."""
    return tuple(t.shape[1:]) if not is_error(t) and t.rank == 3 else (1, 1)


def _step(graph: Graph, n: Node):
    """The node's rule: ORIGIN, MEET, POINTWISE, GLOBAL or an `RFAxes` (a failed node keeps its
    input's field, or meets its inputs')."""
    if not n.inputs:
        return ORIGIN
    if is_error(n.type):
        return MEET if len(n.inputs) > 1 else POINTWISE
    return n.spec.step(n.args, tuple(graph.node(i).type for i in n.inputs))


# -- local fields -----------------------------------------------------------------------------------

ORIGIN_AXIS = Axis(1, 1, (0,), (0,))  # input position i is pixel i


def _local(graph: Graph, n: Node, step, done: dict, budget: Budget) -> tuple[Axis, Axis] | None:
    if step is ORIGIN:
        return ORIGIN_AXIS, ORIGIN_AXIS
    if step in (GLOBAL, REGROUPED) or any(done[i] is None for i in n.inputs):
        return None
    if step is MEET:
        return _meet(graph, n, done, budget)
    inp = done[n.inputs[0]]  # a second input (`like = t`) gives a size, not a field
    if step is POINTWISE:
        return inp
    if step.h is GLOBAL or step.w is GLOBAL:
        return None
    h, w = (_apply(a, rule, budget) for a, rule in zip(inp, (step.h, step.w)))
    return None if h is None or w is None else (h, w)


def _at(a: Axis, i: int) -> tuple[int, int]:
    """The span of position i."""
    q, r = divmod(i, a.period)
    lo, hi = a.lo[r], a.hi[r]
    return (lo + q * a.advance, hi + q * a.advance) if lo <= hi else NOTHING


def _size(span: tuple[int, int]) -> int:
    return span[1] - span[0] + 1 if span[0] <= span[1] else 0


def _extent(a: Axis, positions: int) -> Extent:
    """The smallest and largest span over the map's positions (the lattice repeats after `period`)."""
    sizes = [_size(_at(a, i)) for i in range(min(positions, a.period))]
    return Extent(min(sizes), max(sizes), False)


def _apply(a: Axis, reads: Reads, budget: Budget) -> Axis | None:
    """The spans of an op's output positions, each the union of the spans of the input positions it
    reads; None past the bounds."""
    repeats = a.period // math.gcd(
        reads.advance, a.period
    )  # before the reads move by whole periods
    period = reads.period * repeats
    if period > MAX_PERIOD or not budget.spend(period):
        return None
    taps = [reads.at(r) for r in range(reads.period)]
    if not budget.spend(_work(taps, a.period) * repeats):
        return None
    spans = [
        _union(a, taps[r % reads.period], r // reads.period * reads.advance) for r in range(period)
    ]
    advance = reads.advance * repeats // a.period * a.advance
    return Axis(period, advance, tuple(s[0] for s in spans), tuple(s[1] for s in spans))


def _work(taps, period: int) -> int:
    """Input positions `_union` looks at for one period of the op's pattern."""
    return sum(min((t[1] - t[0]) // t[2] + 1, period) for t in taps if t is not None)


def _union(a: Axis, taps, shift: int) -> tuple[int, int]:
    """The union of the spans of the positions `taps` (moved by `shift`) of lattice `a`. Positions a
    whole number of periods apart have spans that only move right, so the first `period` taps hold
    the leftmost start and the last `period` taps the rightmost end."""
    if taps is None:
        return NOTHING
    first, last, step = taps[0] + shift, taps[1] + shift, taps[2]
    count = (last - first) // step + 1
    width = min(count, a.period // math.gcd(step, a.period))
    return (
        min(_at(a, first + t * step)[0] for t in range(width)),
        max(_at(a, last - t * step)[1] for t in range(width)),
    )


def _meet(graph: Graph, n: Node, done: dict, budget: Budget) -> tuple[Axis, Axis] | None:
    """Each position's span is the union of its spans on every input; None where the inputs step
    through the input at different rates (no common period) or a broadcast input ([C, 1, 1])
    gives every position one span."""
    sizes = _spatial(n.type)
    out = []
    for axis in range(2):
        ins = [done[i][axis] for i in n.inputs]
        if any(_spatial(graph.node(i).type)[axis] == 1 < sizes[axis] for i in n.inputs):
            return None
        rates = {
            (a.advance // math.gcd(a.advance, a.period), a.period // math.gcd(a.advance, a.period))
            for a in ins
        }
        period = math.lcm(*(a.period for a in ins))
        if len(rates) > 1 or period > MAX_PERIOD or not budget.spend(period * len(ins)):
            return None
        spans = [_span_union([_at(a, r) for a in ins]) for r in range(period)]
        advance = period * ins[0].advance // ins[0].period
        out.append(Axis(period, advance, tuple(s[0] for s in spans), tuple(s[1] for s in spans)))
    return tuple(out)


def _span_union(spans) -> tuple[int, int]:
    return min(s[0] for s in spans), max(s[1] for s in spans)


# -- fields at the declared input -------------------------------------------------------------------


def _clipped_fields(
    graph: Graph, steps: dict, local: dict, budget: Budget
) -> dict[int, tuple[Clipped, Clipped]]:
    """For the nodes without local fields and every node they read, directly or not: the span of
    each of the map's positions, reading only positions that exist."""
    needed: set[int] = set()
    for n in reversed(graph.nodes_in_order()):
        if local[n.id] is None or n.id in needed:
            needed.add(n.id)
            needed.update(n.inputs)
    out: dict[int, tuple[Clipped, Clipped] | None] = {}
    for n in graph.nodes_in_order():
        if n.id in needed:
            out[n.id] = _clipped(graph, n, steps[n.id], out, budget)
    return {k: v for k, v in out.items() if v is not None}


def _clipped(
    graph: Graph, n: Node, step, done: dict, budget: Budget
) -> tuple[Clipped, Clipped] | None:
    sizes = _spatial(n.type)
    if not budget.spend(2 * max(sizes)) or max(sizes) > MAX_CLIPPED:
        return None
    if step is ORIGIN:
        return tuple(Clipped(tuple(range(m)), tuple(range(m))) for m in sizes)
    ins = [done.get(i) for i in n.inputs]
    if any(c is None for c in ins):
        return None
    ins = [_reachable(c) for c in ins]
    if step is MEET:
        return tuple(_clipped_union([c[axis] for c in ins], sizes[axis]) for axis in range(2))
    if step is POINTWISE:
        return ins[0]
    rules = (GLOBAL, GLOBAL) if step in (GLOBAL, REGROUPED) else (step.h, step.w)
    out = [
        _clipped_global(c, m) if rule is GLOBAL else _clipped_apply(c, rule, m, budget)
        for c, rule, m in zip(ins[0], rules, sizes)
    ]
    return None if None in out else tuple(out)


def _reachable(c: tuple[Clipped, Clipped]) -> tuple[Clipped, Clipped]:
    """A map's spans, all of them empty where one axis reads nothing at any position: position
    (h, w) reads the rows of h times the columns of w, so a map whose rows all read padding reads
    no input at all, whatever its columns say (a global pool must not report them)."""
    if not any(all(lo > hi for lo, hi in zip(axis.lo, axis.hi)) for axis in c):
        return c
    return tuple(Clipped((NOTHING[0],) * len(axis.lo), (NOTHING[1],) * len(axis.lo)) for axis in c)


def _clipped_global(c: Clipped, positions: int) -> Clipped:
    span = (min(c.lo), max(c.hi))
    return Clipped((span[0],) * positions, (span[1],) * positions)


def _clipped_apply(c: Clipped, reads: Reads, positions: int, budget: Budget) -> Clipped | None:
    """Each output position's span: the union of the spans of the input positions it reads that
    exist. Spans that only move right with the position (the usual case) need only the first and
    the last of those; others are looked at one by one."""
    size = len(c.lo)
    ordered = _ordered(c)
    taps = reads.at(0) if reads.period == 1 else None  # None too where it reads nothing (Zero)
    if ordered and taps is not None and taps[2] == 1:
        return _clipped_window(c, taps, reads.advance, positions)
    lo, hi = [], []
    for o in range(positions):
        q, r = divmod(o, reads.period)
        taps = reads.at(r)
        span = NOTHING
        if taps is not None:
            first, last, step = taps[0] + q * reads.advance, taps[1] + q * reads.advance, taps[2]
            if first < 0:
                first += (-first + step - 1) // step * step
            if last >= size:
                last -= (last - size + step) // step * step
            if first <= last:
                if ordered:
                    span = (c.lo[first], c.hi[last])
                elif budget.spend((last - first) // step + 1):
                    span = (min(c.lo[first : last + 1 : step]), max(c.hi[first : last + 1 : step]))
                else:
                    return None
        lo.append(span[0])
        hi.append(span[1])
    return Clipped(tuple(lo), tuple(hi))


def _clipped_window(c: Clipped, taps, stride: int, positions: int) -> Clipped:
    """`_clipped_apply` for a window of consecutive positions (a conv or pool without dilation) on
    ordered spans: output o spans from the first position it reads that exists to the last."""
    first, last, size = taps[0], taps[1], len(c.lo)
    starts = [max(first + o * stride, 0) for o in range(positions)]
    ends = [min(last + o * stride, size - 1) for o in range(positions)]
    lo = tuple(c.lo[a] if a <= b else NOTHING[0] for a, b in zip(starts, ends))
    hi = tuple(c.hi[b] if a <= b else NOTHING[1] for a, b in zip(starts, ends))
    return Clipped(lo, hi)


def _ordered(c: Clipped) -> bool:
    """Whether every position reads something and spans only move right with the position."""
    return (
        all(map(operator.le, c.lo, c.hi))
        and all(map(operator.le, c.lo, c.lo[1:]))
        and all(map(operator.le, c.hi, c.hi[1:]))
    )


def _clipped_union(ins: list[Clipped], positions: int) -> Clipped:
    """Position by position; a broadcast input (one position) reaches every position."""
    full = [
        c if len(c.lo) == positions else Clipped(c.lo * positions, c.hi * positions) for c in ins
    ]
    return Clipped(
        tuple(map(min, *(c.lo for c in full))) if len(full) > 1 else full[0].lo,
        tuple(map(max, *(c.hi for c in full))) if len(full) > 1 else full[0].hi,
    )


def _clipped_extent(c: Clipped, input_size: int) -> Extent:
    spans = list(zip(c.lo, c.hi))
    sizes = [_size(s) for s in spans]
    return Extent(min(sizes), max(sizes), all(s == (0, input_size - 1) for s in spans))
