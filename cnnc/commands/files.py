"""What the subcommands share about the file system: zoo names, stdin, output paths.

Every failure here is the user's (a missing, unwritable or wrong file: exit 1, or 2 for a wrong
argument), reported as a one-line `error: …` with a help line, never as an internal error.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from cnnc.api import is_file, resolve_path
from cnnc.commands.common import UsageError, UserError
from cnnc.dsl.diagnostics import CnncError, error

STDIN = "-"
STDIN_NAME = (
    "<stdin>"  # how diagnostics name the text read from stdin; imports resolve from the cwd
)


def split_model(name: str, network: str | None) -> tuple[str, str | None]:
    """`inception_module:naive` (as `cnnc zoo` lists a file's several networks) → file and network."""
    head, sep, tail = name.rpartition(":")
    if name == STDIN or not sep or not tail.isidentifier() or is_file(name) or not _resolves(head):
        return (
            name,
            network,
        )  # not FILE:NETWORK: the command says what is missing, by the whole name
    if network is not None and network != tail:
        raise UsageError(f"`{name}` names the network `{tail}`, but --network names `{network}`")
    return head, tail


def _resolves(name: str) -> bool:
    try:
        resolve_path(name)
    except CnncError:
        return False
    return True


def note_zoo_fallback(name: str) -> None:
    """A file path that does not exist here but names a zoo file (`resnet152.cnn`, `zoo/x.cnn`)
    falls back to the installed zoo: one line on stderr says which file is used."""
    looks_like_path = name.endswith(".cnn") or "/" in name or os.sep in name
    if name == STDIN or not looks_like_path or is_file(name):
        return
    try:
        used = resolve_path(name)
    except CnncError:
        return  # the command reports the missing file
    print(f"note: no file `{name}` here: using the zoo's `{used}`", file=sys.stderr)


def read_stdin() -> str:
    """The program text on stdin, bounded as a file is (E0106), UTF-8 (E0105)."""
    from cnnc.dsl.source import MAX_SOURCE_BYTES

    data = sys.stdin.buffer.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        raise CnncError(
            error(
                "E0106",
                f"stdin holds over {MAX_SOURCE_BYTES:,} bytes, the limit for a .cnn file",
                None,
            )
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CnncError(
            error(
                "E0105",
                f"stdin is not UTF-8 text: byte 0x{exc.object[exc.start]:02x} "
                f"at offset {exc.start}",
                None,
                helps=(".cnn files are UTF-8 text",),
            )
        ) from None


def check_output(path: str | Path, what: str = "-o") -> Path:
    """Refuse, before any work, an output path that names a folder or sits under a file."""
    path = Path(path)
    with writing(path, what):  # a name the OS refuses (too long) fails already here
        if path.is_dir():
            raise UserError(
                f"`{path}` is a folder, but {what} needs a file name",
                f"name a file inside it, e.g. `{what} {path / ('out' + path.suffix)}`",
            )
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise UserError(
                        f"cannot write `{path}`: `{parent}` is a file, not a folder",
                        f"choose another place for {what}",
                    )
                break
    return path


@contextmanager
def writing(path: str | Path, what: str = "-o", fix: str | None = None):
    """Turn a failure to write `path` (no permission, a read-only or full disk) into a user error."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UserError(
            f"cannot write `{path}`: {reason}",
            fix or f"choose a place you can write to with {what}",
        ) from None


def is_usage(diagnostics) -> bool:
    """Only unlocated E0202/E0205 (no such file or network named on the command line): exit 2."""
    return all(d.code in ("E0202", "E0205") and d.span is None for d in diagnostics)


# ---------------------------------------------------------------------------------------------
# Study storage (`cnnc search`, `cnnc search-report`): a URL or a file the user named


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
    unknown database or one whose driver is missing, a study file that is a folder, a link, not a
    SQLite database or another one than a study (`search/studyfiles.py`), or read-only where the
    study is to be written (`read_only`: a report, which only reads)."""
    if url.startswith(("sqlite:///", "journal:///")):
        _check_study_file(Path(url.split(":///", 1)[1]), url.startswith("sqlite"), read_only)
        return
    import sqlalchemy.engine
    import sqlalchemy.exc

    from cnnc.search.storage import database_url

    try:
        dialect = sqlalchemy.engine.make_url(database_url(url)).get_dialect()
        dialect.import_dbapi()
    except sqlalchemy.exc.NoSuchModuleError:  # before ArgumentError, its base class
        kind = url.partition(":")[0]
        raise UserError(
            f"--storage `{url}`: `{kind}` is not a kind of database cnnc knows", STORAGE_HELP
        ) from None
    except sqlalchemy.exc.ArgumentError:
        raise UserError(f"--storage `{url}` is not a database URL", STORAGE_HELP) from None
    except ImportError as exc:
        _missing_driver(url, exc)


def _missing_driver(url: str, exc: ImportError) -> None:
    """The driver of a `--storage` URL is not installed: the extra that brings it where cnnc has
    one (PostgreSQL's psycopg2), else the module's name."""
    from cnnc.commands import extras

    missing = extras.missing_from(exc, f"--storage `{url}`")
    if missing is not None:
        raise missing from None
    raise UserError(
        f"--storage `{url}`: its database driver (the module `{exc.name}`) is not installed",
        f"install that driver, or use SQLite: {STORAGE_HELP}",
    ) from None


def _check_study_file(path: Path, sqlite: bool, read_only: bool) -> None:
    from cnnc.search import studyfiles

    try:
        with study_refusals():
            _check_study_path(path, sqlite, read_only)
            studyfiles.check(path, sqlite, read_only)
    except OSError as exc:  # a name the OS refuses (too long, a loop of links)
        raise UserError(
            f"cannot use the study file `{path}`: {exc.strerror or exc}", STUDY_FILE_HELP
        ) from None


@contextmanager
def study_refusals():
    """A study file `search/studyfiles.py` refuses, or could not read, is the user's to fix."""
    from cnnc.search import studyfiles

    try:
        yield
    except studyfiles.Refused as exc:
        raise UserError(str(exc), *exc.helps) from None


def _check_study_path(path: Path, sqlite: bool, read_only: bool) -> None:
    from cnnc.dsl import safefs
    from cnnc.search import studyfiles

    if safefs.kind(path) == "folder":
        raise UserError(f"the study file `{path}` is a folder", STUDY_FILE_HELP)
    if not studyfiles.check_entry(path, read_only):
        return  # a new study: the driver creates it
    try:
        with safefs.open_regular(path, follow=False) as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise UserError(
            f"cannot read the study file `{path}`: {exc.strerror or exc}", STUDY_FILE_HELP
        ) from None
    if sqlite and head and head != SQLITE_MAGIC:
        raise UserError(
            f"the study file `{path}` is not a SQLite database (damaged, or another kind of file)",
            STUDY_FILE_HELP,
        )
    if not read_only and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        raise UserError(
            f"the study file `{path}` is read-only: a study writes to its file and beside it",
            READ_ONLY_HELP,
        )


@contextmanager
def storage_errors(url: str):
    """A storage that fails while in use (damaged, read-only, full, locked, unreachable) is the user's
    problem (exit 1); an error in how cnnc talks to it (a wrong query: ProgrammingError, a broken
    constraint: IntegrityError) stays an internal error."""
    import sqlite3

    import sqlalchemy.exc

    try:
        yield
    except (sqlalchemy.exc.DBAPIError, sqlite3.DatabaseError) as exc:
        if not _storage_failure(exc):
            raise
        reason = (str(getattr(exc, "orig", None) or exc).splitlines() or ["no reason given"])[0][
            :200
        ]
        raise UserError(
            f"the study storage `{url}` failed: {reason}", _storage_help(reason)
        ) from None


def _storage_help(reason: str) -> str:
    if "readonly" in reason or "read-only" in reason:
        return READ_ONLY_HELP
    if "not a database" in reason or "malformed" in reason:
        return STUDY_FILE_HELP
    return "check that the database is reachable and has room, then run again (a study resumes)"


def _storage_failure(exc) -> bool:
    import sqlite3

    import sqlalchemy.exc as sa

    if isinstance(exc, (sa.OperationalError, sa.InterfaceError, sqlite3.OperationalError)):
        return True
    return type(exc) in (
        sa.DatabaseError,
        sqlite3.DatabaseError,
    )  # "file is not a database", "malformed"


def make_folder(path: str | Path, what: str) -> Path:
    """The output folder, made now: a path that is a file, or a place that cannot hold a folder, is
    the user's to fix before any work is spent."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(
            f"`{path}` is a file, but {what} needs a folder", f"name a folder with {what}"
        ) from None
    except OSError as exc:
        raise UserError(
            f"cannot make the folder `{path}`: {exc.strerror or exc}",
            f"choose a place you can write to with {what}",
        ) from None
    return path
