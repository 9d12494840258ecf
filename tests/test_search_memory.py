"""A one-shot search's study in memory (`storage.in_memory`, `write_back`, `driver.run`) and the
sampler a worker turns to after a reused proposal (`search/explore.py`)."""

from __future__ import annotations

import datetime
import math
import random
import sqlite3
import warnings

import optuna
import pytest
from conftest import ROOT, Quiet, run_cli
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from cnnc.search import driver
from cnnc.search import storage as stores
from cnnc.search.explore import Unproposed, suggestions
from cnnc.search.space import load_space, walk

TINY = ROOT / "zoo" / "spaces" / "tiny.cnn"
START = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000)
DONE = START + datetime.timedelta(seconds=7)


def sqlite_study(path, directions=("maximize",)):
    storage = stores.open_storage(f"sqlite:///{path}", 60)
    return optuna.create_study(storage=storage, study_name="s", directions=list(directions))


def some_trials() -> list:
    """Trials of every state a search writes back, with inf, intermediate and system values."""
    k = CategoricalDistribution(["3", "5"])
    width = IntDistribution(8, 32, step=8)
    lr = FloatDistribution(1e-3, 1.0, log=True)
    return [
        create_trial(
            state=TrialState.COMPLETE,
            values=[0.5, math.inf],
            params={"k": "5", "width": 16, "lr": 0.01},
            distributions={"k": k, "width": width, "lr": lr},
            user_attrs={"status": "trained", "decisions": {"k": "5", "width": "16"}, "n": 3},
            system_attrs={"cnnc:parent": 0},
            intermediate_values={0: 0.25, 1: -math.inf},
        ),
        create_trial(
            state=TrialState.PRUNED,
            params={"k": "3"},
            distributions={"k": k},
            user_attrs={"status": "invalid", "infeasible": "too large"},
        ),
        create_trial(state=TrialState.FAIL, user_attrs={"status": "failed", "reason": "x"}),
        create_trial(state=TrialState.WAITING, system_attrs={"fixed_params": {"k": "3"}}),
    ]


def fields(trial) -> tuple:
    return (
        trial.number,
        trial.state,
        trial.values,
        trial.params,
        trial.distributions,
        trial.user_attrs,
        trial.system_attrs,
        trial.intermediate_values,
    )


def test_trials_written_together_read_back_as_optunas_own_add_writes_them(tmp_path):
    trials = some_trials()
    for t in trials[:3]:
        t.datetime_start, t.datetime_complete = START, DONE
    ours, theirs = (
        sqlite_study(tmp_path / f"{n}.db", ("maximize", "minimize")) for n in ("a", "b")
    )
    for study in (ours, theirs):  # a trial held before: the written ones are numbered after it
        study.add_trial(create_trial(state=TrialState.FAIL))
    assert stores._add_together(ours, trials)
    theirs.add_trials(trials)
    again = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'a.db'}")
    for study in (ours, again):
        got, want = study.get_trials(), theirs.get_trials()
        assert [fields(t) for t in got] == [fields(t) for t in want]
        assert [t.number for t in got] == [0, 1, 2, 3, 4]
        assert [(t.datetime_start, t.datetime_complete) for t in got[1:4]] == [(START, DONE)] * 3
    # a queued trial written back is the next one a worker takes, with its fixed parameters
    trial = again.ask()
    assert trial.number == 4 and trial.suggest_categorical("k", ["3", "5"]) == "3"


def test_the_memory_copy_holds_the_studys_trials_and_writes_back_only_what_it_gained(tmp_path):
    study = sqlite_study(tmp_path / "s.db")
    study.set_user_attr("space", "fingerprint")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["accuracy"])
    first = some_trials()[0]
    first.values = [0.5]
    study.add_trial(first)
    memory = stores.in_memory(study)
    assert memory.user_attrs == {"space": "fingerprint"} and memory.metric_names == ["accuracy"]
    assert [fields(t) for t in memory.trials] == [fields(t) for t in study.trials]
    memory.tell(memory.ask(), 0.75)
    running = memory.ask()  # cut off by an error: not written
    assert stores.write_back(memory, study, 1) == 1
    assert [(t.number, t.values) for t in study.trials] == [(0, [0.5]), (1, [0.75])]
    assert running.number == 2 and len(study.trials) == 2


def test_a_one_shot_search_writes_its_study_to_the_storage_and_resumes_from_it(
    tmp_path, capsys, one_thread
):
    out = tmp_path / "run"
    argv = ["search", TINY, "--evaluator", "supernet", "--device", "cpu", "--out", out]
    code, _, err = run_cli([*argv, "--trials", "5"], capsys)
    assert code == 0, err
    stored = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    numbers = [t.number for t in stored.trials]
    assert numbers == list(range(len(numbers))) and len(numbers) >= 5
    trained = [t for t in stored.trials if t.user_attrs.get("status") == "scored"]
    assert len(trained) == 5 and all(t.state == TrialState.COMPLETE for t in trained)
    assert all("decisions" in t.user_attrs and "hash" in t.user_attrs for t in trained)
    with open(out / "trials.csv") as f:
        assert len(f.read().splitlines()) == len(numbers) + 1  # a header, then every stored trial
    code, _, err = run_cli([*argv, "--trials", "8"], capsys)
    assert code == 0, err
    assert "trial 8/8 done" in err  # reused trials are not counted, their numbers notwithstanding
    stored = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    again = [t for t in stored.trials if t.user_attrs.get("status") == "scored"]
    assert len(again) == 8 and again[:5] == trained
    assert len({t.user_attrs["hash"] for t in again}) == 8


class Stop(BaseException):
    """What stops a run part-way in the test below (not an Exception: no trial catches it)."""


