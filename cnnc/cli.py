"""`cnnc`: the command line. Each subcommand lives in `cnnc/commands/<name>.py`.

Exit codes everywhere: 0 success, 1 an error in the user's program or data (with diagnostics),
2 wrong command-line usage, 70 an internal error (a bug in cnnc: said so, with a saved report).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from cnnc.commands.common import INTERNAL_ERROR, OK, USAGE_ERROR, USER_ERROR, UsageError, UserError
from cnnc.dsl.records import record


@record
class Command:
    """One subcommand: `module` under `cnnc.commands` holds its `HELP`, `DESCRIPTION` (optional),
    `configure(parser)` and `run(args)`. `quick`: the command only reads files and prints, so the
    `cnnc` script ends a finished run at once, without the interpreter's teardown (freeing every
    object, a last garbage collection: about 10 ms of an 85 ms `cnnc summary resnet152`). The
    others may hold databases, threads, temporary files or buffered writes whose clean-up runs at
    exit, and `main` itself always returns."""

    module: str
    quick: bool = False


# the command table: `cnnc --help` lists it in this order; `tests/test_tables.py` holds each entry
# to its contract (the module imports, has a parser and help, and README's command table names it)
COMMANDS = {
    "check": Command("check", quick=True),
    "summary": Command("summary", quick=True),
    "fmt": Command("fmt"),
    "explain": Command("explain"),
    "ops": Command("ops"),
    "compile": Command("compile"),
    "render": Command("render"),
    "zoo": Command("zoo"),
    "space": Command("space"),
    "search": Command("search"),
    "search-report": Command("search_report"),
    "train": Command("train"),
    "features": Command("features"),
    "neighbors": Command("neighbors"),
}


class CommandMissing(Exception):
    """A command of the table whose module does not import: a bug in cnnc, never a silent gap."""


DESCRIPTION = """\
cnnc compiles .cnn network descriptions: it checks shapes, counts parameters, MACs, memory and
receptive fields, lowers networks to PyTorch, draws them, and searches over families of them.

examples:
  cnnc check zoo/vgg16.cnn
  cnnc summary resnet50 --depth 1
  cnnc summary zoo/alexnet_2012.cnn --arg towers=2 --format json
  cnnc fmt my_net.cnn --check
  cnnc ops Conv                 # the op reference: parameters, shape rule, counts
  cnnc compile resnet50 -o resnet50.py
  cnnc render googlenet --depth 1 -o googlenet.svg
  cnnc search zoo/spaces/tiny.cnn --trials 8 --out runs/tiny

`cnnc COMMAND --help` explains each command; `cnnc explain CODE` explains a diagnostic.
"""


class Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, as wide as the terminal. argparse measures the terminal with shutil,
    and builds a formatter for every argument it adds: importing shutil (with zlib, bz2 and lzma)
    cost each run ~2 ms, though help is rarely printed. The width rule is shutil's: $COLUMNS, then
    the terminal of stdout, then 80; less 2, as argparse takes it."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )


def _columns() -> int:
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of the command `only` alone (a run imports just its own
    command's module; `cnnc --help` lists them all)."""
    parser = argparse.ArgumentParser(
        prog="cnnc", description=DESCRIPTION, formatter_class=Formatter
    )
    parser.add_argument("--version", action="version", version=f"cnnc {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            continue
        module = command_module(name)
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=Formatter,
        )
        module.configure(p)
        p.set_defaults(run=module.run)
    return parser


def command_module(name: str):
    """The module of command `name`; one that does not import is `CommandMissing`, naming it."""
    module_name = f"cnnc.commands.{COMMANDS[name].module}"
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        raise CommandMissing(
            f"the module of `cnnc {name}`, {module_name}, does not import: {exc}"
        ) from exc


def _version() -> str:
    from cnnc import __version__

    return __version__


def entry() -> None:
    """The `cnnc` console script: `main` on the command line, then the exit."""
    argv = sys.argv[1:]
    code = main(argv)
    if argv and argv[0] in COMMANDS and COMMANDS[argv[0]].quick:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed pipe (`cnnc summary X | head`): nothing to add
            pass
        os._exit(code)
    sys.exit(code)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    named = argv[0] if argv and argv[0] in COMMANDS else None
    try:
        parser = build_parser(named)
    except CommandMissing as exc:
        if os.environ.get("CNNC_DEBUG"):
            raise
        return internal_error(exc, "")
    if unknown_command(parser, argv):
        return USAGE_ERROR
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return USAGE_ERROR
    return run_command(args)


