"""A search's folder while it runs and after its parent was killed: `--workers` processes end with
their parent (search/launch.py), `search-report` writes best.cnn from the finished trials and leaves
a running search's files alone (search/results.py's `running`)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import optuna
from conftest import ROOT, run_cli
from test_search_workers import children_of

from cnnc.search import results, storage

TINY = ROOT / "zoo" / "spaces" / "tiny.cnn"
COMMAND = [
    sys.executable,
    "-c",
    "import sys; from cnnc.cli import main; sys.exit(main())",
    "search",
    TINY,
]


def _search(out, capsys, trials: int = 3):
    code, _, err = run_cli(
        [
            "search",
            TINY,
            "--evaluator",
            "proxy",
            "--device",
            "cpu",
            "--out",
            out,
            "--trials",
            str(trials),
        ],
        capsys,
    )
    assert code == 0, err


def test_a_running_search_holds_its_folder_until_it_ends(tmp_path):
    assert not results.search_running(tmp_path)
    with results.running(tmp_path):
        assert results.search_running(tmp_path)
        with results.running(tmp_path):  # a second search sharing the folder and its study
            assert results.search_running(tmp_path)
    assert not results.search_running(tmp_path)


def test_search_report_leaves_a_running_search_s_files_alone(tmp_path, capsys):
    out = tmp_path / "run"
    _search(out, capsys)
    before = {name: (out / name).read_bytes() for name in ("best.cnn", "trials.csv", "history.png")}
    with results.running(out):
        code, stdout, err = run_cli(["search-report", out], capsys)
    assert code == 0, err
    assert (
        f"note: a search is running in `{out}`: its files are left alone, this report went to "
        f"`{out / 'report'}`" in stdout
    )
    assert {name: (out / name).read_bytes() for name in before} == before
    assert (out / "report" / "best.cnn").read_text() == before["best.cnn"].decode()
    assert (out / "report" / "trials.csv").read_bytes() == before["trials.csv"]


def test_search_report_writes_the_same_best_program_as_the_search(tmp_path, capsys):
    out = tmp_path / "run"
    _search(out, capsys)
    searched = (out / "best.cnn").read_text()
    (out / "best.cnn").unlink()
    code, stdout, err = run_cli(["search-report", out], capsys)
    assert code == 0, err
    assert f"wrote {out / 'best.cnn'}" in stdout
    assert (out / "best.cnn").read_text() == searched


def test_search_report_of_a_study_without_its_space_says_why_there_is_no_best_program(
    tmp_path, capsys
):
    out = tmp_path / "run"
    out.mkdir()
    url = f"sqlite:///{out / 'study.db'}"
    study = optuna.create_study(storage=url, study_name="bare")
    trial = study.ask()
    trial.set_user_attr("hash", "0" * 64)
    study.tell(trial, 0.5)
    code, stdout, err = run_cli(["search-report", out], capsys)
    assert code == 0, err
    assert re.search(
        r"^note: best.cnn not written: the study in `sqlite:///\S+/study.db` does not record its space$",
        stdout,
        re.M,
    )
    assert not (out / "best.cnn").exists()


def _wait_until(condition, what: str, timeout: float = 240.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting: {what}")


def _trials(url: str):
    try:
        return optuna.load_study(study_name="tiny", storage=storage.open_storage(url, 1)).trials
    except Exception:  # noqa: BLE001 - not created yet
        return []


def _alive(pid: int) -> bool:
    return storage.is_alive({"host": storage.HOST, "pid": pid})


def test_killing_the_workers_parent_stops_its_workers_and_the_report_writes_best(tmp_path, capsys):
    out = tmp_path / "run"
    url = f"journal:///{out / 'study.journal'}"
    command = [
        *COMMAND,
        "--workers",
        "2",
        "--trials",
        "40",
        "--epochs",
        "3",
        "--pruner",
        "none",
        "--device",
        "cpu",
        "--out",
        out,
    ]
    parent = subprocess.Popen(
        [str(c) for c in command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    workers = set()
    try:
        # a finished trial (for best.cnn) and a trial being trained
        _wait_until(
            lambda: (
                any(t.state.name == "COMPLETE" for t in _trials(url))
                and any(
                    "evaluating" in t.user_attrs and t.state.name == "RUNNING" for t in _trials(url)
                )
            ),
            "a finished trial and a running one",
        )
        workers = children_of(parent.pid)
        assert len(workers) == 2
        parent.kill()
        parent.wait()
        _wait_until(lambda: not any(_alive(pid) for pid in workers), "the workers to end")
    finally:
        for pid in workers | {parent.pid}:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    trials = _trials(url)
    assert not [t.number for t in trials if t.state.name == "RUNNING"]
    stopped = [t for t in trials if t.state.name == "FAIL"]
    assert stopped and {t.user_attrs["status"] for t in stopped} == {"interrupted"}
    assert {t.user_attrs["reason"] for t in stopped} == {"the worker was stopped (SIGTERM)"}
    queued = sorted(t.user_attrs["retry_of"] for t in trials if t.state.name == "WAITING")
    assert queued == sorted(t.number for t in stopped)
    assert not (out / "best.cnn").exists()  # the parent was killed before it could write it
    code, _, err = run_cli(["search-report", out], capsys)
    assert code == 0, err
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    top = max(t.values[0] for t in complete)  # (a reused architecture ties with its first trial)
    assert any(
        f"trial {t.number} of study `tiny`" in (out / "best.cnn").read_text()
        for t in complete
        if t.values[0] == top
    )


def test_a_resume_says_which_running_trial_it_waits_for_and_goes_on_when_its_process_ends(
    tmp_path, capsys
):
    """The study's last slot is held by a RUNNING trial whose process lives (2 s): the search
    says whom it waits for, once, and when the process ends fails that trial and runs another."""
    import json
    import sqlite3

    out = tmp_path / "run"
    _search(out, capsys, trials=4)
    holder = subprocess.Popen(["sleep", "2"])
    worker = {
        "host": storage.HOST,
        "pid": holder.pid,
        "started": storage._process_start(holder.pid),
    }
    with sqlite3.connect(out / "study.db") as db:
        (trial_id,) = db.execute("SELECT trial_id FROM trials WHERE number = 3").fetchone()
        db.execute("UPDATE trials SET state = 'RUNNING', datetime_complete = NULL WHERE number = 3")
        db.execute("DELETE FROM trial_values WHERE trial_id = ?", (trial_id,))
        db.execute(
            "UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = ? AND key = 'worker'",
            (json.dumps(worker), trial_id),
        )
    argv = ["search", TINY, "--evaluator", "proxy", "--device", "cpu", "--out", out]
    code, _, err = run_cli([*argv, "--trials", "4"], capsys)
    holder.wait()
    assert code == 0, err
    said = f"waiting for running trials to finish (#3 in process {holder.pid} on {storage.HOST})"
    assert err.count(said) == 1
    assert "trial 3's worker stopped answering: recorded FAIL" in err


def test_a_planted_lock_file_neither_hides_a_search_nor_is_written_through(tmp_path):
    """A link or FIFO in the lock file's place kept the search from taking its lock, and
    search-report from seeing it: the search removes such an entry and takes its lock; where a
    folder stands there, a report cannot tell and leaves the files alone."""
    victim = tmp_path / "victim"
    victim.write_text("keep")
    for plant in ("link", "fifo"):
        out = tmp_path / plant
        out.mkdir()
        lock = out / results.RUNNING
        if plant == "link":
            lock.symlink_to(victim)
        else:
            os.mkfifo(lock)
        with results.running(out):
            assert results.search_running(out)
            assert lock.is_file() and not lock.is_symlink()
        assert not results.search_running(out)
    assert victim.read_text() == "keep"
    folder = tmp_path / "folder"
    (folder / results.RUNNING).mkdir(parents=True)
    assert results.search_running(folder)
