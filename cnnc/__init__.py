"""cnnc: a declarative graph compiler and architecture-search playground for CNNs.

`cnnc.graph(path)` gives the shaped graph IR, `cnnc.summary(path)` its analysis and `cnnc.load(path)`
a PyTorch module. Heavy dependencies load only when used: importing cnnc does not import torch.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "graph": "cnnc.api",
    "load_program": "cnnc.api",
    "elaborate_file": "cnnc.api",
    "summary": "cnnc.api",
    "load": "cnnc.api",
    "compile_source": "cnnc.api",
    "render": "cnnc.api",
    "CnncError": "cnnc.dsl.diagnostics",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnnc' has no attribute {name!r}")


__all__ = list(_LAZY)
