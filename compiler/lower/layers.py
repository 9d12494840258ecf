"""The torch modules of ops that torch.nn lacks (the registry's `torch_ctor`s that name this file).

Each class is self-contained (it uses only `torch` and `nn`): `source.py` copies the ones a network
uses into its standalone file. Parameters and buffers are shaped and named as the reference
implementations' (torchvision's ConvNeXt, EfficientNet and FrozenBatchNorm2d), so their weights load
unchanged. `Resize` and `Crop` take a second tensor and read its size when they run.

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


class Zero(nn.Module):
    """Zeros of a fixed shape per sample; the input gives only the batch size, dtype and device
    (a cell's cut edge: what fed it was dropped, so it may read an earlier tensor)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros((x.shape[0], *self.shape))  # [N, *shape]

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


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


class Resize(nn.Module):
    """Resizes x to the spatial size of a second tensor, read when the network runs:
    `F.interpolate(x, size=t.shape[-2:], …)`, as torchvision's FCN, DeepLab and FPN do."""

    def __init__(self, mode: str = "nearest", align_corners: bool | None = None):
        super().__init__()
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        size = like.shape[-2:]  # [h, w] of `like`
        return nn.functional.interpolate(
            x, size=size, mode=self.mode, align_corners=self.align_corners
        )

    def extra_repr(self) -> str:
        corners = "" if self.align_corners is None else f", align_corners={self.align_corners}"
        return f"mode={self.mode!r}{corners}"


class Crop(nn.Module):
    """The centre of x with the spatial size of a second tensor, from row (H − h) // 2 and
    column (W − w) // 2 (U-Net's cropped skip connections)."""

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        h, w = like.shape[-2:]
        top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
        return x[..., top : top + h, left : left + w]  # [N, C, h, w]


class Reshape(nn.Module):
    """Each sample reshaped to `shape` (one dimension may be -1), the batch kept."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)  # [N, *shape]

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine, all buffers (torchvision.ops.FrozenBatchNorm2d:
    the same state_dict keys, no `num_batches_tracked`, nothing trained)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def reset_parameters(self) -> None:
        """Identity statistics: weight 1, bias 0, mean 0, variance 1."""
        with torch.no_grad():
            for name, value in (
                ("weight", 1.0),
                ("bias", 0.0),
                ("running_mean", 0.0),
                ("running_var", 1.0),
            ):
                getattr(self, name).fill_(value)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        state_dict.pop(prefix + "num_batches_tracked", None)  # a BatchNorm2d's checkpoint loads too
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.reshape(1, -1, 1, 1)  # [1, C, 1, 1]
        b = self.bias.reshape(1, -1, 1, 1)
        rv = self.running_var.reshape(1, -1, 1, 1)
        rm = self.running_mean.reshape(1, -1, 1, 1)
        scale = w * (rv + self.eps).rsqrt()
        bias = b - rm * scale
        return x * scale + bias

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
