"""What the subcommands share: program arguments, diagnostics output, exit codes."""

from __future__ import annotations

import argparse
import math
import os
import sys

OK, USER_ERROR, USAGE_ERROR, INTERNAL_ERROR = 0, 1, 2, 70


class UsageError(Exception):
    """Wrong command-line usage (exit 2)."""


class UserError(Exception):
    """A problem with the user's files, folders or storage that no diagnostic locates (exit 1):
    printed as `error: MESSAGE` and a `= help:` line per help."""

    def __init__(self, message: str, *helps: str):
        super().__init__(message)
        self.helps = helps


def add_program_args(
    p: argparse.ArgumentParser,
    input_option: bool = True,
    many: bool = False,
    run_folder: bool = False,
) -> None:
    if run_folder:
        p.add_argument(
            "file",
            help="a run folder (`cnnc train --out RUN`: its program, input, weights and "
            "preprocessing), a .cnn file, or a zoo model's name",
        )
    elif many:
        p.add_argument(
            "files",
            nargs="+",
            metavar="FILE",
            help="a .cnn file, a zoo model's name "
            "(`resnet50`, `inception_module:naive`) or - for stdin; several allowed",
        )
    else:
        p.add_argument(
            "file", help="a .cnn file, or a zoo model's name (`resnet50`, `inception_module:naive`)"
        )
    p.add_argument(
        "--network",
        "-n",
        metavar="NAME",
        help="which network of the file (default: the file's own name, or its only network)",
    )
    p.add_argument(
        "--arg",
        "-a",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an argument of a parameterised network, in .cnn syntax (repeatable): "
        "--arg towers=2 --arg depths=[3,4,6,3]",
    )
    if input_option:
        p.add_argument(
            "--input",
            "-i",
            metavar="[NAME=]C,H,W",
            type=parse_input,
            action=InputAction,
            help="override the declared input shape, e.g. 3,256,256; a network with several "
            "inputs takes one per input by name: -i image=3,256,256 -i depth=1,256,256",
        )
    p.add_argument(
        "--allow-import",
        action="append",
        default=[],
        metavar="DIR",
        type=import_dir,
        help="a directory outside the file's own folder that its imports may reach (repeatable; "
        "the CNNC_PATH environment variable lists more)",
    )


def command_budget():
    """A context in which the command's elaborations spend one budget together (`limits.Ledger`)."""
    from cnnc.compiler import limits

    return limits.spending()


def import_dir(text: str) -> str:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"not a directory: {text!r}")
    return text


def add_format_arg(p: argparse.ArgumentParser, choices, default: str) -> None:
    p.add_argument(
        "--format",
        "-f",
        choices=choices,
        default=default,
        help=f"output format (default: {default})",
    )


def add_color_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour diagnostics (default: auto, when writing to a terminal)",
    )


MAX_SEED = 2**32 - 1  # numpy's bound (the search's data split); torch and random take it too


def seed(text: str) -> int:
    """`--seed S`: a whole number 0 … 2³² − 1, for every seeded library alike."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to {MAX_SEED}, but got {text!r}"
        )
    return value


def finite(flag: str, value: float) -> None:
    """A float option must be a number: `float()` also reads `nan` and `inf`."""
    if not math.isfinite(value):
        raise UsageError(f"{flag} must be a finite number, but got {shown_number(value)}")


def positive(flag: str, value: float) -> None:
    finite(flag, value)
    if value <= 0:
        raise UsageError(f"{flag} must be a positive number, but got {shown_number(value)}")


def not_negative(flag: str, value: float) -> None:
    finite(flag, value)
    if value < 0:
        raise UsageError(f"{flag} must be 0 or more, but got {shown_number(value)}")


def below_one(flag: str, value: float) -> None:
    """A fraction that may be 0 but not 1 (`--label-smoothing`: 1 leaves no target)."""
    finite(flag, value)
    if not 0 <= value < 1:
        raise UsageError(f"{flag} must lie in [0, 1), but got {shown_number(value)}")


def at_least(flag: str, value: int, least: int, why: str = "") -> None:
    if value < least:
        reason = f" ({why})" if why else ""
        raise UsageError(f"{flag} must be at least {least}{reason}, but got {value}")


def batch_size(value: int) -> None:
    """Training in batches of one leaves BatchNorm nothing to normalise over: no step is taken."""
    at_least("--batch-size", value, 2, "BatchNorm needs batches of two")


THREADS_PER_CPU = 4  # past a few per CPU torch only slows; far past, its OpenMP runtime crashes


def threads(value: int, flag: str = "--threads") -> None:
    """`--threads N` (or `--workers N`, processes): 1 … 4 per CPU of this machine."""
    at_least(flag, value, 1)
    cpus = os.cpu_count() or 1
    most = THREADS_PER_CPU * cpus
    if value > most:
        raise UsageError(
            f"{flag} must be at most {most:,} ({THREADS_PER_CPU} per CPU; this machine has "
            f"{cpus}), but got {value:,}"
        )


def shown_number(value: float) -> str:
    """`-1.0` as `-1`, as the user most likely typed it; other floats as Python writes them."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def parse_input(text: str):
    """`3,224,224` → a shape; `image=3,224,224` → (name, shape)."""
    name, eq, shape = text.rpartition("=")
    if not eq:
        return parse_shape(text)
    if not name.isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected NAME=C,H,W with NAME an input's name, but got {text!r}"
        )
    return name, parse_shape(shape)


