"""The budgets of `limits`, checked during evaluation: integer sizes, list items and characters
made, and a comprehension's steps and nodes, each before the work it bounds. Each check raises
`state.Fail` with a located diagnostic (E0701–E0707); the command's totals (`limits.Ledger`) are
charged alongside, and spending one raises `state.Abort` (E0708)."""

from __future__ import annotations

from cnnc.compiler import limits
from cnnc.compiler.elaborate import estimate
from cnnc.compiler.elaborate.state import Abort, El, Frame, fail, spent_error
from cnnc.dsl import ast
from cnnc.dsl.numbers import readable


def check_int(value, span, what: str = "this integer"):
    """Integers are bounded in size (`limits.MAX_INT_BITS`), so arithmetic on them stays cheap."""
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value.bit_length() > limits.MAX_INT_BITS
    ):
        raise int_too_large(value.bit_length(), span, what)
    return value


def int_too_large(bits: int, span, what: str, verb: str = "has"):
    return fail(
        "E0704",
        f"{what} {verb} {bits:,} bits, more than the {limits.MAX_INT_BITS} an integer may have",
        span,
        "too large",
        helps=("channel counts and sizes are small numbers; check the arithmetic",),
    )


def charge(el: El, items: int, span, what: str) -> None:
    """Count list items and characters an elaboration makes (`limits.MAX_ITEMS`), before making them."""
    if items > limits.MAX_LIST:
        raise fail(
            "E0702",
            f"{what} would have {readable(items)} items, more than the {limits.MAX_LIST:,} a list may have",
            span,
            "too long",
            helps=("check the ranges and repeat counts",),
        )
    el.b.items += items
    if el.b.items > limits.MAX_ITEMS:
        raise fail(
            "E0707",
            f"the program makes more than {limits.MAX_ITEMS:,} list items and characters in all",
            span,
            "while making this",
            helps=("check nested comprehensions and lists copied in loops",),
        )
    el.b.ledger.items += items
    if el.b.ledger.items > limits.COMMAND_ITEMS:
        raise Abort(spent_error(el.b.ledger, span, Frame()))


def before_iterating(el: El, expr: ast.Comprehension, env, frame, count: int) -> None:
    """Charge a comprehension's steps and items, and its nodes' lower bound, before it runs:
    nested comprehensions are charged as each inner one starts, so their product is bounded."""
    b = el.b
    if expr.cond is None:  # (with a condition, items may be filtered out: no lower bound on nodes)
        per_item = estimate.expr_nodes(expr.elt, env, {expr.var}, b.node_bounds)
        if per_item:
            b.need(per_item * count, f"this list of {count:,} layers", expr.span, frame)
    steps = nested_steps(el, expr, env, frame, count, frozenset((expr.var,)))
    if b.steps + steps > limits.MAX_STEPS:
        raise fail(
            "E0706",
            f"the program repeats more than {limits.MAX_STEPS:,} comprehension steps in all",
            expr.span,
            f"{steps:,} steps here",
            notes=frame.notes()[:3],
            helps=("check the ranges of nested comprehensions; a network needs far fewer",),
        )
    b.steps += count  # inner comprehensions charge their own steps as they start
    b.ledger.steps += count
    if b.ledger.steps > limits.COMMAND_STEPS:
        raise Abort(spent_error(b.ledger, expr.span, frame))
    charge(el, count, expr.span, "this list")


def nested_steps(el: El, expr: ast.Comprehension, env, frame, count: int, bound: frozenset) -> int:
    """Steps of a comprehension and of those directly inside it whose range is known before the
    outer one iterates (it reads none of the loop variables): the product is checked up front."""
    inner = expr.elt
    if (
        count == 0
        or expr.cond is not None
        or not isinstance(inner, ast.Comprehension)
        or not _closed(inner.iterable, bound)
    ):  # (an empty loop never evaluates its element)
        return count
    iterable = el.evaluate(inner.iterable, env, frame)
    if not isinstance(iterable, tuple):
        return count
    return count * (1 + nested_steps(el, inner, env, frame, len(iterable), bound | {inner.var}))


def _closed(expr, bound: frozenset) -> bool:
    """Plain arithmetic over numbers and names not in `bound`, with `range` and `len` calls."""
    if isinstance(expr, ast.Number):
        return True
    if isinstance(expr, ast.Name):
        return expr.id not in bound
    if isinstance(expr, ast.BinOp):
        return _closed(expr.left, bound) and _closed(expr.right, bound)
    if isinstance(expr, ast.UnaryOp):
        return _closed(expr.operand, bound)
    if (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Name)
        and expr.func.id in ("range", "len")
    ):
        return not expr.kwargs and all(_closed(a, bound) for a in expr.args)
    return False
