"""The elaborator: applies layers to tensors, building the graph (ops, block instances,
sequences, merges), with the names the room's `__init__` describes. Its state is a
`state.Builder`; `evaluate` and `bodies` call back into it through their `el` parameter.
"""

from __future__ import annotations

from cnnc.compiler import limits
from cnnc.compiler.elaborate import bodies, estimate, evaluate, scopes
from cnnc.compiler.elaborate.bind import bind_op_cached
from cnnc.compiler.elaborate.derive import Derivation
from cnnc.compiler.elaborate.state import NODES_HELP, Abort, Builder, Decider, Fail, Frame
from cnnc.compiler.elaborate.values import (
    LAYER_TYPES,
    POISON,
    BlockLayer,
    BlockRef,
    LabeledLayer,
    MergeLayer,
    OpLayer,
    Outputs,
    Partial,
    SeqLayer,
    Tensor,
    is_layer,
    type_name,
)
from cnnc.compiler.ir import Instance, Scope
from cnnc.compiler.ops import REGISTRY, OpError
from cnnc.compiler.types import ERROR, is_error
from cnnc.dsl.diagnostics import Diagnostic, Label, error
from cnnc.dsl.source import Span


class Elaborator:
    """Applies layers to tensors, building the graph. Expression evaluation lives in `evaluate`,
    statements in `bodies`; both reach the elaborator through their `el` parameter (`state.El`)."""

    def __init__(self, decider: Decider | None = None):
        self.b = Builder()
        self.decider = decider
        self.derivation: Derivation | None = (
            None  # a derived network's clauses, while elaborating one
        )

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

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, expr, env: scopes.Env, frame: Frame):
        """The value of `expr` (`evaluate.evaluate`), for the rules `evaluate` itself imports
        (`choices`, `budget`)."""
        return evaluate.evaluate(self, expr, env, frame)

    # -- application ---------------------------------------------------------------------------
    def apply(
        self,
        layer,
        x,
        frame: Frame,
        name: str | None = None,
        explicit: bool = False,
        span: Span | None = None,
    ):
        """Feed tensor `x` through `layer`; returns a Tensor or POISON."""
        if layer is POISON or x is POISON:
            return POISON
        if not isinstance(x, Tensor):
            helps = ()
            if isinstance(x, Outputs):  # a network with several outputs, used as a layer
                key = x.items[0][0]
                helps = (f"name the outputs and take one: `y = …`, then `y.{key} -> …`",)
            raise Fail(
                error(
                    "E0404",
                    f"`->` feeds a tensor into a layer, but its left side is {type_name(x)}",
                    span,
                    "this is not a tensor",
                    helps=helps,
                )
            )
        if name is not None and self.derivation is not None and self.derivation.replace:
            layer = self.substitute(layer, x, frame, name)
        if not isinstance(layer, LAYER_TYPES):  # (a layer already, most often: one check)
            layer = self.made_layer(layer, span)
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
        raise Fail(
            error(
                "E0404",
                f"`->` needs a layer on its right, but got {what}",
                span,
                "not a layer",
                notes=frame.notes(),
            )
        )

    def made_layer(self, value, span: Span | None):
        """A list, a block, a partial block or an op named without arguments, made the layer it
        stands for; any other value as it is."""
        if isinstance(value, tuple):
            return SeqLayer(value, span)
        if isinstance(value, BlockRef):
            return evaluate.bind_block(self, value, (), (), span, Frame())
        if isinstance(value, Partial):
            return evaluate.call_partial(self, value, (), (), span, Frame())
        if hasattr(
            value, "infer"
        ):  # an op named without arguments, e.g. in a list: `[Conv(8, 3), ReLU]`
            return bind_op_cached(value, (), (), span)
        return value

    def substitute(self, layer, x: Tensor, frame: Frame, name: str):
        """A derived network's replacement for the layer about to be applied at `name`, if any."""
        path = frame.scope + tuple(str(name).split("."))
        found = self.derivation.replace.pop(path, None)
        if found is None:
            return layer
        clause, scope = found
        self.derivation.replaced.append(path)
        value = evaluate.evaluate(self, clause.value, scopes.Env(scope, {}, x), Frame())
        if isinstance(value, Tensor) or not (
            is_layer(value)
            or hasattr(value, "infer")
            or isinstance(value, (BlockRef, Partial, tuple))
        ):
            raise Fail(
                error(
                    "E0404",
                    f"`{clause.path.text}` must be replaced by a layer, but got {type_name(value)}",
                    clause.value.span,
                    "not a layer",
                )
            )
        return value

    def apply_op(self, layer: OpLayer, inputs, frame: Frame, name, explicit, operands=()) -> Tensor:
        spec = layer.spec
        if _has_tensor(layer.args.values()):  # `Upsample(like = skip)`
            layer, inputs = tensor_arguments(layer, inputs)
        path = self.b.claim(frame.scope, name or spec.name.lower(), explicit, layer.span)
        if _has_error(inputs):
            return self.b.add(spec.name, layer.args, inputs, ERROR, path, layer.span, frame)
        try:
            args, out = spec.infer(dict(layer.args), tuple([t.type for t in inputs]))
        except OpError as exc:
            if exc.describe_inputs is not None:  # a merge names its branches by label and span
                exc = exc.describe_inputs([self.b.nodes[t.node] for t in inputs])
            self.report(op_diagnostic(exc, layer.span, frame, inputs, operands))
            return self.b.add(
                spec.name, layer.args, inputs, ERROR, path, layer.span, frame, exc.message
            )
        return self.b.add(spec.name, args, inputs, out, path, layer.span, frame)

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
        if any(t is POISON for t in inputs):
            return POISON
        for t in inputs:
            if not isinstance(t, Tensor):
                raise Fail(
                    error(
                        "E0404",
                        f"`{REGISTRY[op].symbol}` joins tensors, but got {type_name(t)}",
                        span,
                    )
                )
        return self.apply_op(
            OpLayer(REGISTRY[op], {}, span), list(inputs), frame, name, explicit, operands
        )

    def apply_merge(self, layer: MergeLayer, x: Tensor, frame: Frame, name, explicit):
        """Branches share `x`. Only a label makes a scope: a merge is not a module of its own, so an
        unlabelled merge inside a sequence adds no path level (DenseNet's `denseblock1.denselayer1`)."""
        sub = frame
        if explicit:
            path = self.b.claim(frame.scope, name, explicit, layer.span)
            self.b.scopes.append(Scope(path, "group", REGISTRY[layer.op].symbol, layer.span))
            sub = Frame(path, frame.instances, frame.blocks)
        outs = [
            m
            if isinstance(m, Tensor)
            else self.guard(lambda m=m: self.apply(m, x, sub, span=layer.span))
            for m in layer.members
        ]
        result = self.merge(layer.op, outs, sub, layer.span)
        return self.b.part(sub.scope, result) if explicit else result

    def apply_seq(self, layer: SeqLayer, x: Tensor, frame: Frame, name, explicit):
        sub = frame
        items = flatten_seq(layer.items, self.b.room())
        if items is None:  # (a list shared k times at each of n levels spreads into kⁿ layers)
            raise Fail(
                error(
                    "E0701",
                    f"this sequence has more layers than the {self.b.room():,} nodes left of the "
                    f"{limits.MAX_NODES:,} a network may have",
                    layer.span,
                    "expands too far",
                    notes=frame.notes()[:3],
                    helps=(NODES_HELP,),
                )
            )
        self.b.need(
            estimate.value_nodes(items, self.b.node_bounds),
            f"this sequence of {len(items):,} layers",
            layer.span,
            frame,
        )
        if name is not None:
            path = self.b.claim(frame.scope, name, explicit, layer.span)
            self.b.scopes.append(Scope(path, "seq", "Sequential", layer.span))
            sub = Frame(path, frame.instances, frame.blocks)
        for index, item in enumerate(items):
            if isinstance(item, LabeledLayer):
                x = self.apply(item, x, sub, span=layer.span)
            else:
                x = self.apply(item, x, sub, str(index), False, span=layer.span)
        return self.b.part(sub.scope, x) if name is not None else x

    def instantiate(self, layer: BlockLayer, x: Tensor, frame: Frame, name, explicit):
        block = layer.block
        if block.name in frame.blocks:
            chain = " → ".join(frame.blocks + (block.name,))
            raise Fail(
                error(
                    "E0206",
                    f"block `{block.name}` instantiates itself: {chain}",
                    layer.span,
                    "recursive instantiation",
                    notes=frame.notes(),
                    helps=(
                        "blocks cannot recurse; repeat a block with a list: `[B(…) for i in range(n)]`",
                    ),
                )
            )
        self.b.need(
            estimate.block_nodes(block, self.b.node_bounds),
            f"an instance of `{block.name}`",
            layer.span,
            frame,
        )
        path = self.b.claim(frame.scope, name or block.name.lower(), explicit, layer.span)
        self.b.scopes.append(Scope(path, "block", layer.shown, layer.span))
        inner = Frame(
            path,
            frame.instances + (Instance(path, layer.shown, layer.span),),
            frame.blocks + (block.name,),
        )
        env = scopes.Env(block.module, dict(layer.args), x, instance=True)
        result = bodies.run_body(self, block.definition, env, inner)
        if not (result is POISON or isinstance(result, (Tensor, Outputs))):
            result = self.apply(result, x, inner, span=layer.span)
        if layer.cut is not None and result is not POISON:  # a derived network's `cut after P`
            result = self.cut(path, layer.cut)
        return self.b.part(path, result)

    def cut(self, path: tuple[str, ...], at) -> Tensor:
        """The part at `path + at` as the instance's output; the parts made after it are dropped
        too, so that a tap (`x.layer4`) cannot reach what `cut after` removed."""
        found = self.b.parts.get(path + at.parts)
        if found is None:
            raise Fail(
                error(
                    "E0218",
                    f"`{at.text}` is not a label of this network",
                    at.span,
                    "not found when used as a layer",
                )
            )
        parts = self.b.parts
        for node in self.b.nodes[found.node + 1 :]:
            for k in range(len(path) + 1, len(node.path) + 1):
                made = parts.get(node.path[:k])
                if made is not None and made.node > found.node:
                    del parts[node.path[:k]]
        return found


