"""Search spaces: the decisions a `.cnn` file leaves open, how many members it has, what they cost.

Input: a program with `choice(…)`s (a `Space`). Output: its `Decision`s in the order elaboration meets
them, its size, and statistics of seeded random members analysed statically (pure Python, no torch).

Contracts:
- a *member* is one complete assignment: each decision met while elaborating gets an option, and
  decisions inside options not taken are never met (they are conditional). A named choice is one
  decision wherever it appears; the same name with other options is E0503.
- the size counts members by walking the decision tree depth-first, one elaboration per member,
  and the distinct architectures among them (`search/architecture.py`: up to graph isomorphism).
  When the walk does not end within its time, the count is composed along the decision tree
  (`search/counting.py`: a product over independent decisions, a sum over conditional branches),
  exact and checked on random members; where the decisions do not compose, it is Knuth's estimate
  with its standard error, said so. Distinct architectures are counted only by a complete walk.
- a member's architecture is identified by `graph_hash`: its isomorphism class's Weisfeiler–Lehman
  hash (equal architectures, equal hashes; `architecture.Architectures` confirms a match exactly).
- the walk elaborates each member under a budget of its own (it stops on count and time); the
  samples share the budget open around them (`limits.spending`), so their graphs, kept for the
  statistics, are bounded in all.
- a complete walk that kept its graphs is remembered by its `Space` (`Space.walked`): a later walk
  of that space within its limit is answered from it (`cnnc search` walks a one-shot space once,
  for the header and for the supernet).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from cnnc.compiler import limits
from cnnc.compiler.analysis.summary import summarize
from cnnc.compiler.elaborate import ChoicePoint
from cnnc.dsl import numbers
from cnnc.dsl.diagnostics import CnncError, render_concise
from cnnc.search.deciders import Memo, conflict, fixed, replay, uniform  # noqa: F401  (callers import them from here)

EXPLORE_LIMIT = 1_000_000  # members the walk keeps at most (memory); its time stops it far sooner
EXPLORE_SECONDS = 3.0  # the walk's time budget
COMPOSE_SECONDS = 5.0  # the composed count's, at least (it needs far fewer elaborations)


# ---------------------------------------------------------------------------------------------
# Spaces and members


@dataclass(frozen=True, eq=False)
class Space:
    """A parsed program and how to elaborate it (network, arguments, input shape override)."""

    program: object  # dsl.imports.Program
    network: str | None = None
    args: Mapping | None = None
    input_shape: tuple[int, ...] | None = None
    walked: list = field(default_factory=list, repr=False)  # [(size, members)]: a complete walk
    counted: list = field(
        default_factory=list, repr=False
    )  # [size]: a complete walk's, kept or not

    def elaborate(self, decider):
        from cnnc.compiler.elaborate import elaborate

        return elaborate(self.program, self.network, self.args, self.input_shape, decider)

    def member(self, decider: Memo) -> Member:
        result = self.elaborate(decider)
        return Member.of(result, decider)


def load_space(
    path, network=None, args=None, input_shape=None, text=None, allow_import=()
) -> Space:
    """Parse a file (syntax errors raise `CnncError`); `allow_import` as in
    `cnnc.dsl.programs.load_program`."""
    from cnnc.dsl.programs import load_program

    return Space(load_program(path, text, allow_import), network, args, input_shape)


@dataclass(frozen=True, eq=False)
class Member:
    """One elaborated member: its decisions, its graph, and why it is invalid (None when valid)."""

    picks: tuple[tuple[str, int], ...]  # (decision, option index), in the order met
    points: tuple[ChoicePoint, ...]
    graph: object | None  # compiler.ir.Graph
    invalid: str | None  # the first error's one-line form
    diagnostics: tuple = field(default=(), repr=False)

    @classmethod
    def of(cls, result, memo: Memo) -> Member:
        errors = [d for d in result.diagnostics if d.is_error]
        invalid = render_concise(errors[0]) if errors else None
        if invalid is None and (result.graph is None or result.graph.output is None):
            invalid = "the network has no output"
        return cls(
            tuple(memo.picks.items()),
            tuple(memo.points.values()),
            result.graph,
            invalid,
            tuple(result.diagnostics),
        )

    @property
    def ok(self) -> bool:
        return self.invalid is None

    def labels(self) -> dict[str, str]:
        return {p.name: p.labels[i] for p, (_, i) in zip(self.points, self.picks)}

    def branching(self) -> int:
        """The product of the option counts met: this path's weight in Knuth's estimator."""
        product = 1
        for p in self.points:
            product *= len(p.labels)
        return product


def graph_hash(graph) -> str:
    """The architecture's key: equal for isomorphic graphs (`search/architecture.py`)."""
    from cnnc.search.architecture import key, labelled

    return key(labelled(graph))


