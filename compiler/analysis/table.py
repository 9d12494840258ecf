"""Summary → text: the table `cnnc summary` prints, its markdown and CSV forms, and the training estimate.

One renderer for the CLI and the Python API: `str(cnnc.summary(...))` is `table(summary)`, which
`cnnc summary FILE` prints as it is. Pure text from the figures; runs nothing and imports no torch.
"""

from __future__ import annotations

from cnnc.compiler.analysis.memory import DTYPE_BYTES
from cnnc.compiler.ops import REGISTRY, Family
from cnnc.dsl.numbers import grouped as count
from cnnc.dsl.numbers import mebibytes, si

HEADER = ("name", "op", "output", "memory", "params", "MACs", "RF")


def shape_text(shape) -> str:
    return "×".join(map(str, shape)) if shape else "?"


def table(summary, rows=None, show_all: bool = False, markdown: bool = False, latency=None) -> str:
    """The title, one row per layer (`rows`: the summary's own, or `group`'s) and the totals.

    In-place activations and views are left out unless `show_all`; the totals say how many.
    `latency`: {row name: milliseconds} (`cnnc summary --latency`), shown as a last column."""
    shown, hidden = visible(summary.layers if rows is None else rows, show_all)
    body = [
        (
            r.name,
            _op_cell(r),
            shape_text(r.shape),
            count(r.activations),
            count(r.params),
            count(r.macs),
            _rf_cell(r) if r.shape else "",
        )
        for r in shown
    ]
    header = HEADER
    if latency is not None:
        header = (*HEADER, "latency ms")
        body = [(*cells, _ms(latency.get(r.name))) for cells, r in zip(body, shown)]
    title = (
        f"{summary.network} · {_inputs_text(summary)} · batch {summary.batch} · {summary.dtype} "
        f"({DTYPE_BYTES[summary.dtype]} bytes)"
    )
    lines = [title, ""]
    lines += _markdown(header, body) if markdown else _columns(header, body)
    if summary.failed_at is not None:
        lines += [
            "",
            (
                f"stops at `{summary.failed_at}`: its shape could not be inferred (the error is below); "
                "totals so far:"
            ),
        ]
    lines += ["", *_totals(summary, hidden)]
    return "\n".join(lines)


def visible(rows, show_all: bool):
    """(the rows a table shows, how many it hides): in-place activations and views are hidden."""
    if show_all:
        return list(rows), 0
    hidden = (Family.ACT, Family.RESHAPE)
    shown = [
        r
        for r in rows
        if r.node_count > 1
        or r.error
        or r.op not in REGISTRY
        or REGISTRY[r.op].family not in hidden
        or REGISTRY[r.op].tabled
    ]
    return shown, len(rows) - len(shown)


def csv_text(rows, latency=None) -> str:
    """The rows as CSV (`--format csv`), with a header line; `latency` as in `table`."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    extra = ["latency_ms"] if latency is not None else []
    w.writerow(["name", "op", "shape", "activations", "params", "macs", "rf", "nodes", *extra])
    for r in rows:
        cells = [r.name, r.op, shape_text(r.shape), r.activations, r.params, r.macs, r.rf]
        ms = [_ms(latency.get(r.name))] if latency is not None else []
        w.writerow([*cells, r.node_count, *ms])
    return buf.getvalue()


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def row_json(r) -> dict:
    """A grouped row (`--depth`) in the JSON form."""
    return {
        "name": r.name,
        "op": r.op,
        "shape": list(r.shape) if r.shape else None,
        "params": r.params,
        "macs": r.macs,
        "activations": r.activations,
        "rf": r.rf,
        "rf_min": r.rf_min,
        "whole_input": r.whole_input,
        "nodes": r.node_count,
    }


def training_lines(t) -> list[str]:
    """The training-memory estimate's parts, largest first after the total."""
    optimizer = {"sgd": "SGD with momentum", "adam": "Adam"}[t.optimizer]
    return [
        f"training     ≈ {mebibytes(t.total)} peak, batch {t.batch}, {optimizer}, {t.dtype}:",
        (
            f"  weights {mebibytes(t.weights)} + gradients {mebibytes(t.gradients)} + optimiser state "
            f"{mebibytes(t.optimizer_state)}"
        ),
        f"  + saved activations {mebibytes(t.activations)} + gradients in flight {mebibytes(t.workspace)}",
    ]


def _inputs_text(summary) -> str:
    if summary.single:
        return f"input {_shape_list(summary.input)}"
    return "inputs " + ", ".join(f"{name} {_shape_list(shape)}" for name, shape in summary.inputs)


def _outputs_lines(s) -> list[str]:
    """`output [1000]`, or one line per output of a network with several."""
    if s.single:
        return [f"output       {_shape_list(s.output)}"]
    head = "outputs      "
    return [
        (head if i == 0 else " " * len(head)) + f"{key}: {_shape_list(shape)}  ({node})"
        for i, (key, node, shape) in enumerate(s.outputs)
    ]


def _op_cell(row) -> str:
    return f"{row.text} ({row.node_count} layers)" if row.node_count > 1 else (row.text or row.op)


def _shape_list(shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]" if shape else "?"


def _columns(header, body) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    right = {3, 4, 5, 6, 7}

    def fmt(row):
        return "  ".join(
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths))
        )

    return [fmt(header), "  ".join("─" * w for w in widths)] + [fmt(r).rstrip() for r in body]


def _markdown(header, body) -> list[str]:
    aligns = ["---"] * 2 + ["---:"] * (len(header) - 2)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(aligns) + "|"]
    return out + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in body]


def _totals(s, hidden: int) -> list[str]:
    lines = [
        *_outputs_lines(s),
        f"params       {count(s.params)}  ({si(s.params)})"
        + (
            f"; {count(s.params - s.frozen_params)} trainable, {count(s.frozen_params)} frozen"
            if s.frozen_params
            else ""
        ),
        f"MACs         {count(s.macs)}  ({si(s.macs)}MAC; FLOPs = 2 × MACs = {si(s.flops)})",
        (
            f"activations  {count(s.activations)} elements = {mebibytes(s.activation_bytes)} forward, "
            f"≈ {mebibytes(s.training_bytes)} to train (×2, kept for the backward pass)"
        ),
        f"weights      {mebibytes(s.params * DTYPE_BYTES[s.dtype])}",
    ]
    if hidden:
        lines.append(f"({hidden} in-place activation and view rows hidden; --all shows them)")
    return lines


def _rf_cell(row) -> str:
    """`204`, `whole input`, or `≤ 900` past the analysis's bounds (an upper bound)."""
    if row.whole_input:
        return "whole input"
    return str(row.rf) if row.rf_exact else f"≤ {row.rf}"
