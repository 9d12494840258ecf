"""Warnings for what a program defines and never uses: values (W0101) and parameters (W0102), and
names defined twice in a file (E0204). Static, per definition: a value used in one branch of an
`if` is used, whichever branch an instance takes."""

from __future__ import annotations

from cnnc.compiler.elaborate.scopes import ModuleScope
from cnnc.dsl import ast
from cnnc.dsl.diagnostics import Diagnostic, error, warning

_FOUND: dict[int, tuple] = {}  # id(module) → (module, warnings), for the last files seen
_FOUND_KEPT = 64


def static_warnings(main: ModuleScope) -> tuple[Diagnostic, ...]:
    """The file's warnings, found once per file: a command elaborates a file once per network, so
    a file of n networks would cost n² here."""
    hit = _FOUND.get(id(main.module))
    if hit is not None and hit[0] is main.module:
        return hit[1]
    found = _static_warnings(main)
    if len(_FOUND) >= _FOUND_KEPT:
        _FOUND.clear()
    _FOUND[id(main.module)] = (main.module, found)
    return found


def _static_warnings(main: ModuleScope) -> tuple[Diagnostic, ...]:
    out = [
        error(
            "E0204",
            f"`{item.name}` is defined twice in this file",
            item.name_span or item.span,
            "defined again here",
        )
        for item in main.duplicates
    ]
    for item in main.module.items:
        if isinstance(item, (ast.BlockDef, ast.NetworkDef)):
            out += _unused(item)
    return tuple(out)


def _unused(definition) -> list[Diagnostic]:
    used = set()
    for stmt in definition.body:
        value = getattr(stmt, "value", None) if not isinstance(stmt, ast.Assert) else stmt.cond
        if value is not None:
            used |= names_in(value)
    out = []
    for stmt in definition.body:
        if isinstance(stmt, ast.Let) and stmt.name not in used:
            out.append(
                warning(
                    "W0101",
                    f"`{stmt.name}` is never used",
                    stmt.name_span,
                    "defined here",
                    helps=("use it, or remove it (its layers are not part of the network)",),
                )
            )
    defaults = set()
    for p in definition.params or ():
        if p.default is not None:
            defaults |= names_in(p.default)
    for p in definition.params or ():
        if p.name not in used and p.name not in defaults:
            out.append(
                warning(
                    "W0102",
                    f"parameter `{p.name}` of `{definition.name}` is never used",
                    p.span,
                    "declared here",
                )
            )
    return out


def names_in(expr) -> set[str]:
    """Every name an expression reads (a static walk of the AST)."""
    out, stack = set(), [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name):
            out.add(node.id)
        for value in _children(node):
            stack.append(value)
    return out


def _children(node):
    if isinstance(node, (ast.Expr, ast.Kwarg, ast.Field)):
        for name in node.__record_fields__:
            value = getattr(node, name)
            if isinstance(value, (ast.Expr, ast.Kwarg, ast.Field)):
                yield value
            elif isinstance(value, tuple):
                yield from (v for v in value if isinstance(v, (ast.Expr, ast.Kwarg, ast.Field)))