def text_hash(graph) -> str:
    """sha256 of the graph's text dump: the key of studies recorded before `graph_hash` (their
    trials still replay to their architecture)."""
    import hashlib

    return hashlib.sha256(str(graph).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Decisions and size


@dataclass(frozen=True, slots=True)
class Decision:
    name: str
    labels: tuple[str, ...]
    values: tuple | None
    span: object | None  # Span
    # (decision, options) under which it is met; None: met in every member
    when: tuple[str, tuple[str, ...]] | None = None


@dataclass(frozen=True, slots=True)
class Size:
    members: int | float  # exact when `exact`, else a lower bound (a walk) or an estimate
    exact: bool
    distinct: int | None  # distinct valid architectures, when every member was walked
    estimate: float | None  # Knuth's estimate from random paths (None without samples)
    seconds: float
    how: str = "walk"  # walk: every member elaborated; composed: `counting.compose`; bound
    invalid: int = 0  # members that fail to elaborate, when walked
    error: float | None = None  # the composed estimate's standard error
    checked: int = 0  # random members a composed count was checked on

    @property
    def complete(self) -> bool:
        """Every member was elaborated (a grid may enumerate them)."""
        return self.how == "walk" and self.exact

    def text(self) -> str:
        if self.complete:
            bad = f" ({self.invalid:,} members invalid)" if self.invalid else ""
            return f"{self.members:,} members, {self.distinct:,} distinct architectures{bad}"
        if self.how == "composed" and self.exact:
            return (
                f"{self.members:,} members (composed from independent decisions, checked on "
                f"{self.checked} random members; too many to walk for distinct architectures)"
            )
        if self.how == "composed":
            return (
                f"≈ {numbers.big(self.members)} ± {numbers.big(self.error)} members (an estimate from random "
                "paths, with its standard error: the decisions depend on each other in a way "
                "that does not compose)"
            )
        guess = (
            f", ≈ {numbers.big(self.estimate)} estimated from random paths" if self.estimate else ""
        )
        return f"≥ {self.members:,} members (walk stopped after {self.seconds:.1f} s{guess})"


def walk(
    space: Space, limit: int = EXPLORE_LIMIT, seconds: float = EXPLORE_SECONDS, keep: bool = False
) -> tuple[Size, list[Member]]:
    """Depth-first over the decision tree: every member once, until `limit` or `seconds` runs out;
    then, if members remain, their count composed (`counting.compose`, `seconds` more at most).

    Returns the size and the members met, their graphs kept only with `keep` (memory).
    """
    from cnnc.search.architecture import Architectures

    if space.walked and len(space.walked[0][1]) <= limit:  # (module docstring)
        size, members = space.walked[0]
        return size, list(members) if keep else [_light(m) for m in members]
    start = time.perf_counter()
    stack: list[tuple[int, ...]] = [()]
    members, architectures, invalid = [], Architectures(), 0
    while stack and len(members) < limit and time.perf_counter() - start < seconds:
        prefix = stack.pop()
        with limits.spending():  # bounded by count and time, each member by its own budget
            member = space.member(replay(prefix))
        members.append(member if keep else _light(member))
        if member.ok:
            architectures.add(member.graph)
        else:
            invalid += 1
        picks = tuple(i for _, i in member.picks)
        for k in range(len(prefix), len(member.points)):  # deepest pushed last: popped first
            stack += [picks[:k] + (i,) for i in range(len(member.points[k].labels) - 1, 0, -1)]
    if not stack:
        took = time.perf_counter() - start
        size = Size(len(members), True, architectures.count, None, took, invalid=invalid)
        space.counted[:] = [size]
        if keep:
            space.walked[:] = [(size, tuple(members))]
        return size, members
    return _composed(space, len(members) + len(stack), seconds, start), members


def _composed(space: Space, bound: int, seconds: float, start: float) -> Size:
    """The size of a space the walk did not finish: composed, else the walk's lower bound."""
    from cnnc.search.counting import compose

    composed = compose(space, max(seconds, COMPOSE_SECONDS))
    took = time.perf_counter() - start
    if composed is None:
        return Size(bound, False, None, None, took, how="bound")
    return Size(
        composed.members,
        composed.exact,
        None,
        None,
        took,
        how="composed",
        error=composed.error,
        checked=composed.checked,
    )


def _light(member: Member) -> Member:
    return Member(member.picks, member.points, None, member.invalid, member.diagnostics)


def decisions(members: list[Member]) -> list[Decision]:
    """Every decision met, in elaboration order, each with the condition it appears under."""
    order = _merged_order(members)
    points = {p.name: p for m in members for p in m.points}
    return [
        Decision(
            n,
            points[n].labels,
            points[n].values,
            points[n].span,
            _condition(n, order, members, points),
        )
        for n in order
    ]


def _merged_order(members: list[Member]) -> list[str]:
    """Names in the order met; a name first met later is placed after its predecessor on that path."""
    order: list[str] = []
    for m in members:
        previous = None
        for name, _ in m.picks:
            if name not in order:
                order.insert(order.index(previous) + 1 if previous is not None else 0, name)
            previous = name
    return order


def _condition(name: str, order: list[str], members: list[Member], points) -> tuple | None:
    """The nearest earlier decision whose options decide whether `name` is met, or None (always met)."""
    picks = [dict(m.picks) for m in members]
    having = [p for p in picks if name in p]
    if len(having) == len(picks):
        return None
    for earlier in reversed(order[: order.index(name)]):
        if not all(earlier in p for p in having):
            continue
        with_it = {p[earlier] for p in having}
        overall = {p[earlier] for p in picks if earlier in p}
        if with_it < overall:
            labels = points[earlier].labels
            return earlier, tuple(labels[i] for i in sorted(with_it))
    return None


# ---------------------------------------------------------------------------------------------
# Sampling and statistics


@dataclass(frozen=True, slots=True)
class Stats:
    samples: int
    invalid: int
    over_budget: int  # among the valid ones
    distinct: int  # distinct architectures among the valid ones
    params: tuple[int, int, int] | None  # min, median, max over the valid ones
    macs: tuple[int, int, int] | None
    reasons: tuple[tuple[str, int], ...]  # the commonest invalid reasons, with their counts
    estimate: float  # Knuth's estimate of the number of members


def sample(space: Space, n: int, seed: int = 0, until_spent: bool = False) -> list[Member]:
    """`n` seeded random members, elaborated under the open budget (`limits.spending`): when it
    runs out, CnncError with its E0708 rather than members that stopped part-way, or with
    `until_spent` the members elaborated before it ran out."""
    rng = random.Random(seed)
    members = []
    for _ in range(n):
        member = space.member(uniform(rng))
        spent = [d for d in member.diagnostics if d.code == "E0708"]
        if spent and until_spent and members:
            break
        if spent:
            raise CnncError(spent[0])
        members.append(member)
    return members


def over_budget(params: int, macs: int, max_params: int | None, max_macs: int | None) -> str | None:
    """Why a member breaks the static budget, or None."""
    if max_params is not None and params > max_params:
        return f"{params:,} params > --max-params {max_params:,}"
    if max_macs is not None and macs > max_macs:
        return f"{macs:,} MACs > --max-macs {max_macs:,}"
    return None


def stats(members: list[Member], max_params=None, max_macs=None) -> Stats:
    valid = [m for m in members if m.ok]
    sums = [summarize(m.graph) for m in valid]
    params = sorted(s.params for s in sums)
    macs = sorted(s.macs for s in sums)
    over = sum(over_budget(s.params, s.macs, max_params, max_macs) is not None for s in sums)
    reasons: dict[str, int] = {}
    for m in members:
        if not m.ok:
            reasons[m.invalid] = reasons.get(m.invalid, 0) + 1
    common = tuple(sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
    estimate = _mean([m.branching() for m in members]) if members else 0.0
    return Stats(
        len(members),
        len(members) - len(valid),
        over,
        _distinct(valid),
        _spread(params),
        _spread(macs),
        common,
        estimate,
    )


def _distinct(valid: list[Member]) -> int:
    from cnnc.search.architecture import Architectures

    architectures = Architectures()
    for m in valid:
        architectures.add(m.graph)
    return architectures.count


def _mean(values: list[int]) -> float | int:
    """The mean as a float; as an int when it is beyond a float's range (a product of many choices)."""
    try:
        return sum(values) / len(values)
    except OverflowError:
        return sum(values) // len(values)


def _spread(values: list[int]) -> tuple[int, int, int] | None:
    if not values:
        return None
    return values[0], int(statistics.median(values)), values[-1]
