"""The budgets of one elaboration: what a .cnn file may cost, checked before the cost is paid.

A .cnn file is untrusted data (STYLE.md rule 13): a few lines must not exhaust memory or time. Each
limit below is checked from the sizes of the operands, before the list, string, integer or node
is made, and breaking one is a located user error (exit 1) with its own code and explain page:

- `MAX_NODES` (E0701): nodes of one network. Real networks have a few thousand; a 100k-layer chain
  still fits. Checked as each node is made, and earlier from a lower bound (`estimate`): a list of
  layers, a comprehension that makes layers and a sequence about to be applied are refused at once
  when they need more nodes than are left, before any is built (`ResNet([3, 1000000, 6, 3])`), and
  so is a block instance (blocks that double at each level); a sequence may not have more layers
  than nodes are left, even layers that make none.
- `MAX_LIST` (E0702): items of one list, from a list literal, `range`, a comprehension, `+` or `*`.
- `MAX_STRING` (E0703): characters of one string, checked before `+` joins two.
- `MAX_INT_BITS` (E0704): the size of an integer; `+ - * // %` and `pow` are checked from their
  operands' sizes, so repeated squaring and `pow` towers stop before the big number is computed.
- `MAX_DEPTH` (E0705): how deeply evaluation nests — blocks inside blocks, values defined through
  other values. Deeper programs stop with a located error instead of Python's RecursionError; a
  value nested by thousands of statements that still exhausts the stack is E0705 without a place.
- `MAX_STEPS` (E0706): comprehension steps of one elaboration in all (the repeat counts), charged
  before each comprehension iterates; where an inner comprehension's range is known before the
  outer one iterates, their product is checked at once.
- `MAX_ITEMS` (E0707): list items and string characters one elaboration makes in all, charged before
  they are made, so a loop that copies a long list or string at each step is bounded by the copies.
"""

from __future__ import annotations

import sys

MAX_NODES = 250_000
MAX_LIST = 1_000_000
MAX_ITEMS = 4_000_000
MAX_STRING = 100_000
MAX_INT_BITS = 512
MAX_DEPTH = 1_000
MAX_STEPS = 500_000

# Python frames one level of evaluation takes at most (a block instance: evaluate → chain → apply →
# instantiate → body → guard → …; 11 measured for labelled nested blocks), so that MAX_DEPTH levels
# fit under the interpreter's recursion limit.
FRAMES_PER_LEVEL = 16


def ensure_recursion_room() -> None:
    """Raise the interpreter's recursion limit so that MAX_DEPTH, not Python, is what stops a deep
    program (CPython ≥ 3.11 runs Python-to-Python calls without growing the C stack)."""
    need = MAX_DEPTH * FRAMES_PER_LEVEL + 2_000
    if sys.getrecursionlimit() < need:
        sys.setrecursionlimit(need)


def int_bits_after(op: str, left: int, right: int) -> int:
    """An upper bound on the bits of `left op right` for integers, without computing it."""
    a, b = abs(left).bit_length(), abs(right).bit_length()
    if op == "*":
        return a + b
    if op in ("+", "-"):
        return max(a, b) + 1
    if op == "//":
        return a + 1  # |a // b| ≤ |a| + 1 (flooring a negative quotient adds one)
    return max(a, b)  # `%`: smaller than the divisor, or the dividend when it is smaller


def pow_bits(base: int, exponent: int) -> int:
    """An upper bound on the bits of `base ** exponent` (exponent ≥ 0)."""
    return abs(base).bit_length() * exponent
