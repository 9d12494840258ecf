"""Expression evaluation for elaboration: names, arithmetic, calls, comprehensions, choices.

Values are described in `compiler/elaborate/values.py`; applying layers to tensors is `apply.Elaborator`'s
job, reached through `el` (`state.El`). Every user mistake raises `state.Fail` with a located
diagnostic.
"""

from __future__ import annotations

import operator

from cnnc.compiler import limits
from cnnc.compiler.elaborate import budget, builtins, choices, derive
from cnnc.compiler.elaborate.bind import bind_arguments, bind_op_cached, describe_call
from cnnc.compiler.elaborate.scopes import NOT_LOCAL, Env, ModuleScope
from cnnc.compiler.elaborate.state import El, Frame, fail
from cnnc.compiler.elaborate.values import (
    POISON,
    BlockLayer,
    BlockRef,
    Builtin,
    LabeledLayer,
    MergeLayer,
    OpLayer,
    Outputs,
    Partial,
    SeqLayer,
    Tensor,
    is_layer,
    show,
    type_name,
)
from cnnc.compiler.ops import REQUIRED, OpError, dsl_names, lookup, merge_written
from cnnc.compiler.types import is_error
from cnnc.dsl import ast
from cnnc.dsl.records import replace


def evaluate(el: El, expr, env: Env, frame):
    method = _DISPATCH.get(type(expr))
    if method is None:
        raise AssertionError(f"no evaluation rule for {type(expr).__name__}")
    b = el.b
    if b.depth >= limits.MAX_DEPTH:
        raise fail(
            "E0705",
            f"evaluation nests deeper than {limits.MAX_DEPTH:,} levels here",
            expr.span,
            "too deep",
            notes=frame.notes()[:3],
            helps=(DEPTH_HELP,),
        )
    b.depth += 1
    try:
        return method(el, expr, env, frame)
    finally:
        b.depth -= 1


DEPTH_HELP = (
    "blocks inside blocks and values defined through other values nest; build repeats with a list, "
    "`[B(i) for i in range(n)]`"
)


def ev_number(el: El, expr: ast.Number, env, frame):
    return budget.check_int(expr.value, expr.span)


def ev_literal(el: El, expr, env, frame):
    """A string or a boolean."""
    return expr.value


def ev_none(el: El, expr: ast.NoneLit, env, frame):
    return None


def ev_name(el: El, expr: ast.Name, env: Env, frame):
    value = env.local(expr.id)
    if value is not NOT_LOCAL:
        return value
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
    candidates = (
        env.names() | set(env.module.defs) | {n for m in env.module.imports for n in m.defs}
    )
    candidates |= set(dsl_names()) | set(builtins.BUILTINS) | {"concat", "same"}
    import difflib

    close = difflib.get_close_matches(expr.id, sorted(candidates), n=1, cutoff=0.75)
    looks_like_layer = expr.id[:1].isupper()
    message = f"unknown {'op or block' if looks_like_layer else 'name'} `{expr.id}`"
    helps = (f"a similar name exists: `{close[0]}`",) if close else ()
    if not close and looks_like_layer:
        helps = ("define it with `block " + expr.id + "(…) { … }` or import the file that does",)
    return fail("E0201", message, expr.span, "not defined here or in any import", helps=helps)


def definition_value(el: El, scope: ModuleScope, item, span):
    if isinstance(item, (ast.BlockDef, ast.NetworkDef)):
        return BlockRef(item, scope)
    if item.name in scope.values:
        return scope.values[item.name]
    if item.name in scope.evaluating:
        raise self_reference(scope, item, span)
    scope.evaluating.add(item.name)
    try:
        if isinstance(item, ast.NetworkAlias):
            value = evaluate(el, item.value, Env(scope, {}), Frame())
            return derived_layer(el, value, item, scope) if item.derive else value
        if isinstance(item, ast.BlockAlias):
            return partial_block(el, scope, item)
        value = evaluate(el, item.value, Env(scope, {}), Frame())
    finally:
        scope.evaluating.discard(item.name)
    scope.values[item.name] = value
    return value


