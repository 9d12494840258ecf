"""`cnnc zoo`: the zoo's models with their figures, and the lecture's "comparing complexity" chart."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cnnc.commands import common
from cnnc.dsl.numbers import in_unit

HELP = "list the zoo's models: input, params, MACs and published ImageNet accuracy (--plot)"
DESCRIPTION = """\
List every model in the zoo with its input size, parameters and multiply-accumulates (computed by
cnnc from the .cnn file) and the ImageNet top-1 / top-5 accuracy published for it (the reference's
weights metadata or the paper; `--format json` gives the source of each figure). The
dense-prediction models (segmentation, detection backbones) follow in a section of their own, with
their task, inputs and outputs.

examples:
  cnnc zoo
  cnnc zoo --plot zoo.png     # accuracy against operations, bubble area ∝ parameters
"""


def configure(p) -> None:
    common.add_format_arg(p, ("table", "json"), "table")
    p.add_argument(
        "--plot", metavar="FILE.png", help="draw accuracy against MACs, bubble area ∝ params"
    )


CLASSIFICATION = "image classification"


def entries() -> list[dict]:
    """One entry per zoo network that needs no arguments, with its figures: `model`, `task`
    (`tasks.json`'s, else image classification), `inputs` (`name`, `shape`) and `outputs` (`key`,
    `shape`; the key is null for a network returning one tensor), `params`, `macs`; a classifier
    also has `input` and its published accuracy (`top1`, `top5`, `source`)."""
    from cnnc.api import load_program, zoo_dir
    from cnnc.compiler.analysis.summary import summarize
    from cnnc.compiler.elaborate import default_network, elaborate, network_names
    from cnnc.dsl.diagnostics import CnncError

    accuracy = json.loads((zoo_dir() / "accuracy.json").read_text(encoding="utf-8"))
    tasks = json.loads((zoo_dir() / "tasks.json").read_text(encoding="utf-8"))
    out = []
    for path in sorted(zoo_dir().glob("*.cnn")):
        program = load_program(path)
        try:
            names = [default_network(program)]
        except CnncError:  # several networks in one file (the lecture's Inception modules)
            names = [n for n, concrete in network_names(program) if concrete]
        for name in names:
            result = elaborate(program, name)
            if not result.ok:
                continue
            s = summarize(result.graph)
            model = path.stem if len(names) == 1 else f"{path.stem}:{name}"
            row = {
                "model": model,
                "task": tasks.get(model, CLASSIFICATION),
                "inputs": [{"name": n, "shape": list(shape)} for n, shape in s.inputs],
                "outputs": [{"key": k, "shape": list(shape)} for k, _, shape in s.outputs],
                "params": s.params,
                "macs": s.macs,
            }
            if row["task"] == CLASSIFICATION:
                acc = accuracy.get(model, {})
                row.update(
                    input=list(s.input),
                    top1=acc.get("top1"),
                    top5=acc.get("top5"),
                    source=acc.get("source"),
                )
            out.append(row)
    return out


PLOT_SUFFIXES = (
    ".png",
    ".svg",
    ".pdf",
    ".jpg",
    ".jpeg",
    ".eps",
    ".ps",
    ".tif",
    ".tiff",
)  # matplotlib's


def run(args) -> int:
    from cnnc.commands.files import check_output, writing

    if args.plot:  # before the work: a wrong suffix, a folder, a path under a file
        if Path(args.plot).suffix.lower() not in PLOT_SUFFIXES:
            raise common.UsageError(
                f"--plot must end in one of {', '.join(PLOT_SUFFIXES)}, but got `{args.plot}`"
            )
        check_output(args.plot, "--plot")
    rows = entries()
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(_table(rows))
    if args.plot:
        with writing(args.plot, "--plot"):
            plot(rows, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return common.OK


def _pct(v) -> str:
    return f"{v:.2f}" if v is not None else "—"


def _table(rows) -> str:
    """The classifiers' table, then the dense-prediction models' (when the zoo has any)."""
    classifiers = [r for r in rows if r["task"] == CLASSIFICATION]
    dense = [r for r in rows if r["task"] != CLASSIFICATION]
    header = ("model", "input", "params", "MACs", "top-1", "top-5")
    body = [
        (
            r["model"],
            _shape(r["input"]),
            in_unit(r["params"], 1e6, "M"),
            in_unit(r["macs"], 1e9, "G"),
            _pct(r["top1"]),
            _pct(r["top5"]),
        )
        for r in classifiers
    ]
    text = _columns(header, body, left=2)
    text += "\n\naccuracy: ImageNet-1k validation, % (sources: `cnnc zoo --format json`)"
    if dense:
        header = ("model", "task", "input", "outputs", "params", "MACs")
        body = [
            (
                r["model"],
                r["task"],
                _listed(r["inputs"], "name"),
                _listed(r["outputs"], "key"),
                in_unit(r["params"], 1e6, "M"),
                in_unit(r["macs"], 1e9, "G"),
            )
            for r in dense
        ]
        text += "\n\ndense prediction\n\n" + _columns(header, body, left=4)
    return text


def _columns(header, body, left: int) -> str:
    """Aligned columns under a rule: the first `left` flush left, the figures flush right."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = [
        "  ".join(
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
        )
        for row in [header, *body]
    ]
    lines.insert(1, "  ".join("─" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _shape(shape) -> str:
    return "×".join(map(str, shape))


def _listed(items, key: str) -> str:
    """`3×520×520`, or `out 21×520×520, aux 21×520×520` when there are several or they are named
    (an unnamed single input is `x` in the graph and shows as its shape alone)."""
    if len(items) == 1 and items[0][key] in (None, "x"):
        return _shape(items[0]["shape"])
    return ", ".join(f"{item[key]} {_shape(item['shape'])}" for item in items)


def plot(rows, path: str) -> None:
    """The lecture's 'comparing complexity' chart, from the zoo's own computed figures."""
    import matplotlib

    from cnnc.dsl import safefs

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [
        r for r in rows if r.get("top1") is not None
    ]  # the classifiers with a published accuracy
    fig, ax = plt.subplots(figsize=(11, 7), dpi=110)
    for r in shown:
        x, y = r["macs"] / 1e9, r["top1"]
        ax.scatter(x, y, s=r["params"] / 1e6 * 12, alpha=0.45, edgecolors="black", linewidths=0.6)
        ax.annotate(r["model"], (x, y), fontsize=8, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("operations: multiply-accumulates per image (G, log scale)")
    ax.set_ylabel("ImageNet top-1 accuracy (%)")
    ax.set_title("Comparing complexity — bubble area ∝ parameters (computed by cnnc from the zoo)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with safefs.replacing_path(path) as (tmp, _):
        fig.savefig(tmp)
    plt.close(fig)
