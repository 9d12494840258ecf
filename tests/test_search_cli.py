"""`cnnc space`, `cnnc search` and `cnnc search-report` end to end, in-process."""

from __future__ import annotations

import csv

import pytest
from conftest import ROOT, run_cli

TINY = ROOT / "zoo" / "spaces" / "tiny.cnn"


def test_space_lists_decisions_size_and_costs(capsys):
    code, out, _ = run_cli(["space", TINY, "--samples", "30", "--max-params", "20K"], capsys)
    assert code == 0
    assert "5 decisions (1 conditional)" in out and "size: 36 members" in out
    assert "kernel1  3 | 5" in out and "only when depth = 2" in out
    assert "shape-invalid  0/30 (0 %)" in out and "of the valid (--max-params 20.00 K)" in out


def test_space_json(capsys):
    import json

    code, out, _ = run_cli(["space", TINY, "--samples", "5", "--format", "json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["size"].pop("estimate") > 0  # Knuth's, from 5 random paths
    assert data["size"] == {
        "members": 36,
        "exact": True,
        "distinct": 36,
        "counted_by": "walk",
        "error": None,
    }
    assert data["decisions"][3]["when"] == {"decision": "depth", "options": ["2"]}


def test_search_resume_report_and_best_program(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["search", TINY, "--evaluator", "proxy", "--device", "cpu", "--out", out]
    code, stdout, stderr = run_cli([*common, "--trials", "3"], capsys)
    assert code == 0, stderr
    assert "search space" in stdout and "36 members" in stdout and "#0 " in stdout
    assert "trial 3/3 done" in stderr and "elapsed" in stderr
    for name in ("study.db", "best.cnn", "trials.csv", "history.png"):
        assert (out / name).is_file()
    code, stdout, _ = run_cli([*common, "--trials", "5"], capsys)
    assert code == 0 and "resuming: the study holds 3 trials" in stdout
    with open(out / "trials.csv") as f:
        assert sum(r["status"] != "reused" for r in csv.DictReader(f)) == 5  # reused: not counted
    code, stdout, _ = run_cli(["search-report", out, "--out", tmp_path / "report"], capsys)
    assert code == 0 and "study `tiny`" in stdout and "naswot" in stdout
    assert (tmp_path / "report" / "history.png").is_file()
    assert run_cli(["check", out / "best.cnn"], capsys)[0] == 0
    code, _, err = run_cli(["compile", out / "best.cnn", "-o", tmp_path / "best.py"], capsys)
    assert code == 0, err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--objective", "params"], "--objective must be accuracy"),
        (["--objective", "accuracy,flops"], "--objective must be accuracy"),
        (["--trials", "0"], "--trials must be at least 1"),
    ],
)
def test_search_usage_errors(tmp_path, capsys, args, message):
    code, _, err = run_cli(["search", TINY, "--out", tmp_path, *args], capsys)
    assert code == 2 and message in err


def test_search_on_a_file_with_a_syntax_error(tmp_path, capsys):
    bad = tmp_path / "bad.cnn"
    bad.write_text("network bad { input [1, 8, 8] return in -> Conv(8, 3 }\n")
    code, _, err = run_cli(["search", bad, "--out", tmp_path / "o", "--evaluator", "proxy"], capsys)
    assert code == 1 and "error[E01" in err


def test_search_report_needs_a_study(tmp_path, capsys):
    code, _, err = run_cli(["search-report", tmp_path], capsys)
    assert code == 2 and "no study.db or study.journal" in err


def test_search_report_exports_any_trial_and_lists_progress_and_failures(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(
        ["search", TINY, "--evaluator", "proxy", "--device", "cpu", "--out", out, "--trials", "3"],
        capsys,
    )
    assert code == 0, err
    import optuna

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    trial = study.ask()  # a trial left running, as a worker elsewhere would leave it
    failed = study.ask()
    failed.set_user_attr("status", "failed")
    failed.set_user_attr("reason", "loss became NaN at epoch 1")
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    code, stdout, _ = run_cli(["search-report", out, "--out", tmp_path / "r"], capsys)
    assert code == 0
    assert "progress: 4 of 3 finished · 1 running" in stdout
    assert "best so far #" in stdout
    assert f"failures (1):\n  #{failed.number} failed: loss became NaN at epoch 1" in stdout
    assert trial.number == 3
    code, stdout, _ = run_cli(
        ["search-report", out, "--export", "1", "-o", tmp_path / "one.cnn"], capsys
    )
    assert code == 0 and stdout == f"wrote {tmp_path / 'one.cnn'}\n"
    text = (tmp_path / "one.cnn").read_text()
    assert "trial 1 of study `tiny`" in text and "block Unit(c, k)" in text
    assert "network one = tiny(classes = 10)" in text
    assert run_cli(["fmt", "--check", tmp_path / "one.cnn"], capsys)[0] == 0
    assert run_cli(["check", tmp_path / "one.cnn"], capsys)[0] == 0
    code, _, err = run_cli(["search-report", out, "--export", "3"], capsys)
    assert code == 1 and "error[E0608]: study `tiny` has no architecture for trial 3" in err


def test_search_report_reads_a_journal_folder(tmp_path, capsys):
    import optuna

    from cnnc.search import storage

    out = tmp_path / "run"
    out.mkdir()
    url = f"journal:///{out / 'study.journal'}"
    study = optuna.create_study(storage=storage.open_storage(url, 10), study_name="j")
    study.tell(study.ask(), 1.0)
    code, stdout, err = run_cli(["search-report", out], capsys)
    assert code == 0, err
    assert f"study `j` in {url}" in stdout and "progress: 1 finished" in stdout


def test_search_says_when_the_space_is_exhausted(tmp_path, capsys, monkeypatch):
    """A space it cannot count (here: as if its walk had not finished) stops after
    EXHAUSTED_AFTER reused proposals in a row."""
    from cnnc.search import worker

    monkeypatch.setattr(worker, "EXHAUSTED_AFTER", 5)
    monkeypatch.setattr(worker.Worker, "all_met", lambda self, trials: False)
    space = tmp_path / "two.cnn"
    space.write_text(
        "network two(classes = 10) {\n    input [1, 8, 8]\n"
        "    return in -> Conv(4, 1) -> choice(ReLU, ReLU -> Identity) -> Flatten -> Linear(classes)\n}\n"
    )
    args = ["search", space, "--evaluator", "proxy", "--device", "cpu", "--trials", "3"]
    code, out, err = run_cli([*args, "--sampler", "random", "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    assert "1 scored" in out and "reused" in out
    assert "the space looks exhausted: the last 5 proposals were all architectures already" in out
    assert err.count("trial 1/3 done") == 1  # a reuse leaves the count: a log says it once


BLOCKS = """\
block B(c) {
    return in -> Conv(c, choice(3, 5), pad = same) -> ReLU
}

network blocks(classes = 10) {
    input [1, 8, 8]
    return in -> e1: B(4) -> e2: B(4) -> Flatten -> Linear(classes)
}
"""


def as_an_older_cnnc_wrote_it(db_path, rename) -> None:
    """The study's trials with their decisions renamed, and no `naming` recorded."""
    import json
    import sqlite3

    db = sqlite3.connect(db_path)
    query = "select trial_id, value_json from trial_user_attributes where key = 'decisions'"
    for trial, value in db.execute(query).fetchall():
        old = {rename(k): v for k, v in json.loads(value).items()}
        db.execute(
            "update trial_user_attributes set value_json = ? where trial_id = ? and key = ?",
            (json.dumps(old), trial, "decisions"),
        )
    db.execute("delete from study_user_attributes where key = 'naming'")
    db.commit()
    db.close()


def resumed(tmp_path, capsys, text: str, trials: int, change):
    """A proxy search of `text` for `trials` trials, `change(space, out)`, then the same search for
    one more: (its exit code and stderr, the argv exporting trial 0, the space file, the folder)."""
    space = tmp_path / "space.cnn"
    space.write_text(text)
    out = tmp_path / "run"
    args = ["search", space, "--evaluator", "proxy", "--device", "cpu", "--sampler", "random"]
    args += ["--study", "s", "--out", out]
    code, _, err = run_cli([*args, "--trials", str(trials)], capsys)
    assert code == 0, err
    change(space, out)
    code, _, err = run_cli([*args, "--trials", str(trials + 1)], capsys)
    export = ["search-report", out, "--export", "0", "--space", space, "-o", tmp_path / "t0.cnn"]
    return code, err, export, space, out


@pytest.mark.parametrize("renamed", [True, False])
def test_a_study_whose_decisions_were_named_by_place_is_refused_not_replayed(
    tmp_path, capsys, renamed
):
    """Before choices were named from the label path, `Conv(c, choice(3, 5))` in `e1: B(4)` was
    `e1@2:26`; its trials would replay to other architectures. A study whose names agree resumes."""
    old = (lambda k: k.replace(".conv.kernel_size", "@2:26")) if renamed else (lambda k: k)
    code, err, export, space, _ = resumed(
        tmp_path,
        capsys,
        BLOCKS,
        2,
        lambda space, out: as_an_older_cnnc_wrote_it(out / "study.db", old),
    )
    if not renamed:
        assert code == 0, err
        assert run_cli(export, capsys)[0] == 0
        return
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[0] == (
        f"error[E0607]: study `s` names decisions that `{space}` no longer has: "
        "`e1@2:26`, `e2@2:26`"
    )
    assert "= help: its trials would replay to other architectures" in err
    code, _, err = run_cli(export, capsys)
    assert code == 1 and "error[E0607]: study `s` names decisions that" in err


PLACED = """\
network n(classes = 10) {
    input [1, 8, 8]
    w = choice(4, 8)
    return in -> Conv(w, 3) -> ReLU -> Flatten -> Linear(classes)
}
"""


@pytest.mark.parametrize("edit", ["# a line above\n", ""])
def test_a_resume_after_a_place_named_choice_moved_is_refused(tmp_path, capsys, edit):
    """`w` is named by its place, `network@3:9`; a line added above it renames it `network@4:9`
    while the fingerprint, blind to layout, stays: the resume is refused, not mixed. The file as
    it was resumes."""
    code, err, export, space, out = resumed(
        tmp_path, capsys, PLACED, 1, lambda space, out: space.write_text(edit + PLACED)
    )
    if not edit:
        assert code == 0, err
        assert run_cli(export, capsys)[0] == 0
        return
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[0] == (
        f"error[E0607]: study `s` names decisions that `{space}` no longer has: `network@3:9`"
    )
    assert "lines have moved since; the space's decisions are `network@4:9`" in err
    assert "= help: put the lines back where they were" in err
    with open(out / "trials.csv") as f:
        assert len(f.readlines()) == 2  # the header and the one trial: nothing was added
    code, _, err = run_cli(export, capsys)
    assert code == 1 and "lines have moved since" in err


@pytest.mark.parametrize("trials, front", [(1, "1 trial"), (3, "3 trials")])
def test_a_pareto_front_says_how_many_trials_it_holds(tmp_path, capsys, trials, front):
    """With accuracy and params, the proxy's three random members of tiny.cnn are all on the
    front (each larger one scores higher); one trial is a front of one."""
    args = ["search", TINY, "--evaluator", "proxy"]
    args += ["--objective", "accuracy,params", "--sampler", "random", "--device", "cpu"]
    code, out, err = run_cli([*args, "--trials", str(trials), "--out", tmp_path / "r"], capsys)
    assert code == 0, err
    assert f"Pareto front ({front}; best.cnn is the first):" in out


def test_the_eta_is_timed_from_the_first_trial_and_counts_what_counts(monkeypatch):
    """A one-shot search trains for 60 s before its first trial, then scores 2 members and reuses
    one in 3 s: 22 of 24 are left at 1.5 s each (33 s), not at 21 s a trial."""
    from cnnc.commands import search as command
    from cnnc.search.driver import Settings
    from cnnc.search.report import Row

    clock = iter([0.0, 60.0, 63.0])  # start, first trial, the status line
    monkeypatch.setattr(command.time, "perf_counter", lambda: next(clock))
    console = command.Console(Settings(file="t.cnn", trials=24))
    console.started([], [])
    console.trial_started(0)
    for number, status in enumerate(["scored", "reused", "scored"]):
        row = Row(number, "COMPLETE", status, (0.5,), 1, 1, 1.0, "h", None, "")
        console.rows.append(row)
        console.done += 1
    assert console.eta(63.0) == " · ETA 0:33"


def test_a_search_stops_once_every_distinct_architecture_has_a_trial(tmp_path, capsys):
    """tiny.cnn's walk counts 36 distinct architectures: asked for 40, the search ran 100 reused
    proposals in a row before taking the space as exhausted; it stops when the 36th is met."""
    out = tmp_path / "run"
    argv = ["search", TINY, "--evaluator", "proxy", "--device", "cpu", "--sampler", "random"]
    code, stdout, err = run_cli([*argv, "--trials", "40", "--out", out], capsys)
    assert code == 0, err
    assert "36 scored" in stdout and "looks exhausted" not in stdout
    said = "every one of the space's 36 distinct architectures has a trial: nothing is left"
    assert said in err
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert sum(r["status"] != "reused" for r in rows) == 36 and len(rows) < 36 + 100