def derived_layer(el: El, value, item: ast.NetworkAlias, scope: ModuleScope):
    """A derived network used as a layer: `cut after P` makes the part at P its output. Its other
    clauses change layers deep inside the parent, which only the network itself can do."""
    _, _, d = derive.collect(scope, item)
    if d.replace or d.freeze or d.freeze_until is not None or d.decide is not None:
        clause = next(c for c in item.derive if c.kind != "cut_after")
        how = "`decide`" if clause.kind == "decide" else "`with`, `freeze`"
        raise fail(
            "E0404",
            f"`{item.name}` changes its parent's layers ({how}), so it cannot be used as a layer",
            clause.span,
            "applies to the network itself",
            helps=(
                "use it as the network (`cnnc compile FILE -n NAME`), or derive from the "
                "network that uses it",
            ),
        )
    if isinstance(value, BlockRef) and isinstance(value.definition, ast.NetworkDef):
        value = bind_block(el, value, (), (), item.span, Frame())
    if not isinstance(value, BlockLayer):
        return value
    return replace(value, cut=d.cut)


def self_reference(scope: ModuleScope, item, span):
    """A top-level definition reached again while it is evaluated: a cycle, or an alias that meant
    the imported definition its name hides (`network MobileNetV2 = MobileNetV2(width = 1.0)`)."""
    if isinstance(item, ast.Let):
        return fail(
            "E0206", f"`{item.name}` is defined in terms of itself", item.span, "this definition"
        )
    kind = "network" if isinstance(item, ast.NetworkAlias) else "block"
    if any(item.name in imported.defs for imported in scope.imports):
        return fail(
            "E0216",
            f"`{kind} {item.name} = …` hides the imported `{item.name}` it refers to",
            item.name_span or item.span,
            "this name is taken here by the alias itself",
            notes=(f"inside the alias, `{item.name}` means the alias, not the import",),
            helps=(
                f"give the alias a name of its own, e.g. `{kind} {_other_name(item.name)} = …`",
            ),
        )
    return fail(
        "E0215",
        f"`{kind} {item.name}` is defined in terms of itself",
        span or item.span,
        "refers back to the alias being defined",
        helps=(f"`{kind} {item.name} = …` must name a {kind} defined elsewhere",),
    )


def _other_name(name: str) -> str:
    return name.lower() if name.lower() != name else name + "_1"


def partial_block(el: El, scope: ModuleScope, item: ast.BlockAlias) -> Partial:
    """`block B2 = B(k = 5)` (or `= B`): B with those arguments fixed; its callers give the rest."""
    env, frame = Env(scope, {}), Frame()
    call = item.value
    target = evaluate(el, call.func if isinstance(call, ast.Call) else call, env, frame)
    if not isinstance(target, (BlockRef, Partial)):
        raise fail(
            "E0404",
            f"`block {item.name} = …` names a block (with some of its arguments), but this is "
            f"{type_name(target)}",
            item.value.span,
            helps=("e.g. `block Inception5 = Inception(k5 = 5)`",),
        )
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
        raise fail("E0403", f"`{fn}` takes {len(names)} arguments, but got {len(args)}", span)
    for key in kwargs:
        if key not in names:
            raise fail(
                "E0401",
                f"`{fn}` has no parameter `{key}`",
                span,
                helps=(f"its parameters are: {', '.join(names) or 'none'}",),
            )


def call_partial(el: El, partial: Partial, args, kwargs, span, frame) -> BlockLayer:
    """A partial block called: its fixed arguments first, then the call's (which may override keywords)."""
    given = {k: v for k, v, _ in kwargs}
    fixed = tuple((k, v, span) for k, v in partial.kwargs if k not in given)
    return bind_block(
        el, partial.block, partial.args + tuple(args), fixed + tuple(kwargs), span, frame
    )


def ev_input(el: El, expr: ast.InputRef, env: Env, frame):
    e = env
    while e is not None and e.input is None:
        e = e.parent
    if e is None:
        where = (
            "before `input [C, H, W]` is declared"
            if _in_network(env)
            else "outside a block or network"
        )
        raise fail(
            "E0201",
            f"`{expr.keyword}` is used {where}",
            expr.span,
            helps=("declare the input first: `input [3, 224, 224]`",) if _in_network(env) else (),
        )
    if isinstance(e.input, dict):  # named inputs: `input image [3, 224, 224]`
        names = ", ".join(f"`{n}`" for n in e.input)
        raise fail(
            "E0201",
            f"`{expr.keyword}` is ambiguous: this network's inputs are named ({names})",
            expr.span,
            "which input?",
            helps=(f"use an input's name, e.g. `{next(iter(e.input))}`",),
        )
    return e.input


