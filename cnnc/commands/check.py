"""`cnnc check`: parse, elaborate and shape-check; report every problem found. Never imports torch."""

from __future__ import annotations

import json
import sys

from cnnc.commands import common

HELP = "check a .cnn file's syntax, names and shapes"
DESCRIPTION = """\
Check a .cnn file: syntax, names, arguments and the shape of every layer. Every network of the file
that needs no arguments is checked (or the one named with --network). Exit 0 when there is no error
(warnings allowed), 1 when the program has errors.

examples:
  cnnc check zoo/vgg16.cnn
  cnnc check zoo/alexnet_2012.cnn --arg towers=2
  cnnc check my_net.cnn --format concise
"""


def configure(p) -> None:
    common.add_program_args(p)
    common.add_format_arg(p, ("full", "concise", "json"), "full")
    common.add_color_arg(p)


def run(args) -> int:
    from cnnc.api import _debug_and_lint, load_program, parse_arg_values
    from cnnc.compiler.elaborate import elaborate, network_names

    program = load_program(args.file)
    values = parse_arg_values(args.arg)
    names = [args.network] if args.network else [n for n, concrete in network_names(program) if concrete]
    if not args.network and values and len(network_names(program)) == 1:
        names = [network_names(program)[0][0]]
    diagnostics, checked = [], []
    for name in names:
        result = elaborate(program, name, values, args.input)
        _debug_and_lint(program, result)
        diagnostics += result.diagnostics
        if result.ok and result.graph is not None:
            checked.append(result.graph)
    return _report(args, program, names, diagnostics, checked)


def _report(args, program, names, diagnostics, checked) -> int:
    from cnnc.dsl.diagnostics import dedupe

    diagnostics = dedupe(diagnostics)
    failed = any(d.is_error for d in diagnostics)
    if args.format == "json":
        from cnnc.dsl.diagnostics import to_json

        print(json.dumps({"ok": not failed, "networks": names,
                          "diagnostics": [to_json(d) for d in diagnostics]}, indent=2))
        return common.USER_ERROR if failed else common.OK
    common.print_diagnostics(diagnostics, args, style=args.format)
    for g in checked:
        print(f"ok: {g.network}: {g.input_type} → {g.output_type}, {len(g)} nodes")
    if not names:
        from cnnc.compiler.elaborate import network_names

        templates = [n for n, concrete in network_names(program) if not concrete]
        what = f"networks that need arguments: {', '.join(templates)}" if templates else "no networks"
        print(f"ok: parsed; {what} (choose one with --network NAME --arg name=value)", file=sys.stderr)
    return common.USER_ERROR if failed else common.OK
