"""Argument coercion: a DSL value → the value an op's parameter holds, by `ParamSpec.kind`.

Kinds: `int`, `float`, `bool`, `pair` (int or [a, b] → (a, b)), `pair_or_none`, `pad` (a pair or
`same`). Each failure is an `OpError` with E0404 (wrong kind), E0405 (outside the range torch
accepts: `ParamSpec`'s bounds; every float finite) or E0415 (an integer over `MAX_SIZE`).

`habit` recognises PyTorch's calling conventions (`BatchNorm(64)`, `Linear(512, 10)`,
`Conv(3, 64, 3)`, `in_channels = 3`) before the arguments are bound: bound as cnnc reads them they
would make a different, silently wrong layer.
"""

from __future__ import annotations

import math

from cnnc.compiler.ops import MAX_SIZE, OpError, OpSpec, ParamSpec


def coerce(spec: ParamSpec, value, op: str):
    kind = spec.kind
    if kind == "pair_or_none" and value is None:
        return None
    if kind == "pad" and value == "same":
        return "same"
    if kind in ("pair", "pair_or_none", "pad"):
        result = _pair(spec, value, op)
    elif kind == "int":
        result = _int(spec, value, op)
    elif kind == "float":
        result = _float(spec, value, op)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise _kind_error(spec, value, op, "`true` or `false`")
        return value
    else:
        raise AssertionError(f"unknown parameter kind {kind}")
    _check_range(spec, result, op, value)
    return result


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
            "E0405", f"`{spec.name}` of `{op}` must fit in float32 (at most about 3.4e38 in size), "
            f"but got {_show(value)}"
        )
    return result


FLOAT32_MAX = 3.4028234663852886e38


def _pair(spec: ParamSpec, value, op: str) -> tuple[int, int]:
    wanted = "an integer or a pair of integers" + (" or `same`" if spec.kind == "pad" else "")
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
    if spec.kind != "float" and any(abs(v) > MAX_SIZE for v in values):
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
            f"`{spec.name}` of `{op}` must be {_range_text(spec)}, but got {_show(written)}",
        )


def _range_text(spec: ParamSpec) -> str:
    if spec.minimum is not None and spec.maximum is not None:
        return f"within [{spec.minimum}, {spec.maximum}]"
    if spec.above == 0:
        return "positive"
    if spec.above is not None:
        return f"above {spec.above}"
    if spec.maximum is not None:
        return f"at most {spec.maximum}"
    return "positive" if spec.minimum == 1 else f"at least {spec.minimum}"


def _kind_error(spec: ParamSpec, value, op: str, wanted: str, hint: str = "") -> OpError:
    from cnnc.compiler.values import type_name

    return OpError(
        "E0404",
        f"`{spec.name}` of `{op}` must be {wanted}, but got {type_name(value)} {_show(value)}",
        help=hint,
    )


def _show(value) -> str:
    from cnnc.compiler.values import show

    return show(value)


# -- PyTorch habits --------------------------------------------------------------------------------

# Arguments torch's constructors take and cnnc infers from the input, and what they count.
INFERRED = {
    "in_channels": "the input's channels",
    "in_features": "the input's features",
    "num_features": "the input's channels",
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
        return OpError(
            "E0411",
            f"{call} passes an argument by position, but `{spec.name}` takes its "
            f"settings by name: cnnc infers `{spec.inferred}` from the input",
            help=f"write `{spec.name}`; set the rest by name, e.g. "
            f"`{spec.name}({spec.params[0].name} = {_show(spec.params[0].default)})`",
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
