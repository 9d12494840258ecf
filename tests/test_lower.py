"""Lowering to torch.fx (`compiler/lower/fx.py`) and `cnnc.load`: structure, names, weights, and
the places users run a model (devices, channels_last, autocast, torch.compile, torch.export)."""

from __future__ import annotations

import copy
import operator
from pathlib import Path

import pytest
import torch
from torch import nn
from zoo_support import reference

import cnnc
from cnnc import api
from cnnc.compiler.lower.fx import to_graph_module
from cnnc.dsl.diagnostics import CnncError

ROOT = Path(__file__).resolve().parents[1]

SMALL = """
import "families/resnet.cnn"  # Basic: the residual block of ResNet-18/34

block SE(c) {
    return in * (in -> GlobalAvgPool -> fc1: Conv(c // 2, 1) -> ReLU -> fc2: Conv(c, 1) -> Sigmoid)
}
network small(classes = 10) {
    input [3, 32, 32]
    x = in -> conv1: Conv(8, 3, pad = 1, bias = false) -> bn1: BatchNorm -> relu: ReLU
    y = concat(x -> branch: Conv(8, 3, pad = 1), x -> MaxPool(3, stride = 1, pad = 1))
    return y -> layer1: [Basic(16, stride = 2), Basic(16)] -> se: SE(16)
             -> avgpool: GlobalAvgPool -> Flatten -> fc: Linear(classes)
}
"""


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest


def small(**kwargs) -> nn.Module:
    return cnnc.compile_source(SMALL, **kwargs)


# -- structure ------------------------------------------------------------------------------------


def test_every_op_of_the_registry_has_a_lowering_rule():
    from cnnc.compiler.lower.modules import lowered_ops
    from cnnc.compiler.ops import REGISTRY

    assert set(REGISTRY) <= lowered_ops()


def test_one_fx_node_per_ir_node_modules_at_label_paths():
    model = small(seed=0)
    g = model.cnnc_graph
    nodes = [n for n in model.graph.nodes if n.op != "output"]
    assert [n.meta["cnnc_id"] for n in nodes] == [n.id for n in g.nodes_in_order()]
    for fx_node in nodes:
        ir = g.node(fx_node.meta["cnnc_id"])
        if fx_node.op == "call_module":
            assert fx_node.target == ir.name
        elif fx_node.op == "call_method":
            assert (ir.op, fx_node.target) == ("Add", "add_")
        elif fx_node.op == "call_function":
            assert (ir.op, fx_node.target) in {
                ("Add", operator.add),
                ("Mul", operator.mul),
                ("Concat", torch.cat),
            }
        else:
            assert (fx_node.op, ir.op) == ("placeholder", "Input")


def test_state_dict_keys_and_shapes_equal_torchvision():
    for model in ("resnet18", "resnet50"):
        path = ROOT / "zoo" / f"{model}.cnn"
        if not path.exists():
            pytest.skip(f"zoo/{model}.cnn is not there yet")
        net = to_graph_module(api.graph(path), device="meta")
        assert [[k, list(v.shape)] for k, v in net.state_dict().items()] == reference(model)[
            "state_dict"
        ]


def test_containers_print_like_the_program():
    text = str(small(seed=0))
    assert text.startswith("Small(\n")
    assert "(layer1): Sequential(\n    (0): Basic(\n      16, stride = 2\n" in text
    assert "(downsample): Sequential(" in text
    assert "(relu): ReLU(inplace=True)" in text


def test_ir_and_analysis_stay_reachable():
    model = small(seed=0)
    summary = model.cnnc_summary()
    assert model.cnnc_graph.network == "small"
    assert summary.params == sum(p.numel() for p in model.parameters())
    assert "class Small(nn.Module):" in model.cnnc_source()


def test_deepcopy_keeps_containers_and_graph():
    model = small(seed=0)
    clone = copy.deepcopy(model)
    assert type(clone.layer1).__name__ == "Sequential" and clone.layer1[0]._get_name() == "Basic"
    assert clone.cnnc_graph is model.cnnc_graph
    x = torch.randn(2, 3, 32, 32)
    model.eval(), clone.eval()
    assert torch.equal(model(x), clone(x))


