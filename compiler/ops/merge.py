"""Merges of several tensors: concat (channels), add and mul (torch broadcasting).

They are written as `concat(a, b)`, `a + b` and `a * b` in .cnn files, not called by name.
"""

from __future__ import annotations

from cnnc.compiler.ops import VARIADIC, OpError, OpSpec, register
from cnnc.compiler.types import TensorType


def infer_concat(args: dict, inputs) -> tuple[dict, TensorType]:
    first = inputs[0]
    for other in inputs[1:]:
        if other.rank != first.rank or other.spatial != first.spatial:
            raise OpError(
                "E0302",
                f"`concat` needs equal spatial sizes, but got {first} and {other}",
                help="pad or stride the branches so they agree, e.g. `pad = 1` for a 3×3 at stride 1",
            )
    channels = sum(t.channels for t in inputs)
    return dict(args), TensorType((channels, *first.spatial))


def broadcast(op: str, a: TensorType, b: TensorType) -> TensorType:
    """torch's rule, batch aside: align from the right; each pair of sizes is equal or has a 1."""
    if a.rank != b.rank:
        raise OpError("E0301", f"shape mismatch in `{op}`: {a} vs {b}",
                      help="both sides must have the same rank; use `Flatten` or pooling to match them")
    out = []
    for x, y in zip(a.shape, b.shape):
        if x != y and 1 not in (x, y):
            raise OpError("E0301", f"shape mismatch in `{op}`: {a} vs {b}")
        out.append(max(x, y))
    return TensorType(tuple(out))


def _infer_elementwise(op: str):
    def infer(args: dict, inputs) -> tuple[dict, TensorType]:
        out = inputs[0]
        for other in inputs[1:]:
            out = broadcast(op, out, other)
        return dict(args), out

    return infer


register(
    OpSpec(name="Concat", params=(), infer=infer_concat, family="merge", torch_ctor="torch.cat",
           arity=VARIADIC, layer=False, doc="joins tensors along channels: `concat(a, b, …)`"),
    OpSpec(name="Add", params=(), infer=_infer_elementwise("+"), family="merge", torch_ctor="operator.add",
           arity=VARIADIC, layer=False, doc="elementwise sum with broadcasting: `a + b`"),
    OpSpec(name="Mul", params=(), infer=_infer_elementwise("*"), family="merge", torch_ctor="operator.mul",
           arity=VARIADIC, layer=False, doc="elementwise product with broadcasting: `a * b` (SE gates)"),
    OpSpec(name="Input", params=(), infer=lambda args, inputs: (dict(args), args["type"]), family="io",
           torch_ctor="", arity=0, layer=False, doc="the network's input"),
)
