"""Differentiable search (`search/evaluators/darts.py`): which choices mix, a mixed layer's value,
α's gradients, and `--evaluator darts` on tiny.cnn deriving one member whose best.cnn checks."""

from __future__ import annotations

import csv
import math

import pytest

torch = pytest.importorskip("torch")

from conftest import ROOT, run_cli

from cnnc.search.evaluators import regions
from cnnc.search.evaluators.darts import Darts, classify, mixed_path, variants
from cnnc.search.evaluators.supernet import build
from cnnc.search.space import fixed, load_space

TINY = ROOT / "zoo" / "spaces" / "tiny.cnn"
WIDE = {"width": "32", "depth": "2", "kernel0": "3", "kernel1": "5", "pool": "AvgPool(2)"}

ACTS = """network acts {
    input [1, 8, 8]
    return in -> conv: Conv(4, 3, pad = 1) -> bn: BatchNorm
              -> act: choice(ReLU, Sigmoid, name = "act") -> GlobalAvgPool -> Flatten
}
"""


@pytest.fixture(scope="module")
def tiny():
    space = load_space(TINY)
    net, members = build(space, 0)
    return space, net, members


def test_choices_whose_options_share_shapes_mix_and_the_others_are_sampled(tiny):
    space, _, members = tiny
    mixed = classify(space, members)
    assert mixed == {
        "kernel0": ("3", "5"),
        "kernel1": ("3", "5"),
        "pool": ("MaxPool(2)", "AvgPool(2)"),
    }
    assert mixed_path(variants(space, WIDE, "pool", mixed["pool"])) == ("pool",)
    assert mixed_path(variants(space, WIDE, "width", ("8", "16", "32"))) is None  # shapes differ
    assert regions.sites(variants(space, WIDE, "width", ("8", "16", "32"))) is None
    assert mixed_path(variants(space, WIDE, "depth", ("1", "2"))) is None  # the nodes differ


def test_a_mixed_layer_with_one_option_weighted_fully_is_that_options_path(tiny):
    space, net, members = tiny
    darts = Darts(space, net, classify(space, members))
    member = space.member(fixed(WIDE))
    with torch.no_grad():
        for name, alpha in darts.alphas.items():
            picked = darts.options[name].index(WIDE[name])
            alpha.fill_(-50.0)
            alpha[picked] = 50.0
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))  # [3, 1, 8, 8]
    net.eval()
    mixed = darts.network(member).eval()
    with torch.no_grad():
        assert torch.allclose(mixed(x), net(x, member=member.graph), atol=1e-5)


def test_alpha_takes_gradients_and_options_read_one_input_unchanged():
    space = load_space("acts.cnn", text=ACTS)
    net, members = build(space, 0)
    darts = Darts(space, net, classify(space, members))
    assert darts.options == {"act": ("ReLU", "Sigmoid")}
    network = darts.network(members[0]).train()
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 10  # [4, 1, 8, 8]
    y = network(x)  # [4, 4]
    y.sum().backward()
    assert darts.alphas["act"].grad is not None and darts.alphas["act"].grad.abs().sum() > 0
    # α = 0: each option weighs ½, and each reads the same input (an in-place ReLU would change it)
    relu, sigmoid = (space.member(fixed({"act": a})).graph for a in ("ReLU", "Sigmoid"))
    net.eval()
    network.eval()
    darts.alphas["act"].data.zero_()
    with torch.no_grad():
        expected = 0.5 * (net(x, member=relu) + net(x, member=sigmoid))  # [4, 4]
        assert torch.allclose(network(x), expected, atol=1e-6)


