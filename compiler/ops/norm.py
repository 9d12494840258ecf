"""Normalisation: BatchNorm (1-d or 2-d by the input's rank), FrozenBatchNorm, GroupNorm,
InstanceNorm, LayerNorm over channels and LocalResponseNorm (AlexNet).

None counts multiply-accumulates (FlopCounterMode counts none for them either). Their parameters
are the affine weight and bias, two per channel, when `affine`; running statistics are buffers.
"""

from __future__ import annotations

from cnnc.compiler.ops.build import changed, ctor
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
    Saves,
    expect_rank,
    no_detail,
    register,
)
from cnnc.compiler.ops.text import one
from cnnc.compiler.types import TensorType

LAYERS = "cnnc.compiler.lower.layers."  # where the torch modules torch.nn lacks are defined
SAME = "[C, H, W] → [C, H, W]"
SAME_OR_VECTOR = "[C, H, W] → [C, H, W], or [N] → [N] with C = N"


def _map_or_vector(op: str, inp: TensorType) -> None:
    if inp.rank not in (1, 3):
        raise OpError("E0304", f"`{op}` needs [C, H, W] or [N], but got {inp}")


def infer_batchnorm(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    _map_or_vector("BatchNorm", inp)
    return dict(args, num_features=inp.channels), inp


def batchnorm_params(args, inputs, out) -> int:
    return 2 * args["num_features"] if args["affine"] else 0


def build_batchnorm(node) -> Layer:
    name = "BatchNorm1d" if node.type.rank == 1 else "BatchNorm2d"  # [N] after Flatten
    return Layer(
        name,
        (node.args["num_features"],),
        changed(node.args, {"eps": 1e-5, "momentum": 0.1, "affine": True}),
    )


def infer_frozen(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    expect_rank(
        inp, 3, "FrozenBatchNorm", help="torchvision's FrozenBatchNorm2d runs on feature maps"
    )
    return dict(args, num_features=inp.channels), inp


def infer_groupnorm(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    _map_or_vector("GroupNorm", inp)
    if inp.channels % args["num_groups"]:
        raise OpError(
            "E0305",
            f"`groups` must divide the channels of `GroupNorm`, but got "
            f"channels={inp.channels}, groups={args['num_groups']}",
            help=f"choose groups among the divisors of {inp.channels}",
        )
    return dict(args, num_channels=inp.channels), inp


def infer_instancenorm(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    expect_rank(
        inp, 3, "InstanceNorm", help="InstanceNorm normalises each channel over its positions"
    )
    if (
        inp.numel == inp.channels
    ):  # torch refuses one position while training; it would be all zeros
        raise OpError(
            "E0304",
            f"`InstanceNorm` needs more than one position to normalise over, but got {inp}",
            help="normalise before the map is pooled to 1×1, or use `LayerNorm` across channels",
        )
    return dict(args, num_features=inp.channels), inp


def infer_layernorm(op: str):
    def infer(args: dict, inputs) -> tuple[dict, TensorType]:
        (inp,) = inputs
        if op == "LayerNorm":
            _map_or_vector(op, inp)
        else:
            expect_rank(inp, 3, op, help=f"{op} normalises the channels of each position")
        return dict(args, normalized_shape=inp.channels), inp

    return infer


def layernorm_params(args, inputs, out) -> int:
    if not args.get("elementwise_affine", True):
        return 0
    return args["normalized_shape"] * (2 if args.get("bias", True) else 1)


def build_layernorm(node) -> Layer:
    """nn.LayerNorm on a vector; on a map, lower/layers.py's LayerNorm2d (channels of each position)."""
    name = "LayerNorm" if node.type.rank == 1 else ctor(node)
    kwargs = changed(node.args, {"eps": 1e-5, "elementwise_affine": True, "bias": True})
    return Layer(name, (node.args["normalized_shape"],), kwargs)


def affine_params(args, inputs, out) -> int:
    channels = args.get("num_features", args.get("num_channels"))
    return 2 * channels if args["affine"] else 0


def infer_lrn(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    if inp.rank != 3:
        raise OpError("E0304", f"`LocalResponseNorm` needs a [C, H, W] feature map, but got {inp}")
    widest = 2 * inp.channels + 1
    if (
        args["size"] > widest
    ):  # torch pads the channels by `size`: a huge window costs memory, not meaning
        raise OpError(
            "E0405",
            f"`LocalResponseNorm` size must be at most 2·channels + 1 = {widest} for {inp}, "
            f"but got {args['size']}",
            f"a window of {widest} channels already sees every channel",
        )
    return dict(args), inp


def _norm(
    name: str,
    doc: str,
    params,
    infer,
    count_params,
    torch_ctor: str,
    build,
    params_rule: str,
    example: str,
    shape_rule: str = SAME,
    label=no_detail,
    **more,
) -> OpSpec:
    return OpSpec(
        name=name,
        doc=doc,
        family=Family.NORM,
        params=params,
        infer=infer,
        count_params=count_params,
        count_macs=NO_MACS,
        rf=POINTWISE,
        lowering=Lowering.MODULE,
        torch_ctor=torch_ctor,
        build=build,
        label=label,
        shape_rule=shape_rule,
        params_rule=params_rule,
        macs_rule="0",
        example=example,
        **more,
    )


EPS = ParamSpec("eps", "eps", ParamKind.FLOAT, 1e-5, above=0)  # torch: positive while training
MOMENTUM = ParamSpec("momentum", "momentum", ParamKind.FLOAT, 0.1, minimum=0, maximum=1)

register(
    _norm(
        "BatchNorm",
        "batch normalisation over channels",
        (EPS, MOMENTUM, ParamSpec("affine", "affine", ParamKind.BOOL, True)),
        infer_batchnorm,
        batchnorm_params,
        "torch.nn.BatchNorm2d",
        build_batchnorm,
        "2·C when affine (running mean and variance are buffers)",
        "BatchNorm",
        shape_rule=SAME_OR_VECTOR + " (BatchNorm1d)",
        aliases=("BN",),
        positional=0,
        inferred="num_features",
        saves=Saves.INPUT,
        overwritable=True,
    ),
    _norm(
        "FrozenBatchNorm",
        "BatchNorm with fixed statistics and affine, torchvision's FrozenBatchNorm2d",
        (ParamSpec("eps", "eps", ParamKind.FLOAT, 1e-5, above=0),),
        infer_frozen,
        NO_PARAMS,
        LAYERS + "FrozenBatchNorm2d",
        lambda node: Layer(
            ctor(node), (node.args["num_features"],), changed(node.args, {"eps": 1e-5})
        ),
        "0 (weight, bias, running_mean and running_var are buffers)",
        "FrozenBatchNorm",
        positional=0,
        inferred="num_features",
        saves=Saves.NOTHING,
    ),
    _norm(
        "GroupNorm",
        "normalisation over groups of channels of each sample",
        (
            ParamSpec("groups", "num_groups", ParamKind.INT, minimum=1),
            EPS,
            ParamSpec("affine", "affine", ParamKind.BOOL, True),
        ),
        infer_groupnorm,
        affine_params,
        "torch.nn.GroupNorm",
        lambda node: Layer(
            ctor(node),
            (node.args["num_groups"], node.args["num_channels"]),
            changed(node.args, {"eps": 1e-5, "affine": True}),
        ),
        "2·C when affine",
        "GroupNorm(32)",
        shape_rule=SAME_OR_VECTOR,
        label=one("num_groups", "g"),
        positional=1,
        inferred="num_channels",
        saves=Saves.INPUT,
    ),
    _norm(
        "InstanceNorm",
        "normalisation of each channel of each sample over its positions",
        (
            EPS,
            MOMENTUM,
            ParamSpec("affine", "affine", ParamKind.BOOL, False),
            ParamSpec("track_running_stats", "track_running_stats", ParamKind.BOOL, False),
        ),
        infer_instancenorm,
        affine_params,
        "torch.nn.InstanceNorm2d",
        lambda node: Layer(
            ctor(node),
            (node.args["num_features"],),
            changed(
                node.args,
                {"eps": 1e-5, "momentum": 0.1, "affine": False, "track_running_stats": False},
            ),
        ),
        "2·C when affine",
        "InstanceNorm(affine = true)",
        positional=0,
        inferred="num_features",
        saves=Saves.INPUT,
    ),
    _norm(
        "LayerNorm",
        "layer normalisation over the channels of each position (or a vector)",
        (
            EPS,
            ParamSpec("elementwise_affine", "elementwise_affine", ParamKind.BOOL, True),
            ParamSpec("bias", "bias", ParamKind.BOOL, True),
        ),
        infer_layernorm("LayerNorm"),
        layernorm_params,
        LAYERS + "LayerNorm2d",
        build_layernorm,
        "C (weight) + C (bias) when elementwise_affine",
        "LayerNorm(eps = 1e-6)",
        shape_rule=SAME_OR_VECTOR + " (nn.LayerNorm)",
        positional=0,
        inferred="normalized_shape",
        saves=Saves.INPUT,
    ),
    _norm(
        "LayerNorm2d",
        "layer normalisation over the channels of each position (ConvNeXt's, eps 1e-6)",
        (ParamSpec("eps", "eps", ParamKind.FLOAT, 1e-6, above=0),),
        infer_layernorm("LayerNorm2d"),
        lambda args, inputs, out: 2 * args["normalized_shape"],
        LAYERS + "LayerNorm2d",
        lambda node: Layer(ctor(node), (node.args["normalized_shape"],), {"eps": node.args["eps"]}),
        "2·C",
        "LayerNorm2d",
        positional=0,
        inferred="normalized_shape",
        saves=Saves.INPUT,
    ),
    # F.local_response_norm's backward keeps its input, the padded square (counted without its
    # size − 1 border planes), the power's base and the denominator: the input and 3 tensors
    _norm(
        "LocalResponseNorm",
        "AlexNet's cross-channel normalisation",
        (
            ParamSpec("size", "size", ParamKind.INT, minimum=1),
            ParamSpec(
                "alpha", "alpha", ParamKind.FLOAT, 1e-4, minimum=0
            ),  # k + α·Σx² must stay positive
            ParamSpec("beta", "beta", ParamKind.FLOAT, 0.75),
            ParamSpec("k", "k", ParamKind.FLOAT, 1.0, above=0),
        ),  # k = 0 divides by zero on a zero input
        infer_lrn,
        NO_PARAMS,
        "torch.nn.LocalResponseNorm",
        lambda node: Layer(
            ctor(node),
            (node.args["size"],),
            changed(node.args, {"alpha": 1e-4, "beta": 0.75, "k": 1.0}),
        ),
        "0",
        "LocalResponseNorm(5, alpha = 1e-4, beta = 0.75, k = 2)",
        label=one("size"),
        aliases=("LRN",),
        short="LRN",
        saves=Saves.INPUT,
        saved_tensors=3,
    ),
)
