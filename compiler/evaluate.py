"""Expression evaluation for elaboration: names, arithmetic, calls, comprehensions, choices.

Values are described in `values.py`; applying layers to tensors is `elaborate.Elaborator`'s job.
Every user mistake raises `elaborate.Fail` with a located diagnostic.
"""

from __future__ import annotations

import difflib
import operator

from cnnc.compiler import budget, builtins, limits
from cnnc.compiler.ops import REQUIRED, OpError, lookup
from cnnc.compiler.scopes import Env, ModuleScope
from cnnc.compiler.types import is_error
from cnnc.compiler.values import (POISON, BlockLayer, BlockRef, Builtin, LabeledLayer, MergeLayer,
                                  OpLayer, Partial, SeqLayer, Tensor, is_layer, show, type_name)
from cnnc.dsl import ast
from cnnc.dsl.diagnostics import error


def _fail(code, message, span, label="", **extra):
    from cnnc.compiler.elaborate import Fail

    return Fail(error(code, message, span, label, **extra))


def evaluate(el, expr, env: Env, frame):
    method = _DISPATCH.get(type(expr))
    if method is None:
        raise AssertionError(f"no evaluation rule for {type(expr).__name__}")
    b = el.b
    if b.depth >= limits.MAX_DEPTH:
        raise _fail("E0705", f"evaluation nests deeper than {limits.MAX_DEPTH:,} levels here", expr.span,
                    "too deep", notes=frame.notes()[:3],
                    helps=(DEPTH_HELP,))
    b.depth += 1
    try:
        return method(el, expr, env, frame)
    finally:
        b.depth -= 1


DEPTH_HELP = ("blocks inside blocks and values defined through other values nest; build repeats with a list, "
              "`[B(i) for i in range(n)]`")


def ev_literal(el, expr, env, frame):
    if isinstance(expr, ast.Number):
        budget.check_int(expr.value, expr.span)
    return None if isinstance(expr, ast.NoneLit) else expr.value


def ev_name(el, expr: ast.Name, env: Env, frame):
    try:
        return env.get(expr.id)
    except KeyError:
        pass
    found = env.module.find(expr.id)
    if found is not None:
        return definition_value(el, found[0], found[1], expr.span)
    spec = lookup(expr.id)
    if spec is not None and spec.layer:
        return spec
    if expr.id in builtins.BUILTINS:
        return builtins.BUILTINS[expr.id]
    if expr.id == "concat":
        return CONCAT
    if expr.id in builtins.CONSTANTS:
        return builtins.CONSTANTS[expr.id]
    raise unknown_name(expr, env)


CONCAT = Builtin("concat", None)


def unknown_name(expr: ast.Name, env: Env):
    from cnnc.compiler.ops import dsl_names

    candidates = env.names() | set(env.module.defs) | {n for m in env.module.imports for n in m.defs}
    candidates |= set(dsl_names()) | set(builtins.BUILTINS) | {"concat", "same"}
    close = difflib.get_close_matches(expr.id, sorted(candidates), n=1, cutoff=0.75)
    looks_like_layer = expr.id[:1].isupper()
    message = f"unknown {'op or block' if looks_like_layer else 'name'} `{expr.id}`"
    helps = (f"a similar name exists: `{close[0]}`",) if close else ()
    if not close and looks_like_layer:
        helps = ("define it with `block " + expr.id + "(…) { … }` or import the file that does",)
    return _fail("E0201", message, expr.span, "not defined here or in any import", helps=helps)


def definition_value(el, scope: ModuleScope, item, span):
    if isinstance(item, (ast.BlockDef, ast.NetworkDef)):
        return BlockRef(item, scope)
    if item.name in scope.values:
        return scope.values[item.name]
    if item.name in scope.evaluating:
        raise self_reference(scope, item, span)
    scope.evaluating.add(item.name)
    try:
        if isinstance(item, ast.NetworkAlias):
            return evaluate(el, item.value, Env(scope, {}), _top_frame())
        if isinstance(item, ast.BlockAlias):
            return partial_block(el, scope, item)
        value = evaluate(el, item.value, Env(scope, {}), _top_frame())
    finally:
        scope.evaluating.discard(item.name)
    scope.values[item.name] = value
    return value


