"""Argument coercion: a DSL value → the value an op's parameter holds, by `ParamSpec.kind`.

One rule per `ParamKind` (`_RULES`): integers, numbers, booleans, pairs (int or [a, b] → (a, b)),
`pad` (a pair or `same`), factors per axis, the four sides of a padding, a target shape, a string
among the parameter's choices, a tensor (used for its size). A parameter whose default is None
also takes `none` (not given). Each failure is an `OpError` with E0404 (wrong kind), E0405
(outside the range torch accepts: `ParamSpec`'s bounds; every float finite) or E0415 (an integer
over `MAX_SIZE`).

`habit` recognises PyTorch's calling conventions (`BatchNorm(64)`, `Linear(512, 10)`,
`Conv(3, 64, 3)`, `in_channels = 3`) before the arguments are bound: bound as cnnc reads them they
would make a different, silently wrong layer.
"""

from __future__ import annotations

import math

from cnnc.compiler.elaborate.values import Tensor, show, type_name
from cnnc.compiler.ops import MAX_SIZE, OpError, OpSpec, ParamKind, ParamSpec
from cnnc.compiler.ops.text import range_text


def coerce(spec: ParamSpec, value, op: str):
    if value is None and spec.default is None:
        return None  # an optional parameter left out (`stride = none` of a pool: the kernel)
    if spec.kind is ParamKind.PAD and value == "same":
        return "same"
    result = _RULES[spec.kind](spec, value, op)
    if spec.kind in _RANGED:
        _check_range(spec, result, op, value)
    return result


def _bool(spec: ParamSpec, value, op: str) -> bool:
    if not isinstance(value, bool):
        raise _kind_error(spec, value, op, "`true` or `false`")
    return value


def _choice(spec: ParamSpec, value, op: str) -> str:
    listed = ", ".join(f'"{c}"' for c in spec.choices)
    if not isinstance(value, str):
        raise _kind_error(spec, value, op, f"one of {listed}")
    if value not in spec.choices:
        import difflib

        close = difflib.get_close_matches(value, spec.choices, n=1)
        raise OpError(
            "E0405",
            f"`{spec.name}` of `{op}` must be one of {listed}, but got {_show(value)}",
            help=f'did you mean "{close[0]}"?' if close else "",
        )
    return value


def _tensor(spec: ParamSpec, value, op: str):
    if not isinstance(value, Tensor):
        raise _kind_error(
            spec, value, op, "a tensor", "name a tensor computed earlier, e.g. `like = skip`"
        )
    return value


def _floats(spec: ParamSpec, value, op: str) -> tuple[float, float]:
    """A number or [h, w] of numbers: a factor per axis."""
    items = value if isinstance(value, tuple) else (value, value)
    if len(items) != 2 or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) for v in items
    ):
        raise _kind_error(spec, value, op, "a number or a pair of numbers")
    return tuple(_float(spec, v, op) for v in items)


def _sides(spec: ParamSpec, value, op: str) -> tuple[int, int, int, int]:
    """An integer for every side, or [left, right, top, bottom] as F.pad orders them."""
    items = value if isinstance(value, tuple) else (value,) * 4
    if len(items) != 4 or not all(_whole(v) for v in items):
        raise _kind_error(spec, value, op, "an integer or [left, right, top, bottom]")
    return tuple(items)


def _shape(spec: ParamSpec, value, op: str) -> tuple[int, ...]:
    """A list of positive integers, at most one of them -1 (computed from the rest)."""
    items = value if isinstance(value, tuple) else (value,)
    if not items or not all(_whole(v) for v in items):
        raise _kind_error(spec, value, op, "a list of integers")
    if items.count(-1) > 1 or any(v < 1 and v != -1 for v in items):
        raise OpError(
            "E0405",
            f"`{spec.name}` of `{op}` must hold positive sizes and at most one -1, "
            f"but got {_show(value)}",
            help="one -1 stands for what the other sizes leave",
        )
    if any(v > MAX_SIZE for v in items):
        raise OpError(
            "E0415",
            f"`{spec.name}` of `{op}` must hold sizes of at most {MAX_SIZE:,} (cnnc's "
            f"bound on a size), but got {_show(value)}",
        )
    return tuple(items)


