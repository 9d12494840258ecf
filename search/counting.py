"""Member counts of spaces too large to walk, composed along the decision tree.

Input: a `Space` (`search/space.py`). Output: a `Composed` count — exact, or an estimate with its
standard error when the space's decisions do not compose — or None when the time ran out.

The members are the leaves of the decision tree: elaborating with the first k decisions fixed and
every later one at its first option meets a sequence of decisions; its *future* at k is what it
meets from the k-th on (each decision's name and options). A node's count is the sum over its
options of its children's counts, and the counts are memoised on the future: two nodes whose
futures agree are taken to root the same subtree. So independent decisions multiply (each option of
a kernel choice leaves the same future: one child, counted once), a decision that changes what
follows (a stage's depth: more blocks, more decisions) sums over its options, and the sub-spaces
after it (the next stages) are counted once for all of them. The elaborations are about the number
of distinct futures times the options, where walking would take one per member.

The memo is an assumption: a decision that changes what is met only together with a later
non-first option (`if a == 2 and b == 2 then choice(…)`) breaks it. So `CHECKS` seeded random
members are followed through the memoised tree; where one meets other decisions or options than
the tree says, the count is only an estimate: Knuth's (the mean over those random paths of the
product of the option counts met), given with its standard error.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import dataclass

from cnnc.compiler import limits
from cnnc.search.deciders import replay, uniform

CHECKS = 64  # random members followed through the composed tree
SEED = 0


@dataclass(frozen=True, slots=True)
class Composed:
    members: int | float  # exact when `exact`, else Knuth's estimate
    exact: bool
    error: float | None  # the estimate's standard error (None when exact)
    checked: int  # random members that agreed with the tree
    elaborations: int


def compose(space, seconds: float) -> Composed | None:
    """See the module docstring; None when `seconds` run out before the tree is counted."""
    deadline = time.perf_counter() + seconds
    tree = _Tree(space, deadline)
    if not tree.count():
        return None
    rng = random.Random(SEED)
    paths = [tree.sampled(rng) for _ in range(CHECKS)]
    if all(tree.follows(m) for m in paths):
        return Composed(tree.counts[tree.root], True, None, len(paths), tree.elaborations)
    weights = [m.branching() for m in paths]
    mean = statistics.fmean(weights)
    error = statistics.stdev(weights) / math.sqrt(len(weights))
    return Composed(mean, False, error, 0, tree.elaborations)


def _future(points, k: int) -> tuple:
    return tuple((p.name, p.labels) for p in points[k:])


class _Tree:
    """The memoised decision tree: `counts` and `children` by future (module docstring)."""

    def __init__(self, space, deadline: float):
        self.space, self.deadline = space, deadline
        self.counts: dict[tuple, int] = {}
        self.children: dict[tuple, tuple[tuple, ...]] = {}
        self.elaborations = 0
        self.root: tuple = ()

    def points(self, prefix: tuple[int, ...]) -> tuple:

        self.elaborations += 1
        with limits.spending():  # each member its own budget, as the walk elaborates them
            return self.space.member(replay(prefix)).points

    def count(self) -> bool:
        """Count every node under the root, depth first without recursion (a member may meet
        thousands of decisions); False when the deadline passes first."""
        first = self.points(())
        self.root = _future(first, 0)
        stack, expanded = [((), first)], {}
        while stack:
            if time.perf_counter() > self.deadline:
                return False
            prefix, points = stack[-1]
            k = len(prefix)
            key = _future(points, k)
            if key in self.counts:
                stack.pop()
            elif k == len(points):
                self.counts[key], self.children[key] = 1, ()
                stack.pop()
            else:
                kids = expanded.get(key)
                if kids is None:  # (prefix, points, future) per option, at this node's depth
                    kids = self._kids(prefix, points)
                    if kids is None:  # the deadline passed among a decision's options
                        return False
                    expanded[key] = kids
                waiting = [(p, pts) for p, pts, child in kids if child not in self.counts]
                if waiting:
                    stack.extend(waiting)
                    continue
                self.children[key] = tuple(child for _, _, child in kids)
                self.counts[key] = sum(self.counts[child] for child in self.children[key])
                stack.pop()
        return True

    def _kids(self, prefix, points) -> list | None:
        """(prefix, points, future) of each option of the decision at this depth; None when the
        deadline passes first (a decision may have thousands of options, each an elaboration)."""
        k = len(prefix)
        kids = []
        for i in range(len(points[k].labels)):
            if i and time.perf_counter() > self.deadline:
                return None
            met = points if i == 0 else self.points(prefix + (i,))
            kids.append((prefix + (i,), met, _future(met, k + 1)))
        return kids

    def sampled(self, rng: random.Random):

        with limits.spending():
            return self.space.member(uniform(rng))

    def follows(self, member) -> bool:
        """Whether `member` meets the decisions the tree predicts for its picks, and no more."""
        key = self.root
        for point, (_, pick) in zip(member.points, member.picks):
            if not key or key[0] != (point.name, point.labels):
                return False
            key = self.children[key][pick]
        return key == ()
