"""Graph → a concrete `.cnn` program: a search's winner written back with every choice resolved.

Input: a shaped `Graph` with no errors. Output: canonical `.cnn` text (printed by `dsl.format`) of one
network whose every layer is `label("module.path", Op(args))` in graph order, so that the program
elaborates to the same layers — same paths, ops, arguments and shapes, hence the same parameters and
state_dict keys. Runs of single-use layers become one chain; merges are written `concat(a, b)`,
`a + b`, `a * b` (merges are not modules, so their own node names may differ). `same_layers` checks
that contract for a rewritten graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnc.compiler.ops import Family, Lowering, merge_text
from cnnc.compiler.ops.text import call_text, literal
from cnnc.dsl import safefs
from cnnc.dsl.literals import comment_lines, escape_string
from cnnc.search.structured import decided_text, structured_text


@dataclass
class _Statement:
    """One `xN = head -> layer -> …` line being built (scratch, inside `to_cnn` only)."""

    head: str
    layers: list[str] = field(default_factory=list)
    last: int = -1  # the node whose value the statement's name holds

    def text(self) -> str:
        return " -> ".join([self.head, *self.layers])


def to_cnn(graph, name: str = "best", comments: tuple[str, ...] = ()) -> str:
    """The canonical text of a program with one network `name` equal to `graph` (see module doc)."""
    from cnnc.dsl.format import format_module
    from cnnc.dsl.parse import parse_text

    body = [f"input {_list(graph.input_type.shape)}"] + _statements(graph)
    body.append(f"return {_var(graph.output, graph)}")
    lines = comment_lines(comments)
    lines += [f"network {name} {{", *("    " + s for s in body), "}"]
    return format_module(parse_text("\n".join(lines) + "\n", path=f"{name}.cnn"))


def _statements(graph) -> list[str]:
    done: list[_Statement] = []
    open_: _Statement | None = None
    for node in graph.nodes_in_order():
        if node.spec.lowering is Lowering.INPUT:
            continue
        if open_ is not None and _continues(graph, open_, node):
            open_.layers.append(layer_text(node, graph))
            open_.last = node.id
            continue
        if open_ is not None:
            done.append(open_)
        open_ = _start(graph, node)
    if open_ is not None:
        done.append(open_)
    return [f"{_var(s.last)} = {s.text()}" for s in done]


def _continues(graph, statement: _Statement, node) -> bool:
    """A one-input layer fed only by the statement's last value extends its chain."""
    if node.spec.family is Family.MERGE or node.inputs != (statement.last,):
        return False
    return graph.users(statement.last) == [node.id]


def _start(graph, node) -> _Statement:
    if node.spec.family is Family.MERGE:
        head = merge_text(node.spec.written, [_var(i, graph) for i in node.inputs])
        infix = "{}" not in node.spec.written  # `(a + b)`: parenthesised before a `->`
        return _Statement(f"({head})" if infix else head, [], node.id)
    source = node.inputs[0]  # a second input (`like = t`) is written inside the call
    return _Statement(_var(source, graph), [layer_text(node, graph)], node.id)


def _var(node_id: int, graph=None) -> str:
    if graph is not None and graph.node(node_id).spec.lowering is Lowering.INPUT:
        return "in"
    return f"x{node_id}"


def layer_text(node, graph=None) -> str:
    """`label("layer1.0.conv1", Conv(64, 3, pad = 1, bias = false))`: the registry's `call_text`,
    a second input named as its `like` argument."""
    tensors = tuple(_var(i, graph) for i in node.inputs[1:]) if graph is not None else ()
    return f"label({escape_string(node.name)}, {call_text(node.spec, node.args, tensors)})"


def _list(values) -> str:
    return "[" + ", ".join(literal(v) for v in values) + "]"


