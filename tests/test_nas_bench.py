"""The tabular NAS benchmark of `bench/nas/`: the versioned table holds one valid result for each
distinct member of its space (as the project's own enumeration counts them), and the regret
arithmetic of the runner gives exact values on a tiny synthetic table."""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest
from conftest import ROOT

from cnnc.search.space import graph_hash, text_hash

NAS = ROOT / "bench" / "nas"


def bench_module(name: str):
    """A module of bench/nas (not a package), loaded from its file under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"nasbench_{name}", NAS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


table = bench_module("table")
regret = bench_module("regret")
Trial = regret.Trial


# ---------------------------------------------------------------------------------------------
# The table


@pytest.fixture(scope="module")
def built():
    return table.read(table.TABLE)


@pytest.fixture(scope="module")
def space_members():
    """(key, graph) of every member, as the project's walk (`search.space.walk`) meets them."""
    return table.space_members()


def test_the_table_has_one_entry_per_distinct_member_of_the_space(built, space_members):
    meta, members = built
    assert len({text_hash(graph) for _, graph in space_members}) == 729
    # up to isomorphism (the search's reuse): a skip edge makes two nodes one, so cells differing
    # only in which of them an edge reads are one architecture
    assert len({graph_hash(graph) for _, graph in space_members}) == 483
    assert len(space_members) == 729 and {key for key, _ in space_members} == set(members)
    assert meta["members"] == meta["distinct"] == meta["trained"] == 729


def test_every_entry_is_a_result(built):
    _, members = built
    for key, entry in members.items():
        assert 0.0 <= entry.accuracy <= 1.0, key
        assert entry.params > 0 and entry.macs > 0 and entry.seconds > 0, key
    assert max(e.accuracy for e in members.values()) > 0.9  # trained, not chance (0.1)


def test_the_table_records_the_space_it_was_built_from(built):
    import hashlib

    meta, _ = built
    assert meta["space_sha256"] == hashlib.sha256(table.SPACE.read_bytes()).hexdigest()


def test_the_key_is_nas_bench_201_notation():
    decisions = dict(zip(table.EDGES, ["Identity", "ReLUConvBN(c)", *["Identity"] * 4]))
    decisions["e3_2"] = "AvgPool(3, stride = 1, pad = 1)"
    assert table.key_of(decisions) == (
        "|skip_connect~0|+|nor_conv_3x3~0|skip_connect~1|"
        "+|skip_connect~0|skip_connect~1|avg_pool_3x3~2|"
    )


@pytest.mark.parametrize(
    "row, problem",
    [
        ([1.5, 10, 10, 1.0], "accuracy 1.5 is not in [0, 1]"),
        ([0.5, -1, 10, 1.0], "params and macs must be counts"),
        ([0.5, 10, 10, math.inf], "seconds inf is not a duration"),
        ([0.5, 10, 10], "expected [accuracy, params, macs, seconds]"),
    ],
)
def test_a_bad_entry_is_named(tmp_path, row, problem):
    path = tmp_path / "t.json"
    path.write_text('{"meta": {}, "members": {"k": %s}}' % str(row).replace("inf", "Infinity"))
    with pytest.raises(ValueError, match=r"^k: ") as info:
        table.read(path)
    assert problem in str(info.value)


# ---------------------------------------------------------------------------------------------
# Regret on a synthetic table: accuracies 0.9 (best), 0.8, 0.7, 0.5 of 4 members

BEST = 0.9
RUN_A = [Trial(0.5, 2.0), Trial(0.8, 3.0), Trial(0.9, 5.0)]  # finds the best at trial 3, 10 s
RUN_B = [Trial(0.7, 1.0), Trial(0.7, 0.0), Trial(0.8, 4.0)]  # never does


def test_regret_after_n_trials():
    assert [regret.regret_after_trials(RUN_A, BEST, n) for n in (1, 2, 3, 4)] == [
        pytest.approx(0.4),
        pytest.approx(0.1),
        0.0,
        None,
    ]
    assert regret.regret_after_trials(RUN_B, BEST, 2) == pytest.approx(0.2)


def test_regret_after_seconds_counts_only_trials_finished_within_the_budget():
    at = [regret.regret_after_seconds(RUN_A, BEST, s) for s in (1, 2, 4.9, 5, 9.9, 10, 99)]
    assert at == [None, pytest.approx(0.4), pytest.approx(0.4), pytest.approx(0.1)] + [
        pytest.approx(0.1),
        0.0,
        0.0,
    ]


