"""AST → canonical text (`cnnc fmt`).

The canonical form: 4-space indents, spaces around `=` (also in keyword arguments and defaults) and
binary operators, strings in double quotes with invisible characters escaped, one blank line between
definitions (single blank lines inside bodies are kept), and lines of at most 100 columns where a
break can make them so (`dsl/layout.py` says where lines break and how continuations align; the
line breaks an author made between parts are kept). Comments are kept: a comment ends a line, and a
trailing comment keeps its column when the line has room (a column of shapes beside a chain stays
a column). Invariants (tested as properties): `parse(format(m)) == m` and `format` is idempotent.
"""

from __future__ import annotations

from cnnc.dsl import ast
from cnnc.dsl.breaks import comment_room, know_comments
from cnnc.dsl.flat import IF, OR, flat
from cnnc.dsl.layout import INDENT, WIDTH, Line, Part, fill, layout, prime_layout, reset_depth
from cnnc.dsl.literals import escape_string


def format_module(module: ast.Module) -> str:
    """The canonical text of a parsed file, comments included."""
    reset_depth()
    know_comments(module)
    for item in module.items:
        _prime(item)
    out: list[Line] = []
    previous = None
    comments = _Comments(module)
    for item in module.items:
        if previous is not None and _blank_between(previous, item, module):
            out.append(Line("", 0, 0))
        out += comments.before(item.span.start, "")
        out += comments.attach(_item(item, comments), item.span)
        previous = item
    out += comments.rest("")
    return "\n".join(line.text.rstrip() for line in out).strip("\n") + "\n"


def _prime(node) -> None:
    """Every expression's one-line text, computed bottom-up before the recursive layout asks."""
    for value in (
        getattr(node, "value", None),
        getattr(node, "cond", None),
        getattr(node, "default", None),
    ):
        if isinstance(value, ast.Expr):
            prime_layout(value)
    for child in (*(getattr(node, "body", None) or ()), *(getattr(node, "params", None) or ())):
        _prime(child)


def _blank_between(previous, item, module) -> bool:
    if isinstance(previous, (ast.BlockDef, ast.NetworkDef)) or isinstance(
        item, (ast.BlockDef, ast.NetworkDef)
    ):
        return True
    if type(previous) is not type(item):
        return True
    return _source_gap(previous.span, item.span)


def _source_gap(a, b) -> bool:
    """Whether the source had a blank line between two spans (comments count as text)."""
    between = a.file.text[a.end : b.start]
    lines = between.split("\n")[1:-1]
    return any(not line.strip() for line in lines)


class _Comments:
    """Comments of a file, handed out as the formatter passes their positions."""

    def __init__(self, module: ast.Module):
        self.pending = sorted(module.comments, key=lambda c: c.span.start)

    def before(self, offset: int, indent: str) -> list[Line]:
        """Own-line comments that come before `offset`, keeping a blank line that followed them."""
        out = []
        while self.pending and self.pending[0].span.start < offset:
            c = self.pending.pop(0)
            out.append(Line(indent + c.text, c.span.line, c.span.line))
            following = (
                self.pending[0].span.start
                if self.pending and self.pending[0].span.start < offset
                else offset
            )
            gap = c.span.file.text[c.span.end : following].split("\n")[1:-1]
            if any(not line.strip() for line in gap):
                out.append(Line("", 0, 0))
        return out

    def inside(self, span) -> list[ast.Comment]:
        taken = [c for c in self.pending if span.start <= c.span.start < span.end]
        self.pending = [
            c for c in self.pending if not any(c is t for t in taken)
        ]  # equal texts differ
        return taken

    def attach(self, lines: list[Line], span) -> list[Line]:
        """Place the comments inside `span` (and one trailing on its last line) among `lines`."""
        found = self.inside(span)
        end_line = span.file.line_col(span.end)[0]
        while self.pending and self.pending[0].span.line == end_line and _trailing(self.pending[0]):
            found.append(self.pending.pop(0))
        for c in found:
            lines = _place(lines, c)
        return lines

    def rest(self, indent: str) -> list[Line]:
        out = [Line(indent + c.text, 0, 0) for c in self.pending]
        self.pending = []
        return out


def _trailing(comment: ast.Comment) -> bool:
    line_text = comment.span.file.line_text(comment.span.line)
    return bool(line_text[: comment.span.col - 1].strip())


def _place(lines: list[Line], c: ast.Comment) -> list[Line]:
    line = c.span.line
    if _trailing(c):
        hosts = [i for i, ln in enumerate(lines) if ln.first and ln.first <= line <= ln.last]
        i = hosts[-1] if hosts else len(lines) - 1
        text = lines[i].text.rstrip()
        # a comment keeps its column (a column of shapes beside a chain stays a column) when it fits
        pad = max(2, c.span.col - 1 - len(text))
        if len(text) + pad + len(c.text) > WIDTH:
            pad = 2
        lines[i] = Line(text + " " * pad + c.text, lines[i].first, lines[i].last)
        return lines
    after = next((i for i, ln in enumerate(lines) if ln.first > line), len(lines) - 1)
    indent = lines[after].text[: len(lines[after].text) - len(lines[after].text.lstrip())]
    return lines[:after] + [Line(indent + c.text, line, line)] + lines[after:]


