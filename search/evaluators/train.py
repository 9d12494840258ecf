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
On CUDA it trains under autocast (bf16 where supported, else fp16 with a GradScaler), channels_last.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NoReturn

import torch
from torch import nn

from cnnc.dsl.diagnostics import CnncError, error
from cnnc.training.data import Dataset, check_trainable
from cnnc.training.loop import (
    cuda_indices,
    is_out_of_memory,
    model_device,
    optimizer_step,
    resolve_device,
)

OPTIMIZERS = ("sgd", "adamw", "rmsprop")
NAN_CHECK_EVERY = 10  # steps between loss checks; each check syncs with the GPU
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
MIN_TRAIN = 2  # images for one step: a batch of one is dropped (BatchNorm needs two)
TOO_FEW = "training needs two training images for one step (BatchNorm needs two a batch)"


@dataclass(frozen=True, slots=True)
class TrainResult:
    accuracy: float  # validation accuracy after the last epoch, in [0, 1]; 0.0 when failed
    history: tuple[float, ...]  # validation accuracy after each completed epoch
    seconds: float  # wall time of the whole run, evaluation included
    failed: str | None = None  # why the run stopped early, e.g. "loss became NaN at epoch 2"


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything a run needs besides the model and data, resolved and checked."""

    device: torch.device
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    label_smoothing: float
    seed: int
    amp_dtype: torch.dtype | None  # None: full precision
    memory_format: torch.memory_format


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
    plan = _make_plan(device, epochs, batch_size, lr, optimizer, label_smoothing, seed)
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


def _make_plan(device, epochs, batch_size, lr, optimizer, label_smoothing, seed) -> _Plan:
    dev = resolve_device(device)
    on_gpu = dev.type == "cuda"
    amp = None
    if on_gpu:
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    memory_format = torch.channels_last if on_gpu else torch.contiguous_format
    return _Plan(
        dev,
        epochs,
        batch_size,
        float(lr),
        optimizer,
        float(label_smoothing),
        seed,
        amp,
        memory_format,
    )


# ---------------------------------------------------------------------------------------------
# The guarded run: failures become messages, the model and process are always restored


def _run_guarded(model, data, plan: _Plan, report, history: list[float]) -> str | None:
    home = model_device(model)
    was_training = model.training
    failed = None
    try:
        with torch.random.fork_rng(devices=cuda_indices(plan.device)):
            torch.manual_seed(plan.seed)
            failed = _fit(model, data, plan, report, history)
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        failed = f"out of memory: {_first_line(exc)}"
    finally:
        _restore(model, home, was_training, plan.device, collect=failed is not None)
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


def _fit(model, data: Dataset, plan: _Plan, report, history: list[float]) -> str | None:
    """Train for `plan.epochs`, appending accuracies to `history`; why it failed, or None."""
    train_x = data.train_x.to(plan.device)  # [N, C, H, W]
    train_y = data.train_y.to(plan.device)  # [N]
    val_x, val_y = data.val_x.to(plan.device), data.val_y.to(plan.device)  # [M, C, H, W], [M]
    model.to(device=plan.device, memory_format=plan.memory_format)
    opt = make_optimizer(model, plan.optimizer, plan.lr)
    steps = plan.epochs * max(1, sum(1 for _ in _batch_bounds(len(train_x), plan.batch_size)))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    scaler = torch.amp.GradScaler("cuda") if plan.amp_dtype == torch.float16 else None
    loss_fn = nn.CrossEntropyLoss(label_smoothing=plan.label_smoothing)
    gen = torch.Generator().manual_seed(plan.seed)  # shuffling, independent of the global RNG
    for epoch in range(1, plan.epochs + 1):
        order = torch.randperm(len(train_x), generator=gen).to(plan.device)  # [N]
        bad = _train_epoch(model, train_x, train_y, order, plan, (opt, schedule, scaler, loss_fn))
        if bad is not None:
            return f"loss became {bad} at epoch {epoch}"
        history.append(
            evaluate(model, val_x, val_y, plan.batch_size, plan.amp_dtype, plan.memory_format)
        )
        if report is not None:
            report(epoch, history[-1])
    return None


def make_optimizer(model: nn.Module, name: str, lr: float) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum 0.9, weight decay 5e-4), AdamW (torch defaults) or RMSprop."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY
        )
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    return torch.optim.RMSprop(params, lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)


def _batch_bounds(n: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """[start, stop) of each batch; a trailing batch of one is dropped (BatchNorm needs two)."""
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        if stop - start >= 2 or n == 1:
            yield start, stop


def _train_epoch(model, xs, ys, order, plan: _Plan, tools) -> str | None:
    """One pass over `xs` [N, C, H, W], `ys` [N] in `order` [N]; "NaN"/"inf" if the loss went so."""
    opt, schedule, scaler, loss_fn = tools
    model.train()
    total = torch.zeros((), device=plan.device)  # sum of batch losses; NaN/inf once any is
    for step, (start, stop) in enumerate(_batch_bounds(len(xs), plan.batch_size), 1):
        idx = order[start:stop]  # [B]
        x = xs[idx].contiguous(memory_format=plan.memory_format)  # [B, C, H, W]
        loss = _train_step(model, x, ys[idx], plan, opt, scaler, loss_fn)
        schedule.step()
        total += loss.detach().float()
        if step % NAN_CHECK_EVERY == 0 and not torch.isfinite(total):
            break
    if torch.isfinite(total):
        return None
    return "NaN" if torch.isnan(total) else "inf"


def _train_step(model, x, y, plan: _Plan, opt, scaler, loss_fn) -> torch.Tensor:
    with torch.autocast(plan.device.type, dtype=plan.amp_dtype, enabled=plan.amp_dtype is not None):
        logits = model(x)  # [B, K]
    loss = loss_fn(logits.float(), y)  # []
    optimizer_step(loss, opt, scaler)
    return loss


@torch.no_grad()
def evaluate(
    model, x, y, batch_size: int, amp_dtype=None, memory_format=torch.contiguous_format
) -> float:
    """Top-1 accuracy of `model` (put in eval mode) on `x` [M, C, H, W], `y` [M]."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].contiguous(memory_format=memory_format)  # [B, C, H, W]
        with torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(xb)  # [B, K]
        correct += (logits.argmax(dim=1) == y[start : start + batch_size]).sum()
    return correct.item() / max(1, len(x))
