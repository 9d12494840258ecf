"""Conv, ConvTranspose and Linear: the layers that carry weights and multiply-accumulates.

The output-size rule of every sliding window lives here, in `output_size` — the lecture's
W' = floor((W − F + 2P) / S) + 1, with the dilated kernel F = D·(K − 1) + 1 and, for pools, ceil mode
— and its inverse for the transposed convolution, W' = (W − 1)·S − 2P + D·(K − 1) + P_out + 1.
"""

from __future__ import annotations

import math

from cnnc.compiler.ops import reads
from cnnc.compiler.ops.build import changed, single
from cnnc.compiler.ops.spec import (
    GLOBAL,
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
from cnnc.compiler.ops.text import pair, window
from cnnc.compiler.types import TensorType


def output_size(
    size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil: bool = False
) -> int:
    """W' = (W − F + 2P) / S + 1, rounded down (or up in ceil mode, as torch's pools do)."""
    span = size - dilation * (kernel - 1) - 1 + 2 * pad
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1  # torch: the last window must start inside the input or the left padding
    return out


def window_output(op: str, spatial, kernel, stride, padding, dilation=(1, 1), ceil=False):
    """Apply `output_size` per axis; raise E0303 when a dimension shrinks to zero or below."""
    out = []
    for axis, size, k, s, p, d in zip(
        ("height", "width"), spatial, kernel, stride, padding, dilation
    ):
        o = output_size(size, k, s, p, d, ceil)
        if o <= 0:
            eff = d * (k - 1) + 1
            raise OpError(
                "E0303",
                f"`{op}` shrinks the {axis} to {o}: ({size} − {eff} + 2·{p}) / {s} + 1 ≤ 0",
                help=f"the input is only {size} wide along {axis}: use a larger input, a smaller "
                f"kernel or more padding (pad = {(eff - 1) // 2} keeps the size at stride 1)",
            )
        out.append(o)
    return tuple(out)


def resolve_same_padding(kernel, stride, dilation):
    """`pad = same`: symmetric padding (D·(K − 1)) / 2 per axis; an even kernel needs stride 1."""
    pads = []
    for k, s, d in zip(kernel, stride, dilation):
        total = d * (k - 1)
        if total % 2:
            if s != 1:
                raise OpError(
                    "E0405",
                    f"`pad = same` needs an odd kernel or stride 1, but got kernel {k}, stride {s}",
                    help="give the padding explicitly, e.g. `pad = 1`",
                )
            return "same"  # torch pads asymmetrically for an even kernel at stride 1
        pads.append(total // 2)
    return tuple(pads)


def infer_conv(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    expect_rank(inp, 3, "Conv", help="a Conv runs on feature maps; a vector needs `Linear`")
    in_channels, groups, out_channels = inp.channels, args["groups"], args["out_channels"]
    if in_channels % groups or out_channels % groups:
        which = "in_channels" if in_channels % groups else "out_channels"
        raise OpError(
            "E0305",
            f"`groups` must divide `in_channels` and `out_channels`, but got in_channels={in_channels}, "
            f"out_channels={out_channels}, groups={groups}",
            help=f"{which} must be a multiple of {groups}; or choose groups among the common divisors "
            f"of {in_channels} and {out_channels}: {_common_divisors(in_channels, out_channels)}",
        )
    args = dict(args, in_channels=in_channels)
    if args["padding"] == "same":
        args["padding"] = resolve_same_padding(
            args["kernel_size"], args["stride"], args["dilation"]
        )
    padding = (0, 0) if args["padding"] == "same" else args["padding"]
    if args["padding"] == "same":
        spatial = inp.spatial
    else:
        spatial = window_output(
            "Conv", inp.spatial, args["kernel_size"], args["stride"], padding, args["dilation"]
        )
    return args, TensorType((out_channels, *spatial))


def _common_divisors(a: int, b: int, shown: int = 8) -> str:
    """The smallest common divisors of a and b: trial division up to √gcd, never up to the gcd."""
    g = math.gcd(a, b)
    small, large = [], []
    d = 1
    while d * d <= g and len(small) < shown:
        if g % d == 0:
            small.append(d)
            if d * d != g:
                large.append(g // d)
        d += 1
    divisors = sorted(set(small + large))
    more = len(divisors) > shown or d * d <= g
    return ", ".join(map(str, divisors[:shown])) + (", …" if more else "")


def conv_params(args, inputs, out) -> int:
    kh, kw = args["kernel_size"]
    weight = args["out_channels"] * (args["in_channels"] // args["groups"]) * kh * kw
    return weight + (args["out_channels"] if args["bias"] else 0)


def conv_macs(args, inputs, out) -> int:
    kh, kw = args["kernel_size"]
    return out.numel * (args["in_channels"] // args["groups"]) * kh * kw


def conv_rf(args, inputs) -> RFAxes:
    """Output o reads o·S − P + t·D for t in [0, K): a window of D·(K − 1) + 1 positions."""
    padding = args["padding"]
    if padding == "same":
        padding = tuple((d * (k - 1)) // 2 for k, d in zip(args["kernel_size"], args["dilation"]))
    return RFAxes(
        *(
            reads.window(k, s, p, d)
            for k, s, p, d in zip(args["kernel_size"], args["stride"], padding, args["dilation"])
        )
    )


def infer_linear(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    expect_rank(inp, 1, "Linear", help="add `Flatten` (or `GlobalAvgPool -> Flatten`) before it")
    return dict(args, in_features=inp.shape[0]), TensorType((args["out_features"],))


def linear_params(args, inputs, out) -> int:
    return args["in_features"] * args["out_features"] + (
        args["out_features"] if args["bias"] else 0
    )


def linear_macs(args, inputs, out) -> int:
    return args["in_features"] * args["out_features"]


def conv_label(args) -> str:
    """`3×3/2, 64`, then `, dw` (depthwise) or `, g4`, then `, d2` (dilation)."""
    text = f"{window(args.get('kernel_size', '?'), args.get('stride', 1))}, {args.get('out_channels', '?')}"
    groups, dilation = args.get("groups", 1), pair(args.get("dilation", 1))
    if groups != 1:
        text += ", dw" if groups == args.get("in_channels") else f", g{groups}"
    if dilation != (1, 1):
        text += (
            f", d{dilation[0]}" if dilation[0] == dilation[1] else f", d{dilation[0]}×{dilation[1]}"
        )
    return text


def build_conv(node) -> Layer:
    a = node.args
    kwargs = {"kernel_size": single(a["kernel_size"])}
    kwargs |= changed(a, {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True})
    return Layer("Conv2d", (a["in_channels"], a["out_channels"]), kwargs)


# -- ConvTranspose ---------------------------------------------------------------------------------


def transposed_size(
    size: int, kernel: int, stride: int, pad: int, dilation: int, output_padding: int
) -> int:
    """W' = (W − 1)·S − 2P + D·(K − 1) + P_out + 1: where the last tap of the last input lands."""
    return (size - 1) * stride - 2 * pad + dilation * (kernel - 1) + output_padding + 1


def infer_conv_transpose(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    expect_rank(inp, 3, "ConvTranspose", help="a ConvTranspose runs on feature maps")
    in_channels, groups, out_channels = inp.channels, args["groups"], args["out_channels"]
    if in_channels % groups or out_channels % groups:
        raise OpError(
            "E0305",
            "`groups` must divide `in_channels` and `out_channels`, but got "
            f"in_channels={in_channels}, out_channels={out_channels}, groups={groups}",
            help=f"choose groups among the common divisors of {in_channels} and {out_channels}: "
            f"{_common_divisors(in_channels, out_channels)}",
        )
    axes = zip(
        ("height", "width"),
        inp.spatial,
        args["kernel_size"],
        args["stride"],
        args["padding"],
        args["dilation"],
        args["output_padding"],
    )
    spatial = []
    for axis, size, k, s, p, d, op in axes:
        if op >= s and op >= d:
            raise OpError(
                "E0405",
                f"`output_padding` of `ConvTranspose` must be smaller than the stride "
                f"or the dilation, but got output_padding {op}, stride {s}, dilation {d}",
                help="output_padding only picks among the sizes a stride > 1 leaves open: "
                f"use at most {max(s, d) - 1}",
            )
        o = transposed_size(size, k, s, p, d, op)
        if o <= 0:
            raise OpError(
                "E0303",
                f"`ConvTranspose` shrinks the {axis} to {o}: "
                f"({size} − 1)·{s} − 2·{p} + {d}·({k} − 1) + {op} + 1 ≤ 0",
                help="use less padding or a larger kernel",
            )
        spatial.append(o)
    return dict(args, in_channels=in_channels), TensorType((out_channels, *spatial))


def conv_transpose_params(args, inputs, out) -> int:
    kh, kw = args["kernel_size"]
    weight = (
        args["in_channels"] * (args["out_channels"] // args["groups"]) * kh * kw
    )  # [C_in, C_out / g, kh, kw]
    return weight + (args["out_channels"] if args["bias"] else 0)


def conv_transpose_macs(args, inputs, out) -> int:
    """Each input element meets (C_out / g)·kh·kw weights: torch's count for a transposed conv."""
    kh, kw = args["kernel_size"]
    return inputs[0].numel * (args["out_channels"] // args["groups"]) * kh * kw


def conv_transpose_rf(args, inputs) -> RFAxes:
    """Output o reads every input i with i·S − P + t·D = o for a tap t in [0, K): with a 2×2 kernel
    at stride 2, exactly one input position; none where the stride leaves a gap."""
    return RFAxes(
        *(
            reads.transposed(k, s, p, d)
            for k, s, p, d in zip(
                args["kernel_size"], args["stride"], args["padding"], args["dilation"]
            )
        )
    )


def build_conv_transpose(node) -> Layer:
    a = node.args
    kwargs = {"kernel_size": single(a["kernel_size"])}
    kwargs |= changed(
        a,
        {"stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "bias": True, "dilation": 1},
    )
    return Layer("ConvTranspose2d", (a["in_channels"], a["out_channels"]), kwargs)


register(
    OpSpec(
        name="Conv",
        doc="2-D convolution",
        family=Family.CONV,
        params=(
            ParamSpec("out_channels", "out_channels", ParamKind.INT, minimum=1),
            ParamSpec("kernel_size", "kernel_size", ParamKind.PAIR, minimum=1),
            ParamSpec("stride", "stride", ParamKind.PAIR, 1, minimum=1),
            ParamSpec("pad", "padding", ParamKind.PAD, 0, minimum=0),
            ParamSpec("dilation", "dilation", ParamKind.PAIR, 1, minimum=1),
            ParamSpec("groups", "groups", ParamKind.INT, 1, minimum=1),
            ParamSpec("bias", "bias", ParamKind.BOOL, True),
        ),
        infer=infer_conv,
        count_params=conv_params,
        count_macs=conv_macs,
        rf=conv_rf,
        lowering=Lowering.MODULE,
        torch_ctor="torch.nn.Conv2d",
        build=build_conv,
        label=conv_label,
        shape_rule="[C, H, W] → [out_channels, H', W'], H' = ⌊(H + 2·pad − dilation·(kh − 1) − 1) / stride⌋ + 1, "
        "W' likewise; `pad = same` pads dilation·(k − 1) / 2 a side, keeping H, W at stride 1",
        params_rule="out_channels · (C / groups) · kh · kw + out_channels (the bias)",
        macs_rule="out_channels · H' · W' · (C / groups) · kh · kw",
        example="Conv(64, 3, stride = 2, pad = 1, bias = false)",
        inferred="in_channels",
        saves=Saves.INPUT,
        overwritable=True,
    ),
    OpSpec(
        name="ConvTranspose",
        doc="transposed 2-D convolution (learned upsampling; the gradient of a Conv)",
        family=Family.CONV,
        params=(
            ParamSpec("out_channels", "out_channels", ParamKind.INT, minimum=1),
            ParamSpec("kernel_size", "kernel_size", ParamKind.PAIR, minimum=1),
            ParamSpec("stride", "stride", ParamKind.PAIR, 1, minimum=1),
            ParamSpec("pad", "padding", ParamKind.PAIR, 0, minimum=0),
            ParamSpec("output_padding", "output_padding", ParamKind.PAIR, 0, minimum=0),
            ParamSpec("groups", "groups", ParamKind.INT, 1, minimum=1),
            ParamSpec("bias", "bias", ParamKind.BOOL, True),
            ParamSpec("dilation", "dilation", ParamKind.PAIR, 1, minimum=1),
        ),
        infer=infer_conv_transpose,
        count_params=conv_transpose_params,
        count_macs=conv_transpose_macs,
        rf=conv_transpose_rf,
        lowering=Lowering.MODULE,
        torch_ctor="torch.nn.ConvTranspose2d",
        build=build_conv_transpose,
        label=conv_label,
        shape_rule="[C, H, W] → [out_channels, H', W'], H' = (H − 1)·stride − 2·pad + dilation·(kh − 1) "
        "+ output_padding + 1, W' likewise",
        params_rule="C · (out_channels / groups) · kh · kw + out_channels (the bias)",
        macs_rule="C · H · W · (out_channels / groups) · kh · kw",
        example="ConvTranspose(64, 2, stride = 2)",
        inferred="in_channels",
        saves=Saves.INPUT,
    ),
    OpSpec(
        name="Linear",
        doc="fully connected layer on a vector",
        family=Family.LINEAR,
        params=(
            ParamSpec("out_features", "out_features", ParamKind.INT, minimum=1),
            ParamSpec("bias", "bias", ParamKind.BOOL, True),
        ),
        infer=infer_linear,
        count_params=linear_params,
        count_macs=linear_macs,
        rf=GLOBAL,
        lowering=Lowering.MODULE,
        torch_ctor="torch.nn.Linear",
        build=lambda node: Layer(
            "Linear",
            (node.args["in_features"], node.args["out_features"]),
            changed(node.args, {"bias": True}),
        ),
        label=lambda args: f", {args.get('out_features', '?')}",
        shape_rule="[N] → [out_features]",
        params_rule="N · out_features + out_features (the bias)",
        macs_rule="N · out_features",
        example="Linear(1000)",
        inferred="in_features",
        saves=Saves.INPUT,
        overwritable=True,
    ),
)
