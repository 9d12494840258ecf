"""Train a candidate on real data and measure its validation accuracy.

Input: a `torch.nn.Module` taking `[N, C, H, W]` and returning logits `[N, num_classes]`, and a
`Dataset`. Output: a `TrainResult`. Contract:
- the model is trained in place; afterwards it is back on the device it came from, in its original
  train/eval mode, in the default (contiguous) memory format;
- a run is a pure function of (model's initial weights, data, options, seed): shuffling uses its
  own `torch.Generator`, and the global RNG is seeded inside `torch.random.fork_rng`, so the
  caller's RNG state is untouched;
- data that cannot train any network (fewer than two training images, no validation image, values
  that are NaN or infinite) is a `CnncError` (E0603) before anything runs;
- a loss that stops being finite, or running out of memory, ends the run with `failed` set (never
  an exception); anything `report` raises (e.g. `optuna.TrialPruned`) propagates unchanged; other
  errors propagate too, after the model and the CUDA cache are cleaned up.
The training itself is the trainer's (`training/loop.py`), by the search's rules (`recipe`): no
warm-up, a trailing partial batch trained, the loss checked every `NAN_CHECK_EVERY` steps (each
check waits for the GPU), every BatchNorm layer in train mode; SGD and RMSprop decay weights by
`WEIGHT_DECAY`, AdamW by torch's default.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import torch
from torch import nn

from cnnc.dsl.diagnostics import CnncError, error
from cnnc.training.data import Dataset, check_trainable
from cnnc.training.loop import (
    OPTIMIZERS,
    Placement,
    Recipe,
    Trainer,
    cuda_indices,
    evaluate,
    is_out_of_memory,
    model_device,
    place,
)

NAN_CHECK_EVERY = 10  # steps between loss checks; each check syncs with the GPU
WEIGHT_DECAY = 5e-4
ADAMW_WEIGHT_DECAY = 1e-2  # torch's default, which the search has always trained AdamW with
MIN_TRAIN = 2  # images for one step: a batch of one is dropped (BatchNorm needs two)
TOO_FEW = "training needs two training images for one step (BatchNorm needs two a batch)"


@dataclass(frozen=True, slots=True)
class TrainResult:
    accuracy: float  # validation accuracy after the last epoch, in [0, 1]; 0.0 when failed
    history: tuple[float, ...]  # validation accuracy after each completed epoch
    seconds: float  # wall time of the whole run, evaluation included
    failed: str | None = None  # why the run stopped early, e.g. "loss became NaN at epoch 2"


def train_and_evaluate(
    model: nn.Module,
    data: Dataset,
    *,
    epochs: int = 2,
    batch_size: int = 64,
    lr: float = 0.05,
    optimizer: str = "sgd",
    label_smoothing: float = 0.0,
    device: str = "auto",
    seed: int = 0,
    report: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train `model` on `data.train_*` with a cosine LR schedule; `report(epoch, acc)` per epoch.

    Epochs count from 1. `lr` is the peak learning rate for every optimizer (0.05 suits SGD with
    momentum; AdamW wants ~1e-3).
    """
    _check_options(epochs, batch_size, lr, optimizer, label_smoothing)
    check_trainable(data, MIN_TRAIN, TOO_FEW, "add images to the data set")
    plan = (recipe(epochs, batch_size, lr, optimizer, label_smoothing, seed), place(device))
    start = time.perf_counter()
    history: list[float] = []
    failed = _run_guarded(model, data, plan, report, history)
    accuracy = history[-1] if history and failed is None else 0.0
    return TrainResult(accuracy, tuple(history), time.perf_counter() - start, failed)


# ---------------------------------------------------------------------------------------------
# Options


def _fail(message: str, help_: str) -> NoReturn:
    raise CnncError(error("E0603", message, None, helps=(help_,)))


def _check_options(epochs, batch_size, lr, optimizer, label_smoothing) -> None:
    if not isinstance(epochs, int) or epochs < 1:
        _fail(f"`epochs` must be a positive integer, but got {epochs!r}", "pass e.g. epochs=2")
    if not isinstance(batch_size, int) or batch_size < 1:
        _fail(
            f"`batch_size` must be a positive integer, but got {batch_size!r}",
            "pass e.g. batch_size=64",
        )
    if not lr > 0:
        _fail(
            f"`lr` must be positive, but got {lr!r}", "pass e.g. lr=0.05 (sgd) or lr=1e-3 (adamw)"
        )
    if optimizer not in OPTIMIZERS:
        _fail(f"unknown optimizer `{optimizer}`", f"expected one of {', '.join(OPTIMIZERS)}")
    if not 0.0 <= label_smoothing < 1.0:
        _fail(f"`label_smoothing` must lie in [0, 1), but got {label_smoothing!r}", "pass e.g. 0.1")


def recipe(epochs, batch_size, lr, optimizer, label_smoothing, seed) -> Recipe:
    """The trainer's rules for a search's member (module docstring)."""
    decay = ADAMW_WEIGHT_DECAY if optimizer == "adamw" else WEIGHT_DECAY
    return Recipe(
        epochs=epochs,
        batch_size=batch_size,
        lr=float(lr),
        optimizer=optimizer,
        weight_decay=decay,
        label_smoothing=float(label_smoothing),
        seed=seed,
        keep_last=True,
        freeze_norms=False,
        check_every=NAN_CHECK_EVERY,
    )


# ---------------------------------------------------------------------------------------------
# The guarded run: failures become messages, the model and process are always restored


def _run_guarded(model, data, plan, report, history: list[float]) -> str | None:
    rules, where = plan
    home = model_device(model)
    was_training = model.training
    failed = None
    try:
        with torch.random.fork_rng(devices=cuda_indices(where.device)):
            torch.manual_seed(rules.seed)
            failed = _fit(model, data, rules, where, report, history)
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        failed = f"out of memory: {_first_line(exc)}"
    finally:
        _restore(model, home, was_training, where.device, collect=failed is not None)
    return failed


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _restore(
    model: nn.Module, home: torch.device, was_training: bool, device: torch.device, collect: bool
) -> None:
    """Put the model back where and how it was, and hand cached GPU memory back.

    `collect` runs the cycle collector, which frees tensors an exception's traceback kept alive; it
    costs ~0.1 s or more, so only failed runs pay for it.
    """
    for p in model.parameters():
        p.grad = None
    model.to(device=home, memory_format=torch.contiguous_format)
    model.train(was_training)
    if collect:
        gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# Training


def _fit(
    model, data: Dataset, rules: Recipe, where: Placement, report, history: list[float]
) -> str | None:
    """Train for `rules.epochs`, appending accuracies to `history`; why it failed, or None."""
    train_x = data.train_x.to(where.device)  # [N, C, H, W]
    train_y = data.train_y.to(where.device)  # [N]
    val_x, val_y = data.val_x.to(where.device), data.val_y.to(where.device)  # [M, C, H, W], [M]
    trainer = Trainer(model, rules, where, len(train_x))
    for epoch in range(1, rules.epochs + 1):
        bad = trainer.epoch(train_x, train_y)
        if bad is not None:
            return f"loss became {'NaN' if math.isnan(bad) else 'inf'} at epoch {epoch}"
        history.append(evaluate(model, val_x, val_y, rules.batch_size, where)[1])
        if report is not None:
            report(epoch, history[-1])
    return None
