"""Parameters and multiply-accumulates per node, read from the op registry.

MACs count the multiply-accumulates of convolutions (transposed ones too) and Linear layers at
batch 1 (bias additions excluded, as torch's FlopCounterMode does), each op's `count_macs`; pools,
norms, activations, interpolation and padding count 0, as FlopCounterMode counts nothing for them.
FLOPs are 2 × MACs. Nodes with an ERROR type count 0.
"""

from __future__ import annotations

from cnnc.compiler.ir import Graph, Node
from cnnc.compiler.types import is_error


def _inputs(graph: Graph, node: Node):
    return tuple(graph.node(i).type for i in node.inputs)


def params(graph: Graph) -> dict[int, int]:
    """Trainable parameters of each node (what `sum(p.numel())` counts for its module)."""
    return {
        n.id: 0 if is_error(n.type) else n.spec.count_params(n.args, _inputs(graph, n), n.type)
        for n in graph.nodes_in_order()
    }


def macs(graph: Graph) -> dict[int, int]:
    """Multiply-accumulates of each node at batch 1."""
    return {
        n.id: 0 if is_error(n.type) else n.spec.count_macs(n.args, _inputs(graph, n), n.type)
        for n in graph.nodes_in_order()
    }
