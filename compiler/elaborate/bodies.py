"""Bodies of blocks and networks: statements run in order (`let`, `input`, `assert`, `return`), and a
network is found, its arguments bound (`--arg` included) and its graph finished.

Each statement's failure is recorded and poisons only that statement's value (see the room's
`__init__`).
"""

from __future__ import annotations

import builtins

from cnnc.compiler.elaborate import derive, zeros
from cnnc.compiler.elaborate.decided import ClauseDecider
from cnnc.compiler.elaborate.evaluate import bind_params, evaluate
from cnnc.compiler.elaborate.scopes import Env, ModuleScope
from cnnc.compiler.elaborate.state import El, Frame, fail
from cnnc.compiler.elaborate.values import (
    POISON,
    BlockLayer,
    BlockRef,
    Outputs,
    Tensor,
    is_layer,
    show,
    type_name,
)
from cnnc.compiler.ir import Graph
from cnnc.compiler.types import TensorType, is_error
from cnnc.dsl import ast
from cnnc.dsl.diagnostics import CnncError, error


def run_network(el: El, main: ModuleScope, name: str, args: dict, input_shape):
    found = main.find(name)
    if found is None or not isinstance(found[1], (ast.NetworkDef, ast.NetworkAlias)):
        names = [
            n
            for n, item in main.defs.items()
            if isinstance(item, (ast.NetworkDef, ast.NetworkAlias))
        ]
        raise_usage(f"no network `{name}` in this file", names)
    scope, item = found
    if isinstance(item, ast.NetworkAlias) and item.derive:
        scope, item, el.derivation = derive.collect(scope, item)
        for problem in el.derivation.problems:
            el.report(problem)
        if el.derivation.decide is not None:
            d = el.derivation
            el.decider = ClauseDecider(d.decisions, d.decide, _constant(el))
    env = Env(scope, {})
    definition, bound = resolve_network(el, scope, item, args, env)
    if definition is None:
        return finish(el, name, POISON)
    net_env = Env(definition.module, bound, None, network=True, override=input_shape)
    output = run_body(el, definition.definition, net_env, Frame())
    _check_overrides(net_env)
    if is_layer(output) and isinstance(net_env.input, Tensor):
        output = el.guard(lambda: el.apply(output, net_env.input, Frame()))
    elif output is not POISON and not isinstance(output, (Tensor, Outputs)):
        ret = _return_stmt(definition.definition)
        el.report(
            error(
                "E0404",
                f"a network must return a tensor (or several: `(a, b)`, `{{out: y}}`), but "
                f"`{name}` returns {type_name(output)}",
                ret.value.span if ret else None,
            )
        )
        output = POISON
    if el.derivation is not None:
        parent = item.value.id if isinstance(item.value, ast.Name) else definition.name
        output = _derived_output(el, output, parent)
    if isinstance(el.decider, ClauseDecider):
        finished = output is not POISON and not any(d.is_error for d in el.b.diagnostics)
        for problem in el.decider.problems(finished):
            el.report(problem)
    return finish(el, name, output)


def _constant(el: El):
    """(expr, scope) → the expression's value, evaluated in the scope of its file alone."""

    def value(expr, scope):
        return evaluate(el, expr, Env(scope, {}), Frame())

    return value


def finish(el: El, name: str, output) -> Graph:
    """Prune what reaches no output (or only a Zero) and freeze the graph. `output` is a Tensor, an `Outputs` (a
    tuple or named tensors) or POISON (then every node is kept, for the diagnostics' sake)."""
    nodes = el.b.nodes
    if isinstance(output, Outputs):
        outputs, kind = tuple((k, t.node) for k, t in output.items), output.kind
    elif isinstance(output, Tensor):
        outputs, kind = ((None, output.node),), "tensor"
    else:
        outputs, kind = (), "tensor"
    if not outputs:
        keep = {n.id for n in nodes}
    else:  # what a Zero makes dead goes too (`zeros.py`)
        nodes, outputs, keep = zeros.drop_zeros(nodes, outputs)
    kept = [n for n in nodes if n.id in keep or n.op == "Input"]
    prefixes = {n.path[:k] for n in kept for k in range(1, len(n.path))}
    kept_scopes = [s for s in el.b.scopes if s.path in prefixes]
    d = el.derivation
    frozen = d.frozen if d is not None else ()
    replaced = d.replaced if d is not None else ()
    return Graph(
        name, kept, outputs, kept_scopes, output_kind=kind, frozen=frozen, replaced=replaced
    )


