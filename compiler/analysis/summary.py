"""Graph → Summary: per node and in total, the figures `cnnc summary` prints.

`Summary` is DESIGN.md's JSON contract: network, input, output, params, macs, activations, layers
(`to_dict()`); `str()` of one is the table `cnnc summary` prints (`analysis/table.py`), which
notebooks show too. Rows stop at the first node whose shape could not be inferred (`failed_at`
names it). MACs and activations are per batch of `batch` samples (1 unless asked).
"""

from __future__ import annotations

from cnnc.compiler.analysis.counts import macs, params
from cnnc.compiler.analysis.describe import describe
from cnnc.compiler.analysis.memory import DTYPE_BYTES, activations
from cnnc.compiler.analysis.receptive_field import receptive_fields
from cnnc.compiler.ir import Graph
from cnnc.compiler.types import is_error
from cnnc.dsl.records import record, replace


@record
class Row:
    name: str
    op: str
    shape: tuple[int, ...] | None  # None where inference failed
    params: int
    macs: int
    activations: int  # elements materialised (batch 1)
    rf: int  # receptive-field side: the largest any position has (the larger axis), input pixels
    rf_min: int  # the smallest any position has
    node_count: int = 1  # > 1 for a group row (`--depth`)
    error: str | None = None
    text: str = ""  # `Conv 3×3/2, 64`
    rf_height: tuple[int, int] = (0, 0)  # (smallest, largest) along the height
    rf_width: tuple[int, int] = (0, 0)
    whole_input: bool = False  # every position sees the whole input (rf is then its extent)
    rf_exact: bool = True  # False past the analysis's bounds: rf is then an upper bound
    rf_clipped: bool = (
        False  # spans at the declared input (after a global op), not where it does not clip
    )


@record
class Summary:
    network: str
    input: tuple[int, ...] | None
    output: tuple[int, ...] | None
    params: int
    macs: int
    activations: int
    layers: tuple[Row, ...]
    dtype: str = "float32"
    failed_at: str | None = None
    frozen_params: int = 0  # a derived network's `freeze`: parameters training leaves as they are
    # every input (name, shape) and output (key, node name, shape or None); `input`/`output` above
    # are the one input and output of a single-tensor network, None when there are several
    inputs: tuple[tuple[str, tuple[int, ...]], ...] = ()
    outputs: tuple[tuple[int | str | None, str, tuple[int, ...] | None], ...] = ()
    single: bool = True
    batch: int = 1  # the MACs and activations above are for this many samples

    def __str__(self) -> str:
        """The table `cnnc summary` prints (without `--depth` and `--all`)."""
        from cnnc.compiler.analysis.table import table

        return table(self)

    __repr__ = __str__  # a notebook's or REPL's echo shows the table, not the fields

    def _repr_html_(self) -> str:
        """Jupyter shows the same table, its text escaped."""
        import html

        return f"<pre>{html.escape(str(self))}</pre>"

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def activation_bytes(self) -> int:
        return self.activations * DTYPE_BYTES[self.dtype]

    @property
    def training_bytes(self) -> int:
        """Forward activations kept for the backward pass roughly double the need (the lecture's ×2)."""
        return 2 * self.activation_bytes

    def to_dict(self) -> dict:
        """The JSON form (`cnnc summary --format json`): plain lists, numbers and strings."""
        return self.to_json()

    def to_json(self) -> dict:
        return {
            "network": self.network,
            "input": list(self.input) if self.input else None,
            "output": list(self.output) if self.output else None,
            "batch": self.batch,
            "dtype": self.dtype,
            "params": self.params,
            "trainable_params": self.params - self.frozen_params,
            "frozen_params": self.frozen_params,
            "macs": self.macs,
            "flops": self.flops,
            "activations": self.activations,
            "activation_bytes": self.activation_bytes,
            "training_activation_bytes": self.training_bytes,
            "failed_at": self.failed_at,
            "inputs": [{"name": n, "shape": list(shape)} for n, shape in self.inputs],
            "outputs": [
                {"key": k, "node": node, "shape": list(shape) if shape else None}
                for k, node, shape in self.outputs
            ],
            "layers": [
                {
                    "name": r.name,
                    "op": r.op,
                    "shape": list(r.shape) if r.shape else None,
                    "params": r.params,
                    "macs": r.macs,
                    "activations": r.activations,
                    "rf": r.rf,
                    "rf_min": r.rf_min,
                    **_rf_json(r),
                    **({"nodes": r.node_count} if r.node_count > 1 else {}),
                    **({"error": r.error} if r.error else {}),
                }
                for r in self.layers
            ],
        }


