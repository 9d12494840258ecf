"""Graph IR → standalone PyTorch source: one `nn.Module` class that needs only torch.

Contract of `to_source(graph)`:
- The text imports only `math` and `torch`. Its class (`class_name(graph.network)`) registers the
  same modules under the same names, in the same order, as `fx.to_graph_module(graph)`, and ends
  its `__init__` with a verbatim copy of `init.init_parameters`: so `Cls(seed=s)` and
  `to_graph_module(graph, seed=s)` have equal state_dicts and give identical outputs.
- `forward` is straight-line: one line per IR node, except that a container whose modules form a
  plain chain (`downsample`, VGG's `features`) is built as one `nn.Sequential(…)` and called in one
  line. Every line carries the inferred shape (`x = self.layer2[0].conv1(x)  # [N, 128, 28, 28]`)
  and each block instance opens with a comment naming it (`# layer2.0: Bottleneck(128, …)`).
- Nothing from the `.cnn` file reaches the text unescaped (STYLE §13): literals are `repr`s, a
  module name is written `.name` only when `names.is_attribute` allows it (else `getattr(…, 'n')`
  and `add_module('n', …)`), and titles, labels and file names in comments and docstrings pass
  through `plain` (one line, no quote or backslash that could end the string).
- Values are named from a small pool (`x`, `y`, `z`, …): a result reuses the name of an input that
  dies at that line, so the main path stays `x` and a branch reads `y`.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from cnnc.compiler.analysis.summary import summarize
from cnnc.compiler.ir import Graph, Node
from cnnc.compiler.lower import init, layers, modules
from cnnc.compiler.lower.naming import check_names, class_name
from cnnc.compiler.lower.walk import Walk
from cnnc.compiler.names import is_attribute
from cnnc.compiler.ops import Lowering, merge_text
from cnnc.dsl.numbers import si

Path = tuple[str, ...]
_NAMES = ("x", "y", "z", "w", "v", "u", "t", "s")
_INDENT = " " * 8


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each module lives in the generated class."""

    children: Mapping[Path, tuple[str, ...]]  # container path → child names, in registration order
    chains: Mapping[Path, tuple[int, ...]]  # container built as one nn.Sequential → its node ids

    def indexed(self, path: Path) -> bool:
        """A container whose children are 0, 1, … in order: an nn.Sequential read as `[i]`."""
        names = self.children.get(path, ())
        return bool(names) and names == tuple(str(i) for i in range(len(names)))


@dataclass(frozen=True, slots=True)
class Statement:
    """One line of `forward`: a node, or a whole chain container."""

    nodes: tuple[Node, ...]
    path: Path  # the module path it calls (the chain's container for a chain)

    @property
    def out(self) -> Node:
        return self.nodes[-1]


def frozen_lines(graph: Graph) -> list[str]:
    """A derived network's `freeze`, as `requires_grad_(False)` on those modules' own parameters."""
    if not graph.frozen:
        return []
    names = tuple(".".join(p) for p in sorted(graph.frozen) if p)
    return [
        f"{_INDENT}for name in {names!r}:  # frozen: not trained",
        f"{_INDENT}    for p in self.get_submodule(name).parameters(recurse=False):",
        f"{_INDENT}        p.requires_grad_(False)\n",
    ]


def to_source(graph: Graph, seed: int | None = None, origin: str = "") -> str:
    """See the module docstring. `seed` becomes the constructor's default; `origin` is cited."""
    if not graph.ok:
        raise ValueError(f"cannot lower `{graph.network}`: the graph has errors")
    check_names(graph)
    layout = plan_layout(graph)
    name = class_name(graph.network)
    network = in_docstring(graph.network)
    parts = [
        header(graph, name, origin),
        f"class {name}(nn.Module):",
        f'    """`{network}` as cnnc elaborated it; module names are its labels."""\n',
        f"    def __init__(self, seed: int | None = {seed!r}):",
        f"{_INDENT}super().__init__()",
        *init_lines(graph, layout),
        f"{_INDENT}init_parameters(self, seed)\n",
        *frozen_lines(graph),
        *forward_lines(graph, layout),
        "\n",
        inspect.getsource(init.init_parameters),
        *custom_classes(graph),
    ]
    return "\n".join(parts)


def custom_classes(graph: Graph) -> list[str]:
    """The source of each class of lower/layers.py the network uses, once, in first-use order."""
    ctors = [
        modules.layer(graph, n).ctor
        for n in graph.nodes_in_order()
        if modules.kind(n) is Lowering.MODULE
    ]
    used = dict.fromkeys(c.rpartition(".")[2] for c in ctors if "." in c)
    return ["\n" + inspect.getsource(getattr(layers, name)) for name in used]


