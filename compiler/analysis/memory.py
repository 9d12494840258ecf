"""Activation memory: elements each node materialises in a forward pass at batch 1.

The definition: the elements of every tensor the module `cnnc.load` builds allocates in a forward
pass at batch 1 (in eval mode) — the input and every node's output, except outputs written into
their input's storage (in-place activations, an `Add` that accumulates into an input) and views that
alias it (Flatten and Reshape of a contiguous tensor, Identity, Dropout and StochasticDepth at
inference, Chunk, Crop). `storage_owners` names, for each node, the node whose tensor holds its
output; a node counts only when it owns its storage. `compiler/lower/verify.py` counts the distinct
storages of a batch-1 forward of the lowered module and finds this figure to the element (every zoo
model and random programs, in the suite).

"Runs in place" is decided here, once: `runs_in_place` and `add_target` are both what this analysis
leaves out and what lowering (`compiler/lower/modules.py`, `compiler/lower/fx.py`) emits as
`inplace=True` and `add_`, so the summary's memory column describes the module `cnnc.load` builds.
"""

from __future__ import annotations

from cnnc.compiler.ir import Graph, Node
from cnnc.compiler.types import is_error

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}

# A producer may be overwritten when its spec says `overwritable`: no backward formula reads its
# output (its backward needs only its inputs), so an in-place activation after it is safe for
# autograd. Activations are not: ReLU's backward reads its output, so a second in-place op on it
# would break `backward()`. Nor is the input: overwriting the caller's tensor would be a surprise.


def runs_in_place(graph: Graph, node: Node) -> bool:
    """An in-place-capable activation whose input nothing else reads and no backward needs."""
    if not node.spec.in_place:
        return False
    producer = graph.node(node.inputs[0])
    return (
        producer.spec.overwritable
        and graph.users(producer.id) == [node.id]
        and not graph.is_output(producer.id)
    )  # a returned tensor is read by the caller


def add_target(graph: Graph, node: Node) -> int | None:
    """The position of the input a merge that accumulates (an `Add`: `OpSpec.accumulate`) may
    overwrite with its result, or None (a fresh tensor).

    That input must be read by nothing else, come from an op whose backward does not need its
    output, and already have the sum's shape (no broadcasting into it).
    """
    if not node.spec.accumulate or len(set(node.inputs)) != len(node.inputs):
        return None
    for position, source in enumerate(node.inputs):
        producer = graph.node(source)
        if (
            producer.spec.overwritable
            and graph.users(source) == [node.id]
            and not graph.is_output(source)
            and producer.type == node.type
        ):
            return position
    return None


def activations(graph: Graph) -> dict[int, int]:
    """Node id → elements it allocates (0 for views and outputs written in place)."""
    owners = storage_owners(graph)
    return {
        n.id: n.type.numel if owners[n.id] == n.id and not is_error(n.type) else 0
        for n in graph.nodes_in_order()
    }


def storage_owners(graph: Graph) -> dict[int, int]:
    """Node id → the id of the node whose storage holds its output at inference (itself when it
    allocates one)."""
    owners: dict[int, int] = {}
    strides: dict[int, tuple[int, ...]] = {}  # of [1, *shape], the batch first
    for n in graph.nodes_in_order():
        owners[n.id] = n.id
        if is_error(n.type):
            continue
        strides[n.id] = _contiguous((1, *n.type.shape))
        if not n.inputs or n.inputs[0] not in strides:
            continue
        first = n.inputs[0]
        target = add_target(graph, n)
        if target is not None:
            owners[n.id] = owners[n.inputs[target]]
        elif runs_in_place(graph, n) or (n.spec.view and not n.spec.reshape):
            owners[n.id], strides[n.id] = owners[first], strides[first]
        elif n.spec.reshape:  # torch returns a view where the strides allow one, else a copy
            view = _view_strides(
                (1, *graph.node(first).type.shape), strides[first], (1, *n.type.shape)
            )
            if view is not None:
                owners[n.id], strides[n.id] = owners[first], view
    return owners


def _contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    out, step = [], 1
    for size in reversed(shape):
        out.append(step)
        step *= size
    return tuple(reversed(out))


def _view_strides(old: tuple[int, ...], stride: tuple[int, ...], new: tuple[int, ...]):
    """The strides of `new` as a view of a tensor of shape `old` and strides `stride`, or None when
    no view exists and reshape copies (torch's `computeStride`: runs of old dimensions that are
    contiguous with each other may be regrouped)."""
    out = [0] * len(new)
    view_d = len(new) - 1
    base, tensor_numel, view_numel = stride[-1], 1, 1
    for d in range(len(old) - 1, -1, -1):
        tensor_numel *= old[d]
        if d == 0 or (old[d - 1] != 1 and stride[d - 1] != tensor_numel * base):
            while view_d >= 0 and (view_numel < tensor_numel or new[view_d] == 1):
                out[view_d] = view_numel * base
                view_numel *= new[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if d > 0:
                base, tensor_numel, view_numel = stride[d - 1], 1, 1
    return tuple(out) if view_d == -1 else None
