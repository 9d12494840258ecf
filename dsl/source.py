"""Source files and spans.

A `Span` is a half-open character range `[start, end)` in one `SourceFile`. It is the only thing that
crosses from the language into the IR: the IR never holds AST nodes. Line and column are computed on
demand and count from 1; a column counts characters (a tab is one column, as editors' "go to" counts).

A `SourceFile`'s text is normalised once, so that every later stage sees one convention: a leading
UTF-8 byte-order mark is dropped, and CRLF and lone CR line endings become LF (an old Mac file's caret
lands on the right line). Reading is bounded: `read_bytes` stops at `MAX_SOURCE_BYTES`, so a 1 GB file
costs one `fstat`, never a gigabyte of memory.
"""

from __future__ import annotations

import bisect
import os
import stat
from pathlib import Path

from cnnc.dsl.records import field, record

# 1 MiB: the zoo's largest file is 8.5 KB, the whole zoo ~150 KB; larger is not a hand-written model,
# and parsing 1 MiB of dense layers takes ~12 s (4 MiB took 46 s and 720 MB)
MAX_SOURCE_BYTES = 1024 * 1024
_CHUNK = 64 * 1024


class SourceTooLarge(Exception):
    """A file over `MAX_SOURCE_BYTES`; `size` is what `fstat` reported (or a lower bound for a pipe)."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"{size} bytes, over the limit of {limit}")
        self.size = size
        self.limit = limit


class NotRegularFile(Exception):
    """A directory, FIFO, device or socket where a regular file was required."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


_KINDS = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISREG, "regular file"),
)


def file_kind(mode: int) -> str:
    """A file type in words, for messages: `directory`, `FIFO`, `character device`, …"""
    for test, word in _KINDS:
        if test(mode):
            return word
    return "special file"


def read_bytes(
    path: str | Path, limit: int = MAX_SOURCE_BYTES, regular_only: bool = False
) -> bytes:
    """At most `limit` bytes of `path`, in bounded chunks; `SourceTooLarge` past that.

    Opened non-blocking, so a FIFO swapped in for a checked file cannot hang the reader;
    `regular_only` refuses FIFOs and devices (`/dev/zero`, `/proc/…` files report size 0 but never end).
    """
    flags = os.O_RDONLY | (getattr(os, "O_NONBLOCK", 0) if regular_only else 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode) or (regular_only and not stat.S_ISREG(info.st_mode)):
            raise NotRegularFile(file_kind(info.st_mode))
        if info.st_size > limit:
            raise SourceTooLarge(info.st_size, limit)
        chunks, total = [], 0
        while chunk := os.read(fd, min(_CHUNK, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if (
                total > limit
            ):  # the file grew, or it is a pipe: stop at the first byte past the limit
                raise SourceTooLarge(total, limit)
        return b"".join(chunks)
    finally:
        os.close(fd)


def normalise(text: str) -> str:
    """Drop a leading byte-order mark; CRLF and lone CR become LF."""
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


@record(eq=False, slots=False)
class SourceFile:
    """The text of one `.cnn` file, and where it came from (`path` is shown in diagnostics).

    `text` is normalised on construction (see the module docstring), whatever the caller passed.
    """

    path: str
    text: str
    _line_starts: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        text = normalise(self.text)
        object.__setattr__(self, "text", text)
        starts, at = [0], text.find("\n")
        while at >= 0:
            starts.append(at + 1)
            at = text.find("\n", at + 1)
        object.__setattr__(self, "_line_starts", tuple(starts))

    @classmethod
    def read(
        cls, path: str | Path, shown_as: str | None = None, regular_only: bool = False
    ) -> SourceFile:
        """Read and decode (UTF-8, strict); raises `OSError`, `UnicodeDecodeError`, `SourceTooLarge`,
        `NotRegularFile` for the caller to turn into a located diagnostic."""
        text = read_bytes(path, regular_only=regular_only).decode("utf-8")
        return cls(shown_as if shown_as is not None else str(path), text)

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def offset(self, line: int, col: int) -> int:
        """Character offset of a 1-based (line, column)."""
        line = max(1, min(line, len(self._line_starts)))
        return min(self._line_starts[line - 1] + col - 1, len(self.text))

    def line_text(self, line: int) -> str:
        start = self._line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start:] if end < 0 else self.text[start:end]

    @property
    def line_count(self) -> int:
        return len(self._line_starts)


@record
class Span:
    """Characters `[start, end)` of `file`."""

    file: SourceFile
    start: int
    end: int

    @property
    def line(self) -> int:
        return self.file.line_col(self.start)[0]

    @property
    def col(self) -> int:
        return self.file.line_col(self.start)[1]

    @property
    def text(self) -> str:
        return self.file.text[self.start : self.end]

    def to(self, other: Span) -> Span:
        """The span from the start of `self` to the end of `other` (same file)."""
        return Span(self.file, min(self.start, other.start), max(self.end, other.end))

    def where(self) -> str:
        line, col = self.file.line_col(self.start)
        return f"{self.file.path}:{line}:{col}"

    def __repr__(self) -> str:
        return f"Span({self.where()}, {self.end - self.start} chars)"
