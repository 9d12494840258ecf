"""How an op's IR arguments become its torch constructor's (`OpSpec.build`), as data: no torch here.

A build function takes a node and returns a `Layer(ctor, args, kwargs)`. Keyword arguments equal to
torch's defaults are left out and square pairs written once, so printed constructors read like
torchvision's (`nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)`). `ctor` is the
spec's `torch_ctor` less `torch.nn.` unless the build picks another (BatchNorm1d on a vector).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cnnc.compiler.ops.spec import Layer


def single(value):
    """(3, 3) → 3: how torchvision writes square kernels; other values unchanged."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return value[0]
    return value


def changed(args: Mapping, defaults: Mapping) -> dict:
    """The arguments that differ from torch's defaults, pairs of equal sides written once."""
    return {k: single(args[k]) for k, default in defaults.items() if single(args[k]) != default}


def ctor(node) -> str:
    return node.spec.torch_ctor.removeprefix("torch.nn.")


def positional(*names: str) -> Callable:
    """`Ctor(args[names[0]], args[names[1]], …)`."""
    return lambda node: Layer(ctor(node), tuple(node.args[k] for k in names), {})


def keywords(positional_names: tuple[str, ...] = (), defaults: Mapping | None = None) -> Callable:
    """`Ctor(*positional, **changed keywords)`."""
    return lambda node: Layer(
        ctor(node),
        tuple(node.args[k] for k in positional_names),
        changed(node.args, defaults or {}),
    )