def header(graph: Graph, name: str, origin: str) -> str:
    s = summarize(graph)
    source = f" from `{in_docstring(origin)}`" if origin else ""
    network = in_docstring(graph.network)
    return f'''"""`{network}`, compiled by cnnc{source}. Standalone: needs only torch.

    model = {name}()  # weights as `cnnc.load` makes them; {name}(seed=0) is reproducible
    {usage(s)}

{s.params:,} parameters, {si(s.macs, largest="G")} multiply-accumulates per sample at {sizes(s)}.
The shape comments are for that input size; the batch size N is free.
"""

from __future__ import annotations

import math

import torch
from torch import nn

'''


def usage(s) -> str:
    """The docstring's call line: `y = model(x)  # x: [N, 3, 224, 224] → y: [N, 1000]`."""
    if s.single:
        return f"y = model(x)  # x: {batched(s.input)} → y: {batched(s.output)}"
    names = [n for n, _ in s.inputs]
    ins = ", ".join(f"{n}: {batched(shape)}" for n, shape in s.inputs)
    outs = ", ".join(
        f"{k}: {batched(shape)}" if k is not None else batched(shape) for k, _, shape in s.outputs
    )
    return f"y = model({', '.join(names)})  # {ins} → {outs}"


def sizes(s) -> str:
    return (
        str(list(s.input)) if s.single else ", ".join(f"{n} {list(shape)}" for n, shape in s.inputs)
    )


def batched(shape) -> str:
    return "[" + ", ".join(["N", *map(str, shape)]) + "]"


# ---------------------------------------------------------------------------------------------
# Layout


def module_nodes(graph: Graph) -> list[Node]:
    """The nodes that own something in `__init__`: modules, and LayerScale's bare parameters."""
    return [
        n
        for n in graph.nodes_in_order()
        if modules.kind(n) in (Lowering.MODULE, Lowering.PARAMETER)
    ]


def plan_layout(graph: Graph) -> Layout:
    children: dict[Path, list[str]] = {}
    for node in module_nodes(graph):
        for depth in range(len(node.path) - (modules.kind(node) is Lowering.PARAMETER)):
            names = children.setdefault(node.path[:depth], [])
            if node.path[depth] not in names:
                names.append(node.path[depth])
    frozen = {path: tuple(names) for path, names in children.items()}
    chains = {path: ids for path in frozen if path and (ids := chain_ids(graph, path, frozen))}
    return Layout(frozen, chains)


def chain_ids(graph: Graph, path: Path, children) -> tuple[int, ...] | None:
    """The node ids of container `path` when its modules are 0, 1, … each feeding only the next."""
    inside = [n for n in graph.nodes_in_order() if n.path[: len(path)] == path]
    names = tuple(str(i) for i in range(len(inside)))
    if children[path] != names or any(n.path != path + (name,) for n, name in zip(inside, names)):
        return None
    if any(modules.kind(n) is not Lowering.MODULE for n in inside):
        return None
    if any(
        len(n.inputs) != 1 for n in inside
    ):  # a resize to another tensor's size is called on two
        return None
    for prev, nxt in itertools.pairwise(inside):
        if nxt.inputs != (prev.id,) or graph.users(prev.id) != [nxt.id] or graph.is_output(prev.id):
            return None
    return tuple(n.id for n in inside)


def access(layout: Layout, path: Path) -> str:
    """`self.layer1[0].conv1`: attribute, index or getattr, as each container allows."""
    text = "self"
    for depth, part in enumerate(path):
        if depth > 0 and part.isascii() and part.isdigit() and layout.indexed(path[:depth]):
            text += f"[{int(part)}]"
        elif is_attribute(part):
            text += f".{part}"
        else:
            text = f"getattr({text}, {part!r})"
    return text


# ---------------------------------------------------------------------------------------------
# __init__


def init_lines(graph: Graph, layout: Layout) -> list[str]:
    lines: list[str] = []
    made: set[Path] = {()}
    for node in module_nodes(graph):
        chain = next((p for p in layout.chains if node.path[: len(p)] == p), None)
        target = chain if chain is not None else node.path
        if target in made:
            continue
        for depth in range(1, len(target)):
            if target[:depth] not in made:
                lines += comment(graph, target[:depth])
                lines.append(
                    register(layout, target[:depth], container_ctor(layout, target[:depth]))
                )
                made.add(target[:depth])
        if chain is not None:
            lines += comment(graph, chain)
        if modules.kind(node) is Lowering.PARAMETER:
            lines.append(parameter_line(layout, node))
        else:
            value = sequential(graph, layout, chain) if chain else ctor(graph, node)
            lines.append(register(layout, target, value))
        made.add(target)
    return lines


def comment(graph: Graph, path: Path) -> list[str]:
    scope = graph.scopes.get(path)
    if scope is None or scope.kind != "block":
        return []
    return [heading(graph, path)]


