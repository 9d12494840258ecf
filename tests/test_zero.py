"""`Zero`: zeros of its input's shape, and what it makes dead dropped from every count and module.

The oracle for each case is the same network written without the dead branch: params, MACs,
activations and training memory equal, the lowered module has no layer of the dead branch, and its
parameter count is torch's `numel`.
"""

from __future__ import annotations

import pytest
import torch
from conftest import run_cli

from cnnc import api
from cnnc.compiler.analysis.training_memory import training_memory

pytestmark = pytest.mark.usefixtures("one_thread")

CELL = """
network with_zero {
    input [3, 8, 8]
    a = in -> c1: Conv(4, 3, pad = 1)
    dead = in -> Conv(4, 5, pad = 2) -> BatchNorm -> Zero
    return (a + dead + (a -> c2: Conv(4, 1))) -> head: Conv(2, 1)
}
network without {
    input [3, 8, 8]
    a = in -> c1: Conv(4, 3, pad = 1)
    return (a + (a -> c2: Conv(4, 1))) -> head: Conv(2, 1)
}
"""


def figures(text: str, network: str) -> tuple:
    s = api.summary(text=text, network=network)
    graph = api.graph(text=text, network=network)
    train = training_memory(graph, batch=4)
    return s.params, s.macs, s.activations, train.total, len(graph)


def numel(text: str, network: str) -> int:
    model = api.compile_source(text, network=network, seed=0)
    return sum(p.numel() for p in model.parameters())


def test_a_zero_in_a_sum_is_dropped_with_its_branch():
    got, want = figures(CELL, "with_zero"), figures(CELL, "without")
    # the convs' params, MACs; input, two 4-channel maps (the sum accumulates in place), output
    assert got == want == (112 + 20 + 10, 6_912 + 1_024 + 512, 192 + 256 * 2 + 128, got[3], 5)
    assert numel(CELL, "with_zero") == numel(CELL, "without") == 142
    graph = api.graph(text=CELL, network="with_zero")
    assert [n.op for n in graph.nodes_in_order()] == ["Input", "Conv", "Conv", "Add", "Conv"]


def test_the_lowered_module_computes_the_network_without_the_dead_branch():
    with_zero = api.compile_source(CELL, network="with_zero", seed=0).eval()
    without = api.compile_source(CELL, network="without", seed=0).eval()
    assert len(list(with_zero.modules())) == len(list(without.modules()))
    with_zero.load_state_dict(without.state_dict())  # the same layers: the weights load
    x = torch.randn(2, 3, 8, 8)  # [N, C, H, W]
    torch.testing.assert_close(with_zero(x), without(x))


KEPT = """
network n {
    input [3, 8, 8]
    a = in -> Conv(4, 3, pad = 1) -> ReLU
    z = a -> Conv(6, 5, stride = 2, pad = 2) -> BatchNorm -> Zero
    return concat(a -> MaxPool(2), z) -> Conv(2, 1)
}
"""


def test_a_kept_zero_keeps_its_shape_and_reads_the_nearest_kept_tensor():
    graph = api.graph(text=KEPT)
    zero = next(n for n in graph.nodes_in_order() if n.op == "Zero")
    assert zero.type.shape == (6, 4, 4)
    assert graph.node(zero.inputs[0]).op == "ReLU"  # the dead Conv and BatchNorm are gone
    assert [n.op for n in graph.nodes_in_order()].count("Conv") == 2
    model = api.compile_source(KEPT, seed=0).eval()
    assert sum(p.numel() for p in model.parameters()) == api.summary(text=KEPT).params == 112 + 22
    x = torch.randn(2, 3, 8, 8)  # [N, C, H, W]
    with torch.no_grad():
        assert model(x).shape == (2, 2, 4, 4)
        assert torch.count_nonzero(model.get_submodule("zero")(x)) == 0


def test_a_sum_of_zeros_is_a_zero_and_a_broadcasting_zero_stays():
    only = "network n { input [3, 8, 8] return ((in -> Conv(3, 1) -> Zero) + (in -> Zero)) }"
    assert [n.op for n in api.graph(text=only).nodes_in_order()] == ["Input", "Zero"]
    assert api.summary(text=only).params == 0
    wide = (
        "network n { input [3, 8, 8]\n"
        "return (in -> GlobalAvgPool) + (in -> Conv(3, 1) -> Zero) }"  # [3, 1, 1] + [3, 8, 8]
    )
    graph = api.graph(text=wide)
    assert graph.output_type.shape == (3, 8, 8)
    assert [n.op for n in graph.nodes_in_order()] == ["Input", "GlobalAvgPool", "Zero", "Add"]


def test_cnnc_ops_zero_prints_its_page(capsys):
    code, out, err = run_cli(["ops", "Zero"], capsys)
    assert code == 0, err
    assert out.startswith("Zero: zeros of the input's shape")
    assert "none: the zeros read no input position" in out
