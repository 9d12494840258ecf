"""Several workers on one study (search/worker.py, storage.py, launch.py): what counts toward
`--trials`, stale trials, failures that do not stop a worker, a changed space, races between
workers, and `cnnc search --workers 3` on a journal file with one worker SIGKILLed mid-trial.

`kill_one_worker_and_check` is shared with the PostgreSQL test (tests/test_search_postgres.py).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from test_search_driver import TINY, Counting, Quiet, write

from cnnc.dsl.diagnostics import CnncError
from cnnc.search import driver, evaluate, storage, worker
from cnnc.search.space import fixed, graph_hash

COMPLETE, FAIL, PRUNED = (optuna.trial.TrialState[s] for s in ("COMPLETE", "FAIL", "PRUNED"))


def settings(tmp_path, **options):
    return driver.Settings(file=str(options.pop("file", TINY)), out=tmp_path / "out", **options)


def run(s, evaluator=None):
    space = driver.space_for(s, (1, 8, 8), 10)
    return driver.run(s, space, evaluator or Counting(), Quiet(), num_classes=10)


class _Trial:
    def __init__(self, state, status=None):
        self.state, self.user_attrs = state, ({"status": status} if status else {})


@pytest.mark.parametrize(
    "state, status, counted",
    [
        (COMPLETE, "scored", True),
        (PRUNED, "infeasible", True),
        (FAIL, "failed", True),  # the member's own failure is its result
        (FAIL, "reused", False),  # an architecture met before: N trials are N architectures
        (COMPLETE, "reused", False),
        (FAIL, "interrupted", False),  # stopped by a signal: run again
        (FAIL, "lost", False),
        (FAIL, "stale", False),  # its worker died
        (optuna.trial.TrialState.RUNNING, None, False),
    ],
)
def test_what_counts_toward_trials(state, status, counted):
    assert worker.counts(_Trial(state, status)) is counted


def test_an_evaluator_that_raises_is_recorded_and_the_worker_goes_on(tmp_path):
    class Raising(Counting):
        def __call__(self, graph, report):
            if len(self.graphs) % 2 == 0:
                self.graphs.append(graph)
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")
            return super().__call__(graph, report)

    result = run(settings(tmp_path, trials=5, sampler="random"), Raising())
    failed = [r for r in result.rows if r.status == "failed"]
    assert failed and all(
        r.state == "FAIL"
        and r.reason == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
        for r in failed
    )
    assert len(result.rows) == 5 and result.stopped == "done"


def test_a_member_too_large_for_the_machine_is_a_failed_trial_not_a_crash(
    tmp_path, monkeypatch, one_thread
):
    from cnnc.search.evaluators import fit
    from cnnc.training.data import load_dataset

    monkeypatch.setattr(fit, "available_bytes", lambda device: 2**30)  # a machine with 1 GiB free
    big = write(
        tmp_path,
        "big.cnn",
        'return in -> Conv(choice(8, 65536, name = "c"), 3, pad = 1) '
        "-> GlobalAvgPool -> Flatten -> fc: Linear(classes)",
    )
    s = settings(tmp_path, file=big, trials=2, sampler="grid", evaluator="proxy", device="cpu")
    result = run(s, evaluate.proxy_evaluator(s, load_dataset("digits")))
    by_width = {r.decisions["c"]: r for r in result.rows}
    assert by_width["8"].status == "scored"
    large = by_width["65536"]
    assert (large.state, large.status) == ("FAIL", "failed")
    assert large.reason == (
        "too large for this machine: needs about 2.0 GiB (1,310,730 params, 4,259,914 activations "
        "per sample × batch 64), 1.0 GiB free on cpu"
    )


def test_a_changed_space_is_not_resumed(tmp_path):
    space = write(
        tmp_path,
        "s.cnn",
        'return in -> Conv(choice(8, 16, name = "c"), 3) '
        "-> GlobalAvgPool -> Flatten -> fc: Linear(classes)",
    )
    run(settings(tmp_path, file=space, trials=1))
    space.write_text(space.read_text().replace("# ", "#") + "# a comment changes nothing\n")
    run(settings(tmp_path, file=space, trials=2))
    space.write_text(space.read_text().replace("choice(8, 16", "choice(8, 16, 32"))
    with pytest.raises(CnncError) as info:
        run(settings(tmp_path, file=space, trials=3))
    d = info.value.diagnostics[0]
    assert d.code == "E0607" and "was made from another search space" in d.message


def test_a_journal_trial_whose_process_is_gone_is_failed_and_queued_again(tmp_path):
    url = f"journal:///{tmp_path / 'study.journal'}"
    study = optuna.create_study(storage=storage.open_storage(url, 10), study_name="s")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    trial = study.ask({"w": optuna.distributions.CategoricalDistribution(["8", "16"])})
    trial.set_user_attr("worker", {"host": storage.HOST, "pid": gone.pid, "started": None})
    alive = study.ask()
    alive.set_user_attr("worker", storage.this_worker())
    assert storage.fail_stale(study, url) == [trial.number]
    states = {t.number: t.state for t in study.trials}
    assert states[trial.number] == FAIL and states[alive.number] == optuna.trial.TrialState.RUNNING
    (queued,) = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert (
        queued.system_attrs["fixed_params"] == trial.params
    )  # taken when a worker asks for a trial
    assert queued.user_attrs == {"retry_of": trial.number, "retries": 1}


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # asked by hand, as a worker does
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_running_trial_no_live_worker_claims_is_failed_whatever_its_heartbeat(tmp_path, kind):
    """A RUNNING trial without a `worker` record (its worker died between asking for it and
    recording itself, or the study was edited), or whose worker is gone, was waited for forever
    on SQLite: only a heartbeat in the past made it stale."""
    file = "study.db" if kind == "sqlite" else "study.journal"
    url = f"{kind}:///{tmp_path / file}"
    study = optuna.create_study(storage=storage.open_storage(url, 10), study_name="s")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    unclaimed = study.ask()
    dead = study.ask()
    dead.set_user_attr("worker", {"host": storage.HOST, "pid": gone.pid, "started": None})
    crafted = study.ask()
    crafted.set_user_attr("worker", "somebody")
    alive = study.ask()
    alive.set_user_attr("worker", storage.this_worker())
    failed = sorted(storage.fail_stale(study, url))
    assert failed == [unclaimed.number, dead.number, crafted.number]
    assert {t.number: t.state for t in study.trials}[alive.number].name == "RUNNING"
    assert (
        storage.worker_text(storage.this_worker()) == f"in process {os.getpid()} on {storage.HOST}"
    )
    assert storage.worker_text("x\x1b[31m") == "(no worker recorded)"


def test_workers_in_threads_stop_at_exactly_the_trials_asked(tmp_path):
    """Three workers race for the last slots of one SQLite study: none overshoots, none is lost."""
    s = settings(tmp_path, trials=7, sampler="random")
    space = driver.space_for(s, (1, 8, 8), 10)
    driver.open_study(s, space)
    errors = []

    def one(i):
        try:
            mine = driver.Settings(**{**s.__dict__, "worker": i})
            driver.run(mine, space, Counting(), Quiet(), num_classes=10, write=False)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    trials = optuna.load_study(study_name="tiny", storage=s.storage_url).trials
    reused = sum(t.user_attrs.get("status") == "reused" for t in trials)  # not counted
    assert len(trials) == 7 + reused and worker.finished_count(trials) == 7
    scored = [t.user_attrs["hash"] for t in trials if t.user_attrs.get("status") == "trained"]
    assert len(scored) == len(set(scored))  # each architecture evaluated once, by one worker


# ---------------------------------------------------------------------------------------------
# A worker SIGKILLed mid-trial (shared with the PostgreSQL test)


def wait_for_running_trial(load, pids, timeout=120.0):
    """A RUNNING trial being evaluated by one of `pids()`: (trial number, pid)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ours = pids()
        try:
            trials = load().get_trials(deepcopy=False)
        except Exception:  # noqa: BLE001 - the study is not created yet
            trials = []
        for t in trials:
            pid = t.user_attrs.get("worker", {}).get("pid")
            if (
                t.state == optuna.trial.TrialState.RUNNING
                and "evaluating" in t.user_attrs
                and pid in ours
            ):
                return t.number, pid
        time.sleep(0.05)
    raise AssertionError("no worker started evaluating a trial")


