"""cnnc: a declarative graph compiler and architecture-search playground for CNNs.

`cnnc.graph(path)` gives the shaped graph IR, `cnnc.summary(path)` its analysis (printed as
`cnnc summary`'s table) and `cnnc.load(path)` a PyTorch module; each also takes the program as
`text=`. `cnnc.train(...)` and `cnnc.search(...)` run `cnnc train` and `cnnc search` and return
their results. `help(cnnc.load)` and the others say more; `__all__` lists them. Heavy dependencies load
only when used: importing cnnc does not import torch.
"""

import sys as _sys
import types as _types

__version__ = "0.1.0"

# the public names, each from the module that defines it, imported on first use
_LAZY = {
    "graph": "cnnc.api",
    "summary": "cnnc.api",
    "load": "cnnc.api",
    "compile_source": "cnnc.api",
    "render": "cnnc.api",
    "diagram": "cnnc.api",
    "check": "cnnc.api",
    "search": "cnnc.runs",  # called; the name is also the search room's (see `_Cnnc`)
    "train": "cnnc.runs",
    "CnncError": "cnnc.dsl.diagnostics",
    "Diagnostic": "cnnc.dsl.diagnostics",
}
_EARLIER = {
    "load_program": "cnnc.api",
    "elaborate_file": "cnnc.api",
}  # still there; `cnnc.api` has them


def __getattr__(name: str):
    if name == "search":  # the room, which calls `cnnc.runs.search` (see `_Cnnc`)
        import importlib

        return importlib.import_module("cnnc.search")
    if name in _LAZY or name in _EARLIER:
        import importlib

        return getattr(importlib.import_module(_LAZY.get(name) or _EARLIER[name]), name)
    raise AttributeError(f"module 'cnnc' has no attribute {name!r}")


class _SearchRoom(_types.ModuleType):
    """`cnnc.search` is the search room (`search/`, a subpackage) and, called, `cnnc.runs.search`."""

    def __call__(self, *args, **kwargs):
        """`cnnc.search(path, trials=…, out=…)`: `cnnc search` from Python (`help(cnnc.runs.search)`)."""
        import importlib

        return importlib.import_module("cnnc.runs").search(*args, **kwargs)


class _Cnnc(_types.ModuleType):
    """The package: when the import system binds the subpackage `search` to it, that module becomes
    callable, so `cnnc.search(...)` runs a search whether or not `cnnc.search.driver` was imported."""

    def __setattr__(self, name: str, value) -> None:
        if name == "search" and type(value) is _types.ModuleType:
            value.__class__ = _SearchRoom
        super().__setattr__(name, value)


def __dir__() -> list[str]:
    """The public API (imported or not yet) beside what the module holds."""
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CnncError",
    "Diagnostic",
    "__version__",
    "check",
    "compile_source",
    "diagram",
    "graph",
    "load",
    "render",
    "search",
    "summary",
    "train",
]

_sys.modules[__name__].__class__ = _Cnnc
