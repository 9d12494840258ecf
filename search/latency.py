"""The `latency` objective of `cnnc search`: each member's latency on the search's device, predicted
from a table of measured layers (`compiler/lower/latency.py`), checked on a sample of members.

Contract:
- `open_table(settings, note)`: the device's table (`--device`, `auto` the GPU when there is one),
  read from the user's cache; its notes (an ignored cache file) go to `note`.
- `record(table, trial, graph)` sets the trial's user attributes `latency_ms` (the sum of the
  member's layers, batch 1, float32) and, for a sampled trial (`checked`), `latency_measured_ms` (the
  whole lowered network timed end to end). Returns `latency_ms`.
- `check_note(rows)`: how far the predictions were from the measurements over the study's sampled
  members: the mean absolute percentage error, and its largest; None when no member was sampled.
"""

from __future__ import annotations

CHECKED_FIRST = 8  # the first trials are all checked end to end, then one in `CHECKED_EVERY`
CHECKED_EVERY = 8


def checked(number: int) -> bool:
    """Whether trial `number`'s member is also timed end to end (a sample of the study)."""
    return number < CHECKED_FIRST or number % CHECKED_EVERY == 0


def open_table(settings, note):
    from cnnc.compiler.lower.latency import LatencyTable
    from cnnc.training.loop import resolve_device

    table = LatencyTable(resolve_device(settings.device))
    for text in table.notes:
        note(text)
    table.notes.clear()
    return table


def record(table, trial, graph) -> float:
    from cnnc.compiler.lower.latency import end_to_end

    predicted = table.predict(graph)
    trial.set_user_attr("latency_ms", predicted)
    if checked(trial.number):
        trial.set_user_attr("latency_measured_ms", end_to_end(graph, table.device))
    return predicted


def check(rows) -> dict | None:
    """{"members", "mean_abs_pct_error", "max_abs_pct_error", "mean_pct_error"} over the rows
    timed both ways; the last signed (predicted − measured): a sum of layers timed alone misses
    what runs between them, and reads low."""
    errors = [
        (r.latency_ms - r.latency_measured_ms) / r.latency_measured_ms * 100.0
        for r in rows
        if r.latency_ms is not None and r.latency_measured_ms
    ]
    if not errors:
        return None
    return {
        "members": len(errors),
        "mean_abs_pct_error": sum(map(abs, errors)) / len(errors),
        "max_abs_pct_error": max(map(abs, errors)),
        "mean_pct_error": sum(errors) / len(errors),
    }


def check_note(figures: dict) -> str:
    n, bias = figures["members"], figures.get("mean_pct_error", 0.0)
    return (
        f"latency: the sum of the layers predicted the end-to-end latency of {n} member"
        f"{'s' if n != 1 else ''} within {figures['mean_abs_pct_error']:.1f} % on average "
        f"(mean absolute error; the largest {figures['max_abs_pct_error']:.1f} %; "
        f"{abs(bias):.1f} % {'high' if bias >= 0 else 'low'} on average)"
    )
