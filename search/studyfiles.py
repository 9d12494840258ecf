"""A study's files as untrusted data: what must hold before Optuna opens a study, and reading one
without writing to it.

Input: the path of a `study.db` (SQLite) or `study.journal` (Optuna's journal) in a folder a user may
have been handed, or a storage URL. Output: nothing when the checks pass, else `Refused` (the rule,
the facts and the fix: a user error); a storage that reads a study and cannot write it.

Contracts:
- The study file, and the files SQLite, Optuna and cnnc keep beside it (`-wal`, `-shm`, `-journal`,
  `.lock`, `.cnnc-lock`), are regular files or absent. A link is refused, never followed: a
  `study.db` linked to another database of the user would get Optuna's tables and WAL mode for good;
  a `-wal` link would be written through. A FIFO or device is refused by type (it would block).
- A SQLite file that holds a table other than Optuna's is not a study: refused before Optuna creates
  its tables or a connection switches it to WAL. A reader needs every table of Optuna's. A study file
  over `MAX_STUDY_BYTES` (less where 40 times its size exceeds the machine's memory: `most_bytes`)
  is refused before it is read (a trial takes a few KB on disk, tens of KB read).
- `open_read_only(url)` reads a study: SQLite through a `mode=ro` connection (no WAL switch, no table
  created), a journal through a backend that cannot append, any other database with Optuna's table
  creation skipped.
- `reading(url)` turns a failure while Optuna parses a study (a crafted row or attribute, a journal
  line that is not JSON, an unknown schema version) into `Refused`; the storage's own errors
  (`OperationalError`: locked, read-only, unreachable) and cnnc's diagnostics pass through.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from cnnc.dsl import safefs

MAX_STUDY_BYTES = 1 << 30  # 1 GiB: a cnnc trial takes a few KB, so ~200 000 trials
# read, a study's trials take up to this many times their bytes on disk (measured: 30,000 copies
# of a trial, 45 MB of SQLite, took 1.08 GB in `search-report` and 1.79 GB in a one-shot search)
EXPANSION = 40


def most_bytes() -> int:
    """The largest study file read: MAX_STUDY_BYTES, or less where the machine's memory (a
    container's limit) would not hold it read."""
    from cnnc.compiler.limits import machine_memory

    return min(MAX_STUDY_BYTES, machine_memory() // EXPANSION)


SQLITE_SIDES = ("-wal", "-shm", "-journal", ".cnnc-lock")
JOURNAL_SIDES = (".lock", ".cnnc-lock")
OPTUNA_TABLES = frozenset(
    {
        "studies",
        "study_directions",
        "study_system_attributes",
        "study_user_attributes",
        "trial_heartbeats",
        "trial_intermediate_values",
        "trial_params",
        "trial_system_attributes",
        "trial_user_attributes",
        "trial_values",
        "trials",
        "version_info",
        "alembic_version",
    }
)
MOVE_HELP = "move it away to start a new study there, or name another place with --out or --storage"
LINK_HELP = (
    "cnnc opens a study only as a file of its own folder: copy the real file into the folder, "
    "or name it with --storage sqlite:///PATH (journal:///PATH)"
)


class Refused(Exception):
    """A study file cnnc will not open, or could not read, or a storage that cannot hold a study
    (`storage.check_storage`, `storage.storage_errors`): `message` and `helps` for the user."""

    def __init__(self, message: str, *helps: str):
        super().__init__(message)
        self.helps = helps


# ---------------------------------------------------------------------------------------------
# Before Optuna opens a study


def check_entry(path: Path, read_only: bool) -> bool:
    """Whether a study file stands at `path`; a link or special file is refused, and so is a missing
    one for a reader."""
    what = safefs.kind(path)
    if what == "missing":
        if read_only:
            raise Refused(f"no study file `{path}`", "name the study's folder or --storage URL")
        return False
    if what == "link":
        raise Refused(f"the study file `{path}` is a link (to `{_target(path)}`)", LINK_HELP)
    if what != "file":
        raise Refused(f"the study file `{path}` is a {what}, not a file", MOVE_HELP)
    return True


def check(path: Path, sqlite: bool, read_only: bool) -> None:
    """Refuse a study file that is a link or special file (`check_entry`), too large, beside a
    planted link, or (SQLite) another database; `read_only`: it must hold a whole study."""
    if not check_entry(path, read_only):
        return
    for suffix in SQLITE_SIDES if sqlite else JOURNAL_SIDES:
        _check_side(path.with_name(path.name + suffix), path)
    size, most = path.stat().st_size, most_bytes()
    if size > most:
        raise Refused(
            f"the study file `{path}` holds {size:,} bytes, over the {most:,} a study may hold "
            f"on this machine (read, a study takes up to {EXPANSION} times its bytes in memory)",
            MOVE_HELP,
        )
    if read_only and not size:
        raise Refused(
            f"the study file `{path}` is empty: it holds no study",
            "name the study's folder or --storage URL",
        )
    if sqlite and size:
        _check_tables(path, read_only)


def _check_side(side: Path, path: Path) -> None:
    what = safefs.kind(side)
    if what in ("missing", "file"):
        return
    shown = f"a link (to `{_target(side)}`)" if what == "link" else f"a {what}"
    raise Refused(
        f"`{side}` beside the study file `{path.name}` is {shown}: the study's storage would write "
        "through it",
        f"remove `{side}` (the study itself is `{path}`)",
    )


def _target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _check_tables(path: Path, read_only: bool) -> None:
    """SQLite's own list of tables, read through a read-only connection."""
    try:
        connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=10)
        try:
            tables = {
                name
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
        finally:
            connection.close()
    except (sqlite3.DatabaseError, ValueError) as exc:  # damaged pages; names that are not UTF-8
        if not os.access(path.parent, os.W_OK) and isinstance(exc, sqlite3.OperationalError):
            raise Refused(  # a study in WAL mode is read through a `-shm` file made beside it
                f"the study file `{path}` is in a folder cnnc cannot write, and SQLite must "
                "write beside a study to read it",
                "copy the study's folder somewhere you can write, and name the copy",
            ) from None
        raise Refused(
            f"the study file `{path}` cannot be read as SQLite: {_first_line(exc)}", MOVE_HELP
        ) from None
    foreign = sorted(t for t in tables if t not in OPTUNA_TABLES and not t.startswith("sqlite_"))
    if foreign:
        listed = ", ".join(f"`{t}`" for t in foreign[:5]) + (", …" if len(foreign) > 5 else "")
        raise Refused(
            f"`{path}` is a SQLite database, but not an Optuna study (it holds the tables {listed})",
            "a study file is one that `cnnc search` made; " + MOVE_HELP,
        )
    missing = sorted(OPTUNA_TABLES - tables)
    if read_only and missing:
        raise Refused(
            f"`{path}` is not a whole Optuna study (it lacks the table `{missing[0]}`)",
            "a study file is one that `cnnc search` made; " + MOVE_HELP,
        )


# ---------------------------------------------------------------------------------------------
# Reading a study without writing to it


def open_read_only(url: str):
    """Optuna's storage for `url`, opened to read (module docstring)."""
    import warnings

    import optuna

    if url.startswith("journal:///"):
        return optuna.storages.JournalStorage(_read_only_journal(url.split(":///", 1)[1]))
    engine = {}
    if url.startswith("sqlite:///"):
        engine = {"creator": _read_only_sqlite(Path(url.split(":///", 1)[1]))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.storages.RDBStorage(url, engine_kwargs=engine, skip_table_creation=True)


def _read_only_sqlite(path: Path):
    def connect():
        return sqlite3.connect(
            f"file:{quote(str(path))}?mode=ro", uri=True, check_same_thread=False, timeout=60
        )

    return connect


def _read_only_journal(path: str):
    """Optuna's journal file backend, minus creating the file and appending to it."""
    from optuna.storages.journal import JournalFileBackend

    class ReadOnlyJournal(JournalFileBackend):
        def __init__(self, path: str):  # Optuna's creates the file when it is missing
            self._file_path = path
            self._lock = None
            self._log_number_offset = {0: 0}

        def append_logs(self, logs) -> None:
            raise Refused(f"the study `{self._file_path}` was opened to be read, not written")

    return ReadOnlyJournal(path)


@contextmanager
def reading(url: str):
    """Any failure while Optuna parses the study at `url` becomes `Refused` (module docstring)."""
    import sqlalchemy.exc

    from cnnc.dsl.diagnostics import CnncError

    passing = (
        CnncError,
        Refused,
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        sqlite3.OperationalError,
    )
    try:
        yield
    except passing:
        raise
    except Exception as exc:  # noqa: BLE001 — crafted data makes Optuna raise anything
        raise Refused(
            f"the study in `{url}` cannot be read (damaged, or not written by cnnc): {_first_line(exc)}",
            "restore the study from a copy, or " + MOVE_HELP,
        ) from None


def parse_all(study) -> None:
    """Read every trial and attribute of `study` once, inside `reading`: a crafted row fails there
    (Optuna parses rows when they are read, so it would fail later, anywhere)."""
    if not isinstance(study.user_attrs, dict) or not isinstance(study.trials, list):
        raise Refused(f"study `{study.study_name}` cannot be read", MOVE_HELP)
    objectives = len(study.directions)
    for trial in study.trials:
        problem = _damage(trial, objectives)
        if problem:
            raise Refused(
                f"study `{study.study_name}` holds a damaged trial ({_first_line_of(problem)})",
                MOVE_HELP,
            )


def _damage(trial, objectives: int) -> str | None:
    """What Optuna itself would refuse in a trial it reads back (its `_validate`: a COMPLETE trial
    without values, a parameter outside its distribution; adding it to a study of `objectives`
    objectives: another count of values), or a number or value of the wrong type; None for a
    sound trial. Caught here, not when a search reuses or copies the trial."""
    if type(trial.number) is not int:
        return f"its number is {trial.number!r}"
    values = trial.values or ()
    if any(type(v) is not float and type(v) is not int for v in values):
        return f"trial {trial.number}'s values are {list(values)!r}"
    if values and len(values) != objectives:
        return f"trial {trial.number} has {len(values)} values for {objectives} objectives"
    try:
        trial._validate()
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return f"trial {trial.number}: {exc}"
    return None


def _first_line_of(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else text  # (the command escapes what it prints)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]
