"""Expressions → one line of text, for `cnnc fmt` (the formatter's `dsl/layout.py` breaks lines).

Parentheses come from precedence alone (the AST keeps none), plus two for the reader: arithmetic as
a chain element or a label's value (`(main + skip) -> ReLU`), and a chain as an arm of a one-line
`if` (`if act == none then (conv -> norm) else act`).
"""

from __future__ import annotations

from cnnc.dsl import ast
from cnnc.dsl.literals import escape_string

# precedence levels, loosest first (see cnn.lark)
IF, CHAIN, OR, AND, NOT, CMP, SUM, PRODUCT, UNARY, POSTFIX, ATOM = range(11)
BINOP_LEVEL = {
    "or": OR,
    "and": AND,
    "+": SUM,
    "-": SUM,
    "*": PRODUCT,
    "/": PRODUCT,
    "//": PRODUCT,
    "%": PRODUCT,
    "==": CMP,
    "!=": CMP,
    "<": CMP,
    "<=": CMP,
    ">": CMP,
    ">=": CMP,
}


# expressions written as an opener, comma-separated parts and a closer
BRACKETED = (ast.Call, ast.Choice, ast.ListExpr, ast.TupleExpr, ast.RecordExpr)
CLOSER = {ast.ListExpr: "]", ast.TupleExpr: ")", ast.RecordExpr: "}"}


def level(expr) -> int:
    if isinstance(expr, ast.If):
        return IF
    if isinstance(expr, (ast.Chain, ast.Labeled)):
        return CHAIN
    if isinstance(expr, ast.BinOp):
        return BINOP_LEVEL[expr.op]
    if isinstance(expr, ast.UnaryOp):
        return NOT if expr.op == "not" else UNARY
    if isinstance(expr, (ast.Call, ast.Index, ast.Attr)):
        return POSTFIX
    if isinstance(expr, ast.Number) and isinstance(expr.value, (int, float)) and expr.value < 0:
        return UNARY
    return ATOM


def flat(expr, context: int = IF) -> str:
    """One-line text of an expression, parenthesised when it binds looser than `context` needs."""
    text = memo(_flat, expr)
    return f"({text})" if level(expr) < context else text


def prime(expr, *more) -> None:
    """Compute the text of every node under `expr` (and each of `more`, functions of a node whose
    parts are known), innermost first and without recursion, so that `flat` on a 200-deep
    expression finds its parts' text already there."""
    order, stack = [], [expr]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(children(node))
    for node in reversed(order):
        for fn in (_flat, *more):
            memo(fn, node)


def children(expr) -> list:
    if isinstance(expr, ast.Chain):
        return list(expr.elements)
    if isinstance(expr, BRACKETED):
        head = [expr.func] if isinstance(expr, ast.Call) else []
        return head + [
            a.value if isinstance(a, (ast.Kwarg, ast.Field)) else a for a in arg_nodes(expr)
        ]
    if isinstance(expr, ast.Comprehension):
        return [expr.elt, expr.iterable] + ([expr.cond] if expr.cond is not None else [])
    if isinstance(expr, ast.If):
        return [expr.cond, expr.then, expr.else_]
    if isinstance(expr, ast.BinOp):
        return [expr.left, expr.right]
    if isinstance(expr, ast.Index):
        return [expr.value, expr.index]
    if isinstance(expr, (ast.Attr, ast.Labeled)):
        return [expr.value]
    if isinstance(expr, ast.UnaryOp):
        return [expr.operand]
    return []


_MEMO: dict = {}


def memo(fn, node):
    """`fn(node)`, computed once per node: the formatter asks for the same text at every level of
    an expression, which would cost the file's size times its depth."""
    key = (fn, id(node))
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is node:  # the node itself is kept, so its id is never reused
        return hit[1]
    if len(_MEMO) > 200_000:
        _MEMO.clear()
    value = fn(node)
    _MEMO[key] = (node, value)
    return value