def self_reference(scope: ModuleScope, item, span):
    """A top-level definition reached again while it is evaluated: a cycle, or an alias that meant
    the imported definition its name hides (`network MobileNetV2 = MobileNetV2(width = 1.0)`)."""
    if isinstance(item, ast.Let):
        return _fail("E0206", f"`{item.name}` is defined in terms of itself", item.span, "this definition")
    kind = "network" if isinstance(item, ast.NetworkAlias) else "block"
    if any(item.name in imported.defs for imported in scope.imports):
        return _fail("E0216", f"`{kind} {item.name} = …` hides the imported `{item.name}` it refers to",
                     item.name_span or item.span, "this name is taken here by the alias itself",
                     notes=(f"inside the alias, `{item.name}` means the alias, not the import",),
                     helps=(f"give the alias a name of its own, e.g. `{kind} {_other_name(item.name)} = …`",))
    return _fail("E0215", f"`{kind} {item.name}` is defined in terms of itself", span or item.span,
                 "refers back to the alias being defined",
                 helps=(f"`{kind} {item.name} = …` must name a {kind} defined elsewhere",))


def _other_name(name: str) -> str:
    return name.lower() if name.lower() != name else name + "_1"


def partial_block(el, scope: ModuleScope, item: ast.BlockAlias) -> Partial:
    """`block B2 = B(k = 5)` (or `= B`): B with those arguments fixed; its callers give the rest."""
    env, frame = Env(scope, {}), _top_frame()
    call = item.value
    target = evaluate(el, call.func if isinstance(call, ast.Call) else call, env, frame)
    if not isinstance(target, (BlockRef, Partial)):
        raise _fail("E0404", f"`block {item.name} = …` names a block (with some of its arguments), but this is "
                    f"{type_name(target)}", item.value.span, helps=("e.g. `block Inception5 = Inception(k5 = 5)`",))
    base = target if isinstance(target, Partial) else Partial(target, (), (), target.name)
    if not isinstance(call, ast.Call):
        return Partial(base.block, base.args, base.kwargs, item.name)
    args = tuple(evaluate(el, a, env, frame) for a in call.args)
    kwargs = dict(base.kwargs) | {k.name: evaluate(el, k.value, env, frame) for k in call.kwargs}
    names = [p.name for p in base.block.definition.params or ()]
    _check_partial(base.block.name, names, base.args + args, kwargs, call.span)
    return Partial(base.block, base.args + args, tuple(kwargs.items()), item.name)


def _check_partial(fn: str, names, args, kwargs: dict, span) -> None:
    if len(args) > len(names):
        raise _fail("E0403", f"`{fn}` takes {len(names)} arguments, but got {len(args)}", span)
    for key in kwargs:
        if key not in names:
            raise _fail("E0401", f"`{fn}` has no parameter `{key}`", span,
                        helps=(f"its parameters are: {', '.join(names) or 'none'}",))


def call_partial(el, partial: Partial, args, kwargs, span, frame) -> BlockLayer:
    """A partial block called: its fixed arguments first, then the call's (which may override keywords)."""
    given = {k: v for k, v, _ in kwargs}
    fixed = tuple((k, v, span) for k, v in partial.kwargs if k not in given)
    return bind_block(el, partial.block, partial.args + tuple(args), fixed + tuple(kwargs), span, frame)


def _top_frame():
    from cnnc.compiler.elaborate import Frame

    return Frame()


def ev_input(el, expr: ast.InputRef, env: Env, frame):
    e = env
    while e is not None and e.input is None:
        e = e.parent
    if e is None:
        where = "before `input [C, H, W]` is declared" if _in_network(env) else "outside a block or network"
        raise _fail("E0201", f"`{expr.keyword}` is used {where}", expr.span,
                    helps=("declare the input first: `input [3, 224, 224]`",) if _in_network(env) else ())
    return e.input


def _in_network(env: Env) -> bool:
    while env is not None and not env.network:
        env = env.parent
    return env is not None


def ev_list(el, expr: ast.ListExpr, env, frame):
    budget.charge(el, len(expr.items), expr.span, "this list")
    return tuple(evaluate(el, item, env, frame) for item in expr.items)


def ev_comprehension(el, expr: ast.Comprehension, env: Env, frame):
    iterable = evaluate(el, expr.iterable, env, frame)
    if iterable is POISON:
        return POISON
    if not isinstance(iterable, tuple):
        raise _fail("E0404", f"`for` needs a list to walk, but got {type_name(iterable)}", expr.iterable.span)
    budget.before_iterating(el, expr, env, frame, len(iterable))
    out = []
    for item in iterable:
        inner = Env(env.module, {expr.var: item}, env.input, env, loop_var=expr.var)
        if expr.cond is not None:
            keep = evaluate(el, expr.cond, inner, frame)
            if keep is POISON:
                return POISON
            if not keep:
                continue
        out.append(evaluate(el, expr.elt, inner, frame))
    return tuple(out)


