"""Which members a supernet holds weights for (its cover), and which members a step trains on a
space too large to walk.

Input: a `Space` (and, for `fresh`, the built `Supernet`). Output: lists of valid `Member`s.

Contract:
- `covered`: every member of the space when the walk enumerates it within `COVER_LIMIT` and
  `COVER_SECONDS` (tiny.cnn's 36); else `COVER_SAMPLES` seeded random members, uniform over the
  space (a walk stopped part-way meets members that differ in their last decisions alone: training
  them would favour the first options of every other decision; a space whose count,
  `counting.compose`, is over `COVER_LIMIT` is not walked at all), with the largest and the
  smallest member by parameters that coordinate search finds (`extremes`: the sandwich rule's
  ends, which a sample almost never holds). One member per architecture, or per assignment.
- `fresh`: on a sampled cover, a new member of the space a step, each decision uniform (SPOS), drawn
  again where the store lacks one of its layers: the cover decides which weights the store holds,
  not which members train.
"""

from __future__ import annotations

import random
import time

from cnnc.compiler import limits
from cnnc.compiler.analysis.summary import summarize
from cnnc.compiler.lower.supernet import NotCovered, Supernet
from cnnc.dsl.diagnostics import CnncError
from cnnc.search.counting import compose
from cnnc.search.space import Space, fixed, graph_hash, sample, uniform, walk

COVER_LIMIT = 2_000  # members the walk elaborates to build the supernet
COVER_SECONDS = 20.0
COVER_SAMPLES = 200  # random members that cover a space too large to walk


def covered(space: Space, seed: int = 0, distinct: bool = True, keep=lambda member: True) -> list:
    """The valid members the supernet holds (module docstring): one per architecture, or with
    `distinct` False one per assignment of the decisions (isomorphic members too). A sampled cover
    holds the largest and the smallest member that `keep` accepts too (`extremes`)."""
    with limits.spending():
        if walkable(space):
            size, members = walk(space, COVER_LIMIT, COVER_SECONDS, keep=True)
            if size.complete:
                return _distinct(members, distinct)
        members = sample(space, COVER_SAMPLES, seed, until_spent=True)  # large members: fewer
        members += extremes(space, [m for m in members if m.ok and keep(m)], keep)
    return _distinct(members, distinct)


EXTREME_SWEEPS = 3  # passes over the decisions that `extremes` makes at most, each way
EXTREME_SECONDS = 10.0  # and the seconds it spends in all


def extremes(space: Space, members: list, keep) -> list:
    """The largest and the smallest member by parameters that `keep` accepts, as coordinate ascent
    (descent) finds them from the largest (smallest) of `members`: each decision in turn set to
    the option that makes the member largest (smallest), the others kept, until a pass changes
    nothing. Where decisions are independent, as a network's per-block ones are, these are the
    space's own (BigNAS's biggest and smallest child), which a random sample almost never holds.
    Stops early, with what it has, when `EXTREME_SECONDS` or the command's budget run out."""
    if not members:
        return []
    deadline = time.perf_counter() + EXTREME_SECONDS
    params = {}  # graph_hash -> parameters

    def size(member) -> int:
        key = graph_hash(member.graph)
        if key not in params:
            params[key] = summarize(member.graph, fields=False).params
        return params[key]

    found = []
    for sign in (1, -1):  # largest, then smallest
        best = max(members, key=lambda m: sign * size(m))
        for _ in range(EXTREME_SWEEPS):
            changed = False
            for name in [p.name for p in best.points]:
                point = next((p for p in best.points if p.name == name), None)
                for label in point.labels if point is not None else ():
                    if time.perf_counter() > deadline:
                        return [*found, best]
                    picks = {**best.labels(), name: label}
                    if picks == best.labels():
                        continue
                    candidate = space.member(fixed(picks))
                    if any(d.code == "E0708" for d in candidate.diagnostics):
                        return [*found, best]  # the command's budget is spent
                    if (
                        candidate.ok
                        and keep(candidate)
                        and sign * size(candidate) > sign * size(best)
                    ):
                        best, changed = candidate, True
            if not changed:
                break
        found.append(best)
    return found


def walkable(space: Space) -> bool:
    """Whether a walk may meet every member within COVER_LIMIT: a walk remembered whole, or a count
    (`counting.compose`, an estimate included) within it. A walk that stops part-way costs its
    seconds for members that differ in their last decisions alone."""
    if space.walked:
        return walked_whole(space)
    composed = compose(space, COVER_SECONDS)
    return composed is None or composed.members <= COVER_LIMIT


def walked_whole(space: Space) -> bool:
    """Whether `space` remembers a walk of every member, within COVER_LIMIT (else `covered`
    samples it)."""
    return bool(space.walked) and len(space.walked[0][1]) <= COVER_LIMIT


def _distinct(members: list, distinct: bool) -> list:
    """The valid members, one per architecture (or assignment); none valid because the command's
    budget ran out is that budget's error (E0708), not a space without members."""
    valid = [m for m in members if m.ok]
    if not valid:
        spent = [d for m in members for d in m.diagnostics if d.code == "E0708"]
        if spent:
            raise CnncError(spent[0])
    return architectures(valid) if distinct else _assignments(valid)


def architectures(members: list) -> list:
    """The first member of each architecture (`graph_hash`), in order."""
    first = {}
    for m in members:
        first.setdefault(graph_hash(m.graph), m)
    return list(first.values())


def _assignments(members: list) -> list:
    """The first member of each assignment (a seeded sample may repeat one the walk met)."""
    first = {}
    for m in members:
        first.setdefault(m.picks, m)
    return list(first.values())


FRESH_TRIES = 8  # draws a step makes for a member the store holds, before it takes one of the cover


def fresh(space: Space, net: Supernet, members: list, keep):
    """A sampled cover's draw, `rng -> [member]`: a new member of `space` each step, each decision
    uniform (SPOS's rule; a space too large to walk has no list of its architectures to draw
    from), drawn again when `keep` refuses it or the store lacks one of its layers (one no member
    of the cover has); after FRESH_TRIES, one of `members`. Each member is elaborated under its own
    budget, as a trial's is."""

    def draw(rng: random.Random) -> list:
        for _ in range(FRESH_TRIES):
            with limits.spending():
                member = space.member(uniform(rng))
            if member.ok and keep(member) and holds(net, member.graph):
                return [member]
        return [rng.choice(members)]

    return draw


def holds(net: Supernet, graph) -> bool:
    """Whether the store has a weight for every layer of `graph` (its path is made, and kept)."""
    try:
        net.path(graph)
    except NotCovered:
        return False
    return True