def element_context(expr) -> int:
    """Arithmetic in a chain (or labelled) is parenthesised for the reader: `(main + skip) -> ReLU`."""
    return ATOM if isinstance(expr, ast.BinOp) else OR


def element_text(expr) -> str:
    return _flat(expr) if isinstance(expr, ast.Labeled) else flat(expr, element_context(expr))


def _kwarg(k: ast.Kwarg) -> str:
    return f"{k.name} = {flat(k.value, kwarg_context(k))}"


def kwarg_context(k: ast.Kwarg) -> int:
    return IF if isinstance(k.value, ast.If) else OR


def arg_nodes(expr) -> list:
    if isinstance(expr, (ast.ListExpr, ast.TupleExpr, ast.RecordExpr)):
        return list(expr.items)
    return list(expr.options if isinstance(expr, ast.Choice) else expr.args) + list(expr.kwargs)


def arg_text(node) -> str:
    if isinstance(node, ast.Field):
        return f"{node.key}: {flat(node.value, IF)}"
    return _kwarg(node) if isinstance(node, ast.Kwarg) else flat(node, IF)


def _flat(expr) -> str:
    if isinstance(expr, ast.Number):
        return expr.text or repr(expr.value)
    if isinstance(expr, ast.String):
        return escape_string(expr.value)
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
    if isinstance(expr, ast.TupleExpr):
        return (
            "("
            + ", ".join(flat(i, IF) for i in expr.items)
            + ("," if len(expr.items) == 1 else "")
            + ")"
        )
    if isinstance(expr, ast.RecordExpr):
        return "{" + ", ".join(arg_text(i) for i in expr.items) + "}"
    if isinstance(expr, ast.Comprehension):
        return f"[{flat(expr.elt, IF)} {for_clause(expr)}]"
    if isinstance(expr, ast.Chain):
        return " -> ".join(element_text(e) for e in expr.elements)
    if isinstance(expr, ast.Labeled):
        return f"{expr.label}: {flat(expr.value, element_context(expr.value))}"
    if isinstance(expr, (ast.Call, ast.Choice)):
        return f"{opener(expr)}{', '.join(arg_text(a) for a in arg_nodes(expr))})"
    if isinstance(expr, ast.Index):
        return f"{flat(expr.value, POSTFIX)}[{flat(expr.index, IF)}]"
    if isinstance(expr, ast.Attr):
        return f"{flat(expr.value, POSTFIX)}.{expr.name}"
    if isinstance(expr, ast.BinOp):
        lvl = BINOP_LEVEL[expr.op]
        left_ctx = lvl + 1 if lvl == CMP else lvl
        return f"{flat(expr.left, left_ctx)} {expr.op} {flat(expr.right, lvl + 1)}"
    if isinstance(expr, ast.UnaryOp):
        if expr.op == "not":
            return f"not {flat(expr.operand, NOT)}"
        return f"-{flat(expr.operand, UNARY)}"
    if isinstance(expr, ast.If):
        return f"if {flat(expr.cond, IF)} then {arm_text(expr.then)} else {arm_text(expr.else_)}"
    raise AssertionError(f"cannot format {type(expr).__name__}")


def for_clause(expr: ast.Comprehension) -> str:
    cond = f" if {flat(expr.cond, OR)}" if expr.cond is not None else ""
    return f"for {expr.var} in {flat(expr.iterable, OR)}{cond}"


def closer(expr) -> str:
    return CLOSER.get(type(expr), ")")


def opener(expr) -> str:
    if isinstance(expr, ast.ListExpr):
        return "["
    if isinstance(expr, ast.TupleExpr):
        return "("
    if isinstance(expr, ast.RecordExpr):
        return "{"
    if isinstance(expr, ast.Choice):
        return "choice("
    return flat(expr.func, POSTFIX) + "("


def arm_text(expr) -> str:
    """An arm of a one-line `if`: a chain is parenthesised for the reader."""
    return f"({_flat(expr)})" if isinstance(expr, ast.Chain) else flat(expr, IF)
