"""`cnnc fmt`: print a file in the canonical layout, check it, or rewrite it in place."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

from cnnc.commands import common
from cnnc.commands.files import writing
from cnnc.dsl import safefs

HELP = "print .cnn files in the canonical layout (--check, --write)"
DESCRIPTION = """\
Print a .cnn file in the canonical layout (4-space indents, `k = v` spacing, lines of at most 100
columns where a break can make them so, the line breaks you made between parts and your comments
kept). The formatted text parses to the same program, and formatting it again changes nothing.

examples:
  cnnc fmt my_net.cnn            # print the formatted text
  cnnc fmt --check zoo/*.cnn     # exit 1 and show a diff when a file is not formatted
  cnnc fmt --write my_net.cnn    # rewrite in place
"""


def configure(p) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help=".cnn files")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="report files that are not formatted (exit 1)"
    )
    mode.add_argument("--write", "-w", action="store_true", help="rewrite the files in place")
    common.add_color_arg(p)


def run(args) -> int:
    from cnnc.dsl.diagnostics import CnncError
    from cnnc.dsl.format import format_module
    from cnnc.dsl.imports import read_source
    from cnnc.dsl.parse import parse

    changed, diagnostics = [], []
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            raise common.UsageError(f"no such file: {name}")
        try:
            source = read_source(path, name)
            formatted = format_module(parse(source))
        except CnncError as exc:
            diagnostics += exc.diagnostics
            continue
        if not args.check and not args.write:
            sys.stdout.write(formatted)  # every file in the order given, changed or not
        if formatted == source.text:
            continue
        changed.append(name)
        if args.check:
            sys.stdout.writelines(
                difflib.unified_diff(
                    source.text.splitlines(True),
                    formatted.splitlines(True),
                    name,
                    f"{name} (formatted)",
                )
            )
        elif args.write:
            with writing(
                path, fix="make the file writable, or print the formatted text without --write"
            ):
                safefs.write_text(path, formatted)
    if diagnostics:
        raise CnncError(*diagnostics)
    if args.check and changed:
        print(
            f"{len(changed)} file{'s' if len(changed) != 1 else ''} would be reformatted",
            file=sys.stderr,
        )
        return common.USER_ERROR
    if args.write and changed:
        print(f"reformatted {len(changed)} file{'s' if len(changed) != 1 else ''}", file=sys.stderr)
    return common.OK
