"""Static == runtime: the checker's shapes, parameter counts and MACs equal what torch computes.

- Every concrete network of every `zoo/**/*.cnn` file, on the meta device (torch's own shape and
  FLOP formulas, no arithmetic): every node's shape, `sum(p.numel())`, FlopCounterMode total / 2.
- Hand-written programs covering every op, run for real on CPU.
- A hypothesis property over random valid programs (chains, branches, residual blocks, concat, SE
  gates, groups, strides, pools): generated as .cnn text, elaborated, lowered, compared node by
  node.
- Single layers: the checker rejects a Conv or pool configuration exactly when torch raises.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnc import api
from cnnc.compiler.lower.verify import mismatches
from cnnc.dsl.diagnostics import CnncError

ROOT = Path(__file__).resolve().parents[1]
ZOO_FILES = sorted((ROOT / "zoo").glob("**/*.cnn"))


@contextlib.contextmanager
def threads(n: int):
    """Small tensors run fastest on one thread: more threads only add synchronisation."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def graph_of(text: str, network: str | None = None):
    return api.graph("test.cnn", network, text=text)


# -- the zoo --------------------------------------------------------------------------------------


def concrete_networks(path: Path) -> list[str]:
    from cnnc.compiler.elaborate import network_names

    return [name for name, concrete in network_names(api.load_program(path)) if concrete]


@pytest.mark.parametrize("path", ZOO_FILES, ids=lambda p: str(p.relative_to(ROOT / "zoo")))
@threads(1)
def test_zoo_static_equals_runtime(path):
    names = concrete_networks(path)
    if not names:
        pytest.skip("defines no concrete network (a family of parameterised networks)")
    for name in names:
        try:
            g = api.graph(path, name)
        except CnncError as exc:
            if all(d.code.startswith("E05") for d in exc.diagnostics):
                pytest.skip("a search space: its networks need decisions")
            raise
        assert mismatches(g) == [], name


# -- hand-written programs, run for real -----------------------------------------------------------

