"""AST → Graph: evaluate expressions, instantiate blocks, unroll repeats, decide conditionals and
infer every node's shape as it is made.

Every node of the returned graph has a concrete `TensorType` or `ERROR`, and one diagnostic explains
each node where inference failed (`Node.error`). Errors that stop a statement (an unknown name, a
wrong argument) poison that statement's value; independent statements and branches go on, so several
mistakes are all reported, and one mistake gives one message.

Naming (the contract lowering relies on): a label names what it labels; the unlabelled members of a
sequence (a list of layers, or a parenthesised chain of layers) are numbered 0, 1, … as nn.Sequential
numbers them, nested unlabelled sequences flattened; other unlabelled layers take their op's or
block's lowercase name, with `_1`, `_2`, … when repeated in one scope.

The room's other files, each one concern: `scopes` (names), `evaluate` (expressions), `bodies`
(statements, networks), `choices` (decisions), `builtins`, `values`, `coerce` (op arguments),
`unused` (static warnings), `limits` (the budgets a file may spend), `budget` (their checks during
evaluation) and `estimate` (lower bounds on nodes, to refuse a runaway before building it). They,
and this file, are the only readers of the AST.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from cnnc.compiler import bodies, estimate, evaluate, limits, scopes, unused
from cnnc.compiler.ir import Graph, Instance, Node, Scope
from cnnc.compiler.names import path_problem
from cnnc.compiler.names import usable as usable_name
from cnnc.compiler.ops import REGISTRY, OpError
from cnnc.compiler.types import ERROR, TensorType, is_error
from cnnc.compiler.values import (POISON, BlockLayer, BlockRef, LabeledLayer, MergeLayer, OpLayer, is_layer,
                                  Partial, SeqLayer, Tensor, show, type_name)
from cnnc.dsl import ast
from cnnc.dsl.diagnostics import CnncError, Diagnostic, Label, error
from cnnc.dsl.imports import Program
from cnnc.dsl.source import Span


def numbered(name: str, k: int) -> str:
    """The k-th other name for a taken implicit name: `relu_1`; a taken sequence number counts on
    (`0` → `3` after a first sequence took 0…2), since `0_1` could not name a module."""
    return str(int(name) + k) if name.isdigit() else f"{name}_{k}"


class Fail(Exception):
    """Stops the current statement; its diagnostic is recorded by the statement's catcher."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


class Abort(Fail):
    """Stops the whole elaboration (the node bound was exceeded)."""


@dataclass(frozen=True)
class Frame:
    """Where layers are being applied: the label path and the block instances around it."""

    scope: tuple[str, ...] = ()
    instances: tuple[Instance, ...] = ()
    blocks: tuple[str, ...] = ()  # block names on the instantiation stack (recursion check)

    def notes(self) -> tuple[str, ...]:
        return tuple(
            f"in `{'.'.join(i.path)}`, an instance of `{i.call}`"
            + (f" made at {i.span.where()}" if i.span is not None else "")
            for i in reversed(self.instances)
        )


@dataclass(frozen=True)
class Elaboration:
    graph: Graph | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


