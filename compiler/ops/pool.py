"""Pooling: windowed (max, average), adaptive and global. No parameters, no MACs counted."""

from __future__ import annotations

from cnnc.compiler.ops import GLOBAL, OpError, OpSpec, ParamSpec, RFStep, expect_rank, register
from cnnc.compiler.ops.conv import window_output
from cnnc.compiler.types import TensorType


def _infer_window(op: str):
    def infer(args: dict, inputs) -> tuple[dict, TensorType]:
        (inp,) = inputs
        expect_rank(inp, 3, op)
        args = dict(args)
        if args["stride"] is None:
            args["stride"] = args["kernel_size"]  # torch's default: non-overlapping windows
        for k, p in zip(args["kernel_size"], args["padding"]):
            if 2 * p > k:
                raise OpError("E0405", f"`{op}` padding must be at most half the kernel, but got kernel {k}, pad {p}",
                              help=f"use pad = {k // 2} or less")
        dilation = args.get("dilation", (1, 1))
        spatial = window_output(op, inp.spatial, args["kernel_size"], args["stride"], args["padding"],
                                dilation, args["ceil_mode"])
        check_windows_see_input(op, inp.spatial, args, dilation, spatial)
        return args, TensorType((inp.channels, *spatial))

    return infer


def check_windows_see_input(op: str, sizes, args, dilation, outs) -> None:
    """E0405 when a dilated window falls wholly in the padding (torch outputs -inf there).

    Its taps are `dilation` apart, so only an axis shorter than the dilation can slip between
    them; pool padding is at most half the kernel, so such an axis has at most size + 1 windows
    and the loop below is short.
    """
    axes = zip(("height", "width"), sizes, args["kernel_size"], args["stride"], args["padding"],
               dilation, outs)
    for axis, size, k, s, p, d, out in axes:
        if size >= d:
            continue
        for i in range(out):
            start = i * s - p
            first = max(0, -(start // d) if start < 0 else 0)  # the first tap at or after 0
            if first >= k or start + first * d >= size:
                raise OpError("E0405", f"`{op}` window {i} along the {axis} lies wholly in the padding: "
                              f"its taps are {d} apart and the input is {size} wide",
                              help="use a smaller dilation or padding, or a larger input")


def window_rf(args, inputs) -> RFStep:
    kh, kw = args["kernel_size"]
    dh, dw = args.get("dilation", (1, 1))
    return RFStep((dh * (kh - 1) + 1, dw * (kw - 1) + 1), args["stride"], args["padding"])


def infer_adaptive(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    expect_rank(inp, 3, "AdaptiveAvgPool")
    return dict(args), TensorType((inp.channels, *args["output_size"]))


def adaptive_rf(args, inputs):
    """The widest window adaptive pooling uses: ceil(in / out) with stride floor(in / out)."""
    (inp,) = inputs
    out = args["output_size"]
    if out == (1, 1):
        return GLOBAL
    kernel = tuple(-(-i // o) for i, o in zip(inp.spatial, out))
    stride = tuple(max(1, i // o) for i, o in zip(inp.spatial, out))
    return RFStep(kernel, stride, (0, 0))


def infer_global(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    expect_rank(inp, 3, "GlobalAvgPool")
    return dict(args, output_size=(1, 1)), TensorType((inp.channels, 1, 1))


_WINDOW = (
    ParamSpec("kernel_size", "kernel_size", "pair", minimum=1),
    ParamSpec("stride", "stride", "pair_or_none", None, minimum=1),
    ParamSpec("pad", "padding", "pair", 0, minimum=0),
)

register(
    OpSpec(
        name="MaxPool",
        params=_WINDOW + (
            ParamSpec("dilation", "dilation", "pair", 1, minimum=1),
            ParamSpec("ceil_mode", "ceil_mode", "bool", False),
        ),
        infer=_infer_window("MaxPool"),
        family="pool",
        torch_ctor="torch.nn.MaxPool2d",
        rf=window_rf,
        doc="max over windows: `MaxPool(kernel_size, stride = kernel_size, pad = 0, dilation = 1, ceil_mode = false)`",
    ),
    OpSpec(
        name="AvgPool",
        params=_WINDOW + (
            ParamSpec("ceil_mode", "ceil_mode", "bool", False),
            ParamSpec("count_include_pad", "count_include_pad", "bool", True),
        ),
        infer=_infer_window("AvgPool"),
        family="pool",
        torch_ctor="torch.nn.AvgPool2d",
        rf=window_rf,
        doc="mean over windows: `AvgPool(kernel_size, stride = kernel_size, pad = 0, ceil_mode = false, count_include_pad = true)`",
    ),
    OpSpec(
        name="AdaptiveAvgPool",
        params=(ParamSpec("output_size", "output_size", "pair", minimum=1),),
        infer=infer_adaptive,
        family="pool",
        torch_ctor="torch.nn.AdaptiveAvgPool2d",
        rf=adaptive_rf,
        doc="mean pooling to a fixed output size: `AdaptiveAvgPool(output_size)`",
    ),
    OpSpec(
        name="AdaptiveMaxPool",
        params=(ParamSpec("output_size", "output_size", "pair", minimum=1),),
        infer=infer_adaptive,
        family="pool",
        torch_ctor="torch.nn.AdaptiveMaxPool2d",
        rf=adaptive_rf,
        doc="max pooling to a fixed output size: `AdaptiveMaxPool(output_size)`",
    ),
    OpSpec(
        name="GlobalAvgPool",
        params=(),
        infer=infer_global,
        family="pool",
        torch_ctor="torch.nn.AdaptiveAvgPool2d",  # with output_size (1, 1), as torchvision writes it
        rf=lambda args, inputs: GLOBAL,
        doc="mean over all positions: [C, H, W] → [C, 1, 1]",
    ),
)
