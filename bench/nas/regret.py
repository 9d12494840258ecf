"""Regret of a search against a tabular benchmark: pure functions over the trials of one run.

A run is its trials in the order they finished, each a `Trial` (the table's accuracy of the member
it chose, and the seconds it was charged). Its *regret* after n trials, or after t seconds, is the
table's best accuracy minus the best accuracy it has found by then (None before its first trial
ends). A member is *top-1 %* when its accuracy is at least that of the table's ⌈1 % · N⌉-th best;
the time to reach one is the number of trials and the seconds charged up to and including the
first such trial (None when the run never reaches one). Runs of several seeds are summed up by the
mean regret (over the seeds that have a value) and the median time to reach a top-1 % member.
Imports nothing heavy: the test checks it on a tiny synthetic table.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

TRIALS_AT = (1, 5, 10, 20, 50, 100)  # the regret table's columns
SECONDS_AT = (5, 10, 20, 40, 80)


@dataclass(frozen=True, slots=True)
class Trial:
    accuracy: float  # the table's accuracy of the member the trial chose
    seconds: float  # what the trial cost: the table's training seconds, or measured wall time


def top_threshold(accuracies, fraction: float = 0.01) -> float:
    """The accuracy of the ⌈fraction · N⌉-th best member: a member at least as good is in the top."""
    ranked = sorted(accuracies, reverse=True)
    return ranked[max(1, math.ceil(fraction * len(ranked))) - 1]


def regret_after_trials(run: list[Trial], best: float, n: int) -> float | None:
    """best − the best accuracy among the first `n` trials; None for a run of fewer trials."""
    if len(run) < n or n < 1:
        return None
    return best - max(t.accuracy for t in run[:n])


def regret_after_seconds(run: list[Trial], best: float, budget: float) -> float | None:
    """best − the best accuracy among the trials finished within `budget` charged seconds."""
    found, spent = None, 0.0
    for t in run:
        spent += t.seconds
        if spent > budget:
            break
        found = t.accuracy if found is None else max(found, t.accuracy)
    return None if found is None else best - found


def time_to_reach(run: list[Trial], threshold: float) -> tuple[int, float] | None:
    """(trials, seconds) charged up to the first trial at or above `threshold`, or None."""
    spent = 0.0
    for n, t in enumerate(run, 1):
        spent += t.seconds
        if t.accuracy >= threshold:
            return n, spent
    return None


def mean_or_none(values) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


def median_time(
    runs: list[list[Trial]], threshold: float
) -> tuple[float | None, float | None, int]:
    """Median trials and seconds to reach `threshold` over the runs that reach it, and how many do."""
    reached = [r for r in (time_to_reach(run, threshold) for run in runs) if r is not None]
    if not reached:
        return None, None, 0
    trials = statistics.median(n for n, _ in reached)
    seconds = statistics.median(s for _, s in reached)
    return trials, seconds, len(reached)


def kendall_tau(xs, ys) -> float:
    """Kendall's τ-b of two equally long sequences (ties in either corrected for), the search's own
    (`cnnc.search.retrain.kendall_tau`, as `--retrain-top` reports it); NaN when one of them is
    constant."""
    from cnnc.search.retrain import kendall_tau as tau

    if len(xs) != len(ys):
        raise ValueError("kendall_tau needs two sequences of one length")
    value = tau(list(xs), list(ys))
    return math.nan if value is None else value


# ---------------------------------------------------------------------------------------------
# Tables


def pp(x: float | None) -> str:
    """A regret in percentage points of accuracy, or — when there is none yet."""
    return "—" if x is None else f"{100 * x:.2f}"


def regret_table(results: dict[str, list[list[Trial]]], best: float, threshold: float) -> str:
    """Regret after each count of `TRIALS_AT`, means over the seeds (— while a run has fewer
    trials); the median trials to a member at or above `threshold`, and how many runs reach one."""
    head = ["method", "seeds", *(f"@{n}" for n in TRIALS_AT), "→top1% trials", "reached"]
    lines = [head]
    for name, runs in results.items():
        at = [mean_or_none(regret_after_trials(r, best, n) for r in runs) for n in TRIALS_AT]
        trials, _, reached = median_time(runs, threshold)
        shown = "—" if trials is None else f"{trials:g}"
        lines.append([name, str(len(runs)), *map(pp, at), shown, f"{reached}/{len(runs)}"])
    return layout(lines)


def time_table(results: dict[str, list[list[Trial]]], best: float, threshold: float) -> str:
    """Regret after each budget of `SECONDS_AT`; a run's charged seconds and the members it trained
    (its trials charged any time: a member met again is not), both means over the seeds; the
    median seconds to a member at or above `threshold`."""
    head = ["method", *(f"@{s} s" for s in SECONDS_AT), "charged s", "trained", "→top1% s"]
    lines = [head]
    for name, runs in results.items():
        at = [mean_or_none(regret_after_seconds(r, best, s) for r in runs) for s in SECONDS_AT]
        _, seconds, _ = median_time(runs, threshold)
        charged = statistics.fmean(sum(t.seconds for t in r) for r in runs)
        trained = statistics.fmean(sum(t.seconds > 0 for t in r) for r in runs)
        to_top = "—" if seconds is None else f"{seconds:.1f}"
        lines.append([name, *map(pp, at), f"{charged:.1f}", f"{trained:g}", to_top])
    return layout(lines)


def layout(lines: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    text = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)
