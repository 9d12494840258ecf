"""The supernet (`compiler/lower/supernet.py`) and the one-shot search (`--evaluator supernet`):
weights really shared (the same Parameter, or a view of it), a member's forward through the supernet
equal to its own module loaded with the same slices, the parameter count the union of the options,
and a 24-member one-shot search of tiny.cnn cheaper in member passes than training six members."""

from __future__ import annotations

import csv

import pytest

torch = pytest.importorskip("torch")

from conftest import ROOT, run_cli

import cnnc
from cnnc.api import CnncError
from cnnc.compiler.lower.steps import to_step_module
from cnnc.compiler.lower.supernet import NotCovered, Shared, Supernet, plan_slots
from cnnc.search.retrain import kendall_tau

TINY = ROOT / "zoo" / "spaces" / "tiny.cnn"
SMALL = {"width": "8", "depth": "1", "kernel0": "3", "pool": "MaxPool(2)"}
WIDE = {"width": "32", "depth": "2", "kernel0": "3", "kernel1": "5", "pool": "AvgPool(2)"}
MIDDLE = {"width": "16", "depth": "2", "kernel0": "5", "kernel1": "3", "pool": "AvgPool(2)"}


@pytest.fixture(scope="module")
def net():
    return cnnc.load(TINY, supernet=True, seed=0)


def shared(net: Supernet, member: dict, name: str) -> Shared:
    return net.path(net._graph(member)).get_submodule(name)


def test_the_parameter_count_is_the_union_of_the_options(net):
    widest = {
        "stem/conv:0": 32 * 1 * 3 * 3,  # Conv2d(1, 32, 3), no bias
        "stem/bn:0": 2 * 32,
        "blocks/0/conv:0": 32 * 32 * 3 * 3,  # kernel0 = 3
        "blocks/0/conv:1": 32 * 32 * 5 * 5,  # kernel0 = 5: another shape, its own weights
        "blocks/0/bn:0": 2 * 32,
        "blocks/1/conv:0": 32 * 32 * 3 * 3,
        "blocks/1/conv:1": 32 * 32 * 5 * 5,
        "blocks/1/bn:0": 2 * 32,
        "fc:0": 512 * 10 + 10,  # Linear(32 · 4 · 4, 10)
    }
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in net.store.items()}
    assert counts == widest
    assert sum(p.numel() for p in net.parameters()) == 75_242


def test_members_share_one_parameter_or_a_view_of_it(net):
    wide, middle, small = (shared(net, m, "stem.conv") for m in (WIDE, MIDDLE, SMALL))
    store = net.store["stem/conv:0"]
    assert wide.template is None and wide.entry is store  # the widest uses the slot itself
    assert middle.entry is store and small.entry is store
    view = small.views()["weight"]
    assert view.shape == (8, 1, 3, 3) and view._base is store.weight
    assert torch.equal(view, store.weight[:8])
    # the same kernel shares, another kernel does not
    assert shared(net, WIDE, "blocks.0.conv").entry is shared(net, SMALL, "blocks.0.conv").entry
    k5 = shared(net, MIDDLE, "blocks.0.conv").entry
    assert k5 is net.store["blocks/0/conv:1"] and k5 is not shared(net, WIDE, "blocks.0.conv").entry


@pytest.mark.parametrize("member", [SMALL, MIDDLE, WIDE])
@pytest.mark.parametrize("train", [False, True])
def test_a_members_forward_is_its_own_module_with_the_sliced_weights(net, member, train):
    graph = net.set_member(member)
    alone = to_step_module(graph, seed=5)
    alone.load_state_dict(net.member_state_dict(member))
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))  # [6, 1, 8, 8]
    net.train(train)
    alone.train(train)
    with torch.no_grad():
        assert torch.allclose(net(x), alone(x.clone()), atol=1e-6)
        other = net(x, member=SMALL)  # another member, without changing the chosen one
        assert torch.allclose(net(x), alone(x.clone()), atol=1e-6)
        net.set_member(SMALL)
        assert torch.equal(net(x), other)