def _rf_fields(f) -> dict:
    return {
        "rf_height": (f.h.smallest, f.h.largest),
        "rf_width": (f.w.smallest, f.w.largest),
        "whole_input": f.whole,
        "rf_exact": f.exact,
        "rf_clipped": f.clipped,
    }


def _rf_json(r: Row) -> dict:
    return {
        "rf_height": list(r.rf_height),
        "rf_width": list(r.rf_width),
        "whole_input": r.whole_input,
        "rf_exact": r.rf_exact,
        "rf_clipped": r.rf_clipped,
    }


def summarize(graph: Graph, dtype: str = "float32", batch: int = 1, fields: bool = True) -> Summary:
    """The figures of every node and their totals; MACs and activations for `batch` samples.
    `fields=False` leaves the receptive fields out (rows' rf 0): the counts alone, for a search
    trial that reads nothing else."""
    p, m, a = params(graph), _times(macs(graph), batch), _times(activations(graph), batch)
    rf = receptive_fields(graph) if fields else None
    rows, failed = [], None
    for n in graph.nodes_in_order():
        if is_error(n.type):
            if n.error is not None and failed is None:
                failed = n.name
                rows.append(Row(n.name, n.op, None, 0, 0, 0, 0, 0, error=n.error, text=describe(n)))
            continue
        f = rf[n.id] if rf is not None else None
        rows.append(
            Row(
                n.name,
                n.op,
                n.type.shape,
                p[n.id],
                m[n.id],
                a[n.id],
                f.size if f else 0,
                f.size_min if f else 0,
                text=describe(n),
                **(_rf_fields(f) if f else {}),
            )
        )
    out = graph.output_type
    single = graph.single
    inputs = tuple(
        (graph.input_name(i), graph.node(i).type.shape)
        for i in graph.inputs
        if not is_error(graph.node(i).type)
    )
    outputs = tuple(
        (k, graph.node(i).name, None if is_error(graph.node(i).type) else graph.node(i).type.shape)
        for k, i in graph.outputs
    )
    return Summary(
        network=graph.network,
        input=graph.input_type.shape if graph.input_type and single else None,
        output=None if is_error(out) or not single else out.shape,
        inputs=inputs,
        outputs=outputs,
        single=single,
        params=sum(p.values()),
        macs=sum(m.values()),
        activations=sum(a.values()),
        layers=tuple(rows),
        dtype=dtype,
        failed_at=failed,
        frozen_params=sum(p[n.id] for n in graph.nodes_in_order() if n.path in graph.frozen),
        batch=batch,
    )


def _times(figures: dict, batch: int) -> dict:
    return figures if batch == 1 else {k: v * batch for k, v in figures.items()}


def group(summary: Summary, graph: Graph, depth: int) -> tuple[Row, ...]:
    """Rows merged by label path to `depth + 1` parts, for nodes inside blocks and sequences.

    `--depth 0` shows a network's stages (`layer1`), `--depth 1` their blocks (`layer1.0`). A group's
    shape and receptive field are its last node's; its counts are sums.
    """
    titles = {".".join(path): s.title for path, s in graph.scopes.items()}
    out: list[Row] = []
    keys: list[str] = []
    for row in summary.layers:
        parts = row.name.split(".")
        key = ".".join(parts[: depth + 1])
        if len(parts) <= depth + 1 or key not in titles:
            out.append(row)
            keys.append(row.name)
            continue
        if keys and keys[-1] == key:
            prev = out[-1]
            out[-1] = replace(
                row,
                name=key,
                op=prev.op,
                params=prev.params + row.params,
                macs=prev.macs + row.macs,
                activations=prev.activations + row.activations,
                node_count=prev.node_count + 1,
                error=row.error or prev.error,
                text=prev.text,
            )
        else:
            out.append(replace(row, name=key, op=titles[key], node_count=1, text=titles[key]))
            keys.append(key)
    return tuple(out)