def test_trials_scored_before_an_error_stopped_the_run_are_written_back(tmp_path, monkeypatch):
    space = load_space(TINY, input_shape=(1, 8, 8))
    settings = driver.Settings(file=str(TINY), out=tmp_path / "run", trials=6, evaluator="supernet")
    scored = []

    def evaluate(graph, report_epoch):
        if len(scored) == 3:
            raise Stop
        scored.append(graph)
        return driver.Outcome(0.5 + len(scored) / 100, 0.0, None, {}, ())

    with pytest.raises(Stop):
        driver.run(settings, space, evaluate, Quiet(), 10)
    with sqlite3.connect(tmp_path / "run" / "study.db") as db:
        states = [s for (s,) in db.execute("SELECT state FROM trials ORDER BY number")]
    assert states[:3] == ["COMPLETE"] * 3 and "RUNNING" not in states


def test_a_study_with_unfinished_trials_or_a_named_storage_is_worked_on_in_place(tmp_path):
    study = sqlite_study(tmp_path / "s.db")
    one_shot = driver.Settings(file=str(TINY), out=tmp_path, evaluator="supernet")
    assert driver.in_memory(one_shot, study.trials)
    named = driver.Settings(
        file=str(TINY), out=tmp_path, evaluator="supernet", storage=f"sqlite:///{tmp_path}/s.db"
    )
    assert not driver.in_memory(named, study.trials)
    assert not driver.in_memory(driver.Settings(file=str(TINY), out=tmp_path), study.trials)
    study.enqueue_trial({"k": "3"})  # queued again after a stopped run: claimed trial by trial
    assert not driver.in_memory(one_shot, study.trials)


def test_after_a_reuse_the_next_member_is_one_no_trial_has_proposed():
    space = load_space(TINY, input_shape=(1, 8, 8))
    _, members = walk(space)
    assert len(members) == 36
    study = optuna.create_study()
    for m in random.Random(0).sample(members, 35):
        study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"decisions": m.labels()}))
    known = {frozenset(t.user_attrs["decisions"].items()) for t in study.trials}
    (left,) = [m for m in members if frozenset(m.labels().items()) not in known]
    explorer = Unproposed(space, seed=0)
    picked = explorer.choose(study, None)  # TRIES draws; after a miss, one a call
    calls = 1
    while not picked and calls < 500:
        picked, calls = explorer.choose(study, None), calls + 1
    assert picked == suggestions(left)
    assert picked["depth"] == int(left.labels()["depth"])  # an int range's value, not its label
    assert picked["width"] == left.labels()["width"]
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"decisions": left.labels()}))
    assert explorer.choose(study, None) == {}  # all 36 proposed: random, and one try next time
    assert explorer.failed_at == 36


def test_the_explorers_draws_are_not_the_study_samplers_under_the_same_seed():
    space = load_space(TINY, input_shape=(1, 8, 8))
    tpe = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    explorer = optuna.create_study(sampler=Unproposed(space, seed=0))
    firsts = []
    for study in (tpe, explorer):
        trial = study.ask()
        member = space.member(driver.optuna_decider(trial))
        firsts.append(member.labels())
    assert firsts[0] != firsts[1]


@pytest.mark.parametrize(
    "craft, said",
    [
        ("UPDATE trial_values SET value = '=HYPERLINK(\"x\")'", "trial 0's values are"),
        ("UPDATE trials SET number = 'yesterday' WHERE trial_id = 2", "cannot be read"),
        ("DELETE FROM trial_values WHERE trial_id = 1", "values should be set"),  # COMPLETE
        (  # a second value in a study of one objective (optuna refused it when adding: exit 70)
            "INSERT INTO trial_values (trial_id, objective, value, value_type) "
            "SELECT trial_id, 1, value, value_type FROM trial_values WHERE trial_id = 1",
            "trial 0 has 2 values for 1 objectives",
        ),
    ],
)
def test_a_resumed_search_refuses_a_study_with_a_damaged_trial(tmp_path, capsys, craft, said):
    out = tmp_path / "run"
    argv = ["search", TINY, "--evaluator", "proxy", "--device", "cpu", "--out", out]
    assert run_cli([*argv, "--trials", "2"], capsys)[0] == 0
    with sqlite3.connect(out / "study.db") as db:
        db.execute(craft)
    code, _, err = run_cli([*argv, "--trials", "4"], capsys)
    assert code == 1 and said in err and "help:" in err


def test_a_space_is_walked_once_and_loaded_again_only_when_its_file_changes(tmp_path):
    import os

    file = tmp_path / "tiny.cnn"
    file.write_text(TINY.read_text())
    settings = driver.Settings(file=str(file), out=tmp_path)
    space = driver.space_for(settings, (1, 8, 8), 10)
    assert driver.space_for(settings, (1, 8, 8), 10) is space
    assert driver.space_for(settings, (1, 8, 8), 3) is not space  # another binding of `classes`
    space = driver.space_for(settings, (1, 8, 8), 10)
    size, members = walk(space, keep=True)
    again, kept = walk(space, keep=True)
    assert again is size and [m.graph for m in kept] == [m.graph for m in members]
    light = walk(space)[1]
    assert [m.picks for m in light] == [m.picks for m in members] and light[0].graph is None
    assert walk(space, limit=10)[0].complete is False  # a walk within a lower limit walks
    file.write_text(TINY.read_text().replace("choice(8, 16, 32", "choice(8, 16"))
    os.utime(file, ns=(0, 1))  # a change the file's size and time both show
    changed = driver.space_for(settings, (1, 8, 8), 10)
    assert changed is not space and walk(changed)[0].members == 24
