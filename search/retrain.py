"""`--retrain-top K`: how far to trust a one-shot search's ranking.

Input: a finished study whose scores came from shared weights (`--evaluator supernet` or `darts`),
its `Space`, and `retrain(graph) -> Outcome` (the train evaluator: each member from scratch).
Output: `Retrained`: the best K distinct architectures (by score, completed trials only, a reused
trial standing for its first), each with its supernet score and its stand-alone accuracy, and
Kendall's τ-b between the two (None with fewer than two, or when either side is constant); written
to `retrain.csv` in `--out` (through `safefs`) and to the study's user attribute `retrained` after
each member, so that an interrupted run keeps what it retrained and a resume retrains the rest.
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from cnnc.dsl import safefs
from cnnc.search import report
from cnnc.search.space import Space, fixed, graph_hash


@dataclass(frozen=True, slots=True)
class Retrained:
    numbers: tuple[int, ...]  # trial numbers, best supernet score first
    supernet: tuple[float, ...]
    standalone: tuple[float, ...]  # NaN where the run failed
    tau: float | None

    def note(self) -> str:
        tau = "undefined" if self.tau is None else f"{self.tau:+.3f}"
        return (
            f"retrained the best {len(self.numbers)} from scratch: Kendall τ {tau} between "
            "supernet and stand-alone accuracy (1: the same order, 0: unrelated)"
        )


def kendall_tau(a: list[float], b: list[float]) -> float | None:
    """Kendall's τ-b of two equally long lists (ties counted as scipy.stats.kendalltau does)."""
    concordant = discordant = ties_a = ties_b = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        da, db = a[i] - a[j], b[i] - b[j]
        if da == 0 and db == 0:
            continue
        if da == 0:
            ties_a += 1
        elif db == 0:
            ties_b += 1
        elif (da > 0) == (db > 0):
            concordant += 1
        else:
            discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return None if denominator == 0 else (concordant - discordant) / denominator


def top_rows(rows: list[report.Row], k: int) -> list[report.Row]:
    """The best `k` completed trials by their first value, one per architecture."""
    done = [r for r in rows if r.state == "COMPLETE" and r.values and r.reused_from is None]
    done.sort(key=lambda r: (-r.values[0], r.number))
    seen, out = set(), []
    for r in done:
        if r.hash not in seen:
            seen.add(r.hash)
            out.append(r)
    return out[:k]


def retrain_top(
    study, space: Space, retrain, k: int, out: Path, say=lambda text: None
) -> tuple[Retrained, Path]:
    """Retrain the best `k` (module docstring); returns the figures and the file written. Each
    member retrained is said (`say`) and recorded at once, so a run interrupted meanwhile keeps
    the ones done (retrain.csv and `retrained` hold those), and a resume retrains only the rest."""
    rows = top_rows(report.rows(study.trials), k)
    earlier = recorded(study.user_attrs.get("retrained"))
    standalone: list[float] = []
    path = Path(out) / "retrain.csv"
    for i, row in enumerate(rows):
        if row.number in earlier:
            standalone.append(earlier[row.number])
            continue
        standalone.append(_retrain(space, retrain, row))
        accuracy = "failed" if math.isnan(standalone[-1]) else f"{standalone[-1]:.4f}"
        say(f"retrained #{row.number} ({i + 1}/{len(rows)}): stand-alone accuracy {accuracy}")
        keep(study, figures(rows, standalone), path)
    result = figures(rows, standalone)
    return result, keep(study, result, path)


def _retrain(space: Space, retrain, row) -> float:
    member = space.member(fixed(row.decisions))
    if not member.ok or graph_hash(member.graph) != row.hash:
        return math.nan  # a study whose records do not match its space
    outcome = retrain(member.graph, lambda epoch, accuracy: None)
    return math.nan if outcome.failed else outcome.score


def figures(rows, standalone: list[float]) -> Retrained:
    """The figures of the first `len(standalone)` rows, retrained."""
    rows = rows[: len(standalone)]
    scores = [r.values[0] for r in rows]
    pairs = [(s, a) for s, a in zip(scores, standalone) if not math.isnan(a)]
    tau = kendall_tau([s for s, _ in pairs], [a for _, a in pairs]) if len(pairs) > 1 else None
    return Retrained(tuple(r.number for r in rows), tuple(scores), tuple(standalone), tau)


def keep(study, result: Retrained, path: Path) -> Path:
    """The study's `retrained` attribute and retrain.csv, as far as `result` goes."""
    study.set_user_attr(
        "retrained",
        {
            "trials": list(result.numbers),
            "standalone": [None if math.isnan(a) else a for a in result.standalone],
            "tau": result.tau,
        },
    )
    return write_csv(result, path)


def recalled(study, rows: list[report.Row]) -> Retrained | None:
    """An earlier `--retrain-top`'s figures (`search-report`): its record of stand-alone
    accuracies (`recorded`), τ computed again from them and the rows' supernet scores; None
    without a record."""
    earlier = recorded(study.user_attrs.get("retrained"))
    by_number = {r.number: r for r in rows if r.values}
    kept = [by_number[n] for n in earlier if n in by_number]
    if not kept:
        return None
    return figures(kept, [earlier[r.number] for r in kept])


def recorded(attribute) -> dict[int, float]:
    """{trial number: stand-alone accuracy (NaN: failed)} of a study's `retrained` attribute, an
    earlier run's; {} for anything but lists of trial numbers and accuracies in [0, 1] (a study
    is data)."""
    if not isinstance(attribute, dict):
        return {}
    numbers, accuracies = attribute.get("trials"), attribute.get("standalone")
    if not isinstance(numbers, list) or not isinstance(accuracies, list):
        return {}
    if len(numbers) != len(accuracies) or len(numbers) > 10_000:
        return {}
    out = {}
    for n, a in zip(numbers, accuracies):
        if type(n) is not int or not (a is None or type(a) in (int, float) and 0 <= a <= 1):
            return {}
        out[n] = math.nan if a is None else float(a)
    return out


def write_csv(result: Retrained, path: Path) -> Path:
    """retrain.csv: trial, supernet score, stand-alone accuracy; τ on a last row of its own."""
    with safefs.replacing(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", "supernet", "standalone"])
        for n, s, a in zip(result.numbers, result.supernet, result.standalone):
            w.writerow([n, f"{s:.6g}", "" if math.isnan(a) else f"{a:.6g}"])
        w.writerow(["kendall_tau", "", "" if result.tau is None else f"{result.tau:.6g}"])
    return path
