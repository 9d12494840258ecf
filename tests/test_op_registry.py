"""The op registry is the one source: every op has every piece, and a spec missing one is refused.

- `check_spec` (run by `register`) rejects a spec without any required piece (parametrized over the
  pieces and over ops of every lowering kind) and a spec whose pieces contradict each other;
- every registered op has them all, and they work: its example elaborates, its label is the one
  describer's, its `build` makes a torch module of the class it names, its `.cnn` call reads back
  to the same node, and its module is initialised reproducibly from a seed;
- tables elsewhere are derived from the registry (lowering, glyphs, summary and diagram labels).
"""

from __future__ import annotations

import re

import pytest

from cnnc import api
from cnnc.compiler.ops import (
    REGISTRY,
    REQUIRED_PIECES,
    Family,
    Lowering,
    ParamKind,
    RFRule,
    SpecError,
    check_spec,
    describe,
    merge_text,
    merge_written,
    not_a_module,
    register,
)
from cnnc.compiler.ops.text import call_text
from cnnc.dsl.diagnostics import CnncError
from cnnc.dsl.records import replace

OPS = sorted(REGISTRY)
LAYER_OPS = [name for name in OPS if REGISTRY[name].layer]
# one op of each lowering kind, and one reading a second tensor: removing a piece fails for each
SAMPLES = ["Conv", "Add", "Input", "LayerScale", "Upsample", "ReLU"]


# -- a spec missing a piece is refused -------------------------------------------------------------


def test_the_required_pieces_are_the_ones_an_op_needs():
    assert set(REQUIRED_PIECES) == {
        "name",
        "doc",
        "family",
        "params",
        "infer",
        "count_params",
        "count_macs",
        "rf",
        "lowering",
        "torch_ctor",
        "build",
        "label",
        "shape_rule",
        "params_rule",
        "macs_rule",
        "example",
    }


@pytest.mark.parametrize("op", SAMPLES)
@pytest.mark.parametrize("piece", REQUIRED_PIECES)
def test_removing_any_piece_of_a_spec_fails(op, piece):
    spec = REGISTRY[op]
    if piece == "torch_ctor" and spec.lowering is Lowering.INPUT:
        pytest.skip("the input is a forward argument: it has no constructor to remove")
    if piece == "params" and not spec.params:
        broken = replace(spec, params=None)
    else:
        broken = replace(spec, **{piece: None})
    with pytest.raises(SpecError, match=f"`{piece}`"):
        check_spec(broken)


@pytest.mark.parametrize(
    "piece", ["doc", "shape_rule", "params_rule", "macs_rule", "example", "torch_ctor"]
)
def test_an_empty_text_piece_fails(piece):
    with pytest.raises(SpecError, match=f"`{piece}`"):
        check_spec(replace(REGISTRY["Conv"], **{piece: ""}))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"family": "conv"}, "Family"),  # a string is no longer a family
        ({"lowering": "module"}, "Lowering"),
        ({"rf": 3}, "RFRule"),
        ({"build": not_a_module}, "build"),  # a module op must describe its module
        ({"arity": 1}, "arity"),  # Upsample's `like` is a second input
    ],
)
def test_contradictory_pieces_fail(change, message):
    with pytest.raises(SpecError, match=message):
        check_spec(replace(REGISTRY["Upsample"], **change))


def test_an_op_must_declare_what_its_backward_saves():
    # training memory reads `saves`; an op without it would silently save nothing
    with pytest.raises(SpecError, match="`saves` must be declared"):
        check_spec(replace(REGISTRY["Mish"], saves=None))


def test_registering_an_op_twice_fails_and_changes_nothing():
    conv = REGISTRY["Conv"]
    renamed = replace(conv, name="ConvAgain", infer=conv.infer.__wrapped__)
    with pytest.raises(SpecError, match="op `Conv` is registered twice"):
        register(renamed, replace(conv, infer=conv.infer.__wrapped__))
    with pytest.raises(SpecError, match="op `ConvAgain` is registered twice"):
        register(renamed, renamed)
    assert "ConvAgain" not in REGISTRY and REGISTRY["Conv"] is conv


