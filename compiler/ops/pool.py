"""Pooling: windowed (max, average), adaptive and global. No parameters, no MACs counted."""

from __future__ import annotations

from cnnc.compiler.ops import reads
from cnnc.compiler.ops.build import changed, ctor, positional, single
from cnnc.compiler.ops.conv import window_output
from cnnc.compiler.ops.spec import (
    GLOBAL,
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
from cnnc.compiler.ops.text import pair, window
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
                raise OpError(
                    "E0405",
                    f"`{op}` padding must be at most half the kernel, but got kernel {k}, pad {p}",
                    help=f"use pad = {k // 2} or less",
                )
        dilation = args.get("dilation", (1, 1))
        spatial = window_output(
            op,
            inp.spatial,
            args["kernel_size"],
            args["stride"],
            args["padding"],
            dilation,
            args["ceil_mode"],
        )
        check_windows_see_input(op, inp.spatial, args, dilation, spatial)
        return args, TensorType((inp.channels, *spatial))

    return infer


def check_windows_see_input(op: str, sizes, args, dilation, outs) -> None:
    """E0405 when a dilated window falls wholly in the padding (torch outputs -inf there).

    Its taps are `dilation` apart, so only an axis shorter than the dilation can slip between
    them; pool padding is at most half the kernel, so such an axis has at most size + 1 windows
    and the loop below is short.
    """
    axes = zip(
        ("height", "width"),
        sizes,
        args["kernel_size"],
        args["stride"],
        args["padding"],
        dilation,
        outs,
    )
    for axis, size, k, s, p, d, out in axes:
        if size >= d:
            continue
        for i in range(out):
            start = i * s - p
            first = max(0, -(start // d) if start < 0 else 0)  # the first tap at or after 0
            if first >= k or start + first * d >= size:
                raise OpError(
                    "E0405",
                    f"`{op}` window {i} along the {axis} lies wholly in the padding: "
                    f"its taps are {d} apart and the input is {size} wide",
                    help="use a smaller dilation or padding, or a larger input",
                )


def window_rf(args, inputs) -> RFAxes:
    """Output o reads o·S − P + t·D for t in [0, K): a window of the (dilated) kernel."""
    dilation = args.get("dilation", (1, 1))
    return RFAxes(
        *(
            reads.window(k, s, p, d)
            for k, s, p, d in zip(args["kernel_size"], args["stride"], args["padding"], dilation)
        )
    )


def infer_adaptive(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    expect_rank(inp, 3, "AdaptiveAvgPool")
    return dict(args), TensorType((inp.channels, *args["output_size"]))


def adaptive_rf(args, inputs):
    """Output o reads ⌊o·in/out⌋ to ⌈(o + 1)·in/out⌉ − 1; to one position, every position."""
    (inp,) = inputs
    out = args["output_size"]
    if out == (1, 1):
        return GLOBAL
    return RFAxes(*(reads.adaptive(i, o) for i, o in zip(inp.spatial, out)))


def _infer_global(op: str):
    def infer(args: dict, inputs) -> tuple[dict, TensorType]:
        (inp,) = inputs
        expect_rank(inp, 3, op)
        return dict(args, output_size=(1, 1)), TensorType((inp.channels, 1, 1))

    return infer


def _build_window(defaults: dict):
    """Max and average pools: torch's stride defaults to the kernel, as the IR's does."""

    def build(node) -> Layer:
        a = node.args
        kwargs = {"kernel_size": single(a["kernel_size"])}
        if a["stride"] != a["kernel_size"]:
            kwargs["stride"] = single(a["stride"])
        return Layer(ctor(node), (), kwargs | changed(a, defaults))

    return build


def window_label(args) -> str:
    text = window(args.get("kernel_size", "?"), args.get("stride"))
    return text + (" ceil" if args.get("ceil_mode") else "")


def adaptive_label(args) -> str:
    h, w = pair(args.get("output_size", "?"))
    return f"{h}×{w}"


WINDOW_SHAPE = (
    "[C, H, W] → [C, H', W'], H' = ⌊(H + 2·pad − dilation·(kh − 1) − 1) / stride⌋ + 1 "
    "(⌈…⌉ in ceil mode, the last window starting inside the input), W' likewise"
)


_WINDOW = (
    ParamSpec("kernel_size", "kernel_size", ParamKind.PAIR, minimum=1),
    ParamSpec("stride", "stride", ParamKind.PAIR_OR_NONE, None, minimum=1),
    ParamSpec("pad", "padding", ParamKind.PAIR, 0, minimum=0),
)


def saves_adaptive_avg(args) -> Saves:
    """torch averages to 1×1 with a mean, whose backward needs the input's shape only."""
    return Saves.NOTHING if args["output_size"] == (1, 1) else Saves.INPUT


def _pool(
    name: str,
    doc: str,
    params,
    infer,
    rf,
    torch_ctor: str,
    build,
    label,
    shape_rule: str,
    example: str,
    **more,
) -> OpSpec:
    return OpSpec(
        name=name,
        doc=doc,
        family=Family.POOL,
        params=params,
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
        macs_rule="0 (comparisons and sums, not multiply-accumulates)",
        example=example,
        **more,
    )


register(
    _pool(
        "MaxPool",
        "max over sliding windows",
        _WINDOW
        + (
            ParamSpec("dilation", "dilation", ParamKind.PAIR, 1, minimum=1),
            ParamSpec("ceil_mode", "ceil_mode", ParamKind.BOOL, False),
        ),
        _infer_window("MaxPool"),
        window_rf,
        "torch.nn.MaxPool2d",
        _build_window({"padding": 0, "dilation": 1, "ceil_mode": False}),
        window_label,
        WINDOW_SHAPE,
        "MaxPool(3, stride = 2, pad = 1)",
        saves=Saves.INPUT,
        saved_bytes=8,
        overwritable=True,
    ),
    _pool(
        "AvgPool",
        "mean over sliding windows",
        _WINDOW
        + (
            ParamSpec("ceil_mode", "ceil_mode", ParamKind.BOOL, False),
            ParamSpec("count_include_pad", "count_include_pad", ParamKind.BOOL, True),
        ),
        _infer_window("AvgPool"),
        window_rf,
        "torch.nn.AvgPool2d",
        _build_window({"padding": 0, "ceil_mode": False, "count_include_pad": True}),
        window_label,
        WINDOW_SHAPE,
        "AvgPool(2)",
        saves=Saves.INPUT,
        overwritable=True,
    ),
    _pool(
        "AdaptiveAvgPool",
        "mean pooling to a fixed output size",
        (ParamSpec("output_size", "output_size", ParamKind.PAIR, minimum=1),),
        infer_adaptive,
        adaptive_rf,
        "torch.nn.AdaptiveAvgPool2d",
        positional("output_size"),
        adaptive_label,
        "[C, H, W] → [C, oh, ow]",
        "AdaptiveAvgPool(7)",
        saves=saves_adaptive_avg,
    ),
    _pool(
        "AdaptiveMaxPool",
        "max pooling to a fixed output size",
        (ParamSpec("output_size", "output_size", ParamKind.PAIR, minimum=1),),
        infer_adaptive,
        adaptive_rf,
        "torch.nn.AdaptiveMaxPool2d",
        positional("output_size"),
        adaptive_label,
        "[C, H, W] → [C, oh, ow]",
        "AdaptiveMaxPool([4, 4])",
        saves=Saves.INPUT,
        saved_bytes=8,
        onnx_divides=True,
    ),
    # AdaptiveAvgPool2d((1, 1)) / AdaptiveMaxPool2d((1, 1)), as torchvision writes them
    _pool(
        "GlobalAvgPool",
        "mean over all positions",
        (),
        _infer_global("GlobalAvgPool"),
        GLOBAL,
        "torch.nn.AdaptiveAvgPool2d",
        positional("output_size"),
        lambda args: "",
        "[C, H, W] → [C, 1, 1]",
        "GlobalAvgPool",
        saves=Saves.NOTHING,
    ),
    _pool(
        "GlobalMaxPool",
        "max over all positions",
        (),
        _infer_global("GlobalMaxPool"),
        GLOBAL,
        "torch.nn.AdaptiveMaxPool2d",
        positional("output_size"),
        lambda args: "",
        "[C, H, W] → [C, 1, 1]",
        "GlobalMaxPool",
        saves=Saves.INPUT,
        saved_bytes=8,
    ),
)
