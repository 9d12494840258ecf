"""Parsed files kept on disk, so a file parsed before needs neither lark nor a parse.

A `cnnc check` of a zoo model spent half its time importing lark and parsing; a `.pyc` for `.cnn`
files takes that away. An entry is named by a digest of the text and of everything that decides
its AST (the grammar, the parser and AST modules, lark's version: `stamp()`), and holds the text
itself, which must equal the file's for a hit — so a digest collision or a stale entry is a miss,
never a wrong tree. The tree is stored as `marshal`ed lists and tuples (no pickle: loading an entry
builds AST records from plain values, nothing else), its spans as offsets into the text.

The entries live in the user's cache dir (`$XDG_CACHE_HOME/cnnc/ast`, else `~/.cache/cnnc/ast`),
never beside a `.cnn` file; `CNNC_CACHE=off` turns them off. Anything wrong with an entry (unreadable,
truncated, another format) makes it a miss; a dir that cannot be written is skipped silently. The
folder keeps at most `MAX_ENTRIES` entries and `MAX_BYTES` bytes: past either, the least recently
used entries go until half of each is left.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys
import zlib
from pathlib import Path

from cnnc.dsl import ast, safefs
from cnnc.dsl.records import fields, is_record
from cnnc.dsl.source import SourceFile, Span

FORMAT = 1
MAX_ENTRIES = 1000
MAX_BYTES = 128 << 20  # the whole folder: entries of large files are a few MB each
MAX_TEXT = (
    1 << 20
)  # characters: larger files are parsed each time (a hand-written model is a few KiB)
_LEAVES = (str, int, float, bool, type(None))


def cache_dir() -> Path | None:
    """cnnc's folder in the user's cache dir, made if needed; None where it cannot be made."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "cnnc"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder


def digest(text: str) -> str:
    """A 64-bit digest for naming files (CRC-32 and Adler-32: no hashlib import at start-up)."""
    data = text.encode("utf-8", "surrogatepass")
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def enabled() -> bool:
    return os.environ.get("CNNC_CACHE", "").lower() not in ("0", "off", "no", "false")


_STAMP: list[str] = []


def stamp() -> str:
    """A digest of what makes an AST from a text: this folder's grammar, parser, AST, literal, source
    and cache modules, and lark's `__init__.py` (which carries its version)."""
    if not _STAMP:
        here = Path(__file__).parent
        parts = [str(FORMAT), sys.version]
        for name in (
            "cnn.lark",
            "syntax.py",
            "ast.py",
            "literals.py",
            "source.py",
            "records.py",
            "astcache.py",
        ):
            parts.append((here / name).read_text(encoding="utf-8"))
        parts.append(_lark_init())
        _STAMP.append(digest("\0".join(parts)))
    return _STAMP[0]


def _lark_init() -> str:
    from importlib.util import find_spec

    spec = find_spec("lark")
    if spec is None or spec.origin is None:
        return ""
    return Path(spec.origin).read_text(encoding="utf-8")


def _entry(text: str) -> Path | None:
    folder = cache_dir() if enabled() and len(text) <= MAX_TEXT else None
    if folder is None:
        return None
    return folder / "ast" / f"{digest(stamp() + text)}.ast"


# ---------------------------------------------------------------------------------------------
# Loading


def load(source: SourceFile) -> ast.Module | None:
    """The AST of `source` from its entry, with spans into `source`; None on a miss."""
    try:
        path = _entry(source.text)
        if path is None:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    try:
        fmt, text, classes, tree = marshal.loads(data)
        if fmt != FORMAT or text != source.text:
            return None
        module = _Decoder(source, classes).decode(tree)
    except Exception:  # noqa: BLE001  a damaged or foreign entry is a miss; the parse that follows rewrites it
        return None
    if not isinstance(module, ast.Module):
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: kept by the pruning
    return module


