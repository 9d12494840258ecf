"""Where a study lives: storage URLs, the study lock, stale trials, and connections that drop.

Input: a storage URL — `sqlite:///PATH` (one machine, the default), `journal:///PATH` (Optuna's
journal file: several processes on one machine, no server), or a database URL such as
`postgresql://USER@HOST/DB` (several machines). Output: Optuna storage objects and `StudyLock`, the
mutual exclusion that makes "claim a trial slot" and "claim an architecture" atomic across workers.

Contracts:
- RDB storages (SQLite, PostgreSQL, …) record Optuna's trial heartbeat every `heartbeat` seconds; a
  RUNNING trial whose heartbeat is older than `3 × heartbeat` is stale. Journal files have no
  heartbeat in Optuna: a RUNNING trial there is stale when the process recorded in its `worker`
  attribute (same host) no longer exists. Either way `fail_stale` marks it FAIL (`status` stale)
  and enqueues its parameters again (`requeue`: the new trial's `retry_of` names the failed one).
- `StudyLock` is a file lock (`flock`) beside a SQLite or journal file and a PostgreSQL advisory lock
  (held by a connection of its own, released by the server when the holder dies) for PostgreSQL.
  Other databases get no lock: their workers may overshoot `--trials` by a trial in a race.
- `retrying(step)` runs a step that talks to the storage; a dropped connection is said and retried
  with back-off (1 s doubling to 60 s) for up to `RETRY_SECONDS`, then it is E0606.
- `database_url(url)` is the URL SQLAlchemy is given: `postgresql://…` names no driver, and
  SQLAlchemy 2.1 takes that to mean psycopg 3; where psycopg 3 is not installed, it becomes
  `postgresql+psycopg2://…` (the `postgres` extra's driver, named in the error if it is missing too).
- `check_storage(url)` refuses, before any work, a storage that cannot hold a study, and
  `storage_errors(url)` one that fails while in use (`studyfiles.Refused`: the user's to fix; the
  commands say it as a user error).
- `set_user_attrs(trial, attrs)` writes a trial's attributes together: on an RDB storage in one
  transaction (all or none, one commit), elsewhere one by one in order.
- `open_storage` creates a new storage's tables under `creating(url)`: a file lock beside a SQLite
  file, a PostgreSQL advisory lock for the whole database. Processes started together on a fresh
  storage would otherwise race to create the tables and Optuna's version row, and all but one fail.
- `in_memory(study)` is a copy of a study whose trials are all finished, held in Optuna's in-memory
  storage (its attributes, objectives' names and trials, numbered as in `study`), and
  `write_back(memory, study, start)` adds the trials the copy gained after its first `start` to
  `study`, in order (so they keep their numbers): finished and queued ones; a trial still RUNNING
  (cut off by an error) is dropped. A one-shot search works on such a copy (`driver.run`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sqlite3
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna

from cnnc.dsl import safefs
from cnnc.dsl.diagnostics import CnncError, error
from cnnc.search import studyfiles
from cnnc.search.studyfiles import Refused

RETRY_SECONDS = 600.0  # how long a worker waits for a storage that dropped its connection
MAX_RETRY = 3  # how often a trial killed with its worker is tried again
HOST = socket.gethostname()


def kind(url: str) -> str:
    """`sqlite`, `journal`, `postgresql` or `other`."""
    for name in ("sqlite", "journal", "postgresql"):
        if url.startswith((name + ":", name + "+")):
            return name
    return "other"


def file_path(url: str) -> Path:
    """The file of a `sqlite:///…` or `journal:///…` URL (three slashes, then the path)."""
    return Path(url.split(":///", 1)[1])


def open_storage(url: str, heartbeat: int):
    """Optuna's storage for `url` (see the module docstring for the heartbeat)."""
    import warnings

    # stale trials are failed and queued again by `fail_stale`, not by a callback of Optuna's
    beats = {"heartbeat_interval": heartbeat, "grace_period": 3 * heartbeat}
    if kind(url) == "journal":
        path = str(file_path(url))
        backend = optuna.storages.journal.JournalFileBackend(
            path, lock_obj=optuna.storages.journal.JournalFileOpenLock(path)
        )
        return optuna.storages.JournalStorage(backend)
    engine = (
        {"creator": _sqlite(file_path(url))} if kind(url) == "sqlite" else {"pool_pre_ping": True}
    )
    # (pre-ping: a connection the server dropped while idle is replaced instead of failing a call)
    with warnings.catch_warnings(), creating(url):
        warnings.simplefilter(
            "ignore"
        )  # the heartbeat is "experimental" since Optuna 2.9; it works
        return optuna.storages.RDBStorage(database_url(url), engine_kwargs=engine, **beats)


