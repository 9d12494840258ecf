"""Normalisation: BatchNorm (1-d or 2-d by the input's rank) and LocalResponseNorm (AlexNet)."""

from __future__ import annotations

from cnnc.compiler.ops import OpError, OpSpec, ParamSpec, register
from cnnc.compiler.types import TensorType


def infer_batchnorm(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    if inp.rank not in (1, 3):
        raise OpError("E0304", f"`BatchNorm` needs [C, H, W] or [N], but got {inp}")
    return dict(args, num_features=inp.channels), inp


def batchnorm_params(args, inputs, out) -> int:
    return 2 * args["num_features"] if args["affine"] else 0


def infer_lrn(args: dict, inputs) -> tuple[dict, TensorType]:
    (inp,) = inputs
    if inp.rank != 3:
        raise OpError("E0304", f"`LocalResponseNorm` needs a [C, H, W] feature map, but got {inp}")
    widest = 2 * inp.channels + 1
    if args["size"] > widest:  # torch pads the channels by `size`: a huge window costs memory, not meaning
        raise OpError("E0405", f"`LocalResponseNorm` size must be at most 2·channels + 1 = {widest} for {inp}, "
                      f"but got {args['size']}", f"a window of {widest} channels already sees every channel")
    return dict(args), inp


register(
    OpSpec(
        name="BatchNorm",
        params=(
            ParamSpec("eps", "eps", "float", 1e-5, above=0),  # torch: positive while training
            ParamSpec("momentum", "momentum", "float", 0.1, minimum=0, maximum=1),
            ParamSpec("affine", "affine", "bool", True),
        ),
        infer=infer_batchnorm,
        family="norm",
        torch_ctor="torch.nn.BatchNorm2d",  # BatchNorm1d for a vector; lowering reads the rank
        count_params=batchnorm_params,
        aliases=("BN",),
        doc="batch normalisation over channels: `BatchNorm(eps = 1e-5, momentum = 0.1, affine = true)`",
        positional=0,
        inferred="num_features",
    ),
    OpSpec(
        name="LocalResponseNorm",
        params=(
            ParamSpec("size", "size", "int", minimum=1),
            ParamSpec("alpha", "alpha", "float", 1e-4, minimum=0),  # k + α·Σx² must stay positive
            ParamSpec("beta", "beta", "float", 0.75),
            ParamSpec("k", "k", "float", 1.0, above=0),  # k = 0 divides by zero on a zero input
        ),
        infer=infer_lrn,
        family="norm",
        torch_ctor="torch.nn.LocalResponseNorm",
        aliases=("LRN",),
        doc="AlexNet's cross-channel normalisation: `LocalResponseNorm(size, alpha = 1e-4, beta = 0.75, k = 1)`",
    ),
)