def test_the_top_threshold_is_the_best_ceil_fraction_members():
    accuracies = [0.5 + i / 1000 for i in range(250)]  # ⌈1 % of 250⌉ = 3: the third best
    assert regret.top_threshold(accuracies, 0.01) == pytest.approx(0.747)
    assert regret.top_threshold([0.9, 0.8, 0.7, 0.5], 0.01) == 0.9  # at least one member


def test_time_to_reach_and_its_median_over_runs():
    assert regret.time_to_reach(RUN_A, 0.9) == (3, 10.0)
    assert regret.time_to_reach(RUN_B, 0.9) is None
    assert regret.time_to_reach(RUN_B, 0.7) == (1, 1.0)
    assert regret.median_time([RUN_A, RUN_B], 0.8) == (2.5, 5.0, 2)  # both at 5 s
    assert regret.median_time([RUN_A, RUN_B], 0.9) == (3, 10.0, 1)
    assert regret.median_time([RUN_B], 0.9) == (None, None, 0)


def test_kendall_tau_b():
    assert regret.kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert regret.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # one tie in x among 6 pairs: (5 − 0) / √(5 · 6)
    assert regret.kendall_tau([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))
    assert math.isnan(regret.kendall_tau([1, 1], [1, 2]))


def test_the_regret_tables_print_the_means_over_seeds(monkeypatch):
    monkeypatch.setattr(regret, "TRIALS_AT", (1, 3, 5))
    monkeypatch.setattr(regret, "SECONDS_AT", (2, 5))
    results = {"a": [RUN_A, RUN_B]}
    assert regret.regret_table(results, BEST, 0.8).splitlines() == [
        "method  seeds     @1    @3  @5  →top1% trials  reached",
        "------  -----  -----  ----  --  -------------  -------",
        "a           2  30.00  5.00   —            2.5      2/2",
    ]
    assert regret.time_table(results, BEST, 0.8).splitlines() == [
        "method   @2 s   @5 s  charged s  trained  →top1% s",
        "------  -----  -----  ---------  -------  --------",
        "a       30.00  10.00        7.5      2.5       5.0",
    ]


# ---------------------------------------------------------------------------------------------
# The runner drives a real study, each member looked up in the table


def test_a_sampler_run_charges_the_table_for_each_member_it_meets(
    monkeypatch, tmp_path, space_members
):
    monkeypatch.setitem(sys.modules, "table", table)  # what run.py imports by name
    monkeypatch.setitem(sys.modules, "regret", regret)
    run = bench_module("run")
    ranked = {key: table.Entry(i / 1000, 1, 1, 1.0 + i) for i, (key, _) in enumerate(space_members)}
    by_hash = {text_hash(graph): key for key, graph in space_members}
    bench = run.Bench(ranked, by_hash, 6, tmp_path)
    method = next(m for m in run.METHODS if m.name == "random")
    trials = run.lookup_search(bench, method, seed=0)
    study = load_study(tmp_path / "random-0")
    keys = [table.key_of(t.user_attrs["decisions"]) for t in study.trials]
    assert [t.accuracy for t in trials] == [ranked[k].accuracy for k in keys]
    first = {k: i for i, k in reversed(list(enumerate(keys)))}  # a member met again costs nothing
    charged = [ranked[k].seconds if first[k] == i else 0.0 for i, k in enumerate(keys)]
    assert [t.seconds for t in trials] == charged and len(trials) == 6


def load_study(folder):
    from cnnc.search.driver import load_study

    return load_study(f"sqlite:///{folder / 'study.db'}", None, read_only=True)


@pytest.fixture
def run(monkeypatch):
    monkeypatch.setitem(sys.modules, "table", table)  # what run.py imports by name
    monkeypatch.setitem(sys.modules, "regret", regret)
    return bench_module("run")


def test_every_method_runs_evolution_and_the_weight_sharing_ones_at_several_epochs(run):
    ready = [m.name for m in run.METHODS if run.available(m)]
    rules = [(r, e) for r in run.SUPERNET_RULES for e in run.RULE_EPOCHS]
    one_shot = (
        [f"supernet-{e}" for e in run.SUPERNET_EPOCHS]
        + [f"supernet-{r}-{e}" for r, e in rules]
        + [f"darts-{e}" for e in run.DARTS_EPOCHS]
    )
    assert ready == ["random", "tpe", "evolution", *one_shot]
    epochs = [*run.SUPERNET_EPOCHS, *(e for _, e in rules), *run.DARTS_EPOCHS]
    assert [m.epochs for m in run.METHODS[3:]] == epochs
    assert [m.rule for m in run.METHODS[3:] if m.rule] == ["uniform", "fair"]
    assert {m.charged for m in run.METHODS[3:]} == {"own"}