@dataclass
class Builder:
    """Scratch state of one elaboration: the nodes made so far and the names taken per scope."""

    nodes: list[Node] = field(default_factory=list)
    taken: dict[tuple[str, ...], dict[str, bool]] = field(default_factory=dict)  # name → explicit?
    # the last `_k` suffix given per (scope, base name), so numbering resumes instead of rescanning
    # `relu_1`, `relu_2`, … from the start (which made a chain of n layers cost n² steps)
    suffix: dict[tuple[tuple[str, ...], str], int] = field(default_factory=dict)
    scopes: list[Scope] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # budgets (`limits`): evaluation depth now, comprehension steps and list items made so far
    depth: int = 0
    steps: int = 0
    items: int = 0
    node_bounds: dict = field(default_factory=dict)  # block → at least how many nodes it makes
    defaults: set = field(default_factory=set)  # (block, parameter) whose default is being evaluated
    bound_ops: dict = field(default_factory=dict)  # `evaluate.bind_op_cached`
    usable: dict = field(default_factory=dict)  # (implicit name, top level?) → the name made usable

    def room(self) -> int:
        """Nodes that may still be made."""
        return limits.MAX_NODES - len(self.nodes)

    def need(self, nodes: int, what: str, span: Span | None, frame: Frame) -> None:
        """Refuse, before building anything, what needs more nodes than the budget has left."""
        if nodes > self.room():
            raise Fail(error("E0701", f"{what} needs at least {nodes:,} nodes, more than the "
                             f"{limits.MAX_NODES:,} a network may have", span, "expands too far",
                             notes=frame.notes()[:3], helps=(NODES_HELP,)))

    def claim(self, scope: tuple[str, ...], name: str, explicit: bool, span: Span | None) -> tuple[str, ...]:
        if "." in name:  # a dotted label from `label("a.b", …)`: the last part is the name
            *parts, name = name.split(".")
            scope = scope + tuple(parts)
        if not explicit:  # a block's or op's own name, e.g. `class` of `block Class`: made usable
            key = (name, not scope)
            if key not in self.usable:
                self.usable[key] = usable_name(name, not scope)
            name = self.usable[key]
        elif (problem := path_problem(scope + (name,))) is not None:  # a label: E0208, E0209
            raise Fail(error(problem.code, problem.message, span, "the label of this layer",
                             helps=(problem.help,)))
        names = self.taken.setdefault(scope, {})
        if explicit:
            if name in names:
                where = ".".join(scope) or "the network"
                raise Fail(error("E0204", f"the label `{name}` is used twice in `{where}`", span,
                                 "used again here", helps=("give each layer of a scope its own label",)))
            names[name] = True
            return scope + (name,)
        candidate, k = name, self.suffix.get((scope, name), 0)
        if k or candidate in names:
            k += 1
            candidate = numbered(name, k)
            while candidate in names:
                k += 1
                candidate = numbered(name, k)
            self.suffix[(scope, name)] = k
        names[candidate] = False
        return scope + (candidate,)

    def add(self, op: str, args: dict, inputs, type_, path, span, frame: Frame, err=None) -> Tensor:
        if len(self.nodes) >= limits.MAX_NODES:
            raise Abort(error("E0701", f"the network expands to more than {limits.MAX_NODES:,} nodes", span,
                              "while expanding this", notes=frame.notes()[:3], helps=(NODES_HELP,)))
        node = Node(len(self.nodes), op, MappingProxyType(dict(args)), tuple(t.node for t in inputs), type_,
                    path, span, frame.instances, err)
        self.nodes.append(node)
        return Tensor(node.id, type_)


NODES_HELP = "check repeat counts and list lengths; real networks have a few thousand nodes"
DEPTH_HELP = "build repeats with a list, `[B(i) for i in range(n)]`, rather than by nesting"


