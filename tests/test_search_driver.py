"""search/driver.py: the Optuna decider, studies in a temporary SQLite file (resume, infeasible and
invalid members never evaluated, duplicate reuse, failures), best.cnn and trials.csv; one short study
with each real evaluator on digits."""

from __future__ import annotations

import csv
import math

import optuna
import pytest
from conftest import ROOT

from cnnc.api import elaborate_file
from cnnc.dsl.diagnostics import CnncError
from cnnc.search import driver, evaluate
from cnnc.search.concrete import same_layers
from cnnc.search.space import graph_hash, load_space

TINY = ROOT / "zoo" / "spaces" / "tiny.cnn"
HEAD = "-> GlobalAvgPool -> Flatten -> fc: Linear(classes)"


class Quiet:
    def started(self, rows, notes): ...
    def trial_started(self, number): ...
    def epoch(self, number, epoch, accuracy): ...
    def finished(self, row): ...


class Counting:
    """A fake evaluator: a score from the parameter count; remembers every graph it was given."""

    def __init__(self, fail_when=None):
        self.graphs = []
        self.fail_when = fail_when

    def __call__(self, graph, report):
        from cnnc.compiler.analysis.summary import summarize

        self.graphs.append(graph)
        params = summarize(graph).params
        if self.fail_when and self.fail_when(params):
            return driver.Outcome(math.nan, 0.01, "loss became NaN at epoch 1")
        report(1, 0.5)
        return driver.Outcome(1 - 1 / math.log(params), 0.01)


def study(tmp_path, file=TINY, evaluator=None, **options):
    settings = driver.Settings(file=str(file), out=tmp_path / "out", **options)
    space = driver.space_for(settings, (1, 8, 8), 10)
    return driver.run(settings, space, evaluator or Counting(), Quiet(), num_classes=10)


def write(tmp_path, name: str, body: str):
    path = tmp_path / name
    path.write_text(f"network {path.stem}(classes = 10) {{\n    input [1, 8, 8]\n    {body}\n}}\n")
    return path


def statuses(result) -> list[str]:
    return [r.status for r in result.rows]


@pytest.mark.parametrize(
    "values, expected",
    [
        ((16, 32, 48, 64), (16, 64, 16)),
        ((3, 5, 7), (3, 7, 2)),
        ((1, 2), (1, 2, 1)),
        ((8, 16, 32), None),  # not a progression
        ((7, 5, 3), None),  # decreasing: keep the written order as categories
        ((False, True), None),
        ((1.0, 2.0), None),
        ((3,), None),
        (None, None),
    ],
)
def test_int_range(values, expected):
    assert driver.int_range(values) == expected


def test_optuna_decider_maps_progressions_to_ints_and_the_rest_to_labels():
    space = load_space(
        "s.cnn",
        text=f"""network s(classes = 10) {{
        input [1, 8, 8]
        return in -> c: Conv(choice(range(16, 65, 16), name = "w"), 3) -> choice(ReLU, Sigmoid, name = "act")
                  -> d: Conv(8, choice(8, 16, 32, name = "k"), pad = same) {HEAD}
    }}""",
    )
    trial = optuna.create_study().ask()
    member = space.member(driver.optuna_decider(trial))
    assert trial.distributions["w"] == optuna.distributions.IntDistribution(16, 64, step=16)
    assert trial.distributions["act"] == optuna.distributions.CategoricalDistribution(
        ("ReLU", "Sigmoid")
    )
    assert trial.distributions["k"] == optuna.distributions.CategoricalDistribution(
        ("8", "16", "32")
    )
    fixed = space.member(
        driver.optuna_decider(optuna.trial.FixedTrial({"w": 48, "act": "Sigmoid", "k": "16"}))
    )
    assert fixed.labels() == {"w": "48", "act": "Sigmoid", "k": "16"}
    conv = next(n for n in fixed.graph.nodes_in_order() if n.name == "c")
    assert conv.args["out_channels"] == 48 and member.ok


def test_resume_continues_the_count_in_the_same_database(tmp_path):
    first = study(tmp_path, trials=2)
    assert len(first.rows) == 2
    again = study(tmp_path, trials=4)
    assert [r.number for r in again.rows] == [0, 1, 2, 3]
    assert (tmp_path / "out" / "study.db").is_file()
    # a resume draws new members: the sampler is seeded by the trials already held
    assert again.rows[2].decisions != first.rows[0].decisions