def test_gradients_and_batchnorm_statistics_land_in_the_sliced_part_of_the_store():
    net = cnnc.load(TINY, supernet=True, seed=0)
    net.set_member(SMALL)
    net.train()
    net(torch.randn(4, 1, 8, 8)).sum().backward()  # [4, 10] → []
    grad = net.store["stem/conv:0"].weight.grad  # [32, 1, 3, 3]
    assert grad[:8].abs().sum() > 0 and torch.count_nonzero(grad[8:]) == 0
    bn = net.store["stem/bn:0"]
    assert (
        torch.count_nonzero(bn.running_mean[:8]) == 8
        and torch.count_nonzero(bn.running_mean[8:]) == 0
    )
    assert net.store["blocks/0/conv:1"].weight.grad is None  # kernel 5: not on this path


def test_the_state_dict_round_trips_and_says_which_members_slice(net, tmp_path):
    torch.save(net.state_dict(), tmp_path / "supernet.pt")
    again = cnnc.load(TINY, supernet=True, seed=1)
    again.load_state_dict(torch.load(tmp_path / "supernet.pt", weights_only=True))
    x = torch.randn(2, 1, 8, 8)  # [2, 1, 8, 8]
    net.eval()
    again.eval()
    with torch.no_grad():
        assert torch.equal(again(x, member=MIDDLE), net(x, member=MIDDLE))
    assert "store.blocks/0/conv:1.weight" in net.state_dict()
    assert net.slices(net._graph(SMALL)) and not net.slices(net._graph(WIDE))


def test_set_member_names_what_is_wrong(net):
    with pytest.raises(ValueError, match=r"`width` has no option `12` \(options: 8, 16, 32\)"):
        net.set_member({"width": "12"})
    with pytest.raises(ValueError, match="the member meets no decision `kernel1`"):
        net.set_member({"depth": "1", "kernel1": "5"})
    with pytest.raises(ValueError, match="`weights` and `optimize` do not apply"):
        cnnc.load(TINY, supernet=True, optimize="inference")


def test_a_layer_the_store_lacks_is_refused_not_truncated():
    graphs = [cnnc.graph("n.cnn", text=NET.format(c=8))]
    net = Supernet(plan_slots(graphs), lambda a: None, seed=0)
    with pytest.raises(NotCovered, match="no weights for `conv` as Conv2d\\(1, 16"):
        net.path(cnnc.graph("n.cnn", text=NET.format(c=16)))


NET = """network n {{
    input [1, 8, 8]
    return in -> conv: Conv({c}, 3) -> GlobalAvgPool -> Flatten
}}
"""


@pytest.mark.parametrize(
    "a, b",
    [
        ([1, 2, 3, 4], [1, 2, 3, 4]),
        ([1, 2, 3, 4], [4, 3, 2, 1]),
        ([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]),
        ([0.9, 0.9, 0.8, 0.7], [0.95, 0.97, 0.97, 0.9]),  # ties on both sides
    ],
)
def test_kendall_tau_is_scipys_tau_b(a, b):
    stats = pytest.importorskip("scipy.stats")
    assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b).statistic)


def test_kendall_tau_of_a_constant_side_is_undefined():
    assert kendall_tau([1.0, 1.0, 1.0], [0.1, 0.2, 0.3]) is None


