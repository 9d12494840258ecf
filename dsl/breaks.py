"""What the source says about layout, for `cnnc fmt`: where the author broke lines between the
parts of an expression, and where comments sit (a comment ends its line, and a trailing one takes
columns). Answers are cached per node or per source line, so asking at every level stays cheap.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import pairwise

from cnnc.dsl import ast
from cnnc.dsl.flat import BINOP_LEVEL, BRACKETED, CMP, arg_nodes, memo


def src(node) -> tuple[int, int]:
    span = getattr(node, "span", None)
    if span is None:
        return 0, 0
    return span.line, span.file.line_col(span.end)[0]


def _gap(a, b) -> str:
    """The source text between two nodes ('' when either has no span)."""
    if a is None or b is None or a.span is None or b.span is None:
        return ""
    return a.span.file.text[a.span.end : b.span.start]


def broken(a, b) -> bool:
    """Whether the author broke the line between two parts."""
    return "\n" in _gap(a, b)


def commented(a, b) -> bool:
    """Whether a comment sits between two parts (it ends the line, so the break must stay)."""
    return "#" in _gap(a, b)


def opened_on_own_line(expr, first) -> bool:
    """Whether the author broke the line right after the opening bracket."""
    if expr.span is None or first.span is None:
        return False
    return "\n" in expr.span.file.text[expr.span.start : first.span.start]


def own_breaks(expr) -> bool:
    """Whether the author broke a line between the parts of `expr` (not inside a part)."""
    return memo(_own_breaks, expr)


def _own_breaks(expr) -> bool:
    parts = _parts(expr)
    brackets = isinstance(expr, BRACKETED)
    if parts and brackets and opened_on_own_line(expr, parts[0]):
        return True
    return any(broken(a, b) for a, b in pairwise(parts))


def _parts(expr) -> list:
    if isinstance(expr, ast.Chain):
        return list(expr.elements)
    if isinstance(expr, BRACKETED):
        return arg_nodes(expr)
    if isinstance(expr, ast.If):
        return [expr.cond, expr.then, expr.else_]
    if isinstance(expr, ast.BinOp) and BINOP_LEVEL[expr.op] != CMP:
        return [expr.left, expr.right]
    if isinstance(expr, ast.Comprehension):
        return [expr.elt, expr.iterable]
    return []


_COMMENTS: dict = {}  # id(file) → (file, sorted offsets where its comments start)


def know_comments(module: ast.Module) -> None:
    """Where the file's comments start, as the lexer found them (`has_comment` bisects these)."""
    if module.span is not None:
        if len(_COMMENTS) > 1_000:
            _COMMENTS.clear()
        _COMMENTS[id(module.span.file)] = (
            module.span.file,
            sorted(c.span.start for c in module.comments),
        )


def has_comment(node) -> bool:
    """Whether a comment starts inside the node's text (a `#` in a string is no comment)."""
    span = getattr(node, "span", None)
    if span is None:
        return False
    known = _COMMENTS.get(id(span.file))
    if known is None or known[0] is not span.file:
        return "#" in span.text  # a file not announced: any `#` might be a comment, keep the lines
    starts = known[1]
    i = bisect_left(starts, span.start)
    return i < len(starts) and starts[i] < span.end


def comment_room(node) -> int:
    """Columns the trailing comment on the line where `node` ends will take (0 when none)."""
    span = getattr(node, "span", None)
    if span is None:
        return 0
    return _comment_width(span.file, span.file.line_col(span.end)[0])


_LINES: dict = {}


def _comment_width(file, line: int) -> int:
    """Cached per source line: a 4 MB one-line file is scanned once, not once per node."""
    hit = _LINES.get((id(file), line))
    if hit is not None and hit[0] is file:
        return hit[1]
    text = file.line_text(line)
    at = _hash_column(text)
    width = 0 if at >= len(text) or not text[:at].strip() else 2 + len(text[at:].rstrip())
    if len(_LINES) > 100_000:
        _LINES.clear()
    _LINES[(id(file), line)] = (file, width)
    return width


def _hash_column(text: str) -> int:
    """The index of the `#` that starts the comment in a source line (its length when none)."""
    quote, i = None, 0
    while i < len(text):
        ch = text[i]
        if quote:
            i += 2 if ch == "\\" else 1
            quote = None if ch == quote else quote
            continue
        if ch == "#":
            return i
        if ch in "\"'":
            quote = ch
        i += 1
    return len(text)
