"""cnnc: a declarative graph compiler and architecture-search playground for CNNs.

`cnnc.graph(path)` gives the shaped graph IR, `cnnc.summary(path)` its analysis (printed as
`cnnc summary`'s table) and `cnnc.load(path)` a PyTorch module; each also takes the program as
`text=`. `help(cnnc.load)` and the others say more; `__all__` lists them. Heavy dependencies load
only when used: importing cnnc does not import torch.
"""

__version__ = "0.1.0"

# the public names, each from the module that defines it, imported on first use
_LAZY = {
    "graph": "cnnc.api",
    "summary": "cnnc.api",
    "load": "cnnc.api",
    "compile_source": "cnnc.api",
    "render": "cnnc.api",
    "diagram": "cnnc.api",
    "load_program": "cnnc.api",
    "elaborate_file": "cnnc.api",
    "CnncError": "cnnc.dsl.diagnostics",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnnc' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API (imported or not yet) beside what the module holds."""
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["CnncError", "__version__", "compile_source", "diagram", "elaborate_file", "graph", "load",
           "load_program", "render", "summary"]
