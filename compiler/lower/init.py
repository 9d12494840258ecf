"""Weight initialisation shared by `cnnc.load` and the standalone source `cnnc compile` writes.

`source.py` copies `init_parameters` verbatim into every generated file (it imports nothing of
cnnc), so the same seed gives the same state_dict whichever way a network was built.
"""

from __future__ import annotations

import math

import torch
from torch import nn


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
