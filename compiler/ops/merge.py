"""Merges of several tensors: concat (channels), add and mul (torch broadcasting).

They are written as `concat(a, b)`, `a + b` and `a * b` in .cnn files, not called by name.
"""

from __future__ import annotations

from collections import Counter

from cnnc.compiler.ops.spec import (
    MEET,
    NO_MACS,
    NO_PARAMS,
    ORIGIN,
    VARIADIC,
    Family,
    Lowering,
    OpError,
    OpSpec,
    Saves,
    no_detail,
    not_a_module,
    register,
)
from cnnc.compiler.types import TensorType
from cnnc.dsl.diagnostics import Label


def infer_concat(args: dict, inputs) -> tuple[dict, TensorType]:
    culprits, reference = concat_mismatches(inputs)
    if culprits:
        first = culprits[0]
        raise OpError(
            "E0302",
            f"`concat` needs equal spatial sizes, but branch {first} is {inputs[first]} and branch "
            f"{reference} is {inputs[reference]}",
            help="pad or stride the branches so they agree, e.g. `pad = 1` for a 3×3 at stride 1",
            label=f"branch {first} is {inputs[first]}",
            culprits=culprits,
            describe_inputs=lambda nodes: _concat_report(inputs, culprits, reference, nodes),
        )
    channels = sum(t.channels for t in inputs)
    return dict(args), TensorType((channels, *inputs[0].spatial))


def concat_mismatches(inputs) -> tuple[tuple[int, ...], int]:
    """(branches that differ from the reference, the reference): the reference is the first branch
    of the most common rank and spatial size, so one odd branch out of four is the one named."""
    keys = [(t.rank, t.spatial) for t in inputs]
    counts = Counter(keys)  # one pass: `keys.count` per key made a wide concat quadratic
    common = max(
        counts, key=counts.__getitem__
    )  # ties: the earliest (insertion order, max's first-wins rule)
    reference = keys.index(common)
    return tuple(i for i, key in enumerate(keys) if key != common), reference


def _concat_report(inputs, culprits, reference, nodes) -> OpError:
    """The E0302 error with each branch named by its label and underlined where its layer is."""

    def name(i: int) -> str:
        label = nodes[i].name
        return f"branch {i} (`{label}`)" if label else f"branch {i}"

    first = culprits[0]
    exc = OpError(
        "E0302",
        f"`concat` needs equal spatial sizes, but {name(first)} is {inputs[first]} "
        f"and {name(reference)} is {inputs[reference]}",
        help="pad or stride the branches so they agree, e.g. `pad = 1` for a 3×3 at stride 1",
        label=f"{name(first)} is {inputs[first]}",
    )
    exc.span = nodes[first].span
    listed = culprits[:SHOWN_BRANCHES]  # a concat of thousands of branches: a readable message
    exc.secondary = tuple(
        Label(nodes[i].span, f"{name(i)} is {inputs[i]}")
        for i in (reference,) + listed[1:]
        if nodes[i].span is not None and nodes[i].span != exc.span
    )
    if len(culprits) > 1:
        exc.notes = tuple(
            f"{name(i)} is {inputs[i]}, {name(reference)} is {inputs[reference]}" for i in listed
        )
        if len(culprits) > len(listed):
            exc.notes += (f"and {len(culprits) - len(listed):,} more branches differ",)
    return exc


SHOWN_BRANCHES = 8


def broadcast(op: str, a: TensorType, b: TensorType) -> TensorType:
    """torch's rule, batch aside: align from the right; each pair of sizes is equal or has a 1."""
    if a.rank != b.rank:
        raise OpError(
            "E0301",
            f"shape mismatch in `{op}`: {a} vs {b}",
            help="both sides must have the same rank; use `Flatten` or pooling to match them",
        )
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


def _merge(
    name: str,
    doc: str,
    infer,
    torch_ctor: str,
    short: str,
    glyph: str,
    shape_rule: str,
    example: str,
    **more,
) -> OpSpec:
    return OpSpec(
        name=name,
        doc=doc,
        family=Family.MERGE,
        params=(),
        infer=infer,
        count_params=NO_PARAMS,
        count_macs=NO_MACS,
        rf=MEET,
        lowering=Lowering.MERGE,
        torch_ctor=torch_ctor,
        build=not_a_module,
        label=no_detail,
        shape_rule=shape_rule,
        params_rule="0",
        macs_rule="0 (additions and products are not multiply-accumulates of a layer)",
        example=example,
        arity=VARIADIC,
        layer=False,
        short=short,
        glyph=glyph,
        **more,
    )


BROADCAST = (
    "torch's broadcasting, batch aside: equal ranks, each pair of sizes equal or one of them 1"
)

register(
    _merge(
        "Concat",
        "joins tensors along the channels: `concat(a, b, …)`",
        infer_concat,
        "torch.cat",
        "concat",
        "‖",
        "[C₁, H, W], [C₂, H, W], … → [C₁ + C₂ + …, H, W]",
        "concat(a, b)",
        saves=Saves.NOTHING,
        written="concat({})",
        source="torch.cat([{}], dim=1)",
        overwritable=True,
    ),
    _merge(
        "Add",
        "elementwise sum with broadcasting: `a + b`",
        _infer_elementwise("+"),
        "operator.add",
        "+",
        "⊕",
        BROADCAST,
        "a + b",
        saves=Saves.NOTHING,
        written="+",
        source="+",
        accumulate="add_",
        overwritable=True,
        commutative=True,
    ),
    _merge(
        "Mul",
        "elementwise product with broadcasting: `a * b` (SE gates)",
        _infer_elementwise("*"),
        "operator.mul",
        "×",
        "⊗",
        BROADCAST,
        "a * gate",
        saves=Saves.INPUT,
        written="*",
        source="*",
        overwritable=True,
        commutative=True,
    ),
    OpSpec(
        name="Input",
        doc="a network's input, declared `input [C, H, W]`",
        family=Family.IO,
        params=(),
        infer=lambda args, inputs: (dict(args), args["type"]),
        count_params=NO_PARAMS,
        count_macs=NO_MACS,
        rf=ORIGIN,
        lowering=Lowering.INPUT,
        torch_ctor="",
        build=not_a_module,
        label=no_detail,
        shape_rule="the declared shape",
        params_rule="0",
        macs_rule="0",
        example="input [3, 224, 224]",
        arity=0,
        layer=False,
        saves=Saves.NOTHING,
    ),
)
