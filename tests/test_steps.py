"""`to_step_module` (the search's lowering, no generated code) against `to_graph_module`: the same
state_dict, outputs bit for bit, the same gradients and frozen parameters; copies that are
independent; each value let go after its last reader. The zoo networks are chosen to cover every
step kind: modules, `cat`, sums in place and folded, products (SE gates), LayerScale parameters,
a second input for a size (`Upsample(like = …)`), dict and tuple outputs, and several inputs."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from conftest import ROOT

from cnnc import api
from cnnc.compiler.lower.fx import example_inputs, to_graph_module
from cnnc.compiler.lower.steps import StepModule, to_step_module

ZOO = ["resnet18", "googlenet", "efficientnet_b0", "convnext_tiny", "lraspp_mobilenet_v3_large"]

TWO_IN_TWO_OUT = """
network two {
    input image [3, 16, 16]
    input depth [1, 16, 16]
    a = image -> Conv(8, 3, pad = 1) -> ReLU
    b = depth -> Conv(8, 3, pad = 1)
    s = a + b
    return (s * b, concat([s, a]) -> Conv(4, 1))
}
"""


def _flat(y):
    if isinstance(y, dict):
        return list(y.values())
    if isinstance(y, tuple):
        return list(y)
    return [y]


def _graph(name):
    if name == "two":
        return api.graph("two.cnn", text=TWO_IN_TWO_OUT)
    return api.graph(ROOT / "zoo" / f"{name}.cnn")


def _inputs(graph, batch=1):
    generator = torch.Generator().manual_seed(1)
    return example_inputs(
        graph, batch, make=lambda *s, device=None: torch.randn(*s, generator=generator)
    )


@pytest.mark.parametrize("name", [*ZOO, "two"])
def test_the_step_module_is_the_graph_modules_network(name, one_thread):
    # one thread: several split a convolution's weight-gradient reduction by the machine's load,
    # so two runs of one network could differ in the last bits
    graph = _graph(name)
    fx_model, steps = to_graph_module(graph, seed=0), to_step_module(graph, seed=0)
    assert isinstance(steps, StepModule)
    a, b = fx_model.state_dict(), steps.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    xs = _inputs(graph)
    with torch.no_grad():
        fx_model.eval(), steps.eval()
        assert all(
            torch.equal(p, q) for p, q in zip(_flat(fx_model(*xs)), _flat(steps(*xs)), strict=True)
        )
    fx_model.train(), steps.train()
    for model in (fx_model, steps):
        torch.manual_seed(0)  # the same dropout masks
        sum(y.float().sum() for y in _flat(model(*xs))).backward()
    grads = {k: p.grad for k, p in fx_model.named_parameters()}
    for k, p in steps.named_parameters():
        assert (p.grad is None) == (grads[k] is None), k
        assert p.grad is None or torch.allclose(p.grad, grads[k], rtol=1e-5, atol=1e-6), k


def test_frozen_parameters_and_copies():
    text = (
        'import "families/resnet.cnn"\n'
        "network r = ResNet([1, 1, 1, 1], classes = 10) freeze until layer2\n"
    )
    graph = api.graph(ROOT / "zoo" / "frozen.cnn", text=text)
    fx_model, steps = to_graph_module(graph, seed=0), to_step_module(graph, seed=0)
    assert [(k, p.requires_grad) for k, p in fx_model.named_parameters()] == [
        (k, p.requires_grad) for k, p in steps.named_parameters()
    ]
    assert not all(p.requires_grad for p in steps.parameters())
    twin = copy.deepcopy(steps)
    assert twin.cnnc_graph is steps.cnnc_graph  # the frozen IR is shared
    with torch.no_grad():
        next(twin.parameters()).add_(1.0)
    assert not torch.equal(next(twin.parameters()), next(steps.parameters()))
    x = _inputs(graph)
    with torch.no_grad():
        steps.eval(), twin.eval()
        assert twin(*x).shape == steps(*x).shape == (1, 10)


def test_each_value_is_let_go_after_its_last_reader():
    graph = _graph("googlenet")
    steps = to_step_module(graph, device="meta")
    freed = [i for *_, frees in steps._steps for i in frees]
    read = {i for n in graph.nodes_in_order() for i in n.inputs}
    outputs = {i for _, i in graph.outputs}
    assert sorted(freed) == sorted(read - outputs)  # every value read, once, but the outputs
    position = {out: k for k, (_, out, *_rest) in enumerate(steps._steps)}
    for k, (_, _, ins, _, frees) in enumerate(steps._steps):
        for i in frees:
            assert i in ins
            later = [j for j, (_, _, more, _, _) in enumerate(steps._steps) if i in more]
            assert max(later) == k and (i not in position or position[i] < k)


def test_the_wrong_number_of_inputs_is_a_type_error():
    steps = to_step_module(_graph("two"), seed=0)
    with pytest.raises(TypeError, match="2 input"):
        steps(torch.ones(1, 3, 16, 16))
