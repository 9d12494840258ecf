"""The elaborator's state and types, which every other module of the room uses: `Fail` and `Abort`
(how a statement, or the whole elaboration, stops), `Frame` (where layers are being applied),
`Builder` (the nodes, names and budgets of one elaboration), `Elaboration` (its result), the
decider's interface (`ChoicePoint`, `Decider`), and `El`, what the statement and expression rules
use of the elaborator (`apply.Elaborator`).

The leaf of the room: it imports none of its siblings, so they all import it at the top.
"""

from __future__ import annotations

from types import MappingProxyType

from cnnc.compiler import limits
from cnnc.compiler.elaborate.derive import Derivation
from cnnc.compiler.elaborate.values import OpLayer, Tensor
from cnnc.compiler.ir import Graph, Instance, Node, Scope
from cnnc.compiler.names import path_problem
from cnnc.compiler.names import usable as usable_name
from cnnc.compiler.ops import REGISTRY
from cnnc.compiler.types import is_error
from cnnc.dsl import numbers
from cnnc.dsl.diagnostics import Diagnostic, error
from cnnc.dsl.records import field, record
from cnnc.dsl.source import Span

TYPE_CHECKING = False  # `typing` stays unimported at run time (start-up)
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = (
        object  # the interfaces below are Protocols to a type checker, plain classes at run time
    )


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


def fail(code, message, span, label="", **extra) -> Fail:
    """A `Fail` carrying the error diagnostic `code` (`raise fail(…)`)."""
    return Fail(error(code, message, span, label, **extra))


@record(slots=False)
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


@record(slots=False)
class Elaboration:
    graph: Graph | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


@record(frozen=False, slots=False)
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
    # what the command spends in all: shared with its other elaborations, not part of this one's value
    ledger: limits.Ledger = field(default_factory=limits.ledger, compare=False, repr=False)
    params: int = 0  # parameters of the nodes made so far
    values: int = 0  # their parameters and activation elements (batch 1)
    memory: int = field(default_factory=limits.max_memory)  # bytes they may take (E0709)
    defaults: set = field(
        default_factory=set
    )  # (block, parameter) whose default is being evaluated
    usable: dict = field(default_factory=dict)  # (implicit name, top level?) → the name made usable
    # label path → the output of the part of that path (a node, a block instance, a labelled
    # sequence or merge), so `x.layer4` can take a tap from inside the part that made `x`
    parts: dict = field(default_factory=dict)
    # the `let` whose value is being evaluated (an ast.Let): a block's lone choice in
    # `k = choice(3, 5)` is named `<instance path>.k` (`choices._name`); and how many `choice`s
    # each let's text holds, counted when a choice in it is first met
    binding: object = None
    choices_in: dict = field(default_factory=dict)
    # the chain element (AST) being evaluated to be applied next in the frame's scope: a choice
    # that is its argument, or is it, is named from the path it will have (`choices._name`)
    placing: object = None
    choice_names: dict = field(default_factory=dict)  # a path-given name → the choice it names

    def room(self) -> int:
        """Nodes that may still be made."""
        return limits.MAX_NODES - len(self.nodes)

    def need(self, nodes: int, what: str, span: Span | None, frame: Frame) -> None:
        """Refuse, before building anything, what needs more nodes than the budget (the network's,
        or the command's: `limits.Ledger`) has left."""
        if nodes > self.ledger.room() and self.ledger.room() < self.room():
            raise Abort(spent_error(self.ledger, span, frame, nodes))
        if nodes > self.room():
            raise Fail(
                error(
                    "E0701",
                    f"{what} needs at least {nodes:,} nodes, more than the "
                    f"{limits.MAX_NODES:,} a network may have",
                    span,
                    "expands too far",
                    notes=frame.notes()[:3],
                    helps=(NODES_HELP,),
                )
            )

    def claim(
        self, scope: tuple[str, ...], name: str, explicit: bool, span: Span | None
    ) -> tuple[str, ...]:
        if "." in name:  # a dotted label from `label("a.b", …)`: the last part is the name
            *parts, name = name.split(".")
            scope = scope + tuple(parts)
        if not explicit:  # a block's or op's own name, e.g. `class` of `block Class`: made usable
            key = (name, not scope)
            if key not in self.usable:
                self.usable[key] = usable_name(name, not scope)
            name = self.usable[key]
        elif (problem := path_problem(scope + (name,))) is not None:  # a label: E0208, E0209
            raise Fail(
                error(
                    problem.code,
                    problem.message,
                    span,
                    "the label of this layer",
                    helps=(problem.help,),
                )
            )
        names = self.taken.setdefault(scope, {})
        if explicit:
            if name in names:
                where = ".".join(scope) or "the network"
                raise Fail(
                    error(
                        "E0204",
                        f"the label `{name}` is used twice in `{where}`",
                        span,
                        "used again here",
                        helps=("give each layer of a scope its own label",),
                    )
                )
            names[name] = True
            return scope + (name,)
        candidate, k = self._free(scope, name, names)
        if k:
            self.suffix[(scope, name)] = k
        names[candidate] = False
        return scope + (candidate,)

    def _free(self, scope: tuple[str, ...], name: str, names: dict) -> tuple[str, int]:
        """The first of `name`, `name_1`, … free in `scope` after those numbered before, and its
        number (0: the bare name)."""
        candidate, k = name, self.suffix.get((scope, name), 0)
        if k or candidate in names:
            k += 1
            candidate = numbered(name, k)
            while candidate in names:
                k += 1
                candidate = numbered(name, k)
        return candidate, k

    def peek(self, scope: tuple[str, ...], name: str) -> tuple[str, ...]:
        """The path `claim(scope, name, explicit=False, …)` would give now, claiming nothing."""
        key = (name, not scope)
        name = self.usable.get(key) or usable_name(name, not scope)
        return scope + (self._free(scope, name, self.taken.get(scope, {}))[0],)

    def add(self, op: str, args: dict, inputs, type_, path, span, frame: Frame, err=None) -> Tensor:
        if len(self.nodes) >= limits.MAX_NODES:
            raise Abort(
                error(
                    "E0701",
                    f"the network expands to more than {limits.MAX_NODES:,} nodes",
                    span,
                    "while expanding this",
                    notes=frame.notes()[:3],
                    helps=(NODES_HELP,),
                )
            )
        self.ledger.nodes += 1
        if self.ledger.nodes > limits.COMMAND_NODES:
            raise Abort(spent_error(self.ledger, span, frame))
        if not is_error(type_):
            self.weigh(op, args, inputs, type_, span, frame)
        node = Node(
            len(self.nodes),
            op,
            MappingProxyType(dict(args)),
            tuple([t.node for t in inputs]),
            type_,
            path,
            span,
            frame.instances,
            err,
        )
        self.nodes.append(node)
        out = self.parts[path] = Tensor(node.id, type_, path)
        return out

    def weigh(self, op: str, args, inputs, type_, span, frame: Frame) -> None:
        """Count the node's parameters and output elements; refuse the node (E0709) when the
        network would no longer fit in memory (`limits.max_memory`) at batch 1."""
        spec = REGISTRY.get(op)
        params = spec.count_params(args, tuple([t.type for t in inputs]), type_) if spec else 0
        self.params += params
        self.values += params + type_.numel
        if self.values * limits.BYTES_PER_VALUE > self.memory:
            raise Abort(memory_error(self.params, self.values, self.memory, span, frame))

    def part(self, path: tuple[str, ...], result):
        """`result`, the output of the part at `path`, made the tensor `x.<label>` finds inside it."""
        if not isinstance(result, Tensor):
            return result
        out = self.parts[path] = Tensor(result.node, result.type, path)
        return out