# ---------------------------------------------------------------------------------------------
# Items and statements


def _item(item, comments: _Comments) -> list[Line]:
    if isinstance(item, ast.Import):
        return [_line(f"import {escape_string(item.path)}", item)]
    if isinstance(item, ast.NetworkAlias):
        return _derived(
            _stmt(f"network {item.name} = ", item.value, "", item.value if item.derive else item),
            item.derive,
        )
    if isinstance(item, ast.BlockAlias):
        return _stmt(f"block {item.name} = ", item.value, "", item)
    if isinstance(item, ast.Let):
        return _stmt(f"{item.name} = ", item.value, "", item)
    lines = _header(item)
    previous = None
    for stmt in item.body:
        if previous is not None and _source_gap(previous.span, stmt.span):
            lines.append(Line("", 0, 0))
        lines += comments.before(stmt.span.start, INDENT)
        lines += comments.attach(_statement(stmt), stmt.span)
        previous = stmt
    lines += comments.before(item.span.end, INDENT)
    end = item.span.file.line_col(item.span.end)[0]
    return lines + [Line("}", end, end)]


def _derived(lines: list[Line], clauses) -> list[Line]:
    """A derived network's clauses after its value: `with { path: layer … }`, `freeze until P`,
    `freeze P, Q`, `cut after P`, `decide { "k": option, … }`, each starting on the line the
    previous one ended."""
    for clause in clauses:
        last = lines[-1]
        if clause.kind == "decide":
            lines = _decisions(lines, clause)
            continue
        if clause.kind == "with":
            lines[-1] = Line(last.text + " with {", last.first, last.last)
            for r in clause.replacements:
                lines += _stmt(f"{INDENT}{r.path.text}: ", r.value, INDENT, r)
            end = clause.span.file.line_col(clause.span.end)[0] if clause.span is not None else 0
            lines.append(Line("}", end, end))
            continue
        paths = ", ".join(p.text for p in clause.paths)
        words = {"freeze_until": "freeze until", "freeze": "freeze", "cut_after": "cut after"}[
            clause.kind
        ]
        lines[-1] = Line(f"{last.text} {words} {paths}", last.first, last.last)
    return lines


def _decisions(lines: list[Line], clause) -> list[Line]:
    """`decide {`, one `"name": option,` a line, `}`."""
    last = lines[-1]
    lines[-1] = Line(last.text + " decide {", last.first, last.last)
    for d in clause.decisions:
        value = _stmt(f"{INDENT}{escape_string(d.name.value)}: ", d.value, INDENT, d)
        value[-1] = Line(value[-1].text + ",", value[-1].first, value[-1].last)
        lines += value
    end = clause.span.file.line_col(clause.span.end)[0] if clause.span is not None else 0
    return lines + [Line("}", end, end)]


def _header(item) -> list[Line]:
    """`block Name(params) {`, the parameters aligned after `(` when they do not fit on one line."""
    keyword = "block" if isinstance(item, ast.BlockDef) else "network"
    head = f"{keyword} {item.name}"
    line = item.span.line
    if not item.params:
        return [Line(head + ("()" if item.params is not None else "") + " {", line, line)]
    params = item.params
    parts = []
    for i, p in enumerate(params):
        suffix = ") {" if i == len(params) - 1 else ","
        text = p.name if p.default is None else f"{p.name} = {flat(p.default, OR)}"
        parts.append(
            Part(
                p,
                text + suffix,
                lambda prefix, tail, t=text + suffix: [Line(prefix + t, line, line)],
                i > 0 and _source_break(params[i - 1], p),
                0,
                "" if i == 0 else " ",
            )
        )
    return fill(parts, Line(head + "(", line, line), len(head) + 1, squeeze=False, refill=True)


def _source_break(a, b) -> bool:
    return (
        a.span is not None
        and b.span is not None
        and "\n" in a.span.file.text[a.span.end : b.span.start]
    )


def _statement(stmt) -> list[Line]:
    if isinstance(stmt, ast.Let):
        return _stmt(f"{INDENT}{stmt.name} = ", stmt.value, INDENT, stmt)
    if isinstance(stmt, ast.Return):
        return _stmt(f"{INDENT}return ", stmt.value, INDENT, stmt)
    if isinstance(stmt, ast.InputDecl):
        name = f"{stmt.name} " if stmt.name is not None else ""
        return _stmt(f"{INDENT}input {name}", stmt.value, INDENT, stmt)
    message = f", {escape_string(stmt.message)}" if stmt.message is not None else ""
    lines = layout(stmt.cond, f"{INDENT}assert ", len(message) + comment_room(stmt), IF)
    return lines[:-1] + [Line(lines[-1].text + message, lines[-1].first, lines[-1].last)]


def _line(text: str, node) -> Line:
    span = node.span
    return Line(text, span.line, span.file.line_col(span.end)[0])


def _stmt(prefix: str, value, indent: str, node) -> list[Line]:
    return layout(value, prefix, comment_room(node), IF)
