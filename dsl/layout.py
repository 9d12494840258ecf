"""Expressions → text for `cnnc fmt`: `flat` prints one line, `layout` breaks lines.

The rules, in order:
- an expression stays on one line when it fits, holds no comment, and its author broke no line at
  its own level. A break the author made between the elements of a chain, the arguments of a call,
  the items of a list, the arms of an `if`, the operands of arithmetic or before a comprehension's
  `for` is kept: `fmt` never undoes a deliberate grouping (`-> conv1: Conv(…) -> bn1: BatchNorm ->
  ReLU` on one line, the next layer on the next), and formatting twice changes nothing.
- where a line would pass `WIDTH` (its trailing comment included), it breaks before `->`, after `,`,
  before `then`/`else`, before an operator and before `for`, filling each line greedily.
- continuation lines align with what they continue: `->` under the first `->` after a bare name
  (`in -> a` / `   -> b`), otherwise under the chain's first element; arguments and items after
  their `(` or `[`; `then`/`else` under `if` (each `else` on a line of its own); an operator under
  its left operand. Where that column leaves too little room, or the author broke the line right
  after the bracket, the arguments hang instead: one per line, 4 columns in from the line's indent,
  the bracket closing on its own line.
"""

from __future__ import annotations

from collections.abc import Callable

from cnnc.dsl import ast
from cnnc.dsl.breaks import (
    broken,
    comment_room,
    commented,
    has_comment,
    opened_on_own_line,
    own_breaks,
    src,
)
from cnnc.dsl.flat import (
    BINOP_LEVEL,
    BRACKETED,
    CHAIN,
    CMP,
    IF,
    arg_nodes,
    arg_text,
    arm_text,
    element_context,
    element_text,
    flat,
    for_clause,
    kwarg_context,
    level,
    memo,
    opener,
    prime,
)
from cnnc.dsl.flat import (
    closer as closer_of,
)
from cnnc.dsl.records import record, replace

WIDTH = 100
INDENT = "    "
ROOM = 40  # a part that must break anyway may start on the current line if this much is left


@record(slots=False)
class Line:
    text: str
    first: int  # source lines the content came from (for placing comments); 0 = unknown
    last: int


# ---------------------------------------------------------------------------------------------
# Over several lines

MAX_DEPTH = 50  # deeper expressions stay on one line: no recursion limit, and none is hand-written
# Choosing between aligned and hanging arguments renders both; only the outer levels choose so (the
# inner ones decide from the narrowest width each argument can take), so the work stays linear in
# the file whatever its nesting, and the choice is a function of the text alone.
CHOICE_DEPTH = 2
_depth = [0]


def reset_depth() -> None:
    """A fresh start for each file (an exception may have left the count behind)."""
    _depth[0] = 0


def _choosing() -> bool:
    return _depth[0] <= CHOICE_DEPTH


def layout(expr, prefix: str, tail: int = 0, context: int = IF) -> list[Line]:
    """`prefix` + the expression, over as many lines as needed; `tail` columns follow its end."""
    one = prefix + flat(expr, context)
    if len(one) + tail <= WIDTH and not has_comment(expr) and not own_breaks(expr):
        return [Line(one, *src(expr))]
    if _depth[0] >= MAX_DEPTH:
        return [Line(one, *src(expr))]
    _depth[0] += 1
    try:
        return _broken_layout(expr, prefix, tail, context, one)
    finally:
        _depth[0] -= 1


def _broken_layout(expr, prefix: str, tail: int, context: int, one: str) -> list[Line]:
    if level(expr) < context:
        return _close(layout(expr, prefix + "(", tail + 1, IF), ")")
    if isinstance(expr, ast.Chain):
        return _chain(expr, prefix, tail)
    if isinstance(expr, ast.If):
        return _if(expr, prefix, tail)
    if isinstance(expr, BRACKETED) and arg_nodes(expr):
        return _arguments(expr, prefix, tail)
    if isinstance(expr, ast.Comprehension):
        return _comprehension(expr, prefix, tail)
    if isinstance(expr, ast.Labeled):
        return layout(expr.value, f"{prefix}{expr.label}: ", tail, element_context(expr.value))
    if isinstance(expr, ast.BinOp) and BINOP_LEVEL[expr.op] != CMP:
        return _binop(expr, prefix, tail)
    return [Line(one, *src(expr))]


