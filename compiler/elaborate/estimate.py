"""Lower bounds on the nodes a layer or an expression makes, so that the node budget
(`limits.MAX_NODES`) refuses a runaway repeat before its blocks are built.

Every bound is a lower bound: when the count cannot be known without elaborating (a parameter
used as a layer, a comprehension, an index), it is 0. Where branches differ (`if`, `choice`), the
smallest is taken; a local value is counted once, however often it is read. A bound that is too
low only lets the exact check (`Builder.add`) fire later; one that is too high would refuse a valid
program, so every rule below errs low.
"""

from __future__ import annotations

from cnnc.compiler.elaborate.values import (
    BlockLayer,
    BlockRef,
    LabeledLayer,
    MergeLayer,
    OpLayer,
    Partial,
    SeqLayer,
    Tensor,
)
from cnnc.compiler.ops import lookup
from cnnc.dsl import ast


def value_nodes(value, cache: dict, scan: int | None = None, seen: dict | None = None) -> int:
    """At least how many nodes applying the layer `value` makes (0 for anything else). With `scan`,
    only a list's first `scan` items are counted (still a lower bound), so that an estimate made
    at every evaluation of an expression does not walk a long list each time. A list shared by
    several others is counted once per call (`seen`): sharing cannot make the walk exponential."""
    if isinstance(value, OpLayer) or hasattr(value, "infer"):
        return 1
    seen = {} if seen is None else seen
    if isinstance(value, (tuple, SeqLayer, LabeledLayer, MergeLayer)):
        if id(value) not in seen:
            seen[id(value)] = (
                value,
                _composite_nodes(value, cache, scan, seen),
            )  # keeps the id alive
        return seen[id(value)][1]
    if isinstance(value, (BlockLayer, Partial)):
        return block_nodes(value.block, cache)
    if isinstance(value, BlockRef):
        return block_nodes(value, cache)
    return 0


def _composite_nodes(value, cache: dict, scan, seen: dict) -> int:
    if isinstance(value, tuple):
        items = value if scan is None else value[:scan]
    elif isinstance(value, SeqLayer):
        items = value.items
    elif isinstance(value, LabeledLayer):
        items = (value.layer,)
    else:  # a merge: one node, and its branches
        return 1 + sum(
            value_nodes(m, cache, scan, seen) for m in value.members if not isinstance(m, Tensor)
        )
    return min(sum(value_nodes(v, cache, scan, seen) for v in items), CAP)


CAP = 1 << 62  # counts stop growing here: far past any budget, and cheap to add


def block_nodes(ref: BlockRef, cache: dict) -> int:
    """At least how many nodes one instance of the block makes, whatever its arguments."""
    key = id(ref.definition)
    if key not in cache:
        cache[key] = 0  # a block reached again while it is being counted counts 0 (no recursion)
        cache[key] = _body_nodes(ref, cache)
    return cache[key]


def _body_nodes(ref: BlockRef, cache: dict) -> int:
    definition = ref.definition
    lets = {s.name: s.value for s in definition.body if isinstance(s, ast.Let)}
    params = {p.name for p in definition.params or ()}
    ret = next((s for s in definition.body if isinstance(s, ast.Return)), None)
    if ret is None:
        return 0
    counter = _Static(ref.module, lets, params, cache)
    return counter.nodes(ret.value)


def expr_nodes(expr, env, bound: set, cache: dict) -> int:
    """At least how many nodes evaluating `expr` in `env` (and applying it, if it is a layer) makes;
    names in `bound` (a comprehension's variable) are unknown."""
    return _Runtime(env, bound, cache).nodes(expr)


class _Static:
    """Counts over a block body without its arguments: parameters are unknown."""

    def __init__(self, module, lets: dict, params: set, cache: dict):
        self.module, self.lets, self.params, self.cache = module, lets, params, cache
        self.seen: set[str] = set()

    def nodes(self, expr) -> int:
        if isinstance(expr, ast.Chain):
            return sum(self.nodes(e) for e in expr.elements)
        if isinstance(expr, ast.Labeled):
            return self.nodes(expr.value)
        if isinstance(expr, ast.ListExpr):
            return sum(self.nodes(e) for e in expr.items)
        if isinstance(expr, ast.BinOp) and expr.op == "+":
            return self.nodes(expr.left) + self.nodes(expr.right)
        if isinstance(expr, ast.If):
            return min(self.nodes(expr.then), self.nodes(expr.else_))
        if isinstance(expr, ast.Choice):
            return (
                min((self.nodes(o) for o in expr.options), default=0)
                if len(expr.options) > 1
                else 0
            )
        if isinstance(expr, ast.Name):
            return self.name(expr.id)
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
            if expr.func.id == "concat" and self.free("concat"):
                return 1 + sum(self.nodes(a) for a in expr.args)
            return self.callee(expr.func.id)
        return 0

    def free(self, name: str) -> bool:
        """Not a parameter or a local value (so a file-level name or a built-in)."""
        return name not in self.params and name not in self.lets

    def name(self, name: str) -> int:
        if name in self.lets:
            if name in self.seen:
                return 0
            self.seen.add(name)
            return self.nodes(self.lets[name])
        return self.callee(name)

    def callee(self, name: str) -> int:
        """A layer or block named `name` at file level: an op counts 1, a block its body."""
        if not self.free(name):
            return 0
        found = self.module.find(name)
        if found is not None:
            scope, item = found
            if isinstance(item, ast.BlockDef):
                return block_nodes(BlockRef(item, scope), self.cache)
            return 0
        spec = lookup(name)
        return 1 if spec is not None and spec.layer else 0


SCAN = 64  # list items a runtime estimate looks at


class _Runtime(_Static):
    """Counts an expression about to be evaluated: names are read from the environment."""

    def __init__(self, env, bound: set, cache: dict):
        super().__init__(env.module, {}, set(), cache)
        self.env, self.bound = env, bound

    def free(self, name: str) -> bool:
        return name not in self.bound and not self._local(name)

    def _local(self, name: str) -> bool:
        try:
            self.env.get(name)
            return True
        except KeyError:
            return False

    def name(self, name: str) -> int:
        if name in self.bound:
            return 0
        try:
            return value_nodes(self.env.get(name), self.cache, SCAN)
        except KeyError:
            return self.callee(name)

    def callee(self, name: str) -> int:
        if name in self.bound:
            return 0
        try:
            return value_nodes(self.env.get(name), self.cache, SCAN)
        except KeyError:
            return super().callee(name)
