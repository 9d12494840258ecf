"""search/evolution.py: regularised evolution's aging population, its tournament, one mutation per
child (conditional decisions included), its seeding; and `--sampler evolution` through the driver
and the command line."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
from conftest import ROOT, Quiet, by_params, run_cli

from cnnc.search import driver, evolution
from cnnc.search.evolution import MUTATED, PARENT, EvolutionSampler

TINY = ROOT / "zoo" / "spaces" / "tiny.cnn"


def fake(number: int, *values: float):
    return SimpleNamespace(number=number, values=list(values) or None)


def test_the_population_is_the_most_recent_members_and_the_oldest_leaves_first():
    trials = [fake(0, 0.99), fake(1, 0.10), fake(2, 0.20), fake(4, 0.30), fake(3)]
    assert [t.number for t in evolution.population(trials, 3)] == [1, 2, 4]  # #3 has no value
    # the best member (#0) aged out, not the worst (#1): aging, not elitism
    grown = [*trials, fake(5, 0.05)]
    assert [t.number for t in evolution.population(grown, 3)] == [2, 4, 5]
    assert [t.number for t in evolution.population(trials[:2], 3)] == [0, 1]


def test_the_parent_is_the_best_of_the_sample_or_one_of_its_pareto_front():
    import random

    rng = random.Random(0)
    sample = [fake(0, 0.5), fake(1, 0.9), fake(2, 0.9), fake(3, 0.1)]
    assert evolution.best(sample, ["MAXIMIZE"], rng).number == 2  # the youngest of a tie
    assert evolution.best(sample, ["MINIMIZE"], rng).number == 3
    pareto = [fake(0, 0.9, 500.0), fake(1, 0.8, 100.0), fake(2, 0.7, 600.0), fake(3, 0.95, 900.0)]
    drawn = {evolution.best(pareto, ["MAXIMIZE", "MINIMIZE"], rng).number for _ in range(60)}
    assert drawn == {0, 1, 3}  # #2 is dominated by #0


def tiny_space():
    return driver.space_for(driver.Settings(file=str(TINY)), (1, 8, 8), 10)


def evolve(seed: int, trials: int = 30, population: int = 5, sample_size: int = 2):
    """An Optuna study of tiny's members under evolution, scored by a fixed rule of the decisions."""
    space = tiny_space()
    score = {"8": 0.1, "16": 0.5, "32": 0.3, "3": 0.05, "5": 0.0, "1": 0.0, "2": 0.2}

    def objective(trial):
        member = space.member(driver.optuna_decider(trial))
        return sum(score.get(v, 0.01) for v in member.labels().values())

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=EvolutionSampler(population, sample_size, seed=seed)
    )
    study.optimize(objective, n_trials=trials)
    return study


def test_each_child_mutates_exactly_one_decision_of_a_parent_in_the_population():
    study = evolve(seed=1)
    trials = study.trials
    children = [t for t in trials if PARENT in t.system_attrs]
    assert len(children) == 25 and all(PARENT not in t.system_attrs for t in trials[:5])
    for child in children:
        parent = trials[child.system_attrs[PARENT]]
        assert child.number - 5 <= parent.number < child.number  # the 5 most recent
        mutated = child.system_attrs[MUTATED]
        common = child.params.keys() & parent.params.keys()
        changed = {k for k in common if child.params[k] != parent.params[k]}
        assert changed == {mutated}, (parent.params, child.params)
        if mutated != "depth":  # only a new depth adds or removes a decision (kernel1)
            assert child.params.keys() == parent.params.keys()
    depth_changes = [c for c in children if c.system_attrs[MUTATED] == "depth"]
    assert depth_changes and all(
        ("kernel1" in c.params) == (c.params["depth"] == 2) for c in depth_changes
    )


def test_the_same_seed_gives_the_same_trials_and_another_seed_others():
    first = [t.params for t in evolve(seed=3, trials=12).trials]
    assert first == [t.params for t in evolve(seed=3, trials=12).trials]
    assert first != [t.params for t in evolve(seed=4, trials=12).trials]


def test_a_sample_larger_than_the_population_is_refused():
    with pytest.raises(ValueError, match="sample_size <= population"):
        EvolutionSampler(population=3, sample_size=4)


