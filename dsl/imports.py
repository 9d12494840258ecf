"""Resolve `import "…"` between .cnn files into a `Program`.

An import is looked up relative to the importing file, then in each search path (`--allow-import`
directories, `CNNC_PATH`, the zoo). Each file is parsed once. Cycles are E0203 and missing files
E0202, both located at the `import` line. A program reads at most `MAX_FILES` files and
`MAX_PROGRAM_CHARS` of source in all (E0710, at the import that would pass either), and the
imports are followed with a stack of the loader's own, so a long chain is no recursion.

Imports stay home: a .cnn file is untrusted data, so an import may only reach a regular `.cnn` file
inside an allowed root — the directory of the file the user opened (and below), and the search paths.
The check runs on the fully resolved path, so `..` and symlinks cannot lead out; a target outside
(E0210), not named `.cnn` (E0211), not a regular file (E0212) or with an unusable path (E0213: NUL,
over-long, symlink loop) is a located error raised before the target is opened, so no diagnostic can
echo a byte of `/etc/passwd` or `/proc/self/environ`.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from cnnc.dsl import ast
from cnnc.dsl.diagnostics import CnncError, Diagnostic, Label, error
from cnnc.dsl.parse import parse
from cnnc.dsl.records import record
from cnnc.dsl.source import (
    MAX_SOURCE_BYTES,
    NotRegularFile,
    SourceFile,
    SourceTooLarge,
    Span,
    file_kind,
)

MAX_FILES = 256  # files a program may read, itself included: the zoo's largest reads 3
MAX_PROGRAM_CHARS = 2**20  # characters of all of them, as of one file at most (`MAX_SOURCE_BYTES`)
MAX_IMPORT_PATH = 1024  # characters: far beyond any real import, well under the OS's PATH_MAX
ENV_VAR = "CNNC_PATH"  # os.pathsep-separated directories of shared blocks, allowed and searched
_SMALLER = (
    "a .cnn file describes a network in kilobytes: write repeated layers as blocks and repeats"
)
_ROOTS = (
    "imports may reach the opened program's directory tree, the zoo, and directories allowed "
    "by --allow-import or CNNC_PATH"
)
_WIDEN = "to import from elsewhere on purpose, allow its directory: `--allow-import DIR` or CNNC_PATH=DIR"


@record(slots=False)
class Program:
    """The main module and every module it imports, keyed by resolved path."""

    main: str
    modules: dict[str, ast.Module]
    imports: dict[str, tuple[str, ...]]  # module key → keys of the modules it imports, in order

    @property
    def main_module(self) -> ast.Module:
        return self.modules[self.main]


def shown_path(path: Path) -> str:
    """A path as diagnostics print it: relative to the working directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):
        return str(path)


def env_search_path(environ=None) -> tuple[Path, ...]:
    """The directories named by `CNNC_PATH` (empty entries skipped)."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return tuple(Path(p) for p in value.split(os.pathsep) if p)


def read_source(
    path: Path, shown: str, span: Span | None = None, regular_only: bool = False
) -> SourceFile:
    """A file's text as a `SourceFile`; unreadable or non-UTF-8 is E0105, too large E0106, located at
    `span` (the import that asked for it)."""
    try:
        return SourceFile.read(path, shown, regular_only=regular_only)
    except UnicodeDecodeError as exc:
        raise CnncError(
            error(
                "E0105",
                f"`{shown}` is not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at "
                f"offset {exc.start}",
                span,
                helps=(".cnn files are UTF-8 text",),
            )
        ) from None
    except SourceTooLarge as exc:
        raise CnncError(
            error(
                "E0106",
                f"`{shown}` is {exc.size:,} bytes, over the limit of {exc.limit:,} for a .cnn file",
                span,
                helps=(_SMALLER,),
            )
        ) from None
    except NotRegularFile as exc:
        raise CnncError(
            error("E0212", f"`{shown}` is a {exc.kind}, not a .cnn file", span)
        ) from None
    except OSError as exc:
        raise CnncError(
            error("E0105", f"cannot read `{shown}`: {exc.strerror or exc}", span)
        ) from None


def load(path: str | Path, search_paths=(), text: str | None = None) -> Program:
    """Parse `path` and everything it imports. Raises `CnncError` with all problems found.

    `search_paths` are looked in, in order, after the importing file's directory; they and the main
    file's directory are the only places an import may reach. A main file that defines nothing
    (empty, or only comments) is E0107.
    """
    main = _real(path) if text is None else Path(path)
    roots = _roots((_real(main).parent, *(Path(p) for p in search_paths)))
    loader = _Loader(tuple(Path(p) for p in search_paths), roots)
    source = (
        SourceFile(str(path), text) if text is not None else read_source(main, shown_path(main))
    )
    key = loader.visit(source, main, keep=text is None)
    if not loader.diagnostics and not loader.modules[key].items:
        loader.diagnostics.append(_empty(source))
    if loader.diagnostics:
        raise CnncError(*loader.diagnostics)
    return Program(key, loader.modules, loader.edges)


def _real(path) -> Path:
    """The path with every link resolved; unlike `Path.resolve`, a link loop does not raise."""
    return Path(os.path.realpath(path))


def _roots(paths) -> tuple[Path, ...]:
    out = []
    for p in paths:
        try:
            out.append(_real(p))
        except (OSError, ValueError):
            continue  # an unusable search path allows nothing
    return tuple(out)


def _empty(source: SourceFile) -> Diagnostic:
    example = "define one, e.g.\n  network Net {\n      input [3, 32, 32]\n      return in -> Conv(16, 3)\n  }"
    return error(
        "E0107",
        f"`{source.path}` defines no network: the file is empty or holds only comments",
        Span(source, 0, 0),
        helps=(example,),
    )


class _Open:
    """A module whose imports are being followed: the loader's stack holds one per level."""

    __slots__ = ("children", "current", "imports", "key", "path")

    def __init__(self, key: str, path: Path, module: ast.Module):
        self.key, self.path = key, path
        self.imports = iter([item for item in module.items if isinstance(item, ast.Import)])
        self.current: ast.Import | None = None  # the import being followed
        self.children: list[str] = []