def _check_overrides(env: Env) -> None:
    """`--input name=C,H,W` must name an input the network declares."""
    if not isinstance(env.override, dict):
        return
    declared = set(env.input) if isinstance(env.input, dict) else set()
    unknown = [n for n in env.override if n not in declared]
    if unknown:
        listed = ", ".join(f"`{n}`" for n in sorted(declared)) or "one unnamed input"
        raise CnncError(
            error(
                "E0307",
                f"`--input {unknown[0]}=…` names no input of this network",
                None,
                notes=(f"its inputs: {listed}",),
            )
        )


def _derived_output(el: El, output, parent: str):
    """Cut and freeze a derived network once its parent is elaborated (see `compiler.elaborate.derive`). A
    network with several outputs keeps them, unless `cut after` makes the cut its one output."""
    out_id = output.node if isinstance(output, Tensor) else None
    new_id, frozen, problems = derive.finish(el.derivation, el.b.nodes, out_id, parent)
    for problem in problems:
        el.report(problem)
    el.derivation.frozen = frozen
    if new_id is not None and new_id != out_id:
        return Tensor(new_id, el.b.nodes[new_id].type)
    return output


def resolve_network(el: El, scope: ModuleScope, item, cli_args: dict, env: Env):
    """(BlockRef of the network, bound parameters), following `network a = B(…)` aliases."""
    if isinstance(item, ast.NetworkDef):
        ref = BlockRef(item, scope)
        bound = el.guard(
            lambda: bind_params(
                el, ref, (), tuple(cli_args.items()), item.name_span, Frame(), from_cli=True
            ),
            None,
        )
        return (ref, bound) if bound is not None else (None, None)
    call = item.value
    func = (
        el.guard(lambda: evaluate(el, call.func, env, Frame()))
        if isinstance(call, ast.Call)
        else None
    )
    if func is POISON:  # already reported; evaluating the whole call would report it again
        return None, None
    if isinstance(func, BlockRef) and isinstance(func.definition, ast.NetworkDef):
        bound = _rebind_alias(el, func, call, cli_args, env)
        return (func, bound) if bound is not None else (None, None)
    value = el.guard(lambda: evaluate(el, item.value, env, Frame()))
    if isinstance(value, BlockLayer) and isinstance(value.block.definition, ast.NetworkDef):
        return value.block, dict(value.args)
    if isinstance(value, BlockRef) and isinstance(
        value.definition, ast.NetworkDef
    ):  # `network b = a`
        bound = el.guard(
            lambda: bind_params(
                el, value, (), tuple(cli_args.items()), item.value.span, Frame(), from_cli=True
            ),
            None,
        )
        return (value, bound) if bound is not None else (None, None)
    if value is not POISON:
        el.report(
            error(
                "E0404",
                f"`network {item.name} = …` must name a network, but got {type_name(value)}",
                item.value.span,
            )
        )
    return None, None


def _rebind_alias(el: El, ref: BlockRef, call: ast.Call, cli_args: dict, env: Env):
    """`network resnet50 = ResNet([3, 4, 6, 3])` with `--arg` values on top, bound in one go, so an
    unknown `--arg` is E0401 and defaults that read other parameters see the overrides."""

    def bind():
        names = [p.name for p in ref.definition.params or ()]
        if len(call.args) > len(names):
            raise fail(
                "E0403",
                f"`{ref.name}` takes {len(names)} arguments, but got {len(call.args)}",
                call.span,
            )
        given = {name: evaluate(el, a, env, Frame()) for name, a in zip(names, call.args)}
        given |= {k.name: evaluate(el, k.value, env, Frame()) for k in call.kwargs}
        given |= cli_args  # .cnn expressions from the command line, evaluated while binding
        return bind_params(el, ref, (), tuple(given.items()), call.span, Frame(), from_cli=True)

    return el.guard(bind, None)


