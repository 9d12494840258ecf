"""`cnnc summary`: per-layer and total output shape, parameters, MACs, memory and receptive field.

Pure Python: never imports torch, except with `--latency`, which lowers each layer to time it
(`compiler/lower/latency.py`). With a shape error the table still prints up to the failing node,
then the diagnostic, and the exit code is 1.
"""

from __future__ import annotations

import sys

from cnnc.commands import common
from cnnc.dsl.diagnostics import printable

HELP = "report shapes, parameters, MACs, memory and receptive fields per layer"
DESCRIPTION = """\
Print a table like the lecture's VGG-16 table: per layer the output shape, the activation memory
(elements), the parameters, the multiply-accumulates (conv and linear, batch 1) and the receptive
field; then totals. FLOPs are reported as 2 × MACs, and labelled as such.

memory: the elements of the tensors the module `cnnc.load` builds allocates in a forward pass at
batch 1 — the input and each layer's output, except outputs written in place (a ReLU, a residual
`+`) and views of their input (Flatten, Identity, Dropout at inference).

examples:
  cnnc summary zoo/vgg16.cnn
  cnnc summary resnet50 --depth 1
  cnnc summary zoo/alexnet_2012.cnn --arg towers=2 --format json
  cnnc summary resnet50 --input 3,448,448 --format markdown
  cnnc summary resnet50 --batch 32                            # MACs and memory per batch of 32
  cnnc summary resnet50 --train --batch 32 --optimizer adam   # peak memory of a training step
  cnnc summary zoo/resnet18.cnn --latency                     # each layer timed on this CPU
"""


def configure(p) -> None:
    common.add_program_args(p)
    p.add_argument(
        "--depth",
        "-d",
        type=int,
        metavar="K",
        help="group the layers of blocks nested deeper than K into one row (0 = stages)",
    )
    common.add_format_arg(p, ("table", "json", "markdown", "csv"), "table")
    p.add_argument(
        "--dtype",
        choices=("float32", "float16", "bfloat16", "float64"),
        default="float32",
        help="element type for memory in bytes (default: float32)",
    )
    p.add_argument(
        "--all", action="store_true", help="also list in-place activations and views in the table"
    )
    p.add_argument(
        "--train",
        action="store_true",
        help="also estimate the peak memory of one training step (weights, gradients, "
        "optimiser state, saved activations)",
    )
    p.add_argument(
        "--batch",
        type=int,
        metavar="B",
        help="batch size: MACs and memory per batch of B samples, and the --train estimate's (default: 1)",
    )
    p.add_argument(
        "--optimizer",
        choices=("sgd", "adam"),
        default="sgd",
        help="optimiser of the --train estimate: SGD with momentum or Adam (default: sgd)",
    )
    p.add_argument(
        "--latency",
        action="store_true",
        help="also time each layer on --device (the median of repeated runs at --batch, in "
        "--dtype; kept in ~/.cache/cnnc, so a layer met before is not timed again) and the whole "
        "network end to end; imports torch",
    )
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        help="where --latency times the layers (default: cpu)",
    )
    common.add_color_arg(p)


def run(args) -> int:
    from cnnc.compiler.analysis import table
    from cnnc.compiler.analysis.summary import group, summarize

    if args.depth is not None and args.depth < 0:
        raise common.UsageError("--depth must be 0 or more")
    _check_training_args(args)
    if args.device is not None and not args.latency:
        raise common.UsageError("--device chooses where --latency times the layers: add --latency")
    result = common.elaborate_from_args(args)
    errors = [d for d in result.diagnostics if d.is_error]
    if result.graph is None or (errors and len(result.graph) == 0):
        from cnnc.dsl.diagnostics import CnncError

        raise CnncError(*result.diagnostics)
    summary = summarize(result.graph, args.dtype, args.batch or 1)
    rows = summary.layers if args.depth is None else group(summary, result.graph, args.depth)
    training = _training(result.graph, summary, args)
    latency = _latency(result.graph, summary, args)
    by_row = None if latency is None else _row_latency(rows, latency, args.depth is not None)
    if args.format == "json":
        data = summary.to_json()
        if args.depth is not None:
            data["groups"] = [table.row_json(r) for r in rows]
        if training is not None:
            data["training"] = training.to_json()
        if latency is not None:
            _latency_json(data, latency, by_row)
        import json  # here, not at the top: a table never needs it (nor csv)

        print(json.dumps(data, indent=2))
    elif args.format == "csv":
        print(table.csv_text(rows, by_row), end="")
    else:
        markdown = args.format == "markdown"
        print(table.table(summary, rows, args.all, markdown=markdown, latency=by_row))
        if training is not None:
            print("\n" + "\n".join(table.training_lines(training)))
        if latency is not None:
            print(_latency_line(latency))
    common.print_diagnostics(result.diagnostics, args, style="full")
    return common.USER_ERROR if errors else common.OK


