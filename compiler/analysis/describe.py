"""Short human descriptions of nodes: `Conv 3×3/2, 64`, `MaxPool 3×3/2`, `Linear 4096`."""

from __future__ import annotations

from cnnc.compiler.ir import Node


def _square(pair) -> str:
    a, b = pair
    return f"{a}×{b}"


def _stride(pair) -> str:
    return "" if tuple(pair) == (1, 1) else f"/{pair[0]}" if pair[0] == pair[1] else f"/{pair[0]}×{pair[1]}"


def describe(node: Node) -> str:
    a = node.args
    if node.op == "Conv":
        extra = []
        if a["groups"] != 1:
            extra.append("depthwise" if a["groups"] == a.get("in_channels") == a["out_channels"] else f"g{a['groups']}")
        if tuple(a["dilation"]) != (1, 1):
            extra.append(f"d{a['dilation'][0]}")
        tail = "".join(f", {e}" for e in extra)
        return f"Conv {_square(a['kernel_size'])}{_stride(a['stride'])}, {a['out_channels']}{tail}"
    if node.op in ("MaxPool", "AvgPool"):
        return f"{node.op} {_square(a['kernel_size'])}{_stride(a['stride'])}"
    if node.op in ("AdaptiveAvgPool", "AdaptiveMaxPool"):
        return f"{node.op} → {_square(a['output_size'])}"
    if node.op == "Linear":
        return f"Linear {a['out_features']}"
    if node.op == "Dropout":
        return f"Dropout {a['p']:g}"
    if node.op == "LocalResponseNorm":
        return f"LRN {a['size']}"
    if node.op == "ChannelShuffle":
        return f"ChannelShuffle {a['groups']}"
    if node.op == "Concat":
        return "concat"
    if node.op == "Add":
        return "+"
    if node.op == "Mul":
        return "×"
    return node.op
