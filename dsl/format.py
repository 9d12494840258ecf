"""AST → canonical text (`cnnc fmt`).

The canonical form: 4-space indents, spaces around `=` (also in keyword arguments and defaults) and
binary operators, one blank line between definitions (single blank lines inside bodies are kept),
and lines of at most 100 columns — a long chain breaks before `->`, a long call puts one argument on
each line. Comments are kept: a comment ends a line, so a chain element with a comment after it ends
its line. Invariants (tested as properties): `parse(format(m)) == m` and `format` is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnc.dsl import ast
from cnnc.dsl.literals import escape_string

WIDTH = 100
INDENT = "    "

# precedence levels, loosest first (see cnn.lark)
IF, CHAIN, OR, AND, NOT, CMP, SUM, PRODUCT, UNARY, POSTFIX, ATOM = range(11)
_BINOP_LEVEL = {"or": OR, "and": AND, "+": SUM, "-": SUM, "*": PRODUCT, "/": PRODUCT, "//": PRODUCT,
                "%": PRODUCT, "==": CMP, "!=": CMP, "<": CMP, "<=": CMP, ">": CMP, ">=": CMP}


@dataclass
class Line:
    text: str
    first: int  # source lines the content came from (for placing comments); 0 = unknown
    last: int


def format_module(module: ast.Module) -> str:
    """The canonical text of a parsed file, comments included."""
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


def _blank_between(previous, item, module) -> bool:
    if isinstance(previous, (ast.BlockDef, ast.NetworkDef)) or isinstance(item, (ast.BlockDef, ast.NetworkDef)):
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
            following = self.pending[0].span.start if self.pending and self.pending[0].span.start < offset else offset
            gap = c.span.file.text[c.span.end : following].split("\n")[1:-1]
            if any(not line.strip() for line in gap):
                out.append(Line("", 0, 0))
        return out

    def inside(self, span) -> list[ast.Comment]:
        taken = [c for c in self.pending if span.start <= c.span.start < span.end]
        self.pending = [c for c in self.pending if not any(c is t for t in taken)]  # equal texts differ
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
        lines[i] = Line(f"{lines[i].text}  {c.text}", lines[i].first, lines[i].last)
        return lines
    after = next((i for i, ln in enumerate(lines) if ln.first > line), len(lines) - 1)
    indent = lines[after].text[: len(lines[after].text) - len(lines[after].text.lstrip())]
    return lines[:after] + [Line(indent + c.text, line, line)] + lines[after:]


# ---------------------------------------------------------------------------------------------
# Items and statements


def _item(item, comments: _Comments) -> list[Line]:
    if isinstance(item, ast.Import):
        return [_line(f"import {_string(item.path)}", item)]
    if isinstance(item, ast.NetworkAlias):
        return _stmt(f"network {item.name} = ", item.value, "", item)
    if isinstance(item, ast.BlockAlias):
        return _stmt(f"block {item.name} = ", item.value, "", item)
    if isinstance(item, ast.Let):
        return _stmt(f"{item.name} = ", item.value, "", item)
    keyword = "block" if isinstance(item, ast.BlockDef) else "network"
    header = f"{keyword} {item.name}"
    if item.params is not None:
        header += "(" + ", ".join(_param(p) for p in item.params) + ")"
    lines = [Line(header + " {", item.span.line, item.span.line)]
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


def _param(p: ast.Param) -> str:
    return p.name if p.default is None else f"{p.name} = {flat(p.default, OR)}"


def _statement(stmt) -> list[Line]:
    if isinstance(stmt, ast.Let):
        return _stmt(f"{INDENT}{stmt.name} = ", stmt.value, INDENT, stmt)
    if isinstance(stmt, ast.Return):
        return _stmt(f"{INDENT}return ", stmt.value, INDENT, stmt)
    if isinstance(stmt, ast.InputDecl):
        return _stmt(f"{INDENT}input ", stmt.value, INDENT, stmt)
    message = f", {_string(stmt.message)}" if stmt.message is not None else ""
    return [_line(f"{INDENT}assert {flat(stmt.cond, IF)}{message}", stmt)]


def _line(text: str, node) -> Line:
    span = node.span
    return Line(text, span.line, span.file.line_col(span.end)[0])


def _stmt(prefix: str, value, indent: str, node) -> list[Line]:
    lines = layout(value, prefix, indent + INDENT, IF)
    return lines


# ---------------------------------------------------------------------------------------------
# Expressions: `flat` prints one line; `layout` breaks lines when a line would be too long or a
# comment sits inside the expression.


def _has_comment(expr) -> bool:
    text = expr.span.text if expr.span is not None else ""
    return "#" in text and any(ch == "#" for ch in _strip_strings(text))


def _strip_strings(text: str) -> str:
    out, quote = [], None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
            continue
        out.append(ch)
    return "".join(out)


def _src(expr) -> tuple[int, int]:
    if expr.span is None:
        return 0, 0
    return expr.span.line, expr.span.file.line_col(expr.span.end)[0]


def layout(expr, prefix: str, indent: str, context: int) -> list[Line]:
    """`prefix` + the expression, over as many lines as needed; continuation lines at `indent`."""
    first, last = _src(expr)
    one = prefix + flat(expr, context)
    if len(one) <= WIDTH and not _has_comment(expr):
        return [Line(one, first, last)]
    needs_parens = _level(expr) < context
    if needs_parens:
        inner = layout(expr, prefix + "(", indent, IF)
        inner[-1] = Line(inner[-1].text + ")", inner[-1].first, inner[-1].last)
        return inner
    if isinstance(expr, ast.Chain):
        return _layout_chain(expr, prefix, indent)
    if isinstance(expr, ast.If):
        head = layout(expr.cond, prefix + "if ", indent, IF)
        then = layout(expr.then, indent + "then ", indent + INDENT, IF)
        other = layout(expr.else_, indent + "else ", indent + INDENT, IF)
        return head + then + other
    if isinstance(expr, (ast.Call, ast.Choice, ast.ListExpr)) and _arguments(expr):
        return _layout_args(expr, prefix, indent)
    if isinstance(expr, ast.Comprehension):
        head = layout(expr.elt, prefix + "[", indent + " ", IF)
        tail = f"{indent}for {expr.var} in {flat(expr.iterable, OR)}"
        if expr.cond is not None:
            tail += f" if {flat(expr.cond, OR)}"
        return head + [Line(tail + "]", *_src(expr.iterable))]
    if isinstance(expr, ast.Labeled):
        return layout(expr.value, f"{prefix}{expr.label}: ", indent, OR)
    if isinstance(expr, ast.BinOp) and _BINOP_LEVEL[expr.op] != CMP:
        level = _BINOP_LEVEL[expr.op]
        left = layout(expr.left, prefix, indent, level)
        return left + layout(expr.right, f"{indent}{expr.op} ", indent + INDENT, level + 1)
    return [Line(one, first, last)]


def _layout_chain(expr: ast.Chain, prefix: str, indent: str) -> list[Line]:
    lines: list[Line] = []
    current = prefix
    first = _src(expr.elements[0])[0]
    last = first
    for i, element in enumerate(expr.elements):
        piece = ("-> " if i else "") + _element(element)
        joiner = " " if i and current.strip() else ""
        el_first, el_last = _src(element)
        fits = len(current) + len(joiner) + len(piece) <= WIDTH
        if i and (not fits or _comment_after(lines, current, expr, i)):
            lines.append(Line(current, first, last))
            current, joiner, first = indent, "", el_first
        if len(current) + len(joiner) + len(piece) > WIDTH or _has_comment(element):
            sub = layout(element, current + joiner + ("-> " if i else ""), indent + INDENT, CHAIN)
            lines += sub[:-1]
            current, first, last = sub[-1].text, sub[-1].first, sub[-1].last
            continue
        current += joiner + piece
        last = el_last
    lines.append(Line(current, first, last))
    return lines


def _comment_after(lines, current, expr: ast.Chain, i: int) -> bool:
    """Whether the source has a comment between element i − 1 and element i (it must end a line)."""
    prev, nxt = expr.elements[i - 1], expr.elements[i]
    between = prev.span.file.text[prev.span.end : nxt.span.start]
    return "#" in between


def _arguments(expr) -> list[str]:
    if isinstance(expr, ast.ListExpr):
        return [flat(i, IF) for i in expr.items]
    items = [flat(a, IF) for a in (expr.options if isinstance(expr, ast.Choice) else expr.args)]
    return items + [f"{k.name} = {flat(k.value, OR if not isinstance(k.value, ast.If) else IF)}" for k in expr.kwargs]


def _layout_args(expr, prefix: str, indent: str) -> list[Line]:
    if isinstance(expr, ast.ListExpr):
        opener, closer, nodes = "[", "]", list(expr.items)
    else:
        head = "choice" if isinstance(expr, ast.Choice) else flat(expr.func, POSTFIX)
        opener, closer = head + "(", ")"
        nodes = list(expr.options if isinstance(expr, ast.Choice) else expr.args) + list(expr.kwargs)
    first, last = _src(expr)
    lines = [Line(prefix + opener, first, first)]
    for node in nodes:
        if isinstance(node, ast.Kwarg):
            sub = layout(node.value, f"{indent}{node.name} = ", indent + INDENT,
                         IF if isinstance(node.value, ast.If) else OR)
        else:
            sub = layout(node, indent, indent + INDENT, IF)
        sub[-1] = Line(sub[-1].text + ",", sub[-1].first, sub[-1].last)
        lines += sub
    lines.append(Line(indent[: -len(INDENT)] + closer if len(indent) >= len(INDENT) else closer, last, last))
    return lines


def _element(expr) -> str:
    """A chain element; arithmetic is parenthesised for the reader (`(main + skip) -> ReLU`)."""
    if isinstance(expr, ast.Labeled):
        return _flat(expr)
    return flat(expr, ATOM if isinstance(expr, ast.BinOp) else OR)


def _level(expr) -> int:
    if isinstance(expr, ast.If):
        return IF
    if isinstance(expr, (ast.Chain, ast.Labeled)):
        return CHAIN
    if isinstance(expr, ast.BinOp):
        return _BINOP_LEVEL[expr.op]
    if isinstance(expr, ast.UnaryOp):
        return NOT if expr.op == "not" else UNARY
    if isinstance(expr, (ast.Call, ast.Index, ast.Attr)):
        return POSTFIX
    if isinstance(expr, ast.Number) and isinstance(expr.value, (int, float)) and expr.value < 0:
        return UNARY
    return ATOM


def flat(expr, context: int = IF) -> str:
    """One-line text of an expression, parenthesised when it binds looser than `context` needs."""
    text = _flat(expr)
    return f"({text})" if _level(expr) < context else text


def _flat(expr) -> str:
    if isinstance(expr, ast.Number):
        return expr.text or repr(expr.value)
    if isinstance(expr, ast.String):
        return _string(expr.value)
    if isinstance(expr, ast.Bool):
        return "true" if expr.value else "false"
    if isinstance(expr, ast.NoneLit):
        return "none"
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.InputRef):
        return expr.keyword or "in"
    if isinstance(expr, ast.ListExpr):
        return "[" + ", ".join(flat(i, IF) for i in expr.items) + "]"
    if isinstance(expr, ast.Comprehension):
        cond = f" if {flat(expr.cond, OR)}" if expr.cond is not None else ""
        return f"[{flat(expr.elt, IF)} for {expr.var} in {flat(expr.iterable, OR)}{cond}]"
    if isinstance(expr, ast.Chain):
        return " -> ".join(_element(e) for e in expr.elements)
    if isinstance(expr, ast.Labeled):
        return f"{expr.label}: {flat(expr.value, OR)}"
    if isinstance(expr, ast.Call):
        return f"{flat(expr.func, POSTFIX)}({', '.join(_arguments(expr))})"
    if isinstance(expr, ast.Choice):
        return f"choice({', '.join(_arguments(expr))})"
    if isinstance(expr, ast.Index):
        return f"{flat(expr.value, POSTFIX)}[{flat(expr.index, IF)}]"
    if isinstance(expr, ast.Attr):
        return f"{flat(expr.value, POSTFIX)}.{expr.name}"
    if isinstance(expr, ast.BinOp):
        level = _BINOP_LEVEL[expr.op]
        left_ctx = level + 1 if level == CMP else level
        return f"{flat(expr.left, left_ctx)} {expr.op} {flat(expr.right, level + 1)}"
    if isinstance(expr, ast.UnaryOp):
        if expr.op == "not":
            return f"not {flat(expr.operand, NOT)}"
        return f"-{flat(expr.operand, UNARY)}"
    if isinstance(expr, ast.If):
        return f"if {flat(expr.cond, IF)} then {flat(expr.then, IF)} else {flat(expr.else_, IF)}"
    raise AssertionError(f"cannot format {type(expr).__name__}")


def _string(value: str) -> str:
    return escape_string(value)