def spent_error(
    ledger: limits.Ledger, span: Span | None, frame: Frame, need: int = 0
) -> Diagnostic:
    """E0708: the elaborations of this command (this file, for `cnnc check`) spent a total."""
    what, bound = ledger.over() or ("nodes", limits.COMMAND_NODES)
    ledger.exhausted = True
    headline = (
        f"{ledger.whose} need at least {ledger.nodes + need:,} nodes, more than the {bound:,} allowed "
        "in all"
        if need
        else f"{ledger.whose} make more than {bound:,} {what} in all"
    )
    return error(
        "E0708",
        headline,
        span,
        "while expanding this",
        notes=frame.notes()[:3],
        helps=(ledger.help or COMMAND_HELP,),
    )


COMMAND_HELP = "run the large networks in separate commands"


def memory_error(
    params: int, values: int, memory: int, span: Span | None, frame: Frame
) -> Diagnostic:
    """E0709: the network's parameters and activations no longer fit in the memory cnnc allows."""
    need, params_bytes = values * limits.BYTES_PER_VALUE, params * limits.BYTES_PER_VALUE
    what = (
        f"its {params:,} parameters up to here take {numbers.memory(params_bytes)}"
        if params_bytes > memory
        else f"its parameters and activations at batch 1 up to here take {numbers.memory(need)}"
    )
    return error(
        "E0709",
        f"the network would not fit in memory: {what}, over the {numbers.memory(memory)} cnnc allows",
        span,
        "passes the budget here",
        notes=frame.notes()[:3],
        helps=(
            "use fewer channels or features, pool before large layers, or a smaller input",
            limits.memory_help(),
        ),
    )


NODES_HELP = "check repeat counts and list lengths; real networks have a few thousand nodes"


@record
class ChoicePoint:
    """One decision of a search space, as a decider sees it (see `choices`)."""

    name: str
    labels: tuple[str, ...]  # each option as written (or as a value, for `choice(range(…))`)
    values: tuple | None  # the options' plain values when every option is a constant
    span: Span | None
    # the options as written (AST), for a `decide { … }` clause to match its values against
    options: tuple = field(default=(), compare=False, repr=False)


class Decider(Protocol):
    def decide(self, point: ChoicePoint) -> int:
        """The index of the chosen option."""


class El(Protocol):
    """What the statement and expression rules (`bodies`, `evaluate`, `choices`, `budget`) use of
    the elaborator, `apply.Elaborator`: they reach it only through their `el` parameter."""

    b: Builder
    decider: Decider | None
    derivation: Derivation | None  # a derived network's clauses, while elaborating one

    def report(self, diagnostic: Diagnostic) -> None:
        """Record a diagnostic."""

    def guard(self, thunk, on_error=...):
        """Run `thunk`; on `Fail`, record it and return `on_error` (POISON by default)."""

    def evaluate(self, expr, env, frame: Frame):
        """The value of an expression (`evaluate.evaluate`)."""

    def apply(
        self,
        layer,
        x,
        frame: Frame,
        name: str | None = None,
        explicit: bool = False,
        span: Span | None = None,
    ):
        """Feed tensor `x` through `layer`; a Tensor or POISON."""

    def apply_op(self, layer: OpLayer, inputs, frame: Frame, name, explicit, operands=()) -> Tensor:
        """One op node over `inputs`."""

    def merge(
        self,
        op: str,
        inputs,
        frame: Frame,
        span: Span | None,
        name=None,
        explicit=False,
        operands=(),
    ):
        """A merge node over tensors (concat, +, *); POISON if any input is."""