def heading(graph: Graph, path: Path, width: int = 100) -> str:
    """`        # layer2.0: Bottleneck(128, stride = 2)`, cut to `width` columns."""
    text = f"{_INDENT}# {plain('.'.join(path))}: {plain(graph.scopes[path].title)}"
    return text if len(text) <= width else text[: width - 2] + "…)"


def container_ctor(layout: Layout, path: Path) -> str:
    return "nn.Sequential()" if layout.indexed(path) else "nn.Module()"


def register(layout: Layout, path: Path, value: str) -> str:
    """The line that puts `value` at `path` (its parent exists)."""
    parent, name = path[:-1], path[-1]
    if parent and layout.indexed(parent):
        return f"{_INDENT}{access(layout, parent)}.append({value})"  # appended in order: 0, 1, …
    if is_attribute(name):
        return f"{_INDENT}{access(layout, path)} = {value}"
    return f"{_INDENT}{access(layout, parent)}.add_module({name!r}, {value})"


def ctor(graph: Graph, node: Node) -> str:
    spec = modules.layer(graph, node)
    args = [literal(a) for a in spec.args] + [f"{k}={literal(v)}" for k, v in spec.kwargs.items()]
    return f"{class_text(spec.ctor)}({', '.join(args)})"


def class_text(ctor: str) -> str:
    """`nn.Conv2d`, or the bare name of a class of lower/layers.py (copied into the file)."""
    return ctor.rpartition(".")[2] if "." in ctor else f"nn.{ctor}"


def parameter_line(layout: Layout, node: Node) -> str:
    """`self.gamma = nn.Parameter(…)`, or `register_parameter('0', …)` where the label is no
    identifier (a layer of an unlabelled list: `getattr(self, '0') = …` would not compile)."""
    shape, value = modules.bare_parameter(node)
    made = f"nn.Parameter(torch.full({literal(shape)}, {literal(value)}))"
    parent, name = node.path[:-1], node.path[-1]
    if is_attribute(name):
        return f"{_INDENT}{access(layout, node.path)} = {made}"
    return f"{_INDENT}{access(layout, parent)}.register_parameter({name!r}, {made})"


def sequential(graph: Graph, layout: Layout, path: Path) -> str:
    items = [
        f"{_INDENT}    {ctor(graph, graph.node(i))},  # {plain(graph.node(i).path[-1])}: "
        f"{batched(graph.node(i).type.shape)}"
        for i in layout.chains[path]
    ]
    return "nn.Sequential(\n" + "\n".join(items) + f"\n{_INDENT})"