def test_infeasible_members_are_recorded_and_never_evaluated(tmp_path):
    evaluator = Counting()
    result = study(tmp_path, trials=10, sampler="random", max_params=6_000, evaluator=evaluator)
    infeasible = [r for r in result.rows if r.status == "infeasible"]
    assert infeasible and all(
        r.state == "PRUNED" and "> --max-params 6,000" in r.reason for r in infeasible
    )
    assert all(r.params > 6_000 for r in infeasible)
    from cnnc.compiler.analysis.summary import summarize

    assert all(summarize(g).params <= 6_000 for g in evaluator.graphs)
    assert len(evaluator.graphs) == sum(r.status == "trained" for r in result.rows)


def test_shape_invalid_members_are_recorded_with_the_headline(tmp_path):
    file = write(tmp_path, "bad.cnn", f'return in -> Conv(8, choice(3, 9, name = "k")) {HEAD}')
    evaluator = Counting()
    result = study(tmp_path, file=file, trials=2, sampler="grid", evaluator=evaluator)
    assert sorted(statuses(result)) == ["invalid", "trained"]
    bad = next(r for r in result.rows if r.status == "invalid")
    assert (
        bad.decisions == {"k": "9"}
        and "error[E0303]" in bad.reason
        and "bad.cnn:3:18" in bad.reason
    )
    assert len(evaluator.graphs) == 1


def test_an_architecture_met_twice_reuses_its_result(tmp_path):
    file = write(
        tmp_path,
        "dup.cnn",
        f'return in -> choice(Conv(8, 3, pad = 1), Conv(8, 3, pad = same), name = "conv") {HEAD}',
    )
    evaluator = Counting()
    result = study(tmp_path, file=file, trials=2, sampler="grid", evaluator=evaluator)
    first, second = result.rows
    assert len(evaluator.graphs) == 1
    assert (second.status, second.reused_from, second.values) == (
        "reused",
        first.number,
        first.values,
    )
    assert first.hash == second.hash == graph_hash(evaluator.graphs[0])
    assert first.decisions != second.decisions


def test_failed_runs_are_recorded_and_the_study_goes_on(tmp_path):
    result = study(
        tmp_path, trials=6, sampler="random", evaluator=Counting(fail_when=lambda p: p > 10_000)
    )
    failed = [r for r in result.rows if r.status == "failed"]
    assert failed and all(
        r.state == "FAIL" and r.reason == "loss became NaN at epoch 1" for r in failed
    )
    assert len(result.rows) == 6


def test_objectives_of_a_study_cannot_change_on_resume(tmp_path):
    study(tmp_path, trials=1)
    with pytest.raises(CnncError) as info:
        study(tmp_path, trials=2, objectives=("accuracy", "params"))
    assert info.value.diagnostics[0].code == "E0604"


def test_two_objectives_give_a_pareto_front(tmp_path):
    result = study(tmp_path, trials=8, sampler="nsga2", objectives=("accuracy", "params"))
    front = result.best
    assert front and all(len(r.values) == 2 and r.values[1] == r.params for r in front)
    # the fake score grows with params: the front is every complete architecture, best score first
    assert [r.values[0] for r in front] == sorted((r.values[0] for r in front), reverse=True)
    assert (tmp_path / "out" / "pareto.png").is_file()


def test_best_cnn_and_trials_csv(tmp_path):
    result = study(tmp_path, trials=5)
    out = tmp_path / "out"
    best = result.best[0]
    rebuilt = elaborate_file(out / "best.cnn")
    original = driver.space_for(driver.Settings(file=str(TINY)), (1, 8, 8), 10)
    from cnnc.search.space import fixed

    graph = original.member(fixed(best.decisions)).graph
    assert rebuilt.ok and same_layers(graph, rebuilt.graph) == []
    assert graph_hash(rebuilt.graph) == best.hash  # no merges in tiny: even the text dump is equal
    from cnnc.compiler.lower.fx import to_graph_module

    a, b = (
        to_graph_module(graph, seed=0).state_dict(),
        to_graph_module(rebuilt.graph, seed=0).state_dict(),
    )
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["number"]) for r in rows] == [0, 1, 2, 3, 4]
    assert {"state", "values", "params", "macs", "hash", "reused", "reason", "decisions"} <= set(
        rows[0]
    )
    assert rows[best.number]["hash"] == best.hash and "width=" in rows[0]["decisions"]
    assert (out / "history.png").is_file()


def test_best_cnn_of_a_space_with_merges_rebuilds_the_same_layers(tmp_path):
    result = study(
        tmp_path,
        file=ROOT / "zoo" / "spaces" / "inception_space.cnn",
        trials=3,
        sampler="random",
        size=16,
    )
    assert result.best
    text = (tmp_path / "out" / "best.cnn").read_text()
    assert "concat(" in text and "decisions:" in text