def ev_chain(el, expr: ast.Chain, env, frame):
    first = evaluate(el, expr.elements[0], env, frame)
    if first is POISON:
        return POISON
    if not isinstance(first, Tensor):
        if not (is_layer(first) or isinstance(first, tuple) or hasattr(first, "infer")):
            raise _fail("E0404", f"a chain starts with a tensor or a layer, but this is {type_name(first)}",
                        expr.elements[0].span, "not a tensor or layer")
        first = to_layer(first, expr.elements[0].span)
        layers = (first,) + tuple(as_layer(el, e, env, frame) for e in expr.elements[1:])
        return SeqLayer(layers, expr.span)
    x = first
    for element in expr.elements[1:]:
        layer = as_layer(el, element, env, frame)
        x = el.apply(layer, x, frame, span=element.span)
        if x is POISON:
            return POISON
    return x


def as_layer(el, element, env, frame):
    value = evaluate(el, element, env, frame)
    if value is POISON or is_layer(value) or isinstance(value, tuple) or hasattr(value, "infer"):
        return to_layer(value, element.span)
    raise _fail("E0404", f"`->` needs a layer on its right, but got {type_name(value)}", element.span,
                "not a layer")


def to_layer(value, span):
    """An op named without arguments (`ReLU`) is the op with its defaults."""
    if hasattr(value, "infer"):
        return bind_op(value, (), (), span)
    return value


def ev_labeled(el, expr: ast.Labeled, env, frame):
    value = evaluate(el, expr.value, env, frame)
    if value is POISON:
        return POISON
    if isinstance(value, Tensor) or not (is_layer(value) or isinstance(value, tuple) or hasattr(value, "infer")):
        raise _fail("E0404", f"a label names a layer, but `{expr.label}` labels {type_name(value)}",
                    expr.label_span, helps=("put the label on the layer: `x -> name: Conv(…)`",))
    return LabeledLayer(expr.label, to_layer(value, expr.value.span), expr.span)


def ev_call(el, expr: ast.Call, env, frame):
    func = evaluate(el, expr.func, env, frame)
    if func is POISON:
        return POISON
    if func is CONCAT:
        return concat(el, expr, env, frame)
    args = tuple(evaluate(el, a, env, frame) for a in expr.args)
    kwargs = tuple((k.name, evaluate(el, k.value, env, frame), k.span) for k in expr.kwargs)
    if any(v is POISON for v in args) or any(v is POISON for _, v, _ in kwargs):
        return POISON
    if hasattr(func, "infer"):
        return bind_op_cached(el, func, args, kwargs, expr.span)
    if isinstance(func, BlockRef):
        return bind_block(el, func, args, kwargs, expr.span, frame)
    if isinstance(func, Partial):
        return call_partial(el, func, args, kwargs, expr.span, frame)
    if isinstance(func, Builtin):
        return call_builtin(el, func, args, kwargs, expr.span)
    raise _fail("E0404", f"only ops, blocks and functions can be called, but this is {type_name(func)}",
                expr.func.span, "not callable")


def concat(el, expr: ast.Call, env, frame):
    if expr.kwargs:
        raise _fail("E0401", "`concat` takes no keyword arguments", expr.kwargs[0].span)
    members = tuple(el.guard(lambda a=a: evaluate(el, a, env, frame)) for a in expr.args)
    if len(members) == 1 and isinstance(members[0], tuple):
        members = members[0]
    if any(m is POISON for m in members):  # already reported (before counting the branches)
        return POISON
    if len(members) < 2:
        raise _fail("E0402", f"`concat` joins two or more branches, but got {len(members)}", expr.span)
    if any(m is POISON for m in members):
        return POISON
    if all(isinstance(m, Tensor) for m in members):
        return el.merge("Concat", members, frame, expr.span)
    return MergeLayer("Concat", tuple(to_layer(m, expr.span) for m in members), expr.span)


def bind_op_cached(el, spec, args, kwargs, span) -> OpLayer:
    """`bind_op`, remembered per call site and argument values: a layer repeated a thousand times
    (`[Conv(8, 3) for i in range(1000)]`) is checked and coerced once."""
    try:
        key = (spec.name, id(span), _typed(args), tuple((k, _typed(v)) for k, v, _ in kwargs))
        hash(key)
    except TypeError:  # an argument that is a layer or a dict: not worth remembering
        return bind_op(spec, args, kwargs, span)
    cache = el.b.bound_ops
    if key not in cache:
        cache[key] = (span, bind_op(spec, args, kwargs, span))  # the span kept alive with its id
    return cache[key][1]


