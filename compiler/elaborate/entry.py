"""The room's entry points: `elaborate` a network of a program, and find the networks a file
defines (`network_names`, `default_network`).
"""

from __future__ import annotations

from pathlib import Path

from cnnc.compiler import limits
from cnnc.compiler.elaborate import bodies, scopes, unused
from cnnc.compiler.elaborate.apply import Elaborator
from cnnc.compiler.elaborate.state import Abort, Decider, Elaboration
from cnnc.dsl import ast
from cnnc.dsl.diagnostics import CnncError, error
from cnnc.dsl.imports import Program

DEPTH_HELP = "build repeats with a list, `[B(i) for i in range(n)]`, rather than by nesting"


def elaborate(
    program: Program,
    network: str | None = None,
    args=None,
    input_shape=None,
    decider: Decider | None = None,
) -> Elaboration:
    """Elaborate one network of `program` (the default one when `network` is None)."""
    main = scopes.module_scopes(program)[program.main]
    name = network or default_network(program)
    el = Elaborator(decider)
    graph = None
    limits.ensure_recursion_room()
    try:
        graph = bodies.run_network(el, main, name, dict(args or {}), input_shape)
    except Abort as failure:
        el.report(failure.diagnostic)
    except (
        RecursionError
    ):  # a value nested by thousands of statements; depth is bounded per expression
        el.report(
            error(
                "E0705",
                "the program nests values too deeply to elaborate",
                None,
                helps=(DEPTH_HELP,),
            )
        )
    return Elaboration(graph, tuple(el.b.diagnostics) + unused.static_warnings(main))


def network_names(program: Program) -> list[tuple[str, bool]]:
    """(name, concrete) of each network the main file defines; concrete = needs no arguments."""
    out = []
    for item in program.main_module.items:
        if isinstance(item, ast.NetworkAlias):
            out.append((item.name, True))
        elif isinstance(item, ast.NetworkDef):
            required = [p for p in item.params or () if p.default is None]
            out.append((item.name, not required))
    return out


def default_network(program: Program) -> str:
    """The file's stem when a network has that name, else its only concrete network."""
    names = network_names(program)
    stem = Path(program.main).stem
    if any(n == stem for n, _ in names):
        return stem
    concrete = [n for n, ok in names if ok]
    if len(concrete) == 1:
        return concrete[0]
    if not names:
        raise CnncError(
            error(
                "E0205",
                f"`{Path(program.main).name}` defines no network",
                None,
                helps=("add `network Name { input [3, 224, 224] return in -> … }`",),
            )
        )
    listed = ", ".join(f"`{n}`" for n, _ in names)
    raise CnncError(
        error(
            "E0205",
            f"`{Path(program.main).name}` defines several networks: {listed}",
            None,
            helps=("choose one with `--network NAME`",),
        )
    )
