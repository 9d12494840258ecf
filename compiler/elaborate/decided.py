"""`decide { "k": 5, … }`: the decider of a member stated as its space with its decisions given.

Input: a derived network's decisions (`derive.Derivation.decisions`: name → entry and scope).
Output: a `Decider` that answers each decision the elaboration meets from the clause, and the
diagnostics of what the clause got wrong, reported once the network is elaborated (`problems`).

Matching an entry's value against the choice's options:
- structurally: the value's AST equals an option's AST (spans ignored), so `AvgPool(2)` matches the
  option `AvgPool( 2 )` and `Conv(w, 3)` matches an option that reads the block's parameter `w`,
  which has no value where the clause stands; the same text in every instance is the same option;
- by value, where the choice's options are constants (`choice(3, 5)`, `choice(range(16, 65, 16))`,
  `choice([[3, 3], [5, 5]])`): the value, evaluated as a constant in the clause's file, equals an
  option of the same type (`1` is not `true`, `3` is not `3.0`).

What the clause may get wrong, each a located error: a value that is none of the options (E0505, at
the value); a decision the member meets that the clause does not give (E0506, at `decide`: without
it the network is still a space; option 0 is taken to go on, so one error lists all of them); a
name the member never meets (E0504, at the name): a typo, or a decision met only in a branch the
other decisions do not take — a member is exactly the decisions it meets, so an entry that changes
nothing is refused rather than kept to mislead a reader. A name given twice is `derive.twice`.
"""

from __future__ import annotations

from difflib import get_close_matches

from cnnc.compiler.elaborate.choices import count
from cnnc.compiler.elaborate.state import ChoicePoint, Fail
from cnnc.dsl import ast
from cnnc.dsl.diagnostics import Diagnostic, error
from cnnc.dsl.literals import escape_string
from cnnc.dsl.source import Span

SHOWN = 8  # decisions listed by name in one message before "and N more"


class ClauseDecider:
    """Answers each decision from the clause (module docstring); a decision met again (a named
    choice in several places) gets the same answer."""

    def __init__(self, decisions: dict, clause: ast.Derive, constant):
        self.decisions = decisions  # name → (ast.Decision, scope)
        self.clause = clause  # the `decide { … }` clause, where a missing decision is reported
        self.constant = constant  # (expr, scope) → its value as a constant; raises Fail
        self.picks: dict[str, int] = {}
        self.missing: list[ChoicePoint] = []
        self.wrong: list[Diagnostic] = []

    def decide(self, point: ChoicePoint) -> int:
        if point.name in self.picks:
            return self.picks[point.name]
        given = self.decisions.get(point.name)
        if given is None:
            self.missing.append(point)
            index = 0
        else:
            index = self.match(point, *given)
        self.picks[point.name] = index
        return index

    def match(self, point: ChoicePoint, entry: ast.Decision, scope) -> int:
        for i, option in enumerate(point.options):
            if len(point.options) > 1 and option == entry.value:
                return i
        if point.values is not None and count(entry.value) == 0:
            try:
                value = self.constant(entry.value, scope)
            except Fail:
                value = _NOTHING
            for i, option in enumerate(point.values):
                if same_value(option, value):
                    return i
        self.wrong.append(not_an_option(point, entry))
        return 0

    def problems(self, finished: bool) -> list[Diagnostic]:
        """The clause's errors; names never met only when the elaboration `finished` without
        errors (one that stopped early met fewer decisions than the member has)."""
        out = list(self.wrong)
        if self.missing:
            out.append(not_given(self.missing, self.clause))
        if finished:
            out += [
                never_met(entry, list(self.picks))
                for name, (entry, _) in self.decisions.items()
                if name not in self.picks
            ]
        return out


_NOTHING = object()  # a value that evaluated to an error: equal to no option


def same_value(option, value) -> bool:
    """Equal and of the same type, element by element in lists."""
    if isinstance(option, tuple) and isinstance(value, tuple):
        return len(option) == len(value) and all(map(same_value, option, value))
    return type(option) is type(value) and option == value


def not_an_option(point: ChoicePoint, entry: ast.Decision) -> Diagnostic:
    listed = " | ".join(point.labels)
    written = " ".join(entry.value.span.text.split())
    return error(
        "E0505",
        f"`{written}` is not an option of the decision `{point.name}`: {listed}",
        entry.value.span,
        f"not one of its {len(point.labels)} options",
        notes=(f"the choice is at {point.span.where()}",) if point.span is not None else (),
        helps=(f"write one of the options as it is written in the choice: {listed}",),
    )


def not_given(points: list[ChoicePoint], clause: ast.Derive) -> Diagnostic:
    names = ", ".join(f"`{p.name}`" for p in points[:SHOWN])
    more = f" and {len(points) - SHOWN} more" if len(points) > SHOWN else ""
    s = "s" if len(points) > 1 else ""
    lines = "  ".join(f"{escape_string(p.name)}: {p.labels[0]}," for p in points[:SHOWN])
    return error(
        "E0506",
        f"the member meets {len(points)} decision{s} that `decide` does not give: {names}{more}",
        _keyword(clause),
        "without them the network is still a search space",
        notes=tuple(f"`{p.name}` is the choice at {p.span.where()}" for p in points[:3] if p.span)
        + (("the list is of the decisions met with option 0 taken for each",) if more else ()),
        helps=(f"give each one an option, e.g. {lines}",),
    )


def never_met(entry: ast.Decision, met: list[str]) -> Diagnostic:
    name = entry.name.value
    near = get_close_matches(name, met, n=3, cutoff=0.5)
    helps = (
        (f"a similar decision exists: {', '.join(f'`{n}`' for n in near)}",)
        if near
        else (f"the member's decisions: {', '.join(f'`{n}`' for n in met[:SHOWN])}",)
        if met
        else ("the network has no decision: leave out the `decide` clause",)
    )
    return error(
        "E0504",
        f"the member meets no decision `{name}`",
        entry.name.span,
        "not a decision of this member",
        notes=(
            "a decision met only in a branch the other decisions do not take is no part of the "
            "member: leave it out",
        ),
        helps=helps,
    )


def _keyword(clause: ast.Derive) -> Span | None:
    """The `decide` word that opens the clause."""
    span = clause.span
    return Span(span.file, span.start, span.start + len("decide")) if span is not None else None