class _Decoder:
    """Nested lists (a record: class number, then its fields) and tuples → AST records."""

    def __init__(self, source: SourceFile, classes):
        self.source = source
        self.table = []
        for name, names in classes:
            cls = getattr(ast, name)
            layout = _layout(cls)
            if layout[1] != tuple(names):
                raise ValueError(f"{name}: fields changed")
            self.table.append(layout)

    def decode(self, x):
        kind = type(x)
        if kind is list:
            cls, names, spans = self.table[x[0]]
            obj = object.__new__(cls)
            for name, is_span, value in zip(names, spans, x[1:], strict=True):
                if is_span:
                    value = None if value is None else Span(self.source, value[0], value[1])
                else:
                    value = self.decode(value)
                object.__setattr__(obj, name, value)
            return obj
        if kind is tuple:
            return tuple(self.decode(v) for v in x)
        if kind in _LEAVES:
            return x
        raise ValueError(f"not an AST value: {kind.__name__}")


_LAYOUTS: dict[type, tuple] = {}


def _layout(cls) -> tuple[type, tuple[str, ...], tuple[bool, ...]]:
    """(class, field names, which fields are spans); spans are the fields annotated `Span`."""
    if cls not in _LAYOUTS:
        if not (isinstance(cls, type) and is_record(cls) and cls.__module__ == ast.__name__):
            raise ValueError(f"{cls!r} is not an AST class")
        fs = fields(cls)
        _LAYOUTS[cls] = (cls, tuple(f.name for f in fs), tuple(f.type == "Span" for f in fs))
    return _LAYOUTS[cls]


# ---------------------------------------------------------------------------------------------
# Storing


def store(source: SourceFile, module: ast.Module) -> None:
    """Keep `module` as the entry of `source`'s text; silently nothing where that fails."""
    try:
        path = _entry(source.text)
        if path is None:
            return
        encoder = _Encoder(source)
        tree = encoder.encode(module)
        data = marshal.dumps((FORMAT, source.text, encoder.classes, tree))
    except (OSError, _NotStorable, ValueError):
        return
    try:
        path.parent.mkdir(exist_ok=True)
        safefs.write_bytes(
            path, data
        )  # readers see the old entry or the new one, never half of one
        _prune(path.parent)
    except OSError:
        return


class _NotStorable(Exception):
    pass


class _Encoder:
    def __init__(self, source: SourceFile):
        self.source = source
        self.index: dict[type, int] = {}
        self.classes: list[tuple[str, tuple[str, ...]]] = []

    def encode(self, x):
        kind = type(x)
        if kind is tuple:
            return tuple(self.encode(v) for v in x)
        if kind in _LEAVES:
            return x
        _, names, spans = _layout(kind)
        if kind not in self.index:
            self.index[kind] = len(self.classes)
            self.classes.append((kind.__name__, names))
        out = [self.index[kind]]
        for name, is_span in zip(names, spans):
            value = getattr(x, name)
            if is_span:
                if value is not None and value.file is not self.source:
                    raise _NotStorable("a span into another file")
                out.append(None if value is None else (value.start, value.end))
            else:
                out.append(self.encode(value))
        return out


def _prune(folder: Path) -> None:
    """Past `MAX_ENTRIES` entries or `MAX_BYTES` bytes, remove the least recently used (stray
    temporary files too) until half of each limit is left. Runs after each store, that is after a
    parse, which costs more than reading the folder."""
    entries = [(e.stat().st_mtime, e.stat().st_size, e.path) for e in os.scandir(folder)]
    total = sum(size for _, size, _ in entries)
    if len(entries) <= MAX_ENTRIES and total <= MAX_BYTES:
        return
    entries.sort()
    count = len(entries)
    for _, size, path in entries:
        if count <= MAX_ENTRIES // 2 and total <= MAX_BYTES // 2:
            break
        try:
            os.unlink(path)
        except OSError:
            continue
        count, total = count - 1, total - size
