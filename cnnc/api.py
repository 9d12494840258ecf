"""The public Python API behind `cnnc.*` (imported lazily by `cnnc/__init__.py`).

Text in, graph or numbers out; torch is imported only by the functions that build modules.
"""

from __future__ import annotations

from pathlib import Path

from cnnc.dsl.diagnostics import CnncError, Diagnostic, error


def zoo_dir() -> Path:
    from cnnc.zoo import ZOO_DIR

    return ZOO_DIR


def resolve_path(name: str | Path) -> Path:
    """A file path, or a zoo model named without its path (`resnet152`)."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (zoo_dir() / f"{name}.cnn", zoo_dir() / name):
        if candidate.is_file():
            return candidate
    raise CnncError(error("E0202", f"no file `{name}`, and no zoo model of that name", None,
                          helps=("give a path to a .cnn file, or a model listed by `cnnc zoo`",)))


def load_program(path: str | Path, text: str | None = None):
    """Parse a file and its imports (imports resolve relative to the file, then in the zoo)."""
    from cnnc.dsl.imports import load

    if text is None:
        path = resolve_path(path)
    return load(path, search_paths=(zoo_dir(),), text=text)


def parse_arg_values(pairs) -> dict:
    """`--arg name=value` pairs → {name: AST expression}; the value is .cnn syntax (`[3, 4, 6, 3]`)."""
    from cnnc.dsl import ast
    from cnnc.dsl.parse import parse_text

    out = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name.strip().isidentifier():
            raise CnncError(error("E0410", f"`--arg {pair}` must be written `name=value`", None,
                                  helps=("e.g. `--arg towers=2` or `--arg depths=[3,4,6,3]`",)))
        module = parse_text(f"{name.strip()} = {value}", path=f"--arg {name.strip()}")
        (let,) = module.items
        assert isinstance(let, ast.Let)
        out[name.strip()] = let.value
    return out


def elaborate_file(path, network=None, args=None, input_shape=None, decider=None, text=None):
    """Parse and elaborate; returns an `Elaboration` (graph + diagnostics). Syntax errors raise."""
    from cnnc.compiler.elaborate import elaborate

    program = load_program(path, text)
    return elaborate(program, network, args, input_shape, decider)


def graph(path, network=None, args=None, input_shape=None, decider=None, text=None):
    """The shaped graph of a network; raises `CnncError` if the program has errors."""
    result = elaborate_file(path, network, args, input_shape, decider, text)
    errors: list[Diagnostic] = [d for d in result.diagnostics if d.is_error]
    if errors:
        raise CnncError(*errors)
    return result.graph


def check_lint(g) -> None:
    """Raise an internal error when the graph breaks an IR invariant (a bug in cnnc)."""
    problems = g.lint()
    if problems:
        raise InternalError("graph lint failed:\n  " + "\n  ".join(problems), dump=str(g))


class InternalError(Exception):
    """A bug in cnnc (not in the user's file); the CLI prints it and exits 70."""

    def __init__(self, message: str, dump: str = ""):
        super().__init__(message)
        self.dump = dump
