"""Finding and loading programs: a path or a zoo name → a parsed `Program`; `--arg` text → AST values.

The zoo is the language's shipped library: a model may be named without its path (`resnet152`), and
imports search it last. Nothing here elaborates; `compiler.frontend` takes the `Program` on from here.
"""

from __future__ import annotations

from pathlib import Path

from cnnc.dsl.diagnostics import CnncError, error


def zoo_dir() -> Path:
    """The directory of the installed zoo's `.cnn` files."""
    from cnnc.zoo import ZOO_DIR

    return ZOO_DIR


def resolve_path(name: str | Path) -> Path:
    """A file path, or a zoo model named without its path (`resnet152`); a `zoo/…` path with no such
    local file names the installed zoo, so `zoo/resnet18.cnn` works outside the checkout too."""
    if is_file(name):
        return Path(name)
    inside = str(name).removeprefix("zoo/")
    for candidate in (zoo_dir() / f"{inside}.cnn", zoo_dir() / inside):
        if is_file(candidate):
            return candidate
    helps = (
        *zoo_suggestion(str(name)),
        "give a path to a .cnn file, or a model listed by `cnnc zoo`",
    )
    if _is_dir(name):
        helps = (f"`{name}` is a folder: name a .cnn file in it",)
    raise CnncError(
        error("E0202", f"no file `{name}`, and no zoo model of that name", None, helps=helps)
    )


def _is_dir(name) -> bool:
    try:
        return Path(name).is_dir()
    except (OSError, ValueError):
        return False


def is_file(name: str | Path) -> bool:
    """`Path.is_file`, but a name the OS cannot take (too long, a NUL) is simply not a file."""
    try:
        return Path(name).is_file()
    except (OSError, ValueError):
        return False


def zoo_suggestion(name: str) -> tuple[str, ...]:
    """A help line naming the zoo model closest to `name`, when one is close (Elm's `Suggest`)."""
    import difflib

    stem = Path(name).name.removesuffix(".cnn")
    models = sorted(p.stem for p in zoo_dir().glob("*.cnn"))
    close = difflib.get_close_matches(stem, models, n=1, cutoff=0.75)
    return (f"a zoo model of a similar name exists: `{close[0]}`",) if close else ()


def load_program(path: str | Path, text: str | None = None, allow_import=()):
    """Parse a file and its imports. Imports resolve relative to the file, then in the `allow_import`
    directories, those of `CNNC_PATH` and the zoo, and may reach nothing outside those and the file's
    own directory tree (see `cnnc.dsl.imports`)."""
    from cnnc.dsl.imports import env_search_path, load

    if text is None:
        path = resolve_path(path)
    return load(path, search_paths=(*allow_import, *env_search_path(), zoo_dir()), text=text)


def parse_arg_values(pairs) -> dict:
    """`--arg name=value` pairs → {name: AST expression}; the value is .cnn syntax (`[3, 4, 6, 3]`)."""
    from cnnc.dsl import ast
    from cnnc.dsl.parse import parse_text

    out = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name.strip().isidentifier():
            raise CnncError(
                error(
                    "E0410",
                    f"`--arg {pair}` must be written `name=value`",
                    None,
                    helps=("e.g. `--arg towers=2` or `--arg depths=[3,4,6,3]`",),
                )
            )
        module = parse_text(f"{name.strip()} = {value}", path=f"--arg {name.strip()}")
        (let,) = module.items
        assert isinstance(let, ast.Let)
        out[name.strip()] = let.value
    return out