def unknown_command(parser, argv: list[str]) -> bool:
    """A misspelt command gets a did-you-mean (argparse lists the choices but suggests none)."""
    names = list(COMMANDS)
    if not argv or argv[0].startswith("-") or argv[0] in names:
        return False
    import difflib

    close = difflib.get_close_matches(argv[0], names, n=1, cutoff=0.6)
    parser.print_usage(sys.stderr)
    hint = f"did you mean `{close[0]}`?" if close else f"the commands are {', '.join(names)}"
    print(f"cnnc: error: unknown command `{argv[0]}`: {hint}", file=sys.stderr)
    return True


def run_command(args) -> int:
    from cnnc.api import InternalError
    from cnnc.commands.common import command_budget, print_diagnostics
    from cnnc.commands.files import is_usage
    from cnnc.dsl.diagnostics import CnncError

    say_replaced_links()
    try:
        prepare_file(args)
        with command_budget():
            return args.run(args)
    except CnncError as exc:
        print_diagnostics(exc.diagnostics, args)
        return USAGE_ERROR if is_usage(exc.diagnostics) else USER_ERROR
    except UsageError as exc:
        print(f"cnnc {args.command}: {_shown(exc)}", file=sys.stderr)
        return USAGE_ERROR
    except UserError as exc:
        return user_error(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (
        MemoryError
    ):  # past every budget: still the user's input, said in one line, not a traceback
        print(f"error: `cnnc {args.command}` ran out of memory", file=sys.stderr)
        print(
            "  = help: give it smaller inputs (fewer networks, samples or trials), or run it on a machine "
            "with more memory",
            file=sys.stderr,
        )
        return USER_ERROR
    except BrokenPipeError:
        return OK
    except InternalError as exc:
        return internal_error(exc, exc.dump)
    except Exception as exc:  # a bug in cnnc: say so, save a report, no traceback
        missing = missing_extra(exc, args)
        if missing is not None:  # an optional module that is not installed is no bug
            return user_error(missing)
        if os.environ.get("CNNC_DEBUG"):
            raise
        return internal_error(exc, "")


def missing_extra(exc: BaseException, args):
    from cnnc.commands.extras import missing_from

    return missing_from(exc, f"`cnnc {args.command}`")


def user_error(exc: UserError) -> int:
    print(f"error: {_shown(exc)}", file=sys.stderr)
    for line in exc.helps:
        print(f"  = help: {_shown(line)}", file=sys.stderr)
    return USER_ERROR


def say_replaced_links() -> None:
    """Every write that replaced a link planted where cnnc writes is said on stderr, naming it."""
    from cnnc.dsl import safefs

    safefs.link_hook = _say_replaced_link


def _say_replaced_link(written) -> None:
    from cnnc.dsl.diagnostics import printable

    print(
        f"note: `{printable(written.path)}` was a link (to `{printable(written.link_target or '?')}`): "
        "cnnc replaced the link with its file and left what it pointed to untouched",
        file=sys.stderr,
    )


def _shown(text) -> str:
    """A message that may quote a user's path or study: its control and bidi characters escaped."""
    from cnnc.dsl.diagnostics import printable

    return printable(str(text), limit=2000)


def prepare_file(args) -> None:
    """`FILE:NETWORK` names one network of a file (as `cnnc zoo` lists them); a path that falls back
    to the zoo is said so. `cnnc check` takes several files and does this per file."""
    from cnnc.commands.files import note_zoo_fallback, split_model

    if isinstance(getattr(args, "file", None), str):
        args.file, args.network = split_model(args.file, getattr(args, "network", None))
        note_zoo_fallback(args.file)


def internal_error(exc: BaseException, dump: str) -> int:
    import tempfile
    import traceback

    report = "".join(traceback.format_exception(exc))
    if dump:
        report += "\n--- IR dump ---\n" + dump
    fd, path = tempfile.mkstemp(prefix="cnnc-internal-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        f.write(report)
    print(f"internal error: {_shown(exc)}", file=sys.stderr)
    print(
        "this is a bug in cnnc, not in your file; please report it with the saved details:",
        file=sys.stderr,
    )
    print(f"  {path}", file=sys.stderr)
    return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
