"""A lowered network → the same function, rewritten to run inference faster (`optimize=`).

Contract of `for_inference(model)`:
- `model` is a `CnncModule` from `fx.to_graph_module`; it is not changed. The result is a new one,
  in eval mode with every parameter frozen (`requires_grad=False`), whose forward gives the
  eval-mode outputs of `model` within float rounding (1e-4 relative, tested over the zoo).
- Each BatchNorm that is the only reader of a Conv2d (or Linear) is folded into that layer's weight
  and bias (`torch.nn.utils.fusion`), so its module and its state_dict keys disappear: load weights
  before optimising, not after.
- Dropout, Identity and StochasticDepth, the identity at inference, are dropped from the forward.
- With `channels_last` (the default where the network has convolutions) the weights and the input
  are laid out NHWC, the layout oneDNN's CPU convolutions run natively; outputs keep their values.

Everything is an fx graph rewrite plus module swaps: no tracing, no TorchScript, no new kernels.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from cnnc.compiler.lower import layers

# Modules that return their input unchanged in eval mode.
_IDENTITY_AT_INFERENCE = (nn.Dropout, nn.Identity, layers.StochasticDepth)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def for_inference(model: fx.GraphModule, channels_last: bool | None = None) -> fx.GraphModule:
    """See the module docstring. `channels_last=None` chooses: on where the network has a Conv2d."""
    gm = copy.deepcopy(model).eval()
    type(gm).__name__ = type(model).__name__  # fx gives each instance a class: keep `Resnet50`
    fold_batch_norms(gm)
    drop_identities(gm)
    if channels_last is None:
        channels_last = any(isinstance(m, nn.Conv2d) for m in gm.modules())
    if channels_last:
        to_channels_last(gm)
    gm.graph.lint()
    gm.recompile()
    gm.requires_grad_(False)
    return gm


def fold_batch_norms(gm: fx.GraphModule) -> int:
    """Fold each BatchNorm into the Conv2d or Linear it alone reads from; returns how many."""
    folded = 0
    for node in list(gm.graph.nodes):
        producer = _foldable_producer(gm, node)
        if producer is None:
            continue
        layer, norm = gm.get_submodule(producer.target), gm.get_submodule(node.target)
        fuse = fuse_conv_bn_eval if isinstance(layer, nn.Conv2d) else fuse_linear_bn_eval
        _replace_submodule(gm, producer.target, fuse(layer, norm))
        _bypass(gm, node, producer)
        folded += 1
    return folded


def _foldable_producer(gm: fx.GraphModule, node: fx.Node) -> fx.Node | None:
    """The Conv2d/Linear node `node` (a BatchNorm) can be folded into, or None."""
    if node.op != "call_module" or not isinstance(gm.get_submodule(node.target), _NORMS):
        return None
    producer = node.args[0]
    if (
        not isinstance(producer, fx.Node)
        or producer.op != "call_module"
        or len(producer.users) != 1
    ):
        return None  # another reader needs the un-normalised values
    layer = gm.get_submodule(producer.target)
    norm = gm.get_submodule(node.target)
    if not norm.track_running_stats or norm.running_mean is None:
        return None  # batch statistics even in eval mode: nothing constant to fold
    if isinstance(layer, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
        return producer
    if type(layer) is nn.Linear and isinstance(norm, nn.BatchNorm1d):
        return producer  # `type is`: PointwiseLinear's output is [N, C, H, W], not [N, C]
    return None


def drop_identities(gm: fx.GraphModule) -> int:
    """Remove the modules that are the identity at inference; returns how many."""
    dropped = 0
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and isinstance(
            gm.get_submodule(node.target), _IDENTITY_AT_INFERENCE
        ):
            _bypass(gm, node, node.args[0])
            dropped += 1
    return dropped


def to_channels_last(gm: fx.GraphModule) -> None:
    """4-d weights and the input in NHWC; every later tensor follows the layout its inputs have."""
    gm.to(memory_format=torch.channels_last)
    (placeholder,) = [n for n in gm.graph.nodes if n.op == "placeholder"]
    with gm.graph.inserting_after(placeholder):
        nhwc = gm.graph.call_method(
            "contiguous", (placeholder,), {"memory_format": torch.channels_last}
        )
    placeholder.replace_all_uses_with(nhwc, delete_user_cb=lambda user: user is not nhwc)


def _bypass(gm: fx.GraphModule, node: fx.Node, replacement: fx.Node) -> None:
    """Readers of `node` read `replacement` instead; `node` and its module go."""
    node.replace_all_uses_with(replacement)
    gm.graph.erase_node(node)
    gm.delete_submodule(node.target)


def _replace_submodule(gm: fx.GraphModule, target: str, module: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, name, module)
