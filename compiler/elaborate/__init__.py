"""AST → Graph: evaluate expressions, instantiate blocks, unroll repeats, decide conditionals and
infer every node's shape as it is made.

Every node of the returned graph has a concrete `TensorType` or `ERROR`, and one diagnostic explains
each node where inference failed (`Node.error`). Errors that stop a statement (an unknown name, a
wrong argument) poison that statement's value; independent statements and branches go on, so several
mistakes are all reported, and one mistake gives one message.

Naming (the contract lowering relies on): a label names what it labels; the unlabelled members of a
sequence (a list of layers, or a parenthesised chain of layers) are numbered 0, 1, … as nn.Sequential
numbers them, nested unlabelled sequences flattened; other unlabelled layers take their op's or
block's lowercase name, with `_1`, `_2`, … when repeated in one scope.

The room's modules, each one concern, bottom first (each imports only those above it in this list,
at the top of the file):
- the helpers, leaves that import none of the rest: `values` (what an expression evaluates to),
  `derive` (derived networks), `coerce` (op arguments, on `values`), `estimate` (lower bounds on
  nodes, to refuse a runaway before building it, on `values`);
- `state`: the leaf of the stages — `Fail`/`Abort`, `Frame`, `Builder` (nodes, names, budgets),
  `Elaboration`, the decider's interface, and `El`, what the rules below use of the elaborator;
- `scopes` (names), `bind` (binding arguments to an op's or a call's parameters), `builtins` (the
  functions every file can use), `budget` (the checks of `limits` during evaluation), `choices`
  (decisions), `decided` (the decider of a `decide { … }` clause, on `choices`), `unused` (static warnings), `zeros` (what a `Zero` makes dead);
- `evaluate` (expressions), `bodies` (statements, networks, the finished graph);
- `apply` (`Elaborator`: layers applied to tensors, building the graph);
- `entry` (`elaborate`, and the networks a file defines).
`evaluate`, `bodies`, `choices` and `budget` reach the elaborator only through their `el` parameter.
Outside the room, `compiler/limits.py` (the budgets a file may spend) and `compiler/names.py` (the
names lowering accepts) serve it; in the compiler, this room alone reads the AST.
"""

from cnnc.compiler.elaborate.apply import Elaborator
from cnnc.compiler.elaborate.bind import describe_call
from cnnc.compiler.elaborate.entry import default_network, elaborate, network_names
from cnnc.compiler.elaborate.state import (
    Abort,
    ChoicePoint,
    Decider,
    Elaboration,
    Fail,
    Frame,
    numbered,
)

__all__ = [
    "Abort",
    "ChoicePoint",
    "Decider",
    "Elaboration",
    "Elaborator",
    "Fail",
    "Frame",
    "default_network",
    "describe_call",
    "elaborate",
    "network_names",
    "numbered",
]
