"""Optional parts of cnnc, and the extras of pyproject.toml that install them.

A command that needs an optional module says so before its work: `require(purpose, *modules)` raises
`MissingExtra` (a `UserError`: exit 1) naming the module and the line that installs it,
`pip install 'cnnc[EXTRA]'`. Where a module is found missing only in the middle of the work (a
library importing it for us), `missing_from(exc)` finds it in the exception's chain, so that the CLI
reports the same error instead of an internal one. A missing optional module is never a bug in cnnc.
"""

from __future__ import annotations

import importlib.util

from cnnc.commands.common import UserError

EXTRAS = {  # extra → the modules it brings that cnnc imports (pyproject.toml lists the packages)
    "onnx": ("onnx", "onnxscript", "onnxruntime"),
    "postgres": ("psycopg2",),
}
EXTRA_OF = {module: extra for extra, modules in EXTRAS.items() for module in modules}


class MissingExtra(UserError):
    """An optional module is not installed: exit 1, with the `pip install` line of its extra."""

    def __init__(self, purpose: str, module: str):
        self.module = module
        self.extra = EXTRA_OF[module]
        super().__init__(
            f"{purpose} needs the module `{module}`, which is not installed",
            install_line(self.extra),
        )


def install_line(extra: str) -> str:
    return f"pip install 'cnnc[{extra}]'"


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it (a module set to None in sys.modules,
    as a failed import leaves it, counts as missing)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken __spec__
        return False


def require(purpose: str, *modules: str) -> None:
    """Raise `MissingExtra` for the first of `modules` (each of an extra) that is not installed."""
    for module in modules:
        if not installed(module):
            raise MissingExtra(purpose, module)


def missing_from(exc: BaseException, purpose: str = "this command") -> MissingExtra | None:
    """The `MissingExtra` behind `exc`: an import of an extra's module that failed, found in `exc`
    or the exceptions it was raised from (torch's ONNX exporter wraps the ImportError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
        top = name.partition(".")[0] if isinstance(name, str) else None
        if top in EXTRA_OF:
            return MissingExtra(purpose, top)
        exc = exc.__cause__ or exc.__context__
    return None
