"""Differentiable search (`search/evaluators/darts.py`): which choices mix, a mixed layer's value,
α's gradients, and `--evaluator darts` on tiny.cnn deriving one member whose best.cnn checks."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from conftest import ROOT, run_cli

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
    assert "1 trial: 1 trained" in stdout and "resuming" not in stdout
    derived = stdout.split("derived: ")[1].splitlines()[0]
    best = (out / "best.cnn").read_text()
    assert "decisions: " + derived.replace("=", " = ") in best
    assert "with the weights of a darts search" in best
    assert run_cli(["check", out / "best.cnn"], capsys)[0] == 0


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