def _in_network(env: Env) -> bool:
    while env is not None and not env.network:
        env = env.parent
    return env is not None


def ev_list(el: El, expr: ast.ListExpr, env, frame):
    budget.charge(el, len(expr.items), expr.span, "this list")
    return tuple([evaluate(el, item, env, frame) for item in expr.items])


def ev_tuple(el: El, expr: ast.TupleExpr, env, frame):
    """`(a, b, c)`: several tensors, returned together by a network."""
    values = [evaluate(el, item, env, frame) for item in expr.items]
    if any(v is POISON for v in values):
        return POISON
    for item, value in zip(expr.items, values):
        _expect_tensor(value, item.span, "`( , )` groups the tensors a network returns")
    return Outputs("tuple", tuple(enumerate(values)))


def ev_record(el: El, expr: ast.RecordExpr, env, frame):
    """`{out: y, aux: z}`: tensors returned by name."""
    if not expr.items:
        raise fail(
            "E0404",
            "`{}` names no tensor: a network returns at least one",
            expr.span,
            helps=("name each output, e.g. `{out: y}`",),
        )
    items, poisoned = [], False
    for f in expr.items:
        if any(k == f.key for k, _ in items):
            raise fail("E0204", f"the key `{f.key}` is used twice", f.key_span, "used again here")
        value = evaluate(el, f.value, env, frame)
        poisoned |= value is POISON
        if value is not POISON:
            _expect_tensor(value, f.value.span, "`{key: …}` names the tensors a network returns")
        items.append((f.key, value))
    return POISON if poisoned else Outputs("dict", tuple(items))


def _expect_tensor(value, span, why: str) -> None:
    if not isinstance(value, Tensor):
        raise fail(
            "E0404",
            f"{why}, but this is {type_name(value)}",
            span,
            "not a tensor",
            helps=("apply the layer to a tensor first: `x -> layer`",) if is_layer(value) else (),
        )


def ev_comprehension(el: El, expr: ast.Comprehension, env: Env, frame):
    iterable = evaluate(el, expr.iterable, env, frame)
    if iterable is POISON:
        return POISON
    if not isinstance(iterable, tuple):
        raise fail(
            "E0404",
            f"`for` needs a list to walk, but got {type_name(iterable)}",
            expr.iterable.span,
        )
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


def ev_chain(el: El, expr: ast.Chain, env, frame):
    first = evaluate(el, expr.elements[0], env, frame)
    if first is POISON:
        return POISON
    if not isinstance(first, Tensor):
        if not (is_layer(first) or isinstance(first, tuple) or hasattr(first, "infer")):
            raise fail(
                "E0404",
                f"a chain starts with a tensor or a layer, but this is {type_name(first)}",
                expr.elements[0].span,
                "not a tensor or layer",
            )
        first = to_layer(first, expr.elements[0].span)
        layers = (first, *[as_layer(el, e, env, frame) for e in expr.elements[1:]])
        return SeqLayer(layers, expr.span)
    x = first
    for element in expr.elements[1:]:
        outer, el.b.placing = el.b.placing, element  # names the choices it holds (`choices`)
        try:
            layer = as_layer(el, element, env, frame)
        finally:
            el.b.placing = outer
        x = el.apply(layer, x, frame, span=element.span)
        if x is POISON:
            return POISON
    return x


def as_layer(el: El, element, env, frame):
    value = evaluate(el, element, env, frame)
    if value is POISON or is_layer(value) or isinstance(value, tuple) or hasattr(value, "infer"):
        return to_layer(value, element.span)
    raise fail(
        "E0404",
        f"`->` needs a layer on its right, but got {type_name(value)}",
        element.span,
        "not a layer",
    )


def to_layer(value, span):
    """An op named without arguments (`ReLU`) is the op with its defaults."""
    if hasattr(value, "infer"):
        return bind_op_cached(value, (), (), span)
    return value


