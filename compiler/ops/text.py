"""Text of ops: the words of each op's label (`Conv 3×3/2, 64`) and the .cnn call that makes a node
(`call_text`: search writes its winners with it, `cnnc ops` its signatures).

Pure text. Labels read a node's arguments under torch.nn's names and tolerate a missing key: a node
whose inference failed keeps the arguments as written.
"""

from __future__ import annotations

from cnnc.compiler.ops.spec import REQUIRED, ParamKind
from cnnc.dsl.literals import write_literal

TYPE_CHECKING = False  # `typing` stays unimported at run time (start-up); annotations only
if TYPE_CHECKING:
    from typing import Any


def pair(value: Any) -> tuple[Any, Any]:
    """An argument that torch accepts as int or (h, w), as a pair."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return value[0], value[1]
    return value, value


def window(kernel: Any, stride: Any = 1) -> str:
    """`3×3/2`: the kernel, then the stride when it is not 1 (`/2×1` when it differs per axis)."""
    kh, kw = pair(kernel)
    sh, sw = pair(kernel if stride is None else stride)
    text = f"{kh}×{kw}"
    if (sh, sw) != (1, 1):
        text += f"/{sh}" if sh == sw else f"/{sh}×{sw}"
    return text


def cross(value: Any) -> str:
    """`2×2` for a pair or a number, `2` stays `2×2`; floats without a trailing `.0`."""
    h, w = pair(value)
    return f"{_number(h)}×{_number(w)}"


def _number(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def one(key: str, prefix: str = "") -> Any:
    """A label that shows one argument: `LRN 5`, `Dropout 0.2`."""
    return lambda args: f"{prefix}{args.get(key, '')}"


def range_text(p) -> str:
    """The values a parameter takes, as its error says them: `positive`, `within [0, 1]`; `` if any."""
    if p.minimum is not None and p.maximum is not None:
        return f"within [{p.minimum}, {p.maximum}]"
    if p.above == 0:
        return "positive"
    if p.above is not None:
        return f"above {p.above}"
    if p.maximum is not None:
        return f"at most {p.maximum}"
    if p.minimum is not None:
        return "positive" if p.minimum == 1 else f"at least {p.minimum}"
    return ""


# -- calls as .cnn text ----------------------------------------------------------------------------


def literal(value) -> str:
    """An op argument as .cnn source writes it: `3`, `[3, 5]`, `true`, `same`, `1e-05`, `"bilinear"`;
    a pair of equal sizes as one number, the padding `"same"` as the word. Otherwise
    `dsl.literals.write_literal`'s text."""
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == value[1]:
            return literal(value[0])
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if value == "same" and isinstance(value, str):
        return value
    return write_literal(value)


def call_text(spec, args, tensors: tuple[str, ...] = ()) -> str:
    """The .cnn call that makes a node with these (IR) arguments: `Conv(64, 3, stride = 2)`.

    Required parameters by position, the others by name where they differ from the default; a
    TENSOR parameter names, in order, the expressions in `tensors` (the node's other inputs).
    """
    parts, others = [], iter(tensors)
    for p in spec.params:
        if p.kind is ParamKind.TENSOR:
            name = next(others, None)
            if name is not None:
                parts.append(f"{p.name} = {name}")
            continue
        value = args.get(p.torch_name)
        if p.default is REQUIRED:
            parts.append(literal(value))
        elif not is_default(p, value, args):
            parts.append(f"{p.name} = {literal(value)}")
    return f"{spec.name}({', '.join(parts)})" if parts else spec.name


def is_default(p, value, args) -> bool:
    """Whether `value` is what the parameter's default gives (a pool's stride defaults to its kernel)."""
    if p.default is None and p.name == "stride":
        return value is None or value == args.get("kernel_size")
    default = (
        float(p.default) if p.kind is ParamKind.FLOAT and isinstance(p.default, int) else p.default
    )
    return literal(value) == literal(default)
