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
  cnnc summary resnet50 --train --batch 32 --optimizer adam   # peak memory of a training step
"""



def configure(p) -> None:
    common.add_program_args(p)
    p.add_argument("--depth", "-d", type=int, metavar="K",
                   help="group the layers of blocks nested deeper than K into one row (0 = stages)")
    common.add_format_arg(p, ("table", "json", "markdown", "csv"), "table")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16", "float64"), default="float32",
                   help="element type for memory in bytes (default: float32)")
    p.add_argument("--all", action="store_true", help="also list in-place activations and views in the table")
    p.add_argument("--train", action="store_true",
                   help="also estimate the peak memory of one training step (weights, gradients, "
                   "optimiser state, saved activations)")
    p.add_argument("--batch", type=int, metavar="B", help="batch size of the --train estimate (default: 1)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                   help="optimiser of the --train estimate: SGD with momentum or Adam (default: sgd)")
    common.add_color_arg(p)


def run(args) -> int:
    from cnnc.compiler.analysis.summary import group, summarize

    if args.depth is not None and args.depth < 0:
        raise common.UsageError("--depth must be 0 or more")
    _check_training_args(args)
    result = common.elaborate_from_args(args)
    errors = [d for d in result.diagnostics if d.is_error]
    if result.graph is None or (errors and len(result.graph) == 0):
        from cnnc.dsl.diagnostics import CnncError

        raise CnncError(*result.diagnostics)
    summary = summarize(result.graph, args.dtype)
    rows = summary.layers if args.depth is None else group(summary, result.graph, args.depth)
    training = _training(result.graph, summary, args)
    if args.format == "json":
        data = summary.to_json()
        if args.depth is not None:
            data["groups"] = [_row_json(r) for r in rows]
        if training is not None:
            data["training"] = training.to_json()
        import json  # here, not at the top: a table never needs it (nor csv)

        print(json.dumps(data, indent=2))
    elif args.format == "csv":
        print(_csv(rows), end="")
    else:
        print(_table(summary, rows, args, markdown=args.format == "markdown"))
        if training is not None:
            print("\n" + "\n".join(_training_lines(training)))
    common.print_diagnostics(result.diagnostics, args, style="full")
    return common.USER_ERROR if errors else common.OK


def _check_training_args(args) -> None:
    if args.batch is not None and args.batch < 1:
        raise common.UsageError(f"--batch must be 1 or more, but got {args.batch}")
    if not args.train and (args.batch is not None or args.optimizer != "sgd"):
        raise common.UsageError("--batch and --optimizer size the training estimate: add --train")


def _training(graph, summary, args):
    """The training-memory estimate, when asked for and the network is whole."""
    if not args.train or summary.failed_at is not None or summary.output is None:
        return None
    from cnnc.compiler.analysis.training_memory import training_memory

    return training_memory(graph, args.batch or 1, args.optimizer, args.dtype)


def _training_lines(t) -> list[str]:
    """The estimate's parts, largest first after the total."""
    optimizer = {"sgd": "SGD with momentum", "adam": "Adam"}[t.optimizer]
    return [
        f"training     ≈ {mebibytes(t.total)} peak, batch {t.batch}, {optimizer}, {t.dtype}:",
        f"  weights {mebibytes(t.weights)} + gradients {mebibytes(t.gradients)} + optimiser state "
        f"{mebibytes(t.optimizer_state)}",
        f"  + saved activations {mebibytes(t.activations)} + gradients in flight {mebibytes(t.workspace)}",
    ]


def _row_json(r) -> dict:
    return {"name": r.name, "op": r.op, "shape": list(r.shape) if r.shape else None, "params": r.params,
            "macs": r.macs, "activations": r.activations, "rf": r.rf, "rf_min": r.rf_min,
            "whole_input": r.whole_input, "nodes": r.node_count}


def count(n: int) -> str:
    """`138,357,544`."""
    return f"{n:,}"


