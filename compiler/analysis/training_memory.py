"""Graph → the peak memory of one training step at batch B (`cnnc summary --train`), pure Python.

The step is PyTorch's usual one: forward, `loss.backward()`, `optimizer.step()`,
`optimizer.zero_grad()` (grads set to None), measured once the optimiser has its state. The peak
comes early in the backward pass, when nearly every tensor the forward saved is still alive and the
gradients of the last layers (in most networks, most of the weights) are already written. So:

    peak = weights + gradients + optimiser state + saved activations + workspace

- weights and gradients: every parameter once each; optimiser state: momentum SGD keeps one buffer
  per parameter, Adam two.
- saved activations: the distinct tensors autograd keeps for the backward pass, at batch B. Each op
  saves its input, its output or nothing (`SAVES`, from PyTorch's derivative formulas); a tensor
  saved by several readers, or shared through an in-place op or a view, counts once. Max pools also
  keep their indices (int64) and Dropout its mask (bool).
- workspace: the gradients in flight, the incoming and outgoing one of the largest tensor.

Dropout and StochasticDepth make tensors of their own here, unlike the inference figures of
`memory.activations`, because in training they are not the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnc.compiler.analysis.counts import params
from cnnc.compiler.analysis.memory import DTYPE_BYTES, add_target, runs_in_place
from cnnc.compiler.ir import Graph, Node
from cnnc.compiler.types import is_error

OPTIMIZER_BUFFERS = {"sgd": 1, "adam": 2}  # state tensors per parameter: momentum; exp_avg, exp_avg_sq

# What each op's backward reads: its "input", its "output", "both", or nothing (absent). From
# PyTorch's derivatives.yaml; Mul saves both sides (SE gates: both need gradients).
SAVES = {
    "Conv": "input", "Linear": "input", "PointwiseLinear": "input", "BatchNorm": "input",
    "LayerNorm2d": "input", "LocalResponseNorm": "both", "MaxPool": "input", "AvgPool": "input",
    "AdaptiveAvgPool": "input", "AdaptiveMaxPool": "input", "GlobalAvgPool": "input",
    "Mul": "input", "LayerScale": "input",
    "ReLU": "output", "Sigmoid": "output", "Tanh": "output", "Softmax": "output",
    "ReLU6": "input", "LeakyReLU": "input", "Hardswish": "input", "Hardsigmoid": "input",
    "SiLU": "input", "GELU": "input",
}
# Bytes kept per output element beside the saved tensors: pool indices, dropout masks, and LRN's
# intermediate tensors (its square, the pooled sum and the power: float each).
EXTRA_BYTES = {"MaxPool": 8, "AdaptiveMaxPool": 8, "Dropout": 1}
EXTRA_TENSORS = {"LocalResponseNorm": 3}
# Views in inference that are real tensors in training.
_TRAINING_TENSORS = frozenset({"Dropout", "StochasticDepth"})


@dataclass(frozen=True, slots=True)
class TrainingMemory:
    """Bytes at the peak of one training step; `total` is the estimate `cnnc summary --train` prints."""

    batch: int
    dtype: str
    optimizer: str
    weights: int
    gradients: int
    optimizer_state: int
    activations: int  # saved for the backward pass, at `batch`
    workspace: int  # gradients in flight

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer_state + self.activations + self.workspace

    def to_json(self) -> dict:
        parts = ("batch", "dtype", "optimizer", "weights", "gradients", "optimizer_state",
                 "activations", "workspace")
        return {name: getattr(self, name) for name in parts} | {"total": self.total}


def training_memory(graph: Graph, batch: int, optimizer: str = "sgd",
                    dtype: str = "float32") -> TrainingMemory:
    """See the module docstring. `graph` has no ERROR node."""
    size = DTYPE_BYTES[dtype]
    weights = sum(params(graph).values()) * size
    saved, largest = saved_elements(graph)
    extra = sum(_extra_bytes(n, size) for n in graph.nodes_in_order())
    return TrainingMemory(
        batch=batch,
        dtype=dtype,
        optimizer=optimizer,
        weights=weights,
        gradients=weights,
        optimizer_state=OPTIMIZER_BUFFERS[optimizer] * weights,
        activations=batch * (saved * size + extra),
        workspace=batch * 2 * largest * size,
    )


def saved_elements(graph: Graph) -> tuple[int, int]:
    """(elements of the distinct tensors saved for backward, elements of the largest tensor), at
    batch 1."""
    storage = storages(graph)
    kept: set[int] = set()
    for n in graph.nodes_in_order():
        what = SAVES.get(n.op)
        if what in ("input", "both"):
            kept.update(storage[i] for i in n.inputs)
        if what in ("output", "both"):
            kept.add(storage[n.id])
    numel = {n.id: n.type.numel for n in graph.nodes_in_order() if not is_error(n.type)}
    return sum(numel[s] for s in kept), max(numel.values(), default=0)


def storages(graph: Graph) -> dict[int, int]:
    """Node id → the id of the node whose tensor holds its output (itself, unless it is a view or
    writes into its input)."""
    out: dict[int, int] = {}
    for n in graph.nodes_in_order():
        out[n.id] = n.id
        if n.op == "Input":
            continue
        if (n.spec.view and n.op not in _TRAINING_TENSORS) or runs_in_place(graph, n):
            out[n.id] = out[n.inputs[0]]
        target = add_target(graph, n)
        if target is not None:
            out[n.id] = out[n.inputs[target]]
    return out


def _extra_bytes(n: Node, size: int) -> int:
    if is_error(n.type):
        return 0
    return n.type.numel * (EXTRA_BYTES.get(n.op, 0) + EXTRA_TENSORS.get(n.op, 0) * size)