def test_one_shot_search_of_tiny_costs_fewer_passes_than_training_six(tmp_path, capsys, one_thread):
    from cnnc.search.evaluators import supernet as one_shot
    from cnnc.training.data import load_dataset
    from cnnc.training.loop import batch_bounds

    out = tmp_path / "run"
    argv = ["search", TINY, "--evaluator", "supernet", "--sampler", "grid", "--trials", "24"]
    code, stdout, err = run_cli(
        [*argv, "--retrain-top", "2", "--device", "cpu", "--out", out], capsys
    )
    assert code == 0, err
    assert (
        "supernet: 36 architectures, trained 46 steps (138 member passes, a uniform architecture "
        "a step, sandwich rule)" in stdout
    )
    # --trials counts distinct architectures: the grid's repeats (kernel1 of a one-block member)
    # are reused on top of the 24
    assert "27 trials: 24 scored, 3 reused" in stdout and "Kendall τ" in stdout
    # six members trained from scratch for the same 2 epochs take one pass a batch each
    train = len(load_dataset("digits").train_x)
    six = 6 * 2 * sum(1 for _ in batch_bounds(train, 64, keep_last=True))
    assert six == 276 and six > 138
    assert one_shot.batch_count(train, 64) == 23
    assert run_cli(["check", out / "best.cnn"], capsys)[0] == 0
    with open(out / "retrain.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["number", "supernet", "standalone"] and len(rows) == 4
    assert rows[-1][0] == "kendall_tau" and -1.0 <= float(rows[-1][2]) <= 1.0
    assert all(0.0 < float(r[2]) <= 1.0 for r in rows[1:3])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--retrain-top", "2"], "--retrain-top checks a one-shot search"),
        (["--evaluator", "supernet", "--workers", "2"], "--workers must be 1"),
    ],
)
def test_one_shot_usage_errors(tmp_path, capsys, args, message):
    code, _, err = run_cli(["search", TINY, "--out", tmp_path / "r", *args], capsys)
    assert code == 2 and message in err


def test_a_supernet_too_large_for_the_machine_is_refused_before_it_is_allocated(
    monkeypatch, tmp_path, capsys
):
    from cnnc.search.evaluators import supernet as one_shot

    monkeypatch.setattr(one_shot, "available_bytes", lambda device: 1_000_000)
    argv = ["search", TINY, "--evaluator", "supernet", "--device", "cpu", "--out", tmp_path / "r"]
    code, out, err = run_cli(argv, capsys)
    # 75,242 parameters and 195 BatchNorm buffers; ×3 with gradients and momentum, + activations
    assert code == 1 and "supernet:" not in out
    assert "error[E0609]: the supernet is too large for this machine: 75,437 weights for 36" in err
    assert "help: narrow the space's widest choices" in err


MIXED_OUTPUTS = """network m(classes = 10) {{
    input [1, 8, 8]
    return in -> Conv(4, 3) -> GlobalAvgPool -> Flatten -> Linear(choice({outs}, name = "out"))
}}
"""


@pytest.mark.parametrize(
    "outs, args, message",
    [
        ("10, 5", ["--lr", "1e12"], "the supernet's training loss became"),
        ("7, 5", [], "no member of the space can train on the data"),
    ],
)
def test_a_one_shot_search_that_cannot_train_says_why(tmp_path, capsys, outs, args, message):
    space = tmp_path / "m.cnn"
    space.write_text(MIXED_OUTPUTS.format(outs=outs))
    argv = ["search", space, "--evaluator", "supernet", "--device", "cpu", "--out", tmp_path / "r"]
    code, _, err = run_cli([*argv, *args], capsys)
    assert code == 1 and f"error[E0609]: {message}" in err and "Traceback" not in err


def test_a_space_with_no_valid_member_has_no_supernet():
    text = NET.format(c='choice(4, 8, name = "w")').replace("conv:", "forward:")
    with pytest.raises(CnncError, match=r"E0609\]: the space has no valid member"):
        cnnc.load("n.cnn", text=text, supernet=True)


def test_members_whose_output_is_not_the_datas_classes_are_left_out_of_training():
    from cnnc.search.driver import Settings
    from cnnc.search.evaluators.supernet import build, fits_data
    from cnnc.search.space import load_space
    from cnnc.training.data import load_dataset

    space = load_space("m.cnn", text=MIXED_OUTPUTS.format(outs="10, 5"))
    settings = Settings(file="m.cnn")
    net, members = build(space, 0, keep=fits_data(settings, load_dataset("digits")))
    assert [m.labels() for m in members] == [{"out": "10"}]
    assert list(net.store) == ["conv:0", "linear:0"]