class _Loader:
    """Depth-first over the imports with a stack of its own, not Python's: a chain of imports as
    long as `MAX_FILES` allows cannot exhaust the interpreter's recursion limit."""

    def __init__(self, search_paths: tuple[Path, ...], roots: tuple[Path, ...]):
        self.search_paths = search_paths
        self.roots = roots
        self.modules: dict[str, ast.Module] = {}
        self.edges: dict[str, tuple[str, ...]] = {}
        self.diagnostics: list[Diagnostic] = []
        self.chars = 0  # characters of every file read so far
        self.capped = False  # a cap (`MAX_FILES`, `MAX_PROGRAM_CHARS`) was reported: read no more

    def visit(self, source: SourceFile, path: Path, keep: bool = True) -> str:
        """Parse `source` (kept on disk when `keep`: it was read from a file) and what it imports."""
        key = str(path)
        stack = [self.open(source, path, keep)]
        while stack:
            top = stack[-1]
            top.current = next(top.imports, None)
            if top.current is None:
                self.edges[top.key] = tuple(top.children)
                stack.pop()
                continue
            child = self.follow(top.current, top.path, stack)
            if isinstance(child, _Open):
                stack.append(child)
                child = child.key
            if child is not None:
                top.children.append(child)
        return key

    def open(self, source: SourceFile, path: Path, keep: bool = True) -> _Open:
        """Parse one file and register it; a file with syntax errors counts as empty."""
        key = str(path)
        self.chars += len(source.text)
        try:
            module = parse(source, keep=keep)
        except CnncError as exc:
            self.diagnostics += exc.diagnostics
            module = ast.Module(())
        self.modules[key] = module
        self.edges[key] = ()
        return _Open(key, path, module)

    def follow(self, item: ast.Import, importer: Path, stack: list[_Open]) -> str | _Open | None:
        """The key of the module `item` names (an `_Open` when it is read now), or None on an error."""
        try:
            target = self.resolve(item, importer.parent)
        except CnncError as exc:
            self.diagnostics += exc.diagnostics
            return None
        if target is None:
            where = ", ".join(shown_path(p) for p in (importer.parent, *self.search_paths))
            self.diagnostics.append(
                error(
                    "E0202",
                    f"cannot find the imported file `{item.path}`",
                    item.span,
                    "not found",
                    notes=(f"looked in: {where}",),
                    helps=(
                        "paths are relative to the importing file, then to the zoo (`families/resnet.cnn`)",
                    ),
                )
            )
            return None
        key = str(target)
        chain = [frame.key for frame in stack]
        if key in chain:
            self.diagnostics.append(
                _cycle(item, [(f.key, f.current) for f in stack], chain.index(key))
            )
            return None
        if key in self.modules:
            return key
        if self.over_cap(item, target):
            return None
        try:
            source = read_source(target, shown_path(target), item.span, regular_only=True)
        except CnncError as exc:
            self.diagnostics += exc.diagnostics
            return None
        return self.open(source, target)

    def over_cap(self, item: ast.Import, target: Path) -> bool:
        """E0710 (once) when one more file would pass `MAX_FILES`, or the files read so far and this
        one's size would pass `MAX_PROGRAM_CHARS`: the program stops growing there."""
        if self.capped:
            return True
        size = _size(target)
        if len(self.modules) >= MAX_FILES:
            what = f"more than {MAX_FILES:,} files"
        elif (
            self.chars + size > MAX_PROGRAM_CHARS and size <= MAX_SOURCE_BYTES
        ):  # (a larger file: E0106)
            what = f"more than {MAX_PROGRAM_CHARS:,} bytes of source ({self.chars + size:,} with this file)"
        else:
            return False
        self.capped = True
        self.diagnostics.append(
            error(
                "E0710",
                f"the program imports {what}",
                item.span,
                "one import too many",
                notes=(f"{len(self.modules):,} files are read before this import",),
                helps=(
                    "a network needs a few files of blocks: import the shared ones from one file",
                ),
            )
        )
        return True

    def resolve(self, item: ast.Import, here: Path) -> Path | None:
        """The first candidate that exists, checked against the rules; None when none exists."""
        _check_written(item)
        name = Path(item.path)
        bases = (None,) if name.is_absolute() else (here, *self.search_paths)
        for base in bases:
            candidate = name if base is None else base / name
            info = _stat(candidate, item)
            if info is not None:
                return self.admit(candidate, info, item)
        return None

    def admit(self, candidate: Path, info: os.stat_result, item: ast.Import) -> Path:
        """`candidate` (which exists) as a resolved path, if it is a regular .cnn file in a root."""
        target = _real(candidate)
        if not any(target == r or r in target.parents for r in self.roots):
            raise CnncError(
                error(
                    "E0210",
                    f"the import `{item.path}` leads outside the allowed directories",
                    item.span,
                    "outside",
                    notes=(_ROOTS,),
                    helps=(_WIDEN,),
                )
            )
        if not stat.S_ISREG(info.st_mode):
            raise CnncError(
                error(
                    "E0212",
                    f"the import `{item.path}` names a {file_kind(info.st_mode)}, not a .cnn file",
                    item.span,
                    helps=("import a .cnn file",),
                )
            )
        if target.suffix != ".cnn":
            raise CnncError(
                _not_cnn(item, f"it is a link to a `{target.suffix or 'suffix-less'}` file")
            )
        return target


