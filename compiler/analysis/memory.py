"""Activation memory: elements each node materialises in a forward pass at batch 1.

DESIGN.md's definition: the input plus every node's output, except elementwise activations that run
in place (ReLU, …) and views that alias their input (Flatten, Identity, Dropout at inference).
"""

from __future__ import annotations

from cnnc.compiler.ir import Graph
from cnnc.compiler.types import is_error

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def activations(graph: Graph) -> dict[int, int]:
    out = {}
    for n in graph.nodes_in_order():
        spec = n.spec
        out[n.id] = 0 if is_error(n.type) or spec.in_place or spec.view else n.type.numel
    return out
