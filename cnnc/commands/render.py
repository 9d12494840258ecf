"""`cnnc render`: draw a network with Graphviz (SVG, PNG, PDF, or DOT text)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnc.commands.common import (
    OK,
    USER_ERROR,
    UsageError,
    add_color_arg,
    add_program_args,
    print_diagnostics,
)
from cnnc.commands.files import check_output, writing

HELP = "draw a network as a diagram (SVG, PNG, PDF or DOT) with Graphviz"
DESCRIPTION = """\
draw a network: one node per layer with its key attributes, each edge marked with the shape it
carries, merges as ⊕ ⊗ ‖, block instances as nested clusters. The output's suffix picks the format;
images need Graphviz's `dot` program, DOT text does not. Without -o, DOT text goes to stdout.
A program with a shape error is drawn up to the failure, marked in red (the exit status is then 1).
An image is drawn only when Graphviz can lay it out in seconds (at most 1,500 boxes, 3,000 edges,
500 nested blocks, 500 edges at one box), and DOT text of at most 20,000 boxes; a larger network
is drawn with --depth.

examples:
  cnnc render resnet50 --depth 1 -o resnet50.svg
  cnnc render zoo/googlenet.cnn -o googlenet.png --direction LR
  cnnc render my_net.cnn | dot -Tpdf > my_net.pdf
"""


def configure(p: argparse.ArgumentParser) -> None:
    add_program_args(p)
    p.add_argument(
        "--output",
        "-o",
        metavar="OUT",
        type=Path,
        help="file to write: .svg, .png, .pdf (need `dot`) or .dot/.gv (default: DOT to stdout)",
    )
    p.add_argument(
        "--depth",
        "-d",
        metavar="K",
        type=_depth,
        help="collapse scopes deeper than K into one box each: 0 shows the stages, 1 the "
        "stages' blocks (default: draw every layer)",
    )
    p.add_argument(
        "--direction",
        choices=("TB", "LR"),
        default="TB",
        help="top to bottom or left to right (default: TB)",
    )
    p.add_argument(
        "--theme", choices=("light", "dark"), default="light", help="colours (default: light)"
    )
    p.add_argument(
        "--all-shapes",
        action="store_true",
        help="label every edge with its shape (default: only where the shape is new)",
    )
    p.add_argument(
        "--no-fold",
        action="store_true",
        help="draw runs of identical collapsed blocks one by one instead of once with ×N",
    )
    add_color_arg(p)


def _depth(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number 0 or more, but got {text!r}")
    return value


def run(args) -> int:
    from cnnc.commands.common import elaborate_from_args
    from cnnc.compiler.render.dot import FORMATS, DrawError, render, write

    if args.output is not None and args.output.suffix.lower() not in FORMATS:
        raise UsageError(
            f"`-o {args.output}`: the suffix picks the format, one of {', '.join(FORMATS)}"
        )
    if args.output is not None:
        check_output(args.output)  # before the work: a folder or a path under a file
    result = elaborate_from_args(args)
    print_diagnostics(result.diagnostics, args)
    if result.graph is None:  # elaboration stopped before a graph existed; the errors are printed
        return USER_ERROR
    image = args.output is not None and FORMATS[args.output.suffix.lower()] is not None
    try:
        digraph = render(
            result.graph,
            depth=args.depth,
            direction=args.direction,
            theme=args.theme,
            fold=not args.no_fold,
            shapes="all" if args.all_shapes else "changes",
            bound="image" if image else "text",
        )
        _emit(digraph, args.output, write)
    except DrawError as exc:
        print(f"error: {exc}\n  = help: {exc.help}", file=sys.stderr)
        return USER_ERROR
    return USER_ERROR if not result.ok else OK


def _emit(digraph, output: Path | None, write) -> None:
    if output is None:
        sys.stdout.write(digraph.source)
        return
    with writing(output):
        output.parent.mkdir(parents=True, exist_ok=True)  # as `cnnc compile` does
        write(digraph, output)