PROGRAMS = {
    "resnet_blocks": """
        block Basic(width, stride = 1) {
            main = in -> conv1: Conv(width, 3, stride = stride, pad = 1, bias = false)
                      -> bn1: BatchNorm -> ReLU
                      -> conv2: Conv(width, 3, pad = 1, bias = false) -> bn2: BatchNorm
            skip = if stride != 1 or in.channels != width
                   then in -> downsample: (Conv(width, 1, stride = stride, bias = false)
                                           -> BatchNorm)
                   else in
            return (main + skip) -> ReLU
        }
        network n {
            input [3, 32, 32]
            return in -> conv1: Conv(8, 3, pad = 1) -> MaxPool(3, stride = 2, pad = 1)
                      -> layer1: [Basic(8) for i in range(2)]
                      -> layer2: [Basic(16, stride = 2), Basic(16)]
                      -> GlobalAvgPool -> Flatten -> fc: Linear(10)
        }""",
    "inception_se_shuffle": """
        block SE(c, r) {
            return in * (in -> GlobalAvgPool -> Conv(c // r, 1) -> ReLU -> Conv(c, 1) -> Sigmoid)
        }
        network n {
            input [4, 15, 13]
            x = in -> Conv(12, [3, 5], stride = [1, 2], pad = [1, 2], groups = 4) -> ReLU6
            y = concat(x -> Conv(4, 1), x -> MaxPool(3, stride = 1, pad = 1),
                       x -> AvgPool(3, stride = 1, pad = 1))
            return y -> ChannelShuffle(4) -> SE(28, 4) -> LocalResponseNorm(3) -> Hardswish
                     -> AvgPool(2, ceil_mode = true) -> MaxPool(2, ceil_mode = true, dilation = 1)
                     -> AdaptiveMaxPool(2) -> AdaptiveAvgPool(1) -> Flatten -> Dropout(0.2)
                     -> Linear(6) -> BatchNorm -> Tanh -> Softmax
        }""",
    "modern_ops": """
        block CN(dim) {
            main = in -> body: (Conv(dim, 7, pad = 3, groups = dim) -> LayerNorm2d
                                -> PointwiseLinear(4 * dim) -> GELU -> PointwiseLinear(dim))
                      -> layer_scale: LayerScale(1e-6) -> stochastic_depth: StochasticDepth(0.1)
            return main + in
        }
        network n {
            input [3, 16, 16]
            x = in -> stem: (Conv(8, 4, stride = 4) -> LayerNorm2d)
                   -> stage: [CN(8) for i in range(2)]
            w = concat(x -> Chunk(2, 0), x -> Chunk(2, 1) -> Conv(4, 1) -> SiLU) -> Identity
            y = concat(w, w -> Conv(4, 3, pad = 1) -> Zero) -> Conv(8, 1)
            return (y -> Conv(8, 2, pad = same) -> Scale(0.5)) + y
                   -> LeakyReLU(0.2) -> Sigmoid -> Hardsigmoid
                   -> GlobalAvgPool -> Flatten -> Linear(10) -> ReLU
        }""",
    "resize_and_norms": """
        network n {
            input [8, 13, 10]
            a = in -> Conv(8, 3, stride = 2, pad = 1) -> GroupNorm(4) -> PReLU(8) -> ELU -> Mish
                   -> Softplus(beta = 2) -> InstanceNorm(affine = true, track_running_stats = true)
            b = a -> ConvTranspose(8, 3, stride = 2, pad = 1, output_padding = 1) -> Crop(like = in)
                  -> FrozenBatchNorm -> LayerNorm
            c = (a -> Upsample(like = in, mode = "bilinear")) + b
            d = c -> Pad([1, 0, 2, 1], mode = "replicate") -> Upsample(scale_factor = 2) -> Conv(16, 1)
                  -> PixelShuffle(2) -> Upsample(size = [9, 7], mode = "bilinear", align_corners = true)
            return d -> GlobalMaxPool -> Reshape([-1]) -> LayerNorm -> Linear(5)
        }""",
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
@pytest.mark.filterwarnings("ignore:Using padding='same'")  # the even kernel of `modern_ops`
@threads(1)
def test_programs_static_equals_runtime_on_cpu(name):
    assert mismatches(graph_of(PROGRAMS[name]), device="cpu") == []


def test_programs_cover_every_op():
    from cnnc.compiler.ops import REGISTRY

    used = {n.op for text in PROGRAMS.values() for n in graph_of(text).nodes_in_order()}
    assert set(REGISTRY) - used == set(), "add a program above that uses the new op"


@threads(1)
def test_example_resnet_at_another_size_on_cpu():
    text = (
        (ROOT / "zoo" / "resnet18.cnn").read_text()
        if (ROOT / "zoo" / "resnet18.cnn").exists()
        else None
    )
    if text is None:
        pytest.skip("zoo/resnet18.cnn is not there yet")
    g = api.graph(ROOT / "zoo" / "resnet18.cnn", input=(3, 64, 48))
    assert mismatches(g, device="cpu") == []


# -- random programs -------------------------------------------------------------------------------

BLOCKS = {  # included only where used: parsing is most of an example's time
    "Res": """block Res(c) {
    main = in -> conv1: Conv(c, 3, pad = 1, bias = false) -> bn1: BatchNorm -> ReLU
              -> conv2: Conv(c, 3, pad = 1)
    return main + in
}""",
    "Down": """block Down(c, s) {
    main = in -> conv1: Conv(c, 3, stride = s, pad = 1) -> ReLU
    skip = in -> downsample: (Conv(c, 1, stride = s, bias = false) -> BatchNorm)
    return (main + skip) -> ReLU
}""",
    "SE": """block SE(c) {
    return in * (in -> GlobalAvgPool -> Conv(c, 1) -> Sigmoid)
}""",
}
ACTIVATIONS = [
    "ReLU",
    "ReLU6",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "Hardswish",
    "Hardsigmoid",
    "SiLU",
    "GELU",
]


@dataclass(frozen=True)
class Layer:
    """A drawn layer: its .cnn text and the torch module the test builds for it independently."""

    text: str
    build: object  # channels -> nn.Module

    def shape_after(self, shape):
        """The output shape torch gives, or None where torch raises."""
        try:
            with torch.no_grad():
                return tuple(self.build(shape[0]).eval()(torch.zeros(1, *shape)).shape[1:])
        except (RuntimeError, ValueError):
            return None


def pair_text(v) -> str:
    return f"[{v[0]}, {v[1]}]" if v[0] != v[1] else str(v[0])


def window_args(k, s, p, ceil: bool) -> str:
    ceil_mode = "true" if ceil else "false"
    return f"{pair_text(k)}, stride = {pair_text(s)}, pad = {pair_text(p)}, ceil_mode = {ceil_mode}"


@st.composite
def pairs(draw, lo, hi):
    a = draw(st.integers(lo, hi))
    return (a, draw(st.integers(lo, hi))) if draw(st.booleans()) else (a, a)


@st.composite
def conv_layers(draw, channels):
    divisors = [g for g in range(1, channels + 1) if channels % g == 0]
    g = draw(st.sampled_from(divisors))
    out = g * draw(st.integers(1, max(1, 6 // g)))
    k, s, p, d = draw(pairs(1, 3)), draw(pairs(1, 2)), draw(pairs(0, 2)), draw(pairs(1, 2))
    bias = draw(st.booleans())
    text = (
        f"Conv({out}, {pair_text(k)}, stride = {pair_text(s)}, pad = {pair_text(p)}, "
        f"dilation = {pair_text(d)}, groups = {g}, bias = {'true' if bias else 'false'})"
    )
    return Layer(text, lambda c: nn.Conv2d(c, out, k, s, p, d, g, bias))


@st.composite
def pool_layers(draw):
    k, s = draw(pairs(1, 3)), draw(pairs(1, 3))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    ceil = draw(st.booleans())
    common = window_args(k, s, p, ceil)
    if draw(st.booleans()):
        return Layer(f"MaxPool({common})", lambda c: nn.MaxPool2d(k, s, p, ceil_mode=ceil))
    return Layer(f"AvgPool({common})", lambda c: nn.AvgPool2d(k, s, p, ceil_mode=ceil))


@st.composite
def simple_layers(draw, channels):
    kind = draw(st.sampled_from(["act", "bn", "shuffle", "adaptive", "plain"]))
    if kind == "act":
        name = draw(st.sampled_from(ACTIVATIONS))
        return Layer(name, lambda c: getattr(nn, name)())
    if kind == "bn":
        return Layer("BatchNorm", lambda c: nn.BatchNorm2d(c))
    if kind == "shuffle":
        g = draw(st.sampled_from([g for g in range(1, channels + 1) if channels % g == 0]))
        return Layer(f"ChannelShuffle({g})", lambda c: nn.ChannelShuffle(g))
    if kind == "adaptive":
        o = draw(pairs(1, 3))
        return Layer(f"AdaptiveAvgPool({pair_text(o)})", lambda c: nn.AdaptiveAvgPool2d(o))
    name = draw(st.sampled_from(["Identity", "Dropout(0.3)"]))
    return Layer(name, lambda c: nn.Identity())


@st.composite
def chains(draw, shape, labels):
    """1–3 layers that torch accepts on `shape`: (text, output shape)."""
    texts = []
    for _ in range(draw(st.integers(1, 3))):
        which = draw(st.sampled_from(["conv", "pool", "simple"]))
        layer = draw(
            conv_layers(shape[0])
            if which == "conv"
            else pool_layers()
            if which == "pool"
            else simple_layers(shape[0])
        )
        after = layer.shape_after(shape)
        if after is None:
            continue  # torch refuses it here: the single-layer tests cover refusals
        label = f"l{next(labels)}: " if draw(st.booleans()) else ""
        texts.append(label + layer.text)
        shape = after
    return (" -> ".join(texts) if texts else "Identity"), shape


@st.composite
def programs(draw):
    """(text, number of statements): a network of named values over `in`, ending in a head."""
    from itertools import count

    labels = count()
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    values = {"in": shape}
    lines = []
    for i in range(draw(st.integers(1, 5))):
        recent = f"v{i - 1}" if i else "in"  # mostly extend the newest value, so little is pruned
        name, src = f"v{i}", draw(st.sampled_from([recent, recent, recent, *sorted(values)]))
        c, h, w = values[src]
        kind = draw(st.sampled_from(["chain"] * 4 + ["add", "concat", "se", "res", "down", "list"]))
        if kind == "chain":
            text, out = draw(chains(values[src], labels))
            text = f"{src} -> {text}"
        elif kind == "add":
            text, out = f"{src} + ({src} -> Conv({c}, 1))", (c, h, w)
        elif kind == "concat":
            same = [v for v, s in values.items() if s[1:] == (h, w) and v != src]
            other = (
                draw(st.sampled_from(same))
                if same and draw(st.booleans())
                else f"({src} -> Conv(2, 3, pad = 1))"
            )
            extra = values[other][0] if other in values else 2
            text, out = f"concat({src}, {other})", (c + extra, h, w)
        elif kind == "se":
            text, out = f"{src} -> SE({c})", (c, h, w)
        elif kind == "res":
            text, out = f"{src} -> r{i}: Res({c})", (c, h, w)
        elif kind == "down":
            cc, s = draw(st.integers(1, 5)), draw(st.integers(1, 2))
            text, out = f"{src} -> d{i}: Down({cc}, {s})", (cc, (h - 1) // s + 1, (w - 1) // s + 1)
        else:
            text, out = (
                f"{src} -> stage{i}: [Res({c}) for j in range({draw(st.integers(1, 2))})]",
                (c, h, w),
            )
        lines.append(f"    {name} = {text}")
        values[name] = out
    last = f"v{len(lines) - 1}"
    head = draw(
        st.sampled_from(
            [
                "",
                " -> GlobalAvgPool -> Flatten -> fc: Linear(3)",
                " -> Flatten -> Linear(4) -> BatchNorm -> ReLU -> Softmax",
            ]
        )
    )
    body = "\n".join(lines)
    blocks = "\n".join(text for name, text in BLOCKS.items() if f"{name}(" in body)
    declared = ", ".join(map(str, shape))
    net = f"network net {{\n    input [{declared}]\n{body}\n    return {last}{head}\n}}\n"
    return f"{blocks}\n{net}"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
@threads(1)
def test_random_programs_static_equals_runtime(text):
    g = graph_of(
        text
    )  # every layer was accepted by torch where it stands: the checker must accept it too
    assert mismatches(g, device="cpu") == [], text


# -- single layers: the checker rejects exactly when torch raises ----------------------------------


def torch_shape(module_fn, shape):
    """The output shape torch gives, or None when it raises or outputs -inf (a max pool window
    wholly in the padding: the checker rejects that too)."""
    try:
        with torch.no_grad():
            out = module_fn().eval()(torch.zeros(2, *shape))
    except (RuntimeError, ValueError):
        return None
    return tuple(out.shape[1:]) if bool(torch.isfinite(out).all()) else None


def checker_shape(layer_text, shape):
    try:
        g = graph_of(
            f"network n {{ input [{shape[0]}, {shape[1]}, {shape[2]}] return in -> {layer_text} }}"
        )
    except CnncError:
        return None, None
    return g.output_type.shape, g


inputs = st.tuples(st.integers(1, 6), st.integers(1, 7), st.integers(1, 7))


@settings(max_examples=200, deadline=None)
@given(
    shape=inputs,
    out=st.integers(1, 6),
    k=pairs(1, 5),
    s=pairs(1, 3),
    p=pairs(0, 3),
    d=pairs(1, 3),
    groups=st.integers(1, 4),
    same=st.booleans(),
)
@threads(1)
def test_conv_rejected_exactly_when_torch_raises(shape, out, k, s, p, d, groups, same):
    same = same and s == (
        1,
        1,
    )  # torch has `same` at stride 1 only (cnnc also resolves odd kernels)
    pad = "same" if same else pair_text(p)
    text = (
        f"Conv({out}, {pair_text(k)}, stride = {pair_text(s)}, pad = {pad}, "
        f"dilation = {pair_text(d)}, groups = {groups})"
    )
    expected = torch_shape(
        lambda: nn.Conv2d(shape[0], out, k, s, "same" if same else p, d, groups), shape
    )
    got, g = checker_shape(text, shape)
    assert got == expected, text
    if g is not None:
        assert mismatches(g, device="cpu") == []


@settings(max_examples=200, deadline=None)
@given(
    shape=inputs,
    k=pairs(1, 4),
    s=pairs(1, 3),
    p=pairs(0, 3),
    d=pairs(1, 2),
    ceil=st.booleans(),
    avg=st.booleans(),
)
@threads(1)
def test_pool_rejected_exactly_when_torch_raises(shape, k, s, p, d, ceil, avg):
    args = window_args(k, s, p, ceil)
    if avg:
        text, fn = f"AvgPool({args})", lambda: nn.AvgPool2d(k, s, p, ceil_mode=ceil)
    else:
        text, fn = (
            f"MaxPool({args}, dilation = {pair_text(d)})",
            lambda: nn.MaxPool2d(k, s, p, d, ceil_mode=ceil),
        )
    got, g = checker_shape(text, shape)
    assert got == torch_shape(fn, shape), text
    if g is not None:
        assert mismatches(g, device="cpu") == []