def test_the_driver_runs_evolution_and_a_resume_goes_on_from_the_study(tmp_path):
    settings = driver.Settings(
        file=str(TINY), out=tmp_path, sampler="evolution", population=3, sample_size=2, trials=6
    )
    first = driver.run(settings, tiny_space(), by_params, Quiet(), num_classes=10)
    # --trials counts distinct architectures: a child met before is reused on top
    assert sum(r.status != "reused" for r in first.rows) == 6
    again = driver.run(
        driver.Settings(**{**settings.__dict__, "trials": 10}),
        tiny_space(),
        by_params,
        Quiet(),
        num_classes=10,
    )
    trials = again.study.trials
    assert sum(t.user_attrs.get("status") != "reused" for t in trials) == 10
    # the population came from the study
    assert all(PARENT in t.system_attrs for t in trials[len(first.rows) :])


def test_the_population_options_reach_the_samplers():
    space = tiny_space()
    nsga = driver.make_sampler(driver.Settings(file="t", sampler="nsga2", population=8), space, 0)
    assert nsga._population_size == 8
    assert (
        driver.make_sampler(driver.Settings(file="t", sampler="nsga2"), space, 0)._population_size
        == 50
    )
    evo = driver.make_sampler(
        driver.Settings(file="t", sampler="evolution", population=7, sample_size=3), space, 0
    )
    assert (evo.population, evo.sample_size) == (7, 3)
    assert (
        driver.make_sampler(driver.Settings(file="t", sampler="evolution"), space, 0).population
        == 20
    )


@pytest.mark.parametrize(
    "options, message",
    [
        (["--sampler", "evolution", "--population", "4", "--sample-size", "5"], "--sample-size"),
        (["--sampler", "evolution", "--sample-size", "0"], "--sample-size"),
        (["--sampler", "nsga2", "--population", "1"], "--population must be at least 2"),
        (["--sampler", "tpe", "--population", "10"], "--population is read by"),
        (["--sampler", "random", "--sample-size", "3"], "--sample-size is read by"),
    ],
)
def test_population_options_out_of_place_are_usage_errors(options, message, tmp_path, capsys):
    code, _, err = run_cli(["search", TINY, "--out", tmp_path, *options], capsys)
    assert code == 2 and message in err


def test_the_api_passes_the_population_options(tmp_path, monkeypatch):
    from cnnc import runs

    seen = {}

    def search(args):
        seen.update(vars(args))
        raise SystemExit(0)

    from cnnc.commands import search as command

    monkeypatch.setattr(command, "search", search)
    with pytest.raises(SystemExit):
        runs.search(TINY, sampler="evolution", population=6, sample_size=2)
    assert (seen["sampler"], seen["population"], seen["sample_size"]) == ("evolution", 6, 2)


def test_a_resume_draws_the_trials_one_run_would_and_every_child_is_its_parents_mutation(tmp_path):
    """Evolution's draws are seeded by (seed, trial number): a resume draws what one run draws
    (the resume's offset seed made them differ). After a reused child the next trial is evolution's
    own: a random member put in its place recorded a parent and a mutation it did not make."""
    base = {"file": str(TINY), "sampler": "evolution", "population": 4, "sample_size": 2}
    whole = driver.run(
        driver.Settings(**base, out=tmp_path / "a", trials=14), tiny_space(), by_params, Quiet(), 10
    ).study.trials
    driver.run(
        driver.Settings(**base, out=tmp_path / "b", trials=6), tiny_space(), by_params, Quiet(), 10
    )
    resumed = driver.run(
        driver.Settings(**base, out=tmp_path / "b", trials=14), tiny_space(), by_params, Quiet(), 10
    ).study.trials
    assert [t.params for t in resumed] == [t.params for t in whole]
    assert any(t.user_attrs.get("status") == "reused" for t in whole)
    for child in whole:
        if PARENT not in child.system_attrs:
            continue
        parent = whole[child.system_attrs[PARENT]].user_attrs["decisions"]
        mine = child.user_attrs["decisions"]
        differ = sorted(k for k in {*parent, *mine} if parent.get(k) != mine.get(k))
        mutated = child.system_attrs["evolution:mutated"]
        assert differ == [mutated] or mutated == "depth", (child.number, mutated, differ)
