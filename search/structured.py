"""A member of a space written as the space itself: its text with each `choice(…)` replaced by the
option the member took — same blocks, imports, labels and comments, so it reads like the space.

Input: a `Space` and a `Member` (the replay of a trial's decisions). Output: `.cnn` text (not yet
formatted: `concrete.write_member` formats and checks it) whose default network `best` is the
member, or None when the member cannot be written so (then the caller writes the flat form).

Contracts:
- a choice met once, or met several times with one option, becomes that option's text; a choice
  named by a constant takes its decision's option wherever it stands; one never met (in a branch
  the member does not take) becomes its first option, never evaluated;
- a named choice met several times with different options (`choice(3, 5, name = "k" + str(i))` in
  a loop) becomes `if NAME == "k0" then 3 else 5`, NAME being the choice's own name expression;
- `choice(range(…))` / `choice(list)` becomes the chosen value as a literal;
- the network the search elaborated is bound as `network best = Net(arg = value, …)` (its
  `--arg`s and the `classes` bound from the data), and its `input` statement gets the data's shape;
- None when a choice lies in an imported file (that file would need rewriting too), when an
  unnamed choice differs between its uses, or when the file already has a network `best`.

Where the choices cannot be replaced in place, `decided_text` states the member as its space with
its decisions given: the space's text as it is (only its `input` statement given the data's shape;
not reformatted, and the comments go below it, since a choice's place can be part of its name)
and one more item, `network best = Net(arg = value, …) decide { "name": option, … }`, each option
written as the choice writes it (a value of `choice(range(…))` as a literal), which elaboration
matches back to the option (`compiler/elaborate/decided.py`). A choice in an imported file is
kept so too (the import stays; the caller's rebuild check finds whether it resolves where the text
is written). None only when the file already has a network `best`, the searched network is not one
the file defines, or a chosen value has no literal (a layer taken from `choice(list)`).
"""

from __future__ import annotations

import re

from cnnc.dsl import ast, records
from cnnc.dsl.flat import flat
from cnnc.dsl.literals import comment_lines, escape_string, write_literal

SIMPLE = re.compile(
    r'^(?:[A-Za-z_][\w.]*(?:\(.*\))?|-?[\d.]+(?:e[+-]?\d+)?|"[^"]*"|\[.*\])$', re.DOTALL
)


def structured_text(
    space, member, name: str = "best", comments: tuple[str, ...] = ()
) -> str | None:
    module = space.program.main_module
    choices = [n for n in _walk(module) if isinstance(n, ast.Choice)]
    if not module.items:
        return None
    source = module.items[0].span.file
    if any(p.span is None or p.span.file is not source for p in member.points):
        return None  # a choice in an imported file, or one without a place in the main file
    if _has_network(module, name):
        return None
    met = _met(member)
    edits = {}
    for node in choices:
        text = _replacement(
            node, met.get((node.span.start, node.span.end)) or _shared(node, member)
        )
        if text is None:
            return None
        edits[(node.span.start, node.span.end)] = text
    network = _network(space, module)
    if network is None:
        return None
    shape = _input_edit(network, space.input_shape)
    if shape:
        edits[shape[0]] = shape[1]
    body = _render(source.text, 0, len(source.text), edits)
    head = "".join(line + "\n" for line in comment_lines(comments))  # escaped, one line each
    return f"{head}{body.rstrip()}\n\n{_alias(name, network.name, space.args)}\n"


def decided_text(space, member, name: str = "best", comments: tuple[str, ...] = ()) -> str | None:
    """The space's text and `network best = … decide { … }` (module docstring), or None."""
    module = space.program.main_module
    if not module.items or _has_network(module, name):
        return None
    network = _network(space, module)
    if network is None:
        return None
    source = module.items[0].span.file
    shape = _input_edit(network, space.input_shape)
    body = _render(source.text, 0, len(source.text), dict([shape]) if shape else {})
    clause = _decisions(member)
    if clause is None:
        return None
    # below the space, so that its lines keep their numbers (they name choices: `stage1.0@12:20`)
    head = "".join(line + "\n" for line in comment_lines(comments))  # escaped, one line each
    member_text = _canonical(f"{head}{_alias(name, network.name, space.args)} {clause}\n")
    return None if member_text is None else f"{body.rstrip()}\n\n{member_text}"


def _canonical(text: str) -> str | None:
    """`text` (comments and one alias) as the formatter prints it; None if it does not parse."""
    from cnnc.dsl.diagnostics import CnncError
    from cnnc.dsl.format import format_module
    from cnnc.dsl.parse import parse_text

    try:
        return format_module(parse_text(text, path="best.cnn"))
    except CnncError:
        return None


def _decisions(member) -> str | None:
    """`decide { "name": option, … }`, in the order the decisions were met; None when an option
    cannot be written (a layer taken from `choice(list)`)."""
    entries = []
    for point, (decision, index) in zip(member.points, member.picks):
        written = _written(point, index)
        if written is None:
            return None
        entries.append(f"    {escape_string(decision)}: {written},")
    return "decide {\n" + "\n".join(entries) + "\n}"


