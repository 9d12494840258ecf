"""A training run (`cnnc train`): the trainer of `training/loop.py` with checkpoints, resuming and
records.

Input: a compiled module (logits `[N, K]`), a `Dataset` and `TrainOptions`; output files in `out`:
`checkpoint.pt` after each epoch (weights, optimiser and schedule state, history: `resume` goes on
from it), `metrics.csv` and `curves.png` (loss and accuracy per epoch), and `model.pt` (the final
weights, a plain state_dict) at the end. Contract (the rules are the trainer's, by `recipe`):
- frozen parameters (`freeze`) keep `requires_grad=False`, are left out of the optimiser, and the
  BatchNorm layers whose parameters are all frozen stay in eval mode, so their running statistics
  stay those of the checkpoint (the usual fine-tuning practice): frozen tensors are bit-identical
  after training;
- the learning rate warms up linearly for `warmup` epochs, then follows a cosine to zero;
- an epoch trains its full batches only (a trailing partial one is dropped), checking the loss at
  every step: a loss that stops being finite stops the run with a user error naming the epoch (the
  checkpoint of the last good epoch stays);
- on CUDA it trains under autocast (bf16 where supported, else fp16 with a GradScaler), channels_last.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from cnnc.dsl import safefs
from cnnc.dsl.diagnostics import CnncError, error, printable
from cnnc.training.data import Dataset, check_trainable
from cnnc.training.loop import Recipe, Trainer, evaluate, place

METRICS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "seconds",
    "images_per_s",
)


@dataclass(frozen=True)
class TrainOptions:
    epochs: int
    batch_size: int = 64
    lr: float = 0.05
    optimizer: str = "sgd"  # sgd (Nesterov momentum 0.9) | adamw
    weight_decay: float = 5e-4
    warmup: float = 0.0  # epochs of linear warm-up
    label_smoothing: float = 0.0
    augment: bool = False  # random crops and horizontal flips of the training images
    device: str = "auto"
    seed: int = 0


def check_options(o: TrainOptions) -> None:
    rules = [
        (o.epochs >= 1, f"--epochs must be at least 1, but got {o.epochs}"),
        (
            o.batch_size >= 2,
            f"--batch-size must be at least 2 (BatchNorm needs two), but got {o.batch_size}",
        ),
        (math.isfinite(o.lr) and o.lr > 0, f"--lr must be positive, but got {o.lr}"),
        (
            o.optimizer in ("sgd", "adamw"),
            f"--optimizer must be sgd or adamw, but got `{o.optimizer}`",
        ),
        (
            0 <= o.warmup < o.epochs or o.warmup == 0,
            f"--warmup must lie in [0, epochs), but got {o.warmup}",
        ),
        (
            0 <= o.label_smoothing < 1,
            f"--label-smoothing must lie in [0, 1), but got {o.label_smoothing}",
        ),
        (o.weight_decay >= 0, f"--weight-decay must not be negative, but got {o.weight_decay}"),
    ]
    for ok, message in rules:
        if not ok:
            raise CnncError(error("E0603", message, None))


def freeze(model: nn.Module, labels: list[str]) -> list[str]:
    """Freeze every parameter under the given label paths; returns the frozen parameter names.
    A label that names no module is a user error with the nearest labels."""
    names = dict(model.named_modules())
    frozen = []
    for label in labels:
        if label not in names:
            from difflib import get_close_matches

            near = get_close_matches(label, [n for n in names if n], n=3)
            raise CnncError(
                error(
                    "E0603",
                    f"--freeze names no module `{label}`",
                    None,
                    helps=(f"labels near it: {', '.join(near)}",) if near else (),
                )
            )
        for name, p in names[label].named_parameters(prefix=label):
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def recipe(options: TrainOptions) -> Recipe:
    """The trainer's rules for `cnnc train`: full batches, the loss checked at every step, frozen
    BatchNorm layers kept in eval mode."""
    return Recipe(
        epochs=options.epochs,
        batch_size=options.batch_size,
        lr=options.lr,
        optimizer=options.optimizer,
        weight_decay=options.weight_decay,
        warmup=options.warmup,
        label_smoothing=options.label_smoothing,
        augment=options.augment,
        seed=options.seed,
        keep_last=False,
        freeze_norms=True,
        check_every=1,
    )


def train_run(
    model: nn.Module,
    data: Dataset,
    options: TrainOptions,
    out: Path,
    resume: bool = False,
    log=None,
) -> list[dict]:
    """Train `model` in place; returns the metrics rows (one per epoch, resumed ones included)."""
    check_options(options)
    log = log or (lambda text: print(text, file=sys.stderr))
    where = place(options.device)
    model.to(where.device)
    check_trainable(
        data,
        options.batch_size,
        f"fewer than --batch-size {options.batch_size}, so an epoch would make no training step",
        f"lower --batch-size to at most {len(data.train_x)}, or add images",
    )
    trainer = Trainer(model, recipe(options), where, len(data.train_x))
    rows, start = [], 0
    if resume:
        rows, start = restore(out / "checkpoint.pt", model, trainer.opt, trainer.schedule, options)
        log(f"resumed from {out / 'checkpoint.pt'} after epoch {start}")
    trainer.skip(start)  # the same shuffles as an uninterrupted run
    for epoch in range(start + 1, options.epochs + 1):
        rows.append(run_epoch(trainer, data, epoch, log))
        save_checkpoint(out / "checkpoint.pt", model, trainer.opt, trainer.schedule, options, rows)
        write_metrics(out, rows)
    with safefs.replacing(out / "model.pt", "wb") as f:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, f)
    return rows


class Tally:
    """An epoch's running figures, taken after each step: images seen, summed loss, hits; it draws
    the progress bar."""

    def __init__(self, epoch: int, epochs: int, steps: int):
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.t0, self.seen, self.loss_sum, self.correct = time.perf_counter(), 0, 0.0, 0

    def __call__(self, step, idx, loss, logits, y) -> None:
        self.seen += len(idx)
        self.loss_sum += loss.item() * len(idx)
        self.correct += (logits.argmax(1) == y).sum().item()
        speed = self.seen / (time.perf_counter() - self.t0)
        loss_, acc = self.loss_sum / self.seen, self.correct / self.seen
        progress(self.epoch, self.epochs, step, self.steps, loss_, acc, speed)


def run_epoch(trainer: Trainer, data: Dataset, epoch: int, log) -> dict:
    """One epoch of training and its validation; its metrics row."""
    options = trainer.recipe
    tally = Tally(epoch, options.epochs, trainer.steps)
    bad = trainer.epoch(data.train_x, data.train_y, tally)
    if bad is not None:
        raise CnncError(
            error(
                "E0603",
                f"the loss became {bad} in epoch {epoch}",
                None,
                helps=("lower --lr, or add --warmup",),
            )
        )
    seconds = time.perf_counter() - tally.t0
    val_loss, val_acc = evaluate(
        trainer.model, data.val_x, data.val_y, options.batch_size, trainer.where
    )
    seen = tally.seen
    row = {
        "epoch": epoch,
        "train_loss": tally.loss_sum / max(seen, 1),
        "train_acc": tally.correct / max(seen, 1),
        "val_loss": val_loss,
        "val_acc": val_acc,
        "lr": trainer.schedule.lr(),
        "seconds": seconds,
        "images_per_s": seen / max(seconds, 1e-9),
    }
    log(
        f"epoch {epoch}/{options.epochs}  loss {row['train_loss']:.4f}  acc {100 * row['train_acc']:.1f} %  "
        f"val loss {val_loss:.4f}  val acc {100 * val_acc:.1f} %  {row['images_per_s']:.0f} img/s"
    )
    return row


def progress(epoch, epochs, k, batches, loss, acc, speed) -> None:
    """A progress bar on a terminal (stderr); nothing in logs and pipes."""
    if not sys.stderr.isatty():
        return
    done = int(30 * k / max(batches, 1))
    bar = "█" * done + "·" * (30 - done)
    end = "\n" if k == batches else ""
    print(
        f"\repoch {epoch}/{epochs} {bar} {k}/{batches}  loss {loss:.4f}  acc {100 * acc:.1f} %  "
        f"{speed:.0f} img/s",
        end=end,
        file=sys.stderr,
        flush=True,
    )


def save_checkpoint(path: Path, model, opt, schedule, options, rows) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": schedule.step_count,
        "epoch": rows[-1]["epoch"],
        "rows": rows,
        "options": asdict(options),
    }
    with safefs.replacing(
        path, "wb"
    ) as f:  # a run killed while saving keeps the previous checkpoint
        torch.save(state, f)


def restore(path: Path, model, opt, schedule, options) -> tuple[list[dict], int]:
    """Go on from a run's `checkpoint.pt`: read safely (`load_torch_file`), every field checked, so a
    checkpoint of another run, network or data set is a user error, never a crash."""
    from cnnc.compiler.lower.weights import budget_for, load_torch_file

    if safefs.kind(path) == "missing":  # anything else (a FIFO, a link) is refused by type below
        raise CnncError(
            error(
                "E0603",
                f"--resume: no checkpoint `{path}`",
                None,
                helps=("start without --resume, or point --out at the earlier run",),
            )
        )
    state = load_torch_file(path, budget_for(model), follow=False)  # an entry of the run folder
    rows, epoch, step = checked_resume(state, path)
    if state["options"]["batch_size"] != options.batch_size:
        raise CnncError(
            error(
                "E0603",
                "--resume with another --batch-size than the checkpoint's "
                f"({state['options']['batch_size']})",
                None,
            )
        )
    per_epoch = schedule.total // options.epochs
    if epoch > options.epochs or step != epoch * per_epoch:
        _foreign(
            path,
            f"it is after epoch {epoch}, step {step}, but this run has {options.epochs} epochs "
            f"of {per_epoch} steps (another data set?)",
        )
    _load_into(path, model, opt, state)
    schedule.step_count = step
    schedule.apply()
    return rows, epoch


def _foreign(path: Path, why: str):
    raise CnncError(
        error(
            "E0603",
            f"--resume: `{printable(str(path))}` is not a checkpoint of this run: {why}",
            None,
            helps=("start without --resume, or point --out at the run this one continues",),
        )
    )


def checked_resume(state, path: Path) -> tuple[list[dict], int, int]:
    """The rows, epoch and step of a checkpoint `save_checkpoint` wrote; anything else is `_foreign`."""
    fields = {
        "model": dict,
        "optimizer": dict,
        "step": int,
        "epoch": int,
        "rows": list,
        "options": dict,
    }
    if not isinstance(state, dict) or any(not _is(state.get(k), t) for k, t in fields.items()):
        _foreign(
            path,
            "it lacks the fields `cnnc train` writes (model, optimizer, step, epoch, rows, options)",
        )
    rows, epoch, step = state["rows"], state["epoch"], state["step"]

    def good_row(r):
        return (
            isinstance(r, dict)
            and set(r) == set(METRICS)
            and all(_is(v, (int, float)) and math.isfinite(v) for v in r.values())
        )

    if epoch < 1 or step < 0 or len(rows) != epoch or not all(good_row(r) for r in rows):
        _foreign(path, f"its history ({len(rows)} rows) does not match its epoch ({epoch})")
    if not _is(state["options"].get("batch_size"), int):
        _foreign(path, "it does not record the batch size")
    return [dict(r) for r in rows], epoch, step


def _is(value, kind: type) -> bool:
    """isinstance, except that a bool is no int here (True would pass for epoch 1)."""
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _load_into(path: Path, model, opt, state) -> None:
    """The weights and the optimiser's state, each checked against this run's before it is taken."""
    from cnnc.compiler.lower.weights import checked_tensors

    own = model.state_dict()
    weights = checked_tensors(state["model"], path)
    if set(weights) != set(own) or any(
        not isinstance(weights[k], torch.Tensor) or weights[k].shape != v.shape
        for k, v in own.items()
    ):
        _foreign(path, "its weights are not this network's (other names or shapes)")
    saved = state["optimizer"]
    mine = opt.state_dict()
    if not _same_groups(saved.get("param_groups"), mine["param_groups"]) or not isinstance(
        saved.get("state"), dict
    ):
        _foreign(path, f"its optimiser is not this run's ({type(opt).__name__} with its options)")
    params = [p for group in opt.param_groups for p in group["params"]]
    for index, entry in saved["state"].items():
        if (
            type(index) is not int
            or not 0 <= index < len(params)
            or not _fits(entry, params[index])
        ):
            _foreign(path, "its optimiser's state does not fit this network's parameters")
    model.load_state_dict(weights)
    opt.load_state_dict(saved)


def _same_groups(saved, mine) -> bool:
    """The same parameter groups: the same keys, the same parameter ids, values of the same types."""
    if not isinstance(saved, list) or len(saved) != len(mine):
        return False
    return all(
        isinstance(s, dict)
        and set(s) == set(m)
        and s["params"] == m["params"]
        and all(_same_type(s[k], m[k]) for k in m)
        for s, m in zip(saved, mine)
    )


def _same_type(a, b) -> bool:
    if isinstance(b, tuple):
        return isinstance(a, tuple) and len(a) == len(b) and all(map(_same_type, a, b))
    return type(a) is type(b)


def _fits(entry, param) -> bool:
    """A parameter's optimiser state: float tensors of its shape (or scalars, such as Adam's step)."""
    return isinstance(entry, dict) and all(
        v is None
        or (_is(v, (int, float)) and math.isfinite(v))
        or (
            type(v) is torch.Tensor
            and v.layout == torch.strided
            and v.device.type == "cpu"
            and v.is_floating_point()
            and (v.dim() == 0 or v.shape == param.shape)
        )
        for v in entry.values()
    )


def write_metrics(out: Path, rows: list[dict]) -> None:
    with safefs.replacing(out / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRICS)
        writer.writeheader()
        writer.writerows(rows)
    plot_curves(out / "curves.png", rows)


def plot_curves(path: Path, rows: list[dict]) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    left.plot(epochs, [r["val_loss"] for r in rows], "o-", label="validation")
    left.set(xlabel="epoch", ylabel="loss", title="loss")
    right.plot(epochs, [100 * r["train_acc"] for r in rows], "o-", label="train")
    right.plot(epochs, [100 * r["val_acc"] for r in rows], "o-", label="validation")
    right.set(xlabel="epoch", ylabel="accuracy (%)", title="top-1 accuracy")
    for ax in (left, right):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with safefs.replacing_path(path) as (tmp, _):
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
