"""`cnnc compile`: lower a network to PyTorch; write standalone source or an exported program.

Prints a short summary (parameters, MACs, input and output shapes), then writes the artifact the
`-o` suffix asks for.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cnnc.commands import common
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
  OUT.onnx  ONNX (opset 18, dynamic batch, input `x`, output `y`), weights included.
--weights PATH loads a checkpoint (a state_dict in .pt/.pth, or .safetensors) into the .pt/.onnx
artifact, strictly by key; --weights-partial loads what matches and keeps the rest newly initialised.
--optimize inference rewrites the .pt/.onnx model for inference after the weights are loaded:
BatchNorm folded into the preceding convolution, Dropout and Identity dropped.
Without -o, writes NETWORK.py in the current directory; `-o -` prints the source to stdout.

examples:
  cnnc compile zoo/vgg16.cnn -o /tmp/vgg16.py
  cnnc compile resnet50 -o resnet50.pt --seed 0
  cnnc compile resnet18 --weights resnet18.pth -o resnet18.onnx
  cnnc compile resnet50 --optimize inference -o resnet50.pt2
  cnnc compile zoo/alexnet_2012.cnn --arg towers=2 -o -
"""

SUFFIXES = (".py", ".pt", ".pt2", ".onnx")


def configure(p) -> None:
    common.add_program_args(p)
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
    p.add_argument("--weights", metavar="PATH", help="load a checkpoint into the .pt/.onnx artifact "
                   "(a state_dict in .pt/.pth, or .safetensors), strictly by key")
    p.add_argument("--weights-partial", action="store_true", help="with --weights: load the tensors that "
                   "match and keep the rest newly initialised (a new head), listing them")
    p.add_argument("--optimize", choices=("inference",), help="rewrite the .pt/.onnx model to run "
                   "inference faster: BatchNorm folded into convolutions, Dropout dropped")
    common.add_color_arg(p)


def run(args) -> int:
    from cnnc.compiler.analysis.summary import summarize

    out = output_path(args.output)
    if args.weights and (out is None or out == "-" or Path(out).suffix == ".py"):
        raise common.UsageError("--weights needs a .pt, .pt2 or .onnx output: standalone source holds no "
                                "weights (load the checkpoint into its class with load_state_dict)")
    if args.optimize and (out is None or out == "-" or Path(out).suffix == ".py"):
        raise common.UsageError("--optimize needs a .pt, .pt2 or .onnx output: folding BatchNorm changes "
                                "the weights, which standalone source does not hold")
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
            else write_program(graph, args, path)
        )
    print(f"wrote {path}: {note}", file=report)
    return common.OK


def output_path(out: str | None) -> str | None:
    if out is not None and out != "-" and Path(out).suffix not in SUFFIXES:
        raise common.UsageError(f"-o must end in .py, .pt, .pt2 or .onnx (or be -), but got `{out}`")
    if out is not None and out != "-":
        check_output(out)  # before the work: a folder or a path under a file
    return out


def describe(graph, summary) -> str:
    """`resnet50: 25,557,032 params, 4.09 G MACs, [3, 224, 224] → [1000]`."""
    from cnnc.compiler.lower.source import human

    return (
        f"{summary.network}: {summary.params:,} params, {human(summary.macs)} MACs, "
        f"{graph.io_text()}"
    )


def source(graph, args) -> str:
    from cnnc.compiler.lower.source import to_source

    return to_source(graph, seed=args.seed, origin=str(args.file))


def write_source(graph, args, path: Path) -> str:
    from cnnc.compiler.lower.fx import class_name

    safefs.write_text(path, source(graph, args))  # UTF-8: the header and titles hold non-ASCII text
    return f"class {class_name(graph.network)}, needs only torch"


def write_program(graph, args, path: Path) -> str:
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
        note = write_with_sidecars(path, lambda inner: export_onnx(model, inner))
    else:
        with safefs.replacing_path(path) as (tmp, _):
            note = export_program(model, tmp)
    return f"{note}; optimised for {args.optimize}" if args.optimize else note


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
    """`--weights`: strict unless `--weights-partial`; what was newly initialised is said."""
    from cnnc.api import with_weights

    report = with_weights(model, args.weights, strict=not args.weights_partial).cnnc_weights
    for line in report.lines():  # a checkpoint's keys are its own text: escaped
        print(f"weights: {printable(line, limit=10_000)}", file=sys.stderr)
    if report.new:
        print(f"weights: newly initialised: {printable(', '.join(report.new), limit=10_000)}", file=sys.stderr)