def _close(lines: list[Line], text: str) -> list[Line]:
    return lines[:-1] + [replace(lines[-1], text=lines[-1].text + text)]


def _overflow(lines: list[Line]) -> int:
    return sum(max(0, len(line.text) - WIDTH) for line in lines)


@record(slots=False)
class Part:
    """One piece of a broken sequence: an element of a chain, an argument, an operand."""

    node: object
    text: str  # its one-line text, separator included (`-> ReLU`, `+ in`, `64,`)
    render: Callable[[str, int], list[Line]]  # (prefix, tail) → its lines, for when it breaks
    forced: bool  # the author broke the line before it
    tail: int  # columns that must follow it on its line: `)`, a trailing comment
    joiner: str = " "
    pinned: bool = False  # a comment ends the line before it: the break stays, whatever happens
    alone: str = (
        ""  # its text when it starts a line, if not `text` (an `if` arm needs no parentheses)
    )


def fill(
    parts: list[Part], current: Line, col: int, squeeze: bool, refill: bool = False
) -> list[Line]:
    """Lay `parts` after `current`, a line at a time; continuation lines start at `col`.

    `squeeze`: a part too long for a line of its own may start on the current line (`in -> [x` /
    `for i in …]`) rather than open a line only to break itself. `refill`: when a line must break
    where the author did not break it, the author's breaks go too and the parts are packed anew
    (a list of rows keeps its rows; an overlong one is not split into a long and a short line).
    """
    lines, wrapped = _fill(parts, current, col, squeeze)
    if refill and wrapped and any(p.forced and not p.pinned for p in parts):
        lines, _ = _fill([replace(p, forced=p.pinned) for p in parts], current, col, squeeze)
    return lines


def _fill(parts: list[Part], current: Line, col: int, squeeze: bool) -> tuple[list[Line], bool]:
    lines: list[Line] = []
    wrapped = after_break = False  # after a part that broke, the next one starts a line
    for part in parts:
        simple = not has_comment(part.node) and not own_breaks(part.node)
        first, last = src(part.node)
        here = len(current.text) + len(part.joiner) + len(part.text) + part.tail
        if not part.forced and not after_break and simple and here <= WIDTH:
            current = Line(
                current.text + part.joiner + part.text,
                current.first or first,
                max(current.last, last),
            )
            continue
        wrapped = wrapped or not (part.forced or after_break)
        alone = simple and col + len(part.text) + part.tail <= WIDTH
        stay = not part.joiner or (squeeze and len(current.text) <= WIDTH - ROOM)
        if not part.forced and not after_break and not alone and stay:
            sub = _squeezed(part, current, col, must=not part.joiner)
        elif alone:
            sub = [current, Line(" " * col + (part.alone or part.text), first, last)]
        else:
            sub = [current] + part.render(" " * col, part.tail)
        after_break = len(sub) > 2 or (len(sub) == 2 and sub[0] is not current)
        lines += sub[:-1]
        current = sub[-1]
    return lines + [current], wrapped


def _squeezed(part: Part, current: Line, col: int, must: bool) -> list[Line]:
    """`part` started on the current line, unless starting it on a line of its own is better."""

    def here() -> list[Line]:
        sub = part.render(current.text + part.joiner, part.tail)
        return [Line(sub[0].text, current.first or sub[0].first, sub[0].last)] + sub[1:]

    if must or not _choosing():
        return here()
    squeezed = here()
    fresh = [current] + part.render(" " * col, part.tail)
    if not _overflow(squeezed) and len(squeezed) < len(fresh):
        return squeezed
    return min(fresh, squeezed, key=_overflow)


