"""search/space.py: decisions in order, exact sizes counted by hand, conditional and named choices,
bounded walks, and the statistics of sampled members. Pure Python: no torch, no optuna."""

from __future__ import annotations

import random

import pytest
from conftest import ROOT

from cnnc.dsl.diagnostics import CnncError
from cnnc.search.space import (
    decisions,
    fixed,
    graph_hash,
    load_space,
    over_budget,
    sample,
    stats,
    uniform,
    walk,
)

HEAD = "-> GlobalAvgPool -> Flatten -> Linear(10)"

# 3 widths × 3 kernels × 2 activations = 18 members, no conditions
FLAT = f"""
network flat {{
    input [3, 8, 8]
    return in -> Conv(choice(4, 8, 16), choice(1, 3, 5), pad = same) -> choice(ReLU, Sigmoid) {HEAD}
}}
"""

# 2 widths × (2 + 2² + 2³) per-iteration kernels = 28; the kernel of block i exists when depth > i
LOOP = f"""
block B(c, k) {{ return in -> conv: Conv(c, k, pad = same) -> ReLU }}
network loop {{
    input [3, 8, 8]
    c = choice(4, 8, name = "width")
    return in -> blocks: [B(c, choice(3, 5)) for i in range(choice(1, 2, 3, name = "depth"))] {HEAD}
}}
"""

# a choice inside an option: Conv (with 2 kernels) or a pool = 3 members
NESTED = f"""
network nested {{
    input [3, 8, 8]
    return in -> choice(Conv(8, choice(1, 3), pad = same), MaxPool(2, stride = 1)) {HEAD}
}}
"""

# one named decision used in two places: 2 members, and both convs always agree
SHARED = f"""
network shared {{
    input [3, 8, 8]
    return in -> a: Conv(8, choice(3, 5, name = "k"), pad = same) -> b: Conv(8, choice(3, 5, name = "k"), pad = same)
              {HEAD}
}}
"""

# kernel 9 does not fit an 8×8 input without padding (E0303): half the members are invalid
INVALID = f"""
network invalid {{
    input [3, 8, 8]
    return in -> Conv(choice(8, 64, name = "width"), choice(3, 9, name = "k")) {HEAD}
}}
"""


def space(text: str, name: str = "space.cnn"):
    return load_space(name, text=text)


@pytest.mark.parametrize(
    "text, members, distinct, invalid",
    [
        (FLAT, 18, 18, 0),
        (LOOP, 28, 28, 0),
        (NESTED, 3, 3, 0),
        (SHARED, 2, 2, 0),
        (INVALID, 4, 2, 2),
    ],
)
def test_sizes_counted_by_hand(text, members, distinct, invalid):
    size, _ = walk(space(text))
    assert size.complete and (size.members, size.distinct, size.invalid) == (
        members,
        distinct,
        invalid,
    )
    bad = f" ({invalid} members invalid)" if invalid else ""
    assert size.text() == f"{members} members, {distinct} distinct architectures{bad}"


def test_decisions_in_order_with_their_options():
    found = decisions(walk(space(FLAT))[1])
    assert [d.labels for d in found] == [("4", "8", "16"), ("1", "3", "5"), ("ReLU", "Sigmoid")]
    assert found[0].values == (4, 8, 16) and found[2].values is None  # layers are not plain values
    assert all(d.when is None for d in found)
    assert found[0].span.where() == "space.cnn:4:23"


def test_per_iteration_choices_are_conditional_on_the_depth():
    found = {d.name: d for d in decisions(walk(space(LOOP))[1])}
    kernels = sorted(n for n in found if n.startswith("network@"))
    assert [n[-5:] for n in kernels] == ["[i=0]", "[i=1]", "[i=2]"]
    assert found[kernels[0]].when is None
    assert found[kernels[1]].when == ("depth", ("2", "3"))
    assert found[kernels[2]].when == ("depth", ("3",))
    assert found["width"].when is None


def test_a_choice_inside_an_option_exists_only_under_it():
    found = decisions(walk(space(NESTED))[1])
    outer, inner = found
    assert inner.when == (outer.name, ("Conv(8, choice(1, 3), pad = same)",))


def test_a_named_choice_is_one_decision_wherever_it_appears():
    _, members = walk(space(SHARED), keep=True)
    for m in members:
        a, b = (n for n in m.graph.nodes_in_order() if n.name in ("a", "b"))
        assert a.args["kernel_size"] == b.args["kernel_size"]
        assert [name for name, _ in m.picks] == ["k"]


