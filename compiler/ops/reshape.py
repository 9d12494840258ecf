"""Shape plumbing: Flatten, Dropout, Identity, ChannelShuffle. No parameters."""

from __future__ import annotations

from cnnc.compiler.ops import OpError, OpSpec, ParamSpec, expect_rank, register
from cnnc.compiler.types import TensorType


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
        raise OpError("E0305", f"`groups` must divide the channels of `ChannelShuffle`, but got "
                      f"channels={inp.channels}, groups={args['groups']}")
    return dict(args), inp


register(
    OpSpec(name="Flatten", params=(), infer=infer_flatten, family="reshape",
           torch_ctor="torch.nn.Flatten", view=True, doc="[C, H, W] → [C·H·W]"),
    OpSpec(name="Dropout", params=(ParamSpec("p", "p", "float", 0.5, minimum=0, maximum=1),), infer=infer_same,
           family="reshape", torch_ctor="torch.nn.Dropout", view=True,
           doc="zeroes a share `p` of elements while training; the identity at inference"),
    OpSpec(name="Identity", params=(), infer=infer_same, family="reshape", torch_ctor="torch.nn.Identity",
           view=True, doc="passes its input through"),
    OpSpec(name="ChannelShuffle", params=(ParamSpec("groups", "groups", "int", minimum=1),),
           infer=infer_shuffle, family="reshape", torch_ctor="torch.nn.ChannelShuffle",
           doc="interleaves the channels of `groups` groups (ShuffleNet)"),
)