def test_a_label_taken_by_nn_module_is_e0209_at_check():
    with pytest.raises(CnncError) as err:
        cnnc.compile_source("network n { input [3, 8, 8] return in -> forward: Conv(4, 3) }")
    assert err.value.diagnostics[0].code == "E0209"
    assert "forward" in err.value.diagnostics[0].message


def test_a_name_the_installed_torch_reserves_is_e0207_at_lowering(monkeypatch):
    from cnnc.compiler import names

    monkeypatch.setattr(names, "MODULE_ATTRIBUTES", frozenset())  # as if torch gained `forward`
    graph = api.graph(
        "n.cnn", text="network n { input [3, 8, 8] return in -> forward: Conv(4, 3) }"
    )
    with pytest.raises(CnncError) as err:
        to_graph_module(graph)
    assert err.value.diagnostics[0].code == "E0207"
    assert "forward" in err.value.diagnostics[0].message


# -- weights --------------------------------------------------------------------------------------


def test_same_seed_same_state_dict_other_seed_other_weights():
    a, b, c = small(seed=1).state_dict(), small(seed=1).state_dict(), small(seed=2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


def test_no_seed_draws_from_torchs_global_generator():
    torch.manual_seed(5)
    a = small().state_dict()
    torch.manual_seed(5)
    b = small().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_initialisation_follows_torchvision_resnet():
    model = cnnc.compile_source(
        "network n { input [64, 8, 8] return in -> c: Conv(256, 3, pad = 1) -> b: BatchNorm "
        "-> Flatten -> l: Linear(1000) }",
        seed=0,
    )
    fan_out = 256 * 3 * 3
    assert model.c.weight.std().item() == pytest.approx(
        (2 / fan_out) ** 0.5, rel=0.05
    )  # Kaiming, fan_out, ReLU
    assert torch.count_nonzero(model.c.bias) == 0
    assert torch.equal(model.b.weight, torch.ones(256)) and torch.count_nonzero(model.b.bias) == 0
    bound = 1 / (64 * 8 * 8 * 256 / 64) ** 0.5  # U(±1/√in_features), torch's default
    assert (
        model.l.weight.abs().max().item() <= bound
        and model.l.weight.abs().max().item() > 0.9 * bound
    )


# -- in-place activations --------------------------------------------------------------------------


def test_in_place_only_where_nothing_else_reads_the_input():
    model = cnnc.compile_source(
        """network n { input [2, 6, 6]
        a = in -> c: Conv(4, 3, pad = 1)
        b = a -> r1: ReLU
        return (b + a) -> r2: ReLU -> s: Sigmoid -> r3: ReLU -> r4: ReLU }""",
        seed=0,
    ).eval()
    assert [model.get_submodule(m).inplace for m in ("r1", "r2", "r3", "r4")] == [
        False,
        True,
        False,
        False,
    ]
    x = torch.randn(3, 2, 6, 6)
    a = model.c(x)  # [3, 4, 6, 6]
    expected = torch.relu(torch.sigmoid(torch.relu(torch.relu(a) + a)))
    assert torch.allclose(model(x), expected)
    model.train()
    model(x.requires_grad_()).sum().backward()  # no "modified by an inplace operation"


def test_backward_through_a_residual_network():
    model = small(seed=0).train()
    x = torch.randn(4, 3, 32, 32, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and model.conv1.weight.grad is not None


# -- where users run -------------------------------------------------------------------------------


def test_batch_size_is_free_and_inputs_may_be_other_sizes():
    model = small(seed=0).eval()
    for shape in ((1, 3, 32, 32), (5, 3, 32, 32), (2, 3, 48, 40)):
        assert model(torch.randn(*shape)).shape == (shape[0], 10)


def test_declared_input_can_be_overridden_and_arguments_bound():
    model = cnnc.compile_source(SMALL, input=[3, 64, 64], args={"classes": 7}, seed=0)
    assert model.cnnc_graph.input_type.shape == (3, 64, 64)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)
    assert cnnc.compile_source(SMALL, args=["classes=5"]).cnnc_graph.output_type.shape == (5,)


def test_channels_last_gives_the_same_output():
    model = small(seed=0).eval()
    x = torch.randn(2, 3, 32, 32)
    expected = model(x)
    model = model.to(memory_format=torch.channels_last)
    got = model(x.to(memory_format=torch.channels_last))
    assert torch.allclose(got, expected, atol=1e-5)


def test_cpu_bfloat16_autocast():
    model = small(seed=0).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), model(x), atol=0.1, rtol=0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda():
    model = small(seed=0).eval()
    x = torch.randn(2, 3, 32, 32)
    expected = model(x)
    assert torch.allclose(model.to("cuda")(x.to("cuda")).cpu(), expected, atol=1e-4)