def ev_labeled(el: El, expr: ast.Labeled, env, frame):
    value = evaluate(el, expr.value, env, frame)
    if value is POISON:
        return POISON
    if isinstance(value, Tensor) or not (
        is_layer(value) or isinstance(value, tuple) or hasattr(value, "infer")
    ):
        raise fail(
            "E0404",
            f"a label names a layer, but `{expr.label}` labels {type_name(value)}",
            expr.label_span,
            helps=("put the label on the layer: `x -> name: Conv(…)`",),
        )
    return LabeledLayer(expr.label, to_layer(value, expr.value.span), expr.span)


def ev_call(el: El, expr: ast.Call, env, frame):
    func = evaluate(el, expr.func, env, frame)
    if func is POISON:
        return POISON
    if func is CONCAT:
        return concat(el, expr, env, frame)
    args = tuple([evaluate(el, a, env, frame) for a in expr.args])
    kwargs = tuple([(k.name, evaluate(el, k.value, env, frame), k.span) for k in expr.kwargs])
    if _poisoned(args) or _poisoned([v for _, v, _ in kwargs]):
        return POISON
    if hasattr(func, "infer"):
        return bind_op_cached(func, args, kwargs, expr.span)
    if isinstance(func, BlockRef):
        return bind_block(el, func, args, kwargs, expr.span, frame)
    if isinstance(func, Partial):
        return call_partial(el, func, args, kwargs, expr.span, frame)
    if isinstance(func, Builtin) and func.name == "sum" and _joins_branches(args):
        return sum_branches(el, args[0], kwargs, expr.span, frame)
    if isinstance(func, Builtin):
        return call_builtin(el, func, args, kwargs, expr.span)
    raise fail(
        "E0404",
        f"only ops, blocks and functions can be called, but this is {type_name(func)}",
        expr.func.span,
        "not callable",
    )


def _poisoned(values) -> bool:
    """Is any of `values` POISON? (A loop, not `any(…)`: this runs at every call in a program.)"""
    return any(value is POISON for value in values)


def concat(el: El, expr: ast.Call, env, frame):
    if expr.kwargs:
        raise fail("E0401", "`concat` takes no keyword arguments", expr.kwargs[0].span)
    members = tuple(el.guard(lambda a=a: evaluate(el, a, env, frame)) for a in expr.args)
    if len(members) == 1 and isinstance(members[0], tuple):
        members = members[0]
    if any(m is POISON for m in members):  # already reported (before counting the branches)
        return POISON
    if len(members) < 2:
        raise fail(
            "E0402", f"`concat` joins two or more branches, but got {len(members)}", expr.span
        )
    if any(m is POISON for m in members):
        return POISON
    if all(isinstance(m, Tensor) for m in members):
        return el.merge("Concat", members, frame, expr.span)
    return MergeLayer("Concat", tuple(to_layer(m, expr.span) for m in members), expr.span)


def _joins_branches(args) -> bool:
    """`sum(xs)` where xs holds a tensor or a layer: a sum of branches, not of numbers. A
    poisoned item (an error already reported) goes the branches' way, which passes the poison on
    instead of reporting it again as a number it is not."""
    return (
        len(args) == 1
        and isinstance(args[0], tuple)
        and any(isinstance(m, GRAPHISH) or hasattr(m, "infer") or m is POISON for m in args[0])
    )


def sum_branches(el: El, members: tuple, kwargs, span, frame):
    """`sum([a, b, c])`: one Add of every member (a cell's node: the sum of its incoming edges).
    Tensors make the Add now; layers make a branch layer, as `a + b` of layers does."""
    if kwargs:
        raise fail("E0401", "`sum` takes no keyword arguments", kwargs[0][2])
    if _poisoned(members):
        return POISON
    for m in members:
        if not (isinstance(m, GRAPHISH) or hasattr(m, "infer")):
            raise fail(
                "E0404",
                f"`sum` adds numbers or branches, but this list mixes a branch with {type_name(m)}",
                span,
                helps=("sum the numbers and the branches apart",),
            )
    if len(members) == 1:
        return members[0]
    if all(isinstance(m, Tensor) for m in members):
        return el.merge("Add", members, frame, span)
    return MergeLayer("Add", tuple(to_layer(m, span) for m in members), span)


def bind_block(el: El, ref: BlockRef, args, kwargs, span, frame) -> BlockLayer:
    """`kwargs` are (name, value, span) triples."""
    bound = bind_params(el, ref, args, tuple(kwargs), span, frame)
    names = [p.name for p in ref.definition.params or ()]
    given = set(names[: len(args)]) | {k for k, _, _ in kwargs}
    return BlockLayer(ref, tuple(bound.items()), span, describe_call(ref, bound, given))