@pytest.fixture(scope="module")
def digits():
    from cnnc.training.data import load_dataset

    return load_dataset("digits")


def test_a_real_proxy_study(tmp_path, digits, one_thread):
    settings = driver.Settings(
        file=str(TINY), out=tmp_path, trials=3, evaluator="proxy", device="cpu"
    )
    space = driver.space_for(settings, digits.input_shape, digits.num_classes)
    result = driver.run(
        settings, space, evaluate.proxy_evaluator(settings, digits), Quiet(), digits.num_classes
    )
    scored = [r for r in result.rows if r.status == "scored"]
    assert scored and all(set(r.proxies) == {"synflow", "naswot", "grad_norm"} for r in scored)
    assert all(r.values[0] == r.proxies["naswot"] for r in scored)


def test_a_real_training_study_on_digits(tmp_path, digits, one_thread):
    settings = driver.Settings(
        file=str(TINY), out=tmp_path, trials=2, epochs=1, device="cpu", pruner="none"
    )
    space = driver.space_for(settings, digits.input_shape, digits.num_classes)
    result = driver.run(
        settings, space, evaluate.train_evaluator(settings, digits), Quiet(), digits.num_classes
    )
    assert [s for s in statuses(result) if s != "reused"] == ["trained", "trained"]
    assert result.best[0].values[0] > 0.5


def test_options_that_depend_on_another_decision_get_a_parameter_per_option_list():
    space = load_space(
        "s.cnn",
        text=f"""network s(classes = 10) {{
        input [1, 8, 8]
        a = choice(false, true, name = "a")
        return in -> Conv(choice(if a then [8, 16, 32] else [8, 24], name = "w"), 3) {HEAD}
    }}""",
    )
    s = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(8):
        trial = s.ask()
        assert space.member(driver.optuna_decider(trial)).ok
        s.tell(trial, 0.5)
    names = {name for t in s.trials for name in t.params}
    assert names == {"a", "w", "w{8|16|32}"} or names == {"a", "w", "w{8|24}"}


def test_changes_of_settings_on_resume_are_noted(tmp_path):
    study(tmp_path, trials=1)
    settings = driver.Settings(file=str(TINY), out=tmp_path / "out", epochs=3)
    opened = driver.open_study(settings, driver.space_for(settings, (1, 8, 8), 10))
    assert driver.changes(opened, settings) == [
        "the study was made with epochs = 2, this run has 3"
    ]


@pytest.mark.parametrize(
    "options, names",
    [
        ({}, ["accuracy"]),
        (
            {"evaluator": "proxy", "proxy": "synflow", "objectives": ("accuracy", "params")},
            ["synflow", "params"],
        ),
    ],
)
def test_a_study_names_its_objectives_for_optuna_dashboard(tmp_path, options, names):
    settings = driver.Settings(file=str(TINY), out=tmp_path / "out", trials=1, **options)
    space = driver.space_for(settings, (1, 8, 8), 10)
    result = driver.run(settings, space, Counting(), Quiet(), num_classes=10)
    assert result.study.metric_names == names


def test_a_study_made_without_objective_names_gets_them_on_resume(tmp_path):
    first = study(tmp_path, trials=1).study
    first._storage.set_study_system_attr(
        first._study_id, "study:metric_names", None
    )  # as an older cnnc left it
    assert optuna.load_study(study_name="tiny", storage=first._storage).metric_names is None
    assert study(tmp_path, trials=2).study.metric_names == ["accuracy"]


# three branches summed, each one of six convolutions: 216 members, but a sum does not care which
# branch holds which op, so 56 architectures (multisets of 3 of 6) — duplicates are common
SYMMETRIC = (
    "return sum([in -> choice(Conv(4, 1), Conv(4, 3, pad = 1), Conv(4, 5, pad = 2), "
    "Conv(4, 3, pad = 2, dilation = 2), Conv(4, [1, 3], pad = [0, 1]), Conv(4, [3, 1], pad = [1, 0])) "
    "for i in range(3)]) " + HEAD
)


def test_trials_count_distinct_architectures_and_duplicates_reuse_without_counting(tmp_path):
    from cnnc.search.architecture import Architectures

    file = write(tmp_path, "symmetric.cnn", SYMMETRIC)
    evaluator = Counting()
    result = study(tmp_path, file=file, trials=30, sampler="tpe", evaluator=evaluator)
    assert result.stopped == "done"
    seen = Architectures()
    assert all(seen.add(g)[1] for g in evaluator.graphs)  # no architecture evaluated twice
    assert seen.count == len(evaluator.graphs) == 30
    reused = [r for r in result.rows if r.status == "reused"]
    assert reused and len(result.rows) == 30 + len(reused)
    first = {r.number: r for r in result.rows}
    assert all(r.values == first[r.reused_from].values for r in reused)
    with open(tmp_path / "out" / "trials.csv") as f:
        assert sum(row["status"] == "reused" for row in csv.DictReader(f)) == len(reused)