def _latency(graph, summary, args) -> dict | None:
    """`--latency`: {"layers": {node name: ms}, "predicted_ms", "measured_ms", "device", "batch",
    "dtype"}; None without it, or for a network with errors (nothing to lower)."""
    if not args.latency:
        return None
    if summary.failed_at is not None or not graph.ok:
        print("note: --latency times a network without errors: no timings", file=sys.stderr)
        return None
    _check_latency_memory(summary, args.file)
    import torch

    from cnnc.compiler.lower.latency import LatencyTable, TimingFailed, device_text, end_to_end

    if args.device == "cuda" and not torch.cuda.is_available():
        raise common.UserError(
            "--device cuda was asked for, but torch sees no CUDA GPU",
            "leave --device out to time the layers on the CPU",
        )
    device = torch.device(args.device or "cpu")
    batch = args.batch or 1
    lookup = LatencyTable(device, batch=batch)
    try:
        layers = lookup.layers(graph, args.dtype)
        measured = end_to_end(graph, device, batch, args.dtype)
    except TimingFailed as exc:
        raise common.UserError(
            f"--latency on {printable(str(args.file))}: {printable(str(exc))}",
            "try another --dtype (float32 runs everywhere) or a smaller --batch",
        ) from None
    except (RuntimeError, MemoryError) as exc:
        raise common.UserError(
            f"--latency on {printable(str(args.file))}: the network did not run end to end: "
            f"{printable(str(exc).splitlines()[0])}",
            "try another --dtype (float32 runs everywhere) or a smaller --batch",
        ) from None
    for note in lookup.notes:  # an ignored cache file, a cache folder that cannot be written
        print(f"note: {printable(note)}", file=sys.stderr)
    return {
        "layers": {graph.node(i).name: ms for i, ms in layers.items()},
        "predicted_ms": sum(layers.values()),
        "measured_ms": measured,
        "device": device_text(device),
        "batch": batch,
        "dtype": args.dtype,
        "timed": lookup.measured,
    }


def _check_latency_memory(summary, file) -> None:
    """Timing allocates the weights and a batch's activations: refused past the memory budget."""
    from cnnc.compiler import limits
    from cnnc.compiler.analysis.memory import DTYPE_BYTES

    need = (summary.params + summary.activations) * DTYPE_BYTES[summary.dtype]
    budget = limits.max_memory()
    if need > budget:
        raise common.UserError(
            f"--latency on {printable(str(file))} would allocate about {need / 2**30:,.1f} GiB (weights and activations at "
            f"batch {summary.batch}), over the memory budget of {budget / 2**30:,.1f} GiB",
            "time a smaller --batch; " + limits.memory_help(),
        )


def _row_latency(rows, latency: dict, grouped: bool) -> dict[str, float]:
    """{row name: ms}: a layer's own, or the sum of a group's layers (`--depth`); the input has
    none."""
    layers = latency["layers"]
    if not grouped:
        return {r.name: layers[r.name] for r in rows if r.name in layers}
    sums = {}
    for r in rows:
        inside = [ms for n, ms in layers.items() if n == r.name or n.startswith(r.name + ".")]
        if inside:
            sums[r.name] = sum(inside)
    return sums


def _latency_json(data: dict, latency: dict, by_row: dict) -> None:
    for layer in data["layers"]:
        if layer["name"] in latency["layers"]:
            layer["latency_ms"] = latency["layers"][layer["name"]]
    for group in data.get("groups", ()):
        if group["name"] in by_row:
            group["latency_ms"] = by_row[group["name"]]
    data["latency"] = {k: v for k, v in latency.items() if k != "layers"}


def _latency_line(latency: dict) -> str:
    """The totals' latency line: the sum of the layers, and the network timed end to end."""
    timed = latency["timed"]
    fresh = f"{timed} layer{'s' if timed != 1 else ''} timed now" if timed else "all from the cache"
    return (
        f"latency      {latency['predicted_ms']:.3f} ms predicted (the sum of the layers), "
        f"{latency['measured_ms']:.3f} ms measured end to end; batch {latency['batch']}, "
        f"{latency['dtype']}, {latency['device']} ({fresh})"
    )


def _check_training_args(args) -> None:
    if args.batch is not None and args.batch < 1:
        raise common.UsageError(f"--batch must be 1 or more, but got {args.batch}")
    if not args.train and args.optimizer != "sgd":
        raise common.UsageError(
            "--optimizer chooses the optimiser of the training estimate: add --train"
        )


def _training(graph, summary, args):
    """The training-memory estimate, when asked for and the network is whole."""
    if not args.train or summary.failed_at is not None or summary.output is None:
        return None
    from cnnc.compiler.analysis.training_memory import training_memory

    return training_memory(graph, args.batch or 1, args.optimizer, args.dtype)
