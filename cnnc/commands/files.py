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
from cnnc.dsl.diagnostics import CnncError, error, printable

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
    """Turn a failure to write `path` (no permission, a read-only or full disk, a folder where a
    file goes) into a user error naming the file that failed: a file replaced under `path` (the
    rename's target), else `path` (never a temporary file's name)."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UserError(
            f"cannot write `{printable(str(exc.filename2 or path))}`: {reason}",
            fix or f"choose a place you can write to with {what}",
        ) from None


def is_usage(diagnostics) -> bool:
    """Only unlocated E0202/E0205 (no such file or network named on the command line): exit 2."""
    return all(d.code in ("E0202", "E0205") and d.span is None for d in diagnostics)


# ---------------------------------------------------------------------------------------------
# Study storage (`cnnc search`, `cnnc search-report`): the search's refusals made user errors


def check_storage(url: str, read_only: bool = False) -> None:
    """`search.storage.check_storage` before the work, each refusal a user error; a database driver
    that an extra of cnnc brings (PostgreSQL's psycopg2) is named by its extra."""
    from cnnc.commands import extras
    from cnnc.search import storage, studyfiles

    with study_refusals():
        try:
            storage.check_storage(url, read_only)
        except studyfiles.Refused as exc:
            cause = exc.__cause__
            missing = (
                extras.missing_from(cause, f"--storage `{url}`")
                if isinstance(cause, ImportError)
                else None
            )
            if missing is not None:
                raise missing from None
            raise


@contextmanager
def study_refusals():
    """A study or storage the search refuses, or could not read or use, is the user's to fix."""
    from cnnc.search import studyfiles

    try:
        yield
    except studyfiles.Refused as exc:
        raise UserError(str(exc), *exc.helps) from None


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
