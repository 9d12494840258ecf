"""Zero-cost proxies: score an untrained candidate from one minibatch, without training it.

Input: a `torch.nn.Module` taking `[N, C, H, W]` and returning logits `[N, K]`. Output: floats,
larger meaning "more promising" for each proxy. Contract: the caller's model is left exactly as it
was (weights, buffers, `.grad`, train/eval mode) because every proxy works on a deep copy, and the
caller's RNG state is untouched (dropout runs under `torch.random.fork_rng` with a fixed seed).

- `synflow` (Tanaka et al. 2020, "Pruning neural networks without any data by iteratively conserving
  synaptic flow"): take |θ| for every parameter and buffer, feed an all-ones input, R = sum of the
  outputs, score = Σ |θ ⊙ ∂R/∂θ| over the weights of conv and linear layers (tensors with ≥ 2 dims),
  as in the reference code and zero-cost-NAS (Abdelfattah et al. 2021). Eval mode; float64 if the
  model runs in it, since R overflows float32 in deep nets.
- `naswot` (Mellor et al. 2021, "Neural architecture search without training"): each sample's binary
  code says which ReLU units are active; K[i, j] counts the units where samples i and j agree,
  summed over every ReLU (modules and functional calls alike); score = log |det K|. Train mode, as
  in the reference code; -inf when two samples share one code.
- `grad_norm`: the L2 norm of the gradient of the cross-entropy loss over all parameters. Train
  mode.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnc.training.data import Dataset
from cnnc.training.loop import cuda_indices, is_out_of_memory, model_device

# functions that compute a ReLU; nn.ReLU calls F.relu and nn.ReLU6 calls F.hardtanh(x, 0, 6)
_RELUS = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu6}
_HARDTANHS = {F.hardtanh, F.hardtanh_}  # ReLU-like only when min_val == 0 (ReLU6)


def score_all(
    model: nn.Module, data: Dataset, batch_size: int = 64, seed: int = 0
) -> dict[str, float]:
    """Every proxy on one seeded training minibatch, beside the free baseline `params`."""
    x, y = _minibatch(data, batch_size, seed, model_device(model))  # [B, C, H, W], [B]
    return {
        "synflow": synflow(model, data.input_shape),
        "naswot": naswot(model, x, seed=seed),
        "grad_norm": grad_norm(model, x, y, seed=seed),
        "params": float(sum(p.numel() for p in model.parameters())),
    }


def synflow(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Σ |θ ⊙ ∂R/∂θ| over conv/linear weights of the abs-linearised net on an all-ones input.

    Runs in float64, falling back to float32 for models with an op that has no float64 kernel.
    """
    try:
        return _synflow(model, input_shape, torch.float64)
    except RuntimeError as exc:
        if is_out_of_memory(exc):
            raise
        return _synflow(model, input_shape, torch.float32)


def _synflow(model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype) -> float:
    net = copy.deepcopy(model).to(dtype).eval()
    with torch.no_grad():
        for tensor in net.state_dict().values():  # the sign trick, on a copy: nothing to restore
            if tensor.is_floating_point():
                tensor.abs_()
    ones = torch.ones((1, *input_shape), dtype=dtype, device=model_device(net))  # [1, C, H, W]
    net(ones).sum().backward()
    weights = [p for p in net.parameters() if p.ndim >= 2 and p.grad is not None]
    return float(sum((p.detach() * p.grad).abs().sum() for p in weights))


def naswot(model: nn.Module, x: torch.Tensor, *, seed: int = 0) -> float:
    """log |det K| for the ReLU-agreement kernel K of the batch `x` [B, C, H, W]."""
    net = copy.deepcopy(model).train()
    kernel = torch.zeros((len(x), len(x)), dtype=torch.float64, device=x.device)  # [B, B]

    def add_codes(active: torch.Tensor) -> None:
        nonlocal kernel
        if active.ndim >= 1 and active.shape[0] == len(x):  # a ReLU over the batch, not a weight
            kernel = kernel + agreement(active.reshape(len(x), -1))  # [B, B]

    with torch.random.fork_rng(devices=cuda_indices(x.device)), torch.no_grad():
        torch.manual_seed(seed)
        with _ReluSpy(add_codes):
            net(x)
    return float(torch.linalg.slogdet(kernel).logabsdet)


def agreement(active: torch.Tensor) -> torch.Tensor:
    """K = c·cᵀ + (1−c)·(1−c)ᵀ for binary codes c [B, U]: how many units each pair agrees on."""
    c = active.to(torch.float64)  # [B, U]
    on = c @ c.T  # [B, B] units active in both
    counts = c.sum(dim=1)  # [B] active units per sample
    # (1−c)(1−c)ᵀ = U − counts_i − counts_j + c·cᵀ, without building 1−c
    return 2 * on - counts[:, None] - counts[None, :] + c.shape[1]  # [B, B]


class _ReluSpy(TorchFunctionMode):
    """Calls `sink(output > 0)` [B, ...] for every ReLU run while active (modules or functional).

    nn.ReLU reaches us as F.relu, whose inner torch.relu runs with the mode off, so nothing is
    counted twice. In-place ReLUs work too: the code is read from the output, and output > 0 iff
    input > 0.
    """

    def __init__(self, sink: Callable[[torch.Tensor], None]):
        super().__init__()
        self.sink = sink

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in _RELUS or (func in _HARDTANHS and _min_val(args, kwargs) == 0.0):
            self.sink(out > 0)
        return out


def _min_val(args, kwargs) -> float:
    return float(args[1]) if len(args) > 1 else float(kwargs.get("min_val", -1.0))


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, seed: int = 0) -> float:
    """‖∂CE(model(x), y)/∂θ‖₂ over every parameter, for `x` [B, C, H, W] and `y` [B]."""
    net = copy.deepcopy(model).train()
    params = [p for p in net.parameters() if p.requires_grad]
    with torch.random.fork_rng(devices=cuda_indices(x.device)):
        torch.manual_seed(seed)
        loss = F.cross_entropy(net(x), y)  # []
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    squares = [g.double().pow(2).sum() for g in grads if g is not None]
    return float(torch.stack(squares).sum().sqrt()) if squares else 0.0


# ---------------------------------------------------------------------------------------------
# Helpers


def _minibatch(
    data: Dataset, batch_size: int, seed: int, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` training samples drawn without replacement by `seed`."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.train_x), generator=gen)[:batch_size]  # [B]
    return data.train_x[idx].to(device), data.train_y[idx].to(device)  # [B, C, H, W], [B]