def database_url(url: str) -> str:
    """`url` with the PostgreSQL driver that is installed named in it (module docstring)."""
    import importlib.util

    if not url.startswith("postgresql://") or importlib.util.find_spec("psycopg") is not None:
        return url
    # psycopg2, or neither: then the error names the `postgres` extra's driver, and its pip line
    return "postgresql+psycopg2://" + url.removeprefix("postgresql://")


@contextlib.contextmanager
def creating(url: str):
    """Held while a storage's tables may be created (module docstring); other databases: no lock.

    A SQLite file in a folder that cannot hold the lock file (read-only) is opened without it:
    nothing can create tables there."""
    with contextlib.ExitStack() as held:
        # OSError: a read-only folder (EACCES, EROFS); a database's failures are not OSErrors
        with contextlib.suppress(OSError):
            if kind(url) != "other":
                held.enter_context(StudyLock(url, "", key="cnnc storage tables"))
        yield


def requeue(study, trial) -> None:
    """Enqueue a failed trial's parameters again (at most `MAX_RETRY` times along one chain), marked
    `retry_of`. Optuna's `RetryFailedTrialCallback` would copy every user attribute — the old
    status and reason would stick to the new trial."""
    retries = trial.user_attrs.get("retries", 0)
    if retries < MAX_RETRY:
        study.enqueue_trial(
            trial.params, user_attrs={"retry_of": trial.number, "retries": retries + 1}
        )


def in_memory(study):
    """A copy of `study` in memory (module docstring); its sampler and pruner are `study`'s."""
    memory = optuna.create_study(
        storage=optuna.storages.InMemoryStorage(),
        study_name=study.study_name,
        directions=study.directions,
        sampler=study.sampler,
        pruner=study.pruner,
    )
    for key, value in study.user_attrs.items():
        memory.set_user_attr(key, value)
    if study.metric_names is not None:
        with warnings.catch_warnings():  # "experimental" since Optuna 3.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            memory.set_metric_names(study.metric_names)
    memory.add_trials(study.get_trials(deepcopy=False))
    return memory


def write_back(memory, study, start: int) -> int:
    """The trials `memory` gained after its first `start`, added to `study` (module docstring);
    how many were added."""
    from optuna.trial import TrialState

    gained = [t for t in memory.get_trials(deepcopy=False)[start:] if t.state != TrialState.RUNNING]
    if not _add_together(study, gained):
        study.add_trials(gained)
    return len(gained)


def _add_together(study, trials: list) -> bool:
    """`study.add_trials(trials)` on an RDB storage as one transaction of plain inserts: Optuna's
    own adds each trial in a transaction of its own and reads before each of its ~15 writes
    (~24 ms a trial in SQLite; this: ~1 ms). False, writing nothing, on other storages or where
    Optuna's tables are not the ones this knows (then the caller adds them Optuna's way);
    `tests/test_search_memory.py` checks the two give the same trials."""
    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # under Optuna's cache of finished trials
    if not isinstance(backend, optuna.storages.RDBStorage) or not trials:
        return not trials
    try:
        import sqlalchemy
        from optuna.distributions import distribution_to_json
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        rows = [_trial_row(models, distribution_to_json, t) for t in trials]
    except (ImportError, AttributeError, TypeError):  # another Optuna's tables
        return False
    with _create_scoped_session(backend.scoped_session, True) as session:
        study_id = study._study_id
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)  # as Optuna's
        held = (
            session.query(sqlalchemy.func.count(models.TrialModel.trial_id))
            .filter(models.TrialModel.study_id == study_id)
            .scalar()
        )
        for offset, row in enumerate(rows):
            row.study_id, row.number = study_id, held + offset
        session.add_all(rows)
    return True