def test_a_members_score_does_not_depend_on_the_members_scored_before(one_thread):
    from cnnc.search.driver import Settings
    from cnnc.search.evaluators.supernet import score
    from cnnc.training.data import load_dataset

    net = cnnc.load(TINY, supernet=True, seed=0)
    data, settings, cpu = load_dataset("digits"), Settings(file=str(TINY)), torch.device("cpu")
    small, middle = net._graph(SMALL), net._graph(MIDDLE)
    first = score(net, small, data, settings, cpu)
    score(net, middle, data, settings, cpu)
    assert score(net, small, data, settings, cpu) == first
    assert 0.0 <= first <= 1.0


@pytest.mark.parametrize("nested", [False, True])
def test_a_shared_layer_runs_its_template_on_the_slices_and_leaves_it_weightless(nested):
    entry = torch.nn.Conv2d(1, 4, 3)
    with torch.device("meta"):
        template = torch.nn.Conv2d(1, 2, 3)
    if nested:  # a layer whose tensors belong to a submodule: torch.func.functional_call's case
        entry, template = torch.nn.Sequential(entry), torch.nn.Sequential(template)
    layer = Shared(entry, template)
    x = torch.randn(2, 1, 5, 5)  # [2, 1, 5, 5]
    conv = entry[0] if nested else entry
    expected = torch.nn.functional.conv2d(x, conv.weight[:2], conv.bias[:2])  # [2, 2, 3, 3]
    assert torch.equal(layer(x), expected)
    assert all(t.device.type == "meta" for t in template.parameters())


@pytest.fixture(scope="module")
def tiny_paths():
    from cnnc.search.evaluators.cover import covered
    from cnnc.search.evaluators.paths import Paths
    from cnnc.search.space import load_space

    members = covered(load_space(TINY), distinct=False)
    return members, Paths(members)


def test_a_supernet_trains_every_assignment_and_counts_architectures(tiny_paths):
    from cnnc.search.evaluators.cover import architectures

    members, _ = tiny_paths
    # 3 widths × 2 pools × (2 kernels for one block, 2 × 2 for two) = 36, none isomorphic
    assert len(members) == 36 and len(architectures(members)) == 36
    assert len({m.picks for m in members}) == 36


def test_a_uniform_path_draws_each_decision_uniformly_not_each_member(tiny_paths):
    import random

    _, paths = tiny_paths
    rng = random.Random(0)
    drawn = [paths.uniform(rng).labels() for _ in range(2_400)]
    one_block = sum(d["depth"] == "1" for d in drawn) / len(drawn)
    # depth is one decision of two options: half the draws (uniform over the 36 members: 12/36)
    assert 0.47 < one_block < 0.53
    widths = [d["width"] for d in drawn]
    assert all(0.3 < widths.count(w) / len(drawn) < 0.37 for w in ("8", "16", "32"))


def test_a_fair_step_takes_every_option_of_every_decision_once(tiny_paths):
    import random

    _, paths = tiny_paths
    rng = random.Random(0)
    assert paths.width == 3  # `width` has three options: three paths a step
    for _ in range(50):
        step = [m.labels() for m in paths.fair(rng)]
        assert sorted(d["width"] for d in step) == ["16", "32", "8"]
        for decision in ("depth", "kernel0", "pool"):  # two options: each at least once
            assert len({d[decision] for d in step}) == 2
        # `kernel1` is met on the two-block paths alone, so it takes its options on those only
        assert all(("kernel1" in d) == (d["depth"] == "2") for d in step)


def test_a_path_never_leads_to_a_member_the_supernet_does_not_hold(tiny_paths):
    import random

    from cnnc.search.evaluators.paths import Paths

    members, _ = tiny_paths
    held = [m for m in members if m.labels()["width"] != "16"]
    paths = Paths(held)
    rng = random.Random(0)
    drawn = [paths.uniform(rng) for _ in range(200)] + [
        m for _ in range(50) for m in paths.fair(rng)
    ]
    assert {m.labels()["width"] for m in drawn} == {"8", "32"}
    assert all(m in held for m in drawn)