def test_a_name_with_two_option_lists_is_an_error():
    text = FLAT.replace("choice(4, 8, 16)", 'choice(4, 8, name = "k")').replace(
        "choice(1, 3, 5)", 'choice(1, 3, name = "k")'
    )
    with pytest.raises(CnncError) as info:
        walk(space(text))
    (d,) = info.value.diagnostics
    assert d.code == "E0503" and "named twice" in d.message and "4 | 8 vs 1 | 3" in d.message


def test_a_walk_over_budget_composes_the_count():
    size, members = walk(space(LOOP), limit=5)
    assert len(members) == 5 and not size.complete
    assert (size.members, size.exact, size.how, size.checked) == (28, True, "composed", 64)
    assert size.text().startswith("28 members (composed from independent decisions")


def test_a_walk_out_of_time_gives_a_lower_bound(monkeypatch):
    from cnnc.search import space as spaces

    monkeypatch.setattr(spaces, "COMPOSE_SECONDS", 0.0)  # no time to compose the count either
    size, members = walk(space(LOOP), seconds=0.0)
    assert members == [] and (size.exact, size.how, size.members) == (False, "bound", 1)
    assert size.text().startswith("≥ 1 members")


# `k` exists only when a = 2 and b = 2: 1 + 1 + 1 + 2 = 5 members, but every decision's first
# option hides it, so the composed tree (4) disagrees with the random members that meet it
DEPENDENT = f"""
network dependent {{
    input [3, 8, 8]
    a = choice(1, 2, name = "a")
    b = choice(1, 2, name = "b")
    k = if a == 2 and b == 2 then choice(3, 5, name = "k") else 1
    return in -> Conv(4 * a * b, k, pad = same) {HEAD}
}}
"""


def test_decisions_that_do_not_compose_give_an_estimate_with_its_error():
    from cnnc.search.counting import CHECKS, compose

    composed = compose(space(DEPENDENT), seconds=60)
    assert not composed.exact and composed.checked == 0
    # Knuth's estimator: 8 on a path through `k` (a quarter of them), 4 on the others
    with_k = round((composed.members - 4) / 4 * CHECKS)
    assert composed.members == (8 * with_k + 4 * (CHECKS - with_k)) / CHECKS
    assert 0 < composed.error < 1
    size, _ = walk(space(DEPENDENT), limit=1)
    assert size.text().startswith(f"≈ {composed.members:,.0f} ± 0 members (an estimate")
    assert walk(space(DEPENDENT))[0].members == 5  # the walk, where it ends, is exact


def test_the_mobilenet_space_is_counted_by_composing_its_stages():
    """Per block 2 expansions × 3 kernels × 2 SE = 12; a stage of 1, 2 or 3 blocks 12 + 12² + 12³
    = 1,884; three stages 1,884³ — too many to walk, counted with ~80 elaborations."""
    from cnnc.search.counting import compose

    composed = compose(load_space(ROOT / "zoo" / "spaces" / "mobilenet_space.cnn"), seconds=120)
    assert composed.exact and composed.members == (12 + 12**2 + 12**3) ** 3 == 6_687_175_104
    assert composed.elaborations < 200


def test_knuth_estimate_is_exact_for_a_product_space():
    assert stats(sample(space(FLAT), 10)).estimate == 18.0


def test_samples_are_seeded():
    a = [m.picks for m in sample(space(LOOP), 20, seed=3)]
    b = [m.picks for m in sample(space(LOOP), 20, seed=3)]
    assert a == b and len(set(a)) > 5


