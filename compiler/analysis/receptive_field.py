"""Receptive fields over the whole graph, exact for every position, in integers.

The field of an output position is the set of network-input pixels its value depends on; its size
along an axis is the span from the first of them to the last. Each op says which input positions
each output position reads (`OpSpec.rf`: a `Reads` pattern per axis, see `compiler/ops/reads.py`,
or `POINTWISE`, `GLOBAL`, `MEET`, `ORIGIN`), and this pass composes those patterns, per axis:

- An `Axis` holds the span [lo, hi] (network-input pixels) of every position o of a node's map.
  On a periodic lattice (`explicit` False) position q·period + r spans q·advance + [lo[r], hi[r]],
  for every integer o: positions past the map's edge are those of a larger input, so a field is
  the one a position has where the input does not clip it. An upsampled map repeats every few
  positions (U-Net's head: sizes 188 and 204, period 16), a conv's map every position.
- Where paths meet, each position's span is the union of its spans on each path (a residual
  block's skip path sees less than its main path). Paths whose maps step through the input at
  different rates (a crop of a finer map beside a coarser one) give no common period: the union is
  kept for the map's own positions only (`explicit`), and reads past its edge see nothing.
- A global op (global pooling, Flatten, Linear) reads every position of its input map: its field
  is the union of theirs, clipped to the input. When that is the whole input axis it is recorded as
  `WHOLE` (−∞, +∞): every later op that reads it sees the whole input too, whatever else it reads,
  so later global operations add nothing, and the size reported is the input's extent.
- Normalisation statistics (GroupNorm, InstanceNorm, BatchNorm in training) are not part of the
  field: norms are per-position ops here, as BatchNorm is at inference.

`rf` is the largest span any position of the node's map has (the larger of the two axes), `rf_min`
the smallest. The work is bounded before it is spent: a pattern repeats after at most
`MAX_PERIOD` positions and an explicit map holds at most `MAX_EXPLICIT`; past those bounds (only
pathological resampling chains reach them), a node's field is the span of the union of its
positions' fields, an upper bound, flagged `exact` False.
"""

from __future__ import annotations

import math

from cnnc.compiler.ir import Graph, Node
from cnnc.compiler.ops import GLOBAL, MEET, ORIGIN, POINTWISE
from cnnc.compiler.ops.reads import Reads
from cnnc.compiler.types import is_error
from cnnc.dsl.records import record

MAX_PERIOD = 4096  # positions after which a node's pattern must repeat
MAX_EXPLICIT = 4096  # positions of a map kept one by one
MAX_WORK = 1 << 20  # positions looked at to compose one op on one axis

INF = 1 << 80  # a span from −INF to +INF is the whole input axis
EMPTY = (INF << 1, -(INF << 1))  # a position that reads nothing


@record
class Axis:
    """The spans of a node's positions along one axis (see the module docstring)."""

    period: int
    advance: int
    lo: tuple[int, ...]
    hi: tuple[int, ...]
    explicit: bool = False  # lo[o], hi[o] for the map's positions o alone; reads past them see nothing
    exact: bool = True


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
    exact: bool = True

    @property
    def size(self) -> int:
        return max(self.h.largest, self.w.largest)

    @property
    def size_min(self) -> int:
        return max(self.h.smallest, self.w.smallest)

    @property
    def whole(self) -> bool:
        return self.h.whole and self.w.whole


def receptive_fields(graph: Graph) -> dict[int, Field]:
    input_sizes = _spatial(graph.input_type) if graph.input_type is not None else (1, 1)
    out: dict[int, Field] = {}
    for n_id, (h, w) in patterns(graph).items():
        sizes = _spatial(graph.node(n_id).type)
        out[n_id] = Field(_extent(h, sizes[0], input_sizes[0]), _extent(w, sizes[1], input_sizes[1]),
                          h.exact and w.exact)
    return out


def patterns(graph: Graph) -> dict[int, tuple[Axis, Axis]]:
    """Node id → the spans of its positions along (height, width)."""
    input_sizes = _spatial(graph.input_type) if graph.input_type is not None else (1, 1)
    axes: dict[int, tuple[Axis, Axis]] = {}
    for n in graph.nodes_in_order():
        axes[n.id] = _axes(graph, n, axes, input_sizes)
    return axes


def _spatial(t) -> tuple[int, int]:
    """Positions along (height, width): a vector, or a failed node, is one position."""
    return tuple(t.shape[1:]) if not is_error(t) and t.rank == 3 else (1, 1)


ORIGIN_AXIS = Axis(1, 1, (0,), (0,))  # input position i is pixel i