def _return_stmt(definition):
    return next((s for s in definition.body if isinstance(s, ast.Return)), None)


def run_body(el: El, definition, env: Env, frame):
    """Execute the statements of a block or network body; returns the `return` value."""
    result, returned = POISON, False
    for stmt in definition.body:
        if isinstance(stmt, ast.Let):
            if stmt.name in env.vars:
                el.report(
                    error(
                        "E0204",
                        f"`{stmt.name}` is defined twice",
                        stmt.name_span,
                        "defined again here",
                    )
                )
            env.vars[stmt.name] = _let_value(el, stmt, env, frame)
        elif isinstance(stmt, ast.InputDecl):
            el.guard(lambda s=stmt: declare_input(el, s, env, definition, frame))
        elif isinstance(stmt, ast.Assert):
            el.guard(lambda s=stmt: check_assert(el, s, env, frame))
        elif isinstance(stmt, ast.Return):
            result = el.guard(lambda s=stmt: evaluate(el, s.value, env, frame))
            returned = True
            break
    if not returned:
        el.report(
            error(
                "E0409",
                f"`{definition.name}` has no `return`",
                definition.name_span,
                "defined here",
                helps=("end the body with `return in -> …`",),
            )
        )
    return result


def _let_value(el: El, stmt: ast.Let, env: Env, frame):
    """The value of `name = …`, evaluated with the binding known (it names a block's choices)."""
    outer = el.b.binding
    el.b.binding = stmt
    try:
        return el.guard(lambda: evaluate(el, stmt.value, env, frame))
    finally:
        el.b.binding = outer


def declare_input(el: El, stmt: ast.InputDecl, env: Env, definition, frame) -> None:
    """`input [C, H, W]` (or a named one of several, `input image [C, H, W]`) makes the network's
    input node. In a network used as a layer the declaration checks what the layer receives."""
    if not isinstance(definition, ast.NetworkDef):
        raise fail("E0307", "`input` declares a network's input; a block receives `in`", stmt.span)
    if env.instance:
        return _check_received(el, stmt, env, definition, frame)
    if stmt.name is not None:
        return _declare_named(el, stmt, env, frame)
    if env.input is not None:
        what = (
            "a network with several inputs names each of them"
            if isinstance(env.input, dict)
            else "the input is declared twice"
        )
        raise fail(
            "E0307", what, stmt.span, helps=(NAMED_HELP,) if isinstance(env.input, dict) else ()
        )
    try:
        shape = _declared_shape(
            el, stmt, env, frame
        )  # first: the input's own shape cannot use the input
    finally:
        env.input = POISON  # until the shape is known good: its uses are then not reported again
    if shape is not POISON:
        t = TensorType(tuple(shape))
        env.input = el.b.add(
            "Input",
            {"type": t},
            [],
            t,
            el.b.claim((), "input", False, stmt.span),
            stmt.span,
            Frame(),
        )


NAMED_HELP = "e.g. `input image [3, 224, 224]` and `input depth [1, 224, 224]`"


def _declare_named(el: El, stmt: ast.InputDecl, env: Env, frame) -> None:
    """`input image [3, 224, 224]`: an input node named `image`, and the variable `image`."""
    if env.input is not None and not isinstance(env.input, dict):
        raise fail(
            "E0307",
            "a network with several inputs names each of them",
            stmt.span,
            helps=(NAMED_HELP,),
        )
    if stmt.name in TAKEN_BY_CODE:
        raise fail(
            "E0209",
            f"the input name `{stmt.name}` is taken: the compiled network's code uses it",
            stmt.name_span,
            helps=(f"choose another name, e.g. `{stmt.name}_in`",),
        )
    inputs = env.input if isinstance(env.input, dict) else {}
    if stmt.name in env.vars or stmt.name in inputs:
        raise fail("E0204", f"`{stmt.name}` is defined twice", stmt.name_span, "defined again here")
    if inputs and isinstance(env.override, tuple):
        names = ", ".join(f"`{n}=C,H,W`" for n in [*inputs, stmt.name])
        raise CnncError(
            error(
                "E0307",
                "`--input C,H,W` is one shape, but this network has several inputs",
                None,
                helps=(f"give each input by name: {names}",),
            )
        )
    try:
        shape = _declared_shape(
            el, stmt, env, frame
        )  # first: the input's own shape cannot use the input
    finally:
        env.input = inputs
        inputs[stmt.name] = env.vars[stmt.name] = POISON  # until the shape is known good
    if shape is not POISON:
        t = TensorType(tuple(shape))
        path = el.b.claim((), stmt.name, True, stmt.name_span)
        tensor = el.b.add("Input", {"type": t, "name": stmt.name}, [], t, path, stmt.span, Frame())
        inputs[stmt.name] = env.vars[stmt.name] = tensor