def test_statistics_count_invalid_and_over_budget_members():
    members = [
        space(INVALID).member(fixed({"width": w, "k": k})) for w in ("8", "64") for k in ("3", "9")
    ]
    s = stats(members, max_params=1_000)
    assert (s.samples, s.invalid, s.distinct) == (4, 2, 2)
    assert s.over_budget == 1  # width 64, kernel 3: 3·64·9 + 64 + 650 = 2,442 params
    assert s.params == (224 + 90, (314 + 2_442) // 2, 2_442)
    ((reason, count),) = s.reasons
    assert count == 2 and "E0303" in reason and "space.cnn:4:18" in reason


def test_over_budget_says_which_budget():
    assert over_budget(2_000, 10, 1_000, None) == "2,000 params > --max-params 1,000"
    assert over_budget(10, 2_000, None, 1_000) == "2,000 MACs > --max-macs 1,000"
    assert over_budget(10, 10, 1_000, 1_000) is None


def test_equal_architectures_have_equal_hashes():
    text = FLAT.replace("choice(ReLU, Sigmoid)", "ReLU").replace(
        "Conv(choice(4, 8, 16), choice(1, 3, 5), pad = same)",
        "choice(Conv(8, 3, pad = 1), Conv(8, 3, pad = same))",
    )
    size, members = walk(space(text), keep=True)
    assert (size.members, size.distinct) == (2, 1)
    assert graph_hash(members[0].graph) == graph_hash(members[1].graph)


@pytest.mark.parametrize(
    "file, members, named",
    [
        ("tiny.cnn", 36, ["width", "depth", "kernel0", "kernel1", "pool"]),
        ("resnet_space.cnn", 243, ["unit", "expansion", "width", "depth1", "depth2", "depth3"]),
    ],
)
def test_zoo_spaces_have_the_sizes_their_comments_claim(file, members, named):
    size, walked = walk(load_space(ROOT / "zoo" / "spaces" / file), seconds=60)
    assert size.exact and size.members == members
    assert [d.name for d in decisions(walked)] == named


@pytest.mark.parametrize(
    "file", ["tiny.cnn", "resnet_space.cnn", "mobilenet_space.cnn", "inception_space.cnn"]
)
def test_zoo_spaces_sample_valid_members_at_16(file):
    sp = load_space(ROOT / "zoo" / "spaces" / file, input_shape=(1, 16, 16))
    rng = random.Random(0)
    members = [sp.member(uniform(rng)) for _ in range(8)]
    assert all(m.ok for m in members), [m.invalid for m in members if not m.ok]
    assert all(m.graph.output_type.shape == (10,) for m in members)


def test_concrete_program_of_merges_on_the_input():
    from cnnc.api import elaborate_file
    from cnnc.search.concrete import same_layers, to_cnn

    text = """network m {
        input [3, 8, 8]
        return concat((in -> a: Conv(3, 3, pad = 1)) + in, in * in, in -> s: Softmax(dim = -1))
               -> d: Dropout(0.25) -> l: LeakyReLU(negative_slope = 0.2) -> b: BatchNorm(eps = 0.001)
    }"""
    graph = load_space("m.cnn", text=text).member(fixed({})).graph
    program = to_cnn(graph, "best")
    for line in (
        "x2 = x1 + in",
        "x3 = in * in",
        'x8 = concat(x2, x3, x4) -> label("d", Dropout(p = 0.25))',
    ):
        assert line in program
    rebuilt = elaborate_file("best.cnn", text=program)
    assert rebuilt.ok and same_layers(graph, rebuilt.graph) == []


BLOCKS = f"""
block B(c) {{
    k = choice(3, 5)
    both = Conv(choice(4, 8), choice(1, 3), pad = same)
    return in -> conv: Conv(c, k, pad = same) -> both
}}
network blocks {{
    input [3, 8, 8]
    return in -> stage1: [B(4) for i in range(2)] -> last: B(choice(4, 8)) {HEAD}
}}
"""


PATHS = """
block Unit(w) {
    return in -> Conv(choice([w, 2 * w]), 3, pad = choice(0, 1)) -> act: choice(ReLU, GELU)
              -> choice(Conv(w, 1), Conv(w, 3, pad = 1)) -> choice(MaxPool(1), AvgPool(1))
}
block Stage(n) {
    return in -> [Unit(8) for i in range(n)]
}
network paths {
    input [1, 8, 8]
    return in -> units: [Unit(4), Conv(4, choice(1, 3))] -> s: Stage(choice(1, 2))
              -> Conv(4, choice(1, 3)) -> Conv(4, 1, pad = choice(0, 1)) -> Flatten -> Linear(10)
}
"""


def test_an_unnamed_choice_is_named_from_the_path_of_the_layer_it_stands_in():
    member = space(PATHS).member(fixed({"s.n": "2"}))
    assert member.ok
    unit = ["conv.out_channels", "conv.padding", "act", "conv_1", "@4:61"]
    assert [name for name, _ in member.picks] == [
        "units.1.kernel_size",  # in a labelled list, made before it is applied: by its number
        *(f"units.0.{n}" if n[0] != "@" else f"units.0{n}" for n in unit),
        "s.n",  # a block call's argument: the block's parameter
        *(f"s.{i}.{n}" if n[0] != "@" else f"s.{i}{n}" for i in (0, 1) for n in unit),
        "conv.kernel_size",  # an op's argument: torch's name for it
        "conv_1.padding",  # `pad` is spelt `padding` in torch
    ]


@pytest.mark.parametrize("seed", range(6))
def test_a_path_name_names_a_layer_of_the_member_and_the_argument_it_took(seed):
    member = space(PATHS).member(uniform(random.Random(seed)))
    layers = {".".join(n.path): n for n in member.graph.nodes_in_order()}
    for point, (name, index) in zip(member.points, member.picks):
        if "@" in name:
            continue
        path, _, param = name.rpartition(".")
        if name in layers:  # a choice of layers, or a label's: the layer it put there
            option = point.options[index]
            assert layers[name].op == getattr(option, "func", option).id
        elif param in ("out_channels", "padding", "kernel_size"):
            value = point.values[index]
            assert layers[path].args[param] in (value, (value, value))
        else:
            assert (path, param) == ("s", "n")


def test_a_blocks_choices_are_named_from_its_label_path_and_let():
    names = [name for name, _ in walk(space(BLOCKS), limit=1, keep=True)[1][0].picks]
    assert names[:2] == ["stage1.0.k", "stage1.0@4:17"]  # a let with two choices: by place
    assert "stage1.1.k" in names and "last.k" in names
    assert "last.c" in names  # a block call's argument: the layer's path and the parameter
    assert names == [
        *("stage1.0.k", "stage1.0@4:17", "stage1.0@4:31"),
        *("stage1.1.k", "stage1.1@4:17", "stage1.1@4:31"),
        *("last.c", "last.k", "last@4:17", "last@4:31"),
    ]


def test_a_path_name_another_choice_took_first_falls_back_to_the_place():
    text = """
block U {
    k = choice(3, 5)
    return in -> Conv(4, k, pad = same) -> k: choice(ReLU, GELU)
}
network clash {
    input [1, 8, 8]
    return in -> u: U -> Flatten -> Linear(10)
}
"""
    member = space(text).member(fixed({}))
    assert [name for name, _ in member.picks] == ["u.k", "u@4:47"]


SEQUENCES = """
network seqs {
    input [1, 8, 8]
    return in -> a: [Conv(4, choice(1, 3)), ReLU, choice(MaxPool(1), AvgPool(1))]
              -> b: (Conv(4, 1) -> Conv(4, 3, pad = choice(0, 1)))
              -> c: [p: Conv(4, choice(1, 3)), [ReLU], Conv(4, choice(1, 3))]
              -> Flatten -> Linear(10)
}
"""


@pytest.mark.parametrize("seed", range(4))
def test_a_member_of_a_labelled_sequence_is_named_by_its_number_or_label(seed):
    member = space(SEQUENCES).member(uniform(random.Random(seed)))
    names = [name for name, _ in member.picks]
    assert names == [
        *("a.0.kernel_size", "a.2", "b.1.padding", "c.p.kernel_size"),
        "network@6:64",  # after a nested list, which shifts the numbers: its place
    ]
    layers = {".".join(n.path): n for n in member.graph.nodes_in_order()}
    picked = dict(member.picks)
    assert layers["a.2"].op == ("MaxPool", "AvgPool")[picked["a.2"]]
    assert layers["b.1"].args["padding"] == ((0, 0), (1, 1))[picked["b.1.padding"]]
    assert layers["c.p"].args["kernel_size"] == ((1, 1), (3, 3))[picked["c.p.kernel_size"]]


WIDE = """network wide(classes = 10) {
    input [1, 8, 8]
    w = choice(range(1, 5000), name = "w")
    f = choice([1, 2], name = "f")
    g = choice([1.0, 2.0], name = "g")
    return in -> Conv(8, 3) -> Flatten -> Linear(classes)
}
"""


def test_a_wide_choice_is_shown_once_and_its_members_share_the_labels():
    """A walk meets a choice of n options n times: each member holding its own n labels cost n²
    (`choice(range(1, 10000))` ran `cnnc check` out of 6 GB). Members share one tuple of labels
    and of values; equal numbers of other types (1 and 1.0) keep their own."""
    space = load_space("wide.cnn", text=WIDE)
    a, b = sample(space, 2, seed=1)
    assert a.points[0].labels is b.points[0].labels and len(a.points[0].labels) == 4999
    assert a.points[0].values is b.points[0].values
    assert a.points[1].labels == ("1", "2") and a.points[2].labels == ("1.0", "2.0")
    assert type(a.points[2].values[0]) is float


def test_counting_a_wide_decision_stops_at_its_deadline(monkeypatch):
    """Each option of a decision is an elaboration: the count checks its deadline between them
    (it elaborated all 4,999 options of `w` first, whatever the deadline)."""
    import time

    from cnnc.search import counting

    space = load_space("wide.cnn", text=WIDE)
    slow = counting._Tree.points

    def points(self, prefix):
        time.sleep(0.01)
        return slow(self, prefix)

    monkeypatch.setattr(counting._Tree, "points", points)
    tree = counting._Tree(space, deadline=time.perf_counter() + 0.1)
    assert tree.count() is False
    assert tree.elaborations < 30


def test_a_decisions_options_are_listed_elided_past_twelve():
    from cnnc.commands.space import options_text

    assert options_text([str(i) for i in range(1, 13)]) == " | ".join(map(str, range(1, 13)))
    assert options_text([str(i) for i in range(1, 5000)]) == (
        "1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | … | 4998 | 4999 (4,999 options)"
    )
