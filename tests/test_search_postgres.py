"""A study shared through PostgreSQL, as several machines would share it.

The fixture starts a throwaway PostgreSQL server of its own (initdb in a temporary folder, a Unix
socket, no TCP port), so the test needs the server binaries (Debian's postgresql) and psycopg2; it
skips cleanly where either is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
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
    run = lambda args: subprocess.run(_as_server_user(args), check=True, capture_output=True, timeout=120)  # noqa: E731
    run([INITDB, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    options = f"-p {PORT} -k {sock} -c listen_addresses='' -c fsync=off"
    run([PG_CTL, "-D", str(data), "-o", options, "-w", "-t", "60", "-l", str(folder / "log"), "start"])
    try:
        yield f"postgresql+psycopg2://postgres@/postgres?host={sock}&port={PORT}"
    finally:
        subprocess.run(_as_server_user([PG_CTL, "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def test_study_in_postgresql_resumes(postgres, tmp_path, capsys):
    args = ["search", ROOT / "zoo" / "spaces" / "tiny.cnn", "--evaluator", "proxy", "--device", "cpu",
            "--storage", postgres, "--study", "shared", "--out", tmp_path]
    code, _, err = run_cli([*args, "--trials", "3"], capsys)
    assert code == 0, err
    code, _, err = run_cli([*args, "--trials", "5"], capsys)
    assert code == 0, err
    import optuna

    study = optuna.load_study(study_name="shared", storage=postgres)
    assert len(study.trials) == 5
    assert all(t.user_attrs.get("hash") for t in study.trials)
