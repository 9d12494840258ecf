"""Receptive fields (`compiler/analysis/receptive_field.py`) against torch: the support of the input
gradient of one output position (tests/gradient_fields.py), at positions near the middle of each
map — one period of the pattern along each axis, where the input does not clip them — or, where
cnnc says so, the whole input.

- every concrete zoo network, on the one-channel copy (the same torch kernels with the modules' own
  hyperparameters, a cost independent of the widths), at its declared input except where a smaller
  one is as telling: up to 48 (node, position) pairs each, its outputs first;
- random programs (hypothesis) on the positive copy of the real modules: chains of convolutions,
  pools of every kind, adaptive pools and pads, residual sums, down-and-up paths merged with their skip (strided convs and
  pools; nearest, bilinear, transposed-conv and pixel-shuffle upsampling), SE gates and heads;
- the figures the lecture's reader checks by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from gradient_fields import check, measure
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnc import api
from cnnc.compiler.analysis.summary import summarize
from cnnc.dsl.diagnostics import CnncError

ROOT = Path(__file__).resolve().parents[1]
ZOO = sorted((ROOT / "zoo").glob("*.cnn"))
# inputs smaller than declared that still hold the fields checked (U-Net's head needs 204 + a period)
INPUTS = {
    "unet": (3, 252, 252),
    "unet_padded": (3, 256, 256),
    "resnet50_fpn": (3, 576, 576),
    "deeplabv3_resnet50": (3, 256, 256),
    "fcn_resnet50": (3, 256, 256),
    "lraspp_mobilenet_v3_large": (3, 256, 256),
}


def concrete_networks(path: Path) -> list[str]:
    from cnnc.compiler.elaborate import network_names

    return [name for name, concrete in network_names(api.load_program(path)) if concrete]


def sampled(graph, count: int = 8) -> list[int]:
    """The outputs, then `count` nodes spread over the graph."""
    nodes = graph.nodes_in_order()
    picks = [i for _, i in graph.outputs]
    picks += [nodes[k * (len(nodes) - 1) // (count - 1)].id for k in range(count)]
    return list(dict.fromkeys(picks))


@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.stem)
def test_zoo_fields_equal_the_gradient_support(path):
    torch.set_num_threads(1)
    names = concrete_networks(path)
    if not names:
        pytest.skip("defines no concrete network")
    for name in names:
        try:
            graph = api.graph(path, name, input=INPUTS.get(path.stem))
        except CnncError:
            pytest.skip("a search space: its networks need decisions")
        problems, verified = check(graph, sampled(graph, 12), max_pairs=48, one_channel=True)
        assert problems == [], name
        # some nodes' fields are wider than the input (FCN's dilated head): the rest are seen
        assert len(verified) >= 3, name


@pytest.mark.parametrize(
    "model, node, sizes, shape",
    [
        ("unet", "head", (188, 204), (3, 252, 252)),  # every position reads 188 or 204 pixels
        ("resnet50_fpn", "fpn.layer_blocks.0.0", (427, 459), (3, 576, 576)),
    ],
)
def test_upsampled_maps_read_whole_coarse_positions(model, node, sizes, shape):
    graph = api.graph(ROOT / "zoo" / f"{model}.cnn", input=shape)
    target = next(n.id for n in graph.nodes_in_order() if n.name == node)
    problems, verified = check(graph, [target], one_channel=True)
    assert (problems, target in verified) == ([], True)
    row = next(r for r in summarize(graph).layers if r.name == node)
    assert (row.rf_min, row.rf, row.rf_height, row.rf_width) == (*sizes, sizes, sizes)


@pytest.mark.parametrize("model", ["resnet50", "seresnet50", "efficientnet_b0"])
def test_a_classifier_reads_the_whole_input_once(model):
    """Global pooling reads every position: the head sees the input's 224 pixels, not more."""
    s = api.summary(ROOT / "zoo" / f"{model}.cnn")
    fc = s.layers[-1]
    assert (fc.rf, fc.rf_min, fc.whole_input) == (224, 224, True)


def test_whole_input_in_the_json():
    s = api.summary(ROOT / "zoo" / "resnet18.cnn")
    data = s.to_json()["layers"]
    fc, conv1 = data[-1], data[1]
    assert (fc["rf"], fc["whole_input"], fc["rf_height"], fc["rf_exact"]) == (
        224,
        True,
        [224, 224],
        True,
    )
    assert (conv1["rf"], conv1["rf_min"], conv1["whole_input"]) == (7, 7, False)


