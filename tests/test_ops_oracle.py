"""Static = runtime for every op of the registry, with torch's own modules as the oracle.

For each op, hypothesis draws valid arguments and an input (non-square maps included) and builds
the op twice: as cnnc elaborates and lowers it, and independently from torch (`torch.nn`'s module,
torchvision's, or the tensor expression the op stands for). Then:
- the checker's shape equals the shape torch's module outputs;
- the checker's parameter count equals `sum(p.numel())` of torch's module;
- the checker's MACs equal FlopCounterMode's FLOPs / 2 on torch's module (FlopCounterMode counts
  convolutions, transposed convolutions and matrix products; cnnc counts the same, and 0 for the
  pools, norms, activations, interpolation and padding for which it counts nothing);
- cnnc's lowered network, given the reference's (random) weights, computes the same output;
- `verify.mismatches` finds nothing for the whole network (shapes, numel, FLOPs of fx's module);
- what the registry says the op's backward keeps (`OpSpec.saves` and its companions, summed by
  `training_memory.saved_total`) is what autograd's saved-tensor hooks see in a training forward of
  the lowered network, up to the bytes `UNCOUNTED` documents, exactly.

An op reading a second tensor (`like = t`) gets `t = in -> AdaptiveAvgPool([h, w])`, whose size is
what matters. Ops that are functions (merges, LayerScale) are compared on the expression they
stand for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torchvision
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from cnnc import api
from cnnc.compiler.analysis.training_memory import saved_total
from cnnc.compiler.lower.fx import to_graph_module
from cnnc.compiler.lower.verify import mismatches
from cnnc.compiler.ops import REGISTRY, Lowering
from cnnc.dsl.diagnostics import CnncError

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:Using padding='same'"),
    pytest.mark.filterwarnings("ignore:The recursion limit will not be reset"),
]
SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
BATCH = 2


@dataclass(frozen=True)
class Case:
    """One drawn op: its .cnn text, its input, and torch's own way of computing it."""

    layer: (
        str  # `Conv(8, 3)`, applied as `in -> op: …`; for a merge, the whole expression over `in`
    )
    shape: tuple[int, ...]
    build: Callable[[], nn.Module] | None  # torch's module (None: the op is a function)
    apply: Callable | None = None  # (module, x) -> output; default module(x)
    like: tuple[int, int] | None = None  # the spatial size of the second input `t`
    params: int | None = None  # trainable parameters when there is no module to count them on
    merge: bool = False

    def text(self) -> str:
        dims = ", ".join(map(str, self.shape))
        t = (
            f"    t = in -> AdaptiveAvgPool([{self.like[0]}, {self.like[1]}])\n"
            if self.like
            else ""
        )
        body = self.layer if self.merge else f"in -> op: {self.layer}"
        return f"network n {{\n    input [{dims}]\n{t}    return {body}\n}}\n"


def num(x: float) -> str:
    return repr(float(x))


def pair_text(v) -> str:
    return str(v[0]) if v[0] == v[1] else f"[{v[0]}, {v[1]}]"


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def maps(draw, c=(1, 6), side=(1, 9)):
    return (draw(st.integers(*c)), draw(st.integers(*side)), draw(st.integers(*side)))


def pairs(draw, lo, hi):
    a = draw(st.integers(lo, hi))
    return (a, draw(st.integers(lo, hi))) if draw(st.booleans()) else (a, a)


def floats(draw, lo=-2.0, hi=2.0):
    return (
        draw(st.sampled_from([0.0, 1.0, 0.5, 1e-3]))
        if draw(st.booleans())
        else round(draw(st.floats(lo, hi, allow_nan=False)), 4)
    )


def bool_text(b: bool) -> str:
    return "true" if b else "false"


