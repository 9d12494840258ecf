"""Functions and constants every .cnn file can use: `range`, `len`, `make_divisible`, `same`, ….

Each function takes evaluated positional and keyword arguments and returns a plain value, or raises
`OpError` (E0404 for a wrong kind of argument, E0405 for a bad value, E0702 for a list too long,
E0704 for an integer too large: the budgets of `limits`).
"""

from __future__ import annotations

import math

from cnnc.compiler import limits
from cnnc.compiler.elaborate.bind import bind_op
from cnnc.compiler.elaborate.values import Builtin, LabeledLayer, is_layer, type_name
from cnnc.compiler.names import label_problem
from cnnc.compiler.ops import OpError

MAX_LIST = (
    limits.MAX_LIST
)  # longer lists are not meant; they are an expansion error, not an out-of-memory


def _number(value, fn: str, what: str = "argument"):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OpError("E0404", f"`{fn}` needs a number as its {what}, but got {type_name(value)}")
    return value


def _integer(value, fn: str, what: str = "argument") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OpError("E0404", f"`{fn}` needs an integer as its {what}, but got {type_name(value)}")
    return value


def _list(value, fn: str) -> tuple:
    if not isinstance(value, tuple):
        raise OpError("E0404", f"`{fn}` needs a list, but got {type_name(value)}")
    return value


def _no_kwargs(fn: str, kwargs: dict) -> None:
    if kwargs:
        raise OpError("E0401", f"`{fn}` takes no keyword arguments, but got `{next(iter(kwargs))}`")


def _arity(fn: str, args: tuple, low: int, high: int) -> None:
    if not low <= len(args) <= high:
        count = f"{low}" if low == high else f"{low} to {high}"
        raise OpError(
            "E0403" if len(args) > high else "E0402",
            f"`{fn}` takes {count} arguments, but got {len(args)}",
        )


def b_range(args, kwargs):
    _no_kwargs("range", kwargs)
    _arity("range", args, 1, 3)
    bounds = [_integer(a, "range") for a in args]
    if len(bounds) == 3 and bounds[2] == 0:
        raise OpError("E0405", "`range` step must not be zero")
    values = range(*bounds)
    count = _range_length(values)
    if count > MAX_LIST:
        raise OpError(
            "E0702",
            f"`range` would make {count:,} values, more than the {MAX_LIST:,} a list may have",
        )
    return tuple(values)


def _range_length(values: range) -> int:
    """`len(range)` without its OverflowError beyond sys.maxsize."""
    return max(
        0,
        (values.stop - values.start + values.step - (1 if values.step > 0 else -1)) // values.step,
    )


def items_made(name: str, args) -> int:
    """How many list items a call makes, where known before the call (`range`): the caller charges
    them to the budget first."""
    if (
        name == "range"
        and 1 <= len(args) <= 3
        and all(type(a) is int for a in args)
        and (len(args) < 3 or args[2])
    ):
        return _range_length(range(*args))
    return 0


def b_len(args, kwargs):
    _no_kwargs("len", kwargs)
    _arity("len", args, 1, 1)
    return len(_list(args[0], "len"))


def _fold(name: str, fn):
    def builtin(args, kwargs):
        _no_kwargs(name, kwargs)
        values = _list(args[0], name) if len(args) == 1 else args
        if not values:
            raise OpError("E0405", f"`{name}` of an empty list")
        return fn(_number(v, name) for v in values)

    return builtin


def b_sum(args, kwargs):
    _no_kwargs("sum", kwargs)
    _arity("sum", args, 1, 1)
    return sum(_number(v, "sum", "list's items") for v in _list(args[0], "sum"))


def _unary(name: str, fn, integer_result: bool):
    def builtin(args, kwargs):
        _no_kwargs(name, kwargs)
        _arity(name, args, 1, 1)
        result = fn(_number(args[0], name))
        return int(result) if integer_result else result

    return builtin


