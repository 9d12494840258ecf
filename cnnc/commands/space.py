"""`cnnc space`: a search space's decisions, its size, and what its members cost. Never imports torch."""

from __future__ import annotations

import json

from cnnc.commands import common

HELP = "list a search space's decisions, count its members and sample their cost"
DESCRIPTION = """\
Show what a search space (a .cnn file with `choice(…)`) leaves open: each decision with its
options (a decision met only under some option of another is marked `only when …`), the number of
members and of distinct architectures (up to graph isomorphism) when the decision tree can be walked
within --walk-seconds; else the number of members composed from independent decisions (or, where
they do not compose, an estimate with its standard error), and statistics of seeded random members analysed statically: parameters, MACs, the share
that fails shape checking and the share over a budget. Runs no model.

examples:
  cnnc space zoo/spaces/tiny.cnn
  cnnc space zoo/spaces/mobilenet_space.cnn --samples 500 --max-params 300K
  cnnc space zoo/spaces/resnet_space.cnn --input 3,64,64 --format json
"""


MAX_SAMPLES = 100_000  # each member is elaborated and analysed: 100k take minutes, more is a typo


def configure(p) -> None:
    from cnnc.commands.search import count

    common.add_program_args(p)
    p.add_argument(
        "--samples",
        type=int,
        default=200,
        metavar="N",
        help="random members to analyse (default: 200)",
    )
    p.add_argument(
        "--seed", type=common.seed, default=0, help="seeds the random members (default: 0)"
    )
    p.add_argument(
        "--max-params",
        type=count,
        metavar="N",
        help="a parameter budget (e.g. 200K) to measure against",
    )
    p.add_argument(
        "--max-macs", type=count, metavar="N", help="a MAC budget (e.g. 5M) to measure against"
    )
    p.add_argument(
        "--walk-seconds",
        type=float,
        default=3.0,
        metavar="S",
        help="time allowed for counting the members exactly (default: 3)",
    )
    common.add_format_arg(p, ("text", "json"), "text")


def run(args) -> int:
    from cnnc.api import parse_arg_values
    from cnnc.compiler import limits
    from cnnc.search.space import decisions, load_space, sample, stats, walk

    if not 0 <= args.samples <= MAX_SAMPLES:
        raise common.UsageError(
            f"--samples must be from 0 to {MAX_SAMPLES:,}, but got {args.samples:,}"
        )
    common.not_negative("--walk-seconds", args.walk_seconds)
    space = load_space(
        args.file,
        args.network,
        parse_arg_values(args.arg),
        args.input,
        allow_import=args.allow_import,
    )
    size, walked = walk(space, seconds=args.walk_seconds)
    with limits.spending(
        f"analyse fewer random members: `--samples N` (asked: {args.samples:,})",
        "the sampled members",
    ):
        members = sample(space, args.samples, args.seed)
    figures = stats(members, args.max_params, args.max_macs)
    size = _with_estimate(size, figures)
    found = decisions(walked + members)
    if args.format == "json":
        print(json.dumps(_json(found, size, figures, args), indent=2))
    else:
        from cnnc.dsl.diagnostics import printable

        # choice names and option labels are the file's text: escaped, as diagnostics escape it
        print(
            "\n".join(
                printable(line, limit=10_000)
                for line in _text(args.file, found, size, figures, args)
            )
        )
    return common.OK


def _with_estimate(size, figures):
    from dataclasses import replace

    return replace(size, estimate=figures.estimate if figures.samples else None)


def _text(path, found, size, figures, args) -> list[str]:
    from cnnc.search.report import si

    conditional = sum(d.when is not None for d in found)
    lines = [
        f"{path}: {len(found)} decision{'s' if len(found) != 1 else ''}"
        + (f" ({conditional} conditional)" if conditional else "")
    ]
    lines += decision_rows(found)
    lines += ["", f"size: {size.text()}"]
    if size.how == "composed" and size.exact:
        lines.append("  (a larger --walk-seconds walks every member and counts the architectures)")
    if not figures.samples:
        return lines
    n = figures.samples
    lines += ["", f"{n} random members (seed {args.seed}), analysed statically:"]
    if figures.params:
        lines.append(
            "  params  "
            + "  ".join(f"{k} {si(v)}" for k, v in zip(("min", "median", "max"), figures.params))
        )
        lines.append(
            "  MACs    "
            + "  ".join(f"{k} {si(v)}" for k, v in zip(("min", "median", "max"), figures.macs))
        )
    lines.append(f"  shape-invalid  {_share(figures.invalid, n)}")
    for reason, k in figures.reasons:
        lines.append(f"    {k} × {reason}")
    if args.max_params is not None or args.max_macs is not None:
        budget = " and ".join(
            f"{flag} {si(v)}"
            for flag, v in (("--max-params", args.max_params), ("--max-macs", args.max_macs))
            if v is not None
        )
        lines.append(
            f"  over budget    {_share(figures.over_budget, n - figures.invalid)} of the valid ({budget})"
        )
    lines.append(
        f"  distinct       {figures.distinct} architectures among {n - figures.invalid} valid"
    )
    return lines


def decision_rows(found) -> list[str]:
    """One line per decision: its name, its options, where it is, and when it is met."""
    rows = [
        (d.name, options_text(d.labels), d.span.where() if d.span else "", _when(d)) for d in found
    ]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(3)]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths + [0])).rstrip() for r in rows]


SHOWN_OPTIONS = 12  # options a line lists; more are elided, and counted


def options_text(labels) -> str:
    """`3 | 5 | 7`; of more than SHOWN_OPTIONS, the first ones, `…` and the last two, counted."""
    if len(labels) <= SHOWN_OPTIONS:
        return " | ".join(labels)
    shown = [*labels[: SHOWN_OPTIONS - 3], "…", *labels[-2:]]
    return f"{' | '.join(shown)} ({len(labels):,} options)"


def _when(d) -> str:
    if d.when is None:
        return ""
    name, labels = d.when
    return f"only when {name} = {options_text(labels)}"


def _share(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.0f} %)" if n else "0"


def _json(found, size, figures, args) -> dict:
    return {
        "decisions": [
            {
                "name": d.name,
                "options": list(d.labels),
                "where": d.span.where() if d.span else None,
                "when": {"decision": d.when[0], "options": list(d.when[1])} if d.when else None,
            }
            for d in found
        ],
        "size": {
            "members": size.members,
            "exact": size.exact,
            "distinct": size.distinct,
            "estimate": size.estimate,
            "counted_by": size.how,  # walk | composed | bound
            "error": size.error,  # a composed estimate's standard error
        },
        "samples": {
            "count": figures.samples,
            "seed": args.seed,
            "invalid": figures.invalid,
            "over_budget": figures.over_budget,
            "distinct": figures.distinct,
            "params": list(figures.params) if figures.params else None,
            "macs": list(figures.macs) if figures.macs else None,
            "invalid_reasons": [{"reason": r, "count": k} for r, k in figures.reasons],
        },
    }
