"""The ops of `compiler/ops/extra.py`: shape rules, counts and receptive fields, with torch as the
oracle (parameter counts against `numel`, outputs against the computation each op stands for)."""

from __future__ import annotations

import pytest

from cnnc import api
from cnnc.compiler.analysis.summary import summarize
from cnnc.dsl.diagnostics import CnncError


def program(snippet: str, shape) -> str:
    dims = ", ".join(map(str, shape))
    return f"network t {{\n    input [{dims}]\n    return in -> op: {snippet}\n}}\n"


def row(snippet: str, shape):
    """The summary row of the op under test (labelled `op`)."""
    s = summarize(api.graph("t.cnn", text=program(snippet, shape)))
    return next(r for r in s.layers if r.name == "op")


# snippet, input, output, params, MACs
CASES = [
    ("StochasticDepth(0.1)", [8, 5, 5], (8, 5, 5), 0, 0),
    ("Chunk(2, 1)", [8, 5, 5], (4, 5, 5), 0, 0),
    ("Chunk(4, 0)", [8, 3, 7], (2, 3, 7), 0, 0),
    ("Scale(0.17)", [8, 5, 5], (8, 5, 5), 0, 0),
    ("LayerNorm2d", [8, 5, 5], (8, 5, 5), 16, 0),
    ("PointwiseLinear(12)", [8, 5, 5], (12, 5, 5), 8 * 12 + 12, 5 * 5 * 8 * 12),
    ("PointwiseLinear(12, bias = false)", [8, 5, 7], (12, 5, 7), 8 * 12, 5 * 7 * 8 * 12),
    ("LayerScale(1e-6)", [8, 5, 5], (8, 5, 5), 8, 0),
]


@pytest.mark.parametrize("snippet, shape, out, params, macs", CASES)
def test_shape_params_and_macs(snippet, shape, out, params, macs):
    r = row(snippet, shape)
    assert (r.shape, r.params, r.macs) == (out, params, macs)


@pytest.mark.parametrize(
    "snippet, shape, code",
    [
        ("Chunk(3, 0)", [8, 5, 5], "E0305"),  # 3 does not divide 8 channels
        ("Chunk(2, 2)", [8, 5, 5], "E0405"),  # chunks are numbered 0 and 1
        ("StochasticDepth(1.5)", [8, 5, 5], "E0405"),  # a probability
        ("LayerNorm2d", [8], "E0304"),  # needs [C, H, W]
        ("PointwiseLinear(4)", [8], "E0304"),  # a vector takes `Linear`
        ("LayerScale", [8], "E0304"),
        ("LocalResponseNorm(8)", [3, 5, 5], "E0405"),  # torch pads by the size: 2·3 + 1 = 7 at most
        (
            "LeakyReLU(1e300)",
            [8, 5, 5],
            "E0405",
        ),  # finite, but not as the float32 torch casts it to
    ],
)
def test_rule_violations_are_reported(snippet, shape, code):
    with pytest.raises(CnncError) as caught:
        api.graph("t.cnn", text=program(snippet, shape))
    assert [d.code for d in caught.value.diagnostics] == [code]


@pytest.mark.parametrize("snippet", [c[0] for c in CASES])
def test_position_preserving_ops_keep_the_receptive_field(snippet):
    text = program(f"{snippet}", [8, 9, 9]).replace("in -> op:", "in -> Conv(8, 3, pad = 1) -> op:")
    rows = {r.name: r for r in summarize(api.graph("t.cnn", text=text)).layers}
    assert rows["op"].rf == 3


# -- torch ---------------------------------------------------------------------------------------


def lowered(snippet: str, shape):
    """The op inside a block instance `b` beside another module, as the zoo uses them (ConvNeXt's
    `layer_scale` is a parameter of its block); its module is `net.b.op`. (A block holding nothing
    but a LayerScale is not initialised by `init_parameters` yet: the Identity avoids it.)"""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    block = "block B() {\n    return in -> Identity -> op: " + snippet + "\n}\n"
    text = block + program("B()", shape).replace("op: B()", "b: B()")
    return api.compile_source(text, path="t.cnn", seed=0).eval()


