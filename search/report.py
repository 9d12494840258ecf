"""A study's trials as rows: the `trials.csv` file, the printed table, the one-line trial reports.

Input: trial-like objects (optuna's `FrozenTrial`, read by attribute: `number`, `state.name`, `values`,
`user_attrs`, `duration`) and the study's objective names. Output: `Row`s, text, and PNG plots drawn
by `optuna.visualization.matplotlib` (imported only inside `plot_study`). The decisions' importance is
each decision's ω² (`importances`: one-way analysis of variance, the share of the score's variance
its options explain alone beyond chance), exact and the same on every run, in place of optuna's
fANOVA, whose random forest differs from run to run and whose import (scikit-learn's) cost a second
a search.

The user attributes `driver.py` records on every trial: `status` (trained | scored | infeasible |
invalid | reused | pruned | failed; scored: a zero-cost proxy's score, or a one-shot evaluator's
accuracy with the supernet's shared weights), `decisions` ({decision: option label}), `hash`, `params`, `macs`,
`latency_ms` and `latency_measured_ms` (the `latency` objective's, `search/latency.py`), `seconds`,
`history`, `proxies` ({proxy: score}), `reused_from`, and why: `infeasible` for a member never
evaluated, `reason` for a pruned or failed run.
"""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from cnnc.dsl import numbers, safefs
from cnnc.dsl.diagnostics import printable

PROXY_NAMES = ("synflow", "naswot", "grad_norm")
CSV_COLUMNS = (
    "number",
    "state",
    "status",
    "values",
    "params",
    "macs",
    "latency_ms",
    "latency_measured_ms",
    "seconds",
    "hash",
    "reused",
    "reason",
    "decisions",
    *PROXY_NAMES,
)


@dataclass(frozen=True, slots=True)
class Row:
    number: int
    state: str  # optuna's: COMPLETE, PRUNED, FAIL, RUNNING
    status: str
    values: tuple[float, ...] | None
    params: int | None
    macs: int | None
    seconds: float | None
    hash: str
    reused_from: int | None
    reason: str
    decisions: dict = field(default_factory=dict)
    proxies: dict = field(default_factory=dict)
    latency_ms: float | None = None  # predicted: the sum of its layers' (`search/latency.py`)
    latency_measured_ms: float | None = None  # timed end to end (a sample of the trials)

    @classmethod
    def of(cls, trial) -> Row:
        """The row of a trial; attributes of another type than cnnc records (a crafted or damaged
        study) are left out, never trusted."""
        a = trial.user_attrs if isinstance(trial.user_attrs, dict) else {}
        seconds = _real(a.get("seconds"))
        if seconds is None and trial.duration is not None:
            seconds = trial.duration.total_seconds()
        return cls(
            trial.number,
            trial.state.name,
            _text(a.get("status")) or trial.state.name.lower(),
            _values(trial.values),
            _count(a.get("params")),
            _count(a.get("macs")),
            seconds,
            _text(a.get("hash")),
            _count(a.get("reused_from")),
            _text(a.get("reason")) or _text(a.get("infeasible")),
            _texts(a.get("decisions")),
            _reals(a.get("proxies")),
            _milliseconds(a.get("latency_ms")),
            _milliseconds(a.get("latency_measured_ms")),
        )

    def decisions_text(self, sep: str = "; ") -> str:
        return sep.join(f"{k}={v}" for k, v in self.decisions.items())


MAX_COUNT = 10**18  # params, MACs and trial numbers a row shows (a float holds them to print)


def _count(value) -> int | None:
    return value if type(value) is int and 0 <= value < MAX_COUNT else None


def _real(value) -> float | None:
    if type(value) is int and abs(value) < MAX_COUNT:
        return float(value)
    return value if type(value) is float else None


def _milliseconds(value) -> float | None:
    """A latency attribute: a finite, positive number, else None."""
    ms = _real(value)
    return ms if ms is not None and math.isfinite(ms) and ms > 0 else None


def _text(value) -> str:
    return value if type(value) is str else ""


def _values(values) -> tuple[float, ...] | None:
    if not values or not isinstance(values, (list, tuple)):
        return None
    reals = tuple(_real(v) for v in values)
    return None if None in reals else reals


