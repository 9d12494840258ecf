"""A study shared through PostgreSQL, as several machines would share it.

The fixture starts a throwaway PostgreSQL server of its own (initdb in a temporary folder, a Unix
socket, no TCP port), so the test needs the server binaries (Debian's postgresql) and psycopg2; it
skips cleanly where either is missing. Its URL has README's form, `postgresql://…` with no driver
named: cnnc must reach the server with the `postgres` extra's driver (psycopg2).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

pytest.importorskip("psycopg2")
BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
INITDB = shutil.which("initdb") or next((os.path.join(b, "initdb") for b in reversed(BINS)), None)
if INITDB is None or not os.path.exists(INITDB):
    pytest.skip("PostgreSQL server binaries are not installed", allow_module_level=True)
PG_CTL = os.path.join(os.path.dirname(INITDB), "pg_ctl")
PORT = 54329


def _as_server_user(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as `postgres` when we are root."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture
def postgres():
    # not pytest's tmp_path: its folders are private to root, and the server runs as `postgres`
    folder = Path(tempfile.mkdtemp(prefix="cnnc-pg-"))
    os.chmod(folder, 0o755)
    data, sock = folder / "data", folder / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(sock, "postgres")

    def run(args):
        return subprocess.run(_as_server_user(args), check=True, capture_output=True, timeout=120)

    run([INITDB, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    options = f"-p {PORT} -k {sock} -c listen_addresses='' -c fsync=off"
    run(
        [
            PG_CTL,
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "-l",
            str(folder / "log"),
            "start",
        ]
    )
    try:
        yield f"postgresql://postgres@/postgres?host={sock}&port={PORT}"  # README's form: no driver named
    finally:
        subprocess.run(
            _as_server_user([PG_CTL, "-D", str(data), "-m", "immediate", "-w", "stop"]),
            check=False,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fresh_database(postgres):
    """A new, empty database on the fixture's server: its URL."""
    import psycopg2

    name = f"fresh_{uuid.uuid4().hex[:12]}"
    sock = postgres.split("host=", 1)[1].split("&", 1)[0]
    connection = psycopg2.connect(host=sock, port=PORT, user="postgres", dbname="postgres")
    connection.autocommit = True
    connection.cursor().execute(f"CREATE DATABASE {name}")
    connection.close()
    return postgres.replace("/postgres?", f"/{name}?")


def _load(url: str, name: str):
    """A study read by Optuna itself (SQLAlchemy must be told the driver: `database_url`)."""
    import optuna

    from cnnc.search.storage import database_url

    return optuna.load_study(study_name=name, storage=database_url(url))


def test_readme_url_names_the_extra_driver_only_where_psycopg3_is_missing(monkeypatch):
    import importlib.util

    from cnnc.search.storage import database_url

    url = "postgresql://search@db.lan/nas"
    installed = {"psycopg2"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: object() if name in installed else None
    )
    assert database_url(url) == "postgresql+psycopg2://search@db.lan/nas"
    assert (
        database_url("postgresql+pg8000://search@db.lan/nas")
        == "postgresql+pg8000://search@db.lan/nas"
    )
    assert database_url("sqlite:///runs/t/study.db") == "sqlite:///runs/t/study.db"
    installed = {"psycopg", "psycopg2"}  # SQLAlchemy 2.1's own choice, psycopg 3, stays
    assert database_url(url) == url
    installed = set()  # neither: the error names the `postgres` extra's driver
    assert database_url(url) == "postgresql+psycopg2://search@db.lan/nas"


def test_study_in_postgresql_resumes(postgres, tmp_path, capsys):
    args = [
        "search",
        ROOT / "zoo" / "spaces" / "tiny.cnn",
        "--evaluator",
        "proxy",
        "--device",
        "cpu",
        "--storage",
        postgres,
        "--study",
        "shared",
        "--out",
        tmp_path,
    ]
    code, _, err = run_cli([*args, "--trials", "3"], capsys)
    assert code == 0, err
    code, _, err = run_cli([*args, "--trials", "5"], capsys)
    assert code == 0, err
    study = _load(postgres, "shared")
    # --trials counts distinct architectures; an architecture met again is reused on top
    assert sum(t.user_attrs.get("status") != "reused" for t in study.trials) == 5
    assert all(t.user_attrs.get("hash") for t in study.trials)


SLOW_WORKER = """
import sys, time
from cnnc.search import driver, evaluate
from cnnc.training.data import load_dataset

storage, out, trials, index = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
settings = driver.Settings(file=sys.argv[5], out=out, trials=trials, evaluator="proxy", device="cpu",
                           storage=storage, study="killed", heartbeat=1, worker=index)
data = load_dataset("digits")
proxy = evaluate.proxy_evaluator(settings, data)

def slow(graph, report):  # the proxy takes milliseconds: half a second gives the test time to kill
    time.sleep(0.5)
    return proxy(graph, report)

space = driver.space_for(settings, data.input_shape, data.num_classes)
class Quiet:
    def started(self, rows, notes): ...
    def trial_started(self, number): ...
    def epoch(self, number, epoch, accuracy): ...
    def finished(self, row): ...
    def note(self, text): print(text, file=sys.stderr, flush=True)

driver.run(settings, space, slow, Quiet(), data.num_classes, write=False)
"""


def test_three_workers_on_postgresql_survive_a_sigkill(postgres, tmp_path):
    """3 processes on one study; one is SIGKILLed during a trial: its trial is failed by the others
    once its heartbeat is 3 s old, run again, and the study ends with exactly 6 complete trials.
    (The fixture stops the server and removes its folder whatever happens.)"""
    import signal
    import sys

    from test_search_workers import check_killed_study, wait_for_running_trial

    from cnnc.search import driver

    trials = 6
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                SLOW_WORKER,
                postgres,
                str(tmp_path),
                str(trials),
                str(i),
                str(ROOT / "zoo" / "spaces" / "tiny.cnn"),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    try:

        def load():
            return _load(postgres, "killed")

        killed, pid = wait_for_running_trial(load, lambda: {p.pid for p in procs})
        os.kill(pid, signal.SIGKILL)
        errors = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    codes = sorted(p.returncode for p in procs)
    assert codes == [-signal.SIGKILL, 0, 0], errors
    assert any(f"trial {killed}'s worker stopped answering" in e for e in errors), errors
    check_killed_study(
        load(), killed, trials, driver.Settings(file=str(ROOT / "zoo" / "spaces" / "tiny.cnn"))
    )


def test_threads_opening_a_fresh_database_together_all_succeed(fresh_database):
    # without the advisory lock around the tables' creation, most of them fail (`relation "studies"
    # already exists`, or a duplicate key in pg_type)
    from test_search_workers import open_together

    assert open_together(fresh_database) == []
    assert _load(fresh_database, "s").trials == []


def test_four_searches_started_together_on_a_fresh_database_all_finish(fresh_database, tmp_path):
    from test_search_workers import check_searched_together, search_together

    results = search_together(
        ["--storage", fresh_database, "--study", "together"], tmp_path / "run"
    )
    check_searched_together(results, _load(fresh_database, "together"))
