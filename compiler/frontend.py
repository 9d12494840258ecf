"""A file to a graph: load the program, elaborate it, and (on request) dump each stage and lint the IR.

The one entry the upper rooms (`search`, the API, the commands) use to get from source to a graph.
"""

from __future__ import annotations

from cnnc.compiler.hints import TOO_SMALL, with_smallest_input
from cnnc.dsl.diagnostics import InternalError
from cnnc.dsl.programs import load_program
from cnnc.dsl.records import replace


def elaborate_file(
    path, network=None, args=None, input_shape=None, decider=None, text=None, allow_import=()
):
    """Parse and elaborate; returns an `Elaboration` (graph + diagnostics). Syntax errors raise. An
    input too small (E0303) gets a help line with the smallest square input the network accepts."""
    from cnnc.compiler.elaborate import elaborate

    program = load_program(path, text, allow_import)
    result = elaborate(program, network, args, input_shape, decider)
    debug_and_lint(program, result)
    if decider is None and any(d.code == TOO_SMALL for d in result.diagnostics):
        result = replace(result, diagnostics=with_smallest_input(result, program, network, args))
    return result


def debug_and_lint(program, result) -> None:
    """`CNNC_DEBUG=1` dumps each stage's output to stderr; `CNNC_LINT=1` lints the graph (a failure is
    an internal error, not the user's)."""
    import os
    import sys

    if os.environ.get("CNNC_DEBUG"):
        for key, module in program.modules.items():
            print(f"--- AST of {key}: {len(module.items)} items", file=sys.stderr)
            for item in module.items:
                print(f"  {item!r}"[:400], file=sys.stderr)
        if result.graph is not None:
            print(f"--- graph `{result.graph.network}`\n{result.graph}", file=sys.stderr)
    if os.environ.get("CNNC_LINT") and result.graph is not None:
        check_lint(result.graph)


def check_lint(g) -> None:
    """Raise an internal error when the graph breaks an IR invariant (a bug in cnnc)."""
    problems = g.lint()
    if problems:
        raise InternalError("graph lint failed:\n  " + "\n  ".join(problems), dump=str(g))
