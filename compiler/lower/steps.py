"""Graph IR → `StepModule`: the modules of `to_graph_module`, run node by node (no generated code).

A search lowers every member it trains or scores. For a GraphModule, torch.fx's graph, its code
generation and the `compile` of the `forward` it writes cost more than the rest of cnnc's work on a
trial (`bench/search.py`). A `StepModule` holds the same module tree (the same state_dict keys, the
same weights from the same seed, the same frozen parameters) and runs the IR's nodes in order, with
the step kinds `build_fx_graph` emits from (`walk.Walk`'s): a module called on its inputs, a bare
parameter multiplied in, `torch.cat` on channels, a sum folded left, or accumulated in place into an
input nothing else reads. Like the
generated code, it lets go of each value after its last reader, so the memory it holds is the same.
`tests/test_steps.py` compares outputs, gradients and state_dicts with the GraphModule's.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from cnnc.compiler.ir import Graph
from cnnc.compiler.lower.fx import _FUNCTIONS, adopt, lower
from cnnc.compiler.lower.walk import Walk, outputs

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
    return with_frees(StepWalk(graph).run(), graph)


def with_frees(order: list[tuple], graph: Graph) -> list[tuple]:
    """Steps `(kind, out, inputs, target)` in the order they run, each with the values it is the
    last to read (a network's outputs are kept)."""
    last: dict[int, int] = {}
    for k, (_, _, ins, _) in enumerate(order):
        for i in ins:
            last[i] = k
    kept = {i for _, i in graph.outputs}
    frees: list[list[int]] = [[] for _ in order]
    for i, k in last.items():
        if i not in kept:
            frees[k].append(i)
    return [(*step, tuple(frees[k])) for k, step in enumerate(order)]


class StepWalk(Walk):
    """The IR as steps `(kind, out, inputs, target)`: a node's value is its id, read at run time."""

    def __init__(self, graph: Graph):
        super().__init__(graph)
        self.steps: list[tuple] = []

    def step(self, node, args: list) -> int:
        made = super().step(node, args)
        if made is not None:
            self.steps.append((made[0], node.id, tuple(node.inputs), made[1]))
        return node.id

    def output(self, values: dict) -> list[tuple]:
        return self.steps

    def input(self, node) -> None:
        return None  # forward's arguments, not a step

    def module(self, node, args: list) -> tuple:
        return MODULE, node.name

    def parameter(self, node, args: list) -> tuple:
        return PARAMETER, node.name

    def cat(self, node, args: list) -> tuple:
        return CAT, None

    def accumulate(self, node, args: list, target: int) -> tuple:
        return ADD_INTO, (target, node.spec.accumulate)

    def fold(self, node, args: list, function: str) -> tuple:
        return FOLD, _FUNCTIONS[function]


def to_step_module(graph: Graph, seed: int | None = None, device=None) -> StepModule:
    """`to_graph_module`'s network without generated code: the same modules, weights (`seed`) and
    frozen parameters, on `device` (default CPU; `meta`: nothing initialised)."""
    return lower(graph, lambda root: StepModule(root, graph), seed, device)