ISOMORPHIC = """network s(classes = 10) {{
    input [1, 8, 8]
    a = in -> left: choice({ops}, name = "a")
    b = in -> right: choice({ops}, name = "b")
    return (a + b) -> Flatten -> fc: Linear(classes)
}}
""".format(ops="Conv(1, 3, pad = 1), AvgPool(3, stride = 1, pad = 1)")


def test_isomorphic_members_are_scored_through_the_member_training_drew(one_thread):
    from cnnc.search.driver import Settings
    from cnnc.search.evaluators.cover import covered
    from cnnc.search.evaluators.paths import Representatives
    from cnnc.search.evaluators.supernet import build, scorer
    from cnnc.search.space import load_space
    from cnnc.training.data import load_dataset

    space = load_space("s.cnn", text=ISOMORPHIC)
    everyone = covered(space, distinct=False)
    net, trained = build(space, 0)
    # conv + pool and pool + conv are one architecture (`+` is commutative): 4 members, 3 trained
    assert len(everyone) == 4 and len(trained) == 3
    twin = next(m for m in everyone if m not in trained)
    drawn = next(
        m for m in trained if sorted(m.labels().values()) == sorted(twin.labels().values())
    )
    assert Representatives(trained).of(twin.graph) == (drawn.graph, trained.index(drawn))
    data, settings = load_dataset("digits"), Settings(file="s.cnn")
    evaluate = scorer(net, data, settings, torch.device("cpu"), trained)
    alone = scorer(net, data, settings, torch.device("cpu"))  # each member through its own path
    assert evaluate(twin.graph, None).score == alone(drawn.graph, None).score
    assert evaluate(drawn.graph, None).score == evaluate(twin.graph, None).score


def test_a_space_too_large_to_walk_is_covered_by_random_members(monkeypatch):
    """tiny.cnn counts 36 members, over a cover limit of 5: it is not walked (a walk stopped after
    5 members would meet width 8 alone) but sampled, and every width is covered, so every member
    has weights (proxyless_space.cnn, too large to walk, once covered one block's options and
    failed every trial)."""
    from cnnc.search.evaluators import cover
    from cnnc.search.evaluators import supernet as one_shot
    from cnnc.search.space import load_space

    monkeypatch.setattr(cover, "COVER_LIMIT", 5)
    space = load_space(TINY)
    monkeypatch.setattr(cover, "walk", lambda *a, **k: pytest.fail("walked"))
    members = cover.covered(space)
    assert {dict(m.picks)["width"] for m in members} == {0, 1, 2}
    assert 30 <= len(members) <= 36  # 200 seeded draws meet 35 of the 36
    net, _ = one_shot.build(space, 0)
    for assignment in (SMALL, WIDE, MIDDLE):  # each is covered, and runs
        graph = one_shot.member_graph(space, assignment)
        assert net(torch.zeros(2, 1, 8, 8), member=graph).shape == (2, 10)


def test_a_sampled_cover_trains_a_new_member_a_step(monkeypatch):
    """On a space too large to walk the cover decides which weights the store holds, not which
    members train: each step draws a new member, each decision uniform (SPOS), again where the
    store lacks one of its layers. Three sampled members and the space's two ends hold no 3×3
    second block and no 3×3 first block 32 wide, and 60 draws train 19 members, none of those."""
    import random

    from cnnc.search.evaluators import cover
    from cnnc.search.evaluators import supernet as one_shot
    from cnnc.search.space import graph_hash, load_space

    monkeypatch.setattr(cover, "COVER_LIMIT", 5)
    monkeypatch.setattr(cover, "COVER_SAMPLES", 3)
    space = load_space(TINY)
    net, members = one_shot.build(space, 0)
    assert len(members) == 5
    assert not any(m.labels().get("kernel1") == "3" for m in members)
    draw = cover.fresh(space, net, members, keep=lambda m: True)
    rng = random.Random(0)
    drawn = [m.labels() for _ in range(60) for m in draw(rng)]
    assert not any(d.get("kernel1") == "3" for d in drawn)
    assert not any(d["width"] == "32" and d["kernel0"] == "3" for d in drawn)
    assert len({tuple(sorted(d.items())) for d in drawn}) == 19
    # a member the data cannot take is drawn again; after FRESH_TRIES, one of the cover trains
    refuse = cover.fresh(space, net, members, keep=lambda m: False)
    cover = {graph_hash(m.graph) for m in members}
    assert {graph_hash(m.graph) for _ in range(10) for m in refuse(rng)} <= cover


