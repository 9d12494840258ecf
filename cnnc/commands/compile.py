"""`cnnc compile`: lower a network to PyTorch; write standalone source or an exported program.

Prints a short summary (parameters, MACs, input and output shapes), then writes the artifact the
`-o` suffix asks for.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cnnc.commands import common, extras
from cnnc.commands.files import check_output, writing
from cnnc.dsl import safefs
from cnnc.dsl.diagnostics import printable

HELP = "lower a network to standalone PyTorch source (.py) or a torch.export program (.pt)"
DESCRIPTION = """\
Lower a network to PyTorch. The output's suffix picks the artifact:
  OUT.py    standalone source: one nn.Module class that needs only torch (no cnnc), module names as
            the program's labels, shapes as comments on the forward lines. Same seed, same weights
            and outputs as `cnnc.load`.
  OUT.pt    a torch.export program (eval mode, dynamic batch), weights included;
  OUT.pt2   the same (torch.export's own suffix). Load either with torch.export.load(OUT).module().
  OUT.onnx  ONNX (opset 18, dynamic batch, input `x`, output `y`), one file with the weights inside
            (a `.onnx.data` file beside it only for a model over protobuf's 2 GB, and then said).
FILE may be a run folder (`cnnc train --out RUN`): its program, arguments, input and weights are
used, and an ONNX file carries the run's class names and preprocessing as metadata_props
(`cnnc.classes`, `cnnc.preprocessing`, `cnnc.input`).
--weights PATH loads a checkpoint (a state_dict in .pt/.pth, or .safetensors) into the .pt/.onnx
artifact, strictly by key; --weights-partial loads what matches and keeps the rest newly initialised.
--optimize inference rewrites the .pt/.onnx model for inference after the weights are loaded:
BatchNorm folded into the preceding convolution, Dropout and Identity dropped.
Without -o, writes NETWORK.py in the current directory; `-o -` prints the source to stdout.

examples:
  cnnc compile zoo/vgg16.cnn -o /tmp/vgg16.py
  cnnc compile resnet50 -o resnet50.pt --seed 0
  cnnc compile runs/digits -o digits.onnx
  cnnc compile resnet18 --weights resnet18.pth -o resnet18.onnx
  cnnc compile resnet50 --optimize inference -o resnet50.pt2
  cnnc compile zoo/alexnet_2012.cnn --arg towers=2 -o -
"""

SUFFIXES = (".py", ".pt", ".pt2", ".onnx")
# onnx checks the file; onnxscript is torch.export's ONNX writer, and without it torch's
# TorchScript-based exporter writes the file instead (`compiler/lower/onnx_export.py` says which)
ONNX_MODULES = ("onnx",)


def configure(p) -> None:
    common.add_program_args(p, run_folder=True)
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="where to write: OUT.py (source), OUT.pt or "
        "OUT.pt2 (torch.export program), - (source to stdout); default: ./NETWORK.py",
    )
    p.add_argument(
        "--seed",
        type=common.seed,
        metavar="S",
        help="seed the weights (.pt) or make S the "
        "generated class's default seed (.py); default: unseeded, as torch's own layers",
    )
    p.add_argument(
        "--weights",
        metavar="[LABEL=]PATH",
        help="load a checkpoint into the .pt/.onnx artifact "
        "(a state_dict in .pt/.pth, or .safetensors), strictly by key; LABEL=PATH loads it into "
        "the part with that label (`body=resnet50.pth`)",
    )
    p.add_argument(
        "--weights-partial",
        action="store_true",
        help="with --weights: load the tensors that "
        "match and keep the rest newly initialised (a new head), listing them",
    )
    p.add_argument(
        "--optimize",
        choices=("inference",),
        help="rewrite the .pt/.onnx model to run "
        "inference faster: BatchNorm folded into convolutions, Dropout dropped",
    )
    common.add_color_arg(p)


def run(args) -> int:
    from cnnc.compiler.analysis.summary import summarize

    out = output_path(args.output)
    source_only = out is None or out == "-" or Path(out).suffix == ".py"
    run = common.use_run(args, weights=not source_only)
    if args.weights and (out is None or out == "-" or Path(out).suffix == ".py"):
        raise common.UsageError(
            "--weights needs a .pt, .pt2 or .onnx output: standalone source holds no "
            "weights (load the checkpoint into its class with load_state_dict)"
        )
    if args.optimize and (out is None or out == "-" or Path(out).suffix == ".py"):
        raise common.UsageError(
            "--optimize needs a .pt, .pt2 or .onnx output: folding BatchNorm changes "
            "the weights, which standalone source does not hold"
        )
    graph = common.graph_from_args(args)
    from cnnc.api import check_lint

    check_lint(graph)
    summary = summarize(graph)
    report = sys.stderr if out == "-" else sys.stdout
    print(describe(graph, summary), file=report)
    if out == "-":
        print(source(graph, args))
        return common.OK
    path = check_output(out or f"{graph.network}.py")
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        note = (
            write_source(graph, args, path)
            if path.suffix == ".py"
            else write_program(graph, args, path, run)
        )
    print(f"wrote {path}: {note}", file=report)
    return common.OK


def output_path(out: str | None) -> str | None:
    if out is not None and out != "-" and Path(out).suffix not in SUFFIXES:
        raise common.UsageError(
            f"-o must end in .py, .pt, .pt2 or .onnx (or be -), but got `{out}`"
        )
    if out is not None and Path(out).suffix == ".onnx":
        extras.require("`cnnc compile -o X.onnx`", *ONNX_MODULES)  # before the work
    if out is not None and out != "-":
        check_output(out)  # before the work: a folder or a path under a file
    return out


def describe(graph, summary) -> str:
    """`resnet50: 25,557,032 params, 4.09 G MACs, [3, 224, 224] → [1000]`."""
    from cnnc.dsl.numbers import si

    return (
        f"{summary.network}: {summary.params:,} params, {si(summary.macs, largest='G')} MACs, "
        f"{graph.io_text()}"
    )


def source(graph, args) -> str:
    from cnnc.compiler.lower.source import to_source

    return to_source(graph, seed=args.seed, origin=str(args.file))


def write_source(graph, args, path: Path) -> str:
    from cnnc.compiler.lower.fx import class_name

    safefs.write_text(path, source(graph, args))  # UTF-8: the header and titles hold non-ASCII text
    return f"class {class_name(graph.network)}, needs only torch"


def write_program(graph, args, path: Path, run=None) -> str:
    from cnnc.compiler.lower.export import export_program
    from cnnc.compiler.lower.fx import to_graph_module
    from cnnc.compiler.lower.onnx_export import export_onnx

    model = to_graph_module(graph, seed=args.seed)
    if args.weights:
        load_checkpoint(model, args)
    if args.optimize:
        from cnnc.compiler.lower.optimize import for_inference

        # Weights stay contiguous: torch.export's archive warns about channels_last ones, and the
        # layout is the loading runtime's choice (`.to(memory_format=torch.channels_last)`).
        model = for_inference(model, channels_last=False)
    if path.suffix == ".onnx":
        note = write_with_sidecars(
            path, lambda inner: export_onnx(model, inner, metadata=onnx_metadata(run))
        )
    else:
        with safefs.replacing_path(path) as (tmp, _):
            note = export_program(model, tmp)
    return f"{note}; optimised for {args.optimize}" if args.optimize else note


def onnx_metadata(run) -> dict[str, str]:
    """What an ONNX file compiled from a run folder carries for its users (`metadata_props`): the
    class names and the preprocessing, as JSON text."""
    import json

    if run is None:
        return {}
    prep = run.preprocessing.to_json()
    return {
        "cnnc.network": run.network,
        "cnnc.input": json.dumps(list(run.input)),
        "cnnc.classes": json.dumps(list(run.classes)),
        "cnnc.preprocessing": json.dumps(prep),
    }


def write_with_sidecars(path: Path, write) -> str:
    """`write(inner)` into a private folder beside `path`, under `path`'s own name, then each file it
    made (the ONNX model and the weights file it names, `NAME.data`) moved into place as safefs does:
    the names inside the model stay right, and a link planted at any of them is replaced."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as folder:
        note = write(os.path.join(folder, path.name))
        for made in sorted(os.listdir(folder)):
            with safefs.replacing_path(path.parent / made) as (tmp, _):
                os.replace(os.path.join(folder, made), tmp)
    return note


def load_checkpoint(model, args) -> None:
    """`--weights [LABEL=]PATH`: strict unless `--weights-partial` (a part's load skips the keys the
    part lacks); the report is printed once."""
    from cnnc.api import with_weights

    label, path = split_weights(args.weights)
    report = with_weights(
        model, {label: path} if label else path, strict=not args.weights_partial
    ).cnnc_weights
    report = report[label] if label else report
    for line in report.lines():  # a checkpoint's keys are its own text: escaped
        print(f"weights: {printable(line, limit=10_000)}", file=sys.stderr)


def split_weights(text: str) -> tuple[str, str]:
    """`body=r50.pth` → ("body", "r50.pth"); a path (even one holding `=`, if it exists) → ("", path)."""
    import re

    label, eq, path = text.partition("=")
    if (
        eq
        and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", label)
        and not Path(text).exists()
    ):
        return label, path
    return "", text