def bind_params(el: El, ref: BlockRef, args, kwargs, span, frame, from_cli: bool = False) -> dict:
    """Bind call arguments to a block's parameters; defaults may read earlier parameters."""
    params = ref.definition.params or ()
    if from_cli:
        kwargs = tuple((k, v, span) for k, v in kwargs)
    names = [p.name for p in params]
    defaults = {p.name: (REQUIRED if p.default is None else p.default) for p in params}
    given = bind_arguments(ref.name, names, defaults, args, kwargs, span, cli=from_cli)
    env = Env(ref.module, {})
    out = {}
    for p in params:
        value = given[p.name]
        if isinstance(value, ast.Expr):
            value = argument_value(el, ref, p, value, env, frame)
        env.vars[p.name] = value
        out[p.name] = value
    return out


def argument_value(el: El, ref: BlockRef, param, expr, env: Env, frame):
    """Evaluate a default (or an `--arg`) unless it is already being evaluated: `block A(x = A())`
    would need the default of `x` to compute the default of `x`."""
    key = (id(ref.definition), param.name)
    active = el.b.defaults
    if key in active:
        raise fail(
            "E0217",
            f"the default of `{param.name}` in `{ref.name}` depends on itself",
            expr.span,
            f"needs `{ref.name}` with this default again",
            helps=(
                f"give `{param.name}` a default that does not call `{ref.name}`, or pass "
                f"`{param.name}` in the inner call",
            ),
        )
    active.add(key)
    try:
        return evaluate(el, expr, env, frame)
    finally:
        active.discard(key)


def call_builtin(el: El, func: Builtin, args, kwargs, span):
    try:
        made = builtins.items_made(func.name, args)  # `range`'s length, known before it is made
        if made:
            budget.charge(el, made, span, f"`{func.name}`")
        result = func.fn(args, {k: v for k, v, _ in kwargs})
    except OpError as exc:
        raise fail(exc.code, exc.message, span, helps=(exc.help,) if exc.help else ()) from None
    except (ValueError, OverflowError, ZeroDivisionError) as exc:
        raise fail("E0405", f"`{func.name}` cannot take these arguments: {exc}", span) from None
    return budget.check_int(result, span, f"the result of `{func.name}`")


def ev_index(el: El, expr: ast.Index, env, frame):
    value = evaluate(el, expr.value, env, frame)
    index = evaluate(el, expr.index, env, frame)
    if value is POISON or index is POISON:
        return POISON
    if isinstance(value, Outputs) and value.kind == "tuple":
        value = tuple(t for _, t in value.items)
    if not isinstance(value, tuple):
        raise fail(
            "E0404", f"only lists can be indexed, but this is {type_name(value)}", expr.value.span
        )
    if isinstance(index, bool) or not isinstance(index, int):
        raise fail(
            "E0404", f"a list index must be an integer, but got {type_name(index)}", expr.index.span
        )
    if not -len(value) <= index < len(value):
        raise fail(
            "E0407",
            f"index {index} is out of range for a list of {len(value)}",
            expr.index.span,
            "out of range",
        )
    return value[index]


TENSOR_ATTRS = {
    "channels": lambda t: t.shape[0],
    "height": lambda t: t.shape[1],
    "width": lambda t: t.shape[2],
    "shape": lambda t: t.shape,
    "rank": lambda t: t.rank,
    "numel": lambda t: t.numel,
}


def ev_attr(el: El, expr: ast.Attr, env, frame):
    value = evaluate(el, expr.value, env, frame)
    if value is POISON:
        return POISON
    if isinstance(value, Outputs):
        return _output_field(value, expr)
    if not isinstance(value, Tensor):
        raise fail(
            "E0404",
            f"`.{expr.name}` reads a tensor's shape, but this is {type_name(value)}",
            expr.value.span,
        )
    getter = TENSOR_ATTRS.get(expr.name)
    if getter is None:
        return tap(el, value, expr)
    if is_error(value.type):
        return POISON
    if expr.name in ("height", "width") and value.type.rank != 3:
        raise fail(
            "E0304", f"`.{expr.name}` needs a [C, H, W] tensor, but got {value.type}", expr.span
        )
    return getter(value.type)