# names the generated `forward` reads besides its arguments: an argument must not shadow them
TAKEN_BY_CODE = frozenset({"self", "torch", "nn", "math", "operator", "F"} | set(dir(builtins)))


def _declared_shape(el: El, stmt: ast.InputDecl, env: Env, frame):
    """The declared shape, or `--input`'s (a shape, or a mapping from input names to shapes)."""
    override = env.override
    if isinstance(override, dict):
        override = override.get(stmt.name or "")
    shape = override if override is not None else evaluate(el, stmt.value, env, frame)
    if shape is POISON:
        return POISON
    ok = (
        isinstance(shape, tuple)
        and len(shape) in (1, 3)
        and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
    )
    if not ok:
        raise fail(
            "E0307",
            f"`input` must be [C, H, W] or [N] of positive integers, but got {show(shape)}",
            stmt.value.span,
            helps=("e.g. `input [3, 224, 224]`",),
        )
    return shape


def _check_received(el: El, stmt: ast.InputDecl, env: Env, definition, frame) -> None:
    """A network used as a layer: its `input` checks the rank and channels it receives (the sizes
    are free, so a classifier's trunk runs on a segmentation model's larger images)."""
    received = env.input
    declared = [s for s in definition.body if isinstance(s, ast.InputDecl)]
    if len(declared) > 1:  # reported once, at the first; the inputs are poisoned, not unknown
        env.input = POISON
        if stmt.name is not None:
            env.vars[stmt.name] = POISON
        if stmt is declared[0]:
            raise fail(
                "E0307",
                f"`{definition.name}` has several inputs, so it cannot be used as a layer "
                "(`->` feeds one tensor)",
                stmt.span,
                notes=frame.notes(),
            )
        return
    if stmt.name is not None:
        env.vars[stmt.name] = received
    if received is POISON or not isinstance(received, Tensor) or is_error(received.type):
        return
    shape = evaluate(el, stmt.value, env, frame)
    if not isinstance(shape, tuple) or not shape:
        return
    got = received.type.shape
    if (
        len(shape) != len(got)
        or (len(shape) == 3 and shape[0] != got[0])
        or (len(shape) == 1 and shape != got)
    ):
        expected = f"{shape[0]} channels" if len(shape) == 3 else f"a vector of {shape[0]}"
        raise fail(
            "E0307",
            f"`{definition.name}` takes {expected} (its `input {show(list(shape))}`), "
            f"but receives {received.type}",
            stmt.span,
            "declared here",
            notes=frame.notes(),
            helps=("adapt the tensor before it, e.g. `Conv(3, 1)` to change the channels",),
        )


def check_assert(el: El, stmt: ast.Assert, env: Env, frame) -> None:
    cond = evaluate(el, stmt.cond, env, frame)
    if cond is POISON:
        return
    if not isinstance(cond, bool):
        raise fail("E0404", f"`assert` needs a boolean, but got {type_name(cond)}", stmt.cond.span)
    if not cond:
        message = stmt.message or f"`{stmt.cond.span.text}` does not hold"
        raise fail(
            "E0408", f"assertion failed: {message}", stmt.cond.span, "is false", notes=frame.notes()
        )


def raise_usage(message: str, names) -> None:
    listed = ", ".join(f"`{n}`" for n in names) or "none"
    raise CnncError(error("E0205", message, None, notes=(f"networks in this file: {listed}",)))