def test_torch_compile_without_graph_breaks():
    # backend "eager": dynamo's graph capture is what we test; inductor's C++ build is slow on CI
    # fullgraph=True raises on the first graph break
    model = small(seed=0).eval()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(compiled(x), model(x))


def test_torch_export_program_with_a_dynamic_batch(tmp_path):
    from cnnc.compiler.lower.export import export_program

    model = small(seed=0)
    note = export_program(model, str(tmp_path / "small.pt"))
    assert note.startswith("torch.export program")
    with open(tmp_path / "small.pt", "rb") as f:
        loaded = torch.export.load(f).module()
    model.eval()
    for batch in (1, 3):
        x = torch.randn(batch, 3, 32, 32)
        assert torch.allclose(loaded(x), model(x), atol=1e-6)


def test_the_names_a_network_reserves_are_those_of_its_class():
    """`naming.reserved_names` lists `CnncModule`'s attributes without importing `fx` (which imports
    the source lowering): the list must stay that of the class. (Uncached: both sides are read now,
    as torch's dynamo, once imported, adds an attribute to every nn.Module.)"""
    from torch import fx as torch_fx

    from cnnc.compiler.lower import naming
    from cnnc.compiler.lower.fx import CnncModule

    containers = set(dir(nn.Sequential())) | set(dir(naming.Block("Block")))
    network = set(dir(CnncModule(nn.Module(), torch_fx.Graph()))) | {"cnnc_graph"}
    assert naming.reserved_names.__wrapped__(True) == frozenset(containers | network)


EVERY_STEP = """network n {
    input [4, 8, 8]
    a = in -> c1: Conv(4, 3, pad = 1) -> r1: ReLU
    b = in -> c2: Conv(4, 1)
    s = a + b
    p = s -> g: LayerScale(4)
    return concat(p * (in -> c3: Conv(4, 1)), in) -> Flatten
}
"""


def test_the_walk_visits_nodes_in_order_and_dispatches_each_by_its_step_kind():
    """The one walk the lowerings share: a sum whose input nothing else reads (`c2`'s, a conv's:
    ReLU's backward needs its output) accumulates into it; `*` folds; `concat` is a cat; LayerScale
    is a bare parameter; the values passed on are what the steps returned."""
    from cnnc.compiler.lower.walk import Walk

    class Kinds(Walk):
        def __init__(self, graph):
            super().__init__(graph)
            self.seen = []

        def step(self, node, args):
            super().step(node, args)
            return node.name

        def input(self, node):
            self.seen.append(("input", node.name))

        def module(self, node, args):
            self.seen.append(("module", node.name, *args))

        def parameter(self, node, args):
            self.seen.append(("parameter", node.name, *args))

        def cat(self, node, args):
            self.seen.append(("cat", *args))

        def accumulate(self, node, args, target):
            self.seen.append(("accumulate", *args, target))

        def fold(self, node, args, function):
            self.seen.append(("fold", *args, function))

        def output(self, values):
            return self.seen, super().output(values)

    seen, out = Kinds(api.graph(text=EVERY_STEP)).run()
    assert seen == [
        ("input", "input"),
        ("module", "c1", "input"),
        ("module", "r1", "c1"),
        ("module", "c2", "input"),
        ("accumulate", "r1", "c2", 1),
        ("parameter", "g", "add"),
        ("module", "c3", "input"),
        ("fold", "g", "c3", "operator.mul"),
        ("cat", "mul", "input"),
        ("module", "flatten", "concat"),
    ]
    assert out == "flatten"