def _chain(expr: ast.Chain, prefix: str, tail: int) -> list[Line]:
    els = expr.elements
    head = _element_lines(els[0], prefix, 0)
    after_name = len(head[0].text) + 1
    if len(head) == 1 and isinstance(els[0], (ast.Name, ast.InputRef)) and after_name <= WIDTH // 2:
        col = after_name  # `->` under the first `->`
    else:
        col = _column(
            [len(prefix), _indent(prefix) + len(INDENT)],
            [3 + len(element_text(e)) for e in els[1:]],
        )
    parts = []
    for i, e in enumerate(els[1:], start=1):
        last = i == len(els) - 1
        end_of_line = last or broken(e, els[i + 1])
        room = tail if last else comment_room(e) if end_of_line else 0
        parts.append(
            Part(
                e,
                "-> " + element_text(e),
                lambda p, t, e=e: _element_lines(e, p + "-> ", t),
                broken(els[i - 1], e),
                room,
                pinned=commented(els[i - 1], e),
            )
        )
    return head[:-1] + fill(parts, head[-1], col, squeeze=True)


def _column(columns: list[int], widths: list[int]) -> int:
    """The first column where every part fits that could fit at all (the last one otherwise)."""
    shown = [w for w in widths if min(columns) + w <= WIDTH]
    return next((c for c in columns if all(c + w <= WIDTH for w in shown)), columns[-1])


def _element_lines(e, prefix: str, tail: int) -> list[Line]:
    if isinstance(e, ast.Labeled):
        return layout(e, prefix, tail, CHAIN)
    return layout(e, prefix, tail, element_context(e))


def _if(expr: ast.If, prefix: str, tail: int) -> list[Line]:
    """`if c then a` / `else b` on lines of their own, `else` under `if`; an `else if` continues
    the same column, and a `then` joins its condition's line when it fits."""
    arms = []  # (keyword, node, source node before it)
    node = expr
    while True:
        arms += [("then", node.then, node.cond), ("else", node.else_, node.then)]
        nested = node.else_
        if not isinstance(nested, ast.If):
            break
        arms[-1] = ("else if", nested.cond, node.then)
        node = nested
    parts = []
    for i, (word, arm, before) in enumerate(arms):
        last = i == len(arms) - 1
        room = tail if last else comment_room(arm) if broken(arm, arms[i + 1][1]) else 0
        # `then` may stay on its condition's line; each `else` starts one
        forced = broken(before, arm) or word != "then"
        parts.append(
            Part(
                arm,
                f"{word} {arm_text(arm)}",
                lambda p, t, w=word, a=arm: layout(a, f"{p}{w} ", t, IF),
                forced,
                room,
                pinned=commented(before, arm),
                alone=f"{word} {flat(arm, IF)}",
            )
        )
    head = layout(expr.cond, prefix + "if ", 0, IF)
    return head[:-1] + fill(parts, head[-1], len(prefix), squeeze=False)


def _binop(expr: ast.BinOp, prefix: str, tail: int) -> list[Line]:
    lvl = BINOP_LEVEL[expr.op]
    operands, ops = [expr.right], [expr.op]
    left = expr.left
    while (
        isinstance(left, ast.BinOp) and BINOP_LEVEL[left.op] == lvl
    ):  # left-associative: a + b - c
        operands.insert(0, left.right)
        ops.insert(0, left.op)
        left = left.left
    head = layout(left, prefix, 0, lvl)
    previous = [left, *operands]
    parts = []
    for i, (op, x) in enumerate(zip(ops, operands, strict=True)):
        last = i == len(ops) - 1
        room = tail if last else comment_room(x) if broken(x, operands[i + 1]) else 0
        parts.append(
            Part(
                x,
                f"{op} {flat(x, lvl + 1)}",
                lambda p, t, x=x, op=op: layout(x, f"{p}{op} ", t, lvl + 1),
                broken(previous[i], x),
                room,
                pinned=commented(previous[i], x),
            )
        )
    return head[:-1] + fill(parts, head[-1], len(prefix), squeeze=True)


def _comprehension(expr: ast.Comprehension, prefix: str, tail: int) -> list[Line]:
    clause = for_clause(expr)
    head = layout(expr.elt, prefix + "[", 0, IF)
    if (
        not broken(expr.elt, expr.iterable)
        and len(head[-1].text) + 1 + len(clause) + 1 + tail <= WIDTH
    ):
        return _close(head, f" {clause}]")
    return head + [Line(" " * (len(prefix) + 1) + clause + "]", *src(expr.iterable))]


