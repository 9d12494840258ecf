"""`cnnc summary`: per-layer and total output shape, parameters, MACs, memory and receptive field.

Pure Python: never imports torch. With a shape error the table still prints up to the failing node,
then the diagnostic, and the exit code is 1.
"""

from __future__ import annotations

from cnnc.commands import common

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
    common.add_color_arg(p)


def run(args) -> int:
    from cnnc.compiler.analysis import table
    from cnnc.compiler.analysis.summary import group, summarize

    if args.depth is not None and args.depth < 0:
        raise common.UsageError("--depth must be 0 or more")
    _check_training_args(args)
    result = common.elaborate_from_args(args)
    errors = [d for d in result.diagnostics if d.is_error]
    if result.graph is None or (errors and len(result.graph) == 0):
        from cnnc.dsl.diagnostics import CnncError

        raise CnncError(*result.diagnostics)
    summary = summarize(result.graph, args.dtype, args.batch or 1)
    rows = summary.layers if args.depth is None else group(summary, result.graph, args.depth)
    training = _training(result.graph, summary, args)
    if args.format == "json":
        data = summary.to_json()
        if args.depth is not None:
            data["groups"] = [table.row_json(r) for r in rows]
        if training is not None:
            data["training"] = training.to_json()
        import json  # here, not at the top: a table never needs it (nor csv)

        print(json.dumps(data, indent=2))
    elif args.format == "csv":
        print(table.csv_text(rows), end="")
    else:
        print(table.table(summary, rows, args.all, markdown=args.format == "markdown"))
        if training is not None:
            print("\n" + "\n".join(table.training_lines(training)))
    common.print_diagnostics(result.diagnostics, args, style="full")
    return common.USER_ERROR if errors else common.OK


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