class Elaborator:
    """Applies layers to tensors, building the graph. Expression evaluation lives in `evaluate`."""

    def __init__(self, decider=None):
        self.b = Builder()
        self.decider = decider
        self.derivation = None  # a derived network's clauses (compiler.derive), while elaborating one

    # -- diagnostics ---------------------------------------------------------------------------
    def report(self, diagnostic: Diagnostic) -> None:
        self.b.diagnostics.append(diagnostic)

    def guard(self, thunk, on_error=POISON):
        """Run `thunk`; on `Fail`, record it and return `on_error` (Abort propagates)."""
        try:
            return thunk()
        except Abort:
            raise
        except Fail as failure:
            self.report(failure.diagnostic)
            return on_error

    # -- application ---------------------------------------------------------------------------
    def apply(self, layer, x, frame: Frame, name: str | None = None, explicit: bool = False,
              span: Span | None = None):
        """Feed tensor `x` through `layer`; returns a Tensor or POISON."""
        if layer is POISON or x is POISON:
            return POISON
        if not isinstance(x, Tensor):
            raise Fail(error("E0404", f"`->` feeds a tensor into a layer, but its left side is {type_name(x)}",
                             span, "this is not a tensor"))
        if name is not None and self.derivation is not None and self.derivation.replace:
            layer = self.substitute(layer, x, frame, name)
        if isinstance(layer, tuple):
            layer = SeqLayer(layer, span)
        if isinstance(layer, BlockRef):
            layer = evaluate.bind_block(self, layer, (), (), span, Frame())
        if isinstance(layer, Partial):
            layer = evaluate.call_partial(self, layer, (), (), span, Frame())
        if hasattr(layer, "infer"):  # an op named without arguments, e.g. in a list: `[Conv(8, 3), ReLU]`
            layer = evaluate.bind_op_cached(self, layer, (), (), span)
        if isinstance(layer, LabeledLayer):
            return self.apply(layer.layer, x, frame, layer.label, True, layer.span)
        if isinstance(layer, OpLayer):
            return self.apply_op(layer, [x], frame, name, explicit)
        if isinstance(layer, BlockLayer):
            return self.instantiate(layer, x, frame, name, explicit)
        if isinstance(layer, SeqLayer):
            return self.apply_seq(layer, x, frame, name, explicit)
        if isinstance(layer, MergeLayer):
            return self.apply_merge(layer, x, frame, name, explicit)
        what = "a tensor: it is already computed" if isinstance(layer, Tensor) else type_name(layer)
        raise Fail(error("E0404", f"`->` needs a layer on its right, but got {what}", span,
                         "not a layer", notes=frame.notes()))

    def substitute(self, layer, x: Tensor, frame: Frame, name: str):
        """A derived network's replacement for the layer about to be applied at `name`, if any."""
        path = frame.scope + tuple(str(name).split("."))
        found = self.derivation.replace.pop(path, None)
        if found is None:
            return layer
        clause, scope = found
        self.derivation.replaced.append(path)
        value = evaluate.evaluate(self, clause.value, scopes.Env(scope, {}, x), Frame())
        if isinstance(value, Tensor) or not (is_layer(value) or hasattr(value, "infer") or isinstance(
                value, (BlockRef, Partial, tuple))):
            raise Fail(error("E0404", f"`{clause.path.text}` must be replaced by a layer, but got {type_name(value)}",
                             clause.value.span, "not a layer"))
        return value

    def apply_op(self, layer: OpLayer, inputs, frame: Frame, name, explicit, operands=()) -> Tensor:
        spec = layer.spec
        path = self.b.claim(frame.scope, name or spec.name.lower(), explicit, layer.span)
        if any(is_error(t.type) for t in inputs):
            return self.b.add(spec.name, layer.args, inputs, ERROR, path, layer.span, frame)
        try:
            args, out = spec.infer(dict(layer.args), tuple(t.type for t in inputs))
        except OpError as exc:
            if exc.describe_inputs is not None:  # a merge names its branches by label and span
                exc = exc.describe_inputs([self.b.nodes[t.node] for t in inputs])
            self.report(op_diagnostic(exc, layer.span, frame, inputs, operands))
            return self.b.add(spec.name, layer.args, inputs, ERROR, path, layer.span, frame, exc.message)
        return self.b.add(spec.name, args, inputs, out, path, layer.span, frame)

    def merge(self, op: str, inputs, frame: Frame, span: Span | None, name=None, explicit=False, operands=()):
        """A merge node over tensors (concat, +, *); POISON if any input is."""
        if any(t is POISON for t in inputs):
            return POISON
        for t in inputs:
            if not isinstance(t, Tensor):
                raise Fail(error("E0404", f"`{MERGE_SYMBOL[op]}` joins tensors, but got {type_name(t)}", span))
        return self.apply_op(OpLayer(REGISTRY[op], {}, span), list(inputs), frame, name, explicit, operands)

    def apply_merge(self, layer: MergeLayer, x: Tensor, frame: Frame, name, explicit):
        """Branches share `x`. Only a label makes a scope: a merge is not a module of its own, so an
        unlabelled merge inside a sequence adds no path level (DenseNet's `denseblock1.denselayer1`)."""
        sub = frame
        if explicit:
            path = self.b.claim(frame.scope, name, explicit, layer.span)
            self.b.scopes.append(Scope(path, "group", MERGE_SYMBOL[layer.op], layer.span))
            sub = Frame(path, frame.instances, frame.blocks)
        outs = [m if isinstance(m, Tensor) else self.guard(lambda m=m: self.apply(m, x, sub, span=layer.span))
                for m in layer.members]
        return self.merge(layer.op, outs, sub, layer.span)

    def apply_seq(self, layer: SeqLayer, x: Tensor, frame: Frame, name, explicit):
        sub = frame
        items = flatten_seq(layer.items, self.b.room())
        if items is None:  # (a list shared k times at each of n levels spreads into kⁿ layers)
            raise Fail(error("E0701", f"this sequence has more layers than the {self.b.room():,} nodes left of the "
                             f"{limits.MAX_NODES:,} a network may have", layer.span, "expands too far",
                             notes=frame.notes()[:3], helps=(NODES_HELP,)))
        self.b.need(estimate.value_nodes(items, self.b.node_bounds), f"this sequence of {len(items):,} layers",
                    layer.span, frame)
        if name is not None:
            path = self.b.claim(frame.scope, name, explicit, layer.span)
            self.b.scopes.append(Scope(path, "seq", "Sequential", layer.span))
            sub = Frame(path, frame.instances, frame.blocks)
        for index, item in enumerate(items):
            if isinstance(item, LabeledLayer):
                x = self.apply(item, x, sub, span=layer.span)
            else:
                x = self.apply(item, x, sub, str(index), False, span=layer.span)
        return x

    def instantiate(self, layer: BlockLayer, x: Tensor, frame: Frame, name, explicit):
        block = layer.block
        if block.name in frame.blocks:
            chain = " → ".join(frame.blocks + (block.name,))
            raise Fail(error("E0206", f"block `{block.name}` instantiates itself: {chain}", layer.span,
                             "recursive instantiation", notes=frame.notes(),
                             helps=("blocks cannot recurse; repeat a block with a list: `[B(…) for i in range(n)]`",)))
        self.b.need(estimate.block_nodes(block, self.b.node_bounds), f"an instance of `{block.name}`", layer.span,
                    frame)
        path = self.b.claim(frame.scope, name or block.name.lower(), explicit, layer.span)
        self.b.scopes.append(Scope(path, "block", layer.shown, layer.span))
        inner = Frame(path, frame.instances + (Instance(path, layer.shown, layer.span),),
                      frame.blocks + (block.name,))
        env = scopes.Env(block.module, dict(layer.args), x)
        result = bodies.run_body(self, block.definition, env, inner)
        if result is POISON or isinstance(result, Tensor):
            return result
        return self.apply(result, x, inner, span=layer.span)


