"""Receptive fields measured on torch: the support of the input gradient of one output position.

The network cnnc lowers is made a positive one whose gradient support is exactly the set of input
pixels a position depends on: every weight positive (1 / fan-in, biases and constant pads ½, so a
position that reads only padding still passes a gate's gradient on, as a real bias does), elementwise
activations and normalisations the identity (their statistics are no part of a field, see
`compiler/analysis/receptive_field.py`), max pools a positive sum over the same windows, in float64
so that the far taps of a deep stack stay above zero. Several (node, position) pairs are measured in
one backward pass, one per sample of a batch; the loss weighs the channels by positive random
numbers (a channel softmax sums to 1, so their plain sum would have no gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn

from cnnc.compiler.lower.fx import to_graph_module
from cnnc.compiler.ops import Family, Lowering


class WindowSum(nn.Module):
    """A max pool's windows, summed: every tap inside the input gets a positive gradient."""

    def __init__(self, pool: nn.MaxPool2d, out_size):
        super().__init__()
        self.k, self.s = (
            nn.modules.utils._pair(pool.kernel_size),
            nn.modules.utils._pair(pool.stride),
        )
        self.p, self.d = nn.modules.utils._pair(pool.padding), nn.modules.utils._pair(pool.dilation)
        self.out = out_size

    def forward(self, x):  # [N, C, H, W] → [N, C, *out]
        c = x.shape[1]
        need = [
            (o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip(self.out, self.s, self.d, self.k)
        ]
        extra = [max(0, n - (size + 2 * p)) for n, size, p in zip(need, x.shape[2:], self.p)]
        x = F.pad(x, (self.p[1], self.p[1] + extra[1], self.p[0], self.p[0] + extra[0]))
        ones = torch.ones(c, 1, *self.k, dtype=x.dtype)
        y = F.conv2d(x, ones, stride=self.s, dilation=self.d, groups=c)
        return y[:, :, : self.out[0], : self.out[1]]


def positive_model(graph) -> fx.GraphModule:
    model = to_graph_module(graph, seed=0).double().eval()
    for node in graph.nodes_in_order():
        spec = node.spec
        if spec.lowering is not Lowering.MODULE:
            continue
        if spec.family in (Family.ACT, Family.NORM) and node.op != "Softmax":
            _set(model, node.name, nn.Identity())
        elif node.op == "MaxPool":
            _set(model, node.name, WindowSum(model.get_submodule(node.name), node.type.shape[1:]))
        elif node.op in ("AdaptiveMaxPool", "GlobalMaxPool"):
            _set(model, node.name, nn.AdaptiveAvgPool2d(node.type.shape[1:]))
        elif isinstance(model.get_submodule(node.name), nn.ConstantPad2d):
            model.get_submodule(node.name).value = 0.5  # a border multiplied by a gate passes it on
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5 if p.dim() == 1 else 1.0 / p[0].numel())
    return model


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


class Keep(fx.Interpreter):
    """Runs the model, keeping the output of the IR nodes asked for."""

    def __init__(self, module, wanted):
        super().__init__(module)
        self.wanted, self.values = wanted, {}

    def run_node(self, n):
        out = super().run_node(n)
        if n.meta.get("cnnc_id") in self.wanted:
            self.values[n.meta["cnnc_id"]] = out
        return out


def measure(
    graph, pairs, seed: int = 0
) -> list[tuple[tuple[int, int] | None, tuple[int, int] | None]]:
    """For each (node id, h, w): the (first, last) input row and column its gradient reaches, or
    None along an axis where it reaches nothing. A vector's position is ignored (h, w = 0)."""
    torch.manual_seed(seed)
    model = positive_model(graph)
    shape = graph.input_type.shape
    x = (torch.rand(len(pairs), *shape, dtype=torch.float64) + 0.5).requires_grad_()
    keep = Keep(model, {node for node, _, _ in pairs})
    keep.run(x)
    loss = 0
    for b, (node, h, w) in enumerate(pairs):
        value = keep.values[node][b]  # [C, H, W] or [N]
        picked = value[:, h, w] if value.dim() == 3 else value
        loss = loss + (picked * (torch.rand(picked.shape, dtype=torch.float64) + 0.5)).sum()
    (grad,) = torch.autograd.grad(loss, x)
    return [_spans(grad[b]) for b in range(len(pairs))]


def _spans(g):
    support = g.abs().sum(0) > 0  # [H, W]
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    if len(rows) == 0:
        return None, None
    return (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))