def test_the_note_of_a_sampled_supernet_says_so(monkeypatch, one_thread):
    from cnnc.search.driver import Settings
    from cnnc.search.evaluators import cover
    from cnnc.search.evaluators import supernet as one_shot
    from cnnc.training.data import load_dataset

    monkeypatch.setattr(cover, "COVER_LIMIT", 5)
    settings = Settings(file=str(TINY), evaluator="supernet", epochs=1, device="cpu")
    evaluate = one_shot.supernet_evaluator(settings, load_dataset("digits"))
    assert evaluate.training.sampled and evaluate.training.fresh
    assert evaluate.note.startswith(
        "supernet: 35 architectures (a seeded sample, the space's largest and smallest among "
        "them), trained 23 steps (69 member passes, a new member a step, each decision uniform, "
        "sandwich rule)"
    )


def test_a_space_within_the_cover_limit_is_walked_whole():
    from cnnc.search.evaluators import cover
    from cnnc.search.space import load_space

    space = load_space(TINY)
    assert cover.walkable(space)
    assert [m.picks for m in cover.covered(space)] == [
        m.picks for m in cover.walk(space, 100, 60.0, keep=True)[1]
    ]


DEPTHWISE = """network dw(classes = 10) {
    input [1, 8, 8]
    c = choice(8, 16, name = "c")
    return in -> stem: Conv(c, 3, pad = same) -> dw: Conv(c, choice(3, 5, name = "k"), pad = same, groups = c)
              -> GlobalAvgPool -> Flatten -> fc: Linear(classes)
}
"""


def test_a_depthwise_convolution_of_several_widths_shares_one_sliced_weight(tmp_path):
    """`groups = c` is the depthwise layer's width: its 8- and 16-channel forms share the 16-channel
    weight (as the 1×1 convolutions beside it do), while another kernel is another weight."""
    space = tmp_path / "dw.cnn"
    space.write_text(DEPTHWISE)
    net = cnnc.load(space, supernet=True, seed=0)
    shapes = {name: tuple(m.weight.shape) for name, m in net.store.items()}
    assert shapes == {
        "stem:0": (16, 1, 3, 3),
        "dw:0": (16, 1, 3, 3),  # Conv2d(16, 16, 3, groups=16), the 8-channel form sliced
        "dw:1": (16, 1, 5, 5),
        "fc:0": (10, 16),
    }
    assert net.store["dw:0"].groups == 16
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))  # [3, 1, 8, 8]
    for member in ({"c": "8", "k": "3"}, {"c": "16", "k": "5"}, {"c": "8", "k": "5"}):
        graph = net.set_member(member)
        alone = to_step_module(graph, seed=5)
        alone.load_state_dict(net.member_state_dict(member))
        net.eval()
        alone.eval()
        with torch.no_grad():
            assert torch.allclose(net(x), alone(x.clone()), atol=1e-6)
    assert net.slices(net._graph({"c": "8", "k": "3"}))