def _typed(value):
    """A hashable key that tells 1, 1.0 and true apart (they are equal in Python, not to coerce)."""
    if isinstance(value, tuple):
        return tuple(_typed(v) for v in value)
    return (type(value), value)


def bind_op(spec, args, kwargs, span) -> OpLayer:
    from cnnc.compiler.coerce import coerce, habit

    slip = habit(spec, args, kwargs)  # `BatchNorm(64)`, `Linear(512, 10)`: torch's conventions
    if slip is not None:
        exc, where = slip
        raise _fail(exc.code, exc.message, where or span, helps=(exc.help,) if exc.help else ())
    bound = _bind(spec.name, [p.name for p in spec.params], {p.name: p.default for p in spec.params},
                  args, kwargs, span)
    values = {}
    for param in spec.params:
        try:
            values[param.torch_name] = coerce(param, bound[param.name], spec.name)
        except OpError as exc:
            raise _fail(exc.code, exc.message, _arg_span(param.name, list(bound), args, kwargs, span),
                        helps=(exc.help,) if exc.help else ()) from None
    return OpLayer(spec, values, span)


def _arg_span(name: str, order: list[str], args, kwargs, span):
    for key, _, kspan in kwargs:
        if key == name:
            return kspan
    return span


def bind_block(el, ref: BlockRef, args, kwargs, span, frame) -> BlockLayer:
    """`kwargs` are (name, value, span) triples."""
    from cnnc.compiler.elaborate import describe_call

    bound = bind_params(el, ref, args, tuple(kwargs), span, frame)
    names = [p.name for p in ref.definition.params or ()]
    given = set(names[: len(args)]) | {k for k, _, _ in kwargs}
    return BlockLayer(ref, tuple(bound.items()), span, describe_call(ref, bound, given))


def bind_params(el, ref: BlockRef, args, kwargs, span, frame, from_cli: bool = False) -> dict:
    """Bind call arguments to a block's parameters; defaults may read earlier parameters."""
    params = ref.definition.params or ()
    if from_cli:
        kwargs = tuple((k, v, span) for k, v in kwargs)
    names = [p.name for p in params]
    defaults = {p.name: (REQUIRED if p.default is None else p.default) for p in params}
    given = _bind(ref.name, names, defaults, args, kwargs, span, lazy_defaults=True, cli=from_cli)
    env = Env(ref.module, {})
    out = {}
    for p in params:
        value = given[p.name]
        if isinstance(value, ast.Expr):
            value = argument_value(el, ref, p, value, env, frame)
        env.vars[p.name] = value
        out[p.name] = value
    return out


def argument_value(el, ref: BlockRef, param, expr, env: Env, frame):
    """Evaluate a default (or an `--arg`) unless it is already being evaluated: `block A(x = A())`
    would need the default of `x` to compute the default of `x`."""
    key = (id(ref.definition), param.name)
    active = el.b.defaults
    if key in active:
        raise _fail("E0217", f"the default of `{param.name}` in `{ref.name}` depends on itself", expr.span,
                    f"needs `{ref.name}` with this default again",
                    helps=(f"give `{param.name}` a default that does not call `{ref.name}`, or pass "
                           f"`{param.name}` in the inner call",))
    active.add(key)
    try:
        return evaluate(el, expr, env, frame)
    finally:
        active.discard(key)


def _bind(fn: str, names, defaults, args, kwargs, span, lazy_defaults=False, cli=False) -> dict:
    if len(args) > len(names):
        raise _fail("E0403", f"`{fn}` takes {len(names)} argument{'s' if len(names) != 1 else ''}, "
                    f"but got {len(args)}", span, helps=(f"its parameters are: {', '.join(names) or 'none'}",))
    bound = dict(zip(names, args))
    for key, value, kspan in kwargs:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean `{close[0]}`?" if close else f"its parameters are: {', '.join(names) or 'none'}"
            raise _fail("E0401", f"`{fn}` has no parameter `{key}`", kspan, "unknown parameter", helps=(hint,))
        if key in bound:
            raise _fail("E0401", f"`{key}` of `{fn}` is given twice", kspan, "given again here")
        bound[key] = value
    for name in names:
        if name not in bound:
            if defaults[name] is REQUIRED:
                how = f"pass it with `--arg {name}=…`" if cli else f"e.g. `{fn}(…, {name} = …)`"
                raise _fail("E0402", f"`{fn}` needs the argument `{name}`", span, "missing an argument",
                            helps=(how,))
            bound[name] = defaults[name]
    return bound


