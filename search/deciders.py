"""Deciders: how an elaboration of a search space answers each `choice` it meets.

A `Memo` answers each decision once and records what it met; `replay` walks the decision tree by
index, `uniform` draws at random, `fixed` follows a trial's recorded labels. The space
(`search/space.py`) and the composed count (`search/counting.py`) both drive elaborations with
them, so they live apart from both.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping

from cnnc.compiler.elaborate import ChoicePoint
from cnnc.dsl.diagnostics import CnncError, Label, error


class Memo:
    """A decider that answers each decision once and records what it met.

    `choose(point) -> index` is asked only for a decision not met before in this elaboration; a
    named choice met again gets the same index. `points` and `picks` keep the order of first meeting.
    """

    def __init__(self, choose: Callable[[ChoicePoint], int]):
        self.choose = choose
        self.points: dict[str, ChoicePoint] = {}
        self.picks: dict[str, int] = {}

    def decide(self, point: ChoicePoint) -> int:
        known = self.points.get(point.name)
        if known is None:
            index = self.choose(point)
            self.points[point.name] = point
            self.picks[point.name] = index
            return index
        if known.labels != point.labels:
            raise CnncError(conflict(known, point))
        return self.picks[point.name]

    def assignment(self) -> dict[str, str]:
        """{decision: chosen option's label}, in the order met."""
        return {name: self.points[name].labels[i] for name, i in self.picks.items()}


def conflict(first: ChoicePoint, again: ChoicePoint):
    secondary = (Label(first.span, "first named here"),) if first.span is not None else ()
    return error(
        "E0503",
        f"the choice `{first.name}` is named twice with different options: "
        f"{' | '.join(first.labels)} vs {' | '.join(again.labels)}",
        again.span,
        "named again here",
        secondary=secondary,
        helps=("give one name to one list of options, or give the two choices different names",),
    )


def replay(prefix: tuple[int, ...]) -> Memo:
    """Decides the k-th new decision as `prefix[k]`, then option 0 beyond the prefix."""

    def choose(point: ChoicePoint) -> int:
        k = len(memo.picks)
        return prefix[k] if k < len(prefix) else 0

    memo = Memo(choose)
    return memo


def uniform(rng: random.Random) -> Memo:
    return Memo(lambda point: rng.randrange(len(point.labels)))


def fixed(picks: Mapping[str, str]) -> Memo:
    """Decides by label, as recorded in a trial (`{name: label}`); unknown names take option 0."""

    def choose(point: ChoicePoint) -> int:
        label = picks.get(point.name)
        return point.labels.index(label) if label in point.labels else 0

    return Memo(choose)


def int_range(values) -> tuple[int, int, int] | None:
    """(low, high, step) when `values` are ≥ 2 ints in increasing arithmetic progression."""
    if values is None or len(values) < 2 or any(type(v) is not int for v in values):
        return None
    step = values[1] - values[0]
    if step <= 0 or any(b - a != step for a, b in itertools.pairwise(values)):
        return None
    return values[0], values[-1], step
