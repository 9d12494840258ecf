"""The reference models of the dense-prediction zoo, and how each is measured.

torchvision builds four of them (`weights=None, weights_backbone=None`, as its model builders are
called for random initialisation); U-Net has no reference implementation in torchvision, so it is
written here by hand from the paper (Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for
Biomedical Image Segmentation", MICCAI 2015, arXiv:1505.04597, Figure 1 and §2):

- the contracting path repeats two unpadded 3×3 convolutions, each followed by a ReLU, then a 2×2
  max-pool of stride 2, doubling the channels at each step (64, 128, 256, 512, 1024);
- each step of the expansive path is a 2×2 up-convolution that halves the channels, a concatenation
  with the correspondingly cropped feature map from the contracting path, and two 3×3
  convolutions with ReLU;
- a final 1×1 convolution maps the 64 channels to the classes (2); a 572×572 tile gives 388×388.

The padded variant (`pad=1`) keeps every size, so the skip maps need no cropping and the output is
as large as the input (an input divisible by 16).

Reference figures are measured from these modules, never typed in: parameters by `numel`, MACs by
`torch.utils.flop_counter.FlopCounterMode` (its FLOPs / 2) on the meta device, so a 520×520 forward of
a 150-GMAC model costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from zoo_support import ROOT


@dataclass(frozen=True)
class Dense:
    """A zoo file, the arguments it is elaborated with, and the reference it must equal: the
    function `reference` (torchvision's builder, or `UNet` below) called with `kwargs`."""

    model: str  # zoo/<model>.cnn
    reference: str
    kwargs: dict
    args: tuple[str, ...] = ()  # the network's arguments, as `--arg` takes them (`aux=true`)
    id: str = ""

    @property
    def path(self):
        return ROOT / "zoo" / f"{self.model}.cnn"

    @property
    def name(self) -> str:
        return self.id or self.model

    @property
    def ctor(self) -> str:
        return f"{self.reference}({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"


RANDOM = {"weights": None, "weights_backbone": None}
CASES = [
    Dense("fcn_resnet50", "fcn_resnet50", {**RANDOM, "aux_loss": False}),
    Dense(
        "fcn_resnet50",
        "fcn_resnet50",
        {**RANDOM, "aux_loss": True},
        ("aux=true",),
        "fcn_resnet50-aux",
    ),
    Dense("deeplabv3_resnet50", "deeplabv3_resnet50", {**RANDOM, "aux_loss": False}),
    Dense(
        "deeplabv3_resnet50",
        "deeplabv3_resnet50",
        {**RANDOM, "aux_loss": True},
        ("aux=true",),
        "deeplabv3_resnet50-aux",
    ),
    Dense("lraspp_mobilenet_v3_large", "lraspp_mobilenet_v3_large", RANDOM),
    Dense(
        "resnet50_fpn",
        "resnet_fpn_backbone",
        {"backbone_name": "resnet50", "weights": None, "trainable_layers": 3},
    ),
    Dense("unet", "UNet", {"in_channels": 1, "classes": 2, "pad": 0}),
    Dense("unet_padded", "UNet", {"in_channels": 1, "classes": 2, "pad": 1}),
]


def build(case: Dense):
    """The reference module of `case`, randomly initialised, in eval mode."""
    torchvision = pytest.importorskip("torchvision")
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    if case.reference == "UNet":
        make = unet_class()
    elif case.reference == "resnet_fpn_backbone":
        make = resnet_fpn_backbone
    else:
        make = getattr(torchvision.models.segmentation, case.reference)
    return make(**case.kwargs).eval()


def params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def measure(torch, case: Dense, shape) -> tuple[int, int, dict]:
    """The reference's parameters, MACs and output shapes (`{key: [C, H, W]}`) at batch 1.

    Built and run on the meta device (shapes only, no arithmetic); MACs are FlopCounterMode's FLOPs
    / 2 (convolutions and matrix products count; normalisation, pooling and resizing do not)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        module = build(case)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        result = outputs(module(torch.zeros(1, *shape, device="meta")))
    return (
        params(module),
        counter.get_total_flops() // 2,
        {k: list(v.shape[1:]) for k, v in result.items()},
    )


def outputs(result) -> dict:
    """A model's result as `{name: tensor}`: a dict stays, one tensor is `{"": tensor}`."""
    return dict(result) if isinstance(result, dict) else {"": result}


# -- U-Net, by hand from the paper ------------------------------------------------------------------


def unet_class():
    """`UNet(in_channels, classes, pad)`: Ronneberger et al. 2015; `pad=0` is the paper's network."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class DoubleConv(nn.Sequential):
        """Two 3×3 convolutions, each followed by a ReLU ("unpadded" in the paper: pad=0)."""

        def __init__(self, cin: int, cout: int, pad: int):
            super().__init__(
                nn.Conv2d(cin, cout, 3, padding=pad),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=pad),
                nn.ReLU(inplace=True),
            )

    class Up(nn.Module):
        """A 2×2 up-convolution halving the channels, the skip map cropped to its centre, both
        concatenated (skip first, as the figure draws the copied map to the left), two 3×3s."""

        def __init__(self, cin: int, cout: int, pad: int):
            super().__init__()
            self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
            self.conv = DoubleConv(2 * cout, cout, pad)

        def forward(self, x, skip):
            x = self.up(x)  # [N, cout, 2H, 2W]
            h, w = x.shape[-2:]
            top, left = (skip.shape[-2] - h) // 2, (skip.shape[-1] - w) // 2
            skip = skip[..., top : top + h, left : left + w]  # the centre crop
            return self.conv(torch.cat([skip, x], dim=1))

    class UNet(nn.Module):
        def __init__(self, in_channels: int = 1, classes: int = 2, pad: int = 0):
            super().__init__()
            widths = [64, 128, 256, 512, 1024]
            self.pool = nn.MaxPool2d(2)
            self.enc1 = DoubleConv(in_channels, 64, pad)
            self.enc2 = DoubleConv(64, 128, pad)
            self.enc3 = DoubleConv(128, 256, pad)
            self.enc4 = DoubleConv(256, 512, pad)
            self.enc5 = DoubleConv(512, 1024, pad)  # the bottom of the U
            self.dec4 = Up(widths[4], widths[3], pad)
            self.dec3 = Up(widths[3], widths[2], pad)
            self.dec2 = Up(widths[2], widths[1], pad)
            self.dec1 = Up(widths[1], widths[0], pad)
            self.head = nn.Conv2d(64, classes, 1)

        def forward(self, x):
            e1 = self.enc1(x)  # 572 → 568 (paper's sizes)
            e2 = self.enc2(self.pool(e1))  # 284 → 280
            e3 = self.enc3(self.pool(e2))  # 140 → 136
            e4 = self.enc4(self.pool(e3))  # 68 → 64
            e5 = self.enc5(self.pool(e4))  # 32 → 28
            y = self.dec4(e5, e4)  # 56 → 52
            y = self.dec3(y, e3)  # 104 → 100
            y = self.dec2(y, e2)  # 200 → 196
            y = self.dec1(y, e1)  # 392 → 388
            return self.head(y)

    return UNet


def unet_params(in_channels: int = 1, classes: int = 2) -> int:
    """The paper's parameter count, by hand: 3×3 convolutions with biases, 2×2 up-convolutions
    halving the channels, and the 1×1 head (the same for both variants: padding adds none)."""

    def conv(cin, cout, k):
        return cin * cout * k * k + cout

    widths = [64, 128, 256, 512, 1024]
    total, cin = 0, in_channels
    for w in widths:  # contracting path and bottom
        total += conv(cin, w, 3) + conv(w, w, 3)
        cin = w
    for w in reversed(widths[:-1]):  # expansive path
        total += conv(2 * w, w, 2) + conv(2 * w, w, 3) + conv(w, w, 3)
    return total + conv(64, classes, 1)
