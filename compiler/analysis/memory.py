"""Activation memory: elements each node materialises in a forward pass at batch 1.

DESIGN.md's definition: the input plus every node's output, except elementwise activations that run
in place (ReLU, …) and views that alias their input (Flatten, Identity, Dropout at inference).

"Runs in place" is decided here, once: `runs_in_place` is both what this analysis leaves out and
what lowering (`compiler/lower/modules.py`) emits as `inplace=True`, so the summary's memory column
describes the module `cnnc.load` builds. `add_target` is the same rule for an `Add` that
accumulates into one of its inputs (`out += identity`); the analysis still counts its output, as
DESIGN.md's contract counts every node but in-place activations and views.
"""

from __future__ import annotations

from cnnc.compiler.ir import Graph, Node
from cnnc.compiler.types import is_error

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}

# Producers whose output no backward formula reads (their backward needs only their inputs), so an
# in-place activation after them is safe for autograd. Activations are absent on purpose: ReLU's
# backward reads its output, so a second in-place op on it would break `backward()`. The input is
# absent too: overwriting the caller's tensor would be a surprise.
SAFE_TO_OVERWRITE = frozenset(
    {"Conv", "Linear", "BatchNorm", "Add", "Mul", "Concat", "MaxPool", "AvgPool"}
)


def runs_in_place(graph: Graph, node: Node) -> bool:
    """An in-place-capable activation whose input nothing else reads and no backward needs."""
    if not node.spec.in_place:
        return False
    producer = graph.node(node.inputs[0])
    return (producer.op in SAFE_TO_OVERWRITE and graph.users(producer.id) == [node.id]
            and not graph.is_output(producer.id))  # a returned tensor is read by the caller


def add_target(graph: Graph, node: Node) -> int | None:
    """The position of the input an `Add` may overwrite with the sum, or None (a fresh tensor).

    That input must be read by nothing else, come from an op whose backward does not need its
    output, and already have the sum's shape (no broadcasting into it).
    """
    if node.op != "Add" or len(set(node.inputs)) != len(node.inputs):
        return None
    for position, source in enumerate(node.inputs):
        producer = graph.node(source)
        if (
            producer.op in SAFE_TO_OVERWRITE
            and graph.users(source) == [node.id]
            and not graph.is_output(source)
            and producer.type == node.type
        ):
            return position
    return None


def activations(graph: Graph) -> dict[int, int]:
    out = {}
    for n in graph.nodes_in_order():
        shared = is_error(n.type) or n.spec.view or runs_in_place(graph, n)
        out[n.id] = 0 if shared else n.type.numel
    return out
