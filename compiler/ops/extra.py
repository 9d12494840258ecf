"""Ops the modern zoo needs: stochastic depth, channel split, constant and learned scaling, channel
LayerNorm and per-position Linear layers (EfficientNet, ShuffleNetV2, Inception-ResNet, ConvNeXt).

Every op here keeps the tensor in [C, H, W]: ConvNeXt's channels-last layers (torchvision permutes
to [N, H, W, C], applies nn.LayerNorm / nn.Linear, and permutes back) are described by what they
compute per position, so shapes, counts and receptive fields read like those of 1×1 convolutions.
Their parameters are shaped as torch's (`weight` [C_out, C_in] for a Linear), so weights load
unchanged.

The torch modules that run these ops live in `compiler/lower/layers.py`.
"""

from __future__ import annotations

from cnnc.compiler.ops import OpError, OpSpec, ParamSpec, expect_rank, register
from cnnc.compiler.types import TensorType

LAYERS = "cnnc.compiler.lower.layers."  # where the torch modules of these ops are defined

# Ops whose one parameter is registered directly on the enclosing module under the op's own name
# (torchvision's ConvNeXt keeps `layer_scale` as a bare nn.Parameter of its block), not in a
# submodule.
BARE_PARAMETER = frozenset({"LayerScale"})


def infer_same(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    return dict(args), inp


def infer_chunk(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    expect_rank(inp, 3, "Chunk")
    chunks, index = args["chunks"], args["index"]
    if inp.channels % chunks:
        raise OpError("E0305", "`chunks` must divide the channels of `Chunk`, but got "
                      f"channels={inp.channels}, chunks={chunks}")
    if index >= chunks:
        raise OpError("E0405", f"`Chunk` index must be below `chunks` ({chunks}), but got {index}",
                      help=f"the chunks are numbered 0 to {chunks - 1}")
    return dict(args), TensorType((inp.channels // chunks, *inp.spatial))


def infer_channel_norm(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    expect_rank(inp, 3, "LayerNorm2d", help="LayerNorm2d normalises the channels of each position")
    return dict(args, normalized_shape=inp.channels), inp


def infer_pointwise(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    expect_rank(inp, 3, "PointwiseLinear", help="on a vector, use `Linear`")
    return dict(args, in_features=inp.channels), TensorType((args["out_features"], *inp.spatial))


def infer_layer_scale(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    expect_rank(inp, 3, "LayerScale")
    return dict(args, channels=inp.channels), inp


def pointwise_params(args, inputs, out) -> int:
    bias = args["out_features"] if args["bias"] else 0
    return args["in_features"] * args["out_features"] + bias


def pointwise_macs(args, inputs, out) -> int:
    """H·W·C_in·C_out: a Linear per position, as torch's matmul over [N·H·W, C_in] counts it."""
    return out.numel * args["in_features"]


register(
    OpSpec(
        name="StochasticDepth",
        params=(ParamSpec("p", "p", "float", 0.0, minimum=0, maximum=1),),
        infer=infer_same,
        family="reshape",
        torch_ctor=LAYERS + "StochasticDepth",
        view=True,
        doc="drops a whole residual branch per sample with probability `p` while training "
        "(mode \"row\", Huang et al. 2016); the identity at inference: `StochasticDepth(p)`",
    ),
    OpSpec(
        name="Chunk",
        params=(
            ParamSpec("chunks", "chunks", "int", minimum=1),
            ParamSpec("index", "index", "int", minimum=0),
        ),
        infer=infer_chunk,
        family="reshape",
        torch_ctor=LAYERS + "Chunk",
        view=True,
        doc="one of `chunks` equal channel groups, `x.chunk(chunks, dim=1)[index]` "
        "(ShuffleNetV2's split): `Chunk(chunks, index)`",
    ),
    OpSpec(
        name="Scale",
        params=(ParamSpec("value", "value", "float"),),
        infer=infer_same,
        family="act",
        torch_ctor=LAYERS + "Scale",
        doc="multiplies by a constant, e.g. Inception-ResNet's residual scaling: `Scale(0.17)`",
    ),
    OpSpec(
        name="LayerNorm2d",
        params=(ParamSpec("eps", "eps", "float", 1e-6, above=0),),
        infer=infer_channel_norm,
        family="norm",
        torch_ctor=LAYERS + "LayerNorm2d",
        count_params=lambda args, inputs, out: 2 * args["normalized_shape"],
        doc="layer normalisation over the channels of each position (ConvNeXt): "
        "`LayerNorm2d(eps = 1e-6)`",
        positional=0,
        inferred="normalized_shape",
    ),
    OpSpec(
        name="PointwiseLinear",
        params=(
            ParamSpec("out_features", "out_features", "int", minimum=1),
            ParamSpec("bias", "bias", "bool", True),
        ),
        infer=infer_pointwise,
        family="linear",
        torch_ctor=LAYERS + "PointwiseLinear",
        count_params=pointwise_params,
        count_macs=pointwise_macs,
        doc="a Linear applied at every position, [C, H, W] → [out_features, H, W], weights shaped "
        "as nn.Linear's (ConvNeXt's channels-last MLP): `PointwiseLinear(out_features, bias = true)`",
        inferred="in_features",
    ),
    OpSpec(
        name="LayerScale",
        params=(ParamSpec("init", "init", "float", 1e-6),),
        infer=infer_layer_scale,
        family="norm",
        torch_ctor=LAYERS + "LayerScale",
        count_params=lambda args, inputs, out: args["channels"],
        doc="a learned per-channel scale [C, 1, 1] starting at `init` (CaiT, ConvNeXt): "
        "`LayerScale(init = 1e-6)`",
    ),
)