def _check_written(item: ast.Import) -> None:
    """Rules on the import's text alone, before the file system is asked anything."""
    text = item.path
    bad = next((ch for ch in text if ord(ch) < 0x20 or ord(ch) == 0x7F), None)
    if bad is not None:
        raise CnncError(
            error(
                "E0213",
                f"the import path contains the control character {bad!r}",
                item.span,
                helps=("write the file's name with printable characters only",),
            )
        )
    if len(text) > MAX_IMPORT_PATH:
        raise CnncError(
            error(
                "E0213",
                f"the import path is {len(text):,} characters, over the limit of "
                f"{MAX_IMPORT_PATH:,}",
                item.span,
                helps=("import the file by a shorter path",),
            )
        )
    if not text.endswith(".cnn") or text.endswith("/.cnn"):
        raise CnncError(_not_cnn(item, "only `.cnn` files can be imported"))


def _not_cnn(item: ast.Import, why: str) -> Diagnostic:
    return error(
        "E0211",
        f"the import `{item.path}` does not name a .cnn file: {why}",
        item.span,
        helps=('import a .cnn file, e.g. `import "families/resnet.cnn"`',),
    )


def _stat(candidate: Path, item: ast.Import) -> os.stat_result | None:
    """`os.stat` (following links) or None when nothing is there; a path the OS cannot use is E0213."""
    try:
        return os.stat(candidate)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENAMETOOLONG):
            raise CnncError(
                error("E0105", f"cannot read the import `{item.path}`: {exc.strerror}", item.span)
            ) from None
        why = (
            "a symbolic link loop" if exc.errno == errno.ELOOP else "a name too long for the system"
        )
        raise CnncError(
            error(
                "E0213",
                f"the import `{item.path}` cannot be used: {why}",
                item.span,
                helps=("import the file by its real path",),
            )
        ) from None
    except ValueError:  # embedded NUL: caught by _check_written, kept here as a guard
        return None


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # read_source reports what is wrong with it


def _cycle(item: ast.Import, stack, start: int) -> Diagnostic:
    labels = [Label(item.span, "this import closes the cycle", primary=True)]
    notes = tuple(
        f"`{Path(k).name}` imports `{imp.path}` at {imp.span.where()}" for k, imp in stack[start:]
    )
    return Diagnostic(
        "E0203",
        f"import cycle through `{item.path}`",
        tuple(labels),
        notes=notes,
        helps=("move the shared blocks into a file that both import",),
    )
