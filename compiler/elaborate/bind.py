"""Binding a call's arguments to parameters: an op's (checked and coerced once per op and argument
values), the matching every call shares (`bind_arguments`), and a bound block call described as
the user would write it (`describe_call`).

A block's parameters are bound by `evaluate.bind_params`, since its defaults are expressions.
"""

from __future__ import annotations

from cnnc.compiler.elaborate.coerce import coerce, habit
from cnnc.compiler.elaborate.state import fail
from cnnc.compiler.elaborate.values import BlockRef, OpLayer, show
from cnnc.compiler.ops import REQUIRED, OpError
from cnnc.dsl import ast

# The coerced arguments of op calls, shared by every elaboration in the process. The key is the op,
# by identity (the entry keeps the spec alive, so its id is not reused), and the call's plain values
# (`_typed`) and keyword names; binding reads nothing else, so an entry holds what `bind_op` would
# make again. Failures are never kept: their diagnostics point at the call. Cleared when full, so a
# search trying many values cannot grow it without bound.
_BOUND: dict = {}
_BOUND_LIMIT = 4096


def bind_op_cached(spec, args, kwargs, span) -> OpLayer:
    """`bind_op`, with the arguments checked and coerced once per op and values: a layer repeated a
    thousand times (`[Conv(8, 3) for i in range(1000)]`), or in every block, or in every
    elaboration of a search, is bound once. Each call gets its own `OpLayer` and `args` dict."""
    try:
        key = (id(spec), _typed(args), tuple([(k, _typed(v)) for k, v, _ in kwargs]))
    except _NotPlain:  # a tensor (`like = skip`) or a layer among the arguments
        return bind_op(spec, args, kwargs, span)
    found = _BOUND.get(key)
    if found is None:
        if len(_BOUND) >= _BOUND_LIMIT:
            _BOUND.clear()
        found = _BOUND[key] = (spec, bind_op(spec, args, kwargs, span).args)
    return OpLayer(spec, dict(found[1]), span)


class _NotPlain(Exception):
    """A value `_typed` gives no key for."""


_PLAIN = frozenset({int, float, bool, str, type(None)})


def _typed(value):
    """A key for a plain value (a number, boolean, string, none, or a list of them) that tells 1, 1.0
    and true apart, and 0.0 from -0.0 (equal in Python, not to `coerce`); `_NotPlain` otherwise."""
    kind = type(value)
    if kind is tuple:
        return tuple([_typed(v) for v in value])
    if kind is float:
        return (kind, value, repr(value))
    if kind in _PLAIN:
        return (kind, value)
    raise _NotPlain


def bind_op(spec, args, kwargs, span) -> OpLayer:
    """An op with its arguments bound to its parameters and coerced to what torch takes."""
    slip = habit(spec, args, kwargs)  # `BatchNorm(64)`, `Linear(512, 10)`: torch's conventions
    if slip is not None:
        exc, where = slip
        raise fail(exc.code, exc.message, where or span, helps=(exc.help,) if exc.help else ())
    bound = bind_arguments(
        spec.name,
        [p.name for p in spec.params],
        {p.name: p.default for p in spec.params},
        args,
        kwargs,
        span,
    )
    values = {}
    for param in spec.params:
        try:
            values[param.torch_name] = coerce(param, bound[param.name], spec.name)
        except OpError as exc:
            raise fail(
                exc.code,
                exc.message,
                _arg_span(param.name, list(bound), args, kwargs, span),
                helps=(exc.help,) if exc.help else (),
            ) from None
    return OpLayer(spec, values, span)


def _arg_span(name: str, order: list[str], args, kwargs, span):
    for key, _, kspan in kwargs:
        if key == name:
            return kspan
    return span


def bind_arguments(fn: str, names, defaults, args, kwargs, span, cli=False) -> dict:
    """A call's positional `args` and `kwargs` ((name, value, span) triples) matched to the parameters
    `names` of `fn`; a missing one takes its default (E0402 when it is `REQUIRED`)."""
    if len(args) > len(names):
        raise fail(
            "E0403",
            f"`{fn}` takes {len(names)} argument{'s' if len(names) != 1 else ''}, "
            f"but got {len(args)}",
            span,
            helps=(f"its parameters are: {', '.join(names) or 'none'}",),
        )
    bound = dict(zip(names, args))
    for key, value, kspan in kwargs:
        if key not in names:
            import difflib

            close = difflib.get_close_matches(key, names, n=1)
            hint = (
                f"did you mean `{close[0]}`?"
                if close
                else f"its parameters are: {', '.join(names) or 'none'}"
            )
            raise fail(
                "E0401",
                f"`{fn}` has no parameter `{key}`",
                kspan,
                "unknown parameter",
                helps=(hint,),
            )
        if key in bound:
            raise fail("E0401", f"`{key}` of `{fn}` is given twice", kspan, "given again here")
        bound[key] = value
    for name in names:
        if name not in bound:
            if defaults[name] is REQUIRED:
                how = f"pass it with `--arg {name}=…`" if cli else f"e.g. `{fn}(…, {name} = …)`"
                raise fail(
                    "E0402",
                    f"`{fn}` needs the argument `{name}`",
                    span,
                    "missing an argument",
                    helps=(how,),
                )
            bound[name] = defaults[name]
    return bound


def describe_call(block: BlockRef, bound: dict, given=None) -> str:
    """`Bottleneck(128, stride = 2)`: required parameters positionally, then the optional ones the
    call gave (`given`; all when None) whose value differs from a literal default."""
    parts = []
    for param in block.definition.params or ():
        value = bound.get(param.name)
        if param.default is None:
            parts.append(show(value))
        elif given is not None and param.name not in given:
            continue
        elif not (
            isinstance(param.default, (ast.Number, ast.Bool, ast.String, ast.NoneLit))
            and getattr(param.default, "value", None) == value
            and type(getattr(param.default, "value", None)) is type(value)
        ):
            parts.append(f"{param.name} = {show(value)}")
    return f"{block.name}({', '.join(parts)})"