def _axes(graph: Graph, n: Node, done: dict, input_sizes) -> tuple[Axis, Axis]:
    if not n.inputs:
        return ORIGIN_AXIS, ORIGIN_AXIS
    if is_error(n.type):
        return _meet(graph, n, done) if len(n.inputs) > 1 else done[n.inputs[0]]
    step = n.spec.step(n.args, tuple(graph.node(i).type for i in n.inputs))
    if step is ORIGIN:
        return ORIGIN_AXIS, ORIGIN_AXIS
    if step is MEET:
        return _meet(graph, n, done)
    first = n.inputs[0]  # a second input (`like = t`) gives a size, not a field
    inp, in_sizes, out_sizes = done[first], _spatial(graph.node(first).type), _spatial(n.type)
    if step is POINTWISE:
        return inp
    rules = (GLOBAL, GLOBAL) if step is GLOBAL else (step.h, step.w)
    return tuple(_global(a, m, size) if rule is GLOBAL else _apply(a, rule, m, o)
                 for a, rule, m, o, size in zip(inp, rules, in_sizes, out_sizes, input_sizes))


# -- one position, and a map's positions ------------------------------------------------------------


def _at(a: Axis, i: int) -> tuple[int, int]:
    """The span of position i."""
    if a.explicit:
        return (a.lo[i], a.hi[i]) if 0 <= i < len(a.lo) else EMPTY
    q, r = divmod(i, a.period)
    lo, hi = a.lo[r], a.hi[r]
    return (lo + q * a.advance, hi + q * a.advance) if lo <= hi else EMPTY


def _size(lo: int, hi: int, input_size: int) -> int:
    if lo > hi:
        return 0
    return input_size if lo <= -INF // 2 and hi >= INF // 2 else hi - lo + 1


