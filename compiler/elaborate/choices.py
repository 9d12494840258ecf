"""`choice(…)`: a decision elaboration leaves to a decider (an Optuna trial, or a fixed replay).

Options are evaluated lazily: only the chosen one is elaborated, so choices nested inside an option
exist only when it is chosen. A choice named with `name = "k"` is one decision wherever it appears; an
unnamed one is a decision per place and per block instance, named, in this order:
- in a block, the lone choice of a `let` from the instance's label path and the let (`stage1.0.k`
  for `k = choice(3, 5)` in the block made as `stage1.0`);
- from the path of the layer a chain is about to apply (`Builder.placing`): an argument of an op or
  block call is `<layer path>.<parameter>` (the op's parameter as torch names it, `pad` →
  `padding`; a block's as written: `stage1.n`), a choice of layers is the layer's path when a
  label or its options' one implicit name gives it (`stage1.0.pool`, `conv_1`); in a labelled
  sequence (`conv: [A, B]`, `branch: (A -> B)`) a member is numbered by its place in it or named
  by its label (`branch2.1.kernel_size`);
- else from the path and the place (`stage1.0@12:20`, `network@3:9`): a choice in an unlabelled
  list or after a nested one, inside an expression, one of several in a let, or between layers
  whose implicit names differ.
A loop suffix (`[i=2]`) follows inside a comprehension; a name another choice of the elaboration
took first falls back to the place, so that names stay unique.
Without a decider, a choice is E0501: the file is a search space, for `cnnc search`. What a decider
sees and answers (`ChoicePoint`, `Decider`) lives in `state`, with the elaborator's other types.
"""

from __future__ import annotations

from cnnc.compiler.elaborate.state import ChoicePoint, El, Fail
from cnnc.compiler.elaborate.values import POISON, BlockRef, show
from cnnc.dsl import ast
from cnnc.dsl.diagnostics import error


def decide(el: El, expr: ast.Choice, env, frame):
    """The chosen option's value; of several options, only the chosen one is evaluated."""
    name = _name(el, expr, env, frame)
    options = expr.options
    if not options:
        raise Fail(error("E0502", "`choice` needs at least one option", expr.span))
    if len(options) == 1:
        values = el.evaluate(options[0], env, frame)
        if values is POISON:
            return POISON
        if not isinstance(values, tuple) or not values:
            raise Fail(
                error(
                    "E0502",
                    "`choice(x)` with one option needs a non-empty list to choose from, "
                    f"but got {show(values)}",
                    options[0].span,
                    helps=(
                        "write the options out: `choice(3, 5, 7)`, or `choice(range(16, 65, 16))`",
                    ),
                )
            )
        values, labels = _shown(values)
        point = ChoicePoint(name, labels, values, expr.span)
    else:
        literal = all(isinstance(o, (ast.Number, ast.String, ast.Bool)) for o in options)
        values = tuple(o.value for o in options) if literal else None
        point = ChoicePoint(
            name,
            tuple(" ".join(o.span.text.split()) for o in options),
            values,
            expr.span,
            options=options,
        )
    if el.decider is None:
        raise Fail(
            error(
                "E0501",
                "this file is a search space: `choice(…)` needs a decision",
                expr.span,
                f"{len(point.labels)} options",
                notes=frame.notes(),
                helps=(
                    "run `cnnc search FILE` to explore it, or replace the choice with one option",
                ),
            )
        )
    index = el.decider.decide(point)
    if point.values is not None and len(options) == 1:
        return point.values[index]
    return el.evaluate(options[index], env, frame)


FLAT = frozenset({int, float, str, bool})  # option types whose equal tuples show alike
SHOWN: dict[tuple, tuple[tuple, tuple[str, ...]]] = {}  # (options, their types) -> shown once
SHOWN_MOST = 64  # lists of options remembered


def _shown(values: tuple) -> tuple[tuple, tuple[str, ...]]:
    """(the options, their labels), the same two tuples for every elaboration of one list of
    numbers or strings: a walk meets a choice of n options n times, and neither showing each
    option again nor holding a copy a member may cost n² (`choice(range(1, 10000))`)."""
    if not set(map(type, values)) <= FLAT:  # nested lists or blocks: shown each time
        return values, tuple(show(v) for v in values)
    key = (values, tuple(map(type, values)))  # 1 and 1.0 are equal, but show apart
    found = SHOWN.get(key)
    if found is None:
        if len(SHOWN) >= SHOWN_MOST:
            del SHOWN[next(iter(SHOWN))]
        found = SHOWN[key] = (values, tuple(show(v) for v in values))
    return found


def _name(el: El, expr: ast.Choice, env, frame) -> str:
    for kw in expr.kwargs:
        if kw.name != "name":
            raise Fail(
                error(
                    "E0401",
                    f"`choice` has no parameter `{kw.name}`",
                    kw.span,
                    helps=('`choice(a, b, …, name = "k")` is its only keyword',),
                )
            )
        value = el.evaluate(kw.value, env, frame)
        if not isinstance(value, str):
            raise Fail(error("E0404", "a choice's `name` must be a string", kw.value.span))
        return value
    let = el.b.binding
    suffix = _loop_suffix(env)
    key = (id(expr), frame.scope, suffix)
    if frame.scope and let is not None and _lone(el, let):
        name = _unique(el, f"{'.'.join(frame.scope)}.{let.name}{suffix}", key)
    else:
        path = _placed(el, expr, env, frame)
        name = _unique(el, path + suffix, key) if path is not None else None
    if name is not None:
        return name
    where = ".".join(frame.scope) or "network"
    return f"{where}@{expr.span.line}:{expr.span.col}{suffix}"


