"""`resnet18`, compiled by cnnc from `zoo/resnet18.cnn`. Standalone: needs only torch.

    model = Resnet18()  # weights as `cnnc.load` makes them; Resnet18(seed=0) is reproducible
    y = model(x)  # x: [N, 3, 224, 224] → y: [N, 1000]

11,689,512 parameters, 1.81 G multiply-accumulates per sample at [3, 224, 224].
The shape comments are for that input size; the batch size N is free.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Resnet18(nn.Module):
    """`resnet18` as cnnc elaborated it; module names are its labels."""

    def __init__(self, seed: int | None = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        # layer1: stage(Basic, 64, 2, 1, 1, 64)
        self.layer1 = nn.Sequential()
        # layer1.0: Basic(64)
        self.layer1.append(nn.Module())
        self.layer1[0].conv1 = nn.Conv2d(64, 64, kernel_size=3, padding=1, bias=False)
        self.layer1[0].bn1 = nn.BatchNorm2d(64)
        self.layer1[0].relu = nn.ReLU(inplace=True)
        self.layer1[0].conv2 = nn.Conv2d(64, 64, kernel_size=3, padding=1, bias=False)
        self.layer1[0].bn2 = nn.BatchNorm2d(64)
        self.layer1[0].relu_1 = nn.ReLU(inplace=True)
        # layer1.1: Basic(64)
        self.layer1.append(nn.Module())
        self.layer1[1].conv1 = nn.Conv2d(64, 64, kernel_size=3, padding=1, bias=False)
        self.layer1[1].bn1 = nn.BatchNorm2d(64)
        self.layer1[1].relu = nn.ReLU(inplace=True)
        self.layer1[1].conv2 = nn.Conv2d(64, 64, kernel_size=3, padding=1, bias=False)
        self.layer1[1].bn2 = nn.BatchNorm2d(64)
        self.layer1[1].relu_1 = nn.ReLU(inplace=True)
        # layer2: stage(Basic, 128, 2, 2, 1, 64)
        self.layer2 = nn.Sequential()
        # layer2.0: Basic(128, stride = 2)
        self.layer2.append(nn.Module())
        self.layer2[0].conv1 = nn.Conv2d(64, 128, kernel_size=3, stride=2, padding=1, bias=False)
        self.layer2[0].bn1 = nn.BatchNorm2d(128)
        self.layer2[0].relu = nn.ReLU(inplace=True)
        self.layer2[0].conv2 = nn.Conv2d(128, 128, kernel_size=3, padding=1, bias=False)
        self.layer2[0].bn2 = nn.BatchNorm2d(128)
        self.layer2[0].downsample = nn.Sequential(
            nn.Conv2d(64, 128, kernel_size=1, stride=2, bias=False),  # 0: [N, 128, 28, 28]
            nn.BatchNorm2d(128),  # 1: [N, 128, 28, 28]
        )
        self.layer2[0].relu_1 = nn.ReLU(inplace=True)
        # layer2.1: Basic(128)
        self.layer2.append(nn.Module())
        self.layer2[1].conv1 = nn.Conv2d(128, 128, kernel_size=3, padding=1, bias=False)
        self.layer2[1].bn1 = nn.BatchNorm2d(128)
        self.layer2[1].relu = nn.ReLU(inplace=True)
        self.layer2[1].conv2 = nn.Conv2d(128, 128, kernel_size=3, padding=1, bias=False)
        self.layer2[1].bn2 = nn.BatchNorm2d(128)
        self.layer2[1].relu_1 = nn.ReLU(inplace=True)
        # layer3: stage(Basic, 256, 2, 2, 1, 64)
        self.layer3 = nn.Sequential()
        # layer3.0: Basic(256, stride = 2)
        self.layer3.append(nn.Module())
        self.layer3[0].conv1 = nn.Conv2d(128, 256, kernel_size=3, stride=2, padding=1, bias=False)
        self.layer3[0].bn1 = nn.BatchNorm2d(256)
        self.layer3[0].relu = nn.ReLU(inplace=True)
        self.layer3[0].conv2 = nn.Conv2d(256, 256, kernel_size=3, padding=1, bias=False)
        self.layer3[0].bn2 = nn.BatchNorm2d(256)
        self.layer3[0].downsample = nn.Sequential(
            nn.Conv2d(128, 256, kernel_size=1, stride=2, bias=False),  # 0: [N, 256, 14, 14]
            nn.BatchNorm2d(256),  # 1: [N, 256, 14, 14]
        )
        self.layer3[0].relu_1 = nn.ReLU(inplace=True)
        # layer3.1: Basic(256)
        self.layer3.append(nn.Module())
        self.layer3[1].conv1 = nn.Conv2d(256, 256, kernel_size=3, padding=1, bias=False)
        self.layer3[1].bn1 = nn.BatchNorm2d(256)
        self.layer3[1].relu = nn.ReLU(inplace=True)
        self.layer3[1].conv2 = nn.Conv2d(256, 256, kernel_size=3, padding=1, bias=False)
        self.layer3[1].bn2 = nn.BatchNorm2d(256)
        self.layer3[1].relu_1 = nn.ReLU(inplace=True)
        # layer4: stage(Basic, 512, 2, 2, 1, 64)
        self.layer4 = nn.Sequential()
        # layer4.0: Basic(512, stride = 2)
        self.layer4.append(nn.Module())
        self.layer4[0].conv1 = nn.Conv2d(256, 512, kernel_size=3, stride=2, padding=1, bias=False)
        self.layer4[0].bn1 = nn.BatchNorm2d(512)
        self.layer4[0].relu = nn.ReLU(inplace=True)
        self.layer4[0].conv2 = nn.Conv2d(512, 512, kernel_size=3, padding=1, bias=False)
        self.layer4[0].bn2 = nn.BatchNorm2d(512)
        self.layer4[0].downsample = nn.Sequential(
            nn.Conv2d(256, 512, kernel_size=1, stride=2, bias=False),  # 0: [N, 512, 7, 7]
            nn.BatchNorm2d(512),  # 1: [N, 512, 7, 7]
        )
        self.layer4[0].relu_1 = nn.ReLU(inplace=True)
        # layer4.1: Basic(512)
        self.layer4.append(nn.Module())
        self.layer4[1].conv1 = nn.Conv2d(512, 512, kernel_size=3, padding=1, bias=False)
        self.layer4[1].bn1 = nn.BatchNorm2d(512)
        self.layer4[1].relu = nn.ReLU(inplace=True)
        self.layer4[1].conv2 = nn.Conv2d(512, 512, kernel_size=3, padding=1, bias=False)
        self.layer4[1].bn2 = nn.BatchNorm2d(512)
        self.layer4[1].relu_1 = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(512, 1000)
        init_parameters(self, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, 3, 224, 224]
        x = self.conv1(x)  # [N, 64, 112, 112]
        x = self.bn1(x)  # [N, 64, 112, 112]
        x = self.relu(x)  # [N, 64, 112, 112]
        x = self.maxpool(x)  # [N, 64, 56, 56]

        # layer1: stage(Basic, 64, 2, 1, 1, 64)
        # layer1.0: Basic(64)
        y = self.layer1[0].conv1(x)  # [N, 64, 56, 56]
        y = self.layer1[0].bn1(y)  # [N, 64, 56, 56]
        y = self.layer1[0].relu(y)  # [N, 64, 56, 56]
        y = self.layer1[0].conv2(y)  # [N, 64, 56, 56]
        y = self.layer1[0].bn2(y)  # [N, 64, 56, 56]
        x = y.add_(x)  # [N, 64, 56, 56]
        x = self.layer1[0].relu_1(x)  # [N, 64, 56, 56]

        # layer1.1: Basic(64)
        y = self.layer1[1].conv1(x)  # [N, 64, 56, 56]
        y = self.layer1[1].bn1(y)  # [N, 64, 56, 56]
        y = self.layer1[1].relu(y)  # [N, 64, 56, 56]
        y = self.layer1[1].conv2(y)  # [N, 64, 56, 56]
        y = self.layer1[1].bn2(y)  # [N, 64, 56, 56]
        x = y.add_(x)  # [N, 64, 56, 56]
        x = self.layer1[1].relu_1(x)  # [N, 64, 56, 56]

        # layer2: stage(Basic, 128, 2, 2, 1, 64)
        # layer2.0: Basic(128, stride = 2)
        y = self.layer2[0].conv1(x)  # [N, 128, 28, 28]
        y = self.layer2[0].bn1(y)  # [N, 128, 28, 28]
        y = self.layer2[0].relu(y)  # [N, 128, 28, 28]
        y = self.layer2[0].conv2(y)  # [N, 128, 28, 28]
        y = self.layer2[0].bn2(y)  # [N, 128, 28, 28]
        x = self.layer2[0].downsample(x)  # [N, 128, 28, 28]
        x = y.add_(x)  # [N, 128, 28, 28]
        x = self.layer2[0].relu_1(x)  # [N, 128, 28, 28]

        # layer2.1: Basic(128)
        y = self.layer2[1].conv1(x)  # [N, 128, 28, 28]
        y = self.layer2[1].bn1(y)  # [N, 128, 28, 28]
        y = self.layer2[1].relu(y)  # [N, 128, 28, 28]
        y = self.layer2[1].conv2(y)  # [N, 128, 28, 28]
        y = self.layer2[1].bn2(y)  # [N, 128, 28, 28]
        x = y.add_(x)  # [N, 128, 28, 28]
        x = self.layer2[1].relu_1(x)  # [N, 128, 28, 28]

        # layer3: stage(Basic, 256, 2, 2, 1, 64)
        # layer3.0: Basic(256, stride = 2)
        y = self.layer3[0].conv1(x)  # [N, 256, 14, 14]
        y = self.layer3[0].bn1(y)  # [N, 256, 14, 14]
        y = self.layer3[0].relu(y)  # [N, 256, 14, 14]
        y = self.layer3[0].conv2(y)  # [N, 256, 14, 14]
        y = self.layer3[0].bn2(y)  # [N, 256, 14, 14]
        x = self.layer3[0].downsample(x)  # [N, 256, 14, 14]
        x = y.add_(x)  # [N, 256, 14, 14]
        x = self.layer3[0].relu_1(x)  # [N, 256, 14, 14]

        # layer3.1: Basic(256)
        y = self.layer3[1].conv1(x)  # [N, 256, 14, 14]
        y = self.layer3[1].bn1(y)  # [N, 256, 14, 14]
        y = self.layer3[1].relu(y)  # [N, 256, 14, 14]
        y = self.layer3[1].conv2(y)  # [N, 256, 14, 14]
        y = self.layer3[1].bn2(y)  # [N, 256, 14, 14]
        x = y.add_(x)  # [N, 256, 14, 14]
        x = self.layer3[1].relu_1(x)  # [N, 256, 14, 14]

        # layer4: stage(Basic, 512, 2, 2, 1, 64)
        # layer4.0: Basic(512, stride = 2)
        y = self.layer4[0].conv1(x)  # [N, 512, 7, 7]
        y = self.layer4[0].bn1(y)  # [N, 512, 7, 7]
        y = self.layer4[0].relu(y)  # [N, 512, 7, 7]
        y = self.layer4[0].conv2(y)  # [N, 512, 7, 7]
        y = self.layer4[0].bn2(y)  # [N, 512, 7, 7]
        x = self.layer4[0].downsample(x)  # [N, 512, 7, 7]
        x = y.add_(x)  # [N, 512, 7, 7]
        x = self.layer4[0].relu_1(x)  # [N, 512, 7, 7]

        # layer4.1: Basic(512)
        y = self.layer4[1].conv1(x)  # [N, 512, 7, 7]
        y = self.layer4[1].bn1(y)  # [N, 512, 7, 7]
        y = self.layer4[1].relu(y)  # [N, 512, 7, 7]
        y = self.layer4[1].conv2(y)  # [N, 512, 7, 7]
        y = self.layer4[1].bn2(y)  # [N, 512, 7, 7]
        x = y.add_(x)  # [N, 512, 7, 7]
        x = self.layer4[1].relu_1(x)  # [N, 512, 7, 7]
        x = self.avgpool(x)  # [N, 512, 1, 1]
        x = self.flatten(x)  # [N, 512]
        x = self.fc(x)  # [N, 1000]
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