def _written(point, index: int) -> str | None:
    """Option `index` as .cnn source: as the choice writes it, or a chosen value as a literal."""
    if len(point.options) > 1:
        return flat(point.options[index])
    try:
        return write_literal(point.values[index])
    except (TypeError, ValueError):  # a layer or a non-finite number: no literal says it
        return None


def _has_network(module, name: str) -> bool:
    return any(
        item.name == name
        for item in module.items
        if isinstance(item, (ast.NetworkDef, ast.NetworkAlias))
    )


def _walk(node):
    """Every AST node under `node`, parents before children."""
    if records.is_record(node) and not isinstance(node, type):
        if isinstance(node, (ast.Expr, ast.Module)) or hasattr(node, "span"):
            yield node
        for f in records.fields(node):
            if f.name not in ("span", "comments", "label_span", "name_span"):
                yield from _walk(getattr(node, f.name))
    elif isinstance(node, (list, tuple)):
        for x in node:
            yield from _walk(x)


def _met(member) -> dict[tuple[int, int], list]:
    """(start, end) of a choice → [(decision name, option index, point)] for each decision it made."""
    out: dict[tuple[int, int], list] = {}
    for point, (decision, index) in zip(member.points, member.picks):
        out.setdefault((point.span.start, point.span.end), []).append((decision, index, point))
    return out


def _shared(node: ast.Choice, member) -> list:
    """A choice named by a constant met first elsewhere (one decision in several places) takes
    that decision's option; [] when it was never met."""
    name = next((kw.value for kw in node.kwargs if kw.name == "name"), None)
    if not isinstance(name, ast.String):
        return []
    for point, (decision, index) in zip(member.points, member.picks):
        if decision == name.value:
            return [(decision, index, point)]
    return []


def _replacement(node: ast.Choice, met: list):
    """The text that replaces `node` (module docstring), with placeholders for nested choices."""
    indices = {i for _, i, _ in met}
    if len(indices) <= 1:
        index = next(iter(indices), 0)
        return _option(node, index, met[0][2] if met else None)
    name = next((kw.value for kw in node.kwargs if kw.name == "name"), None)
    if name is None:
        return None
    options = [_option(node, i, p) for _, i, p in met]
    if any(o is None for o in options):
        return None
    options = [["(", *o, ")"] if isinstance(o[0], _Span) else o for o in options]
    key = _Span(name.span.start, name.span.end)
    text = options[-1]
    for (decision, _, _), option in zip(reversed(met[:-1]), reversed(options[:-1])):
        text = ["if ", key, f" == {escape_string(decision)} then ", option, " else ", text]
    return ["(", *_flat(text), ")"]


@records.record
class _Span:
    """Source text to copy (with its own nested choices replaced) inside a replacement."""

    start: int
    end: int


def _option(node: ast.Choice, index: int, point):
    """Option `index` of `node`: its source (nested choices replaced), or a value as a literal."""
    if len(node.options) == 1:  # choice(range(…)) or choice(list): the value itself
        if point is None or point.values is None:
            return None
        value = point.values[index]
        if not isinstance(value, (bool, int, float, str, tuple)) and value is not None:
            return None
        return [write_literal(value)]
    option = node.options[index]
    return [_Span(option.span.start, option.span.end)]


def _flat(parts):
    for p in parts:
        if isinstance(p, list):
            yield from _flat(p)
        else:
            yield p


def _render(text: str, start: int, end: int, edits: dict) -> str:
    """`text[start:end]` with every outermost edited span inside it replaced."""
    out, at = [], start
    for s, e in sorted(k for k in edits if start <= k[0] and k[1] <= end and k != (start, end)):
        if s < at:
            continue  # inside an edit already made
        out.append(text[at:s])
        out.append(_parts(text, edits[(s, e)], edits))
        at = e
    out.append(text[at:end])
    return "".join(out)


def _parts(text: str, parts, edits: dict) -> str:
    if isinstance(parts, str):
        return parts
    pieces = [
        p if isinstance(p, str) else _render(text, p.start, p.end, edits) for p in _flat(parts)
    ]
    joined = "".join(pieces)
    if (
        len(parts) == 1
        and not isinstance(parts[0], str)
        and not SIMPLE.match(" ".join(joined.split()))
    ):
        return f"({joined})"
    return joined


def _network(space, module):
    from cnnc.compiler.elaborate import default_network

    wanted = space.network or default_network(space.program)
    return next(
        (i for i in module.items if isinstance(i, ast.NetworkDef) and i.name == wanted), None
    )


def _input_edit(network, shape):
    """((start, end), text) that gives the network's `input` statement the data's shape."""
    if shape is None:
        return None
    for stmt in network.body:
        if isinstance(stmt, ast.InputDecl):
            return (stmt.value.span.start, stmt.value.span.end), "[" + ", ".join(
                map(str, shape)
            ) + "]"
    return None


def _alias(name: str, network: str, args) -> str:
    if not args:
        return f"network {name} = {network}"
    given = ", ".join(f"{k} = {_arg(v)}" for k, v in args.items())
    return f"network {name} = {network}({given})"


def _arg(value) -> str:
    """An `--arg` value: its .cnn source (an AST expression), or a plain value as a literal."""
    span = getattr(value, "span", None)
    return f"({span.text})" if span is not None and span.file is not None else write_literal(value)