# NAS-Bench-201's cell, shrunk: each edge one op of three, the cell used twice (one genotype)
EDGE_OPS = ("Identity", "ReLUConvBN(c)", "AvgPool(3, stride = 1, pad = 1)")
OPS = """
block ReLUConvBN(c) {
    return in -> ReLU -> conv: Conv(c, 3, pad = 1, bias = false) -> bn: BatchNorm
}

block Edge(c, name) {
    return in -> choice(Identity, ReLUConvBN(c), AvgPool(3, stride = 1, pad = 1), name = name)
}
"""
CELLS = (
    OPS
    + """
block Cell(c) {
    x1 = in -> e1: Edge(c, "e1")
    return (in -> e2: Edge(c, "e2")) + (x1 -> e3: Edge(c, "e3"))
}

network cells {
    input [1, 8, 8]
    return in -> stem: (Conv(4, 3, pad = 1, bias = false) -> BatchNorm) -> c1: Cell(4)
              -> c2: Cell(4) -> GlobalAvgPool -> Flatten -> fc: Linear(10)
}
"""
)
LAST = (
    OPS
    + """
network last {
    input [1, 8, 8]
    return in -> stem: (Conv(4, 3, pad = 1, bias = false) -> BatchNorm) -> op: Edge(4, "op")
              -> GlobalAvgPool -> Flatten
}
"""
)


@pytest.fixture(scope="module")
def cells():
    space = load_space("cells.cnn", text=CELLS)
    net, members = build(space, 0)
    return space, net, members


def test_edge_ops_of_a_cell_used_twice_mix_with_a_site_in_each_cell(cells):
    space, _, members = cells
    assert classify(space, members) == {"e1": EDGE_OPS, "e2": EDGE_OPS, "e3": EDGE_OPS}
    labels = {"e1": "Identity", "e2": "ReLUConvBN(c)", "e3": "Identity"}
    found = regions.sites(variants(space, labels, "e2", EDGE_OPS))
    # node 2's edge from the cell's input: the stem's output into c1, c1's output into c2
    assert [(s.source, s.readers, [len(n) for n in s.nodes]) for s in found] == [
        (("c1", "add"), frozenset({("c2", "add")}), [1, 3, 1]),
        (("stem", "1"), frozenset({("c1", "add")}), [1, 3, 1]),
    ]


def test_with_one_op_weighted_fully_on_each_edge_the_cell_network_is_that_members_path(cells):
    space, net, members = cells
    darts = Darts(space, net, classify(space, members))
    labels = {"e1": "ReLUConvBN(c)", "e2": "AvgPool(3, stride = 1, pad = 1)", "e3": "Identity"}
    with torch.no_grad():
        for name, alpha in darts.alphas.items():
            alpha.fill_(-50.0)
            alpha[EDGE_OPS.index(labels[name])] = 50.0
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))  # [3, 1, 8, 8]
    net.eval()
    base = space.member(fixed(dict.fromkeys(labels, "Identity")))  # any member: every edge mixes
    mixed = darts.network(base).eval()
    with torch.no_grad():
        expected = net(x, member=space.member(fixed(labels)).graph)  # [3, 10]
        assert torch.allclose(mixed(x), expected, atol=1e-6)


def test_an_edge_ops_outputs_are_weighted_by_softmax_alpha_each_reading_one_input():
    space = load_space("last.cnn", text=LAST)
    net, members = build(space, 0)
    darts = Darts(space, net, classify(space, members))
    assert darts.options == {"op": EDGE_OPS}
    network = darts.network(members[0]).train()
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))  # [4, 1, 8, 8]
    network(x).sum().backward()  # [4, 4] → []
    assert darts.alphas["op"].grad.abs().sum() > 0
    # α = (0, ln 2, 0): weights ¼, ½, ¼; the ReLU of ReLUConvBN must not change the others' input
    outs = [space.member(fixed({"op": op})).graph for op in EDGE_OPS]
    net.eval()
    network.eval()
    darts.alphas["op"].data = torch.tensor([0.0, math.log(2.0), 0.0])
    with torch.no_grad():
        expected = sum(w * net(x, member=g) for w, g in zip((0.25, 0.5, 0.25), outs))  # [4, 4]
        assert torch.allclose(network(x), expected, atol=1e-6)


