"""Argument coercion: a DSL value → the value an op's parameter holds, by `ParamSpec.kind`.

Kinds: `int`, `float`, `bool`, `pair` (int or [a, b] → (a, b)), `pair_or_none`, `pad` (a pair or
`same`). Each failure is an `OpError` with E0404 (wrong kind) or E0405 (bad value).
"""

from __future__ import annotations

from cnnc.compiler.ops import OpError, ParamSpec


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
    _check_minimum(spec, result, op)
    return result


def _int(spec: ParamSpec, value, op: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        hint = "use `int(…)` or `//` to make a whole number" if isinstance(value, float) else ""
        raise _kind_error(spec, value, op, "an integer", hint)
    return value


def _float(spec: ParamSpec, value, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _kind_error(spec, value, op, "a number")
    return float(value)


def _pair(spec: ParamSpec, value, op: str) -> tuple[int, int]:
    wanted = "an integer or a pair of integers" + (" or `same`" if spec.kind == "pad" else "")
    if isinstance(value, tuple):
        if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise _kind_error(spec, value, op, wanted)
        return (value[0], value[1])
    if isinstance(value, bool) or not isinstance(value, int):
        raise _kind_error(spec, value, op, wanted)
    return (value, value)


def _check_minimum(spec: ParamSpec, value, op: str) -> None:
    if spec.minimum is None:
        return
    values = value if isinstance(value, tuple) else (value,)
    if any(v < spec.minimum for v in values):
        bound = "positive" if spec.minimum == 1 else f"at least {spec.minimum}"
        raise OpError("E0405", f"`{spec.name}` of `{op}` must be {bound}, but got {_show(value)}")


def _kind_error(spec: ParamSpec, value, op: str, wanted: str, hint: str = "") -> OpError:
    from cnnc.compiler.values import type_name

    return OpError("E0404", f"`{spec.name}` of `{op}` must be {wanted}, but got {type_name(value)} "
                   f"{_show(value)}", help=hint)


def _show(value) -> str:
    from cnnc.compiler.values import show

    return show(value)
