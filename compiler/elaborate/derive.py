"""Derived networks: `network pets = resnet50 with { fc: Linear(37) } freeze until layer4 cut after fc`.

A derived network elaborates its parent with three changes:
- `with { path: layer … }` — the layer the parent applies at that label path (a label, or a
  sequence member's number) is replaced by the given layer, applied under the same path so module
  names stay; shapes are inferred anew from there on. `in` in a replacement is the tensor the
  replaced layer receives.
- `freeze P, Q` / `freeze until P` — the parameters of the modules under P and Q (or of every module
  made before the first one under P) are not trained: `Graph.frozen` holds their module paths.
- `cut after P` — the network's output is the last tensor made under P; what follows is dropped.
- `decide { "k": 5, … }` — the parent is a search space, and this is one member of it: each
  decision the elaboration meets takes the option given under its name (`decided.py`).
A path that names nothing in the parent is a located error with the nearest labels.
"""

from __future__ import annotations

from cnnc.compiler.ops import REGISTRY
from cnnc.dsl import ast
from cnnc.dsl.diagnostics import Diagnostic, Label, error
from cnnc.dsl.records import field, record


@record(frozen=False, slots=False)
class Derivation:
    """The clauses of a derived network, and what elaboration did with them."""

    replace: dict[tuple[str, ...], tuple[ast.Replacement, object]] = field(
        default_factory=dict
    )  # path → (clause, scope)
    freeze: list[ast.LabelPath] = field(default_factory=list)
    freeze_until: ast.LabelPath | None = None
    cut: ast.LabelPath | None = None
    decisions: dict[str, tuple[ast.Decision, object]] = field(
        default_factory=dict
    )  # decision name → (clause entry, scope)
    decide: ast.Derive | None = None  # the last `decide` clause, where a lacking decision is told
    problems: list[Diagnostic] = field(default_factory=list)  # a name given twice in a clause
    replaced: list[tuple[str, ...]] = field(
        default_factory=list
    )  # filled as the replacements are applied
    frozen: frozenset = frozenset()  # module paths, filled by `finish`

    @property
    def empty(self) -> bool:
        return not (self.replace or self.freeze or self.freeze_until or self.cut or self.decisions)


def collect(scope, item) -> tuple[object, object, Derivation]:
    """(scope, base item, clauses) of a network alias, following `network a = b …` through derived
    parents so that `a` keeps `b`'s changes too."""
    chain = []
    while isinstance(item, ast.NetworkAlias) and item.derive:
        chain.append((scope, item))
        if not isinstance(item.value, ast.Name):
            break
        found = scope.find(item.value.id)
        if found is None or not isinstance(found[1], ast.NetworkAlias) or not found[1].derive:
            break
        scope, item = found
    d = Derivation()
    for clause_scope, alias in reversed(chain):  # the parent's clauses first; the child's win
        for clause in alias.derive:
            add(d, clause, clause_scope)
    return scope, item, d


def add(d: Derivation, clause: ast.Derive, scope) -> None:
    if clause.kind == "with":
        for r in clause.replacements:
            d.replace[r.path.parts] = (r, scope)
    elif clause.kind == "freeze":
        d.freeze += clause.paths
    elif clause.kind == "decide":
        _add_decisions(d, clause, scope)
    elif clause.kind == "freeze_until":
        d.freeze_until = clause.paths[0]
    else:
        d.cut = clause.paths[0]


def _add_decisions(d: Derivation, clause: ast.Derive, scope) -> None:
    """A clause's decisions; a name given twice in one clause is E0507 (a parent's are overridden)."""
    d.decide = clause
    first: dict[str, ast.Decision] = {}
    for entry in clause.decisions:
        name = entry.name.value
        if name in first:
            d.problems.append(twice(first[name], entry))
            continue
        first[name] = entry
        d.decisions[name] = (entry, scope)


def twice(first: ast.Decision, again: ast.Decision) -> Diagnostic:
    return error(
        "E0507",
        f"the decision `{again.name.value}` is given twice",
        again.name.span,
        "given again here",
        secondary=(Label(first.name.span, "first given here"),),
        helps=("keep one entry for each decision",),
    )


def under(path: tuple[str, ...], prefix: tuple[str, ...]) -> bool:
    return path[: len(prefix)] == prefix


def labels(nodes) -> list[str]:
    """Every module path of the parent, for did-you-mean."""
    return sorted({".".join(n.path[:k]) for n in nodes for k in range(1, len(n.path) + 1)})


def not_found(path: ast.LabelPath, what: str, network: str, nodes) -> Diagnostic:
    from difflib import get_close_matches

    near = get_close_matches(path.text, labels(nodes), n=3, cutoff=0.5)
    helps = (
        (f"a similar label exists: {', '.join(f'`{n}`' for n in near)}",)
        if near
        else (f"`cnnc summary` of `{network}` lists its labels",)
    )
    return error(
        "E0218",
        f"`{path.text}` is not a label of `{network}`, so there is nothing to {what}",
        path.span,
        "no layer has this label path",
        helps=helps,
    )


def finish(d: Derivation, nodes, output, network: str):
    """Apply `cut after` and the freezes to the elaborated nodes; returns (output node id or the
    given output, frozen module paths, diagnostics)."""
    problems = [not_found(r.path, "replace", network, nodes) for r, _ in d.replace.values()]
    if d.cut is not None:
        made = [n for n in nodes if under(n.path, d.cut.parts)]
        if made:
            output = made[-1].id
        else:
            problems.append(not_found(d.cut, "cut after", network, nodes))
    modules = [n for n in nodes if REGISTRY[n.op].layer]  # merges and the input are no modules
    frozen = set()
    for path in d.freeze:
        if not any(under(n.path, path.parts) for n in nodes):
            problems.append(not_found(path, "freeze", network, nodes))
        frozen.update(n.path for n in modules if under(n.path, path.parts))
    if d.freeze_until is not None:
        first = next((n.id for n in nodes if under(n.path, d.freeze_until.parts)), None)
        if first is None:
            problems.append(not_found(d.freeze_until, "freeze until", network, nodes))
        else:
            frozen.update(n.path for n in modules if n.id < first)
    return output, frozenset(frozen), problems