def test_an_edge_with_a_zero_option_is_sampled_not_mixed():
    # Zero takes the edge out of the sum: its member has no node where the others have the op's
    text = """
block Edge(name) {
    return in -> choice(Zero, Identity, AvgPool(3, stride = 1, pad = 1), name = name)
}
network z {
    input [1, 8, 8]
    x = in -> stem: Conv(4, 3, pad = 1)
    return sum([x -> a: Edge("a"), x]) -> GlobalAvgPool -> Flatten -> fc: Linear(10)
}
"""
    space = load_space("z.cnn", text=text)
    _, members = build(space, 0)
    options = ("Zero", "Identity", "AvgPool(3, stride = 1, pad = 1)")
    assert regions.sites(variants(space, {"a": "Identity"}, "a", options)) is None
    assert classify(space, members) == {}


def test_darts_search_of_tiny_derives_one_member_whose_best_cnn_checks(
    tmp_path, capsys, one_thread
):
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        ["search", TINY, "--evaluator", "darts", "--device", "cpu", "--out", out], capsys
    )
    assert code == 0, err
    assert (
        "darts: 46 steps" in stdout and "sampled (options differ in shape): width, depth" in stdout
    )
    assert "1 trial: 1 scored" in stdout and "resuming" not in stdout
    assert "trial 1/1 done" in err and "/20" not in err  # its one member, not --trials' default
    derived = stdout.split("derived: ")[1].splitlines()[0]
    best = (out / "best.cnn").read_text()
    assert "decisions: " + derived.replace("=", " = ") in best
    assert "with the weights of a darts search" in best
    assert run_cli(["check", out / "best.cnn"], capsys)[0] == 0


def test_a_resumed_darts_search_loads_its_weights_and_derives_the_same_member(
    tmp_path, capsys, one_thread, monkeypatch
):
    from cnnc.search.evaluators import darts

    out = tmp_path / "run"
    argv = ["search", TINY, "--evaluator", "darts", "--device", "cpu", "--epochs", "1"]
    code, first, err = run_cli([*argv, "--out", out], capsys)
    assert code == 0, err
    monkeypatch.setattr(darts, "search", lambda *a, **k: pytest.fail("searched again"))
    code, again, err = run_cli([*argv, "--trials", "2", "--out", out], capsys)
    assert code == 0, err
    line = next(x for x in again.splitlines() if x.startswith("darts"))
    assert line.startswith("darts (kept in darts.safetensors): 23 steps in ")
    assert "note: α barely left uniform" in again  # 1 epoch on tiny: softmax(α) 0.49 / 0.51
    assert line.endswith("; not searched again")
    derived = first.split("derived: ")[1].splitlines()[0]
    assert line.split("derived: ")[1] == derived + "; not searched again"
    assert "softmax(α): " + first.split("softmax(α): ")[1].split("; derived")[0] in line
    # the study holds the derived member already: no other member is proposed in its place
    assert "note: the derived member is trial 0's architecture: no trial to run" in err
    with open(out / "trials.csv") as f:
        assert [r["number"] for r in csv.DictReader(f)] == ["0"]


def test_without_a_trainable_argmax_member_the_best_covered_member_is_derived(tiny, one_thread):
    from cnnc.search.driver import Settings
    from cnnc.search.evaluators.darts import derive
    from cnnc.search.evaluators.supernet import score
    from cnnc.training.data import load_dataset

    space, net, members = tiny
    darts = Darts(space, net, classify(space, members))
    data, settings, cpu = load_dataset("digits"), Settings(file=str(TINY)), torch.device("cpu")
    few = members[:3]
    member = derive(darts, few, data, settings, cpu, keep=lambda m: False)
    scores = [score(net, m.graph, data, settings, cpu) for m in few]
    assert member is few[scores.index(max(scores))]


def test_a_note_says_when_alpha_barely_left_uniform():
    from cnnc.search.evaluators.darts import undecided

    near = {"a": {"x": 0.34, "y": 0.33, "z": 0.33}, "b": {"3": 0.51, "5": 0.49}}
    assert undecided(near) == (
        "α barely left uniform (the largest margin between a choice's two likeliest options is "
        "0.02): the derived member is close to an arbitrary pick; search longer (--epochs)"
    )
    assert undecided({**near, "c": {"3": 0.6, "5": 0.4}}) == ""  # one choice decided
    assert undecided({}) == ""  # no choice mixes
