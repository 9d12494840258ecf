"""Resolve `import "…"` between .cnn files into a `Program`.

An import is looked up relative to the importing file, then in each search path (the zoo). Each file
is parsed once. Cycles are E0203 and missing files E0202, both located at the `import` line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnnc.dsl import ast
from cnnc.dsl.diagnostics import CnncError, Diagnostic, Label, error
from cnnc.dsl.parse import parse
from cnnc.dsl.source import SourceFile


@dataclass(frozen=True)
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
    except ValueError:
        return str(path)


def read_source(path: Path, shown: str, span=None) -> SourceFile:
    """A file's text as a `SourceFile`; a file that is not UTF-8 text is E0105, located at `span`."""
    try:
        return SourceFile.read(path, shown)
    except UnicodeDecodeError as exc:
        raise CnncError(error("E0105", f"`{shown}` is not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at "
                              f"offset {exc.start}", span, helps=(".cnn files are UTF-8 text",))) from None
    except OSError as exc:
        raise CnncError(error("E0105", f"cannot read `{shown}`: {exc.strerror}", span)) from None


def load(path: str | Path, search_paths=(), text: str | None = None) -> Program:
    """Parse `path` and everything it imports. Raises `CnncError` with all problems found."""
    loader = _Loader(tuple(Path(p) for p in search_paths))
    main = Path(path).resolve() if text is None else Path(path)
    source = SourceFile(str(path), text) if text is not None else read_source(main, shown_path(main))
    key = loader.visit(source, main, ())
    if loader.diagnostics:
        raise CnncError(*loader.diagnostics)
    return Program(key, loader.modules, loader.edges)


class _Loader:
    def __init__(self, search_paths: tuple[Path, ...]):
        self.search_paths = search_paths
        self.modules: dict[str, ast.Module] = {}
        self.edges: dict[str, tuple[str, ...]] = {}
        self.diagnostics: list[Diagnostic] = []

    def visit(self, source: SourceFile, path: Path, stack: tuple[tuple[str, ast.Import | None], ...]) -> str:
        key = str(path)
        if key in self.modules:
            return key
        try:
            module = parse(source)
        except CnncError as exc:
            self.diagnostics += exc.diagnostics
            self.modules[key] = ast.Module(())
            self.edges[key] = ()
            return key
        self.modules[key] = module
        self.edges[key] = ()
        children = []
        for item in module.items:
            if isinstance(item, ast.Import):
                child = self.follow(item, path, stack + ((key, item),))
                if child is not None:
                    children.append(child)
        self.edges[key] = tuple(children)
        return key

    def follow(self, item: ast.Import, importer: Path, stack) -> str | None:
        target = self.resolve(item.path, importer.parent)
        if target is None:
            where = ", ".join(shown_path(p) for p in (importer.parent, *self.search_paths))
            self.diagnostics.append(error(
                "E0202", f"cannot find the imported file `{item.path}`", item.span, "not found",
                notes=(f"looked in: {where}",),
                helps=("paths are relative to the importing file, then to the zoo (`families/resnet.cnn`)",),
            ))
            return None
        key = str(target)
        chain = [k for k, _ in stack]
        if key in chain:
            self.diagnostics.append(_cycle(item, stack, chain.index(key)))
            return None
        if key not in self.modules:
            try:
                source = read_source(target, shown_path(target), item.span)
            except CnncError as exc:
                self.diagnostics += exc.diagnostics
                return None
            self.visit(source, target, stack)
        return key

    def resolve(self, name: str, here: Path) -> Path | None:
        for base in (here, *self.search_paths):
            candidate = (base / name).resolve()
            if candidate.is_file():
                return candidate
        return None


def _cycle(item: ast.Import, stack, start: int) -> Diagnostic:
    labels = [Label(item.span, "this import closes the cycle", primary=True)]
    notes = tuple(f"`{Path(k).name}` imports `{imp.path}` at {imp.span.where()}" for k, imp in stack[start:])
    return Diagnostic("E0203", f"import cycle through `{item.path}`", tuple(labels), notes=notes,
                      helps=("move the shared blocks into a file that both import",))
