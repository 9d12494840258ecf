"""The trainer's devices and steps, shared by `cnnc train` (`training/train.py`) and the search's
evaluator (`search/evaluators/train.py`): which device a run uses, where a model lives, one
optimiser step (through the GradScaler under fp16), and what counts as running out of memory.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnc.dsl.diagnostics import CnncError, error

DEVICES = ("auto", "cpu", "cuda")


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
