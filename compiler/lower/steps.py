"""Graph IR → `StepModule`: the modules of `to_graph_module`, run node by node (no generated code).

A search lowers every member it trains or scores. For a GraphModule, torch.fx's graph, its code
generation and the `compile` of the `forward` it writes cost more than the rest of cnnc's work on a
trial (`bench/search.py`). A `StepModule` holds the same module tree (the same state_dict keys, the
same weights from the same seed, the same frozen parameters) and runs the IR's nodes in order, with
the lowering decisions `build_fx_graph` emits from (`modules.kind`, `modules.merge_function`,
`modules.add_target`): a module called on its inputs, a bare parameter multiplied in, `torch.cat`
on channels, a sum folded left, or accumulated in place into an input nothing else reads. Like the
generated code, it lets go of each value after its last reader, so the memory it holds is the same.
`tests/test_steps.py` compares outputs, gradients and state_dicts with the GraphModule's.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from cnnc.compiler.ir import Graph
from cnnc.compiler.lower import modules
from cnnc.compiler.lower.fx import _FUNCTIONS, adopt, lower, outputs
from cnnc.compiler.ops import Lowering

MODULE, PARAMETER, CAT, ADD_INTO, FOLD = range(5)


class StepModule(nn.Module):
    """A network's forward as a list of steps over `root`'s modules (see the module docstring).

    Steps are plain tuples `(kind, out, inputs, target, frees)` kept outside `_modules`: a module
    target is reached by its path at each call, so `.to()`, `deepcopy` and `load_state_dict` act on
    the registered modules alone."""

    def __init__(self, root: nn.Module, graph: Graph):
        super().__init__()
        adopt(self, root)
        self.cnnc_graph = graph
        self._inputs = list(graph.inputs)
        self._steps = _steps(graph)

    def forward(self, *inputs):
        if len(inputs) != len(self._inputs):
            raise TypeError(f"forward takes {len(self._inputs)} input(s), got {len(inputs)}")
        values = dict(zip(self._inputs, inputs))
        for kind, out, ins, target, frees in self._steps:
            args = [values[i] for i in ins]
            if kind == MODULE:
                value = self.get_submodule(target)(*args)
            elif kind == PARAMETER:
                value = args[0] * self.get_parameter(target)
            elif kind == CAT:
                value = torch.cat(args, dim=1)
            elif kind == ADD_INTO:  # target: (the input written into, the method: `add_`)
                position, method = target
                value = args[position]
                for k, other in enumerate(args):
                    if k != position:
                        value = getattr(value, method)(other)
            else:
                value = args[0]
                for other in args[1:]:
                    value = target(value, other)
            values[out] = value
            for i in frees:
                del values[i]
        return outputs(self.cnnc_graph, values)

    def __deepcopy__(self, memo):
        """A copy of the modules and parameters; the IR, frozen, is shared (as a GraphModule's)."""
        memo[id(self.cnnc_graph)] = self.cnnc_graph
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            object.__setattr__(new, key, copy.deepcopy(value, memo))
        return new


def _steps(graph: Graph) -> list[tuple]:
    """One step per node but the inputs, each with the values it is the last to read."""
    last: dict[int, int] = {}
    order = [n for n in graph.nodes_in_order() if modules.kind(n) is not Lowering.INPUT]
    for k, node in enumerate(order):
        for i in node.inputs:
            last[i] = k
    kept = {i for _, i in graph.outputs}
    frees: list[list[int]] = [[] for _ in order]
    for i, k in last.items():
        if i not in kept:
            frees[k].append(i)
    return [(*_step(graph, node), tuple(frees[k])) for k, node in enumerate(order)]


def _step(graph: Graph, node) -> tuple:
    ins = tuple(node.inputs)
    kind = modules.kind(node)
    if kind is Lowering.MODULE:
        return MODULE, node.id, ins, node.name
    if kind is Lowering.PARAMETER:
        return PARAMETER, node.id, ins, node.name
    fn = _FUNCTIONS[modules.merge_function(node)]
    if fn is torch.cat:
        return CAT, node.id, ins, None
    target = modules.add_target(graph, node)
    if target is not None:
        return ADD_INTO, node.id, ins, (target, node.spec.accumulate)
    return FOLD, node.id, ins, fn


def to_step_module(graph: Graph, seed: int | None = None, device=None) -> StepModule:
    """`to_graph_module`'s network without generated code: the same modules, weights (`seed`) and
    frozen parameters, on `device` (default CPU; `meta`: nothing initialised)."""
    return lower(graph, lambda root: StepModule(root, graph), seed, device)