def _texts(value) -> dict:
    """A {str: str} attribute (`decisions`), else {}."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if type(k) is str and type(v) is str}


def _reals(value) -> dict:
    """A {str: number} attribute (`proxies`), else {}."""
    if not isinstance(value, dict):
        return {}
    return {k: _real(v) for k, v in value.items() if type(k) is str and _real(v) is not None}


def rows(trials) -> list[Row]:
    """A row per trial; a trial whose number is not a count (a crafted study's text) is left out."""
    return [Row.of(t) for t in trials if _count(t.number) is not None]


def write_csv(table: list[Row], path: Path) -> None:
    """trials.csv: one row per trial, every text cell `cell`-neutralised (a reason or a choice name
    is the study's data, and a spreadsheet must not read it as a formula)."""
    with safefs.replacing(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for r in table:
            w.writerow(
                [
                    r.number,
                    cell(r.state),
                    cell(r.status),
                    cell(";".join(f"{v:.6g}" for v in r.values or ())),
                    _blank(r.params),
                    _blank(r.macs),
                    _number(r.latency_ms),
                    _number(r.latency_measured_ms),
                    "" if r.seconds is None else f"{r.seconds:.3f}",
                    cell(r.hash),
                    _blank(r.reused_from),
                    cell(r.reason),
                    cell(r.decisions_text()),
                    *(_number(r.proxies.get(p)) for p in PROXY_NAMES),
                ]
            )


FORMULA_STARTS = ("=", "+", "-", "@")  # what spreadsheets read as the start of a formula


def cell(text: str) -> str:
    """`text` for a CSV cell: one that starts as a formula would (`=`, `+`, `-`, `@`) or with a tab,
    CR or another control character gets a leading `'`, unless it is a plain number (`-0.5`)."""
    if not text or not (text.startswith(FORMULA_STARTS) or not text[0].isprintable()):
        return text
    if text[0] in "+-" and _is_number(text):
        return text
    return "'" + text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text and text.lower().lstrip("+-") not in ("inf", "infinity", "nan")


def _blank(value) -> str:
    return "" if value is None else str(value)


def _number(value) -> str:
    return "" if value is None else f"{value:.6g}"


# ---------------------------------------------------------------------------------------------
# The best trials


def best_rows(table: list[Row], names: tuple[str, ...]) -> list[Row]:
    """The best complete trial (one objective), or the Pareto front (best score first).

    The first objective is maximised, the others (params, MACs) minimised; ties go to fewer params,
    then to the earlier trial. An architecture met twice counts once (its first trial).
    """
    done = [
        r
        for r in table
        if r.state == "COMPLETE" and r.values and all(math.isfinite(v) for v in r.values)
    ]
    firsts: dict[str, Row] = {}
    for r in done:
        firsts.setdefault(r.hash or str(r.number), r)
    candidates = sorted(firsts.values(), key=lambda r: (-r.values[0], r.params or 0, r.number))
    if len(names) == 1:
        return candidates[:1]
    return [r for r in candidates if not any(_dominates(o, r) for o in candidates)]


def _dominates(a: Row, b: Row) -> bool:
    """`a` is at least as good as `b` everywhere and better somewhere (maximise the first value)."""
    x = (-a.values[0], *a.values[1:])
    y = (-b.values[0], *b.values[1:])
    return all(p <= q for p, q in zip(x, y)) and x != y


# ---------------------------------------------------------------------------------------------
# Text


def si(n: float | None) -> str:
    """`1.23 M`, `45.6 K`, `812`; `?` for a value not known."""
    return "?" if n is None else numbers.si(n, largest="G")


def value_text(name: str, value: float) -> str:
    if name in ("params", "macs"):
        return f"{name} {si(value)}"
    if name == "latency" and math.isfinite(value):
        return f"latency {value:.3f} ms"
    name = printable(name)
    if math.isinf(value) or math.isnan(value):
        return f"{name} {value}"
    return f"{name} {value:.4f}" if abs(value) < 100 else f"{name} {value:.4g}"


def trial_line(r: Row, objectives: tuple[str, ...], width: int = 80) -> str:
    """`#3  trained  accuracy 0.9805  12.3 K params  1.20 M MACs  1.1 s  width=8 depth=1`."""
    parts = [f"#{r.number:<3}", f"{printable(r.status):<10}"]
    if r.values and r.status not in ("infeasible", "invalid"):
        parts.append(
            "  ".join(
                value_text(n, v)
                for n, v in zip(objectives, r.values)
                if n not in ("params", "macs")
            )
        )
    if r.params is not None:
        parts.append(f"{si(r.params)} params  {si(r.macs)} MACs")
    if r.proxies and not (r.values and objectives[0] in r.proxies):
        parts.append(" ".join(f"{printable(k)} {v:.4g}" for k, v in r.proxies.items()))
    if r.seconds is not None and r.status in ("trained", "scored", "pruned", "failed"):
        parts.append(f"{r.seconds:.1f} s")
    if r.reused_from is not None:
        parts.append(f"same architecture as #{r.reused_from}: result reused")
    if r.reason and r.status != "reused":
        parts.append(printable(r.reason))
    choices = r.decisions_text(" ")
    if choices and len(choices) <= width:
        parts.append(f"[{printable(choices)}]")
    return "  ".join(p for p in parts if p)


def table(table_rows: list[Row], objectives: tuple[str, ...]) -> str:
    """The printed table of `cnnc search-report`: one line per trial, columns aligned."""
    header = ("#", "status", *map(printable, objectives), "params", "MACs", "seconds", "note")
    body = []
    for r in table_rows:
        values = [
            f"{v:.4g}" if n not in ("params", "macs") else si(v)
            for n, v in zip(objectives, r.values or ())
        ]
        values += [""] * (len(objectives) - len(values))
        note = f"= #{r.reused_from}" if r.reused_from is not None else printable(r.reason)
        body.append(
            (
                str(r.number),
                printable(r.status),
                *values,
                si(r.params) if r.params is not None else "",
                si(r.macs) if r.macs is not None else "",
                f"{r.seconds:.1f}" if r.seconds is not None else "",
                note,
            )
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *body]]
    lines.insert(1, "  ".join("─" * w for w in widths))
    return "\n".join(lines)


def counts_text(table_rows: list[Row]) -> str:
    """`8 trials: 6 trained, 1 infeasible, 1 reused`."""
    counts: dict[str, int] = {}
    for r in table_rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    listed = ", ".join(f"{n} {printable(status)}" for status, n in counts.items())
    return f"{len(table_rows)} trial{'s' if len(table_rows) != 1 else ''}" + (
        f": {listed}" if listed else ""
    )


def progress_text(trials, target: int | None) -> str:
    """`progress: 7 of 12 finished · 3 running · 1 queued again` (finished as `worker.counts` says)."""
    states = [t.state.name for t in trials]
    done = sum(
        t.user_attrs.get("status") != "reused"  # a known architecture: not counted
        and (
            s in ("COMPLETE", "PRUNED") or (s == "FAIL" and t.user_attrs.get("status") == "failed")
        )
        for s, t in zip(states, trials)
    )
    target = (
        _count(target) or None
    )  # the study's attribute (crafted, maybe): a positive count or nothing
    parts = [f"progress: {done}" + (f" of {target}" if target else "") + " finished"]
    if states.count("RUNNING"):
        parts.append(f"{states.count('RUNNING')} running")
    if states.count("WAITING"):
        parts.append(f"{states.count('WAITING')} queued again")
    return " · ".join(parts)


# ---------------------------------------------------------------------------------------------
# Plots


AXES = {"latency": "latency (ms)", "macs": "MACs"}  # an objective's axis, with its unit


def plot_study(study, names: tuple[str, ...], out: Path) -> tuple[list[Path], list[str]]:
    """history.png, pareto.png (two objectives) and importances.png, each skipped with a note when
    the study cannot give it (too few complete trials, one parameter, …)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import optuna.visualization.matplotlib as vis

    multi = len(names) > 1
    first = (lambda t: t.values[0]) if multi else None
    plots = [
        (
            "history.png",
            lambda: vis.plot_optimization_history(study, target=first, target_name=names[0]),
        )
    ]
    if len(names) == 2:
        axes = [AXES.get(n, n) for n in names]
        plots.append(("pareto.png", lambda: vis.plot_pareto_front(study, target_names=axes)))
    plots.append(("importances.png", lambda: importance_axes(study, first, names[0])))
    files, notes = [], []
    for name, draw in plots:
        problem = _draw(draw, out / name)
        if problem is None:
            files.append(out / name)
        else:
            notes.append(f"no {name}: {problem}")
    return files, notes


MIN_TRIALS = 3  # scored trials a decision's importance needs


def importances(study, target=None) -> dict[str, tuple[float, int]]:
    """Each decision's ω² over the study's complete trials (by the first value, or `target`), a
    reused trial left out (its score is its earlier trial's, counted once), with the number of
    trials it is over: those that hold the decision. ω² = (SS_between − (k − 1)·MS_within) /
    (SS_total + MS_within), for k options met, SS_between = Σ_options n_o (mean_o − mean)²,
    SS_total = Σ (score − mean)², MS_within = (SS_total − SS_between) / (n − k): the share of the
    score's variance the decision explains alone, less what chance explains among n trials (η²,
    SS_between / SS_total, is (k − 1)/(n − 1) on pure noise), 0 where it explains no more. A
    decision met in fewer than MIN_TRIALS trials or k + 2, with one option alone, or whose trials'
    scores are all equal, has none."""
    import optuna

    scores: dict[str, list[tuple[str, float]]] = {}
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if trial.user_attrs.get("status") == "reused":
            continue
        value = target(trial) if target is not None else trial.value
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        for name, option in trial.params.items():
            scores.setdefault(str(name), []).append((str(option), float(value)))
    found = {}
    for name, pairs in scores.items():
        share = _omega_squared(pairs)
        if share is not None:
            found[name] = (share, len(pairs))
    return found


def _omega_squared(pairs: list[tuple[str, float]]) -> float | None:
    groups: dict[str, list[float]] = {}
    for option, value in pairs:
        groups.setdefault(option, []).append(value)
    n, k = len(pairs), len(groups)
    if n < max(MIN_TRIALS, k + 2) or k < 2:
        return None
    mean = math.fsum(v for _, v in pairs) / n
    total = math.fsum((v - mean) ** 2 for _, v in pairs)
    if total <= 0.0:
        return None
    between = math.fsum(
        len(values) * (math.fsum(values) / len(values) - mean) ** 2 for values in groups.values()
    )
    within = max(0.0, total - between) / (n - k)
    return min(1.0, max(0.0, (between - (k - 1) * within) / (total + within)))


def importance_axes(study, target, name: str):
    """The bar chart of `importances`, largest at the top (ValueError when there is none)."""
    import matplotlib.pyplot as plt

    found = sorted(importances(study, target).items(), key=lambda kv: (kv[1][0], kv[0]))
    if not found:
        raise ValueError(
            f"no decision has an importance yet (it needs {MIN_TRIALS} scored trials, and two "
            "more than the options it meets)"
        )
    found = found[-MOST_BARS:]
    figure, axes = plt.subplots(figsize=(7, 1.4 + 0.35 * len(found)))
    labels = [f"{_label(n)} (n={count})" for n, (_, count) in found]
    bars = axes.barh(labels, [v for _, (v, _) in found], color="#4c72b0")
    axes.bar_label(bars, labels=[f"{v:.2f}" for _, (v, _) in found], padding=3)
    axes.set_xlim(0, 1.1)
    axes.set_xlabel(
        f"ω²: the share of the {name}'s variance each decision explains alone, beyond chance\n"
        "(0: no more than chance; n: the scored trials that meet it)"
    )
    axes.set_title("Decision importance")
    figure.tight_layout()
    return axes


MOST_BARS = 40  # decisions a chart shows, the most important
LABEL_WIDTH = 48  # characters of a decision's name a chart shows


def _label(name: str) -> str:
    """A decision's name as a chart shows it (a study's names are data): one line, control
    characters escaped, at most LABEL_WIDTH characters, `$` not read as mathematics."""
    text = printable(name)  # a newline too: `\x0a`
    text = text if len(text) <= LABEL_WIDTH else text[: LABEL_WIDTH - 1] + "…"
    return text.replace("$", r"\$")


def _draw(draw, path: Path) -> str | None:
    import matplotlib.pyplot as plt

    completed = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            axes = draw()
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        with safefs.replacing_path(path) as (tmp, _):
            figure.savefig(tmp, dpi=110, bbox_inches="tight")
        completed = True
    except Exception as exc:  # noqa: BLE001 — optuna refuses some studies (one trial, no common parameters, …)
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    finally:
        plt.close("all")
    return None if completed else "nothing to draw"
