"""The evaluators `cnnc search` plugs into the driver: train each member, or score it untrained.

Input: `driver.Settings` and a data set. Output: an `Evaluator` — `(graph, report_epoch) -> Outcome`.
torch is imported here, inside the functions; a member too large for the device's free memory is a
failed `Outcome` before anything is allocated (`evaluators/fit.py`).
"""

from __future__ import annotations

import math
import time

from cnnc.search.settings import PROXIES, PROXY_BATCH, Evaluator, Outcome, Settings


def train_evaluator(settings: Settings, data) -> Evaluator:
    """Lower the graph (weights seeded by `settings.seed`) and train it; the score is accuracy.

    Members are lowered to `StepModule`s: `to_graph_module`'s modules and weights without its
    generated code, whose making would cost more than the rest of cnnc's work on a trial."""
    from cnnc.compiler.lower.steps import to_step_module
    from cnnc.search.evaluators.fit import too_large
    from cnnc.search.evaluators.train import MIN_TRAIN, TOO_FEW, train_and_evaluate
    from cnnc.training.data import check_trainable
    from cnnc.training.loop import resolve_device

    device = resolve_device(settings.device)
    check_trainable(
        data, MIN_TRAIN, TOO_FEW, "add images to the data set"
    )  # once, before any trial

    def evaluate(graph, report_epoch) -> Outcome:
        large = too_large(graph, device, settings.batch_size, settings.optimizer)
        if large:
            return Outcome(math.nan, 0.0, large)
        model = to_step_module(graph, seed=settings.seed)
        r = train_and_evaluate(
            model,
            data,
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            lr=settings.lr,
            optimizer=settings.optimizer,
            label_smoothing=settings.label_smoothing,
            device=settings.device,
            seed=settings.seed,
            report=report_epoch,
        )
        return Outcome(r.accuracy, r.seconds, r.failed, {}, r.history)

    return evaluate


def proxy_evaluator(settings: Settings, data) -> Evaluator:
    """Lower the graph (a `StepModule`, as above) and score it untrained; the score is
    `settings.proxy`, all proxies recorded."""
    from cnnc.compiler.lower.steps import to_step_module
    from cnnc.search.evaluators.fit import too_large
    from cnnc.search.evaluators.proxy import score_all
    from cnnc.search.evaluators.train import MIN_TRAIN, TOO_FEW
    from cnnc.training.data import check_trainable
    from cnnc.training.loop import is_out_of_memory, resolve_device

    device = resolve_device(settings.device)
    check_trainable(
        data, MIN_TRAIN, TOO_FEW, "add images to the data set"
    )  # NaN inputs make NaN scores

    def evaluate(graph, report_epoch) -> Outcome:
        start = time.perf_counter()
        large = too_large(graph, device, PROXY_BATCH)
        if large:
            return Outcome(math.nan, 0.0, large)
        model = to_step_module(graph, seed=settings.seed, device=device)
        try:
            scores = score_all(model, data, seed=settings.seed)
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
            return Outcome(
                math.nan, time.perf_counter() - start, f"out of memory: {exc}".splitlines()[0]
            )
        proxies = {k: v for k, v in scores.items() if k in PROXIES}
        return Outcome(scores[settings.proxy], time.perf_counter() - start, None, proxies)

    return evaluate


def load_data(settings: Settings):
    from cnnc.training.data import load_dataset

    return load_dataset(settings.data, settings.size, settings.seed)
