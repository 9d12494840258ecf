"""Ops that change the spatial grid: Upsample (by a factor, to a size, or to another tensor's size),
PixelShuffle, Pad and Crop. No parameters, no MACs (FlopCounterMode counts no interpolation).

Receptive fields follow the positions each output position reads (`compiler/ops/reads.py`): one
input position in nearest mode and for a pixel shuffle, two in bilinear mode (one where the source
falls on a pixel), every ratio a pair of integers.

`Upsample(like = t)` and `Crop(like = t)` read a second tensor for its size only (see the registry's
docstring): the node's inputs are (x, t), and the module computes the size from `t` when it runs, so
the network is right at any input size, not only the declared one.
"""

from __future__ import annotations

import math

from cnnc.compiler.ops import reads
from cnnc.compiler.ops.build import changed, ctor
from cnnc.compiler.ops.spec import (
    NO_MACS,
    NO_PARAMS,
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
    register,
)
from cnnc.compiler.ops.text import cross, pair
from cnnc.compiler.types import TensorType

LAYERS = "cnnc.compiler.lower.layers."
MODES = ("nearest", "bilinear")
RATIO_DENOMINATOR = (
    1024  # a scale factor's 1 / factor, as the nearest fraction with a denominator this small
)
PAD_MODES = {
    "constant": "ConstantPad2d",
    "reflect": "ReflectionPad2d",
    "replicate": "ReplicationPad2d",
}


def _map(op: str, t: TensorType, what: str = "") -> None:
    """E0304 unless `t` (the input, or the tensor `what` names) is a [C, H, W] map."""
    if what and t.rank != 3:
        raise OpError(
            "E0304",
            f"{what} of `{op}` must be a [C, H, W] feature map, but got {t}",
            help="its height and width are what is read: name a feature map",
        )
    expect_rank(t, 3, op)


# -- Upsample ---------------------------------------------------------------------------------------


def infer_upsample(args: dict, inputs) -> tuple[dict, TensorType]:
    inp = inputs[0]
    _map("Upsample", inp)
    args = {k: v for k, v in args.items() if k != "like"}  # given, it is the second input
    given = [k for k in ("size", "scale_factor") if args.get(k) is not None] + ["like"] * (
        len(inputs) - 1
    )
    if len(given) != 1:
        raise OpError(
            "E0405",
            "`Upsample` needs exactly one of `size`, `scale_factor` or `like`, but got "
            + (", ".join(f"`{k}`" for k in given) if given else "none"),
            help="e.g. `Upsample(scale_factor = 2)` or `Upsample(like = skip)`",
        )
    if args["align_corners"] and args["mode"] == "nearest":
        raise OpError(
            "E0405",
            "`align_corners` applies to interpolating modes only, but `mode` is nearest",
            help='write `mode = "bilinear"` or drop `align_corners`',
        )
    if len(inputs) == 2:
        _map("Upsample", inputs[1], "`like`")
        spatial = inputs[1].spatial
    elif args.get("size") is not None:
        spatial = args["size"]
    else:
        spatial = tuple(math.floor(n * s) for n, s in zip(inp.spatial, args["scale_factor"]))
        for axis, n, s, o in zip(("height", "width"), inp.spatial, args["scale_factor"], spatial):
            if o <= 0:
                raise OpError(
                    "E0303",
                    f"`Upsample` shrinks the {axis} to {o}: ⌊{n} · {s:g}⌋ ≤ 0",
                    help=f"use a scale factor of at least {1 / n:.3g}",
                )
    return dict(args), TensorType((inp.channels, *spatial))


def upsample_rf(args, inputs) -> RFAxes:
    """Nearest: output o reads input ⌊o·r⌋. Bilinear: o interpolates inputs i and i + 1 at
    (o + ½)·r − ½ (o·(in − 1)/(out − 1) with align_corners), one of them where that is whole.
    r = in / out, or 1 / scale_factor when the factor is given, as torch computes it (nearest reads
    input o when out = in and ⌊o / 2⌋ when out = 2·in, as torch does whatever the factor)."""
    from fractions import Fraction  # here: only a scale factor needs it (start-up)

    inp = inputs[0]
    out = inputs[1].spatial if len(inputs) == 2 else args.get("size")
    axes = []
    for axis in range(2):
        n = inp.spatial[axis]
        if out is None:
            ratio = Fraction(1 / args["scale_factor"][axis]).limit_denominator(RATIO_DENOMINATOR)
            num, den = ratio.numerator, ratio.denominator
        else:
            num, den = n, out[axis]
        o = out[axis] if out is not None else math.floor(n * args["scale_factor"][axis])
        if args["mode"] == "nearest" and o in (n, 2 * n):  # torch's own cases, whatever the factor
            axes.append(reads.nearest(n, o))
        elif args["mode"] == "nearest":
            axes.append(reads.nearest(num, den))
        elif args["align_corners"]:
            axes.append(reads.linear(n - 1, o - 1, True) if o > 1 else reads.window(1, 0, 0))
        else:
            axes.append(reads.linear(num, den, False))
    return RFAxes(*axes)


