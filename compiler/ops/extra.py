"""Ops the modern zoo needs: stochastic depth, channel split, constant and learned scaling and
per-position Linear layers (EfficientNet, ShuffleNetV2, Inception-ResNet, ConvNeXt; ConvNeXt's
channel LayerNorm is in norm.py), and the zero op of cell search spaces (NAS-Bench-201's `none`).

`Zero` outputs zeros of its input's shape: its value depends on nothing, so elaboration drops what
feeds only a Zero (and a Zero from a sum), see `compiler/elaborate/zeros.py`. Its input may then be
an earlier tensor of another shape, read only for the batch size: `shape` (set by `infer`) keeps
the output's.

Every op here keeps the tensor in [C, H, W]: ConvNeXt's channels-last layers (torchvision permutes
to [N, H, W, C], applies nn.LayerNorm / nn.Linear, and permutes back) are described by what they
compute per position, so shapes, counts and receptive fields read like those of 1×1 convolutions.
Their parameters are shaped as torch's (`weight` [C_out, C_in] for a Linear), so weights load
unchanged.

The torch modules that run these ops live in `compiler/lower/layers.py`.
"""

from __future__ import annotations

from cnnc.compiler.ops.build import changed, positional
from cnnc.compiler.ops.reads import Reads
from cnnc.compiler.ops.spec import (
    NO_MACS,
    NO_PARAMS,
    POINTWISE,
    Family,
    Layer,
    Lowering,
    OpError,
    OpSpec,
    ParamKind,
    ParamSpec,
    RFAxes,
    Saves,
    expect_rank,
    no_detail,
    register,
)
from cnnc.compiler.types import TensorType
from cnnc.dsl.records import replace

LAYERS = "cnnc.compiler.lower.layers."  # where the torch modules of these ops are defined


def infer_same(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    return dict(args), inp


def infer_zero(args: dict, inputs) -> tuple[dict, TensorType]:
    """The input's shape, or the `shape` kept when elaboration rewired the Zero (module docstring)."""
    (inp,) = inputs
    shape = tuple(args.get("shape", inp.shape))
    return dict(args, shape=shape), TensorType(shape)


READS_NOTHING = Reads(1, 1, lambda r: None)  # no output position reads any input position


def zero_field(args, inputs) -> RFAxes:
    """none: the zeros read no input position"""
    return RFAxes(READS_NOTHING, READS_NOTHING)


def infer_chunk(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    expect_rank(inp, 3, "Chunk")
    chunks, index = args["chunks"], args["index"]
    if inp.channels % chunks:
        raise OpError(
            "E0305",
            "`chunks` must divide the channels of `Chunk`, but got "
            f"channels={inp.channels}, chunks={chunks}",
        )
    if index >= chunks:
        raise OpError(
            "E0405",
            f"`Chunk` index must be below `chunks` ({chunks}), but got {index}",
            help=f"the chunks are numbered 0 to {chunks - 1}",
        )
    return dict(args), TensorType((inp.channels // chunks, *inp.spatial))


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


def _extra(
    name: str,
    doc: str,
    family: Family,
    params,
    infer,
    shape_rule: str,
    example: str,
    *,
    count_params=NO_PARAMS,
    params_rule: str = "0",
    count_macs=NO_MACS,
    macs_rule: str = "0",
    lowering: Lowering = Lowering.MODULE,
    build=None,
    label=no_detail,
    **more,
) -> OpSpec:
    """An op whose module is the class of lower/layers.py named as the op, built from its
    parameters in order unless `build` says otherwise."""
    return OpSpec(
        name=name,
        doc=doc,
        family=family,
        params=tuple(params),
        infer=infer,
        count_params=count_params,
        count_macs=count_macs,
        rf=POINTWISE,
        lowering=lowering,
        torch_ctor=LAYERS + name,
        build=build or positional(*(p.torch_name for p in params)),
        label=label,
        shape_rule=shape_rule,
        params_rule=params_rule,
        macs_rule=macs_rule,
        example=example,
        **more,
    )


def build_layer_scale(node) -> Layer:
    """A bare parameter [C, 1, 1] filled with `init` (see `Lowering.PARAMETER`)."""
    return Layer("Parameter", ((node.args["channels"], 1, 1), node.args["init"]), {})


ZERO = replace(
    _extra(
        "Zero",
        "zeros of the input's shape: a cut edge of a cell (NAS-Bench-201's `none`)",
        Family.RESHAPE,
        (),
        infer_zero,
        "any shape, unchanged (all zeros); what feeds only a Zero is dropped",
        "Zero",
        build=lambda node: Layer(LAYERS + "Zero", (tuple(node.args["shape"]),), {}),
        saves=Saves.NOTHING,
        overwritable=True,
    ),
    rf=zero_field,
)

register(
    ZERO,
    _extra(
        "StochasticDepth",
        "drops a residual branch per sample with probability `p` while training",
        Family.RESHAPE,
        (ParamSpec("p", "p", ParamKind.FLOAT, 0.0, minimum=0, maximum=1),),
        infer_same,
        "any shape, unchanged",
        "StochasticDepth(0.1)",
        view=True,
        saves=Saves.NOTHING,
        training_tensor=True,
    ),
    _extra(
        "Chunk",
        "channel group `index` of `chunks`: `x.chunk(chunks, 1)[index]` (ShuffleNetV2)",
        Family.RESHAPE,
        (
            ParamSpec("chunks", "chunks", ParamKind.INT, minimum=1),
            ParamSpec("index", "index", ParamKind.INT, minimum=0),
        ),
        infer_chunk,
        "[C, H, W] → [C / chunks, H, W]",
        "Chunk(2, 0)",
        view=True,
        saves=Saves.NOTHING,
    ),
    _extra(
        "Scale",
        "multiplies by a constant, e.g. Inception-ResNet's residual scaling",
        Family.ACT,
        (ParamSpec("value", "value", ParamKind.FLOAT),),
        infer_same,
        "any shape, unchanged",
        "Scale(0.17)",
        saves=Saves.NOTHING,
    ),
    _extra(
        "PointwiseLinear",
        "a Linear at every position, nn.Linear's weights (ConvNeXt's MLP)",
        Family.LINEAR,
        (
            ParamSpec("out_features", "out_features", ParamKind.INT, minimum=1),
            ParamSpec("bias", "bias", ParamKind.BOOL, True),
        ),
        infer_pointwise,
        "[C, H, W] → [out_features, H, W]",
        "PointwiseLinear(384)",
        count_params=pointwise_params,
        params_rule="C · out_features + out_features (the bias)",
        count_macs=pointwise_macs,
        macs_rule="H · W · C · out_features",
        build=lambda node: Layer(
            LAYERS + "PointwiseLinear",
            (node.args["in_features"], node.args["out_features"]),
            changed(node.args, {"bias": True}),
        ),
        label=lambda args: f", {args.get('out_features', '?')}",
        inferred="in_features",
        saves=Saves.INPUT,
    ),
    _extra(
        "LayerScale",
        "a learned per-channel scale [C, 1, 1] from `init` (CaiT, ConvNeXt)",
        Family.NORM,
        (ParamSpec("init", "init", ParamKind.FLOAT, 1e-6),),
        infer_layer_scale,
        "[C, H, W] → [C, H, W]",
        "LayerScale(1e-6)",
        count_params=lambda args, inputs, out: args["channels"],
        params_rule="C",
        build=build_layer_scale,
        lowering=Lowering.PARAMETER,
        saves=Saves.INPUT,
    ),
)