def b_make_divisible(args, kwargs):
    """torchvision's `_make_divisible`: round to the nearest multiple of `divisor`, never below 90 %."""
    names = ("value", "divisor", "min_value")
    bound = dict(zip(names, args)) | kwargs
    unknown = set(bound) - set(names)
    if unknown:
        raise OpError("E0401", f"`make_divisible` has no parameter `{unknown.pop()}`")
    value = _number(bound.get("value"), "make_divisible", "value")
    divisor = _integer(bound.get("divisor", 8), "make_divisible", "divisor")
    min_value = bound.get("min_value") or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def b_float(args, kwargs):
    _no_kwargs("float", kwargs)
    _arity("float", args, 1, 1)
    return float(_number(args[0], "float"))


def b_int(args, kwargs):
    _no_kwargs("int", kwargs)
    _arity("int", args, 1, 1)
    return int(_number(args[0], "int"))


def b_round(args, kwargs):
    _no_kwargs("round", kwargs)
    _arity("round", args, 1, 2)
    if len(args) == 2:
        return round(_number(args[0], "round"), _integer(args[1], "round", "digits"))
    return int(round(_number(args[0], "round")))


def b_str(args, kwargs):
    _no_kwargs("str", kwargs)
    _arity("str", args, 1, 1)
    value = args[0]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise OpError("E0404", f"`str` makes text of a number, but got {type_name(value)}")
    return str(value)


def b_label(args, kwargs):
    """`label(name, layer)`: a label computed from values, e.g. `label("denselayer" + str(i + 1), L)`.

    Dots make a path (`label("layer1.0.conv1", Conv(64, 3))`), as a graph written back as text needs.
    """
    _no_kwargs("label", kwargs)
    _arity("label", args, 2, 2)
    name, layer = args
    if not isinstance(name, str) or not all(name.split(".")):
        raise OpError(
            "E0405",
            f"a label must be a non-empty string (dots separate path parts), but got {name!r}",
        )
    problem = label_problem(name)  # an identifier or a number per part, not a keyword: E0208, E0209
    if problem is not None:
        raise OpError(problem.code, problem.message, problem.help)
    if hasattr(layer, "infer"):
        layer = bind_op(layer, (), (), None)
    if not (is_layer(layer) or isinstance(layer, tuple)):
        raise OpError("E0404", f"`label` names a layer, but got {type_name(layer)}")
    return LabeledLayer(name, layer)


def b_pow(args, kwargs):
    _no_kwargs("pow", kwargs)
    _arity("pow", args, 2, 2)
    base, exponent = (_number(a, "pow") for a in args)
    if abs(exponent) > 64:
        raise OpError("E0405", f"`pow` exponent {exponent} is out of range (at most 64 in size)")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        bits = limits.pow_bits(base, exponent)
        if bits > limits.MAX_INT_BITS:
            raise OpError(
                "E0704",
                f"`pow` would make an integer of up to {bits:,} bits, more than the "
                f"{limits.MAX_INT_BITS} an integer may have",
                "channel counts and sizes are small numbers; check the arithmetic",
            )
    result = base**exponent
    if isinstance(result, complex):  # a negative base to a fractional power
        raise OpError("E0405", f"`pow({base}, {exponent})` has no real value")
    return result


def b_log(args, kwargs):
    _no_kwargs("log", kwargs)
    _arity("log", args, 1, 2)
    value = _number(args[0], "log")
    base = _number(args[1], "log", "base") if len(args) == 2 else math.e
    if value <= 0 or base <= 0 or base == 1:
        raise OpError(
            "E0405",
            f"`log` needs a positive value and a positive base other than 1, but got {value}, {base}",
        )
    return math.log(value, base)


BUILTINS = {
    b.name: b
    for b in (
        Builtin("range", b_range),
        Builtin("len", b_len),
        Builtin("min", _fold("min", min)),
        Builtin("max", _fold("max", max)),
        Builtin("sum", b_sum),
        Builtin("abs", _unary("abs", abs, False)),
        Builtin("floor", _unary("floor", math.floor, True)),
        Builtin("ceil", _unary("ceil", math.ceil, True)),
        Builtin("sqrt", _unary("sqrt", math.sqrt, False)),
        Builtin("int", b_int),
        Builtin("float", b_float),
        Builtin("round", b_round),
        Builtin("make_divisible", b_make_divisible),
        Builtin("pow", b_pow),
        Builtin("log", b_log),
        Builtin("exp", _unary("exp", math.exp, False)),
        Builtin("str", b_str),
        Builtin("label", b_label),
    )
}

CONSTANTS = {"same": "same"}  # `pad = same`
