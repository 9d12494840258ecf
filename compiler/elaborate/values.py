"""The values a .cnn expression evaluates to during elaboration.

Plain values are Python's: int, float, bool, str, None and tuples (lists). Graph values are
`Tensor`s (a node's output). Layers are functions from a tensor to a tensor, applied by `->`:
`OpLayer` (a primitive with bound arguments), `BlockLayer` (a block with bound arguments), `SeqLayer`
(several in a row, numbered like nn.Sequential), `LabeledLayer` (a label that names what it wraps) and
`MergeLayer` (branches joined by concat, `+` or `*`). `POISON` stands for a value that could not be
computed because of an error already reported: every operation on it yields `POISON` silently.
"""

from __future__ import annotations

from collections.abc import Callable

from cnnc.compiler.types import Type
from cnnc.dsl import ast
from cnnc.dsl.records import field, record
from cnnc.dsl.source import Span

TYPE_CHECKING = False  # `typing` stays unimported at run time (start-up); annotations only
if TYPE_CHECKING:
    from typing import Any


class _Poison:
    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "POISON"


POISON = _Poison()


@record
class Tensor:
    node: int
    type: Type
    # the label path of the part whose output this is (`backbone`), so `x.layer4` can take the
    # output of the part labelled `layer4` inside it
    part: tuple[str, ...] | None = field(default=None, compare=False)


@record
class Outputs:
    """What a network returns when it returns several tensors: `(a, b)` (keys 0, 1, …) or
    `{out: y, aux: z}` (keys as written)."""

    kind: str  # "tuple" | "dict"
    items: tuple[tuple[int | str, Tensor], ...]

    def get(self, key):
        return next((t for k, t in self.items if k == key), None)


@record
class OpLayer:
    spec: Any  # OpSpec
    args: dict  # torch.nn names → coerced values
    span: Span | None = field(default=None, compare=False)


@record
class BlockRef:
    """A block definition together with the module it was defined in (its lexical scope)."""

    definition: ast.BlockDef | ast.NetworkDef
    module: Any  # elaborate.ModuleScope

    @property
    def name(self) -> str:
        return self.definition.name


@record
class Partial:
    """A block with some arguments fixed (`block B2 = B(k = 5)`); calling it supplies the rest."""

    block: BlockRef
    args: tuple  # positional values, first
    kwargs: tuple[tuple[str, Any], ...]  # keyword values
    name: str


@record
class BlockLayer:
    block: BlockRef
    args: tuple[tuple[str, Any], ...]  # parameter name → bound value, in declaration order
    span: Span | None = field(default=None, compare=False)
    shown: str = ""  # `Bottleneck(128, stride = 2)`
    # a derived network used as a layer (`network trunk = r50 cut after layer4`): its output is
    # that of the part at this label path
    cut: Any = field(default=None, compare=False)  # ast.LabelPath | None


@record
class SeqLayer:
    items: tuple[Any, ...]
    span: Span | None = field(default=None, compare=False)


@record
class LabeledLayer:
    label: str
    layer: Any
    span: Span | None = field(default=None, compare=False)


@record
class MergeLayer:
    """Branches applied to one input and merged; members that are tensors are used as they are."""

    op: str  # Concat | Add | Mul
    members: tuple[Any, ...]
    span: Span | None = field(default=None, compare=False)


@record
class Builtin:
    name: str
    fn: Callable


LAYER_TYPES = (OpLayer, BlockLayer, SeqLayer, LabeledLayer, MergeLayer)
_LAYER_LIKE = (*LAYER_TYPES, BlockRef, Partial)  # what `is_layer` accepts, built once


def is_layer(value) -> bool:
    return isinstance(value, _LAYER_LIKE)


def type_name(value) -> str:
    """How a value's kind is named in messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "`none`"
    if isinstance(value, tuple):
        return "a list"
    if isinstance(value, Tensor):
        return "a tensor"
    if isinstance(value, Outputs):
        return "several tensors" if value.kind == "tuple" else "named tensors"
    if isinstance(value, (BlockRef, Partial, *LAYER_TYPES)) or hasattr(value, "infer"):
        return "a layer"
    if isinstance(value, Builtin):
        return "a function"
    return type(value).__name__


SHOW_LIMIT = 200  # characters: a longer value is cut with `…` (block titles, messages)


def show(value, limit: int = SHOW_LIMIT) -> str:
    """A value as .cnn source would write it, cut after `limit` characters: a long list (or a list
    shared many times over) must not make each block title cost as much as the list."""
    if isinstance(value, tuple):
        parts, size = [], 0
        for v in value:
            if size > limit:
                parts.append("…")
                break
            parts.append(show(v, limit - size))
            size += len(parts[-1]) + 2
        text = "[" + ", ".join(parts) + "]"
        return text if len(text) <= limit + 2 else text[:limit] + "…"
    text = _show_one(value)
    return text if len(text) <= max(limit, 0) + 2 else text[: max(limit, 0)] + "…"


def _show_one(value) -> str:
    if type(value) is int or type(value) is float:  # the most common case, first (repr, as below)
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, Tensor):
        return f"tensor {value.type}"
    if isinstance(value, Outputs):
        inner = ", ".join(
            f"{k}: {t.type}" if value.kind == "dict" else str(t.type) for k, t in value.items
        )
        return "{" + inner + "}" if value.kind == "dict" else f"({inner})"
    if isinstance(value, BlockLayer):
        return value.shown
    if isinstance(value, OpLayer):
        return value.spec.name
    if isinstance(value, (BlockRef, Partial)):
        return value.name
    if hasattr(value, "infer"):  # an OpSpec named without arguments (`act = ReLU6`)
        return value.name
    if isinstance(value, Builtin):
        return value.name
    return repr(value)
