"""Checked ⇒ runs: whatever `check` accepts, `cnnc.load` builds and runs with the predicted shapes.

- The memory column describes the module that is built: an activation the analysis counts as in
  place is lowered with `inplace=True`, and only those (every zoo network).
- A property over programs check accepts — mutants of zoo files (one number changed, or one op
  swapped for another) and small generated programs that mix valid and invalid layers: `cnnc.load`
  builds, a CPU forward gives the predicted shape at every node (`verify.mismatches`, which also
  compares parameters and MACs), a training-mode forward runs, and the standalone `.py` gives the
  same output for the same seed. Programs check rejects are only required to be rejected with
  diagnostics (no crash).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnnc import api
from cnnc.compiler.analysis.memory import activations
from cnnc.compiler.elaborate import network_names
from cnnc.compiler.lower import modules
from cnnc.compiler.lower.fx import class_name, to_graph_module
from cnnc.compiler.lower.source import to_source
from cnnc.compiler.lower.verify import mismatches
from cnnc.compiler.ops import Lowering
from cnnc.dsl.diagnostics import CnncError

ROOT = Path(__file__).resolve().parents[1]
ZOO_FILES = sorted(p for p in (ROOT / "zoo").glob("**/*.cnn") if p.parent.name != "spaces")

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest


# -- the memory column equals what lowering emits -------------------------------------------------


def concrete_graphs(path: Path):
    program = api.load_program(path)
    for name, concrete in network_names(program):
        if concrete:
            yield api.graph(path, name)


@pytest.mark.parametrize("path", ZOO_FILES, ids=lambda p: str(p.relative_to(ROOT / "zoo")))
def test_memory_counts_in_place_exactly_what_lowering_runs_in_place(path):
    for g in concrete_graphs(path):
        memory = activations(g)
        for node in g.nodes_in_order():
            if modules.kind(node) is not Lowering.MODULE or node.spec.view:
                continue
            lowered = modules.layer(g, node).kwargs.get("inplace", False)
            assert lowered == (memory[node.id] == 0), (g.network, node.name, node.op)


def test_the_built_module_has_the_in_place_activations_the_summary_counts():
    text = """network n {
        input [3, 8, 8]
        a = in -> Conv(4, 3) -> Sigmoid -> ReLU    # after Sigmoid: its backward reads its output
        b = in -> Conv(4, 3) -> BatchNorm -> ReLU  # after BatchNorm: in place
        return concat(a, b) -> ReLU                # after concat: in place
    }"""
    g = api.graph("inplace.cnn", text=text)
    model = to_graph_module(g, seed=0)
    memory = activations(g)
    relus = [n for n in g.nodes_in_order() if n.op == "ReLU"]
    in_place = [model.get_submodule(n.name).inplace for n in relus]
    assert in_place == [False, True, True]
    assert [memory[n.id] for n in relus] == [4 * 6 * 6, 0, 0]


# -- checked programs run -------------------------------------------------------------------------


def build_source(g, seed: int):
    namespace: dict = {}
    exec(compile(to_source(g), "<generated>", "exec"), namespace)  # noqa: S102  (our own output)
    return namespace[class_name(g.network)](seed=seed)


def assert_runs_as_checked(g) -> None:
    """The contract of this file for one accepted graph."""
    assert mismatches(g, device="cpu") == [], str(g)
    model = to_graph_module(g, seed=5)
    x = torch.randn(2, *g.input_type.shape)  # [2, C, H, W]
    with torch.no_grad():
        standalone = build_source(g, seed=5).eval()
        torch.testing.assert_close(standalone(x), model.eval()(x), rtol=0, atol=0)
        # training mode runs too (last: it moves BatchNorm's running statistics)
        assert tuple(model.train()(x).shape) == (2, *g.output_type.shape)


def checked(path: str, text: str, input_shape=None):
    """The graph if check accepts the program, None if it reports errors."""
    try:
        return api.graph(path, text=text, input=input_shape)
    except CnncError as exc:
        assert exc.diagnostics and all(d.code for d in exc.diagnostics)
        return None


# Zoo files cheap enough to build and run a few dozen times (small inputs where the file allows)
MUTANT_FILES = {
    "lenet5": None,
    "nin": (3, 64, 64),
    "squeezenet1_1": (3, 64, 64),
    "mobilenet_v3_small": (3, 64, 64),
    "shufflenet_v2_x1_0": (3, 64, 64),
    "resnet18": (3, 64, 64),
    "inception_module": None,
    "efficientnet_b0": (3, 64, 64),
    "mnasnet1_0": (3, 64, 64),
}
NUMBER = re.compile(r"(?<![\w.])\d+(\.\d+)?(?![\w.])")
SWAPS = [
    ("ReLU", "Sigmoid"),
    ("ReLU", "Hardswish"),
    ("BatchNorm", "LayerNorm2d"),
    ("MaxPool", "AvgPool"),
    ("Conv(", "PointwiseLinear("),
    ("Linear(", "PointwiseLinear("),
    ("+", "*"),
    ("concat(", "concat(in, "),
]


def code_positions(text: str, pattern: re.Pattern) -> list[re.Match]:
    """Matches outside comments."""
    out = []
    for line_start, line in zip(_line_starts(text), text.splitlines(keepends=True)):
        code = line.split("#", 1)[0]
        out += list(pattern.finditer(text, line_start, line_start + len(code)))
    return out


def _line_starts(text: str) -> list[int]:
    starts, pos = [], 0
    for line in text.splitlines(keepends=True):
        starts.append(pos)
        pos += len(line)
    return starts


@st.composite
def zoo_mutants(draw):
    name = draw(st.sampled_from(sorted(MUTANT_FILES)))
    text = (ROOT / "zoo" / f"{name}.cnn").read_text()
    if draw(st.booleans()):
        numbers = code_positions(text, NUMBER)
        assume(numbers)
        m = draw(st.sampled_from(numbers))
        old = m.group()
        new = draw(
            st.sampled_from(
                [
                    "0",
                    "1",
                    "2",
                    "3",
                    "-1",
                    "0.5",
                    "7",
                    str(int(float(old)) * 2),
                    str(max(int(float(old)) // 2, 1)),
                ]
            )
        )
        text = text[: m.start()] + new + text[m.end() :]
    else:
        a, b = draw(st.sampled_from(SWAPS))
        if draw(st.booleans()):
            a, b = b, a
        spots = code_positions(text, re.compile(re.escape(a)))
        assume(spots)
        m = draw(st.sampled_from(spots))
        text = text[: m.start()] + b + text[m.end() :]
    return f"zoo/{name}.cnn", text, MUTANT_FILES[name]


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(zoo_mutants())
def test_zoo_mutants_that_check_also_run(mutant):
    path, text, shape = mutant
    g = checked(str(ROOT / path), text, shape)
    if g is not None:
        assert_runs_as_checked(g)


# Layers drawn with arguments on both sides of their bounds: check decides which are kept
LAYERS = st.sampled_from(
    [
        "Conv({c}, {k})",
        "Conv({c}, {k}, stride = {s}, pad = {p})",
        "Conv({c}, {k}, groups = {g})",
        "Conv({c}, {k}, dilation = {s}, pad = same)",
        "BatchNorm",
        "BatchNorm(eps = {f}, momentum = {f})",
        "LocalResponseNorm({k})",
        "MaxPool({k}, stride = {s}, pad = {p})",
        "AvgPool({k}, ceil_mode = true)",
        "AdaptiveAvgPool({k})",
        "AdaptiveMaxPool([{k}, {s}])",
        "ReLU",
        "ReLU6",
        "Sigmoid",
        "Tanh",
        "LeakyReLU({f})",
        "Hardswish",
        "Hardsigmoid",
        "SiLU",
        "GELU",
        "Softmax({g})",
        "Dropout({f})",
        "Identity",
        "ChannelShuffle({g})",
        "StochasticDepth({f})",
        "Chunk({g}, {s})",
        "Scale({f})",
        "LayerNorm2d(eps = {f})",
        "PointwiseLinear({c})",
        "LayerScale({f})",
        "Flatten -> Linear({c})",
        "Flatten -> Linear({c}) -> BatchNorm",
    ]
)


@st.composite
def layer_texts(draw):
    template = draw(LAYERS)
    values = {
        "c": draw(st.integers(-1, 6)),
        "k": draw(st.integers(0, 4)),
        "s": draw(st.integers(0, 3)),
        "p": draw(st.integers(-1, 2)),
        "g": draw(st.integers(-1, 3)),
        "f": draw(st.sampled_from(["0", "0.1", "0.5", "1", "1.5", "-0.2", "1e-3"])),
    }
    return template.format(**values)


@st.composite
def generated_programs(draw):
    c, h, w = draw(st.integers(1, 4)), draw(st.integers(1, 8)), draw(st.integers(1, 8))
    chain = " -> ".join(draw(st.lists(layer_texts(), min_size=1, max_size=4)))
    shape = draw(st.sampled_from(["main", "residual", "concat"]))
    if shape == "main":
        body = f"return in -> {chain}"
    elif shape == "residual":
        body = f"x = in -> {chain}\n    return (x + in) -> ReLU"
    else:
        body = f"return concat(in -> {chain}, in -> {draw(layer_texts())})"
    return f"network gen {{\n    input [{c}, {h}, {w}]\n    {body}\n}}\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated_programs())
def test_generated_programs_that_check_also_run(text):
    g = checked("gen.cnn", text)
    if g is not None:
        assert_runs_as_checked(g)
