"""`cnnc check`: parse, elaborate and shape-check; report every problem found. Never imports torch."""

from __future__ import annotations

import json
import sys

from cnnc.commands import common

HELP = "check .cnn files' syntax, names and shapes"
DESCRIPTION = """\
Check .cnn files: syntax, names, arguments and the shape of every layer. Every network of a file
that needs no arguments is checked (or the one named with --network, or FILE:NETWORK). `-` reads
the program from stdin; its imports resolve from the current directory. A search space (a network
with `choice(…)`) is checked through its members, and its decisions are listed. Exit 0 when there
is no error (warnings allowed), 1 when a program has errors.

examples:
  cnnc check zoo/vgg16.cnn
  cnnc check zoo/*.cnn
  cnnc check inception_module:naive
  cnnc check zoo/alexnet_2012.cnn --arg towers=2
  cnnc check zoo/spaces/tiny.cnn          # a search space: its decisions
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
    from cnnc.commands import files
    from cnnc.compiler import hints, limits
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
    with limits.spending(
        SPENT_HELP, "the networks of this file"
    ) as ledger:  # the file's networks share one budget
        for net in names:
            result = elaborate(program, net, values, args.input)
            debug_and_lint(program, result)
            if any(d.code == SEARCH_SPACE for d in result.diagnostics):
                space, found = check_space(program, net, values, args.input)
                diagnostics += found
                checked += [space] if space is not None else []
            else:
                diagnostics += hints.with_smallest_input(result, program, net, values)
                if result.ok and result.graph is not None:
                    checked.append(result.graph)
            if ledger.exhausted:  # the networks left would each stop at their first node
                break
    return program, diagnostics, checked, names


SPENT_HELP = "check the networks of a large file one at a time: `cnnc check FILE:NETWORK`"

SEARCH_SPACE = "E0501"  # a `choice(…)` met without a decider: the network is a search space
SPACE_SECONDS = (
    1.0  # walking a space's decision tree, then sampling a larger one, each at most this long
)
SPACE_SAMPLES = 50


class CheckedSpace:
    """A search space whose members were checked: its decisions and its size."""

    def __init__(self, network: str, found, size):
        self.network, self.found, self.size = network, found, size

    def lines(self) -> list[str]:
        from cnnc.commands.space import decision_rows

        n, conditional = len(self.found), sum(d.when is not None for d in self.found)
        when = f", {conditional} conditional" if conditional else ""
        head = (
            f"ok: {self.network}: a search space with {n} decision{'s' if n != 1 else ''}{when}, "
            f"{self.size.text()}; `cnnc search` explores it"
        )
        return [head, *decision_rows(self.found)]

    def to_json(self) -> dict:
        return {
            "network": self.network,
            "decisions": [d.name for d in self.found],
            "members": self.size.members,
            "exact": self.size.exact,
        }


def check_space(program, network: str, values, input_shape):
    """(CheckedSpace or None, diagnostics): a space is checked through its members, walked depth-first
    for a second and sampled beyond for another (each member's cost is bounded as a network's is);
    when every member fails, the first member's errors are the program's. Decisions met only in
    members not reached are not listed."""
    from cnnc.search.space import Space, decisions, walk

    space = Space(program, network, values, input_shape)
    size, members = walk(space, seconds=SPACE_SECONDS)
    if not size.complete:
        members += _sampled(space)
    if not any(m.ok for m in members):
        return None, [d for d in members[0].diagnostics if d.code != SEARCH_SPACE]
    return CheckedSpace(network, decisions(members), size), []


def _sampled(space) -> list:
    """Seeded random members, up to SPACE_SAMPLES or SPACE_SECONDS, whichever comes first."""
    import random
    import time

    from cnnc.search.space import uniform

    rng, members = random.Random(0), []
    deadline = time.perf_counter() + SPACE_SECONDS
    while len(members) < SPACE_SAMPLES and time.perf_counter() < deadline:
        members.append(space.member(uniform(rng)))
    return members


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
                    "spaces": [c.to_json() for c in checked if isinstance(c, CheckedSpace)],
                    "diagnostics": [to_json(d) for d in diagnostics],
                },
                indent=2,
            )
        )
        return status
    common.print_diagnostics(diagnostics, args, style=args.format)
    for g in checked:
        if isinstance(g, CheckedSpace):
            print("\n".join(g.lines()))
        else:
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