def test_the_supernet_is_charged_its_search_then_its_next_best_their_table_seconds(
    monkeypatch, tmp_path, space_members, run
):
    from cnnc.search.driver import Outcome
    from cnnc.search.evaluators import supernet

    keys = [key for key, _ in space_members[:12]]
    ranked = {k: table.Entry(0.5 + i / 100, 1, 1, 1.0 + i) for i, k in enumerate(keys)}
    # it scores them in the reverse of the table's order, but the member last in the walk best
    scores = {k: -i for i, k in enumerate(keys)} | {keys[-1]: 1}
    by_graph = {id(graph): key for key, graph in space_members[:12]}

    def fake(settings, data, rule):
        assert rule == supernet.RULE == "architecture"
        assert (settings.evaluator, settings.epochs, settings.seed) == ("supernet", 5, 3)
        assert (settings.lr, settings.batch_size, settings.device) == (0.05, 64, "cpu")
        return lambda graph, report: Outcome(scores[by_graph[id(graph)]], 0.0, None)

    monkeypatch.setattr(supernet, "supernet_evaluator", fake)
    monkeypatch.setattr(run, "digits", lambda: None)
    bench = run.Bench(ranked, {}, 100, tmp_path, tuple(space_members[:12]))
    method = next(m for m in run.METHODS if m.name == "supernet-5")
    trials = run.supernet_run(bench, method, seed=3)
    top = [keys[-1], *keys[:9]]  # its ten best
    assert [t.accuracy for t in trials] == [ranked[k].accuracy for k in top]
    assert [t.seconds for t in trials[1:]] == [ranked[k].seconds for k in top[1:]]
    (row,) = bench.one_shot
    assert trials[0].seconds == pytest.approx(row.train + row.score)
    assert (row.method, row.seed, row.picked) == ("supernet-5", 3, keys[-1])
    assert row.best_of == ranked[keys[-1]].accuracy  # the best of its ten, the table's 12th
    # 11 members in reverse order (55 discordant pairs), the 12th first (11 concordant)
    assert row.tau == pytest.approx((11 - 55) / 66)


def test_darts_is_one_trial_the_member_it_derives_charged_its_search(
    monkeypatch, tmp_path, space_members, run
):
    from cnnc.search.evaluators import darts

    key = space_members[7][0]
    ranked = {k: table.Entry(0.5, 1, 1, 1.0) for k, _ in space_members[:8]}
    ranked[key] = table.Entry(0.9, 1, 1, 1.0)
    labels = {name: label for label, name in table.OPS.items()}
    ops = [op for node in table.parse_key(key) for op, _ in node]

    def fake(settings, data):
        assert (settings.evaluator, settings.epochs) == ("darts", run.DARTS_EPOCHS[0])
        evaluate = lambda graph, report: None  # noqa: E731
        evaluate.derived = {edge: labels[op] for edge, op in zip(table.EDGES, ops)}
        return evaluate

    monkeypatch.setattr(darts, "darts_evaluator", fake)
    monkeypatch.setattr(run, "digits", lambda: None)
    bench = run.Bench(ranked, {}, 100, tmp_path, ())
    method = next(m for m in run.METHODS if m.name.startswith("darts-"))
    (trial,) = run.darts_run(bench, method, seed=0)
    (row,) = bench.one_shot
    assert (trial.accuracy, trial.seconds, row.picked, row.tau) == (0.9, row.train, key, None)


def test_a_method_whose_choice_is_not_in_the_tables_is_skipped_and_said_so(
    monkeypatch, capsys, run
):
    missing = run.Method("later", "evaluator", "no-such-evaluator", run.supernet_run, "own")
    monkeypatch.setattr(run, "METHODS", (missing,))
    opts = run.parse(["--seeds", "1"])
    assert run.run_methods(None, opts) == ({}, {})
    assert capsys.readouterr().out == (
        "skipped later: no evaluator `no-such-evaluator` in search/choices.py yet\n"
    )


# ---------------------------------------------------------------------------------------------
# Members that compute the same function


@pytest.fixture(scope="module")
def equivalence():
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "table", table)  # what equivalence.py imports by name
        yield bench_module("equivalence")