# `_has_tensor` and `_has_error` run at every node: loops, not `any(…)` over a generator
def _has_tensor(values) -> bool:
    """Is any of `values` a Tensor?"""
    return any(isinstance(value, Tensor) for value in values)


def _has_error(inputs) -> bool:
    """Has any of the tensors `inputs` the ERROR type?"""
    return any(is_error(t.type) for t in inputs)


def tensor_arguments(layer: OpLayer, inputs) -> tuple[OpLayer, list]:
    """An op's tensor-valued arguments (`like = skip`: a resize or crop to another tensor's size)
    become inputs after the one `->` feeds, in parameter order; the node's args keep the rest."""
    extra = [v for v in layer.args.values() if isinstance(v, Tensor)]
    args = {k: v for k, v in layer.args.items() if not isinstance(v, Tensor)}
    return OpLayer(layer.spec, args, layer.span), [*inputs, *extra]


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
    secondary = exc.secondary + tuple(
        Label(s, f"`{' '.join(s.text.split())}` is {t.type}")
        for s, t in operands
        if s is not None and len(s.text) <= 40
    )
    if exc.code == "E0301" and len(inputs) == 2:
        a, b = (t.type for t in inputs)
        if a.rank == b.rank:
            diffs = [
                f"{axis} ({x} vs {y})"
                for axis, x, y in zip(_axes(a.rank), a.shape, b.shape)
                if x != y and 1 not in (x, y)
            ]
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
