"""No import cycle among cnnc's modules, counting the imports made inside functions.

A function-level import hides a cycle from Python (both modules load, in either order) but not from
the reader: two modules that import each other are one module in two files. The graph here has an
edge for every `import` / `from … import` of a module of ours, at the top of a file or inside a
function or an `if TYPE_CHECKING:` block alike (`test_layers.imports`). A package's own `__init__`
is not implied by importing one of its modules: a package that imports its submodules (the op
registry filling `REGISTRY`) is a cycle only when a submodule imports the package back.
"""

from __future__ import annotations

import networkx as nx
from test_layers import MODULES, imports

# (module, module) edges allowed to close a cycle, each with why it must; empty: none is needed
ALLOWED: dict[tuple[str, str], str] = {}


def module_graph(modules) -> nx.DiGraph:
    """module → each module of ours it imports (anywhere in its file), allowed edges left out."""
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for module, path in modules.items():
        for name, _ in imports(path):
            if name in modules and name != module and (module, name) not in ALLOWED:
                graph.add_edge(module, name)
    return graph


def cycle_texts(graph: nx.DiGraph) -> list[str]:
    """Each elementary cycle as `a → b → a`, from its first module by name, shortest first."""
    found = []
    for cycle in nx.simple_cycles(graph):
        start = cycle.index(min(cycle))
        found.append(cycle[start:] + cycle[:start])
    return [" → ".join([*c, c[0]]) for c in sorted(found, key=lambda c: (len(c), c))]


def test_no_import_cycle_among_cnnc_modules():
    cycles = cycle_texts(module_graph(MODULES))
    assert not cycles, "import cycles (move what both need into a module both can import):\n" + (
        "\n".join(cycles)
    )


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    """The check is not vacuous: an import inside a function closes a cycle too."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from cnnc.fake_b import thing\n")
    b.write_text("def late():\n    import cnnc.fake_a\n")
    graph = module_graph({"cnnc.fake_a": a, "cnnc.fake_b": b})
    assert cycle_texts(graph) == ["cnnc.fake_a → cnnc.fake_b → cnnc.fake_a"]


def test_every_allowed_edge_exists_and_gives_a_reason():
    for (module, name), why in ALLOWED.items():
        assert why.strip(), f"{module} → {name} needs a reason"
        assert name in [n for n, _ in imports(MODULES[module])], f"stale: {module} → {name}"