def test_a_space_with_fewer_architectures_than_trials_stops_exhausted(tmp_path, monkeypatch):
    from cnnc.search import worker

    monkeypatch.setattr(worker, "EXHAUSTED_AFTER", 20)
    file = write(
        tmp_path,
        "two.cnn",
        f"return in -> Conv(4, 1) -> choice(ReLU, ReLU6, ReLU6 -> Identity) {HEAD}",
    )
    result = study(tmp_path, file=file, trials=10, sampler="random")
    assert result.stopped == "exhausted"
    assert sum(r.status == "trained" for r in result.rows) == 2


def test_a_shared_key_is_confirmed_before_a_result_is_reused(tmp_path, monkeypatch):
    """Every member given one key (a collision everywhere): only isomorphic ones are reused."""
    from cnnc.search import results
    from cnnc.search.architecture import Architectures

    for module in (driver, results):  # the trials' keys, and best.cnn's check of its trial's
        monkeypatch.setattr(module, "graph_hash", lambda graph: "0" * 32)
    evaluator = Counting()
    file = write(tmp_path, "symmetric.cnn", SYMMETRIC)
    result = study(tmp_path, file=file, trials=10, sampler="random", evaluator=evaluator)
    seen = Architectures()
    assert all(seen.add(g)[1] for g in evaluator.graphs) and seen.count == 10
    assert sum(r.status == "trained" for r in result.rows) == 10


DRIVER_KEYS = {"decisions", "hash", "params", "macs", "seconds", "history", "proxies", "status"}
DRIVER_KEYS |= {"reason", "reused_from", "infeasible"}  # the attributes the driver writes


def attribute_transactions(run) -> dict[tuple[int, str], int]:
    """{(trial id, key): transactions}, counting each storage commit that wrote the driver's
    attributes once per trial (SQLAlchemy's events: what reaches the database)."""
    import sqlalchemy

    written: set[tuple[int, str]] = set()  # in the transaction now open
    commits: dict[int, int] = {}

    def execute(conn, cursor, statement, parameters, context, many):
        if (
            statement.startswith("INSERT INTO trial_user_attributes")
            and parameters[1] in DRIVER_KEYS
        ):
            written.add((parameters[0], parameters[1]))

    def commit(conn):
        for trial_id in {t for t, _ in written}:
            commits[trial_id] = commits.get(trial_id, 0) + 1
        written.clear()

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", execute)
    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "commit", commit)
    try:
        result = run()
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", execute)
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "commit", commit)
    return result, commits


def test_a_trial_writes_its_attributes_in_one_transaction_per_step(tmp_path):
    # the structural reason a one-shot search of many cheap trials is quick: each step of a trial
    # (the member checked; its result, or the result it reuses) is one storage transaction, not
    # one per attribute (7 for an evaluated trial and for a reused one, before)
    file = write(
        tmp_path,
        "steps.cnn",
        "return in -> choice(Conv(8, 3, pad = 1), Conv(8, 3, pad = same), Conv(8, 9), "
        f'Conv(64, 3, pad = 1), name = "conv") {HEAD}',
    )
    result, commits = attribute_transactions(
        lambda: study(tmp_path, file=file, trials=4, sampler="grid", max_params=1_000)
    )
    by_status = {}
    for row, trial in zip(result.rows, result.study.trials):
        by_status.setdefault(row.status, set()).add(commits[trial._trial_id])
    assert by_status == {"trained": {2}, "reused": {2}, "invalid": {1}, "infeasible": {1}}


def test_the_pareto_plots_axes_carry_their_units(tmp_path, monkeypatch):
    import optuna.visualization.matplotlib as vis

    from cnnc.search import report

    asked = []

    def pareto(study, target_names):
        asked.append(target_names)
        raise ValueError("not drawn here")

    monkeypatch.setattr(vis, "plot_pareto_front", pareto)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for values in ([0.5, 3.0], [0.75, 4.0]):
        study.add_trial(optuna.trial.create_trial(values=values))
    report.plot_study(study, ("accuracy", "latency"), tmp_path)
    assert asked == [["accuracy", "latency (ms)"]]
