"""Shape plumbing: Flatten, Reshape, Dropout, Identity, ChannelShuffle. No parameters, no MACs."""

from __future__ import annotations

import math

from cnnc.compiler.ops.build import changed, ctor, positional
from cnnc.compiler.ops.spec import (
    GLOBAL,
    NO_MACS,
    NO_PARAMS,
    POINTWISE,
    REGROUPED,
    Family,
    Layer,
    Lowering,
    OpError,
    OpSpec,
    ParamKind,
    ParamSpec,
    Saves,
    expect_rank,
    no_detail,
    register,
)
from cnnc.compiler.ops.text import one
from cnnc.compiler.types import TensorType

LAYERS = "cnnc.compiler.lower.layers."


def infer_flatten(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    return dict(args), TensorType((inp.numel,))


def infer_same(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    return dict(args), inp


def infer_shuffle(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    expect_rank(inp, 3, "ChannelShuffle")
    if inp.channels % args["groups"]:
        raise OpError(
            "E0305",
            f"`groups` must divide the channels of `ChannelShuffle`, but got "
            f"channels={inp.channels}, groups={args['groups']}",
        )
    return dict(args), inp


def infer_reshape(args: dict, inputs) -> tuple[dict, TensorType]:
    """The target shape, batch aside, with at most one -1 standing for what the rest leaves."""
    (inp,) = inputs
    shape = args["shape"]
    if len(shape) not in (1, 3):
        raise OpError(
            "E0405",
            f"`Reshape` makes a vector [N] or a map [C, H, W], but got {len(shape)} dimensions",
            help="cnnc's ops take [N] or [C, H, W]; write the target as one of them",
        )
    known = math.prod(d for d in shape if d != -1)
    if -1 in shape:
        if inp.numel % known:
            raise OpError(
                "E0405",
                f"`Reshape` to {_text(shape)} needs a multiple of {known:,} elements, "
                f"but {inp} has {inp.numel:,}",
            )
        shape = tuple(inp.numel // known if d == -1 else d for d in shape)
    elif known != inp.numel:
        raise OpError(
            "E0405",
            f"`Reshape` to {_text(shape)} needs {known:,} elements, but {inp} has {inp.numel:,}",
            help="write one dimension as -1 to have it computed",
        )
    return dict(args), TensorType(shape)


def reshape_rf(args, inputs):
    """A reshape that keeps the spatial size keeps each position; to or from a vector, every output
    reads the one position there is or some of all; from a map to another map, positions regroup."""
    (inp,) = inputs
    shape = tuple(args["shape"])
    if len(shape) == inp.rank == 3:
        return POINTWISE if shape[1:] == inp.spatial else REGROUPED
    return GLOBAL


def _text(shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _plumbing(
    name: str,
    doc: str,
    infer,
    torch_ctor: str,
    build,
    shape_rule: str,
    example: str,
    params=(),
    rf=POINTWISE,
    label=no_detail,
    **more,
) -> OpSpec:
    return OpSpec(
        name=name,
        doc=doc,
        family=Family.RESHAPE,
        params=tuple(params),
        infer=infer,
        count_params=NO_PARAMS,
        count_macs=NO_MACS,
        rf=rf,
        lowering=Lowering.MODULE,
        torch_ctor=torch_ctor,
        build=build,
        label=label,
        shape_rule=shape_rule,
        params_rule="0",
        macs_rule="0",
        example=example,
        **more,
    )


register(
    _plumbing(
        "Flatten",
        "[C, H, W] → [C·H·W]",
        infer_flatten,
        "torch.nn.Flatten",
        positional(),
        "[C, H, W] → [C·H·W]",
        "Flatten",
        rf=GLOBAL,
        view=True,
        saves=Saves.NOTHING,
        reshape=True,
        tabled=True,
    ),
    _plumbing(
        "Reshape",
        "reshapes each sample, batch aside; one dimension may be -1",
        infer_reshape,
        LAYERS + "Reshape",
        positional("shape"),
        "[…] → shape, its -1 replaced by what the other dimensions leave; as many elements",
        "Reshape([-1, 8, 8])",
        params=(ParamSpec("shape", "shape", ParamKind.SHAPE),),
        rf=reshape_rf,
        label=lambda args: _text(args.get("shape", ())),
        saves=Saves.NOTHING,
        reshape=True,
    ),
    _plumbing(
        "Dropout",
        "zeroes a share `p` of elements while training; the identity at inference",
        infer_same,
        "torch.nn.Dropout",
        lambda node: Layer(ctor(node), (), changed(node.args, {"p": 0.5})),
        "any shape, unchanged",
        "Dropout(0.2)",
        params=(ParamSpec("p", "p", ParamKind.FLOAT, 0.5, minimum=0, maximum=1),),
        label=one("p"),
        view=True,
        saves=Saves.NOTHING,
        saved_bytes=1,
        training_tensor=True,
    ),
    _plumbing(
        "Identity",
        "passes its input through",
        infer_same,
        "torch.nn.Identity",
        positional(),
        "any shape, unchanged",
        "Identity",
        view=True,
        saves=Saves.NOTHING,
    ),
    _plumbing(
        "ChannelShuffle",
        "interleaves the channels of `groups` groups (ShuffleNet)",
        infer_shuffle,
        "torch.nn.ChannelShuffle",
        positional("groups"),
        "[C, H, W] → [C, H, W]",
        "ChannelShuffle(2)",
        params=(ParamSpec("groups", "groups", ParamKind.INT, minimum=1),),
        label=one("groups"),
        saves=Saves.NOTHING,
    ),
)