def channels_last(m, x):
    """A per-position layer, as torchvision's ConvNeXt runs it: [N, C, H, W] → [N, H, W, C] and back."""
    return m(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


# -- the cases, one drawing function per op -------------------------------------------------------


def conv(draw):
    shape = maps(draw, side=(3, 9))
    g = draw(st.sampled_from(divisors(shape[0])))
    out = g * draw(st.integers(1, 3))
    k, s, p, d = pairs(draw, 1, 3), pairs(draw, 1, 2), pairs(draw, 0, 2), pairs(draw, 1, 2)
    same = s == (1, 1) and draw(st.booleans())
    bias = draw(st.booleans())
    pad = "same" if same else pair_text(p)
    text = (
        f"Conv({out}, {pair_text(k)}, stride = {pair_text(s)}, pad = {pad}, dilation = {pair_text(d)}, "
        f"groups = {g}, bias = {bool_text(bias)})"
    )
    return Case(
        text, shape, lambda: nn.Conv2d(shape[0], out, k, s, "same" if same else p, d, g, bias)
    )


def conv_transpose(draw):
    shape = maps(draw)
    g = draw(st.sampled_from(divisors(shape[0])))
    out = g * draw(st.integers(1, 3))
    k, s, p, d = pairs(draw, 1, 3), pairs(draw, 1, 3), pairs(draw, 0, 2), pairs(draw, 1, 2)
    op = tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
    bias = draw(st.booleans())
    text = (
        f"ConvTranspose({out}, {pair_text(k)}, stride = {pair_text(s)}, pad = {pair_text(p)}, "
        f"output_padding = {pair_text(op)}, groups = {g}, bias = {bool_text(bias)}, dilation = {pair_text(d)})"
    )
    return Case(text, shape, lambda: nn.ConvTranspose2d(shape[0], out, k, s, p, op, g, bias, d))


def linear(draw):
    n, out, bias = draw(st.integers(1, 8)), draw(st.integers(1, 6)), draw(st.booleans())
    return Case(f"Linear({out}, bias = {bool_text(bias)})", (n,), lambda: nn.Linear(n, out, bias))


def pointwise_linear(draw):
    shape, out, bias = maps(draw), draw(st.integers(1, 6)), draw(st.booleans())
    return Case(
        f"PointwiseLinear({out}, bias = {bool_text(bias)})",
        shape,
        lambda: nn.Linear(shape[0], out, bias),
        channels_last,
    )


def window_pool(avg: bool):
    def draw_case(draw):
        shape = maps(draw)
        k, s = pairs(draw, 1, 3), pairs(draw, 1, 3)
        p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
        ceil = draw(st.booleans())
        common = f"{pair_text(k)}, stride = {pair_text(s)}, pad = {pair_text(p)}, ceil_mode = {bool_text(ceil)}"
        if avg:
            inc = draw(st.booleans())
            return Case(
                f"AvgPool({common}, count_include_pad = {bool_text(inc)})",
                shape,
                lambda: nn.AvgPool2d(k, s, p, ceil, inc),
            )
        d = pairs(draw, 1, 2)
        return Case(
            f"MaxPool({common}, dilation = {pair_text(d)})",
            shape,
            lambda: nn.MaxPool2d(k, s, p, d, ceil_mode=ceil),
        )

    return draw_case


def adaptive(op: str, module):
    def draw_case(draw):
        shape, o = maps(draw), pairs(draw, 1, 4)
        return Case(f"{op}({pair_text(o)})", shape, lambda: module(o))

    return draw_case


def global_pool(op: str, module):
    return lambda draw: Case(op, maps(draw), lambda: module(1))


def batchnorm(draw):
    vector = draw(st.booleans())
    shape = (draw(st.integers(1, 6)),) if vector else maps(draw)
    eps, momentum, affine = (
        draw(st.sampled_from([1e-5, 1e-3, 0.1])),
        draw(st.floats(0, 1)),
        draw(st.booleans()),
    )
    build = nn.BatchNorm1d if vector else nn.BatchNorm2d
    return Case(
        f"BatchNorm(eps = {num(eps)}, momentum = {num(momentum)}, affine = {bool_text(affine)})",
        shape,
        lambda: build(shape[0], eps, momentum, affine),
    )


def frozen_batchnorm(draw):
    shape, eps = maps(draw), draw(st.sampled_from([1e-5, 1e-3, 0.1]))
    return Case(
        f"FrozenBatchNorm(eps = {num(eps)})",
        shape,
        lambda: torchvision.ops.misc.FrozenBatchNorm2d(shape[0], eps),
    )


def groupnorm(draw):
    vector = draw(st.booleans())
    shape = (draw(st.integers(1, 8)),) if vector else maps(draw, c=(1, 8))
    g, eps, affine = (
        draw(st.sampled_from(divisors(shape[0]))),
        draw(st.sampled_from([1e-5, 0.1])),
        draw(st.booleans()),
    )
    return Case(
        f"GroupNorm({g}, eps = {num(eps)}, affine = {bool_text(affine)})",
        shape,
        lambda: nn.GroupNorm(g, shape[0], eps, affine),
    )


def instancenorm(draw):
    shape = maps(draw)
    assume(shape[1] * shape[2] > 1)
    eps, momentum = draw(st.sampled_from([1e-5, 0.1])), draw(st.floats(0, 1))
    affine, track = draw(st.booleans()), draw(st.booleans())
    text = (
        f"InstanceNorm(eps = {num(eps)}, momentum = {num(momentum)}, affine = {bool_text(affine)}, "
        f"track_running_stats = {bool_text(track)})"
    )
    return Case(text, shape, lambda: nn.InstanceNorm2d(shape[0], eps, momentum, affine, track))


def layernorm(draw):
    vector = draw(st.booleans())
    shape = (draw(st.integers(1, 6)),) if vector else maps(draw)
    eps, affine, bias = (
        draw(st.sampled_from([1e-5, 1e-6, 0.1])),
        draw(st.booleans()),
        draw(st.booleans()),
    )
    text = f"LayerNorm(eps = {num(eps)}, elementwise_affine = {bool_text(affine)}, bias = {bool_text(bias)})"
    return Case(
        text,
        shape,
        lambda: nn.LayerNorm(shape[0], eps, affine, bias),
        None if vector else channels_last,
    )


def layernorm2d(draw):
    shape, eps = maps(draw), draw(st.sampled_from([1e-6, 1e-5, 0.1]))
    return Case(
        f"LayerNorm2d(eps = {num(eps)})", shape, lambda: nn.LayerNorm(shape[0], eps), channels_last
    )


def lrn(draw):
    shape = maps(draw)
    size = draw(st.integers(1, 2 * shape[0] + 1))
    alpha, beta, k = (
        draw(st.sampled_from([1e-4, 0.5])),
        draw(st.sampled_from([0.75, 1.0])),
        draw(st.sampled_from([1.0, 2.0])),
    )
    return Case(
        f"LocalResponseNorm({size}, {num(alpha)}, {num(beta)}, {num(k)})",
        shape,
        lambda: nn.LocalResponseNorm(size, alpha, beta, k),
    )


def layer_scale(draw):
    shape, init = maps(draw), floats(draw)
    return Case(f"LayerScale({num(init)})", shape, None, lambda m, x: x * init, params=shape[0])


def activation(op: str, module=None, params: tuple = ()):
    """A parameterless activation, or one whose float arguments are drawn (name, low, high)."""

    def draw_case(draw):
        vector = draw(st.booleans())
        shape = (draw(st.integers(1, 6)),) if vector else maps(draw)
        values = {
            name: round(draw(st.floats(lo, hi, allow_nan=False)), 3) for name, lo, hi in params
        }
        text = op + (
            f"({', '.join(f'{k} = {num(v)}' for k, v in values.items())})" if values else ""
        )
        return Case(text, shape, lambda: (module or getattr(nn, op))(**values))

    return draw_case


def prelu(draw):
    vector = draw(st.booleans())
    shape = (draw(st.integers(1, 6)),) if vector else maps(draw)
    n, init = draw(st.sampled_from([1, shape[0]])), floats(draw)
    return Case(f"PReLU({n}, init = {num(init)})", shape, lambda: nn.PReLU(n, init))


def softmax(draw):
    vector = draw(st.booleans())
    shape = (draw(st.integers(1, 6)),) if vector else maps(draw)
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    return Case(f"Softmax({dim})", shape, lambda: nn.Softmax(dim + 1 if dim >= 0 else dim))


def scale(draw):
    shape, value = maps(draw), floats(draw)
    return Case(f"Scale({num(value)})", shape, lambda: nn.Identity(), lambda m, x: x * value)


def zero(draw):
    return Case("Zero", maps(draw), lambda: nn.Identity(), lambda m, x: torch.zeros_like(x))


def dropout(draw):
    p = draw(st.floats(0, 1))
    return Case(f"Dropout({num(p)})", maps(draw), lambda: nn.Dropout(p))


def stochastic_depth(draw):
    p = draw(st.floats(0, 1))
    return Case(
        f"StochasticDepth({num(p)})", maps(draw), lambda: torchvision.ops.StochasticDepth(p, "row")
    )


def reshape(draw):
    shape = maps(draw)
    n = math.prod(shape)
    if draw(st.booleans()):
        target = [n]
    else:
        a = draw(st.sampled_from(divisors(n)))
        b = draw(st.sampled_from(divisors(n // a)))
        target = [a, b, n // (a * b)]
    if draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    text = f"Reshape([{', '.join(map(str, target))}])"
    return Case(text, shape, lambda: nn.Identity(), lambda m, x: x.reshape(x.shape[0], *target))


def channel_shuffle(draw):
    shape = maps(draw)
    g = draw(st.sampled_from(divisors(shape[0])))
    return Case(f"ChannelShuffle({g})", shape, lambda: nn.ChannelShuffle(g))


def chunk(draw):
    shape = maps(draw)
    chunks = draw(st.sampled_from(divisors(shape[0])))
    index = draw(st.integers(0, chunks - 1))
    return Case(
        f"Chunk({chunks}, {index})",
        shape,
        lambda: nn.Identity(),
        lambda m, x: x.chunk(chunks, dim=1)[index],
    )


def upsample(draw):
    shape = maps(draw)
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    corners = mode == "bilinear" and draw(st.booleans())
    ac = corners if mode == "bilinear" else None
    tail = f', mode = "{mode}", align_corners = {bool_text(corners)}'
    how = draw(st.sampled_from(["scale", "size", "like"]))
    if how == "like":
        like = pairs(draw, 1, 12)
        return Case(
            f"Upsample(like = t{tail})",
            shape,
            lambda: nn.Identity(),
            lambda m, x: F.interpolate(x, size=like, mode=mode, align_corners=ac),
            like=like,
        )
    if how == "size":
        size = pairs(draw, 1, 12)
        return Case(
            f"Upsample({pair_text(size)}{tail})",
            shape,
            lambda: nn.Upsample(size=size, mode=mode, align_corners=ac),
        )
    factors = [draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0])) for _ in range(2)]
    if draw(st.booleans()):
        factors[1] = factors[0]
    assume(all(math.floor(n * f) >= 1 for n, f in zip(shape[1:], factors)))
    text = f"Upsample(scale_factor = [{num(factors[0])}, {num(factors[1])}]{tail})"
    return Case(
        text, shape, lambda: nn.Upsample(scale_factor=tuple(factors), mode=mode, align_corners=ac)
    )


def pixel_shuffle(draw):
    r = draw(st.integers(1, 3))
    shape = (draw(st.integers(1, 3)) * r * r, draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    return Case(f"PixelShuffle({r})", shape, lambda: nn.PixelShuffle(r))


def pad(draw):
    shape = maps(draw)
    sides = tuple(draw(st.integers(0, 3)) for _ in range(4))
    mode = draw(st.sampled_from(["constant", "reflect", "replicate"]))
    if mode == "reflect":
        assume(max(sides[:2]) < shape[2] and max(sides[2:]) < shape[1])
    value = floats(draw) if mode == "constant" else 0.0
    written = str(sides[0]) if len(set(sides)) == 1 else f"[{', '.join(map(str, sides))}]"
    text = f'Pad({written}, mode = "{mode}", value = {num(value)})'
    build = {
        "constant": lambda: nn.ConstantPad2d(sides, value),
        "reflect": lambda: nn.ReflectionPad2d(sides),
        "replicate": lambda: nn.ReplicationPad2d(sides),
    }[mode]
    return Case(text, shape, build)


def crop(draw):
    shape = maps(draw)
    like = (draw(st.integers(1, shape[1])), draw(st.integers(1, shape[2])))

    def cropped(m, x):
        top, left = (x.shape[-2] - like[0]) // 2, (x.shape[-1] - like[1]) // 2
        return x[..., top : top + like[0], left : left + like[1]]

    return Case("Crop(like = t)", shape, lambda: nn.Identity(), cropped, like=like)


def merge(op: str):
    texts = {
        "Add": ("in + (in -> Scale(2.0))", lambda m, x: x + 2 * x),
        "Mul": ("in * (in -> GlobalAvgPool)", lambda m, x: x * x.mean((2, 3), keepdim=True)),
        "Concat": ("concat(in, in -> Scale(2.0))", lambda m, x: torch.cat([x, 2 * x], dim=1)),
    }
    text, fn = texts[op]
    return lambda draw: Case(text, maps(draw), None, fn, merge=True)


CASES = {
    "Conv": conv,
    "ConvTranspose": conv_transpose,
    "Linear": linear,
    "PointwiseLinear": pointwise_linear,
    "MaxPool": window_pool(avg=False),
    "AvgPool": window_pool(avg=True),
    "AdaptiveAvgPool": adaptive("AdaptiveAvgPool", nn.AdaptiveAvgPool2d),
    "AdaptiveMaxPool": adaptive("AdaptiveMaxPool", nn.AdaptiveMaxPool2d),
    "GlobalAvgPool": global_pool("GlobalAvgPool", nn.AdaptiveAvgPool2d),
    "GlobalMaxPool": global_pool("GlobalMaxPool", nn.AdaptiveMaxPool2d),
    "BatchNorm": batchnorm,
    "FrozenBatchNorm": frozen_batchnorm,
    "GroupNorm": groupnorm,
    "InstanceNorm": instancenorm,
    "LayerNorm": layernorm,
    "LayerNorm2d": layernorm2d,
    "LocalResponseNorm": lrn,
    "LayerScale": layer_scale,
    **{
        op: activation(op)
        for op in (
            "ReLU",
            "ReLU6",
            "Sigmoid",
            "Tanh",
            "Hardswish",
            "Hardsigmoid",
            "SiLU",
            "GELU",
            "Mish",
        )
    },
    "LeakyReLU": activation("LeakyReLU", params=(("negative_slope", -1.0, 1.0),)),
    "ELU": activation("ELU", params=(("alpha", 0.0, 2.0),)),
    "Softplus": activation("Softplus", params=(("beta", 0.1, 3.0), ("threshold", 0.5, 20.0))),
    "PReLU": prelu,
    "Softmax": softmax,
    "Scale": scale,
    "Zero": zero,
    "Dropout": dropout,
    "StochasticDepth": stochastic_depth,
    "Identity": lambda draw: Case("Identity", maps(draw), lambda: nn.Identity()),
    "Flatten": lambda draw: Case("Flatten", maps(draw), lambda: nn.Flatten()),
    "Reshape": reshape,
    "ChannelShuffle": channel_shuffle,
    "Chunk": chunk,
    "Upsample": upsample,
    "PixelShuffle": pixel_shuffle,
    "Pad": pad,
    "Crop": crop,
    "Add": merge("Add"),
    "Mul": merge("Mul"),
    "Concat": merge("Concat"),
}


def test_every_op_has_a_case():
    # `Input` is in every case: each checks the input node's shape too
    assert set(CASES) | {"Input"} == set(REGISTRY)


# -- the check -----------------------------------------------------------------------------------------


def randomised(module: nn.Module) -> nn.Module:
    """Weights and statistics drawn away from their initial values (positive: variances stay valid)."""
    with torch.no_grad():
        for value in module.state_dict().values():
            if value.is_floating_point():
                value.uniform_(0.5, 1.5)
    return module.eval()


def op_node(graph, case: Case, op: str):
    if case.merge:
        return next(n for n in graph.nodes_in_order() if n.op == op)
    return next(n for n in graph.nodes_in_order() if n.name == "op")


def check(case: Case, op: str) -> None:
    reference = randomised(case.build()) if case.build else None
    x = torch.randn(BATCH, *case.shape)
    apply = case.apply or (lambda m, v: m(v))
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            expected = apply(reference, x)
    except (RuntimeError, ValueError):
        assume(False)  # torch refuses the draw here; tests/test_op_ranges.py compares refusals
    # an empty output, or a max-pool window wholly in the padding (-inf): cnnc refuses both
    assume(expected.numel() > 0 and bool(torch.isfinite(expected).all()))
    graph = api.graph("oracle.cnn", text=case.text())
    node = op_node(graph, case, op)
    inputs = tuple(graph.node(i).type for i in node.inputs)
    assert graph.input.type.shape == case.shape
    assert (BATCH, *node.type.shape) == tuple(expected.shape), case.text()
    params = (
        case.params
        if case.params is not None
        else sum(p.numel() for p in reference.parameters())
        if reference is not None
        else 0
    )
    assert node.spec.count_params(node.args, inputs, node.type) == params, case.text()
    assert node.spec.count_macs(node.args, inputs, node.type) == counter.get_total_flops() // (
        2 * BATCH
    )
    model = to_graph_module(graph, seed=0).eval()
    if node.spec.lowering is Lowering.MODULE and reference is not None and reference.state_dict():
        model.get_submodule(node.name).load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        got = model(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, msg=case.text)
    assert mismatches(graph, device="cpu") == [], case.text()


@pytest.mark.parametrize("op", sorted(CASES))
@SETTINGS
@given(data=st.data())
def test_static_equals_runtime_for_every_op(op, data):
    check(CASES[op](data.draw), op)


# -- what a backward keeps: each op's declared training memory against torch's saved tensors ----------


def torch_saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves in one training forward (`saved_tensors_hooks`),
    the module's own parameters and buffers aside (they are weights, not activations)."""
    own = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(saved.values())


def _positions(node, inputs) -> int:
    return node.type.numel // node.type.shape[0]  # per channel: H·W of a map, 1 of a vector


def _dropout(node, inputs) -> int:
    """cnnc counts the bool mask CUDA's fused dropout keeps; on the CPU torch multiplies by a float
    mask (4 bytes an element), or returns the input untouched at p = 0 (nothing kept)."""
    p, n = node.args["p"], node.type.numel
    return -n if p == 0 else 3 * n if p < 1 else 4 - n  # p = 1: x times a zero scalar


def _asymmetric_same(node, inputs) -> int:
    """`pad = same` with an even kernel: torch pads a copy of the input by the odd pixel on each axis
    and saves that copy instead of the input (cnnc counts the input)."""
    if node.args["padding"] != "same":
        return 0
    (c, h, w), (kh, kw), (dh, dw) = inputs[0].shape, node.args["kernel_size"], node.args["dilation"]
    padded = c * (h + dh * (kh - 1) % 2) * (w + dw * (kw - 1) % 2)
    return 4 * (padded - c * h * w)


# Bytes torch keeps at batch 1 beyond what cnnc's registry declares, op by op, (node, input types) ->
# bytes, and why cnnc leaves them out: statistics per channel or per group, a few floats beside the
# maps the estimate is about; LRN's square is counted without its border planes; a per-sample float
# of StochasticDepth; the odd pixel of an asymmetric `same` padding; dropout's mask as on CUDA.
UNCOUNTED = {
    "Conv": _asymmetric_same,
    "BatchNorm": lambda n, i: 4 * 2 * n.type.shape[0],  # save_mean, save_invstd per channel
    "FrozenBatchNorm": lambda n, i: 4 * n.type.shape[0],  # its scale, weight · rsqrt(var + eps)
    "GroupNorm": lambda n, i: 4 * 2 * n.args["num_groups"],  # mean, rstd per group
    "InstanceNorm": lambda n, i: (
        4 * n.type.shape[0] * (2 + n.args["affine"] + 2 * n.args["track_running_stats"])
    ),
    "LayerNorm": lambda n, i: 4 * 2 * _positions(n, i),  # mean, rstd per position
    "LayerNorm2d": lambda n, i: 4 * 2 * _positions(n, i),
    "LocalResponseNorm": lambda n, i: 4 * (n.args["size"] - 1) * _positions(n, i),
    "StochasticDepth": lambda n, i: 4 if n.args["p"] > 0 else 0,  # the sample's kept/dropped factor
    "Dropout": _dropout,
}


def check_saved(case: Case) -> None:
    try:
        graph = api.graph("oracle.cnn", text=case.text())
    except CnncError:
        assume(False)  # an invalid draw (a window over the map): the test above compares refusals
    model = to_graph_module(graph, seed=0).train()
    x = torch.randn(1, *case.shape, requires_grad=True)  # as if an earlier layer made it
    try:
        got = torch_saved_bytes(model, x)
    except (RuntimeError, ValueError):
        assume(False)  # a batch norm of one value per channel: torch refuses to train it
    uncounted = sum(
        UNCOUNTED[n.op](n, tuple(graph.node(i).type for i in n.inputs))
        for n in graph.nodes_in_order()
        if n.op in UNCOUNTED
    )
    assert got == saved_total(graph) + uncounted, case.text()


@pytest.mark.parametrize("op", sorted(CASES))
@SETTINGS
@given(data=st.data())
def test_declared_saved_tensors_are_torchs_for_every_op(op, data):
    """`OpSpec.saves` and its companions, summed by `saved_total`, are the bytes autograd keeps for a
    training forward of the lowered network, up to the documented `UNCOUNTED` bytes exactly."""
    check_saved(CASES[op](data.draw))


# -- DeepLab's atrous convolutions, and resizing at any input size ---------------------------------


@pytest.mark.parametrize("rate", [12, 24, 36])
def test_deeplab_atrous_rates_pad_as_torchvision_does(rate):
    """ASPP's 3×3 convolutions at dilation 12/24/36 with `pad = same`: symmetric padding equal to the
    dilation (torchvision's ASPPConv), so every input size is kept, even one smaller than the rate."""
    from torchvision.models.segmentation.deeplabv3 import ASPPConv

    from cnnc.compiler.lower import modules
    from cnnc.compiler.lower.fx import instantiate

    text = f"network n {{ input [32, 28, 28] return in -> op: Conv(16, 3, pad = same, dilation = {rate}, bias = false) }}"
    for shape in [(32, 28, 28), (32, 7, 33), (32, 65, 40)]:
        graph = api.graph("aspp.cnn", text=text, input=shape)
        node = graph.node(graph.output)
        assert node.args["padding"] == (rate, rate) and node.type.shape == (16, *shape[1:])
        assert mismatches(graph) == []
    layer = modules.layer(graph, node)
    assert (layer.kwargs["padding"], layer.kwargs["dilation"]) == (rate, rate)
    assert repr(instantiate(layer)) == repr(ASPPConv(32, 16, rate)[0])


RESIZING = """
network n {
    input [3, 32, 32]
    s = in -> conv: Conv(4, 3, stride = 2, pad = 1)
    up = s -> Upsample(like = in, mode = "bilinear")
    skip = in -> Pad(3, mode = "replicate") -> Crop(like = in)
    return concat(up, skip)
}
"""


def test_a_resize_or_crop_to_another_tensor_follows_it_at_any_input_size():
    """Compiled at 32×32, run at 45×29: the sizes are read from the tensors when the network runs."""
    from cnnc.compiler.lower.source import to_source

    graph = api.graph("resize.cnn", text=RESIZING)
    model = to_graph_module(graph, seed=0).eval()
    namespace: dict = {}
    exec(compile(to_source(graph, seed=0), "<generated>", "exec"), namespace)  # noqa: S102  (our own output)
    standalone = namespace["N"]().eval()
    x = torch.randn(2, 3, 45, 29)
    with torch.no_grad():
        s = model.conv(x)
        expected = torch.cat(
            [F.interpolate(s, size=(45, 29), mode="bilinear", align_corners=False), x], dim=1
        )
        torch.testing.assert_close(model(x), expected)
        torch.testing.assert_close(standalone(x), expected)


def test_receptive_fields_of_scaling_ops_are_in_input_pixels():
    """After upsampling, a 3×3 conv reads three fine positions, which fall on one or two coarse
    ones: every position of an upsampled map reads whole coarse fields, never half of one."""
    from cnnc.compiler.analysis.summary import summarize

    def rf(layers: str) -> tuple[int, int]:
        graph = api.graph(
            "rf.cnn",
            text=f"network n {{ input [1, 32, 32] return in -> {layers} -> op: Identity }}",
        )
        row = next(r for r in summarize(graph).layers if r.name == "op")
        return row.rf_min, row.rf

    # ×2: fine positions o − 1 … o + 1 always span two coarse ones (3 pixels each, 2 apart)
    assert rf(
        "Conv(1, 3, stride = 2, pad = 1) -> Upsample(scale_factor = 2) -> Conv(1, 3, pad = 1)"
    ) == (5, 5)
    assert rf("Conv(1, 3, stride = 2, pad = 1) -> Conv(1, 3, pad = 1)") == (7, 7)
    # stride 2, 3 taps: even outputs read two inputs, odd ones one
    assert rf("ConvTranspose(1, 3, stride = 2)") == (1, 2)
    assert rf('Upsample(scale_factor = 2, mode = "bilinear") -> Conv(1, 3, pad = 1)') == (3, 3)
    # ×4: three fine positions fall on one coarse position (4 pixels) or on two (8)
    assert rf(
        "Conv(1, 4, stride = 4) -> PixelShuffle(1) -> Upsample(like = in) -> Conv(1, 3, pad = 1)"
    ) == (4, 8)


@pytest.mark.parametrize(
    "body, code",
    [
        ("t = in -> MaxPool(2)\n    return t -> Crop(like = in)", "E0303"),  # a crop cannot grow
        ("t = in -> Flatten\n    return in -> Crop(like = t)", "E0304"),  # `like` must be a map
        ("t = in -> Flatten\n    return in -> Upsample(like = t)", "E0304"),
        ("return in -> Flatten -> Upsample(scale_factor = 2)", "E0304"),
        ("return in -> Upsample(like = 3)", "E0404"),
        ("return in -> Upsample(scale_factor = 2, like = in)", "E0405"),  # exactly one way to size
        ("return in -> Upsample", "E0405"),
        ("return in -> Upsample(scale_factor = 0.1)", "E0303"),
        ('return in -> Upsample(scale_factor = 2, mode = "bicubic")', "E0405"),
        ("return in -> Crop", "E0402"),
        ("return in -> ConvTranspose(4, 3, stride = 2, output_padding = 2)", "E0405"),
        ("return in -> ConvTranspose(4, 1, pad = 5)", "E0303"),
        ("return in -> PixelShuffle(2)", "E0305"),  # 3 channels are no multiple of 4
        ("return in -> GroupNorm(2)", "E0305"),
        (
            "return in -> GlobalAvgPool -> InstanceNorm",
            "E0304",
        ),  # one position: nothing to normalise
        ("return in -> PReLU(2)", "E0405"),  # one slope, or one per channel
        ('return in -> Pad(8, mode = "reflect")', "E0405"),  # reflect pads less than the side
        ('return in -> Pad(1, mode = "replicate", value = 1.0)', "E0405"),
        ("return in -> Reshape([5, -1, 2])", "E0405"),
        ("return in -> Reshape([-1, -1, 8])", "E0405"),
    ],
)
def test_rule_violations_of_the_new_ops_are_located_errors(body, code):
    from cnnc.dsl.diagnostics import CnncError

    text = f"network n {{\n    input [3, 8, 8]\n    {body}\n}}\n"
    with pytest.raises(CnncError) as info:
        api.graph("rules.cnn", text=text)
    assert [d.code for d in info.value.diagnostics] == [code]