def _extent(a: Axis, positions: int, input_size: int) -> Extent:
    """The smallest and largest span over the map's positions (a lattice repeats after `period`)."""
    count = min(positions, len(a.lo) if a.explicit else a.period)
    spans = [_at(a, i) for i in range(count)]
    sizes = [_size(lo, hi, input_size) for lo, hi in spans]
    whole = all(lo <= -INF // 2 and hi >= INF // 2 for lo, hi in spans)
    return Extent(min(sizes), max(sizes), whole)


def _hull(a: Axis, first: int, last: int) -> tuple[int, int]:
    """The span of the union of positions first … last: spans only move right from one period to
    the next, so the first period holds the leftmost start and the last the rightmost end."""
    if last < first:
        return EMPTY
    if a.explicit:
        first, last = max(first, 0), min(last, len(a.lo) - 1)
        if last < first:
            return EMPTY
        return min(a.lo[first:last + 1]), max(a.hi[first:last + 1])
    width = min(last - first + 1, a.period)
    return (min(_at(a, i)[0] for i in range(first, first + width)),
            max(_at(a, i)[1] for i in range(last - width + 1, last + 1)))


def _constant(lo: int, hi: int, exact: bool = True) -> Axis:
    """Every position spans [lo, hi]."""
    return Axis(1, 0, (lo,), (hi,), exact=exact)


# -- ops --------------------------------------------------------------------------------------------


def _global(a: Axis, positions: int, input_size: int) -> Axis:
    """Every output position reads all `positions` of the input map: their union, clipped to the
    input; the whole axis when it covers it."""
    lo, hi = _hull(a, 0, positions - 1)
    if lo > hi:
        return _constant(*EMPTY, a.exact)
    if lo <= 0 and hi >= input_size - 1:
        return _constant(-INF, INF, a.exact)
    return _constant(max(lo, 0), min(hi, input_size - 1), a.exact)


def _apply(a: Axis, reads: Reads, positions: int, out_positions: int) -> Axis:
    """The spans of an op's output positions, each the union of the spans of the input positions it
    reads."""
    if a.explicit:
        return _apply_explicit(a, reads, positions, out_positions)
    g = math.gcd(reads.advance, a.period)
    repeats = a.period // g  # periods of the op's pattern before its reads move by whole input periods
    period = reads.period * repeats
    if period > MAX_PERIOD:
        return _approximate(a, reads, positions, out_positions)
    taps = [reads.at(r) for r in range(reads.period)]
    if _work(taps, a.period) * repeats > MAX_WORK:
        return _approximate(a, reads, positions, out_positions)
    lo, hi = [], []
    for r in range(period):
        q, s = divmod(r, reads.period)
        span = _union(a, taps[s], q * reads.advance)
        lo.append(span[0])
        hi.append(span[1])
    advance = reads.advance * repeats // a.period * a.advance
    return Axis(period, advance, tuple(lo), tuple(hi), exact=a.exact)


def _work(taps, period: int) -> int:
    """Input positions `_union` looks at for one period of the op's pattern."""
    return sum(min((t[1] - t[0]) // t[2] + 1, period) for t in taps if t is not None) + len(taps)


def _union(a: Axis, taps, shift: int) -> tuple[int, int]:
    """The union of the spans of the positions `taps` (moved by `shift`) of lattice `a`. Positions a
    whole number of periods apart have spans that only move right, so the first `period` taps hold
    the leftmost start and the last `period` taps the rightmost end."""
    if taps is None:
        return EMPTY
    first, last, step = taps[0] + shift, taps[1] + shift, taps[2]
    count = (last - first) // step + 1
    width = min(count, a.period // math.gcd(step, a.period))
    lo = min(_at(a, first + t * step)[0] for t in range(width))
    hi = max(_at(a, last - t * step)[1] for t in range(width))
    return lo, hi


def _apply_explicit(a: Axis, reads: Reads, positions: int, out_positions: int) -> Axis:
    """`_apply` on a map kept position by position: reads past its edge see nothing."""
    if out_positions > MAX_EXPLICIT or out_positions * min(positions, MAX_EXPLICIT) > 64 * MAX_WORK:
        return _approximate(a, reads, positions, out_positions)
    lo, hi = [], []
    size = len(a.lo)
    for o in range(out_positions):
        q, r = divmod(o, reads.period)
        taps = reads.at(r)
        span = EMPTY
        if taps is not None:
            first, last, step = taps[0] + q * reads.advance, taps[1] + q * reads.advance, taps[2]
            if first < 0:
                first += (-first + step - 1) // step * step
            if last >= size:
                last -= (last - size + step) // step * step
            if first <= last:
                span = (min(a.lo[first:last + 1:step]), max(a.hi[first:last + 1:step]))
        lo.append(span[0])
        hi.append(span[1])
    return Axis(out_positions, 0, tuple(lo), tuple(hi), explicit=True, exact=a.exact)


def _approximate(a: Axis, reads: Reads, positions: int, out_positions: int) -> Axis:
    """Past the bounds: every output position gets the span of everything the output map's
    positions may read (reads only move right with the position), an upper bound of each one's."""
    found = [t for t in (reads.at(r) for r in range(min(reads.period, 64))) if t is not None]
    q, r = divmod(out_positions - 1, reads.period)
    last = reads.at(r)
    first = found[0][0] if found else -positions
    end = last[1] + q * reads.advance if last is not None else 2 * positions
    lo, hi = _hull(a, min(first, 0) if not found else first, end)
    return _constant(lo, hi, False)


# -- merges -----------------------------------------------------------------------------------------


def _meet(graph: Graph, n: Node, done: dict) -> tuple[Axis, Axis]:
    """Each position's span is the union of its spans on every input. A broadcast input (an SE
    gate, [C, 1, 1]) gives every position the span of its single one."""
    sizes = _spatial(n.type)
    out = []
    for axis in range(2):
        ins = []
        for i in n.inputs:
            a, m = done[i][axis], _spatial(graph.node(i).type)[axis]
            ins.append(_constant(*_at(a, 0), a.exact) if m == 1 and sizes[axis] > 1 else a)
        out.append(_union_axes(ins, sizes[axis]))
    return tuple(out)


def _finite(a: Axis) -> bool:
    """Whether some span of `a` moves with the position (not whole, not empty)."""
    return any(lo <= hi and lo > -INF // 2 for lo, hi in zip(a.lo, a.hi))


def _union_axes(ins: list[Axis], positions: int) -> Axis:
    exact = all(a.exact for a in ins)
    moving = [a for a in ins if _finite(a) and not a.explicit]
    rates = {(a.advance // math.gcd(a.advance, a.period), a.period // math.gcd(a.advance, a.period))
             for a in moving}
    if not any(a.explicit for a in ins) and len(rates) <= 1:
        period = math.lcm(*(a.period for a in ins))
        if period <= MAX_PERIOD:
            advance = period * moving[0].advance // moving[0].period if moving else 0
            spans = [_span_union([_at(a, r) for a in ins]) for r in range(period)]
            return Axis(period, advance, tuple(s[0] for s in spans), tuple(s[1] for s in spans), exact=exact)
    if positions <= MAX_EXPLICIT:
        spans = [_span_union([_at(a, o) for a in ins]) for o in range(positions)]
        return Axis(positions, 0, tuple(s[0] for s in spans), tuple(s[1] for s in spans), explicit=True,
                    exact=exact)
    return _constant(*_span_union([_hull(a, 0, positions - 1) for a in ins]), False)


def _span_union(spans) -> tuple[int, int]:
    return min(s[0] for s in spans), max(s[1] for s in spans)
