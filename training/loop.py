"""The trainer: one training loop, one optimiser factory, one schedule and one evaluation, shared by
`cnnc train` (`training/train.py`: checkpoints, resuming, records) and the search's evaluator
(`search/evaluators/train.py`: a score per member, failures as results).

Input: a model taking `[N, C, H, W]` and returning logits `[N, K]`, its training tensors, a `Recipe`
(the rules of the run) and a `Placement` (device, precision, memory format). Contract:
- the optimiser holds only the parameters that require gradients (none is a user error, E0603):
  SGD with Nesterov momentum 0.9, AdamW, or RMSprop with momentum 0.9, each with the recipe's
  weight decay;
- the learning rate warms up linearly for `warmup` epochs, then follows a cosine to zero; it is set
  before every step from the step's number alone, so a resumed run sets the very rates an
  uninterrupted one does;
- each epoch visits the images in an order drawn from the run's own generator (seeded by `seed`,
  never the global RNG), which also draws the augmentation's crops and flips;
- `keep_last`: every batch of two or more is trained, a shorter trailing one included (else only
  full batches are; a batch of one never is: BatchNorm needs two);
- `freeze_norms`: BatchNorm layers whose parameters are all frozen run in eval mode while training,
  so their running statistics stay those of the weights loaded (fine-tuning practice);
- the loss is cross-entropy (with the recipe's label smoothing) on float32 logits; on CUDA the
  forward pass runs under autocast (bf16 where supported, else fp16 through a GradScaler) with
  channels_last;
- the loss summed over the epoch is checked every `check_every` steps, before that step's update:
  an epoch whose loss stops being finite stops there and says the value (nan or inf);
- `evaluate` gives (mean loss, top-1 accuracy) in eval mode, with one synchronisation at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnc.dsl.diagnostics import CnncError, error

DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("sgd", "adamw", "rmsprop")
MOMENTUM = 0.9


@dataclass(frozen=True, slots=True)
class Recipe:
    """The rules of a run (module docstring); each caller states the ones it trains by."""

    epochs: int
    batch_size: int
    lr: float  # the peak learning rate
    optimizer: str  # one of OPTIMIZERS
    weight_decay: float
    warmup: float = 0.0  # epochs of linear warm-up
    label_smoothing: float = 0.0
    augment: bool = False  # random crops and horizontal flips of the training images
    seed: int = 0  # the shuffles and the augmentation
    keep_last: bool = False
    freeze_norms: bool = False
    check_every: int = 1  # steps between checks of the loss; each check waits for the GPU


@dataclass(frozen=True, slots=True)
class Placement:
    """Where and how a run computes: its device, autocast's dtype (None: full precision) and the
    memory format of its images and weights."""

    device: torch.device
    amp: torch.dtype | None
    memory_format: torch.memory_format


def place(device: str) -> Placement:
    """`auto` → cuda when available, else cpu; on CUDA, bf16 (else fp16) autocast, channels_last."""
    dev = resolve_device(device)
    if dev.type != "cuda":
        return Placement(dev, None, torch.contiguous_format)
    amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Placement(dev, amp, torch.channels_last)


def _fail(message: str, help_: str):
    raise CnncError(error("E0603", message, None, helps=(help_,)))


def resolve_device(device: str) -> torch.device:
    """`auto` → cuda when available, else cpu; `cuda` without a GPU is an error."""
    if device not in DEVICES:
        _fail(f"unknown device `{device}`", f"expected one of {', '.join(DEVICES)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        _fail(
            "device `cuda` was asked for, but torch sees no CUDA GPU", "pass device='auto' or 'cpu'"
        )
    return torch.device(device)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, the CPU allocator's failure, or Python's MemoryError."""
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text


def model_device(model: nn.Module) -> torch.device:
    """Where the first parameter or buffer lives; cpu for a model with neither."""
    for tensor in [*model.parameters(), *model.buffers()]:
        return tensor.device
    return torch.device("cpu")


def cuda_indices(device: torch.device) -> list[int]:
    """The CUDA devices whose RNG `fork_rng` must save for work on `device`."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


# ---------------------------------------------------------------------------------------------
# The optimiser and its schedule


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The optimiser of the parameters that require gradients (module docstring), by the recipe's
    `optimizer`, `lr` and `weight_decay` (`cnnc train`'s options have the same fields)."""
    name, lr, weight_decay = recipe.optimizer, recipe.lr, recipe.weight_decay
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
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=MOMENTUM, nesterov=True, weight_decay=weight_decay
        )
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.RMSprop(params, lr=lr, momentum=MOMENTUM, weight_decay=weight_decay)


