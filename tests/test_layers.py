"""The import table of STYLE.md §3: imports point down the pipeline, heavy dependencies are leaves.

Every module of cnnc is covered: a module's rule is its own entry in RULES, else its room's (the package
it sits in). There is no catch-all: a new room (a package) needs its own rule, so it cannot slip in
under a wider one unnoticed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGES = {
    "zoo": "cnnc.zoo",
    "dsl": "cnnc.dsl",
    "compiler": "cnnc.compiler",
    "training": "cnnc.training",
    "search": "cnnc.search",
    "cnnc": "cnnc",
}
HEAVY = frozenset(
    {"torch", "lark", "networkx", "optuna", "graphviz", "sklearn", "matplotlib", "PIL", "numpy"}
)


@dataclass(frozen=True)
class Rule:
    """What a module may import. An entry of `ours` allows that module and everything under it, except
    the root `cnnc`, which allows only the package's own (lazy) names. `never` narrows `ours` (siblings
    stay strangers). `lazy`: any heavy package, but only inside functions (the CLI must start light)."""

    ours: tuple[str, ...]
    heavy: tuple[str, ...] = ()
    never: tuple[str, ...] = ()
    lazy: bool = False


_COMPILER_UPPER = ("cnnc.compiler.analysis", "cnnc.compiler.lower", "cnnc.compiler.render")
_SEARCH = ("cnnc.search", "cnnc.training", "cnnc.compiler", "cnnc.dsl")
# the elaborator's helpers (its values, a derivation's record, coercion, node estimates) are its
# leaves: its stages build on them and on `state`, never the reverse
_HELPERS = ("values", "derive", "coerce", "estimate")
_STAGES = tuple(
    f"cnnc.compiler.elaborate.{m}"
    for m in ("apply", "bind", "bodies", "budget", "builtins", "choices", "decided", "entry")
    + ("evaluate", "scopes", "unused")
)
_TRAINING = ("cnnc.training", "cnnc.dsl")

# room (a package) or module → its rule; rooms in pipeline order, each followed by its modules' own rules
RULES = {
    "cnnc.zoo": Rule(()),  # data: the shipped .cnn files
    "cnnc.dsl": Rule(("cnnc.dsl",)),
    "cnnc.dsl.records": Rule(()),  # the record classes every layer defines its values with
    "cnnc.dsl.safefs": Rule(()),  # writing and opening files in shared folders, for every layer
    "cnnc.dsl.numbers": Rule(()),  # numbers as cnnc prints them, for every layer
    "cnnc.dsl.source": Rule(("cnnc.dsl.records",)),
    "cnnc.dsl.diagnostics": Rule(("cnnc.dsl.records", "cnnc.dsl.source")),
    "cnnc.dsl.syntax": Rule(
        ("cnnc.dsl",), ("lark",)
    ),  # lark for a text not parsed before (`dsl/parse.py`)
    "cnnc.dsl.programs": Rule(("cnnc.dsl", "cnnc.zoo")),  # a model named by its zoo name
    # the compiler's shared modules (names, limits, the front end); the upper rooms build on the
    # elaborator's graph, never the reverse
    "cnnc.compiler": Rule(("cnnc.compiler", "cnnc.dsl"), never=_COMPILER_UPPER),
    # the elaborator: its stages build on `state` and on its helpers, the leaves, which import none
    # of them
    "cnnc.compiler.elaborate": Rule(("cnnc.compiler", "cnnc.dsl"), never=_COMPILER_UPPER),
    "cnnc.compiler.elaborate.state": Rule(
        ("cnnc.compiler", "cnnc.dsl"), never=_COMPILER_UPPER + _STAGES
    ),
    **{
        f"cnnc.compiler.elaborate.{m}": Rule(
            ("cnnc.compiler", "cnnc.dsl"),
            never=_COMPILER_UPPER + _STAGES + ("cnnc.compiler.elaborate.state",),
        )
        for m in _HELPERS
    },
    # the smallest input a network accepts, for `elaborate_file` (the API and the commands alike)
    "cnnc.compiler.hints": Rule(("cnnc.compiler.elaborate", "cnnc.dsl.records")),
    "cnnc.compiler.types": Rule(("cnnc.dsl.records", "cnnc.dsl.source", "cnnc.dsl.diagnostics")),
    "cnnc.compiler.ir": Rule(
        (
            "cnnc.dsl.records",
            "cnnc.dsl.source",
            "cnnc.dsl.diagnostics",
            "cnnc.compiler.ops",
            "cnnc.compiler.types",
        ),
        ("networkx",),
    ),
    "cnnc.compiler.ops": Rule(
        (
            "cnnc.compiler.ops",
            "cnnc.compiler.types",
            "cnnc.dsl.records",
            "cnnc.dsl.source",
            "cnnc.dsl.diagnostics",
            "cnnc.dsl.literals",
        )
    ),
    "cnnc.compiler.analysis": Rule(
        (
            "cnnc.compiler.analysis",
            "cnnc.compiler.ir",
            "cnnc.compiler.ops",
            "cnnc.compiler.types",
            "cnnc.dsl.records",
            "cnnc.dsl.numbers",
        )
    ),
    "cnnc.compiler.lower": Rule(
        (
            "cnnc.compiler",
            "cnnc.dsl.diagnostics",
            "cnnc.dsl.source",
            "cnnc.dsl.safefs",
            "cnnc.dsl.numbers",
        ),
        ("torch",),
        never=("cnnc.compiler.render",),
    ),
    "cnnc.compiler.render": Rule(
        (
            "cnnc.compiler",
            "cnnc.dsl.diagnostics",
            "cnnc.dsl.records",
            "cnnc.dsl.source",
            "cnnc.dsl.safefs",
            "cnnc.dsl.numbers",
        ),
        ("graphviz",),
        never=("cnnc.compiler.lower",),
    ),
    # training below search: the trainer `cnnc train` and the search's evaluator share, data sets,
    # features and run records; of the search it imports only the table of data kinds (its choices
    # import nothing of ours but records)
    "cnnc.training": Rule(_TRAINING),
    "cnnc.training.loop": Rule(_TRAINING, ("torch",)),
    # data sets are tensors: the loader is torch-side like the trainer that consumes them
    "cnnc.training.data": Rule(
        _TRAINING + ("cnnc.search.choices",), ("torch", "numpy", "sklearn", "PIL")
    ),
    # data files read as data (a restricted unpickler, archive and pixel budgets), like the loader
    "cnnc.training.datafiles": Rule(_TRAINING, ("numpy", "torch", "PIL")),
    # a run's checkpoints are read by the checkpoint reader of lowering (its budgets and tensor checks)
    "cnnc.training.train": Rule(
        _TRAINING + ("cnnc.compiler.lower.weights",), ("torch", "matplotlib")
    ),
    # features and their pictures run models on tensors, like the trainer
    "cnnc.training.features": Rule(_TRAINING + ("cnnc.compiler",), ("torch", "numpy")),
    "cnnc.training.features_file": Rule(_TRAINING, ("numpy",)),  # read as data: no torch
    "cnnc.training.pictures": Rule(
        ("cnnc.training", "cnnc.dsl.safefs"), ("numpy", "matplotlib", "sklearn")
    ),
    # run folders' records: read by `cnnc.load(RUN)`, so nothing heavy
    "cnnc.training.runs": Rule(_TRAINING + ("cnnc.search.choices",)),
    "cnnc.search": Rule(_SEARCH),
    # the tables of named choices (evaluators, samplers, data-set kinds): the CLI builds its parsers from
    # them, so they import nothing but records (their entries name their functions, imported on use)
    "cnnc.search.choices": Rule(("cnnc.dsl.records",)),
    "cnnc.search.driver": Rule(_SEARCH, ("optuna", "torch")),
    # the workers of a study: its storage, the loop, and the processes of `--workers` (GPUs counted)
    # architectures up to isomorphism: networkx's graph hashing and matching on the IR
    "cnnc.search.architecture": Rule(_SEARCH, ("networkx",)),
    "cnnc.search.storage": Rule(("cnnc.search", "cnnc.dsl"), ("optuna",)),
    # a study's files checked before Optuna opens them, and Optuna's parsing errors made user errors;
    # the machine's memory (`limits`) bounds the file it reads
    "cnnc.search.studyfiles": Rule(
        ("cnnc.search", "cnnc.dsl", "cnnc.compiler.limits"), ("optuna",)
    ),
    "cnnc.search.worker": Rule(("cnnc.search", "cnnc.dsl"), ("optuna",)),
    # the sampler a worker turns to after a reused proposal: members elaborated, Optuna's base class
    "cnnc.search.explore": Rule(("cnnc.search", "cnnc.compiler"), ("optuna",)),
    "cnnc.search.evolution": Rule(
        (), ("optuna",)
    ),  # a sampler: Optuna's base class, nothing of ours
    "cnnc.search.launch": Rule(("cnnc.search",), ("torch",)),
    "cnnc.search.report": Rule(_SEARCH, ("optuna", "matplotlib")),
    "cnnc.search.evaluators": Rule(_SEARCH, ("torch", "numpy")),
    # the top: the lazy package, the API over the rooms below, the commands over the API, the CLI over all
    "cnnc": Rule(()),
    # `cnnc.load` reads run folders (`training.runs`, which imports nothing heavy) and builds a
    # space's supernet (`load(supernet=True)`)
    "cnnc.api": Rule(
        (
            "cnnc.dsl",
            "cnnc.compiler",
            "cnnc.zoo",
            "cnnc.training.runs",
            "cnnc.search.space",
            "cnnc.search.evaluators.supernet",
        ),
        lazy=True,
    ),
    "cnnc.commands": Rule(
        ("cnnc", "cnnc.api", "cnnc.commands", "cnnc.search", "cnnc.training", "cnnc.compiler")
        + ("cnnc.dsl",),
        lazy=True,
    ),
    "cnnc.cli": Rule(("cnnc", "cnnc.api", "cnnc.commands", "cnnc.dsl"), lazy=True),
    # `cnnc.search`/`cnnc.train`: the commands' own work, on the command line the keywords make
    "cnnc.runs": Rule(
        ("cnnc.api", "cnnc.cli", "cnnc.commands", "cnnc.search", "cnnc.dsl.literals"), lazy=True
    ),
}

# the pipeline, bottom first: a module imports its own layer or one below it, never one above
LAYERS = [
    ("cnnc.zoo",),
    ("cnnc.dsl",),
    ("cnnc.compiler",),
    ("cnnc.training", "cnnc.search.choices"),  # the table of choices names functions, imports none
    ("cnnc.search",),
    ("cnnc", "cnnc.api"),
    ("cnnc.commands",),
    ("cnnc.cli", "cnnc.runs"),
]


def modules() -> dict[str, Path]:
    """Every module of cnnc, by dotted name (a package by its own name, for its `__init__.py`)."""
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


MODULES = modules()
PACKAGE_NAMES = {m for m, p in MODULES.items() if p.name == "__init__.py"}


def room(module: str) -> str:
    """The package a module sits in (a package is its own room)."""
    return module if module in PACKAGE_NAMES else module.rpartition(".")[0]


def rule_for(module: str) -> Rule:
    return RULES.get(module) or RULES[room(module)]


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at top level?) for each import; `from a import b` names `a.b` when that is a
    module of ours, so `from cnnc.compiler import elaborate` counts as importing the elaborator."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [
                f"{node.module}.{a.name}"
                for a in node.names
                if f"{node.module}.{a.name}" in MODULES
            ]
            plain = len(subs) < len(node.names)
            out += [(name, id(node) in top) for name in subs + [node.module] * plain]
    return out


def allows(entries, name: str) -> bool:
    return any(name == e or (e != "cnnc" and name.startswith(e + ".")) for e in entries)


def layer(module: str) -> int:
    """The index of a module's layer in LAYERS: that of the most specific entry that holds it (the
    longest name), so `cnnc.search.choices` sits below the rest of `cnnc.search`."""
    held = [(len(n), i) for i, names in enumerate(LAYERS) for n in names if allows((n,), module)]
    return max(held)[1]


@pytest.mark.parametrize("module", list(MODULES))
def test_imports_follow_the_table(module):
    rule = rule_for(module)
    for name, at_top in imports(MODULES[module]):
        root = name.split(".")[0]
        if root == "cnnc":
            assert allows(rule.ours, name) and not allows(rule.never, name), (
                f"{module} imports {name}"
            )
        elif root in HEAVY and rule.lazy:
            assert not at_top, f"{module} imports {root} at import time: the CLI must stay light"
        elif root in HEAVY:
            assert root in rule.heavy, f"{module} imports {root}"


@pytest.mark.parametrize("module", list(MODULES))
def test_imports_point_down_the_pipeline(module):
    for name, _ in imports(MODULES[module]):
        if name.split(".")[0] == "cnnc":
            assert layer(name) <= layer(module), f"{module} imports {name}, a layer above it"


def test_every_room_has_its_own_rule():
    """A new package (say `compiler/elaborate/`) must say what it may import: no catch-all covers it."""
    missing = sorted(p for p in PACKAGE_NAMES if p not in RULES)
    assert not missing, f"rooms without a rule in RULES: {missing}"


def test_the_elaborator_imports_its_modules_at_the_top_and_without_a_cycle():
    """No module of the elaborator imports a sibling inside a function (which would hide a cycle),
    and their imports at the top form no cycle: each module builds only on those below it."""
    room_ = "cnnc.compiler.elaborate"
    inside = {m: p for m, p in MODULES.items() if allows((room_,), m)}
    below = {}
    for module, path in inside.items():
        late = [name for name, at_top in imports(path) if not at_top and allows((room_,), name)]
        assert not late, f"{module} imports {late} inside a function"
        below[module] = {name for name, _ in imports(path) if name in inside and name != room_}
    done: set[str] = set()
    while below.keys() - done:
        ready = {m for m in below.keys() - done if below[m] <= done}
        assert ready, f"an import cycle among {sorted(below.keys() - done)}"
        done |= ready


def test_every_rule_names_a_module():
    stale = sorted(key for key in RULES if key not in MODULES)
    assert not stale, f"rules for modules that do not exist: {stale}"


def test_every_module_has_a_layer():
    for module in MODULES:
        assert any(allows((n,), module) for names in LAYERS for n in names), module


def test_search_never_imports_the_top():
    """Search is a room of the pipeline, not a client of the API: loading a program, elaborating it
    and reporting a bug all live below it."""
    top = ("cnnc", "cnnc.api", "cnnc.commands", "cnnc.cli")
    for module, path in MODULES.items():
        if module.startswith("cnnc.search"):
            wrong = [name for name, _ in imports(path) if name in top or allows(top[1:], name)]
            assert not wrong, f"{module} imports {wrong}"


def test_the_table_catches_a_search_module_importing_the_api(tmp_path):
    """The check above is not vacuous: a lazy import of the API inside a function is seen."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from cnnc.api import load_program\n    from cnnc import api\n")
    names = [name for name, _ in imports(bad)]
    assert names == ["cnnc.api", "cnnc.api"]
    assert not allows(RULES["cnnc.search"].ours, "cnnc.api")
    assert layer("cnnc.api") > layer("cnnc.search.driver")
