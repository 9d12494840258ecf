"""The one walk over the IR that every lowering shares, modelled on torch.fx's `Interpreter`.

`Walk(graph).run()` visits the graph's nodes in their (topological) order, hands each node the values
its inputs produced, and dispatches on how the node lowers; a lowering is a subclass that says what
each kind of step makes (`fx.py`: fx nodes, `steps.py`: the steps of a `StepModule`, `source.py`:
lines of `forward`). What each kind means is decided here, once:

- `input(node)`: a network input (`graph.input_name(node.id)` names it);
- `module(node, args)`: the module at `node.name` called on the node's inputs, x first (a resize or
  crop also takes the tensor whose size it matches);
- `parameter(node, args)`: a bare parameter (LayerScale) at `node.name`, multiplied into `args[0]`;
- `cat(node, args)`: `torch.cat(args, dim=1)`;
- `accumulate(node, args, target)`: the sum accumulated in place into `args[target]`, an input
  nothing else reads (`out += identity`, with the method `node.spec.accumulate`: `add_`), the
  others added in their order;
- `fold(node, args, function)`: the others merges, `function` (`operator.add`, `operator.mul`)
  folded left over the inputs as Python evaluates `a + b + c`;
- `output(values)`: what forward returns, from the values by node id: a tensor, a tuple, or a dict
  by output name (`outputs`).

The rule for which inputs a merge may overwrite is the memory analysis's (`modules.add_target`).
"""

from __future__ import annotations

from cnnc.compiler.ir import Graph, Node
from cnnc.compiler.lower import modules
from cnnc.compiler.ops import Lowering


class Walk:
    """A pass over `graph` that lowers each node with the method of its step kind (see above)."""

    def __init__(self, graph: Graph):
        self.graph = graph

    def run(self):
        """Each node's step, in order, on the values of its inputs; then `output` of them all."""
        values: dict[int, object] = {}
        for node in self.graph.nodes_in_order():
            values[node.id] = self.step(node, [values[i] for i in node.inputs])
        return self.output(values)

    def step(self, node: Node, args: list):
        kind = modules.kind(node)
        if kind is Lowering.INPUT:
            return self.input(node)
        if kind is Lowering.MODULE:
            return self.module(node, args)
        if kind is Lowering.PARAMETER:
            return self.parameter(node, args)
        return self.merge(node, args)

    def merge(self, node: Node, args: list):
        function = modules.merge_function(node)
        if function == "torch.cat":
            return self.cat(node, args)
        target = modules.add_target(self.graph, node)
        if target is not None:
            return self.accumulate(node, args, target)
        return self.fold(node, args, function)

    def output(self, values: dict):
        return outputs(self.graph, values)

    def input(self, node: Node):
        raise NotImplementedError

    def module(self, node: Node, args: list):
        raise NotImplementedError

    def parameter(self, node: Node, args: list):
        raise NotImplementedError

    def cat(self, node: Node, args: list):
        raise NotImplementedError

    def accumulate(self, node: Node, args: list, target: int):
        raise NotImplementedError

    def fold(self, node: Node, args: list, function: str):
        raise NotImplementedError


def outputs(graph: Graph, values: dict):
    """What forward returns: a tensor, a tuple of them, or a dict by output name."""
    if graph.output_kind == "tuple":
        return tuple(values[i] for _, i in graph.outputs)
    if graph.output_kind == "dict":
        return {str(k): values[i] for k, i in graph.outputs}
    return values[graph.output]