def _unique(el: El, name: str, key) -> str | None:
    """`name`, unless another choice of this elaboration took it first (then None)."""
    return name if el.b.choice_names.setdefault(name, key) == key else None


def _placed(el: El, expr: ast.Choice, env, frame) -> str | None:
    """The name a choice takes from the path of the layer it stands in or for, when a chain is
    about to apply that layer (`Builder.placing`): `<layer path>.<parameter>` for an argument of
    an op or block call, the layer's path for the choice itself; None where no path identifies it
    (a choice inside a list, an expression, a let of several choices, or between layers whose
    implicit names differ, `choice(MaxPool(2), AvgPool(2))` unlabelled)."""
    target, label = el.b.placing, None
    if isinstance(target, ast.Labeled):
        target, label = target.value, target.label
    if target is expr:
        base = label or _implicit_of_options(expr)
        if base is None:
            return None
        return ".".join(frame.scope + (label,) if label else el.b.peek(frame.scope, base))
    if label and isinstance(target, (ast.ListExpr, ast.Chain)):
        return _in_sequence(el, expr, target, frame.scope + (label,), env, frame)
    if not isinstance(target, ast.Call) or not isinstance(target.func, ast.Name):
        return None
    func = el.evaluate(target.func, env, frame)
    param = _parameter(func, target, expr)
    if param is None:
        return None
    path = frame.scope + (label,) if label else el.b.peek(frame.scope, _implicit(func))
    return ".".join(path) + "." + param


def _in_sequence(el: El, expr: ast.Choice, seq, prefix: tuple[str, ...], env, frame):
    """In a labelled sequence (`conv: [A, B]`, `branch: (A -> B)`), a member is numbered by its
    position (`apply_seq`) or named by its label: the choice's path, while every member before it
    is one layer (a nested sequence, or a name that may hold a list, would be flattened and shift
    the numbers)."""
    items = seq.items if isinstance(seq, ast.ListExpr) else seq.elements
    for j, item in enumerate(items):
        part, inner = (item.label, item.value) if isinstance(item, ast.Labeled) else (str(j), item)
        if inner is expr:
            return ".".join(prefix + (part,)) if _implicit_of_options(expr, same=False) else None
        call = isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name)
        if not call and not isinstance(inner, ast.Name):
            return None
        func = el.evaluate(inner.func if call else inner, env, frame)
        param = _parameter(func, inner, expr) if call else None
        if param is not None:
            return ".".join(prefix + (part,)) + "." + param
        if not (hasattr(func, "infer") or isinstance(func, BlockRef)):
            return None  # a function's result, or a name's value, may be a list
    return None


def _parameter(func, call: ast.Call, expr) -> str | None:
    """The parameter of `func` (an op, by its torch name; a block) that `expr` is passed to."""
    index = next((i for i, a in enumerate(call.args) if a is expr), None)
    keyword = next((k.name for k in call.kwargs if k.value is expr), None)
    if hasattr(func, "infer"):  # an op: its parameters as torch.nn names them
        if keyword is not None:
            return next((p.torch_name for p in func.params if p.name == keyword), None)
        limit = func.positional if func.positional is not None else len(func.params)
        return func.params[index].torch_name if index is not None and index < limit else None
    if isinstance(func, BlockRef):
        names = [p.name for p in func.definition.params or ()]
        if keyword is not None:
            return keyword if keyword in names else None
        return names[index] if index is not None and index < len(names) else None
    return None


def _implicit(func) -> str:
    """The name a layer of an op or block takes when unlabelled (`apply`): its lowercase name."""
    return func.name.lower()


def _implicit_of_options(expr: ast.Choice, same: bool = True) -> str | None:
    """The implicit name every option of an unlabelled choice of layers would take, if it is one:
    `conv` for `choice(Conv(8, 3), Conv(8, 5))`; None when they differ (unless not `same`: then
    any one) or are not named calls."""
    names = set()
    for option in expr.options:
        func = option.func if isinstance(option, ast.Call) else option
        if not isinstance(func, ast.Name):
            return None
        names.add(func.id.lower())
    if len(expr.options) < 2 or (same and len(names) > 1):
        return None
    return min(names)


def _lone(el: El, let) -> bool:
    """Whether the let's text holds one `choice` (counted once per let)."""
    known = el.b.choices_in.get(id(let))
    if known is None:
        known = el.b.choices_in[id(let)] = count(let.value)
    return known == 1


def count(expr) -> int:
    """How many `choice(…)`s the expression's text holds, nested ones included."""
    if isinstance(expr, ast.Choice):
        return 1 + sum(count(o) for o in expr.options) + sum(count(k.value) for k in expr.kwargs)
    total = 0
    for value in _children(expr):
        total += count(value)
    return total


def _children(expr):
    from cnnc.dsl import records

    if not records.is_record(expr):
        return ()
    out = []
    for f in records.fields(expr):
        value = getattr(expr, f.name)
        if isinstance(value, (list, tuple)):
            out += [v for v in value if records.is_record(v)]
            out += [x for v in value if isinstance(v, tuple) for x in v if records.is_record(x)]
        elif records.is_record(value):
            out.append(value)
    return out


def _loop_suffix(env) -> str:
    """`[i=2]` when the choice sits in a list comprehension: each iteration decides on its own."""
    loops = []
    e = env
    while e is not None:
        if e.loop_var is not None:
            loops.append(f"{e.loop_var}={show(e.vars[e.loop_var])}")
        e = e.parent
    return f"[{','.join(reversed(loops))}]" if loops else ""
