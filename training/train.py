"""A training run (`cnnc train`): the search's trainer grown up, with checkpoints, resuming and records.

Input: a compiled module (logits `[N, K]`), a `Dataset` and `TrainOptions`; output files in `out`:
`checkpoint.pt` after each epoch (weights, optimiser and schedule state, history: `resume` goes on
from it), `metrics.csv` and `curves.png` (loss and accuracy per epoch), and `model.pt` (the final
weights, a plain state_dict) at the end. Contract:
- frozen parameters (`freeze`) keep `requires_grad=False`, are left out of the optimiser, and the
  BatchNorm layers whose parameters are all frozen stay in eval mode, so their running statistics
  stay those of the checkpoint (the usual fine-tuning practice): frozen tensors are bit-identical
  after training;
- the learning rate warms up linearly for `warmup` epochs, then follows a cosine to zero;
- on CUDA it trains under autocast (bf16 where supported, else fp16 with a GradScaler), channels_last;
- a loss that stops being finite stops the run with a user error naming the epoch (the checkpoint of
  the last good epoch stays).
"""

from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cnnc.dsl import safefs
from cnnc.dsl.diagnostics import CnncError, error, printable
from cnnc.training.data import Dataset, check_trainable
from cnnc.training.loop import optimizer_step, resolve_device

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


def frozen_norms(model: nn.Module) -> list[nn.Module]:
    """BatchNorm layers whose parameters are all frozen: they run in eval mode while training."""
    norms = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters())
            if params and not any(p.requires_grad for p in params):
                norms.append(m)
    return norms


class Schedule:
    """Linear warm-up for `warmup` epochs, then a cosine to zero, stepped once per batch."""

    def __init__(self, optimizer, options: TrainOptions, steps_per_epoch: int):
        self.opt, self.base = optimizer, options.lr
        self.warm = round(options.warmup * steps_per_epoch)
        self.total = options.epochs * steps_per_epoch
        self.step_count = 0
        self.apply()

    def lr(self) -> float:
        t = self.step_count
        if t < self.warm:
            return self.base * (t + 1) / self.warm
        progress = (t - self.warm) / max(1, self.total - self.warm)
        return self.base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def apply(self) -> None:
        for group in self.opt.param_groups:
            group["lr"] = self.lr()

    def step(self) -> None:
        self.step_count += 1
        self.apply()


def make_optimizer(model: nn.Module, options: TrainOptions) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise CnncError(
            error(
                "E0603",
                "every parameter is frozen: there is nothing to train",
                None,
                helps=("freeze fewer modules",),
            )
        )
    if options.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=options.lr, momentum=0.9, nesterov=True, weight_decay=options.weight_decay
        )
    return torch.optim.AdamW(params, lr=options.lr, weight_decay=options.weight_decay)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop (pad by 1/8 of the side, reflect) and horizontal flip of a batch [B, C, H, W]."""
    b, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")  # [B, C, H + 2p, W + 2p]
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    flip = torch.rand(b, generator=gen) < 0.5
    out = torch.stack(
        [padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)]
    )  # [B, C, H, W]
    return torch.where(flip.view(b, 1, 1, 1), out.flip(-1), out)


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
    device = resolve_device(options.device)
    model.to(device)
    on_gpu = device.type == "cuda"
    amp = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if on_gpu else None
    memory_format = torch.channels_last if on_gpu else torch.contiguous_format
    model.to(memory_format=memory_format)
    check_trainable(
        data,
        options.batch_size,
        f"fewer than --batch-size {options.batch_size}, so an epoch would make no training step",
        f"lower --batch-size to at most {len(data.train_x)}, or add images",
    )
    steps = len(data.train_x) // options.batch_size
    opt = make_optimizer(model, options)
    schedule = Schedule(opt, options, steps)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    rows, start = [], 0
    if resume:
        rows, start = restore(out / "checkpoint.pt", model, opt, schedule, options)
        log(f"resumed from {out / 'checkpoint.pt'} after epoch {start}")
    gen = torch.Generator().manual_seed(options.seed)
    for _ in range(start):  # the same shuffles as an uninterrupted run
        torch.randperm(len(data.train_x), generator=gen)
    for epoch in range(start + 1, options.epochs + 1):
        row = run_epoch(
            model,
            data,
            options,
            (opt, schedule, scaler, amp, memory_format, device),
            gen,
            epoch,
            log,
        )
        rows.append(row)
        save_checkpoint(out / "checkpoint.pt", model, opt, schedule, options, rows)
        write_metrics(out, rows)
    with safefs.replacing(out / "model.pt", "wb") as f:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, f)
    return rows


def run_epoch(model, data: Dataset, options: TrainOptions, tools, gen, epoch: int, log) -> dict:
    opt, schedule, scaler, amp, memory_format, device = tools
    norms = frozen_norms(model)
    model.train()
    for m in norms:
        m.eval()
    order = torch.randperm(len(data.train_x), generator=gen)
    t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
    batches = len(order) // options.batch_size
    for k in range(batches):
        idx = order[k * options.batch_size : (k + 1) * options.batch_size]  # [B]
        x = data.train_x[idx]  # [B, C, H, W]
        if options.augment:
            x = augment(x, gen)
        x, y = x.to(device).contiguous(memory_format=memory_format), data.train_y[idx].to(device)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = model(x)  # [B, K]
        loss = F.cross_entropy(logits.float(), y, label_smoothing=options.label_smoothing)
        if not torch.isfinite(loss):
            raise CnncError(
                error(
                    "E0603",
                    f"the loss became {loss.item()} in epoch {epoch}",
                    None,
                    helps=("lower --lr, or add --warmup",),
                )
            )
        optimizer_step(loss, opt, scaler)
        schedule.step()
        seen += len(idx)
        loss_sum += loss.item() * len(idx)
        correct += (logits.argmax(1) == y).sum().item()
        progress(
            epoch,
            options.epochs,
            k + 1,
            batches,
            loss_sum / seen,
            correct / seen,
            seen / (time.perf_counter() - t0),
        )
    seconds = time.perf_counter() - t0
    val_loss, val_acc = evaluate(
        model, data.val_x, data.val_y, options.batch_size, device, amp, memory_format
    )
    row = {
        "epoch": epoch,
        "train_loss": loss_sum / max(seen, 1),
        "train_acc": correct / max(seen, 1),
        "val_loss": val_loss,
        "val_acc": val_acc,
        "lr": schedule.lr(),
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


@torch.no_grad()
def evaluate(model, x, y, batch_size, device, amp=None, memory_format=torch.contiguous_format):
    """(mean loss, top-1 accuracy) of `model` in eval mode on `x` [M, C, H, W], `y` [M]."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb = (
            x[start : start + batch_size].to(device).contiguous(memory_format=memory_format)
        )  # [B, C, H, W]
        yb = y[start : start + batch_size].to(device)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = model(xb).float()  # [B, K]
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    return loss_sum / max(len(x), 1), correct / max(len(x), 1)


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
