"""`bottleneck`, compiled by cnnc from `zoo/inception_module.cnn`. Standalone: needs only torch.

    model = Bottleneck()  # weights as `cnnc.load` makes them; Bottleneck(seed=0) is reproducible
    y = model(x)  # x: [N, 256, 28, 28] → y: [N, 480, 28, 28]

346,720 parameters, 271.35 M multiply-accumulates per sample at [256, 28, 28].
The shape comments are for that input size; the batch size N is free.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Bottleneck(nn.Module):
    """`bottleneck` as cnnc elaborated it; module names are its labels."""

    def __init__(self, seed: int | None = 0):
        super().__init__()
        # inception: Inception(128, 64, 192, 64, 96, 64)
        self.inception = nn.Module()
        self.inception.branch1 = nn.Conv2d(256, 128, kernel_size=1)
        self.inception.relu = nn.ReLU(inplace=True)
        self.inception.branch2 = nn.Sequential(
            nn.Conv2d(256, 64, kernel_size=1),  # 0: [N, 64, 28, 28]
            nn.ReLU(inplace=True),  # 1: [N, 64, 28, 28]
            nn.Conv2d(64, 192, kernel_size=3, padding=1),  # 2: [N, 192, 28, 28]
        )
        self.inception.relu_1 = nn.ReLU(inplace=True)
        self.inception.branch3 = nn.Sequential(
            nn.Conv2d(256, 64, kernel_size=1),  # 0: [N, 64, 28, 28]
            nn.ReLU(inplace=True),  # 1: [N, 64, 28, 28]
            nn.Conv2d(64, 96, kernel_size=5, padding=2),  # 2: [N, 96, 28, 28]
        )
        self.inception.relu_2 = nn.ReLU(inplace=True)
        self.inception.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),  # 0: [N, 256, 28, 28]
            nn.Conv2d(256, 64, kernel_size=1),  # 1: [N, 64, 28, 28]
        )
        self.inception.relu_3 = nn.ReLU(inplace=True)
        init_parameters(self, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, 256, 28, 28]
        # inception: Inception(128, 64, 192, 64, 96, 64)
        y = self.inception.branch1(x)  # [N, 128, 28, 28]
        y = self.inception.relu(y)  # [N, 128, 28, 28]
        z = self.inception.branch2(x)  # [N, 192, 28, 28]
        z = self.inception.relu_1(z)  # [N, 192, 28, 28]
        w = self.inception.branch3(x)  # [N, 96, 28, 28]
        w = self.inception.relu_2(w)  # [N, 96, 28, 28]
        x = self.inception.branch4(x)  # [N, 64, 28, 28]
        x = self.inception.relu_3(x)  # [N, 64, 28, 28]
        x = torch.cat([y, z, w, x], dim=1)  # [N, 480, 28, 28]
        return x


def init_parameters(model: nn.Module, seed: int | None = None) -> None:
    """Initialise every parameter and buffer of `model`, in `model.modules()` order.

    The conventions of torchvision's ResNet: Conv2d (and ConvTranspose2d) weights Kaiming-normal
    (fan_out, ReLU gain), biases 0; BatchNorm, LayerNorm, GroupNorm and InstanceNorm weight 1, bias
    0, running mean 0 and variance 1; PReLU slopes their `init`; Linear as torch's default,
    U(±1/√in_features) for weight and bias; a module with buffers only (FrozenBatchNorm2d) by its
    own `reset_parameters`. `seed` makes it reproducible (same seed, same state_dict); None draws
    from torch's global generator, as torch's constructors do.
    """
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(
                module,
                (
                    nn.BatchNorm1d,
                    nn.BatchNorm2d,
                    nn.LayerNorm,
                    nn.GroupNorm,
                    nn.InstanceNorm2d,
                    nn.PReLU,
                ),
            ):
                module.reset_parameters()
            elif isinstance(module, nn.Linear):
                bound = 1 / math.sqrt(module.in_features)
                nn.init.uniform_(module.weight, -bound, bound, generator=generator)
                if module.bias is not None:
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif module is model or any(True for _ in module.children()):
                continue  # a container or the root: its LayerScale parameters keep their value
            elif any(True for _ in module.parameters(recurse=False)):
                raise TypeError(f"no initialisation rule for {type(module).__name__}")
            elif hasattr(module, "reset_parameters"):  # buffers only: FrozenBatchNorm2d
                module.reset_parameters()
