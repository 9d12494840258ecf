"""Graph → the peak memory of one training step at batch B (`cnnc summary --train`), pure Python.

The step is PyTorch's usual one: forward, `loss.backward()`, `optimizer.step()`,
`optimizer.zero_grad()` (grads set to None), once the optimiser has its state. Weights and the
optimiser's state (momentum SGD keeps one buffer per parameter, Adam two) live throughout; on top,
the step allocates:

- saved activations: the distinct tensors autograd keeps for the backward pass, at batch B. Each op
  saves its input, its output or nothing (`OpSpec.saves`, from PyTorch's derivative formulas); a tensor
  saved by several readers, or shared through an in-place op or a view, counts once. An in-place
  activation whose backward needs its input (ReLU6, Hardswish, SiLU, …) saves a copy of it first.
  Max pools also keep their indices (int64) and Dropout its mask (bool): `OpSpec.saved_bytes`.
  Every one of these facts is the op's registry entry's (`compiler/ops/`); none is named here.
- gradients: written as the backward pass reaches each layer, last layer first;
- workspace: the gradients in flight, of the output and the inputs of the node being differentiated.

The backward pass is swept in reverse order: before node n is differentiated, the saved tensors
still needed (those some node ≤ n saved), the gradients of the layers after it and its workspace
are alive; a saved tensor is freed once its earliest reader is done. The peak is the largest such
sum; the sweep ends with every gradient written, which is also what the optimiser step holds (Adam's
temporaries aside). It is linear in the nodes.

Dropout and StochasticDepth make tensors of their own here, unlike the inference figures of
`memory.activations`, because in training they are not the identity.
"""

from __future__ import annotations

from cnnc.compiler.analysis.counts import params
from cnnc.compiler.analysis.memory import DTYPE_BYTES, add_target, runs_in_place
from cnnc.compiler.ir import Graph, Node
from cnnc.compiler.ops import Saves
from cnnc.compiler.types import is_error
from cnnc.dsl.records import record

# State tensors per parameter: momentum SGD's momentum buffer; Adam's exp_avg and exp_avg_sq.
OPTIMIZER_BUFFERS = {"sgd": 1, "adam": 2}


@record
class TrainingMemory:
    """Bytes alive at the peak of one training step; `cnnc summary --train` prints `total`."""

    batch: int
    dtype: str
    optimizer: str
    weights: int
    optimizer_state: int
    gradients: int  # written by the peak
    activations: int  # saved for the backward pass and still needed at the peak
    workspace: int  # gradients in flight at the peak

    @property
    def total(self) -> int:
        return (
            self.weights + self.gradients + self.optimizer_state + self.activations + self.workspace
        )

    def to_json(self) -> dict:
        parts = (
            "batch",
            "dtype",
            "optimizer",
            "weights",
            "gradients",
            "optimizer_state",
            "activations",
            "workspace",
        )
        return {name: getattr(self, name) for name in parts} | {"total": self.total}


def training_memory(
    graph: Graph, batch: int, optimizer: str = "sgd", dtype: str = "float32"
) -> TrainingMemory:
    """See the module docstring. `graph` has no ERROR node."""
    size = DTYPE_BYTES[dtype]
    weights = sum(params(graph).values()) * size
    gradients, activations, workspace = backward_peak(graph, batch, size)
    return TrainingMemory(
        batch,
        dtype,
        optimizer,
        weights,
        OPTIMIZER_BUFFERS[optimizer] * weights,
        gradients,
        activations,
        workspace,
    )


def backward_peak(graph: Graph, batch: int, size: int) -> tuple[int, int, int]:
    """(gradients, saved activations, workspace) in bytes at the largest moment of the sweep."""
    weights = params(graph)
    saved = saved_bytes(graph, size)
    freed_after: dict[int, int] = {}
    for nbytes, earliest in saved.values():
        freed_after[earliest] = freed_after.get(earliest, 0) + nbytes
    alive = sum(nbytes for nbytes, _ in saved.values())
    gradients, best, best_total = 0, (0, 0, 0), -1
    for n in reversed(graph.nodes_in_order()):
        gradients += weights[n.id] * size
        moment = (gradients, batch * alive, batch * size * _in_flight(graph, n))
        if sum(moment) > best_total:
            best, best_total = moment, sum(moment)
        alive -= freed_after.get(n.id, 0)
    return best


def _in_flight(graph: Graph, n: Node) -> int:
    """Elements of the gradients differentiating `n` holds: its output's and its inputs'."""
    return n.type.numel + sum(graph.node(i).type.numel for i in dict.fromkeys(n.inputs))


def saved_bytes(graph: Graph, size: int) -> dict[object, tuple[int, int]]:
    """What the forward pass keeps, at batch 1: key → (bytes, id of its earliest reader). A key is a
    storage (a node id, see `storages`) or an op's private tensor (a clone, indices, a mask)."""
    storage = storages(graph)
    out: dict[object, tuple[int, int]] = {}

    def keep(key, nbytes: int, reader: int) -> None:
        out[key] = (nbytes, min(reader, out[key][1]) if key in out else reader)

    for n in graph.nodes_in_order():
        what = n.spec.saved(n.args)
        if n.spec.clones_in_place and runs_in_place(graph, n):
            keep(("clone", n.id), n.type.numel * size, n.id)
        elif what in (Saves.INPUT, Saves.BOTH):
            for i in n.inputs:
                keep(storage[i], graph.node(storage[i]).type.numel * size, n.id)
        if what in (Saves.OUTPUT, Saves.BOTH):
            keep(storage[n.id], graph.node(storage[n.id]).type.numel * size, n.id)
        extra = _extra_bytes(n, size)
        if extra:
            keep(("extra", n.id), extra, n.id)
    return out


def saved_total(graph: Graph) -> int:
    """Bytes of everything the forward pass keeps for the backward, at batch 1 in float32 — the
    figure autograd's saved-tensor hooks see."""
    return sum(nbytes for nbytes, _ in saved_bytes(graph, 4).values())


def storages(graph: Graph) -> dict[int, int]:
    """Node id → the id of the node whose tensor holds its output (itself, unless it is a view or
    writes into its input)."""
    out: dict[int, int] = {}
    for n in graph.nodes_in_order():
        out[n.id] = n.id
        if not n.inputs:  # a network input
            continue
        if (n.spec.view and not n.spec.training_tensor) or runs_in_place(graph, n):
            out[n.id] = out[n.inputs[0]]
        target = add_target(graph, n)
        if target is not None:
            out[n.id] = out[n.inputs[target]]
    return out


def _extra_bytes(n: Node, size: int) -> int:
    if is_error(n.type):
        return 0
    return n.type.numel * (n.spec.saved_bytes + n.spec.saved_tensors * size)