def build_upsample(node) -> Layer:
    a = node.args
    corners = {"align_corners": a["align_corners"]} if a["mode"] != "nearest" else {}
    if len(node.inputs) == 2:  # resize to the second input's size, whatever it is when it runs
        return Layer(LAYERS + "Resize", (), changed(a, {"mode": "nearest"}) | corners)
    kwargs = changed(a, {"size": None, "scale_factor": None, "mode": "nearest"})
    return Layer(ctor(node), (), kwargs | corners)


def upsample_label(args) -> str:
    if args.get("size") is not None:
        text = f"→ {cross(args['size'])}"
    elif args.get("scale_factor") is not None:
        h, w = pair(args["scale_factor"])
        text = f"×{h:g}" if h == w else f"×{h:g}×{w:g}"
    else:
        text = "like"  # to the size of its second input
    return text + ("" if args.get("mode", "nearest") == "nearest" else f" {args['mode']}")


# -- PixelShuffle ---------------------------------------------------------------------------------------


def infer_pixel_shuffle(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    _map("PixelShuffle", inp)
    r = args["upscale_factor"]
    if inp.channels % (r * r):
        raise OpError(
            "E0305",
            f"`upscale_factor`² = {r * r} must divide the channels of `PixelShuffle`, "
            f"but got channels={inp.channels}",
            help=f"give the layer before it a multiple of {r * r} channels",
        )
    return dict(args), TensorType((inp.channels // (r * r), inp.spatial[0] * r, inp.spatial[1] * r))


def pixel_shuffle_rf(args, inputs) -> RFAxes:
    """Output o reads input ⌊o / r⌋ (r = upscale_factor)."""
    r = args["upscale_factor"]
    return RFAxes(reads.nearest(1, r), reads.nearest(1, r))


# -- Pad --------------------------------------------------------------------------------------------


def infer_pad(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    _map("Pad", inp)
    left, right, top, bottom = args["padding"]
    mode = args["mode"]
    if mode != "constant" and args["value"] != 0:
        raise OpError(
            "E0405",
            f"`value` fills the border in mode constant only, but `mode` is {mode}",
            help='drop `value`, or write `mode = "constant"`',
        )
    if mode == "reflect":
        for axis, size, sides in (
            ("height", inp.spatial[0], (top, bottom)),
            ("width", inp.spatial[1], (left, right)),
        ):
            if max(sides) >= size:
                raise OpError(
                    "E0405",
                    f"reflect padding must be smaller than the {axis} ({size}), but got "
                    f"{max(sides)}",
                    help='pad less, or use `mode = "replicate"`',
                )
    return dict(args), TensorType(
        (inp.channels, inp.spatial[0] + top + bottom, inp.spatial[1] + left + right)
    )


def build_pad(node) -> Layer:
    a = node.args
    padding = a["padding"][0] if len(set(a["padding"])) == 1 else a["padding"]
    name = PAD_MODES[a["mode"]]
    return Layer(name, (padding, a["value"]) if a["mode"] == "constant" else (padding,), {})


def pad_label(args) -> str:
    sides = args.get("padding", "?")
    text = (
        str(sides[0])
        if isinstance(sides, tuple) and len(set(sides)) == 1
        else ",".join(map(str, sides))
        if isinstance(sides, tuple)
        else str(sides)
    )
    mode = args.get("mode", "constant")
    return text + ("" if mode == "constant" else f" {mode}")


def pad_rf(args, inputs) -> RFAxes:
    """Output o reads input o − top (o − left along the width)."""
    left, _, top, _ = args["padding"]
    return RFAxes(reads.shift(-top), reads.shift(-left))


# -- Crop -------------------------------------------------------------------------------------------


def infer_crop(args: dict, inputs) -> tuple[dict, TensorType]:
    inp, like = inputs
    args = {k: v for k, v in args.items() if k != "like"}
    _map("Crop", inp)
    _map("Crop", like, "`like`")
    for axis, n, m in zip(("height", "width"), inp.spatial, like.spatial):
        if m > n:
            raise OpError(
                "E0303",
                f"`Crop` cannot grow the {axis}: the input is {n} and `like` is {m}",
                help="crop the larger tensor to the smaller one, or pad with `Pad`",
            )
    return dict(args), TensorType((inp.channels, *like.spatial))


def crop_offsets(inp: TensorType, like: TensorType) -> tuple[int, int]:
    """The top-left corner of the centred window: (H − h) // 2, (W − w) // 2."""
    return tuple((n - m) // 2 for n, m in zip(inp.spatial, like.spatial))


def crop_rf(args, inputs) -> RFAxes:
    """Output o reads input o + the corner's row (column along the width)."""
    top, left = crop_offsets(*inputs)
    return RFAxes(reads.shift(top), reads.shift(left))


register(
    OpSpec(
        name="Upsample",
        doc="resizes by a factor, to a size, or to another tensor's size (`like`)",
        family=Family.RESIZE,
        params=(
            ParamSpec("size", "size", ParamKind.PAIR_OR_NONE, None, minimum=1),
            ParamSpec("scale_factor", "scale_factor", ParamKind.FLOATS, None, above=0),
            ParamSpec("mode", "mode", ParamKind.CHOICE, "nearest", choices=MODES),
            ParamSpec("align_corners", "align_corners", ParamKind.BOOL, False),
            ParamSpec("like", "like", ParamKind.TENSOR, None),
        ),
        infer=infer_upsample,
        count_params=NO_PARAMS,
        count_macs=NO_MACS,
        rf=upsample_rf,
        lowering=Lowering.MODULE,
        torch_ctor="torch.nn.Upsample",
        build=build_upsample,
        label=upsample_label,
        shape_rule="[C, H, W] → [C, ⌊H·scale_factor⌋, ⌊W·scale_factor⌋], or [C, *size], or [C, h, w] "
        "for `like` a [c, h, w] map (read when the network runs, at any input size)",
        params_rule="0",
        macs_rule="0 (interpolation is no multiply-accumulate of a layer)",
        example='Upsample(like = skip, mode = "bilinear")',
        arity=2,
        saves=Saves.NOTHING,
    ),
    OpSpec(
        name="PixelShuffle",
        doc="moves channels into space: [C·r², H, W] → [C, r·H, r·W] (sub-pixel conv)",
        family=Family.RESIZE,
        params=(ParamSpec("upscale_factor", "upscale_factor", ParamKind.INT, minimum=1),),
        infer=infer_pixel_shuffle,
        count_params=NO_PARAMS,
        count_macs=NO_MACS,
        rf=pixel_shuffle_rf,
        lowering=Lowering.MODULE,
        torch_ctor="torch.nn.PixelShuffle",
        build=lambda node: Layer(ctor(node), (node.args["upscale_factor"],), {}),
        label=lambda args: f"×{args.get('upscale_factor', '?')}",
        shape_rule="[C·r², H, W] → [C, r·H, r·W], r = upscale_factor",
        params_rule="0",
        macs_rule="0",
        example="PixelShuffle(2)",
        saves=Saves.NOTHING,
    ),
    OpSpec(
        name="Pad",
        doc="pads each side (left, right, top, bottom): constant, reflect or replicate",
        family=Family.RESIZE,
        params=(
            ParamSpec("pad", "padding", ParamKind.SIDES, minimum=0),
            ParamSpec("mode", "mode", ParamKind.CHOICE, "constant", choices=tuple(PAD_MODES)),
            ParamSpec("value", "value", ParamKind.FLOAT, 0.0),
        ),
        infer=infer_pad,
        count_params=NO_PARAMS,
        count_macs=NO_MACS,
        rf=pad_rf,
        lowering=Lowering.MODULE,
        torch_ctor="torch.nn.ConstantPad2d",  # ReflectionPad2d, ReplicationPad2d by `mode`
        build=build_pad,
        label=pad_label,
        shape_rule="[C, H, W] → [C, top + H + bottom, left + W + right]; reflect needs each side < the axis",
        params_rule="0",
        macs_rule="0",
        example='Pad([1, 2, 1, 2], mode = "reflect")',
        saves=lambda args: Saves.NOTHING if args["mode"] == "constant" else Saves.INPUT,
    ),
    OpSpec(
        name="Crop",
        doc="centre crop to the spatial size of another tensor (U-Net's skip connections)",
        family=Family.RESIZE,
        params=(ParamSpec("like", "like", ParamKind.TENSOR),),
        infer=infer_crop,
        count_params=NO_PARAMS,
        count_macs=NO_MACS,
        rf=crop_rf,
        lowering=Lowering.MODULE,
        torch_ctor=LAYERS + "Crop",
        build=lambda node: Layer(ctor(node), (), {}),
        label=lambda args: "like",
        shape_rule="[C, H, W] → [C, h, w] for `like` a [c, h, w] map no larger, from row (H − h) // 2 "
        "and column (W − w) // 2 (read when the network runs)",
        params_rule="0",
        macs_rule="0",
        example="Crop(like = up)",
        arity=2,
        view=True,
        saves=Saves.NOTHING,
    ),
)