def write_program(path, graph, name: str = "best", comments: tuple[str, ...] = ()) -> str:
    """Write `to_cnn(graph)` to `path` after checking that it elaborates back to the same layers.

    A rewrite that does not is a bug in cnnc: `InternalError`, with both graphs in the report.
    """
    from cnnc.dsl.diagnostics import InternalError

    text = to_cnn(graph, name, comments)
    problems = rebuild_problems(path, text, graph)
    if problems:
        raise InternalError(
            "the concrete program does not rebuild the architecture: " + problems[0],
            dump=f"{graph}\n--- program ---\n{text}",
        )
    safefs.write_text(path, text)
    return text


def write_member(
    path, space, member, name: str = "best", comments: tuple[str, ...] = ()
) -> tuple[str, str | None]:
    """Write `member` as its space: with the choices resolved in place (`structured.py`, formatted)
    where that can be done, else as the space's text as it is with a `decide { … }` alias
    (`decided_text`); each checked to rebuild the member's layers. Where neither does, the flat form
    (`write_program`). Returns the text and, for the flat form, why."""
    from pathlib import Path

    stem = Path(path).stem  # the default network of a file is the one named as the file
    network = stem if stem.isidentifier() else name
    why = f"the file already defines a network `{network}`, or the searched network is not its own"
    for write in (structured_text, decided_text):
        raw = write(space, member, network, comments)
        if raw is None:
            continue
        text, problem = _checked(path, raw, member.graph, formatted=write is structured_text)
        if problem is None:
            safefs.write_text(path, text)
            return text, None
        why = problem
    return write_program(path, member.graph, name, comments), why


def _checked(path, raw: str, graph, formatted: bool) -> tuple[str | None, str | None]:
    """(text, None) when `raw` (`formatted`, or as it is) rebuilds `graph`'s layers, else (None,
    why not)."""
    from cnnc.dsl.format import format_module
    from cnnc.dsl.parse import parse_text

    text = raw
    try:
        if formatted:
            text = format_module(parse_text(raw, path=str(path)))
    except Exception as exc:  # noqa: BLE001 - the flat form is always possible
        return None, f"the rewritten space does not parse: {exc}"
    problems = rebuild_problems(path, text, graph)
    return (text, None) if not problems else (None, problems[0])


def rebuild_problems(path, text: str, graph) -> list[str]:
    """Why `text`, read as the file `path`, does not elaborate to `graph`'s layers (empty: it does)."""
    from pathlib import Path

    from cnnc.compiler.frontend import elaborate_file
    from cnnc.dsl.diagnostics import CnncError

    try:
        again = elaborate_file(Path(path), text=text)
    except CnncError as exc:
        return [exc.diagnostics[0].message]
    if not again.ok:
        return ["; ".join(d.message for d in again.diagnostics if d.is_error)]
    return same_layers(graph, again.graph)


# ---------------------------------------------------------------------------------------------
# Checking the round trip


def same_layers(original, rewritten) -> list[str]:
    """Differences that matter between two graphs (empty when the rewrite is faithful): the layers'
    paths, ops, arguments and shapes in order, the input and output types, params and MACs."""
    from cnnc.compiler.analysis.summary import summarize

    problems = []
    if original.input_type != rewritten.input_type or original.output_type != rewritten.output_type:
        problems.append(
            f"input/output {original.input_type}→{original.output_type} became "
            f"{rewritten.input_type}→{rewritten.output_type}"
        )
    a, b = _layers(original), _layers(rewritten)
    if len(a) != len(b):
        problems.append(f"{len(a)} layers became {len(b)}")
    for x, y in zip(a, b):
        if (x.path, x.op, dict(x.args), x.type) != (y.path, y.op, dict(y.args), y.type):
            problems.append(f"`{x.name}` {x.op} {x.type} became `{y.name}` {y.op} {y.type}")
    s, t = summarize(original), summarize(rewritten)
    if (s.params, s.macs) != (t.params, t.macs):
        problems.append(f"params/MACs {s.params}/{s.macs} became {t.params}/{t.macs}")
    return problems


def _layers(graph) -> list:
    return [
        n
        for n in graph.nodes_in_order()
        if n.spec.lowering is not Lowering.INPUT and n.spec.family is not Family.MERGE
    ]
