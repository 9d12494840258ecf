"""The import table of STYLE.md §3: imports point down the pipeline, heavy dependencies are leaves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGES = {"dsl": "cnnc.dsl", "compiler": "cnnc.compiler", "search": "cnnc.search", "cnnc": "cnnc"}
HEAVY = {"torch", "lark", "networkx", "optuna", "graphviz", "sklearn", "matplotlib", "PIL", "numpy"}

# module prefix → (our packages it may import, third-party heavy packages it may import)
RULES = [
    ("cnnc.dsl.source", (), ()),
    ("cnnc.dsl.diagnostics", ("cnnc.dsl.source",), ()),
    ("cnnc.dsl.parse", ("cnnc.dsl",), ("lark",)),
    ("cnnc.dsl", ("cnnc.dsl",), ()),
    ("cnnc.compiler.ir", ("cnnc.dsl.source", "cnnc.dsl.diagnostics", "cnnc.compiler.ops", "cnnc.compiler.types"),
     ("networkx",)),
    ("cnnc.compiler.lower", ("cnnc.compiler", "cnnc.dsl.diagnostics", "cnnc.dsl.source"), ("torch",)),
    ("cnnc.compiler.render", ("cnnc.compiler", "cnnc.dsl.diagnostics", "cnnc.dsl.source"), ("graphviz",)),
    ("cnnc.compiler.analysis", ("cnnc.compiler.analysis", "cnnc.compiler.ir", "cnnc.compiler.ops",
                                "cnnc.compiler.types"), ()),
    ("cnnc.compiler", ("cnnc.compiler", "cnnc.dsl"), ()),
    ("cnnc.search.evaluators", ("cnnc.search", "cnnc.compiler", "cnnc.dsl"), ("torch", "numpy")),
    # data sets are tensors: the loader is torch-side like the evaluators that consume it
    ("cnnc.search.data", ("cnnc.search", "cnnc.dsl"), ("torch", "numpy", "sklearn", "PIL")),
    ("cnnc.search.driver", ("cnnc.search", "cnnc.compiler", "cnnc.dsl"), ("optuna", "torch")),
    # the workers of a study: its storage, the loop, and the processes of `--workers` (GPUs counted)
    ("cnnc.search.storage", ("cnnc.search", "cnnc.dsl"), ("optuna",)),
    ("cnnc.search.worker", ("cnnc.search", "cnnc.dsl"), ("optuna",)),
    ("cnnc.search.launch", ("cnnc.search",), ("torch",)),
    ("cnnc.search.report", ("cnnc.search", "cnnc.compiler", "cnnc.dsl"), ("optuna", "matplotlib")),
    # a training run, its features and their pictures run models on tensors, like the evaluators
    ("cnnc.search.training", ("cnnc.search", "cnnc.dsl"), ("torch", "matplotlib")),
    ("cnnc.search.features", ("cnnc.search", "cnnc.dsl"), ("torch", "numpy")),
    ("cnnc.search.pictures", ("cnnc.search",), ("numpy", "matplotlib", "sklearn")),
    ("cnnc.search", ("cnnc.search", "cnnc.compiler", "cnnc.dsl"), ()),
    ("cnnc", ("cnnc",), ()),  # the API and CLI import everything, lazily (checked below)
]


def modules():
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([package, *parts]), path


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at top level?) for each import statement."""
    tree = ast.parse(path.read_text())
    top = set(id(n) for n in tree.body)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, id(node) in top))
    return out


def rule_for(module: str):
    return next(r for r in RULES if module == r[0] or module.startswith(r[0] + "."))


@pytest.mark.parametrize("module, path", list(modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_follow_the_table(module, path):
    _, ours, heavy = rule_for(module)
    for name, at_top in imports(path):
        root = name.split(".")[0]
        if name.startswith("cnnc"):
            if module.startswith("cnnc.dsl") or module.startswith("cnnc.compiler"):
                assert any(name == o or name.startswith(o + ".") for o in ours), f"{module} imports {name}"
        elif root in HEAVY and not module.startswith("cnnc.commands") and module != "cnnc.api":
            assert root in heavy, f"{module} imports {root}"
        if root in HEAVY and (module.startswith("cnnc.commands") or module in ("cnnc.api", "cnnc.cli")):
            assert not at_top, f"{module} imports {root} at import time: the CLI must stay light"
