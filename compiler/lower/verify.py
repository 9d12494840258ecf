"""Static == runtime: compare what the checker inferred with what torch computes.

`mismatches(graph)` lowers `graph`, runs one batch through it and returns a readable line for each
disagreement, so an empty list is the proof for that graph:
- every IR node's type equals the shape torch produces at its fx node (batch aside);
- the static parameter count equals `sum(p.numel())`;
- the static MACs equal `torch.utils.flop_counter.FlopCounterMode`'s total / 2;
- the static activations equal the elements of the distinct storages the module's values live in
  during a forward at batch 1 (`allocated_elements`: an in-place op or a view adds nothing).
On the `meta` device (the default) nothing is computed, only shapes and FLOP formulas: a ResNet-152
checks in milliseconds. Pass `device="cpu"` to run real kernels.
"""

from __future__ import annotations

import torch
from torch import fx
from torch.utils.flop_counter import FlopCounterMode

from cnnc.compiler.analysis.summary import summarize
from cnnc.compiler.ir import Graph
from cnnc.compiler.lower.fx import example_inputs, to_graph_module


class ShapeRecorder(fx.Interpreter):
    """Runs a lowered module node by node, keeping the output shape of each IR node (by id)."""

    def __init__(self, module: fx.GraphModule):
        super().__init__(module)
        self.shapes: dict[int, tuple[int, ...]] = {}

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        if "cnnc_id" in n.meta:
            self.shapes[n.meta["cnnc_id"]] = tuple(out.shape)
        return out


class StorageCounter(fx.Interpreter):
    """Runs a lowered module node by node, counting the elements of each distinct storage a value
    lives in (parameters aside). Every value is kept alive, so no storage's identity is reused."""

    def __init__(self, module: fx.GraphModule):
        super().__init__(module)
        self.storages: dict[int, int] = {}  # storage identity → elements
        self.alive: list[torch.Tensor] = []

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        if n.op != "get_attr":  # a bare parameter (LayerScale's) is a weight, not an activation
            for t in _tensors(out):
                self.alive.append(t)
                self.storages[t.untyped_storage()._cdata] = (
                    t.untyped_storage().nbytes() // t.element_size()
                )
        return out


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [t for v in value for t in _tensors(v)] if isinstance(value, (tuple, list)) else []


def allocated_elements(module: fx.GraphModule, graph: Graph, device="meta") -> int | None:
    """Elements of the storages a forward at batch 1 holds values in: the inputs and every tensor
    a module or function allocates. None where torch refuses batch 1 (a GroupNorm with one value
    per group: torch's norm needs two)."""
    counter = StorageCounter(module)
    try:
        with torch.no_grad():
            counter.run(*example_inputs(graph, 1, device, make=torch.zeros))
    except (RuntimeError, ValueError):
        return None
    return sum(counter.storages.values())


def mismatches(graph: Graph, device="meta", batch: int = 2) -> list[str]:
    """See the module docstring; `[]` when static and runtime agree everywhere."""
    model = to_graph_module(graph, seed=0, device=device).eval()
    x = example_inputs(graph, batch, device, make=torch.zeros)  # [N, C, H, W] per input
    problems = []
    recorder = ShapeRecorder(model)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        recorder.run(*x)  # one pass: shapes and FLOPs
    shapes = recorder.shapes
    for node in graph.nodes_in_order():
        static = (batch, *node.type.shape)
        if shapes.get(node.id) != static:
            problems.append(
                f"{node.name} ({node.op}): static {list(static)}, torch {shapes.get(node.id)}"
            )
    summary = summarize(graph)
    params = sum(p.numel() for p in model.parameters())
    if params != summary.params:
        problems.append(f"params: static {summary.params:,}, torch {params:,}")
    macs = counter.get_total_flops() // (2 * batch)
    if macs != summary.macs:
        problems.append(f"MACs: static {summary.macs:,}, torch {macs:,}")
    allocated = allocated_elements(model, graph, device)
    if allocated is not None and allocated != summary.activations:
        problems.append(f"activations: static {summary.activations:,}, torch {allocated:,}")
    return problems