MERGE_SYMBOL = {"Concat": "concat", "Add": "+", "Mul": "*"}


def flatten_seq(items, limit: int | None = None) -> list | None:
    """Splice unlabelled nested sequences, as nn.Sequential numbering sees them; None when there would
    be more than `limit` (a list shared k times at each of n levels spreads into kⁿ layers)."""
    out, stack = [], [iter(items)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, (tuple, SeqLayer)):
            stack.append(iter(item if isinstance(item, tuple) else item.items))
        else:
            out.append(item)
            if limit is not None and len(out) > limit:
                return None
    return out


_END = object()


def op_diagnostic(exc: OpError, span: Span | None, frame: Frame, inputs, operands=()) -> Diagnostic:
    """An op's broken rule as a diagnostic; `operands` (span, tensor) label each side of `+`/`*`."""
    notes = frame.notes() + exc.notes
    span = exc.span or span
    secondary = exc.secondary + tuple(Label(s, f"`{' '.join(s.text.split())}` is {t.type}")
                                      for s, t in operands if s is not None and len(s.text) <= 40)
    if exc.code == "E0301" and len(inputs) == 2:
        a, b = (t.type for t in inputs)
        if a.rank == b.rank:
            diffs = [f"{axis} ({x} vs {y})" for axis, x, y in zip(_axes(a.rank), a.shape, b.shape)
                     if x != y and 1 not in (x, y)]
            notes += (f"they differ in {_and_list(diffs)}",)
    helps = (exc.help,) if exc.help else ()
    if exc.code in ("E0301", "E0302", "E0303", "E0305"):
        helps += (f"`cnnc explain {exc.code}` walks through this case",)
    label = exc.label or ("both sides must have the same shape, or broadcast" if operands else "")
    return error(exc.code, exc.message, span, label, notes=notes, helps=helps, secondary=secondary)