def tap(el: El, value: Tensor, expr: ast.Attr):
    """`x.layer4`: the output of the part labelled `layer4` inside the part that made `x` (a
    network or block used as a layer, a labelled sequence): a backbone's intermediate maps."""
    if value.part is not None:
        found = el.b.parts.get(value.part + (expr.name,))
        if found is not None:
            return found
    owner = ".".join(value.part) if value.part else ""
    inside = (
        sorted(
            {
                p[len(value.part)]
                for p in el.b.parts
                if value.part and p[: len(value.part)] == value.part and len(p) > len(value.part)
            }
        )
        if value.part
        else []
    )
    helps = ["tensors have `.channels`, `.height`, `.width`, `.shape`, `.rank` and `.numel`"]
    import difflib

    close = difflib.get_close_matches(expr.name, inside, n=3, cutoff=0.5)
    if close:
        helps.insert(0, "did you mean " + " or ".join(f"`{c}`" for c in close) + "?")
    elif inside:
        helps.insert(
            0,
            f"the parts of `{owner}` are "
            + ", ".join(f"`{c}`" for c in inside[:12])
            + (", …" if len(inside) > 12 else ""),
        )
    what = (
        f"`{owner}` has no part labelled `{expr.name}`"
        if inside
        else f"a tensor has no attribute `{expr.name}`"
    )
    raise fail("E0219" if inside else "E0404", what, expr.name_span, helps=tuple(helps))


def _output_field(value: Outputs, expr: ast.Attr):
    key = int(expr.name) if value.kind == "tuple" and expr.name.isdigit() else expr.name  # `y.0`
    found = value.get(key)
    if found is None:
        keys = ", ".join(f"`{k}`" for k, _ in value.items)
        raise fail(
            "E0219",
            f"no output named `{expr.name}`",
            expr.name_span,
            notes=(f"the outputs are {keys}",),
        )
    return found


ARITH = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
}
COMPARE = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def ev_binop(el: El, expr: ast.BinOp, env, frame):
    if expr.op in ("and", "or"):
        return boolean(el, expr, env, frame)
    left = evaluate(el, expr.left, env, frame)
    right = evaluate(el, expr.right, env, frame)
    if left is POISON or right is POISON:
        return POISON
    if expr.op in COMPARE:
        return compare(expr, left, right)
    if expr.op in ("+", "*") and (isinstance(left, GRAPHISH) or isinstance(right, GRAPHISH)):
        return graph_binop(el, expr, left, right, frame)
    return arithmetic(el, expr, left, right)


# the values `+` and `*` join into the graph (rather than add or multiply as numbers or lists)
GRAPHISH = (Tensor, OpLayer, BlockLayer, SeqLayer, LabeledLayer, MergeLayer, BlockRef, Partial)


def graph_binop(el: El, expr: ast.BinOp, left, right, frame):
    op = merge_written(expr.op).name  # `+`: Add, `*`: Mul
    if isinstance(left, Tensor) and isinstance(right, Tensor):
        operands = ((expr.left.span, left), (expr.right.span, right))
        return el.merge(op, (left, right), frame, expr.op_span, operands=operands)
    for _side, value in (("left", left), ("right", right)):
        if not (isinstance(value, Tensor) or is_layer(value) or hasattr(value, "infer")):
            raise fail(
                "E0404",
                f"`{expr.op}` of a tensor or layer with {type_name(value)}",
                expr.op_span,
                helps=("`+` adds two tensors (or two branches), `*` multiplies them",),
            )
    return MergeLayer(
        op, (to_layer(left, expr.left.span), to_layer(right, expr.right.span)), expr.op_span
    )