def children_of(pid: int) -> set[int]:
    found = set()
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                fields = Path(f"/proc/{stat}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(stat))
    return found


def check_killed_study(study, killed: int, trials: int, space_settings) -> None:
    """The issue's assertions on a study after one of its workers was killed during `killed`."""
    all_ = study.trials
    counted = [t for t in all_ if t.user_attrs.get("status") != "reused"]  # reused: not counted
    assert sum(t.state == COMPLETE for t in counted) == trials
    assert worker.finished_count(all_) == trials
    assert not [t for t in all_ if t.state == optuna.trial.TrialState.RUNNING]
    dead = all_[killed]
    assert (dead.state, dead.user_attrs["status"]) == (FAIL, "stale")
    retried = [t for t in all_ if t.user_attrs.get("retry_of") == killed]
    assert retried and retried[0].params == dead.params and retried[0].state == COMPLETE
    # no architecture evaluated twice at once: the evaluations of one hash never overlap (an
    # evaluation runs from its claim to the trial's end; a trial may wait for another's result first)
    spans: dict[str, list] = {}
    for t in all_:
        if t.user_attrs.get("status") in ("scored", "trained") or t.number == killed:
            end = t.datetime_complete.timestamp() if t.datetime_complete else None
            spans.setdefault(t.user_attrs["hash"], []).append(
                (t.user_attrs["evaluating_since"], end)
            )
    for hash_, runs in spans.items():
        runs.sort()
        assert all(a[1] is not None and a[1] <= b[0] for a, b in itertools.pairwise(runs)), hash_
    scored = [
        t.user_attrs["hash"] for t in all_ if t.user_attrs.get("status") in ("scored", "trained")
    ]
    assert len(scored) == len(set(scored))
    # every complete trial replays to the architecture it recorded
    space = driver.space_for(space_settings, (1, 8, 8), 10)
    from cnnc.compiler.analysis.summary import summarize

    for t in all_:
        if t.state == COMPLETE:
            member = space.member(fixed(t.user_attrs["decisions"]))
            s = summarize(member.graph)
            assert (graph_hash(member.graph), s.params, s.macs) == (
                t.user_attrs["hash"],
                t.user_attrs["params"],
                t.user_attrs["macs"],
            )


def test_search_with_three_workers_on_a_journal_survives_a_sigkill(tmp_path):
    out, trials = tmp_path / "run", 6
    command = [
        sys.executable,
        "-c",
        "import sys; from cnnc.cli import main; sys.exit(main())",
        "search",
        TINY,
        "--workers",
        "3",
        "--trials",
        str(trials),
        "--epochs",
        "1",
        "--pruner",
        "none",
        "--device",
        "cpu",
        "--out",
        out,
        "--heartbeat",
        "1",
    ]
    parent = subprocess.Popen(
        [str(c) for c in command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        journal = out / "study.journal"
        end = time.monotonic() + 120
        while not journal.exists() and time.monotonic() < end:
            time.sleep(0.1)
        url = f"journal:///{journal}"

        def load():
            return optuna.load_study(study_name="tiny", storage=storage.open_storage(url, 1))

        killed, pid = wait_for_running_trial(load, lambda: children_of(parent.pid))
        os.kill(pid, signal.SIGKILL)
        _, stderr = parent.communicate(timeout=300)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait()
    assert parent.returncode == 0, stderr
    assert f"(pid {pid}) was killed by SIGKILL" in stderr
    assert f"trial {killed}'s worker stopped answering" in stderr
    check_killed_study(load(), killed, trials, driver.Settings(file=str(TINY)))
    assert (out / "best.cnn").is_file()


def test_a_signal_stops_a_worker_after_recording_its_trial(tmp_path):
    """SIGTERM mid-trial: the trial is FAIL (interrupted), its parameters queued, the worker stops."""
    s = settings(tmp_path, trials=50, sampler="random")

    class Slow(Counting):
        def __call__(self, graph, report):
            if len(self.graphs) == 1:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # interrupted long before this ends
            return super().__call__(graph, report)

    result = run(s, Slow())
    assert result.stopped == "interrupted"
    interrupted = [r for r in result.rows if r.status == "interrupted"]
    assert len(interrupted) == 1 and interrupted[0].state == "FAIL"
    assert interrupted[0].reason == "the worker was stopped (SIGTERM)"
    study = optuna.load_study(study_name="tiny", storage=s.storage_url)
    waiting = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert [w.user_attrs["retry_of"] for w in waiting] == [interrupted[0].number]


def test_a_dropped_connection_is_said_and_retried_with_back_off(monkeypatch):
    import sqlalchemy.exc

    waits, said, calls = [], [], []
    monkeypatch.setattr(storage.time, "sleep", waits.append)

    def step():
        calls.append(1)
        if len(calls) < 4:
            raise sqlalchemy.exc.OperationalError(
                "SELECT 1", {}, Exception("server closed the connection")
            )
        return "ok"

    assert storage.retrying(step, said.append) == "ok"
    assert waits == [1.0, 2.0, 4.0]
    assert said[0] == (
        "lost the connection to the study's storage ((builtins.Exception) server closed the "
        "connection); retrying in 1 s"
    )
    with pytest.raises(ValueError):  # not a connection problem: not retried
        storage.retrying(lambda: int("x"), said.append)


def test_a_storage_that_stays_away_is_e0606(monkeypatch):
    import sqlalchemy.exc

    monkeypatch.setattr(storage.time, "sleep", lambda s: None)

    def down():
        raise sqlalchemy.exc.OperationalError(
            "SELECT 1", {}, Exception("could not connect to server")
        )

    with pytest.raises(CnncError) as info:
        storage.retrying(down, lambda text: None, limit=0.5)
    assert info.value.diagnostics[0].code == "E0606"


@pytest.mark.parametrize(
    "message, lost",
    [
        ("server closed the connection unexpectedly", True),
        (
            'connection to server on socket "/tmp/.s.PGSQL.5432" failed: No such file or directory',
            True,
        ),
        ("attempt to write a readonly database", False),  # waiting does not mend these
        ("database or disk is full", False),
        ("no such table: trials", False),
    ],
)
def test_only_a_server_that_went_away_is_retried(message, lost):
    import sqlalchemy.exc

    assert (
        storage.is_connection_error(
            sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception(message))
        )
        is lost
    )


# ---------------------------------------------------------------------------------------------
# Searches started together on a fresh study (shared with the PostgreSQL test)


def open_together(url: str, count: int = 6) -> list[BaseException]:
    """`count` threads open one fresh storage and create one study at the same moment: the errors."""
    barrier, errors = threading.Barrier(count), []

    def one():
        barrier.wait()
        try:
            optuna.create_study(
                storage=storage.open_storage(url, 10), study_name="s", load_if_exists=True
            )
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


def search_together(
    storage_args: list, out: Path, count: int = 4, trials: int = 4
) -> list[tuple[int, str]]:
    """`count` tiny `cnnc search` processes started at once on one study: (exit status, stderr) each."""
    command = [
        sys.executable,
        "-c",
        "import sys; from cnnc.cli import main; sys.exit(main())",
        "search",
        TINY,
        "--evaluator",
        "proxy",
        "--device",
        "cpu",
        "--trials",
        str(trials),
        "--out",
        out,
        *storage_args,
    ]
    procs = [
        subprocess.Popen(
            [str(c) for c in command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]
    try:
        errors = [p.communicate(timeout=300)[1] for p in procs]
        return [(p.returncode, err) for p, err in zip(procs, errors)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def check_searched_together(results: list[tuple[int, str]], study, trials: int = 4) -> None:
    assert [code for code, _ in results] == [0] * len(results), [err for _, err in results]
    reused = sum(t.user_attrs.get("status") == "reused" for t in study.trials)  # not counted
    assert worker.finished_count(study.trials) == trials and len(study.trials) == trials + reused


def test_threads_opening_a_fresh_sqlite_storage_together_all_succeed(tmp_path):
    # without the lock around the tables' creation, most of them fail ("table studies already exists",
    # or Optuna's version row inserted twice)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert open_together(url) == []
    assert optuna.get_all_study_names(storage=url) == ["s"]


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_four_searches_started_together_on_a_fresh_study_all_finish(tmp_path, kind):
    out = tmp_path / "run"
    storage_args = [] if kind == "sqlite" else ["--storage", f"journal:///{out / 'study.journal'}"]
    results = search_together(storage_args, out)
    url = (
        f"sqlite:///{out / 'study.db'}"
        if kind == "sqlite"
        else f"journal:///{out / 'study.journal'}"
    )
    check_searched_together(
        results, optuna.load_study(study_name="tiny", storage=storage.open_storage(url, 10))
    )
    assert (out / "best.cnn").is_file()