def call_builtin(el, func: Builtin, args, kwargs, span):
    try:
        made = builtins.items_made(func.name, args)  # `range`'s length, known before it is made
        if made:
            budget.charge(el, made, span, f"`{func.name}`")
        result = func.fn(args, {k: v for k, v, _ in kwargs})
    except OpError as exc:
        raise _fail(exc.code, exc.message, span, helps=(exc.help,) if exc.help else ()) from None
    except (ValueError, OverflowError, ZeroDivisionError) as exc:
        raise _fail("E0405", f"`{func.name}` cannot take these arguments: {exc}", span) from None
    return budget.check_int(result, span, f"the result of `{func.name}`")


def ev_index(el, expr: ast.Index, env, frame):
    value = evaluate(el, expr.value, env, frame)
    index = evaluate(el, expr.index, env, frame)
    if value is POISON or index is POISON:
        return POISON
    if not isinstance(value, tuple):
        raise _fail("E0404", f"only lists can be indexed, but this is {type_name(value)}", expr.value.span)
    if isinstance(index, bool) or not isinstance(index, int):
        raise _fail("E0404", f"a list index must be an integer, but got {type_name(index)}", expr.index.span)
    if not -len(value) <= index < len(value):
        raise _fail("E0407", f"index {index} is out of range for a list of {len(value)}", expr.index.span,
                    "out of range")
    return value[index]


TENSOR_ATTRS = {
    "channels": lambda t: t.shape[0],
    "height": lambda t: t.shape[1],
    "width": lambda t: t.shape[2],
    "shape": lambda t: t.shape,
    "rank": lambda t: t.rank,
    "numel": lambda t: t.numel,
}


def ev_attr(el, expr: ast.Attr, env, frame):
    value = evaluate(el, expr.value, env, frame)
    if value is POISON:
        return POISON
    if not isinstance(value, Tensor):
        raise _fail("E0404", f"`.{expr.name}` reads a tensor's shape, but this is {type_name(value)}",
                    expr.value.span)
    if is_error(value.type):
        return POISON
    getter = TENSOR_ATTRS.get(expr.name)
    if getter is None:
        raise _fail("E0404", f"a tensor has no attribute `{expr.name}`", expr.name_span,
                    helps=("tensors have `.channels`, `.height`, `.width`, `.shape`, `.rank` and `.numel`",))
    if expr.name in ("height", "width") and value.type.rank != 3:
        raise _fail("E0304", f"`.{expr.name}` needs a [C, H, W] tensor, but got {value.type}", expr.span)
    return getter(value.type)


ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
         "//": operator.floordiv, "%": operator.mod}
COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
           ">=": operator.ge}


def ev_binop(el, expr: ast.BinOp, env, frame):
    if expr.op in ("and", "or"):
        return boolean(el, expr, env, frame)
    left = evaluate(el, expr.left, env, frame)
    right = evaluate(el, expr.right, env, frame)
    if left is POISON or right is POISON:
        return POISON
    if expr.op in COMPARE:
        return compare(expr, left, right)
    graphish = (Tensor, OpLayer, BlockLayer, SeqLayer, LabeledLayer, MergeLayer, BlockRef, Partial)
    if expr.op in ("+", "*") and (isinstance(left, graphish) or isinstance(right, graphish)):
        return graph_binop(el, expr, left, right, frame)
    return arithmetic(el, expr, left, right)


def graph_binop(el, expr: ast.BinOp, left, right, frame):
    op = "Add" if expr.op == "+" else "Mul"
    if isinstance(left, Tensor) and isinstance(right, Tensor):
        operands = ((expr.left.span, left), (expr.right.span, right))
        return el.merge(op, (left, right), frame, expr.op_span, operands=operands)
    for side, value in (("left", left), ("right", right)):
        if not (isinstance(value, Tensor) or is_layer(value) or hasattr(value, "infer")):
            raise _fail("E0404", f"`{expr.op}` of a tensor or layer with {type_name(value)}", expr.op_span,
                        helps=("`+` adds two tensors (or two branches), `*` multiplies them",))
    return MergeLayer(op, (to_layer(left, expr.left.span), to_layer(right, expr.right.span)), expr.op_span)


