"""Elementwise activations. Those torch can run in place add no activation memory (DESIGN.md); lowering
writes `inplace=True` exactly where the memory analysis leaves them out (`analysis/memory.py`).

None counts multiply-accumulates; PReLU alone has parameters (its slopes).
"""

from __future__ import annotations

from cnnc.compiler.ops import reads
from cnnc.compiler.ops.build import changed, ctor, keywords
from cnnc.compiler.ops.spec import (
    GLOBAL,
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
    no_detail,
    register,
)
from cnnc.compiler.ops.text import one
from cnnc.compiler.types import TensorType
from cnnc.dsl.records import replace


def infer_same(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    return dict(args), inp


def infer_softmax(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    dim = args["dim"]
    if not -inp.rank <= dim < inp.rank:
        raise OpError(
            "E0405",
            f"`Softmax` dim must lie in [{-inp.rank}, {inp.rank - 1}] for {inp}, but got {dim}",
        )
    return dict(args), inp


def softmax_rf(args, inputs):
    """Over the channels: each position alone. Over an axis of the map: that whole axis."""
    (inp,) = inputs
    dim = args["dim"] % inp.rank
    if inp.rank != 3 or dim == 0:
        return POINTWISE
    keep = reads.window(1, 1, 0)
    return RFAxes(GLOBAL, keep) if dim == 1 else RFAxes(keep, GLOBAL)


def build_softmax(node) -> Layer:
    dim = node.args["dim"]
    return Layer(
        ctor(node), (), {"dim": dim + 1 if dim >= 0 else dim}
    )  # the DSL does not count the batch


def infer_prelu(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    n = args["num_parameters"]
    if n not in (1, inp.channels):
        raise OpError(
            "E0405",
            f"`PReLU` takes one slope or one per channel ({inp.channels} for {inp}), "
            f"but got num_parameters = {n}",
            help=f"write `PReLU` for one slope or `PReLU({inp.channels})` for one per channel",
        )
    return dict(args), inp


def _activation(
    name: str,
    torch_name: str,
    formula: str,
    in_place: bool = False,
    params=(),
    label=no_detail,
    example: str = "",
    **more,
) -> OpSpec:
    defaults = {p.torch_name: p.default for p in params}
    return OpSpec(
        name=name,
        doc=formula,
        family=Family.ACT,
        params=tuple(params),
        infer=infer_same,
        count_params=NO_PARAMS,
        count_macs=NO_MACS,
        rf=POINTWISE,
        lowering=Lowering.MODULE,
        torch_ctor=f"torch.nn.{torch_name}",
        build=keywords((), defaults),
        label=label,
        shape_rule="any shape, unchanged",
        params_rule="0",
        macs_rule="0",
        example=example or name,
        in_place=in_place,
        **more,
    )


def build_prelu(node) -> Layer:
    return Layer(ctor(node), (), changed(node.args, {"num_parameters": 1, "init": 0.25}))


PRELU = replace(
    _activation(
        "PReLU",
        "PReLU",
        "x if x > 0 else a·x, with learned slopes a (one, or one per channel)",
        params=(
            ParamSpec("num_parameters", "num_parameters", ParamKind.INT, 1, minimum=1),
            ParamSpec("init", "init", ParamKind.FLOAT, 0.25),
        ),
        label=one("num_parameters"),
        example="PReLU(64)",
        saves=Saves.INPUT,
    ),
    infer=infer_prelu,
    count_params=lambda args, inputs, out: args["num_parameters"],
    build=build_prelu,
    params_rule="num_parameters (1 or C)",
)

register(
    _activation("ReLU", "ReLU", "max(x, 0)", True, saves=Saves.OUTPUT),
    _activation(
        "ReLU6",
        "ReLU6",
        "min(max(x, 0), 6) (MobileNet)",
        True,
        saves=Saves.INPUT,
        clones_in_place=True,
    ),
    _activation(
        "LeakyReLU",
        "LeakyReLU",
        "x if x > 0 else negative_slope·x",
        True,
        (ParamSpec("negative_slope", "negative_slope", ParamKind.FLOAT, 0.01),),
        one("negative_slope"),
        "LeakyReLU(0.2)",
        saves=Saves.INPUT,
    ),
    PRELU,
    _activation(
        "ELU",
        "ELU",
        "x if x > 0 else alpha·(eˣ − 1)",
        params=(ParamSpec("alpha", "alpha", ParamKind.FLOAT, 1.0),),
        label=one("alpha"),
        example="ELU(alpha = 1.0)",
        saves=Saves.INPUT,
    ),
    _activation("Sigmoid", "Sigmoid", "1 / (1 + e^−x)", saves=Saves.OUTPUT),
    _activation("Tanh", "Tanh", "tanh(x)", saves=Saves.OUTPUT),
    _activation(
        "Hardswish",
        "Hardswish",
        "x·ReLU6(x + 3) / 6 (MobileNetV3)",
        True,
        saves=Saves.INPUT,
        clones_in_place=True,
    ),
    _activation(
        "Hardsigmoid",
        "Hardsigmoid",
        "ReLU6(x + 3) / 6 (MobileNetV3)",
        True,
        saves=Saves.INPUT,
        clones_in_place=True,
    ),
    _activation(
        "SiLU",
        "SiLU",
        "x·sigmoid(x), also called swish (EfficientNet)",
        True,
        saves=Saves.INPUT,
        clones_in_place=True,
    ),
    _activation("GELU", "GELU", "x·Φ(x)", saves=Saves.INPUT),
    _activation("Mish", "Mish", "x·tanh(softplus(x))", saves=Saves.INPUT),
    _activation(
        "Softplus",
        "Softplus",
        "log(1 + e^(beta·x)) / beta, linear above `threshold`",
        params=(
            ParamSpec("beta", "beta", ParamKind.FLOAT, 1.0, above=0),
            ParamSpec("threshold", "threshold", ParamKind.FLOAT, 20.0),
        ),
        example="Softplus(beta = 2)",
        saves=Saves.INPUT,
    ),
    replace(
        _activation(
            "Softmax",
            "Softmax",
            "softmax over an axis of the sample (0 = channels)",
            params=(ParamSpec("dim", "dim", ParamKind.INT, 0),),  # the batch is not counted
            example="Softmax(dim = 0)",
            saves=Saves.OUTPUT,
        ),
        infer=infer_softmax,
        rf=softmax_rf,
        build=build_softmax,
        shape_rule="any shape, unchanged; `dim` counts from the channels (0), the batch aside",
    ),
)