@pytest.mark.parametrize("snippet, shape, out, params, macs", CASES)
def test_lowered_module_agrees_with_the_ir(snippet, shape, out, params, macs):
    torch = pytest.importorskip("torch")
    net = lowered(snippet, shape)
    assert sum(p.numel() for p in net.parameters()) == params
    with torch.no_grad():
        y = net(torch.randn(2, *shape))
    assert tuple(y.shape) == (2, *out)


def test_layer_norm_2d_normalises_channels_per_position():
    torch = pytest.importorskip("torch")
    net = lowered("LayerNorm2d(eps = 1e-6)", [8, 5, 5])
    with torch.no_grad():
        net.b.op.weight.uniform_(0.5, 1.5)
        net.b.op.bias.uniform_(-1, 1)
        x = torch.randn(2, 8, 5, 5)  # [N, C, H, W]
        channels_last = x.permute(0, 2, 3, 1)  # [N, H, W, C]
        norm = net.b.op
        expected = torch.nn.functional.layer_norm(channels_last, (8,), norm.weight, norm.bias, 1e-6)
        assert torch.allclose(net(x), expected.permute(0, 3, 1, 2), atol=1e-6)
    assert set(net.state_dict()) == {"b.op.weight", "b.op.bias"}


def test_pointwise_linear_is_a_linear_per_position():
    torch = pytest.importorskip("torch")
    net = lowered("PointwiseLinear(12)", [8, 5, 5])
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes == {"b.op.weight": (12, 8), "b.op.bias": (12,)}
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():  # the same weights as a 1×1 convolution
        expected = torch.nn.functional.conv2d(x, net.b.op.weight[:, :, None, None], net.b.op.bias)
        assert torch.allclose(net(x), expected, atol=1e-5)


def test_chunk_and_scale_compute_what_torch_does():
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        assert torch.equal(lowered("Chunk(2, 1)", [8, 5, 5])(x), x.chunk(2, dim=1)[1])
        assert torch.equal(lowered("Scale(0.17)", [8, 5, 5])(x), x * 0.17)


def test_stochastic_depth_is_the_identity_at_inference_only():
    torch = pytest.importorskip("torch")
    net = lowered("StochasticDepth(1.0)", [8, 5, 5])
    x = torch.randn(4, 8, 5, 5)
    assert torch.equal(net.eval()(x), x)
    assert torch.equal(net.train()(x), torch.zeros_like(x))  # every row dropped at p = 1
    half = lowered("StochasticDepth(0.5)", [8, 5, 5]).train()
    y = half(torch.ones(64, 8, 5, 5))
    assert set(y.unique().tolist()) <= {0.0, 2.0}  # dropped, or kept and rescaled by 1 / (1 − p)


def test_layer_scale_is_a_bare_parameter_of_its_enclosing_module():
    torch = pytest.importorskip("torch")
    net = lowered("LayerScale(0.25)", [8, 5, 5])
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {"b.op": (8, 1, 1)}
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        assert torch.equal(net.b.op, torch.full((8, 1, 1), 0.25))
        assert torch.allclose(net(x), x * 0.25)


def test_an_se_gate_makes_every_position_see_the_whole_input():
    """A broadcast gate reads every position: once multiplied in, each position depends on the whole
    input, and a conv after it sees no more (a deep SE stack used to grow past the input)."""
    text = (
        "network se {\n    input [3, 32, 32]\n    x = in -> Conv(8, 3, stride = 2, pad = 1)\n"
        "    gate = x -> GlobalAvgPool -> Conv(8, 1) -> Sigmoid\n"
        "    return (x * gate) -> last: Conv(8, 3, pad = 1)\n}\n"
    )
    last = summarize(api.graph("se.cnn", text=text)).layers[-1]
    assert (last.name, last.rf, last.rf_min, last.whole_input) == ("last", 32, 32, True)
