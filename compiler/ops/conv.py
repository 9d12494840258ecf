"""Conv and Linear: the layers that carry weights and multiply-accumulates.

The output-size rule of every sliding window lives here, in `output_size` — the lecture's
W' = floor((W − F + 2P) / S) + 1, with the dilated kernel F = D·(K − 1) + 1 and, for pools, ceil mode.
"""

from __future__ import annotations

import math

from cnnc.compiler.ops import GLOBAL, OpError, OpSpec, ParamSpec, RFStep, expect_rank, register
from cnnc.compiler.types import TensorType


def output_size(size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil: bool = False) -> int:
    """W' = (W − F + 2P) / S + 1, rounded down (or up in ceil mode, as torch's pools do)."""
    span = size - dilation * (kernel - 1) - 1 + 2 * pad
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1  # torch: the last window must start inside the input or the left padding
    return out


def window_output(op: str, spatial, kernel, stride, padding, dilation=(1, 1), ceil=False):
    """Apply `output_size` per axis; raise E0303 when a dimension shrinks to zero or below."""
    out = []
    for axis, size, k, s, p, d in zip(("height", "width"), spatial, kernel, stride, padding, dilation):
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
                raise OpError("E0405", f"`pad = same` needs an odd kernel or stride 1, but got kernel {k}, stride {s}",
                              help="give the padding explicitly, e.g. `pad = 1`")
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
        args["padding"] = resolve_same_padding(args["kernel_size"], args["stride"], args["dilation"])
    padding = (0, 0) if args["padding"] == "same" else args["padding"]
    if args["padding"] == "same":
        spatial = inp.spatial
    else:
        spatial = window_output("Conv", inp.spatial, args["kernel_size"], args["stride"], padding, args["dilation"])
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


def conv_rf(args, inputs) -> RFStep:
    kh, kw = args["kernel_size"]
    dh, dw = args["dilation"]
    padding = args["padding"]
    if padding == "same":
        padding = ((dh * (kh - 1)) // 2, (dw * (kw - 1)) // 2)
    return RFStep((dh * (kh - 1) + 1, dw * (kw - 1) + 1), args["stride"], padding)


def infer_linear(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    expect_rank(inp, 1, "Linear", help="add `Flatten` (or `GlobalAvgPool -> Flatten`) before it")
    return dict(args, in_features=inp.shape[0]), TensorType((args["out_features"],))


def linear_params(args, inputs, out) -> int:
    return args["in_features"] * args["out_features"] + (args["out_features"] if args["bias"] else 0)


def linear_macs(args, inputs, out) -> int:
    return args["in_features"] * args["out_features"]


register(
    OpSpec(
        name="Conv",
        params=(
            ParamSpec("out_channels", "out_channels", "int", minimum=1),
            ParamSpec("kernel_size", "kernel_size", "pair", minimum=1),
            ParamSpec("stride", "stride", "pair", 1, minimum=1),
            ParamSpec("pad", "padding", "pad", 0, minimum=0),
            ParamSpec("dilation", "dilation", "pair", 1, minimum=1),
            ParamSpec("groups", "groups", "int", 1, minimum=1),
            ParamSpec("bias", "bias", "bool", True),
        ),
        infer=infer_conv,
        family="conv",
        torch_ctor="torch.nn.Conv2d",
        count_params=conv_params,
        count_macs=conv_macs,
        rf=conv_rf,
        doc="2-D convolution: `Conv(out_channels, kernel_size, stride = 1, pad = 0 | same, dilation = 1, groups = 1, bias = true)`",
        inferred="in_channels",
    ),
    OpSpec(
        name="Linear",
        params=(
            ParamSpec("out_features", "out_features", "int", minimum=1),
            ParamSpec("bias", "bias", "bool", True),
        ),
        infer=infer_linear,
        family="linear",
        torch_ctor="torch.nn.Linear",
        count_params=linear_params,
        count_macs=linear_macs,
        rf=lambda args, inputs: GLOBAL,
        doc="fully connected layer on a vector: `Linear(out_features, bias = true)`",
        inferred="in_features",
    ),
)