def arithmetic(el, expr: ast.BinOp, left, right):
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
    if numbers:
        if expr.op in ("/", "//", "%") and right == 0:
            raise _fail("E0406", "division by zero", expr.right.span, "is zero")
        if isinstance(left, int) and isinstance(right, int) and expr.op != "/":
            bits = limits.int_bits_after(expr.op, left, right)
            if bits > limits.MAX_INT_BITS:
                raise budget.int_too_large(bits, expr.span, f"the result of `{expr.op}`", "would have up to")
        try:
            return ARITH[expr.op](left, right)
        except OverflowError:  # a float too large for the integer's conversion: `/` of huge values
            raise _fail("E0704", f"`{expr.op}` overflows: its operands are too large", expr.span) from None
    if expr.op == "+" and isinstance(left, tuple) and isinstance(right, tuple):
        budget.charge(el, len(left) + len(right), expr.span, "this list")
        return left + right
    if expr.op == "+" and isinstance(left, str) and isinstance(right, str):
        if len(left) + len(right) > limits.MAX_STRING:
            raise _fail("E0703", f"this string would have {len(left) + len(right):,} characters, more than the "
                        f"{limits.MAX_STRING:,} a string may have", expr.span, "too long",
                        helps=("labels and names are short; check a `+` repeated in a loop",))
        budget.charge(el, len(left) + len(right), expr.span, "this string")
        return left + right
    if expr.op == "*" and isinstance(left, tuple) and isinstance(right, int) and not isinstance(right, bool):
        budget.charge(el, len(left) * max(right, 0), expr.span, "this list")
        return left * right
    raise _fail("E0404", f"`{expr.op}` cannot combine {type_name(left)} and {type_name(right)}", expr.op_span,
                secondary=(), helps=_arith_help(left, right))


def _arith_help(left, right) -> tuple[str, ...]:
    if isinstance(left, bool) or isinstance(right, bool):
        return ("booleans are not numbers; use `if … then 1 else 0`",)
    return ()


def compare(expr: ast.BinOp, left, right):
    if expr.op in ("==", "!="):
        return COMPARE[expr.op](left, right)
    ordered = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
    if not ordered:
        raise _fail("E0404", f"`{expr.op}` compares numbers, but got {type_name(left)} and {type_name(right)}",
                    expr.op_span)
    return COMPARE[expr.op](left, right)


def boolean(el, expr: ast.BinOp, env, frame):
    left = _truth(evaluate(el, expr.left, env, frame), expr.op, expr.left.span)
    if left is POISON:
        return POISON
    if (expr.op == "and" and not left) or (expr.op == "or" and left):
        return left
    return _truth(evaluate(el, expr.right, env, frame), expr.op, expr.right.span)


def _truth(value, op: str, span):
    if value is POISON or isinstance(value, bool):
        return value
    raise _fail("E0404", f"`{op}` needs booleans, but got {type_name(value)}", span)


def ev_unary(el, expr: ast.UnaryOp, env, frame):
    value = evaluate(el, expr.operand, env, frame)
    if value is POISON:
        return POISON
    if expr.op == "not":
        return not _truth(value, "not", expr.operand.span)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail("E0404", f"`-` negates a number, but got {type_name(value)}", expr.span)
    return -value


def ev_if(el, expr: ast.If, env, frame):
    cond = evaluate(el, expr.cond, env, frame)
    if cond is POISON:
        return POISON
    if not isinstance(cond, bool):
        raise _fail("E0404", f"`if` needs a boolean condition, but got {type_name(cond)} {show(cond)}",
                    expr.cond.span, helps=("compare explicitly, e.g. `if stride != 1 then …`",))
    return evaluate(el, expr.then if cond else expr.else_, env, frame)


def ev_choice(el, expr: ast.Choice, env, frame):
    from cnnc.compiler import choices

    return choices.decide(el, expr, env, frame)


_DISPATCH = {
    ast.Number: ev_literal, ast.String: ev_literal, ast.Bool: ev_literal, ast.NoneLit: ev_literal,
    ast.Name: ev_name, ast.InputRef: ev_input, ast.ListExpr: ev_list, ast.Comprehension: ev_comprehension,
    ast.Chain: ev_chain, ast.Labeled: ev_labeled, ast.Call: ev_call, ast.Index: ev_index,
    ast.Attr: ev_attr, ast.BinOp: ev_binop, ast.UnaryOp: ev_unary, ast.If: ev_if, ast.Choice: ev_choice,
}