def test_a_strided_map_that_skips_rows_is_not_the_whole_input():
    """A 1×1 conv at stride 3 on 8 rows reads rows 0, 3, 6: the pool after it sees 7 of 8."""
    text = "network n { input [1, 8, 8] return in -> Conv(1, 1, stride = 3) -> GlobalAvgPool -> op: Identity }"
    graph = api.graph("skip.cnn", text=text)
    row = summarize(graph).layers[-1]
    assert (row.rf, row.whole_input) == (7, False)
    assert measure(graph, [(graph.output, 0, 0)]) == [((0, 6), (0, 6))]


def test_a_pattern_without_a_short_period_is_measured_at_the_declared_input():
    """Upsampling by 1.3 then striding by 2, a hundred times: the pattern would repeat only after
    13¹⁰⁰ positions, so past the fifth stage the fields are those of the declared input, each
    position's own, checked against the gradient at every node."""
    text = (
        "network n { input [1, 64, 64] x = in -> [(Upsample(scale_factor = 1.3) -> "
        "Conv(1, 3, stride = 2, pad = 1)) for i in range(100)] return x + (x -> Conv(1, 1)) }"
    )
    graph = api.graph("deep.cnn", text=text)
    row = summarize(graph).layers[-1]
    assert (row.rf, row.rf_exact, row.rf_clipped, row.whole_input) == (49, True, True, False)
    problems, verified = check(
        graph, [n.id for n in graph.nodes_in_order()][-12:], one_channel=True
    )
    assert (problems, len(verified)) == ([], 12)


def test_past_the_bounds_a_field_is_an_upper_bound_and_says_so():
    """A 30,000-wide map whose pattern never repeats is more than cnnc keeps position by position:
    its field is at most the input's width, flagged inexact."""
    text = (
        "network n { input [1, 2, 30000] return in -> [(Upsample(scale_factor = [1, 1.3]) -> "
        "Conv(1, [1, 3], stride = [1, 2], pad = [0, 1])) for i in range(6)] -> GlobalAvgPool }"
    )
    row = summarize(api.graph("wide.cnn", text=text)).layers[-1]
    assert (row.rf, row.rf_exact, row.whole_input) == (30_000, False, False)


def test_a_reshape_that_regroups_positions_is_an_upper_bound():
    """[16, 20, 20] → [100, 8, 8]: each output position reads input positions scattered over rows
    and columns, no product of an interval of each: the span of all is an upper bound, said so."""
    text = "network n { input [16, 20, 20] return in -> Reshape([-1, 8, 8]) -> Conv(4, 3) }"
    rows = summarize(api.graph("r.cnn", text=text)).layers
    assert [(r.rf, r.rf_exact, r.whole_input) for r in rows[1:]] == [(20, False, False)] * 2


def op_programs():
    """Each op of the registry, its reference page's example, between two convolutions."""
    from cnnc.compiler.ops import REGISTRY

    for name, spec in REGISTRY.items():
        if spec.layer:
            before = "-> Flatten " if name == "Linear" else ""
            yield pytest.param(
                "network n {\n    input [8, 24, 24]\n    x = in -> Conv(64, 3, stride = 2, pad = 1)\n"
                f"    skip = in -> Conv(64, 1)\n    up = x\n    return x {before}-> {spec.example}\n}}\n",
                id=name,
            )


@pytest.mark.parametrize("text", list(op_programs()))
def test_every_op_field_equals_the_gradient_support(text):
    graph = api.graph("op.cnn", text=text)
    problems, verified = check(graph, [n.id for n in graph.nodes_in_order()], max_pairs=128)
    assert problems == []
    assert len(verified) >= 2  # the input, the conv, and the op where the input's edge allows


# -- random programs --------------------------------------------------------------------------------

ACTS = ["ReLU", "Sigmoid", "Hardswish", "GELU"]