class InputAction(argparse.Action):
    """`--input`: one shape, or one `NAME=C,H,W` per named input (collected into a dict)."""

    def __call__(self, parser, namespace, value, option_string=None):
        current = getattr(namespace, self.dest, None)
        named = isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str)
        if not named:
            if current is not None:
                parser.error(
                    f"{option_string} was given twice; a network with several inputs takes NAME=C,H,W each"
                )
            setattr(namespace, self.dest, value)
            return
        if current is not None and not isinstance(current, dict):
            parser.error(
                f"{option_string}: give every input by name (NAME=C,H,W), or one shape alone"
            )
        name, shape = value
        current = dict(current or {})
        if name in current:
            parser.error(f"{option_string} {name}=… was given twice")
        current[name] = shape
        setattr(namespace, self.dest, current)


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(part) for part in text.replace("x", ",").replace("×", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected C,H,W such as 3,224,224, but got {text!r}"
        ) from None
    if len(dims) not in (1, 3) or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"expected C,H,W of positive integers, but got {text!r}")
    return dims


def use_color(args) -> bool:
    choice = getattr(args, "color", "auto")
    if choice == "auto":
        return sys.stderr.isatty() and "NO_COLOR" not in os.environ
    return choice == "always"


def print_diagnostics(diagnostics, args, style: str | None = None) -> None:
    """Diagnostics to stderr (full, concise) — or stdout as JSON when `--format json` asked for it."""
    from cnnc.dsl.diagnostics import render

    if not diagnostics:
        return
    if style is None:
        chosen = getattr(args, "format", "full")
        style = chosen if chosen in ("full", "concise", "json") else "full"
    text = render(diagnostics, style=style, color=use_color(args) and style == "full")
    print(text, file=sys.stderr)


def elaborate_from_args(args, decider=None):
    """Parse and elaborate the program named by the command line; raises CnncError on syntax errors."""
    from cnnc.api import elaborate_file, parse_arg_values

    values = parse_arg_values(getattr(args, "arg", ()))
    result = elaborate_file(
        args.file,
        args.network,
        values,
        getattr(args, "input", None),
        decider,
        allow_import=getattr(args, "allow_import", ()),
    )
    return result  # an input too small has its smallest working one in a help (`compiler/hints.py`)


def graph_from_args(args):
    """The shaped graph, or CnncError with every error; warnings go to stderr."""
    from cnnc.dsl.diagnostics import CnncError

    result = elaborate_from_args(args)
    errors = [d for d in result.diagnostics if d.is_error]
    if errors:
        raise CnncError(*result.diagnostics)
    print_diagnostics(
        result.diagnostics, args, style="full" if getattr(args, "format", "") == "json" else None
    )
    return result.graph


def use_run(args, weights: bool = True):
    """A run folder (`cnnc train --out RUN`) given as FILE: its program, network, arguments, input and
    (with `weights`) model.pt become the command's, unless the command line names them itself; one
    line on stderr says what is used. Returns the `training.runs.Run`, or None for a program file."""
    from cnnc.training.runs import is_run, read_run

    if not isinstance(getattr(args, "file", None), str):
        return None
    if not is_run(args.file):
        _note_run_beside(args)
        return None
    run = read_run(args.file)
    if args.network is not None and args.network != run.network:
        raise UsageError(f"--network {args.network}: the run `{args.file}` trained `{run.network}`")
    args.file, args.network = str(run.program), run.network
    args.arg = list(args.arg) or list(run.args)
    if getattr(args, "input", None) is None:
        args.input = run.input
    taken = weights and getattr(args, "weights", "") is None
    if taken:
        args.weights = str(run.weights)
    print(run.describe(weights=taken), file=sys.stderr)
    return run


def _note_run_beside(args) -> None:
    """A run's `network.cnn` named as a file declares its own input, not the run's: say so."""
    from pathlib import Path

    from cnnc.training.runs import PROGRAM, is_run

    path = Path(args.file)
    if path.name == PROGRAM and getattr(args, "input", None) is None and is_run(path.parent):
        print(
            f"note: `{path}` is a run's program; its declared input and no weights are used here: give the run "
            f"folder `{path.parent}` to use the run's input size, weights and preprocessing",
            file=sys.stderr,
        )
