"""Short human descriptions of nodes: `Conv 3×3/2, 64`, `MaxPool 3×3/2`, `Linear, 4096`, `+`.

One describer for tables, diagrams and reports: the registry's (`ops.describe`, from each op's
`label` and `short`), here applied to a node.
"""

from __future__ import annotations

from cnnc.compiler.ir import Node
from cnnc.compiler.ops import describe as describe_op


def describe(node: Node) -> str:
    return describe_op(node.op, node.args)