def si(n: float, unit: str = "") -> str:
    """`138.36 M`, `15.47 G`."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {prefix}{unit}"
    return f"{n:g} {unit}".strip()


def mebibytes(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def shape_text(shape) -> str:
    return "×".join(map(str, shape)) if shape else "?"


def _visible(rows, show_all: bool):
    from cnnc.compiler.ops import REGISTRY, Family

    if show_all:
        return list(rows), 0
    hidden = (Family.ACT, Family.RESHAPE)  # in-place activations and views, unless --all
    shown = [r for r in rows if r.node_count > 1 or r.error or r.op not in REGISTRY
             or REGISTRY[r.op].family not in hidden or r.op in ("Flatten",)]
    return shown, len(rows) - len(shown)


def _table(summary, rows, args, markdown: bool) -> str:
    from cnnc.compiler.analysis.memory import DTYPE_BYTES
    shown, hidden = _visible(rows, args.all)
    header = ("name", "op", "output", "memory", "params", "MACs", "RF")
    body = [(r.name, _op_cell(r), shape_text(r.shape), count(r.activations), count(r.params), count(r.macs),
             _rf_cell(r) if r.shape else "") for r in shown]
    title = (f"{summary.network} · {_inputs_text(summary)} · batch 1 · {summary.dtype} "
             f"({DTYPE_BYTES[summary.dtype]} bytes)")
    lines = [title, ""]
    lines += _markdown(header, body) if markdown else _columns(header, body)
    if summary.failed_at is not None:
        lines += ["", f"stops at `{summary.failed_at}`: its shape could not be inferred (the error is below); "
                  "totals so far:"]
    lines += ["", *_totals(summary, hidden)]
    return "\n".join(lines)


def _rf_cell(row) -> str:
    """`204`, `whole input`, or `≤ 900` past the analysis's bounds (an upper bound)."""
    if row.whole_input:
        return "whole input"
    return str(row.rf) if row.rf_exact else f"≤ {row.rf}"


def _inputs_text(summary) -> str:
    if summary.single:
        return f"input {_shape_list(summary.input)}"
    return "inputs " + ", ".join(f"{name} {_shape_list(shape)}" for name, shape in summary.inputs)


def _outputs_lines(s) -> list[str]:
    """`output [1000]`, or one line per output of a network with several."""
    if s.single:
        return [f"output       {_shape_list(s.output)}"]
    head = "outputs      "
    return [(head if i == 0 else " " * len(head)) + f"{key}: {_shape_list(shape)}  ({node})"
            for i, (key, node, shape) in enumerate(s.outputs)]


def _op_cell(row) -> str:
    return f"{row.text} ({row.node_count} layers)" if row.node_count > 1 else (row.text or row.op)


def _shape_list(shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]" if shape else "?"


def _columns(header, body) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    right = {3, 4, 5, 6}

    def fmt(row):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return [fmt(header), "  ".join("─" * w for w in widths)] + [fmt(r).rstrip() for r in body]


def _markdown(header, body) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 5) + "|"]
    return out + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in body]


def _totals(s, hidden: int) -> list[str]:
    from cnnc.compiler.analysis.memory import DTYPE_BYTES
    lines = [
        *_outputs_lines(s),
        f"params       {count(s.params)}  ({si(s.params)})" + (
            f"; {count(s.params - s.frozen_params)} trainable, {count(s.frozen_params)} frozen"
            if s.frozen_params else ""),
        f"MACs         {count(s.macs)}  ({si(s.macs)}MAC; FLOPs = 2 × MACs = {si(s.flops)})",
        f"activations  {count(s.activations)} elements = {mebibytes(s.activation_bytes)} forward, "
        f"≈ {mebibytes(s.training_bytes)} to train (×2, kept for the backward pass)",
        f"weights      {mebibytes(s.params * DTYPE_BYTES[s.dtype])}",
    ]
    if hidden:
        lines.append(f"({hidden} in-place activation and view rows hidden; --all shows them)")
    return lines


def _csv(rows) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["name", "op", "shape", "activations", "params", "macs", "rf", "nodes"])
    for r in rows:
        w.writerow([r.name, r.op, shape_text(r.shape), r.activations, r.params, r.macs, r.rf, r.node_count])
    return buf.getvalue()