def cell(*ops: str) -> str:
    names = {"s": "skip_connect", "c": "nor_conv_3x3", "p": "avg_pool_3x3"}
    return table.key_of({e: label_of(names[op]) for e, op in zip(table.EDGES, ops)})


def label_of(op: str) -> str:
    return next(label for label, name in table.OPS.items() if name == op)


def test_a_skip_into_node_1_lets_the_ops_from_nodes_0_and_1_swap(equivalence):
    swaps = [cell(*"scpcps"), cell(*"spcpcs"), cell(*"scppcs")]  # node 2's, node 3's or both
    other = cell(*"scpccs")  # node 3 takes two convs, not a conv and a pool
    assert equivalence.classes([*swaps, other]) == [swaps, [other]]


def test_a_conv_reached_through_a_skip_is_not_a_conv_of_its_own(built, equivalence):
    # node 2 = conv(x0) + conv(x0) and node 3 = x0 + conv(x0) + node 2 in both, but in the first
    # node 3's conv is node 1's, also in node 2: 2 convs a cell against 3. NAS-Bench-201's text
    # form (`to_unique_str`) calls them one cell
    shared, separate = cell(*"ccssss"), cell(*"sccscs")
    assert equivalence.classes([shared, separate]) == [[shared], [separate]]
    _, members = built
    assert members[shared].params < members[separate].params


def test_equivalent_members_have_one_size_and_train_alike(built, equivalence):
    meta, members = built
    found = equivalence.classes(list(members))
    assert len(found) == meta["functions"] == 567
    for keys in found:
        assert len({members[k].params for k in keys}) == 1, keys
        accuracies = [members[k].accuracy for k in keys]
        assert max(accuracies) - min(accuracies) <= 1 / 359 + 1e-6, keys  # one validation image


@pytest.fixture
def bench(monkeypatch):
    """`bench(name)`: a bench/nas script, its sibling modules importable by name."""
    monkeypatch.setitem(sys.modules, "table", table)
    monkeypatch.setitem(sys.modules, "regret", regret)
    return bench_module


def test_a_remedy_changes_one_setting_for_its_run_and_puts_it_back(monkeypatch, bench):
    from cnnc.search.evaluators import supernet

    remedies = bench("remedies")
    keys = ["a", "b", "c"]
    members = {k: table.Entry(a, 1, 1, 1.0) for k, a in zip(keys, (0.9, 0.8, 0.7))}
    seen, drawing = [], supernet.drawing

    def trained(variant, seed):
        draw = supernet.drawing(["m"], "architecture")
        seen.append((supernet.RECALIBRATE, draw(remedies.random.Random(0))))
        return {"A": 0.1, "B": 0.3, "C": 0.2}.__getitem__  # b first, then c, then a

    monkeypatch.setattr(remedies, "trained", trained)
    variant = remedies.Variant("x", recalibrate=16, paths=3)
    row = remedies.run(variant, 0, [("a", "A"), ("b", "B"), ("c", "C")], members)
    assert seen == [(16, ["m", "m", "m"])]
    assert supernet.RECALIBRATE == 4 and supernet.drawing is drawing
    # scores b > c > a against a > b > c: one concordant pair of three, τ = (1 − 2) / 3
    assert row[:5] == ["x", "0", "-0.333", "10.00", "0.00"]
    assert len({v.name for v in remedies.VARIANTS}) == len(remedies.VARIANTS)


def test_the_ceiling_ranks_every_scorer_against_the_second_training(bench):
    ceiling = bench("ceiling")
    members = {
        "|skip_connect~0|": table.Entry(0.9, 30, 3, 1.0),
        "|nor_conv_3x3~0|": table.Entry(0.8, 20, 2, 1.0),
        "|avg_pool_3x3~0|": table.Entry(0.7, 10, 1, 1.0),
    }
    keys = list(members)
    again = {k: table.Entry(a, 1, 1, 1.0) for k, a in zip(keys, (0.7, 0.8, 0.9))}
    text = ceiling.second_table(members, again, keys, {"s": {k: i for i, k in enumerate(keys)}})
    head, _, values = text.splitlines()
    assert head.split() == ["table", "params", "MACs", "fewer", "skips", "s"]
    # the second training reverses the table (and params and MACs, which follow it); "fewer
    # skips" puts the skip cell last, as the second training does, and ties the two others;
    # `s` is the second training's order
    assert values.split() == ["-1.000", "-1.000", "-1.000", "0.816", "1.000"]