@st.composite
def local_layer(draw, c: int) -> str:
    """A layer that may change the size: any window, dilation, stride and padding."""
    kind = draw(st.sampled_from(["conv", "conv", "max", "avg", "act", "norm", "adaptive", "pad"]))
    k, s, d = draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    if kind == "conv":
        p = draw(st.integers(0, 2))
        return f"Conv({c}, {k}, stride = {s}, pad = {p}, dilation = {d})"
    if kind in ("max", "avg"):
        p = draw(st.integers(0, k // 2))
        ceil = draw(st.booleans())
        name = "MaxPool" if kind == "max" else "AvgPool"
        return f"{name}({k}, stride = {s}, pad = {p}, ceil_mode = {'true' if ceil else 'false'})"
    if kind == "adaptive":
        return f"AdaptiveAvgPool([{draw(st.integers(1, 6))}, {draw(st.integers(1, 6))}])"
    if kind == "pad":
        return f"Pad([{', '.join(str(draw(st.integers(0, 2))) for _ in range(4))}])"
    return draw(st.sampled_from(ACTS)) if kind == "act" else "BatchNorm"


UPS = [
    "Upsample(scale_factor = 2)",
    'Upsample(scale_factor = 2, mode = "bilinear")',
    'Upsample(scale_factor = 2, mode = "bilinear", align_corners = true)',
    "ConvTranspose({c}, 2, stride = 2)",
    "ConvTranspose({c}, 4, stride = 2, pad = 1)",
    "Conv({c4}, 1) -> PixelShuffle(2)",
    "Upsample(like = skip)",
]
DOWNS = [
    "Conv({c}, 3, stride = 2, pad = 1)",
    "MaxPool(2)",
    "AvgPool(3, stride = 2, pad = 1)",
    "Conv({c}, 2, stride = 2)",
]
SAME = [
    "Conv({c}, 3, pad = 1)",
    "Conv({c}, 3, pad = 2, dilation = 2)",
    "Conv({c}, 5, pad = 2)",
    "Conv({c}, 1)",
    "Conv({c}, [1, 3], pad = [0, 1])",
    "ReLU",
]


@st.composite
def programs(draw) -> str:
    c = draw(st.integers(1, 3))
    levels = draw(st.integers(0, 2))
    size = 2**levels * draw(st.integers(10, 16))
    lines = []
    for i in range(draw(st.integers(1, 3))):
        src = f"v{i - 1}" if i else "in"
        kind = draw(st.sampled_from(["unet", "res", "chain"] if levels else ["res", "chain"]))
        fill = {"c": c, "c4": 4 * c}
        if kind == "unet":
            down = " -> ".join(draw(st.sampled_from(DOWNS)).format(**fill) for _ in range(levels))
            mid = draw(st.sampled_from(SAME)).format(**fill)
            up = " -> ".join(draw(st.sampled_from(UPS)).format(**fill) for _ in range(levels))
            merge = draw(st.sampled_from(["+", "concat"]))
            lines.append(f"    skip = {src}")
            body = f"({src} -> {down} -> {mid} -> {up})"
            lines.append(
                f"    v{i} = "
                + (f"skip + {body}" if merge == "+" else f"concat(skip, {body})")
                + f" -> Conv({c}, 1)"
            )
        elif kind == "res":
            same = " -> ".join(draw(st.sampled_from(SAME)).format(**fill) for _ in range(2))
            lines.append(f"    v{i} = {src} + ({src} -> {same})")
        else:
            chain = " -> ".join(draw(local_layer(c)) for _ in range(draw(st.integers(1, 3))))
            lines.append(f"    v{i} = {src} -> {chain}")
            levels = 0  # its size may be odd from here on
    last = f"v{len(lines) - 1}"
    head = draw(
        st.sampled_from(
            [
                "",
                " -> GlobalAvgPool -> Flatten -> Linear(3)",
                f" -> se: ({last} * ({last} -> GlobalAvgPool -> Conv({c}, 1) -> Sigmoid))",
            ]
        )
    )
    body = "\n".join(lines)
    ret = f"{last}{head}" if not head.startswith(" -> se") else head[len(" -> se: ") :]
    return f"network net {{\n    input [{c}, {size}, {size}]\n{body}\n    return {ret}\n}}\n"


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(programs())
def test_random_programs_fields_equal_the_gradient_support(text):
    torch.set_num_threads(1)
    try:
        graph = api.graph("random.cnn", text=text)
    except CnncError:
        return  # a chain shrank a map to nothing: the checker refuses it, as torch would
    problems, _ = check(graph, [n.id for n in graph.nodes_in_order()], max_pairs=96)
    assert problems == [], text


def test_a_map_whose_rows_all_read_padding_reads_nothing_after_a_global_pool():
    # the strided 1×1 conv reads rows -1 and 1 of a one-row map: padding only, so its columns'
    # spans (cols 5–9 at position 1) reach no input, and the global pool after it reads nothing
    text = (
        "network net {\n    input [1, 10, 10]\n"
        "    return in -> AdaptiveAvgPool([1, 2]) -> Conv(1, 1, stride = 2, pad = 1)"
        " -> GlobalAvgPool -> Flatten -> Linear(3)\n}\n"
    )
    graph = api.graph("padding.cnn", text=text)
    problems, _ = check(graph, [n.id for n in graph.nodes_in_order()], max_pairs=96)
    assert problems == []