@pytest.mark.parametrize("change", [{"source": ""}, {"written": ""}])
def test_a_merge_says_how_it_is_written_and_lowered(change):
    with pytest.raises(SpecError, match="`written` and `source`"):
        check_spec(replace(REGISTRY["Mul"], **change))
    with pytest.raises(SpecError, match="`written` and `source`"):
        check_spec(replace(REGISTRY["Conv"], source="+", written="+"))


def test_a_merge_may_not_describe_a_module():
    with pytest.raises(SpecError, match="build"):
        check_spec(replace(REGISTRY["Add"], build=REGISTRY["Conv"].build))


def test_a_choice_lists_its_choices():
    spec = REGISTRY["Upsample"]
    mode = replace(spec.param("mode"), choices=())
    params = tuple(mode if p.name == "mode" else p for p in spec.params)
    with pytest.raises(SpecError, match="CHOICE"):
        check_spec(replace(spec, params=params))


# -- every registered op has every piece, and they work ---------------------------------------------


@pytest.mark.parametrize("op", OPS)
def test_every_op_passes_the_check_with_typed_pieces(op):
    spec = REGISTRY[op]
    check_spec(spec)
    assert isinstance(spec.family, Family) and isinstance(spec.lowering, Lowering)
    assert isinstance(spec.rf, RFRule) or callable(spec.rf)
    assert all(isinstance(p.kind, ParamKind) for p in spec.params)
    if spec.lowering is Lowering.MODULE:
        assert spec.torch_ctor.startswith(("torch.nn.", "cnnc.compiler.lower.layers."))


EXAMPLE_NETWORK = """
network t {{
    input [64, 12, 10]
    x = in -> Conv(64, 1)
    skip = in -> Conv(16, 3, stride = 2, pad = 1)
    up = in -> MaxPool(2)
    a = x
    b = x -> ReLU
    gate = x -> GlobalAvgPool
    return {expr}
}}
"""


def example_graph(spec):
    """The op's example in a network, on a 64×12×10 map (a vector for the ops that need one)."""
    if spec.lowering is Lowering.INPUT:
        return api.graph("example.cnn", text=f"network t {{ {spec.example} return in -> ReLU }}")
    expr = f"x -> {spec.example}" if spec.layer else spec.example
    try:
        return api.graph("example.cnn", text=EXAMPLE_NETWORK.format(expr=expr))
    except CnncError as exc:
        if exc.diagnostics[0].code != "E0304":
            raise
        vector = EXAMPLE_NETWORK.format(expr=expr.replace("x ->", "x -> Flatten ->", 1))
        return api.graph("example.cnn", text=vector)


def example_node(spec):
    graph = example_graph(spec)
    return graph, next(n for n in reversed(graph.nodes_in_order()) if n.op == spec.name)


@pytest.mark.parametrize("op", OPS)
def test_every_example_elaborates_and_is_labelled_by_the_one_describer(op):
    from cnnc.compiler.analysis.describe import describe as summary_text
    from cnnc.compiler.render.labels import op_label

    spec = REGISTRY[op]
    _, node = example_node(spec)
    assert node.op == op
    assert summary_text(node) == op_label(node) == describe(op, node.args)
    assert describe(op, node.args).startswith(spec.display_name)


@pytest.mark.parametrize("op", LAYER_OPS)
def test_the_cnn_call_of_a_node_makes_the_same_node(op):
    """`call_text` (search writes its winners with it) reads back to the same arguments and shape."""
    spec = REGISTRY[op]
    graph, node = example_node(spec)
    tensors = tuple(re.findall(r"like = (\w+)", spec.example))
    head = "x -> Flatten" if graph.node(node.inputs[0]).type.rank == 1 else "x"
    text = EXAMPLE_NETWORK.format(expr=f"{head} -> {call_text(spec, node.args, tensors)}")
    again = api.graph("again.cnn", text=text)
    twin = next(n for n in reversed(again.nodes_in_order()) if n.op == op)
    assert (dict(twin.args), twin.type) == (dict(node.args), node.type)