def test_a_sampled_cover_holds_the_spaces_largest_and_smallest_member(monkeypatch):
    """Three random members of tiny.cnn miss both ends of the space; coordinate ascent and descent
    from the sample find the largest and the smallest member by parameters (each decision changes
    its own layers), so the sandwich rule trains BigNAS's biggest and smallest child."""
    from cnnc.compiler.analysis.summary import summarize
    from cnnc.search.evaluators import cover
    from cnnc.search.evaluators import supernet as one_shot
    from cnnc.search.space import load_space

    space = load_space(TINY)
    every = [summarize(m.graph, fields=False).params for m in cover.covered(space)]
    monkeypatch.setattr(cover, "COVER_LIMIT", 5)
    monkeypatch.setattr(cover, "COVER_SAMPLES", 3)
    sampled = cover.sample(space, 3, 0)
    assert max(summarize(m.graph, fields=False).params for m in sampled) < max(every)
    largest, smallest = one_shot.sandwich(cover.covered(space))
    assert summarize(largest.graph, fields=False).params == max(every) == 56_810
    assert summarize(smallest.graph, fields=False).params == min(every) == 1_970
    # a member `keep` refuses is never an end: the largest under 20,000 parameters instead
    small_only = cover.covered(space, keep=lambda m: summarize(m.graph).params < 20_000)
    kept = [summarize(m.graph).params for m in small_only if summarize(m.graph).params < 20_000]
    assert max(kept) == max(p for p in every if p < 20_000)


def test_a_cover_of_large_members_is_what_the_commands_budget_elaborates(monkeypatch):
    """Where 200 members would spend more nodes than a command may make (E0708), the cover is the
    members elaborated before the budget ran out, not an error; where none is, the error is the
    budget's, not "no valid member"."""
    from cnnc.compiler import limits
    from cnnc.search.evaluators import cover
    from cnnc.search.space import load_space

    monkeypatch.setattr(cover, "COVER_LIMIT", 5)
    space = load_space(TINY)
    per_member = len(cover.sample(space, 1, 0)[0].graph)
    monkeypatch.setattr(limits, "COMMAND_NODES", 30 * per_member)
    members = cover.covered(space)
    assert 5 <= len(members) < 36  # what fits in the budget (`extremes` stops when it is spent)
    monkeypatch.setattr(limits, "COMMAND_NODES", 1)  # not one member: the budget's own error
    with pytest.raises(CnncError, match="E0708"):
        cover.covered(space)


def test_retraining_interrupted_keeps_the_members_done_and_a_resume_retrains_the_rest(
    tmp_path, capsys
):
    import optuna

    from cnnc.search import driver
    from cnnc.search.retrain import recorded, retrain_top
    from cnnc.search.space import load_space

    out = tmp_path / "run"
    argv = ["search", TINY, "--evaluator", "proxy", "--device", "cpu", "--trials", "4"]
    assert run_cli([*argv, "--out", out], capsys)[0] == 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    space = load_space(TINY, input_shape=(1, 8, 8))
    calls, said, interrupt = [], [], [True]

    def retrain(graph, report_epoch):
        calls.append(graph)
        if len(calls) == 2 and interrupt and interrupt.pop():
            raise KeyboardInterrupt  # Ctrl-C during the second member, the first run
        return driver.Outcome(0.5 + 0.1 * len(calls), 1.0)

    with pytest.raises(KeyboardInterrupt):
        retrain_top(study, space, retrain, 3, out, said.append)
    (first,) = recorded(study.user_attrs["retrained"])
    assert recorded(study.user_attrs["retrained"]) == {first: 0.6}
    with open(out / "retrain.csv") as f:
        assert [r[:1] for r in csv.reader(f)][1:] == [[str(first)], ["kendall_tau"]]
    assert said == [f"retrained #{first} (1/3): stand-alone accuracy 0.6000"]
    calls.clear()
    figures, _ = retrain_top(study, space, retrain, 3, out, said.append)
    assert len(calls) == 2 and figures.numbers[0] == first and figures.standalone[0] == 0.6
    assert len(figures.standalone) == 3 and figures.tau is not None
    # search-report says it again, τ computed from the record and the trials' scores
    code, stdout, _ = run_cli(["search-report", out], capsys)
    assert code == 0 and f"note: {figures.note()}" in stdout
    # a crafted attribute is no earlier run's
    for crafted in ({"trials": [first], "standalone": [7.0]}, {"trials": "x"}, [1], None):
        assert recorded(crafted) == {}
