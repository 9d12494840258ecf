"""Files cnnc writes and reads where a user pointed, never through what a shared folder planted there.

Folders people share (study folders, run folders, data sets) are untrusted data: an entry may be a
symbolic link to `~/.bashrc`, a FIFO that blocks a reader forever, or a device. This module is the one
place that writes and opens such entries; every writer of cnnc goes through it.

- `replacing(path)` writes a file as a whole: the bytes go to a new temporary file (created with
  `O_EXCL`, so never an existing file or link) in the target's folder, and `os.replace` moves it into
  place. `os.replace` replaces a link at the target instead of following it, and a reader sees the
  old file or the new one, never half of one. `Written.replaced_link` says when a link was replaced,
  so that the command can say so.
- `replacing_path(path)` is the same for writers that want a path (matplotlib's `savefig`,
  `torch.save`, graphviz): they write to the temporary path.
- `open_regular(path)` opens an existing file for reading only when it is a regular file (a link is
  followed only where `follow=True`; a FIFO, device or socket is refused by type before it is opened,
  and opened with `O_NONBLOCK` so that one swapped in meanwhile cannot block).
- `link_hook`, when set (the command line sets it), is called with the `Written` of every write
  that replaced a link, so that the command says so on stderr whichever module wrote the file.
- `folder_inside(root, relative)` makes the folders of a path inside `root`, refusing a link or a
  file among them (a planted `lib -> /etc` is not written through either).
- `open_lock(path)` opens (or creates) a lock file for `fcntl.flock` the same way: never through a
  link, only a regular file, never a FIFO that would block.

Imports nothing of cnnc's: every layer may use it. Errors are `OSError`s, for callers to report.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from contextlib import contextmanager, suppress

_TEMP_TRIES = 100
link_hook: Callable[[Written], None] | None = None  # called after a write that replaced a link


class Written:
    """What a write did: the final path, and whether a link stood there (and was replaced);
    `link_target` is what that link pointed to (never written)."""

    __slots__ = ("link_target", "path", "replaced_link")

    def __init__(self, path: str):
        self.path = path
        self.replaced_link = False
        self.link_target: str | None = None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary(path: str) -> tuple[int, str]:
    """A new file beside `path` (same folder, so `os.replace` is a rename), open for writing. It
    ends in the target's suffix, for writers that choose a format by it (matplotlib, torch.jit)."""
    folder, name = os.path.split(path)
    suffix = os.path.splitext(name)[1]
    flags = (
        os.O_WRONLY
        | os.O_CREAT
        | os.O_EXCL
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    for i in range(_TEMP_TRIES):
        tmp = os.path.join(folder, f".{name}.{os.getpid()}.{i}.tmp{suffix}")
        try:
            return os.open(tmp, flags, 0o666 & ~_umask()), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


@contextmanager
def replacing_path(path):
    """Yield (temporary path, Written); on a clean exit the temporary file replaces `path`."""
    path = os.fspath(path)
    fd, tmp = _temporary(path)
    os.close(fd)
    written = Written(path)
    moved = False
    try:
        yield tmp, written
        _note_link(written)
        os.replace(tmp, path)
        moved = True
    finally:
        if not moved:  # (not after the move: the audit of a cache write sees no removal)
            with suppress(FileNotFoundError):
                os.unlink(tmp)
    if written.replaced_link and link_hook is not None:
        link_hook(written)


def _note_link(written: Written) -> None:
    """Record whether a link stands at the target, and where it points (for the message)."""
    try:
        written.link_target = os.readlink(written.path)
    except OSError:  # not a link (EINVAL), or nothing there
        return
    written.replaced_link = True


@contextmanager
def replacing(path, mode: str = "w", **open_kwargs):
    """Yield an open file (text for "w", bytes for "wb"); on a clean exit it replaces `path`.

    The yielded file has a `.written` attribute (a `Written`) that is complete after the block."""
    with replacing_path(path) as (tmp, written), open(tmp, mode, **open_kwargs) as f:
        f.written = written  # type: ignore[attr-defined]
        yield f


def write_text(path, text: str, encoding: str = "utf-8") -> Written:
    with replacing(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return f.written


def write_bytes(path, data: bytes) -> Written:
    with replacing(path, "wb") as f:
        f.write(data)
    return f.written


def kind(path, follow: bool = False) -> str:
    """'file', 'folder', 'link', 'missing' or the name of what else stands at `path` ('fifo', …)."""
    try:
        mode = os.stat(path).st_mode if follow else os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISLNK(mode):
        return "link"
    for test, name in (
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "device"),
        (stat.S_ISBLK, "device"),
    ):
        if test(mode):
            return name
    return "special file"


class NotRegular(OSError):
    """An entry that is not a regular file where one was needed; `.what` is what it is."""

    def __init__(self, path, what: str, needed: str = "a regular file"):
        super().__init__(f"{os.fspath(path)} is a {what}, not {needed}")
        self.path = os.fspath(path)
        self.what = what


def open_regular(path, follow: bool = True):
    """Open `path` for reading in binary, only if it is a regular file (else `NotRegular`).

    With `follow=False` a link is refused too. The check is made on the opened descriptor as well
    (`fstat`), so an entry swapped between the check and the open is caught."""
    what = kind(path, follow=follow)
    if what != "file":
        raise NotRegular(path, what) if what != "missing" else FileNotFoundError(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(path, "special file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def folder_inside(root, relative) -> str:
    """Make the folders of `relative` (a path of folders) inside `root`, and return the last; a link,
    a file or `..` among them is refused (`NotRegular`, `ValueError`), never followed or replaced."""
    current = os.fspath(root)
    for part in os.path.normpath(os.fspath(relative)).split(os.sep):
        if part in ("", "."):
            continue
        if part == "..":
            raise ValueError(f"{relative} leaves {root}")
        current = os.path.join(current, part)
        with suppress(FileExistsError):
            os.mkdir(current)
        what = kind(current)
        if what != "folder":
            raise (
                NotRegular(current, what, "a folder")
                if what != "missing"
                else FileNotFoundError(current)
            )
    return current


def open_lock(path, create: bool = True):
    """Open the lock file `path` for `fcntl.flock` (binary, read-only: a lock needs no more, and a
    report may read a folder it cannot write), creating it when `create`. A link is refused
    (`NotRegular`, `O_NOFOLLOW`), never followed to create its target; a FIFO never blocks
    (`O_NONBLOCK`, then checked); a missing file without `create` is `FileNotFoundError`."""
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    if create:
        flags |= os.O_CREAT
    try:
        fd = os.open(path, flags, 0o666 & ~_umask())
    except OSError:
        if kind(path) == "link":
            raise NotRegular(path, "link") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(path, kind(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
