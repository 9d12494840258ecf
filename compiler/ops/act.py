"""Elementwise activations. Those torch can run in place add no activation memory (DESIGN.md)."""

from __future__ import annotations

from cnnc.compiler.ops import OpError, OpSpec, ParamSpec, register
from cnnc.compiler.types import TensorType


def infer_same(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    return dict(args), inp


def infer_softmax(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    dim = args["dim"]
    if not -inp.rank <= dim < inp.rank:
        raise OpError("E0405", f"`Softmax` dim must lie in [{-inp.rank}, {inp.rank - 1}] for {inp}, but got {dim}")
    return dict(args), inp


def _activation(name: str, torch_name: str, in_place: bool, params=(), doc: str = "") -> OpSpec:
    return OpSpec(name=name, params=tuple(params), infer=infer_same, family="act",
                  torch_ctor=f"torch.nn.{torch_name}", in_place=in_place, doc=doc)


register(
    _activation("ReLU", "ReLU", True, doc="max(x, 0)"),
    _activation("ReLU6", "ReLU6", True, doc="min(max(x, 0), 6) (MobileNet)"),
    _activation("LeakyReLU", "LeakyReLU", True,
                (ParamSpec("negative_slope", "negative_slope", "float", 0.01),), "x if x > 0 else slope·x"),
    _activation("Sigmoid", "Sigmoid", False, doc="1 / (1 + e^−x)"),
    _activation("Tanh", "Tanh", False, doc="tanh(x)"),
    _activation("Hardswish", "Hardswish", True, doc="x·ReLU6(x + 3) / 6 (MobileNetV3)"),
    _activation("Hardsigmoid", "Hardsigmoid", True, doc="ReLU6(x + 3) / 6 (MobileNetV3)"),
    _activation("SiLU", "SiLU", True, doc="x·sigmoid(x), also called swish (EfficientNet)"),
    _activation("GELU", "GELU", False, doc="x·Φ(x)"),
    OpSpec(
        name="Softmax",
        params=(ParamSpec("dim", "dim", "int", 0),),  # 0 is the channel axis: the batch is not counted
        infer=infer_softmax,
        family="act",
        torch_ctor="torch.nn.Softmax",
        doc="softmax over an axis of the sample (0 = channels): `Softmax(dim = 0)`",
    ),
)