def _number(value) -> bool:
    """An int or a float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def arithmetic(el: El, expr: ast.BinOp, left, right):
    if _number(left) and _number(right):
        if expr.op in ("/", "//", "%") and right == 0:
            raise fail("E0406", "division by zero", expr.right.span, "is zero")
        if isinstance(left, int) and isinstance(right, int) and expr.op != "/":
            bits = limits.int_bits_after(expr.op, left, right)
            if bits > limits.MAX_INT_BITS:
                raise budget.int_too_large(
                    bits, expr.span, f"the result of `{expr.op}`", "would have up to"
                )
        try:
            return ARITH[expr.op](left, right)
        except OverflowError:  # a float too large for the integer's conversion: `/` of huge values
            raise fail(
                "E0704", f"`{expr.op}` overflows: its operands are too large", expr.span
            ) from None
    if expr.op == "+" and isinstance(left, tuple) and isinstance(right, tuple):
        budget.charge(el, len(left) + len(right), expr.span, "this list")
        return left + right
    if expr.op == "+" and isinstance(left, str) and isinstance(right, str):
        if len(left) + len(right) > limits.MAX_STRING:
            raise fail(
                "E0703",
                f"this string would have {len(left) + len(right):,} characters, more than the "
                f"{limits.MAX_STRING:,} a string may have",
                expr.span,
                "too long",
                helps=("labels and names are short; check a `+` repeated in a loop",),
            )
        budget.charge(el, len(left) + len(right), expr.span, "this string")
        return left + right
    if (
        expr.op == "*"
        and isinstance(left, tuple)
        and isinstance(right, int)
        and not isinstance(right, bool)
    ):
        budget.charge(el, len(left) * max(right, 0), expr.span, "this list")
        return left * right
    raise fail(
        "E0404",
        f"`{expr.op}` cannot combine {type_name(left)} and {type_name(right)}",
        expr.op_span,
        secondary=(),
        helps=_arith_help(left, right),
    )


def _arith_help(left, right) -> tuple[str, ...]:
    if isinstance(left, bool) or isinstance(right, bool):
        return ("booleans are not numbers; use `if … then 1 else 0`",)
    return ()


def compare(expr: ast.BinOp, left, right):
    if expr.op in ("==", "!="):
        return COMPARE[expr.op](left, right)
    if not (_number(left) and _number(right)):
        raise fail(
            "E0404",
            f"`{expr.op}` compares numbers, but got {type_name(left)} and {type_name(right)}",
            expr.op_span,
        )
    return COMPARE[expr.op](left, right)


def boolean(el: El, expr: ast.BinOp, env, frame):
    left = _truth(evaluate(el, expr.left, env, frame), expr.op, expr.left.span)
    if left is POISON:
        return POISON
    if (expr.op == "and" and not left) or (expr.op == "or" and left):
        return left
    return _truth(evaluate(el, expr.right, env, frame), expr.op, expr.right.span)


def _truth(value, op: str, span):
    if value is POISON or isinstance(value, bool):
        return value
    raise fail("E0404", f"`{op}` needs booleans, but got {type_name(value)}", span)


def ev_unary(el: El, expr: ast.UnaryOp, env, frame):
    value = evaluate(el, expr.operand, env, frame)
    if value is POISON:
        return POISON
    if expr.op == "not":
        return not _truth(value, "not", expr.operand.span)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail("E0404", f"`-` negates a number, but got {type_name(value)}", expr.span)
    return -value


def ev_if(el: El, expr: ast.If, env, frame):
    cond = evaluate(el, expr.cond, env, frame)
    if cond is POISON:
        return POISON
    if not isinstance(cond, bool):
        raise fail(
            "E0404",
            f"`if` needs a boolean condition, but got {type_name(cond)} {show(cond)}",
            expr.cond.span,
            helps=("compare explicitly, e.g. `if stride != 1 then …`",),
        )
    return evaluate(el, expr.then if cond else expr.else_, env, frame)


def ev_choice(el: El, expr: ast.Choice, env, frame):
    return choices.decide(el, expr, env, frame)


_DISPATCH = {
    ast.Number: ev_number,
    ast.String: ev_literal,
    ast.Bool: ev_literal,
    ast.NoneLit: ev_none,
    ast.Name: ev_name,
    ast.InputRef: ev_input,
    ast.ListExpr: ev_list,
    ast.Comprehension: ev_comprehension,
    ast.Chain: ev_chain,
    ast.Labeled: ev_labeled,
    ast.Call: ev_call,
    ast.Index: ev_index,
    ast.Attr: ev_attr,
    ast.BinOp: ev_binop,
    ast.UnaryOp: ev_unary,
    ast.If: ev_if,
    ast.Choice: ev_choice,
    ast.TupleExpr: ev_tuple,
    ast.RecordExpr: ev_record,
}