def _arguments(expr, prefix: str, tail: int) -> list[Line]:
    nodes = arg_nodes(expr)
    head = prefix + opener(expr)
    closer = closer_of(expr) + ("," if isinstance(expr, ast.TupleExpr) and len(nodes) == 1 else "")
    if opened_on_own_line(expr, nodes[0]):
        return _hanging(expr, nodes, head, closer)
    if not _choosing():  # deep inside: no trial; hang when an argument cannot fit at the column
        hang = _indent(head) + len(INDENT)
        if _column([len(head), hang], [narrowest(n) + 2 for n in nodes]) != len(head):
            return _hanging(expr, nodes, head, closer)
        return _aligned(expr, nodes, head, closer, tail)
    aligned = _aligned(expr, nodes, head, closer, tail)
    if not _overflow(aligned) and all(_indent(line.text) >= len(head) for line in aligned[1:]):
        return aligned  # fits, and nothing inside had to hang left of the column
    return min(_hanging(expr, nodes, head, closer), aligned, key=_overflow)


def prime_layout(expr) -> None:
    """The one-line text and the narrowest width of every node of `expr`, computed bottom-up."""
    prime(expr, _narrowest)


def narrowest(node) -> int:
    """About the fewest columns `node` can take when broken: its widest unbreakable piece."""
    return memo(_narrowest, node)


def _narrowest(node) -> int:
    if isinstance(node, ast.Field):
        return len(node.key) + 2 + narrowest(node.value)
    if isinstance(node, ast.Kwarg):
        return len(node.name) + 3 + narrowest(node.value)
    if isinstance(node, BRACKETED) and arg_nodes(node):
        nodes = arg_nodes(node)
        return max(
            len(opener(node)) + narrowest(nodes[0]),
            *(narrowest(n) + 1 for n in nodes[1:]),
            len(opener(node)) + 4,
        )
    if isinstance(node, ast.Chain):
        return max(3 + narrowest(e) for e in node.elements)
    if isinstance(node, ast.Labeled):
        return len(node.label) + 2 + narrowest(node.value)
    if isinstance(node, ast.BinOp) and BINOP_LEVEL[node.op] != CMP:
        return max(narrowest(node.left), len(node.op) + 1 + narrowest(node.right))
    if isinstance(node, ast.Comprehension):
        return max(1 + narrowest(node.elt), len(for_clause(node)) + 2)
    if isinstance(node, ast.If):
        return max(5 + narrowest(part) for part in (node.cond, node.then, node.else_))
    return len(flat(node))


def _aligned(expr, nodes, head: str, closer: str, tail: int) -> list[Line]:
    parts = []
    for i, node in enumerate(nodes):
        last = i == len(nodes) - 1
        suffix = closer if last else ","
        end_of_line = last or broken(node, nodes[i + 1])
        room = tail if last else comment_room(node) if end_of_line else 0
        parts.append(
            Part(
                node,
                arg_text(node) + suffix,
                lambda p, t, node=node, s=suffix: _close(_arg_lines(node, p, t + len(s)), s),
                i > 0 and broken(nodes[i - 1], node),
                room,
                "" if i == 0 else " ",
                pinned=i > 0 and commented(nodes[i - 1], node),
            )
        )
    start = Line(head, src(expr)[0], src(expr)[0])
    return fill(parts, start, len(head), squeeze=False, refill=True)


def _hanging(expr, nodes, head: str, closer: str) -> list[Line]:
    indent = _indent(head)
    inner = " " * (indent + len(INDENT))
    first, last = src(expr)
    lines = [Line(head, first, first)]
    for node in nodes:
        lines += _close(_arg_lines(node, inner, 1 + comment_room(node)), ",")
    return [*lines, Line(" " * indent + closer, last, last)]


def _arg_lines(node, prefix: str, tail: int) -> list[Line]:
    if isinstance(node, ast.Field):
        return layout(node.value, f"{prefix}{node.key}: ", tail, IF)
    if isinstance(node, ast.Kwarg):
        return layout(node.value, f"{prefix}{node.name} = ", tail, kwarg_context(node))
    return layout(node, prefix, tail, IF)


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))