class Schedule:
    """Linear warm-up for the recipe's `warmup` epochs, then a cosine to zero at the end of its
    `epochs`, from its `lr`; stepped once per batch."""

    def __init__(self, optimizer: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int):
        self.opt, self.base = optimizer, recipe.lr
        self.warm = round(recipe.warmup * steps_per_epoch)
        self.total = recipe.epochs * steps_per_epoch
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


# ---------------------------------------------------------------------------------------------
# The loop


def batch_bounds(n: int, batch_size: int, keep_last: bool) -> Iterator[tuple[int, int]]:
    """[start, stop) of each batch of an epoch of `n` images: the full batches, or with `keep_last`
    every batch of two or more (BatchNorm needs two; `n == 1` keeps its one)."""
    for start in range(0, n, batch_size):
        size = min(n, start + batch_size) - start
        if (size >= 2 or n == 1) if keep_last else size == batch_size:
            yield start, start + size


# (step, images' indices [B], loss [], logits [B, K], labels [B]), after the step's update
OnStep = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]


class Trainer:
    """A run over one model: its optimiser, schedule, GradScaler and shuffling generator. The model
    is moved to the placement's device and memory format when the trainer is made."""

    def __init__(self, model: nn.Module, recipe: Recipe, where: Placement, images: int):
        self.model, self.recipe, self.where = model, recipe, where
        model.to(device=where.device, memory_format=where.memory_format)
        self.steps = max(
            1, sum(1 for _ in batch_bounds(images, recipe.batch_size, recipe.keep_last))
        )
        self.opt = make_optimizer(model, recipe)
        self.schedule = Schedule(self.opt, recipe, self.steps)
        self.scaler = torch.amp.GradScaler("cuda") if where.amp == torch.float16 else None
        self.gen = torch.Generator().manual_seed(recipe.seed)  # independent of the global RNG
        self.images = images

    def skip(self, epochs: int) -> None:
        """Draw the shuffles of `epochs` epochs already trained (a resumed run)."""
        for _ in range(epochs):
            torch.randperm(self.images, generator=self.gen)

    def epoch(self, xs: torch.Tensor, ys: torch.Tensor, on_step: OnStep | None = None):
        """One pass over `xs` [N, C, H, W], `ys` [N]; the loss's value (nan or inf) if it stopped
        being finite, else None."""
        recipe, where = self.recipe, self.where
        self.model.train()
        if recipe.freeze_norms:
            for m in frozen_norms(self.model):
                m.eval()
        order = torch.randperm(len(xs), generator=self.gen).to(xs.device)  # [N]
        total = torch.zeros((), device=where.device)  # sum of batch losses; nan/inf once any is
        bounds = batch_bounds(len(xs), recipe.batch_size, recipe.keep_last)
        for step, (start, stop) in enumerate(bounds, 1):
            idx = order[start:stop]  # [B]
            x, y = self._batch(xs[idx], ys[idx])  # [B, C, H, W], [B]
            loss, logits = self._loss(x, y)  # [], [B, K]
            total += loss.detach().float()
            if step % recipe.check_every == 0 and not torch.isfinite(total):
                return total.item()
            optimizer_step(loss, self.opt, self.scaler)
            self.schedule.step()
            if on_step is not None:
                on_step(step, idx, loss, logits, y)
        return None if torch.isfinite(total) else total.item()

    def _batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.recipe.augment:
            x = augment(x, self.gen)  # [B, C, H, W]
        where = self.where
        return x.to(where.device).contiguous(memory_format=where.memory_format), y.to(where.device)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        where = self.where
        with torch.autocast(where.device.type, dtype=where.amp, enabled=where.amp is not None):
            logits = self.model(x)  # [B, K]
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.recipe.label_smoothing)
        return loss, logits


def frozen_norms(model: nn.Module) -> list[nn.Module]:
    """BatchNorm layers whose parameters are all frozen: they run in eval mode while training."""
    norms = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters())
            if params and not any(p.requires_grad for p in params):
                norms.append(m)
    return norms


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


def optimizer_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler) -> None:
    """Backward and one optimiser step; through the GradScaler under fp16 autocast."""
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        opt.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()


# ---------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def evaluate(model: nn.Module, x, y, batch_size: int, where: Placement) -> tuple[float, float]:
    """(mean loss, top-1 accuracy) of `model`, put in eval mode, on `x` [M, C, H, W], `y` [M]."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=where.device)
    correct = torch.zeros((), dtype=torch.int64, device=where.device)
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(where.device)  # [B, C, H, W]
        xb = xb.contiguous(memory_format=where.memory_format)
        yb = y[start : start + batch_size].to(where.device)  # [B]
        with torch.autocast(where.device.type, dtype=where.amp, enabled=where.amp is not None):
            logits = model(xb).float()  # [B, K]
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").double()
        correct += (logits.argmax(1) == yb).sum()
    return loss_sum.item() / max(len(x), 1), correct.item() / max(len(x), 1)
