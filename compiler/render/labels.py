"""The words on a diagram: one short line per op (`Conv 3×3/2, 64`), counts (`25.6M`), range names.

Pure text, no graphviz. Op labels are the registry's (`ops.describe`): they read `node.args`
(torch.nn's names), never recompute shapes, and tolerate a missing key (a node where inference
failed still has the arguments as written).
"""

from __future__ import annotations

from html import escape

from cnnc.compiler.ir import Node
from cnnc.compiler.ops import REGISTRY, describe
from cnnc.dsl.numbers import short as human  # noqa: F401  (labels' name, used by dot.py)

MERGE_GLYPHS = {name: spec.glyph for name, spec in REGISTRY.items() if spec.glyph}  # ⊕ ⊗ ‖


def op_label(node: Node) -> str:
    """The op and its key attributes: `Conv 3×3/2, 64`, `MaxPool 3×3/2`, `Linear, 1000`, `ReLU`
    (the registry's one describer, as on the summary's table)."""
    return describe(node.op, node.args)


def shown_name(node: Node) -> str:
    """The node's own label when the program gave one (`conv1`), else `` for generated names.

    Generated names are sequence positions (`0`, `1`) and lowercased op names (`relu`, `relu_1`); they
    add nothing the op line does not already say.
    """
    if not node.path:
        return ""
    last = node.path[-1]
    stem, _, suffix = last.rpartition("_")
    generated = (
        last.isdigit() or last == node.op.lower() or (stem == node.op.lower() and suffix.isdigit())
    )
    return "" if generated else last


def display_name(path: tuple[str, ...], parent: tuple[str, ...]) -> str:
    """A scope's name inside the cluster `parent`: relative (`branch1` in `inception3a`) unless that is
    only a number, which says little alone (`layer2.0` stays whole)."""
    rest = path[len(parent) :] if path[: len(parent)] == parent else path
    if not parent or all(part.isdigit() for part in rest):
        return ".".join(path)
    return ".".join(rest)


def range_name(names: tuple[str, ...]) -> str:
    """`layer3.1–5` for consecutive numbered siblings, else `first … last`."""
    if len(names) == 1:
        return names[0]
    first, last = names[0], names[-1]
    head, _, a = first.rpartition(".")
    head_b, _, b = last.rpartition(".")
    if head == head_b and a.isdigit() and b.isdigit():
        return f"{first}–{b}"
    return f"{first} … {last}"


def clip(text: str, width: int = 64) -> str:
    """`text`, cut to `width` characters with `…` (long block calls would widen a whole cluster)."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def wrap(text: str, width: int = 52) -> list[str]:
    """Greedy word wrap for error headlines inside a node."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def html(text: str) -> str:
    """Text escaped for a Graphviz HTML-like label."""
    return escape(str(text), quote=False)
