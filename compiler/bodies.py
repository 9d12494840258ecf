"""Bodies of blocks and networks: statements run in order (`let`, `input`, `assert`, `return`), and a
network is found, its arguments bound (`--arg` included) and its graph finished.

Each statement's failure is recorded and poisons only that statement's value (see `elaborate`).
"""

from __future__ import annotations

from cnnc.compiler import derive
from cnnc.compiler.evaluate import _fail, bind_params, evaluate
from cnnc.compiler.scopes import Env, ModuleScope
from cnnc.compiler.types import TensorType
from cnnc.compiler.values import POISON, BlockLayer, BlockRef, Tensor, is_layer, show, type_name
from cnnc.dsl import ast
from cnnc.dsl.diagnostics import error


def run_network(el, main: ModuleScope, name: str, args: dict, input_shape):
    from cnnc.compiler.elaborate import Frame, finish

    found = main.find(name)
    if found is None or not isinstance(found[1], (ast.NetworkDef, ast.NetworkAlias)):
        names = [n for n, item in main.defs.items() if isinstance(item, (ast.NetworkDef, ast.NetworkAlias))]
        raise_usage(f"no network `{name}` in this file", names)
    scope, item = found
    if isinstance(item, ast.NetworkAlias) and item.derive:
        scope, item, el.derivation = derive.collect(scope, item)
    env = Env(scope, {})
    definition, bound = resolve_network(el, scope, item, args, env)
    if definition is None:
        return finish(el, name, POISON, None)
    net_env = Env(definition.module, bound, None, network=True, override=input_shape)
    output = run_body(el, definition.definition, net_env, Frame())
    input_node = next((n for n in el.b.nodes if n.op == "Input"), None)
    if is_layer(output) and isinstance(net_env.input, Tensor):
        output = el.guard(lambda: el.apply(output, net_env.input, Frame()))
    elif output is not POISON and not isinstance(output, Tensor):
        ret = _return_stmt(definition.definition)
        el.report(error("E0404", f"a network must return a tensor, but `{name}` returns {type_name(output)}",
                        ret.value.span if ret else None))
        output = POISON
    if el.derivation is not None:
        parent = item.value.id if isinstance(item.value, ast.Name) else definition.name
        output = _derived_output(el, output, parent)
    return finish(el, name, output, input_node.type if input_node else None)


def _derived_output(el, output, parent: str):
    """Cut and freeze a derived network once its parent is elaborated (see `compiler.derive`)."""
    out_id = output.node if isinstance(output, Tensor) else None
    new_id, frozen, problems = derive.finish(el.derivation, el.b.nodes, out_id, parent)
    for problem in problems:
        el.report(problem)
    el.derivation.frozen = frozen
    if new_id is not None and new_id != out_id:
        return Tensor(new_id, el.b.nodes[new_id].type)
    return output


def resolve_network(el, scope: ModuleScope, item, cli_args: dict, env: Env):
    """(BlockRef of the network, bound parameters), following `network a = B(…)` aliases."""
    from cnnc.compiler.elaborate import Frame

    if isinstance(item, ast.NetworkDef):
        ref = BlockRef(item, scope)
        bound = el.guard(lambda: bind_params(el, ref, (), tuple(cli_args.items()), item.name_span, Frame(),
                                             from_cli=True), None)
        return (ref, bound) if bound is not None else (None, None)
    call = item.value
    func = el.guard(lambda: evaluate(el, call.func, env, Frame())) if isinstance(call, ast.Call) else None
    if func is POISON:  # already reported; evaluating the whole call would report it again
        return None, None
    if isinstance(func, BlockRef) and isinstance(func.definition, ast.NetworkDef):
        bound = _rebind_alias(el, func, call, cli_args, env)
        return (func, bound) if bound is not None else (None, None)
    value = el.guard(lambda: evaluate(el, item.value, env, Frame()))
    if isinstance(value, BlockLayer) and isinstance(value.block.definition, ast.NetworkDef):
        return value.block, dict(value.args)
    if isinstance(value, BlockRef) and isinstance(value.definition, ast.NetworkDef):  # `network b = a`
        bound = el.guard(lambda: bind_params(el, value, (), tuple(cli_args.items()), item.value.span, Frame(),
                                             from_cli=True), None)
        return (value, bound) if bound is not None else (None, None)
    if value is not POISON:
        el.report(error("E0404", f"`network {item.name} = …` must name a network, but got {type_name(value)}",
                        item.value.span))
    return None, None