def test_describe_is_the_one_text_of_tables_and_diagrams():
    graph = api.graph(
        "t.cnn", text="network t { input [8, 9, 9] return in -> Conv(8, 3, groups = 8) }"
    )
    node = graph.node(graph.output)
    assert describe("Conv", node.args) == "Conv 3×3, 8, dw"
    assert describe("Add", {}) == "+" and describe("Concat", {}) == "concat"


def test_merge_glyphs_and_lowering_come_from_the_registry():
    from cnnc.compiler.lower.modules import lowered_ops
    from cnnc.compiler.render.labels import MERGE_GLYPHS

    assert MERGE_GLYPHS == {"Add": "⊕", "Mul": "⊗", "Concat": "‖"}
    assert lowered_ops() == set(REGISTRY)


# -- lowering: the module named, built the same way from a seed -------------------------------------

MERGES = [o for o in OPS if REGISTRY[o].lowering is Lowering.MERGE]


@pytest.mark.parametrize("op", MERGES)
def test_a_merge_is_parsed_printed_and_lowered_from_its_spec(op):
    """A merge's `written` form elaborates to it, and its `source` expression (the standalone .py's)
    computes what the lowered module computes."""
    from cnnc.compiler.lower.fx import to_graph_module

    spec = REGISTRY[op]
    assert merge_written(spec.symbol) is spec
    body = merge_text(spec.written, ["in", "(in -> Scale(3.0))"])
    graph = api.graph("m.cnn", text=f"network m {{ input [2, 3, 3] return {body} }}")
    assert [n.op for n in graph.nodes_in_order()] == ["Input", "Scale", op]
    x = torch.randn(1, 2, 3, 3)
    got = eval(merge_text(spec.source, ["a", "b"]), {"torch": torch, "a": x, "b": 3.0 * x})
    torch.testing.assert_close(got, to_graph_module(graph, seed=0)(x))


torch = pytest.importorskip("torch")


@pytest.mark.parametrize("op", [o for o in OPS if REGISTRY[o].lowering is Lowering.MODULE])
def test_build_makes_the_torch_module_it_names(op):
    from cnnc.compiler.lower import modules
    from cnnc.compiler.lower.fx import instantiate

    spec = REGISTRY[op]
    graph, node = example_node(spec)
    module = instantiate(modules.layer(graph, node))
    expected = spec.torch_ctor.rpartition(".")[2]
    renamed = {
        "BatchNorm": ("BatchNorm2d", "BatchNorm1d"),
        "LayerNorm": ("LayerNorm2d", "LayerNorm"),
        "Pad": ("ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d"),
        "Upsample": ("Upsample", "Resize"),
    }
    assert type(module).__name__ in renamed.get(op, (expected,))


@pytest.mark.parametrize(
    "op", [o for o in OPS if REGISTRY[o].lowering in (Lowering.MODULE, Lowering.PARAMETER)]
)
def test_the_same_seed_gives_the_same_weights(op):
    from cnnc.compiler.lower.fx import to_graph_module

    graph, _ = example_node(REGISTRY[op])
    a, b = (to_graph_module(graph, seed=7).state_dict() for _ in range(2))
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_search_writes_a_network_with_second_inputs_back_as_the_same_layers():
    from cnnc.search.concrete import rebuild_problems, to_cnn

    text = """network n {
        input [3, 32, 32]
        s = in -> conv: Conv(4, 3, stride = 2, pad = 1)
        up = s -> Upsample(like = in, mode = "bilinear")
        skip = in -> Pad(3, mode = "replicate") -> Crop(like = in)
        return concat(up, skip) -> ConvTranspose(4, 2, stride = 2) -> GroupNorm(2) -> Reshape([-1])
    }"""
    graph = api.graph("n.cnn", text=text)
    written = to_cnn(graph)
    assert 'Upsample(mode = "bilinear", like = in)' in written and "Crop(like = in)" in written
    assert rebuild_problems("best.cnn", written, graph) == []
