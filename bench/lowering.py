"""Benchmark (not a test): `cnnc.load` of ResNet-50 against a hand-written ResNet-50, in one process.

Build time (parse, elaborate, make the modules and initialise them, for cnnc; the constructor for
the hand-written one) and eager forward time at batch 8 on CPU with 2 threads under
`torch.inference_mode()`. The two are measured alternately, several rounds each, and the fastest
round of each is compared (timeit's rule: slower rounds measure the machine's other load, not the
code); medians are printed beside. Goals: forward ratio ≤ 1.00, build ratio ≤ 1.2.

    python bench/lowering.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

import cnnc

ROOT = Path(__file__).resolve().parents[1]


def program() -> Path:
    """zoo/resnet50.cnn, or the copy of the example kept beside this file."""
    zoo = ROOT / "zoo" / "resnet50.cnn"
    return zoo if zoo.exists() else Path(__file__).with_name("resnet50.cnn")


# -- the hand-written reference: torchvision's ResNet-50, written out -------------------------------


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))  # [N, width, H, W]
        out = self.relu(self.bn2(self.conv2(out)))  # [N, width, H / stride, W / stride]
        out = self.bn3(self.conv3(out))  # [N, 4 · width, H / stride, W / stride]
        out += identity
        return self.relu(out)


class ResNet50(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = 64
        for index, (width, depth, stride) in enumerate(
            ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
        ):
            blocks = []
            for i in range(depth):
                blocks.append(Bottleneck(channels, width, stride if i == 0 else 1))
                channels = width * Bottleneck.expansion
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # [N, 64, 56, 56]
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # [N, 2048, 7, 7]
        x = torch.flatten(self.avgpool(x), 1)  # [N, 2048]
        return self.fc(x)  # [N, 1000]


# -- measuring -----------------------------------------------------------------------------------------


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(rounds: int):
    """ABBA order: neither side always runs first (after the other has warmed the caches)."""
    for i in range(rounds):
        yield ("cnnc", "hand") if i % 2 == 0 else ("hand", "cnnc")


def forward_time(model: nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Seconds per forward, the fastest of `repeats`."""
    return min(seconds(lambda: model(x)) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating measurements of each")
    args = parser.parse_args()
    torch.set_num_threads(2)
    path = program()
    cnnc.load(path)  # warm the imports and caches of both sides before timing
    ResNet50()
    build = {"cnnc": [], "hand": []}
    for order in alternate(args.rounds):
        for side in order:
            make = (lambda: cnnc.load(path)) if side == "cnnc" else ResNet50
            build[side].append(seconds(make))
    ours, theirs = cnnc.load(path, seed=0).eval(), ResNet50().eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    x = torch.randn(8, 3, 224, 224)  # [N, 3, 224, 224]
    forward = {"cnnc": [], "hand": []}
    with torch.inference_mode():
        ours(x), theirs(x)  # warm-up
        for order in alternate(args.rounds):
            for side in order:
                forward[side].append(forward_time(ours if side == "cnnc" else theirs, x, 3))
    report(path, build, forward)


def report(path: Path, build: dict, forward: dict) -> None:
    print(
        f"ResNet-50 from {path.relative_to(ROOT)}; CPU, {torch.get_num_threads()} threads, batch 8"
    )
    print(f"{'':10}{'cnnc.load':>12}{'hand-written':>14}{'ratio':>8}   goal      median ratio")
    for name, times, goal in (("build", build, 1.2), ("forward", forward, 1.0)):
        ours, theirs = min(times["cnnc"]), min(times["hand"])
        median = statistics.median(times["cnnc"]) / statistics.median(times["hand"])
        mark = "ok" if ours / theirs <= goal else "over"
        print(
            f"{name:10}{ours * 1e3:10.1f}ms{theirs * 1e3:12.1f}ms{ours / theirs:8.3f}   "
            f"≤ {goal:.2f} {mark:5}{median:8.3f}"
        )


if __name__ == "__main__":
    main()