def literal(value) -> str:
    """Python text that evaluates to `value`; only plain data is accepted."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"  # `inf` and `nan` are no Python literals
    if isinstance(value, (tuple, list)):
        items = [literal(v) for v in value]
        if isinstance(value, list):
            return "[" + ", ".join(items) + "]"
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    raise TypeError(f"no literal for a {type(value).__name__} in generated source")


def in_docstring(text: str) -> str:
    return plain(text, quotes='"')


def plain(text: str, quotes: str = "") -> str:
    """`text` made safe inside a comment, or with `quotes='"'` inside a docstring: one line of
    printable characters, backslashes and those quotes escaped (nothing can end the string or
    start a line of code)."""
    out = []
    for char in text:
        if char == "\\" or char in quotes:
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:  # newlines, ESC, surrogates, line separators: their escape, not the character
            out.append(ascii(char)[1:-1])
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# forward


def statements(graph: Graph, layout: Layout) -> list[Statement]:
    """Forward's lines in IR order; a chain container's line sits at its last node."""
    out, chain_of = [], {i: p for p, ids in layout.chains.items() for i in ids}
    for node in graph.nodes_in_order():
        if modules.kind(node) is Lowering.INPUT:
            continue
        path = chain_of.get(node.id)
        if path is None:
            out.append(Statement((node,), node.path))
        elif layout.chains[path][-1] == node.id:
            out.append(Statement(tuple(graph.node(i) for i in layout.chains[path]), path))
    return out


def forward_lines(graph: Graph, layout: Layout) -> list[str]:
    names = allocate_names(graph, statements(graph, layout))
    return SourceWalk(graph, layout, names).run()


class SourceWalk(Walk):
    """The IR as the lines of `forward`: each step's value is the variable it assigns (`names`), a
    chain container's nodes one line at the last of them, a block instance opened by its heading."""

    def __init__(self, graph: Graph, layout: Layout, names: dict[int, str]):
        super().__init__(graph)
        self.layout, self.names = layout, names
        self.chain_of = {i: p for p, ids in layout.chains.items() for i in ids}
        self.lines = [signature(graph)]
        self.open_blocks: tuple[Path, ...] = ()

    def output(self, values: dict) -> list[str]:
        return [*self.lines, f"{_INDENT}return {returned(self.graph, self.names)}"]

    def input(self, node: Node) -> str:
        return self.names[node.id]

    def module(self, node: Node, args: list) -> str | None:
        path = self.chain_of.get(node.id)
        if path is None:
            return self.line(
                node.path, node, f"{access(self.layout, node.path)}({', '.join(args)})"
            )
        ids = self.layout.chains[path]
        if ids[-1] != node.id:
            return None  # inside a chain: only the next module of the chain reads it
        ins = ", ".join(self.names[i] for i in self.graph.node(ids[0]).inputs)
        return self.line(path, node, f"{access(self.layout, path)}({ins})")

    def parameter(self, node: Node, args: list) -> str:
        return self.line(node.path, node, f"{args[0]} * {access(self.layout, node.path)}")

    def cat(self, node: Node, args: list) -> str:
        return self.line(node.path, node, merge_text(node.spec.source, args))

    def accumulate(self, node: Node, args: list, target: int) -> str:
        """`y.add_(x)`: the sum overwrites y, which nothing else reads."""
        others = args[:target] + args[target + 1 :]
        text = args[target] + "".join(f".{node.spec.accumulate}({a})" for a in others)
        return self.line(node.path, node, text)

    def fold(self, node: Node, args: list, function: str) -> str:
        return self.line(node.path, node, merge_text(node.spec.source, args))

    def line(self, path: Path, node: Node, expr: str) -> str:
        """`x = expr  # [N, …]` for the statement at `path`, after the headings of the block
        instances it opens (a blank line between sections, none right after `def forward`)."""
        blocks = enclosing_blocks(self.graph, path)
        new = [b for b in blocks if b not in self.open_blocks]
        if new:
            if len(self.lines) > 1:
                self.lines.append("")
            self.lines += [heading(self.graph, b) for b in new]
        self.open_blocks = blocks
        name = self.names[node.id]
        self.lines.append(f"{_INDENT}{name} = {expr}  # {batched(node.type.shape)}")
        return name


def signature(graph: Graph) -> str:
    """`def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, 3, 224, 224]`; one argument
    per input, by name, and a tuple or dict result for a network with several inputs/outputs."""
    if graph.single:
        return f"    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: {batched(graph.input_type.shape)}"
    args = ", ".join(f"{graph.input_name(i)}: torch.Tensor" for i in graph.inputs)
    result = {"tensor": "torch.Tensor", "dict": "dict[str, torch.Tensor]"}.get(
        graph.output_kind, f"tuple[{', '.join(['torch.Tensor'] * len(graph.outputs))}]"
    )
    shapes = ", ".join(
        f"{graph.input_name(i)}: {batched(graph.node(i).type.shape)}" for i in graph.inputs
    )
    return f"    def forward(self, {args}) -> {result}:  # {shapes}"


def returned(graph: Graph, names: dict[int, str]) -> str:
    if graph.output_kind == "tuple":
        return (
            "("
            + ", ".join(names[i] for _, i in graph.outputs)
            + ("," if len(graph.outputs) == 1 else "")
            + ")"
        )
    if graph.output_kind == "dict":
        return "{" + ", ".join(f"{str(k)!r}: {names[i]}" for k, i in graph.outputs) + "}"
    return names[graph.output]


def enclosing_blocks(graph: Graph, path: Path) -> tuple[Path, ...]:
    prefixes = (path[:d] for d in range(1, len(path)))
    return tuple(p for p in prefixes if p in graph.scopes and graph.scopes[p].kind == "block")


def allocate_names(graph: Graph, stmts: list[Statement]) -> dict[int, str]:
    """Give each value a variable: the best name its line frees, else the first free one."""
    last_use = {}
    for index, stmt in enumerate(stmts):
        for i in stmt.nodes[0].inputs:
            last_use[i] = index
    for _, out in graph.outputs:
        last_use[out] = len(stmts)
    names = {i: graph.input_name(i) for i in graph.inputs}
    kept = set() if graph.single else set(names.values())  # a named input's name is not reused
    for index, stmt in enumerate(stmts):
        live = {names[i] for i, last in last_use.items() if i in names and last > index}
        freed = {names[i] for i in stmt.nodes[0].inputs if last_use[i] == index} - live - kept
        names[stmt.out.id] = (
            min(freed, key=rank) if freed else next(n for n in pool() if n not in live)
        )
    return names


def pool():
    yield from _NAMES
    k = 1
    while True:
        yield f"x{k}"
        k += 1


def rank(name: str) -> int:
    return _NAMES.index(name) if name in _NAMES else len(_NAMES) + int(name[1:])