def _rebind_alias(el, ref: BlockRef, call: ast.Call, cli_args: dict, env: Env):
    """`network resnet50 = ResNet([3, 4, 6, 3])` with `--arg` values on top, bound in one go, so an
    unknown `--arg` is E0401 and defaults that read other parameters see the overrides."""
    from cnnc.compiler.elaborate import Frame

    def bind():
        names = [p.name for p in ref.definition.params or ()]
        if len(call.args) > len(names):
            raise _fail("E0403", f"`{ref.name}` takes {len(names)} arguments, but got {len(call.args)}", call.span)
        given = {name: evaluate(el, a, env, Frame()) for name, a in zip(names, call.args)}
        given |= {k.name: evaluate(el, k.value, env, Frame()) for k in call.kwargs}
        given |= cli_args  # .cnn expressions from the command line, evaluated while binding
        return bind_params(el, ref, (), tuple(given.items()), call.span, Frame(), from_cli=True)

    return el.guard(bind, None)


def _return_stmt(definition):
    return next((s for s in definition.body if isinstance(s, ast.Return)), None)


def run_body(el, definition, env: Env, frame):
    """Execute the statements of a block or network body; returns the `return` value."""
    result, returned = POISON, False
    for stmt in definition.body:
        if isinstance(stmt, ast.Let):
            if stmt.name in env.vars:
                el.report(error("E0204", f"`{stmt.name}` is defined twice", stmt.name_span, "defined again here"))
            env.vars[stmt.name] = el.guard(lambda s=stmt: evaluate(el, s.value, env, frame))
        elif isinstance(stmt, ast.InputDecl):
            el.guard(lambda s=stmt: declare_input(el, s, env, definition, frame))
        elif isinstance(stmt, ast.Assert):
            el.guard(lambda s=stmt: check_assert(el, s, env, frame))
        elif isinstance(stmt, ast.Return):
            result = el.guard(lambda s=stmt: evaluate(el, s.value, env, frame))
            returned = True
            break
    if not returned:
        el.report(error("E0409", f"`{definition.name}` has no `return`", definition.name_span,
                        "defined here", helps=("end the body with `return in -> …`",)))
    return result


def declare_input(el, stmt: ast.InputDecl, env: Env, definition, frame) -> None:
    from cnnc.compiler.elaborate import Frame

    if not isinstance(definition, ast.NetworkDef):
        raise _fail("E0307", "`input` declares a network's input; a block receives `in`", stmt.span)
    if env.input is not None:
        raise _fail("E0307", "the input is declared twice", stmt.span)
    shape = env.override if env.override is not None else evaluate(el, stmt.value, env, frame)
    if shape is POISON:
        env.input = POISON
        return
    ok = isinstance(shape, tuple) and len(shape) in (1, 3) and all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
    if not ok:
        env.input = POISON
        raise _fail("E0307", f"`input` must be [C, H, W] or [N] of positive integers, but got {show(shape)}",
                    stmt.value.span, helps=("e.g. `input [3, 224, 224]`",))
    t = TensorType(tuple(shape))
    path = el.b.claim((), "input", False, stmt.span)
    env.input = el.b.add("Input", {"type": t}, [], t, path, stmt.span, Frame())


def check_assert(el, stmt: ast.Assert, env: Env, frame) -> None:
    cond = evaluate(el, stmt.cond, env, frame)
    if cond is POISON:
        return
    if not isinstance(cond, bool):
        raise _fail("E0404", f"`assert` needs a boolean, but got {type_name(cond)}", stmt.cond.span)
    if not cond:
        message = stmt.message or f"`{stmt.cond.span.text}` does not hold"
        raise _fail("E0408", f"assertion failed: {message}", stmt.cond.span, "is false", notes=frame.notes())


def raise_usage(message: str, names) -> None:
    from cnnc.dsl.diagnostics import CnncError

    listed = ", ".join(f"`{n}`" for n in names) or "none"
    raise CnncError(error("E0205", message, None, notes=(f"networks in this file: {listed}",)))