def _trial_row(models, to_json, trial):
    """The rows of one finished or queued trial, as Optuna's `create_new_trial` writes them."""
    import json

    row = models.TrialModel(
        state=trial.state,
        datetime_start=trial.datetime_start,
        datetime_complete=trial.datetime_complete,
    )
    for objective, value in enumerate(trial.values or ()):
        stored, kind = models.TrialValueModel.value_to_stored_repr(value)
        row.values.append(
            models.TrialValueModel(objective=objective, value=stored, value_type=kind)
        )
    for name, value in trial.params.items():
        distribution = trial.distributions[name]
        row.params.append(
            models.TrialParamModel(
                param_name=name,
                param_value=distribution.to_internal_repr(value),
                distribution_json=to_json(distribution),
            )
        )
    for rows, model, attrs in (
        (row.user_attributes, models.TrialUserAttributeModel, trial.user_attrs),
        (row.system_attributes, models.TrialSystemAttributeModel, trial.system_attrs),
    ):
        rows.extend(model(key=k, value_json=json.dumps(v)) for k, v in attrs.items())
    to_stored = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr
    for step, value in trial.intermediate_values.items():
        stored, kind = to_stored(value)
        row.intermediate_values.append(
            models.TrialIntermediateValueModel(
                step=step, intermediate_value=stored, intermediate_value_type=kind
            )
        )
    return row


def set_user_attrs(trial, attrs: dict) -> None:
    """`trial.set_user_attr(key, value)` for each of `attrs` (module docstring). A search writes a
    handful at each step of a trial; one transaction for them, not one each, is most of what a
    one-shot search's trial costs the storage."""
    storage = getattr(trial, "storage", None)
    backend = getattr(storage, "_backend", storage)  # under Optuna's cache of finished trials
    write = getattr(backend, "_set_trial_attr_without_commit", None)  # Optuna's, since 3.0
    cached = getattr(trial, "_cached_frozen_trial", None)
    if not isinstance(backend, optuna.storages.RDBStorage) or write is None or cached is None:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    # as Optuna's own `set_trial_user_attr`, each attribute's write inside one session
    with _create_scoped_session(backend.scoped_session, True) as session:
        for key, value in attrs.items():
            write(session, models.TrialUserAttributeModel, trial._trial_id, key, value)
    cached.user_attrs.update(attrs)


def _sqlite(path: Path):
    """SQLite in WAL mode with synchronous=NORMAL: each of a trial's dozen small writes costs ~1 ms
    instead of an fsync (~20 ms); a crash of the process loses nothing, a power cut the last writes."""

    def connect():
        connection = sqlite3.connect(path, check_same_thread=False, timeout=60)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    return connect


# ---------------------------------------------------------------------------------------------
# Workers and stale trials


def this_worker() -> dict:
    """What a trial records of the process running it (`worker` user attribute)."""
    return {"host": HOST, "pid": os.getpid(), "started": _process_start(os.getpid())}


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a reused pid from the original);
    `dead` for a zombie (killed, not yet reaped by its parent)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return "dead" if fields[0] in ("Z", "X") else fields[19]


def worker_text(worker) -> str:
    """`in process 4242 on host-a`, from a trial's `worker` attribute (data: escaped, cut)."""
    from cnnc.dsl.diagnostics import printable

    if not isinstance(worker, dict):
        return "(no worker recorded)"
    host, pid = printable(str(worker.get("host")))[:64], printable(str(worker.get("pid")))[:16]
    return f"in process {pid} on {host}"


def claimed(worker) -> bool:
    """Whether a RUNNING trial's `worker` attribute names a process that may still run it. Called
    under the study lock, inside which a worker asks for a trial and records itself on it: a trial
    without the record (its worker died in between, or the study was edited) has no one to finish
    it, whatever its heartbeat says (none, or one dated in the future)."""
    return isinstance(worker, dict) and isinstance(worker.get("host"), str) and is_alive(worker)


def is_alive(worker: dict | None) -> bool:
    """Whether the process a trial recorded still runs (unknown hosts count as alive)."""
    if not worker or worker.get("host") != HOST:
        return True
    pid = worker.get("pid")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError):
        return True
    started = _process_start(pid)
    return started != "dead" and (worker.get("started") is None or started == worker.get("started"))