def check(
    graph, node_ids, max_pairs: int = 64, one_channel: bool = False
) -> tuple[list[str], set[int]]:
    """Measure the nodes `node_ids` and compare with cnnc's spans, position by position. A node with
    local fields is measured at positions near the middle of its map — one period of cnnc's pattern
    along each axis, so every span its extent reports — where the input does not clip them (cnnc's
    span lies inside the input). A node with fields at the declared input is compared at up to 16
    positions an axis. Returns the disagreements and the ids of the nodes verified at every
    position measured."""
    from cnnc.compiler.analysis.receptive_field import _at, patterns

    found = patterns(graph)
    pairs, owners = [], []
    for node_id in node_ids:
        shape = graph.node(node_id).type.shape
        sizes = shape[1:] if len(shape) == 3 else (1, 1)
        local = found.local[node_id]
        if (local is None and node_id not in found.clipped) or node_id in found.inexact:
            continue  # past cnnc's bounds, or after a regrouping reshape: nothing exact to compare
        runs = (
            [min(n, a.period) for n, a in zip(sizes, local)]
            if local
            else [min(n, 16) for n in sizes]
        )
        count = max(runs)
        if len(pairs) + count > max_pairs:
            continue
        starts = [max(0, min(n - r, n // 2 - r // 2)) for n, r in zip(sizes, runs)]
        for k in range(count):
            pairs.append((node_id, starts[0] + k % runs[0], starts[1] + k % runs[1]))
            owners.append(node_id)
    measured = (measure_one_channel if one_channel else measure)(graph, pairs)
    extent = graph.input_type.shape[1:]
    problems, verified = [], set()
    for node_id in dict.fromkeys(owners):
        name = graph.node(node_id).name
        mine = [(p, m) for o, p, m in zip(owners, pairs, measured) if o == node_id]
        local = found.local[node_id]
        if local is None:
            clipped = found.clipped[node_id]
            for (_, h, w), spans in mine:
                for axis, i in enumerate((h, w)):
                    c = clipped[axis]
                    want = (c.lo[i], c.hi[i]) if c.lo[i] <= c.hi[i] else None
                    if spans[axis] != want:
                        problems.append(
                            f"{name} position {i} axis {axis}: cnnc {want}, torch {spans[axis]}"
                        )
            verified.add(node_id)
            continue
        ok = True
        for (_, h, w), spans in mine:
            want = [_at(local[0], h), _at(local[1], w)]
            if any(lo < 0 or hi > size - 1 for (lo, hi), size in zip(want, extent) if lo <= hi):
                ok = False  # the input's edge clips it: not comparable here
                continue
            want = [span if span[0] <= span[1] else None for span in want]
            if list(spans) != want:
                problems.append(f"{name} position {(h, w)}: cnnc {want}, torch {list(spans)}")
        if ok:
            verified.add(node_id)
    return problems, verified


# -- one channel: the same spatial ops, for the zoo's large models -----------------------------------


class OneChannel(Keep):
    """Runs the lowered module's graph with every value summed over its channels, [N, 1, H, W] (a
    vector [N, 1]): each module's spatial action is torch's own kernel with the module's own
    hyperparameters (a conv of ones, the pool's windows, the same interpolation, the same crop and
    padding); merges add. The gradient support of a position is then that of the positive network
    above, channel by channel united, at a cost independent of the widths."""

    def get_attr(self, target, args, kwargs):
        return torch.zeros((), dtype=torch.float64)  # a LayerScale: a constant factor

    def call_function(self, target, args, kwargs):
        if target is torch.cat:
            return sum(args[0])
        return args[0] + args[1]  # add or mul of positive values: the union of supports

    def call_method(self, target, args, kwargs):
        return args[0] + args[1]  # `add_`

    def call_module(self, target, args, kwargs):
        return spatial(self.module.get_submodule(target), *args)


def spatial(m: nn.Module, x, *more):
    from cnnc.compiler.lower import layers

    if isinstance(m, nn.Conv2d):
        ones = torch.ones(1, 1, *m.kernel_size, dtype=x.dtype)
        return F.conv2d(x, ones, stride=m.stride, padding=m.padding, dilation=m.dilation)
    if isinstance(m, nn.ConvTranspose2d):
        ones = torch.ones(1, 1, *m.kernel_size, dtype=x.dtype)
        return F.conv_transpose2d(
            x,
            ones,
            stride=m.stride,
            padding=m.padding,
            output_padding=m.output_padding,
            dilation=m.dilation,
        )
    if isinstance(m, nn.MaxPool2d):
        out = F.max_pool2d(
            x.detach(), m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode
        ).shape[2:]
        return WindowSum(m, out)(x)
    if isinstance(
        m,
        (
            nn.AvgPool2d,
            nn.Upsample,
            layers.Resize,
            layers.Crop,
            nn.ConstantPad2d,
            nn.ReflectionPad2d,
            nn.ReplicationPad2d,
        ),
    ):
        return m(x, *more)
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return F.adaptive_avg_pool2d(x, m.output_size)
    if isinstance(m, nn.PixelShuffle):
        r = m.upscale_factor
        return F.pixel_shuffle(x.repeat(1, r * r, 1, 1), r)
    if isinstance(m, nn.Flatten):
        return x.flatten(1).sum(1, keepdim=True)  # [N, 1]
    if isinstance(m, layers.Reshape):
        total = x.flatten(1).sum(1)
        shape = m.shape if len(m.shape) == 1 else (1, *m.shape[1:])
        keep = len(m.shape) == 3 and x.dim() == 4 and tuple(m.shape[1:]) == tuple(x.shape[2:])
        return (
            x if keep else total.reshape(-1, *([1] * len(shape))).expand(-1, *shape[:1], *shape[1:])
        )
    if isinstance(m, nn.Softmax) and x.dim() == 4 and m.dim % 4 in (2, 3):
        return x.sum(m.dim, keepdim=True).expand_as(x)
    return x  # per position and channel-wise: activations, norms, Linear on a vector, views


def measure_one_channel(graph, pairs, batch: int = 32) -> list:
    """`measure`, on the one-channel copy (see `OneChannel`), `batch` pairs a pass."""
    model = to_graph_module(graph, device="meta")
    return [
        s
        for i in range(0, len(pairs), batch)
        for s in _one_channel_pass(model, graph, pairs[i : i + batch])
    ]


def _one_channel_pass(model, graph, pairs) -> list:
    _, h, w = graph.input_type.shape
    x = torch.ones(len(pairs), 1, h, w, dtype=torch.float64, requires_grad=True)
    run = OneChannel(model, {node for node, _, _ in pairs})
    run.run(x)
    loss = 0
    for b, (node, i, j) in enumerate(pairs):
        value = run.values[node][b]
        loss = loss + (value[0, i, j] if value.dim() == 3 else value.sum())
    (grad,) = torch.autograd.grad(loss, x)
    assert bool(torch.isfinite(grad).all())
    return [_spans(grad[b]) for b in range(len(pairs))]
