"""The torch modules of ops that torch.nn lacks (see `compiler/ops/extra.py`).

Each class is self-contained (it uses only `torch` and `nn`): `source.py` copies the ones a network
uses into its standalone file. Parameters are shaped and named as the reference implementations'
(torchvision's ConvNeXt and EfficientNet), so their weights load unchanged.

`LayerScale` has no class: its one parameter sits on the enclosing module under the op's own name
(`features.1.0.layer_scale`, as torchvision keeps it), and forward multiplies by it.
"""

from __future__ import annotations

import torch
from torch import nn


class StochasticDepth(nn.Module):
    """Drops the whole input of a sample with probability `p` while training, scaling survivors by
    1 / (1 − p); the identity at inference (torchvision.ops.StochasticDepth, mode "row")."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        keep = torch.empty(
            [x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device
        )  # [N, 1, 1, 1]
        keep = keep.bernoulli_(survival)
        if survival > 0.0:
            keep = keep.div_(survival)
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}, mode=row"


class Chunk(nn.Module):
    """Channel group `index` of `chunks` equal groups: `x.chunk(chunks, dim=1)[index]`."""

    def __init__(self, chunks: int, index: int):
        super().__init__()
        self.chunks = chunks
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.chunk(self.chunks, dim=1)[self.index]  # [N, C / chunks, H, W]

    def extra_repr(self) -> str:
        return f"chunks={self.chunks}, index={self.index}"


class Scale(nn.Module):
    """Multiplies by a constant (Inception-ResNet's residual scaling)."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.value

    def extra_repr(self) -> str:
        return f"value={self.value}"


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of each position of [N, C, H, W] (torchvision's ConvNeXt)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # [N, H, W, C]
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # [N, C, H, W]


class PointwiseLinear(nn.Linear):
    """A Linear at every position: [N, C_in, H, W] → [N, C_out, H, W], weight [C_out, C_in]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.linear(x.permute(0, 2, 3, 1), self.weight, self.bias)  # [N, H, W, C_out]
        return x.permute(0, 3, 1, 2)  # [N, C_out, H, W]
