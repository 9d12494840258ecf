"""`cnnc check`: parse, elaborate and shape-check; report every problem found. Never imports torch."""

from __future__ import annotations

import json
import sys

from cnnc.commands import common

HELP = "check .cnn files' syntax, names and shapes"
DESCRIPTION = """\
Check .cnn files: syntax, names, arguments and the shape of every layer. Every network of a file
that needs no arguments is checked (or the one named with --network, or FILE:NETWORK). `-` reads
the program from stdin; its imports resolve from the current directory. Exit 0 when there is no
error (warnings allowed), 1 when a program has errors.

examples:
  cnnc check zoo/vgg16.cnn
  cnnc check zoo/*.cnn
  cnnc check inception_module:naive
  cnnc check zoo/alexnet_2012.cnn --arg towers=2
  cat my_net.cnn | cnnc check -
  cnnc check my_net.cnn --format concise
"""


def configure(p) -> None:
    common.add_program_args(p, many=True)
    common.add_format_arg(p, ("full", "concise", "json"), "full")
    common.add_color_arg(p)


def run(args) -> int:
    from cnnc.api import parse_arg_values
    from cnnc.dsl.diagnostics import CnncError

    values = parse_arg_values(args.arg)
    diagnostics, checked, names, unchecked = [], [], [], []
    for name in args.files:
        try:
            program, found, ok, networks = check_one(name, args, values)
        except CnncError as exc:
            if len(args.files) == 1:
                raise
            diagnostics += exc.diagnostics
            continue
        if not networks:
            unchecked.append(program)
        diagnostics += found
        checked += ok
        names += networks
    return _report(args, unchecked, names, diagnostics, checked)


def check_one(name: str, args, values):
    """(program, diagnostics, checked graphs, network names) of one FILE or FILE:NETWORK."""
    from cnnc.api import load_program
    from cnnc.commands import files, hints
    from cnnc.compiler import limits
    from cnnc.compiler.elaborate import elaborate, network_names
    from cnnc.compiler.frontend import debug_and_lint

    name, network = files.split_model(name, args.network)
    files.note_zoo_fallback(name)
    if name == files.STDIN:
        program = load_program(files.STDIN_NAME, files.read_stdin(), allow_import=args.allow_import)
    else:
        program = load_program(name, allow_import=args.allow_import)
    names = [network] if network else [n for n, concrete in network_names(program) if concrete]
    if not network and values and len(network_names(program)) == 1:
        names = [network_names(program)[0][0]]
    diagnostics, checked = [], []
    with limits.spending(SPENT_HELP, "the networks of this file") as ledger:  # the file's networks share one budget
        for net in names:
            result = elaborate(program, net, values, args.input)
            debug_and_lint(program, result)
            diagnostics += hints.with_smallest_input(result, program, net, values)
            if result.ok and result.graph is not None:
                checked.append(result.graph)
            if ledger.exhausted:  # the networks left would each stop at their first node
                break
    return program, diagnostics, checked, names


SPENT_HELP = "check the networks of a large file one at a time: `cnnc check FILE:NETWORK`"


def _report(args, unchecked, names, diagnostics, checked) -> int:
    from cnnc.commands.files import is_usage
    from cnnc.dsl.diagnostics import dedupe

    diagnostics = dedupe(diagnostics)
    errors = [d for d in diagnostics if d.is_error]
    status = common.OK
    if errors:  # only files named on the command line that do not exist: a usage error, as for one
        status = common.USAGE_ERROR if is_usage(errors) else common.USER_ERROR
    if args.format == "json":
        from cnnc.dsl.diagnostics import to_json

        print(
            json.dumps(
                {
                    "ok": not errors,
                    "networks": names,
                    "diagnostics": [to_json(d) for d in diagnostics],
                },
                indent=2,
            )
        )
        return status
    common.print_diagnostics(diagnostics, args, style=args.format)
    for g in checked:
        print(f"ok: {g.network}: {g.io_text()}, {len(g)} nodes")
    for program in unchecked:
        _templates_only(program)
    return status


def _templates_only(program) -> None:
    """A file whose networks all need arguments parses, but nothing was checked: say what to pass."""
    from cnnc.compiler.elaborate import network_names

    templates = [n for n, concrete in network_names(program) if not concrete]
    what = f"networks that need arguments: {', '.join(templates)}" if templates else "no networks"
    print(f"ok: parsed; {what} (choose one with --network NAME --arg name=value)", file=sys.stderr)
