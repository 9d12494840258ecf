"""`cnnc zoo`: the zoo's models with their figures, and the lecture's "comparing complexity" chart."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cnnc.commands import common

HELP = "list the zoo's models: input, params, MACs and published ImageNet accuracy (--plot)"
DESCRIPTION = """\
List every model in the zoo with its input size, parameters and multiply-accumulates (computed by
cnnc from the .cnn file) and the ImageNet top-1 / top-5 accuracy published for it (the reference's
weights metadata or the paper; `--format json` gives the source of each figure).

examples:
  cnnc zoo
  cnnc zoo --plot zoo.png     # accuracy against operations, bubble area ∝ parameters
"""


def configure(p) -> None:
    common.add_format_arg(p, ("table", "json"), "table")
    p.add_argument("--plot", metavar="FILE.png", help="draw accuracy against MACs, bubble area ∝ params")


def entries() -> list[dict]:
    """One entry per zoo network that needs no arguments, with its figures."""
    from cnnc.api import load_program, zoo_dir
    from cnnc.compiler.analysis.summary import summarize
    from cnnc.compiler.elaborate import default_network, elaborate, network_names
    from cnnc.dsl.diagnostics import CnncError

    accuracy = json.loads((zoo_dir() / "accuracy.json").read_text(encoding="utf-8"))
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
            acc = accuracy.get(model, {})
            out.append({"model": model, "input": list(s.input), "params": s.params, "macs": s.macs,
                        "top1": acc.get("top1"), "top5": acc.get("top5"), "source": acc.get("source")})
    return out


PLOT_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff")  # matplotlib's


def run(args) -> int:
    from cnnc.commands.files import check_output, writing

    if args.plot:  # before the work: a wrong suffix, a folder, a path under a file
        if Path(args.plot).suffix.lower() not in PLOT_SUFFIXES:
            raise common.UsageError(f"--plot must end in one of {', '.join(PLOT_SUFFIXES)}, but got `{args.plot}`")
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
    header = ("model", "input", "params", "MACs", "top-1", "top-5")
    body = [(r["model"], "×".join(map(str, r["input"])), f"{r['params'] / 1e6:,.2f} M",
             f"{r['macs'] / 1e9:,.2f} G", _pct(r["top1"]), _pct(r["top5"])) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in [header, *body]]
    lines.insert(1, "  ".join("─" * w for w in widths))
    return "\n".join(lines) + "\n\naccuracy: ImageNet-1k validation, % (sources: `cnnc zoo --format json`)"


def plot(rows, path: str) -> None:
    """The lecture's 'comparing complexity' chart, from the zoo's own computed figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r["top1"] is not None]
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
    fig.savefig(path)
    plt.close(fig)