def fail_stale(study, url: str) -> list[int]:
    """Mark stale RUNNING trials FAIL (`status` stale, with the reason) and enqueue their parameters
    again; the numbers failed. Done here rather than by Optuna's `fail_stale_trials`, so that the
    trial says why: a worker killed after its result was set would otherwise leave `trained` on a
    failed trial."""
    storage = study._storage  # the public Study API cannot change another worker's trial
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    ids = [t._trial_id for t in running if not claimed(t.user_attrs.get("worker"))]
    if kind(url) != "journal":
        stale = getattr(storage, "_get_stale_trial_ids", None)  # RDB storages with a heartbeat
        ids += [i for i in (stale(study._study_id) if stale is not None else ()) if i not in ids]
    failed = []
    for trial_id in ids:
        with contextlib.suppress(
            optuna.exceptions.UpdateFinishedTrialError
        ):  # another worker was first
            storage.set_trial_user_attr(trial_id, "status", "stale")
            storage.set_trial_user_attr(trial_id, "reason", STALE_REASON)
            if storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL):
                frozen = storage.get_trial(trial_id)
                requeue(study, frozen)
                failed.append(frozen.number)
    return failed


STALE_REASON = "its worker stopped answering (killed, out of memory, or its machine lost)"


# ---------------------------------------------------------------------------------------------
# The study lock


class StudyLock:
    """Mutual exclusion between the workers of one study (module docstring)."""

    def __init__(self, url: str, study_name: str, key: str | None = None):
        self.url, self.study_name = url, study_name
        self._file = None
        self._engine = self._connection = None
        # a stable 63-bit key per study: advisory locks are per database, studies share one
        digest = hashlib.sha256((key or f"cnnc study {study_name}").encode()).digest()
        self._key = int.from_bytes(digest[:8], "big") >> 1

    def __enter__(self):
        k = kind(self.url)
        if k in ("sqlite", "journal"):
            import fcntl

            path = file_path(self.url)
            # not `<file>.lock`: that is the name of Optuna's own journal lock
            self._file = lock_file(path.with_name(path.name + ".cnnc-lock"))
            fcntl.flock(self._file, fcntl.LOCK_EX)
        elif k == "postgresql":
            import sqlalchemy

            if self._engine is None:
                self._engine = sqlalchemy.create_engine(
                    database_url(self.url), poolclass=sqlalchemy.pool.NullPool
                )
            self._connection = self._engine.connect()
            self._connection.execute(
                sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key}
            )
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the flock
            self._file = None
        if self._connection is not None:
            with contextlib.suppress(Exception):  # a dead connection released its lock already
                import sqlalchemy

                self._connection.execute(
                    sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key}
                )
            self._connection.close()
            self._connection = None


def lock_file(path: Path):
    """The lock file, opened as a regular file of the study's folder: a link planted there is
    refused (`safefs.NotRegular`), never followed, and a FIFO does not block."""
    return safefs.open_lock(path)


# ---------------------------------------------------------------------------------------------
# Connections that drop


# what database drivers say when the server went away (as opposed to a full disk, a read-only file
# or a bad query, which waiting does not mend)
CONNECTION_LOST = (
    "server closed the connection",
    "could not connect",
    "connection refused",
    "terminating connection",
    "connection to server",
    "connection already closed",
    "ssl connection has been closed",
    "no route to host",
    "timeout expired",
    "could not translate host name",
    "the database system is starting up",
    "the database system is shutting down",
    "lost connection",
    "gone away",
)


def is_connection_error(exc: BaseException) -> bool:
    """A database server that cannot be reached now (retried), as opposed to any other failure."""
    try:
        import sqlalchemy.exc
    except ImportError:  # pragma: no cover - optuna depends on sqlalchemy
        return False
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(
        exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, ConnectionError)
    ):
        text = str(exc).lower()
        return any(words in text for words in CONNECTION_LOST)
    return False


def retrying(step: Callable, say: Callable[[str], None], limit: float = RETRY_SECONDS):
    """`step()`, retried with back-off while the storage's connection is down (module docstring)."""
    start, delay = time.monotonic(), 1.0
    while True:
        try:
            return step()
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            waited = time.monotonic() - start
            if waited + delay > limit:
                raise CnncError(
                    error(
                        "E0606",
                        f"lost the connection to the study's storage and could not get it back in "
                        f"{waited:.0f} s: {first_line(exc)}",
                        None,
                        helps=(
                            (
                                "check that the database server runs and is reachable, then run "
                                "the same command again: the study resumes"
                            ),
                        ),
                    )
                ) from None
            say(
                f"lost the connection to the study's storage ({first_line(exc)}); retrying in {delay:.0f} s"
            )
            time.sleep(delay)
            delay = min(2 * delay, 60.0)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# ---------------------------------------------------------------------------------------------
# Before the work, and while it runs: a storage that cannot hold a study is refused (`Refused`,
# which the commands make a user error)


SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database
STORAGE_HELP = "e.g. `--storage sqlite:///runs/t/study.db` or `--storage postgresql://USER@HOST/DB`"
STUDY_FILE_HELP = (
    "move it away to start a new study there, or name another place with --out or --storage"
)
READ_ONLY_HELP = (
    "make the file and its folder writable, or copy the folder and point --out at the copy"
)


def check_storage(url: str, read_only: bool = False) -> None:
    """Refuse, before the work, a storage that cannot hold a study: a URL that does not parse, an
    unknown database or one whose driver is missing (raised from the ImportError, which names the
    driver's module), a study file that is a folder, a link, not a SQLite database or another one
    than a study (`search/studyfiles.py`), or read-only where the study is to be written
    (`read_only`: a report, which only reads)."""
    if url.startswith(("sqlite:///", "journal:///")):
        _check_study_file(Path(url.split(":///", 1)[1]), url.startswith("sqlite"), read_only)
        return
    import sqlalchemy.engine
    import sqlalchemy.exc

    try:
        dialect = sqlalchemy.engine.make_url(database_url(url)).get_dialect()
        dialect.import_dbapi()
    except sqlalchemy.exc.NoSuchModuleError:  # before ArgumentError, its base class
        kind = url.partition(":")[0]
        raise Refused(
            f"--storage `{url}`: `{kind}` is not a kind of database cnnc knows", STORAGE_HELP
        ) from None
    except sqlalchemy.exc.ArgumentError:
        raise Refused(f"--storage `{url}` is not a database URL", STORAGE_HELP) from None
    except ImportError as exc:
        raise Refused(
            f"--storage `{url}`: its database driver (the module `{exc.name}`) is not installed",
            f"install that driver, or use SQLite: {STORAGE_HELP}",
        ) from exc


def _check_study_file(path: Path, sqlite: bool, read_only: bool) -> None:
    try:
        _check_study_path(path, sqlite, read_only)
        studyfiles.check(path, sqlite, read_only)
    except OSError as exc:  # a name the OS refuses (too long, a loop of links)
        raise Refused(
            f"cannot use the study file `{path}`: {exc.strerror or exc}", STUDY_FILE_HELP
        ) from None


def _check_study_path(path: Path, sqlite: bool, read_only: bool) -> None:
    if safefs.kind(path) == "folder":
        raise Refused(f"the study file `{path}` is a folder", STUDY_FILE_HELP)
    if not studyfiles.check_entry(path, read_only):
        return  # a new study: the driver creates it
    try:
        with safefs.open_regular(path, follow=False) as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise Refused(
            f"cannot read the study file `{path}`: {exc.strerror or exc}", STUDY_FILE_HELP
        ) from None
    if sqlite and head and head != SQLITE_MAGIC:
        raise Refused(
            f"the study file `{path}` is not a SQLite database (damaged, or another kind of file)",
            STUDY_FILE_HELP,
        )
    if not read_only and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        raise Refused(
            f"the study file `{path}` is read-only: a study writes to its file and beside it",
            READ_ONLY_HELP,
        )


@contextlib.contextmanager
def storage_errors(url: str):
    """A storage that fails while in use (damaged, read-only, full, locked, unreachable) is refused
    (`Refused`: the user's problem); an error in how cnnc talks to it (a wrong query:
    ProgrammingError, a broken constraint: IntegrityError) stays an internal error."""
    import sqlalchemy.exc

    try:
        yield
    except (sqlalchemy.exc.DBAPIError, sqlite3.DatabaseError) as exc:
        if not _storage_failure(exc):
            raise
        reason = (str(getattr(exc, "orig", None) or exc).splitlines() or ["no reason given"])[0][
            :200
        ]
        raise Refused(
            f"the study storage `{url}` failed: {reason}", _storage_help(reason)
        ) from None


def _storage_help(reason: str) -> str:
    if "readonly" in reason or "read-only" in reason:
        return READ_ONLY_HELP
    if "not a database" in reason or "malformed" in reason:
        return STUDY_FILE_HELP
    return "check that the database is reachable and has room, then run again (a study resumes)"


def _storage_failure(exc) -> bool:
    import sqlalchemy.exc as sa

    if isinstance(exc, (sa.OperationalError, sa.InterfaceError, sqlite3.OperationalError)):
        return True
    return type(exc) in (
        sa.DatabaseError,
        sqlite3.DatabaseError,
    )  # "file is not a database", "malformed"