def _axes(rank: int) -> tuple[str, ...]:
    return ("channels", "height", "width") if rank == 3 else tuple(f"dim {i}" for i in range(rank))


def _and_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# ---------------------------------------------------------------------------------------------
# Entry points


def elaborate(program: Program, network: str | None = None, args=None, input_shape=None,
              decider=None) -> Elaboration:
    """Elaborate one network of `program` (the default one when `network` is None)."""
    main = scopes.module_scopes(program)[program.main]
    name = network or default_network(program)
    el = Elaborator(decider)
    graph = None
    limits.ensure_recursion_room()
    try:
        graph = bodies.run_network(el, main, name, dict(args or {}), input_shape)
    except Abort as failure:
        el.report(failure.diagnostic)
    except RecursionError:  # a value nested by thousands of statements; depth is bounded per expression
        el.report(error("E0705", "the program nests values too deeply to elaborate", None,
                        helps=(DEPTH_HELP,)))
    return Elaboration(graph, tuple(el.b.diagnostics) + unused.static_warnings(main))


def network_names(program: Program) -> list[tuple[str, bool]]:
    """(name, concrete) of each network the main file defines; concrete = needs no arguments."""
    out = []
    for item in program.main_module.items:
        if isinstance(item, ast.NetworkAlias):
            out.append((item.name, True))
        elif isinstance(item, ast.NetworkDef):
            required = [p for p in item.params or () if p.default is None]
            out.append((item.name, not required))
    return out


def default_network(program: Program) -> str:
    """The file's stem when a network has that name, else its only concrete network."""
    from pathlib import Path

    names = network_names(program)
    stem = Path(program.main).stem
    if any(n == stem for n, _ in names):
        return stem
    concrete = [n for n, ok in names if ok]
    if len(concrete) == 1:
        return concrete[0]
    if not names:
        raise CnncError(error("E0205", f"`{Path(program.main).name}` defines no network", None,
                              helps=("add `network Name { input [3, 224, 224] return in -> … }`",)))
    listed = ", ".join(f"`{n}`" for n, _ in names)
    raise CnncError(error("E0205", f"`{Path(program.main).name}` defines several networks: {listed}", None,
                          helps=("choose one with `--network NAME`",)))


def finish(el: Elaborator, name: str, output, input_type: TensorType | None) -> Graph:
    """Prune what does not reach the output and freeze the graph."""
    nodes = el.b.nodes
    if not isinstance(output, Tensor):
        keep = {n.id for n in nodes}
        out_id = None
    else:
        keep, stack = set(), [output.node]
        while stack:
            nid = stack.pop()
            if nid not in keep:
                keep.add(nid)
                stack.extend(nodes[nid].inputs)
        out_id = output.node
    kept = [n for n in nodes if n.id in keep or n.op == "Input"]
    prefixes = {n.path[:k] for n in kept for k in range(1, len(n.path))}
    kept_scopes = [s for s in el.b.scopes if s.path in prefixes]
    d = el.derivation
    frozen = d.frozen if d is not None else ()
    replaced = d.replaced if d is not None else ()
    return Graph(name, kept, out_id, kept_scopes, input_type, frozen=frozen, replaced=replaced)


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
        elif not (isinstance(param.default, (ast.Number, ast.Bool, ast.String, ast.NoneLit))
                  and getattr(param.default, "value", None) == value
                  and type(getattr(param.default, "value", None)) is type(value)):
            parts.append(f"{param.name} = {show(value)}")
    return f"{block.name}({', '.join(parts)})"