def _int(spec: ParamSpec, value, op: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        hint = "use `int(…)` or `//` to make a whole number" if isinstance(value, float) else ""
        raise _kind_error(spec, value, op, "an integer", hint)
    return value


def _float(spec: ParamSpec, value, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _kind_error(spec, value, op, "a number")
    try:
        result = float(value)
    except OverflowError:  # an integer beyond any float
        result = math.inf if value > 0 else -math.inf
    if not math.isfinite(result):
        raise OpError(
            "E0405", f"`{spec.name}` of `{op}` must be a finite number, but got {_show(value)}"
        )
    if abs(result) > FLOAT32_MAX:  # torch casts the scalar to the tensor's float32 when it runs
        raise OpError(
            "E0405",
            f"`{spec.name}` of `{op}` must fit in float32 (at most about 3.4e38 in size), "
            f"but got {_show(value)}",
        )
    return result


FLOAT32_MAX = 3.4028234663852886e38


def _pair(spec: ParamSpec, value, op: str) -> tuple[int, int]:
    wanted = "an integer or a pair of integers" + (
        " or `same`" if spec.kind is ParamKind.PAD else ""
    )
    if isinstance(value, tuple):
        if len(value) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise _kind_error(spec, value, op, wanted)
        return (value[0], value[1])
    if isinstance(value, bool) or not isinstance(value, int):
        raise _kind_error(spec, value, op, wanted)
    return (value, value)


def _check_range(spec: ParamSpec, value, op: str, written) -> None:
    values = value if isinstance(value, tuple) else (value,)
    if spec.kind not in (ParamKind.FLOAT, ParamKind.FLOATS) and any(
        abs(v) > MAX_SIZE for v in values
    ):
        raise OpError(
            "E0415",
            f"`{spec.name}` of `{op}` must be at most {MAX_SIZE:,} (cnnc's bound on "
            f"a size), but got {_show(written)}",
            help="a layer this large is not meant; check the arithmetic that computed it",
        )
    low_ok = spec.minimum is None or all(v >= spec.minimum for v in values)
    high_ok = spec.maximum is None or all(v <= spec.maximum for v in values)
    above_ok = spec.above is None or all(v > spec.above for v in values)
    if not (low_ok and high_ok and above_ok):
        raise OpError(
            "E0405",
            f"`{spec.name}` of `{op}` must be {range_text(spec)}, but got {_show(written)}",
        )


_RULES = {
    ParamKind.INT: _int,
    ParamKind.FLOAT: _float,
    ParamKind.BOOL: _bool,
    ParamKind.PAIR: _pair,
    ParamKind.PAIR_OR_NONE: _pair,
    ParamKind.PAD: _pair,
    ParamKind.FLOATS: _floats,
    ParamKind.SIDES: _sides,
    ParamKind.SHAPE: _shape,
    ParamKind.CHOICE: _choice,
    ParamKind.TENSOR: _tensor,
}
_RANGED = frozenset(
    {
        ParamKind.INT,
        ParamKind.FLOAT,
        ParamKind.PAIR,
        ParamKind.PAIR_OR_NONE,
        ParamKind.PAD,
        ParamKind.FLOATS,
        ParamKind.SIDES,
    }
)


def _kind_error(spec: ParamSpec, value, op: str, wanted: str, hint: str = "") -> OpError:
    return OpError(
        "E0404",
        f"`{spec.name}` of `{op}` must be {wanted}, but got {type_name(value)} {_show(value)}",
        help=hint,
    )


def _show(value) -> str:
    return show(value)


# -- PyTorch habits --------------------------------------------------------------------------------

# Arguments torch's constructors take and cnnc infers from the input, and what they count.
INFERRED = {
    "in_channels": "the input's channels",
    "in_features": "the input's features",
    "num_features": "the input's channels",
    "num_channels": "the input's channels",
    "normalized_shape": "the input's channels",
}
LARGEST_KERNEL = 11  # AlexNet's: a larger positional kernel before a positional stride is a slip


def habit(spec: OpSpec, args: tuple, kwargs) -> tuple[OpError, object] | None:
    """(error, span of the offending keyword or None for the whole call) for a PyTorch habit."""
    for key, value, span in kwargs:
        if key in INFERRED and spec.param(key) is None:
            return OpError(
                "E0414",
                f"`{key}` is not an argument of `{spec.name}`: cnnc infers it from {INFERRED[key]}",
                help=f"remove `{key} = {_show(value)}`; the input decides it",
            ), span
    call = f"`{spec.name}({', '.join(_show(a) for a in args)})`"
    if spec.positional is not None and len(args) > spec.positional:
        kept = args[: spec.positional]
        named = spec.params[spec.positional]
        written = f"{spec.name}({', '.join(_show(a) for a in kept)})" if kept else spec.name
        return OpError(
            "E0411",
            f"{call} passes {'an argument' if not kept else 'more arguments'} by position, but "
            f"`{spec.name}` takes {'its' if not kept else 'the rest of its'} settings by name: "
            f"cnnc infers `{spec.inferred}` from the input",
            help=f"write `{written}`; set the rest by name, e.g. "
            f"`{spec.name}({''.join(_show(a) + ', ' for a in kept)}{named.name} = {_show(named.default)})`",
        ), None
    if spec.inferred == "in_features" and len(args) >= 2 and _whole(args[1]):
        return OpError(
            "E0412",
            f"{call} reads like torch's `nn.Linear(in_features, out_features)`, "
            "but cnnc infers `in_features` from the input",
            help=f"write `{spec.name}({_show(args[1])})`",
        ), None
    if spec.inferred == "in_channels" and _looks_like_in_channels(args):
        return OpError(
            "E0413",
            f"{call} reads like torch's `nn.Conv2d(in_channels, out_channels, "
            f"kernel_size)`; cnnc infers `in_channels` from the input, so this would be "
            f"a {args[1]}×{args[1]} kernel at stride {args[2]}",
            help=f"write `{spec.name}({_show(args[1])}, {_show(args[2])})`; for a kernel "
            f"that large, give it by name: `kernel_size = {_show(args[1])}`",
        ), None
    return None


def _looks_like_in_channels(args: tuple) -> bool:
    """`Conv(3, 64, 3)`: three positional integers, the would-be kernel over any classic one."""
    return len(args) >= 3 and all(_whole(a) for a in args[:3]) and args[1] > LARGEST_KERNEL


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
