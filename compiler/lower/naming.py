"""The names a lowered network takes in torch: its class, its module paths, and their containers.

Every lowering (`fx.py`, `steps.py`, `source.py`) names a network the same way, so this module sits
below all three:
- `class_name(network)`: the class of the lowered network (`mobilenet_v2` → `MobilenetV2`).
- `check_names(graph)`: each part of each module path is a whitelisted name (E0208, E0209: torch.fx
  pastes it into `forward` unescaped) that is free to become an attribute (E0207: not one of
  `nn.Module`'s own, nor of the network's class, `CnncModule`).
- `Block`: the container of one block instance's modules, printed with the block's call.
"""

from __future__ import annotations

import functools
import keyword

from torch import fx, nn

from cnnc.compiler.ir import Graph
from cnnc.compiler.lower import modules
from cnnc.compiler.names import path_problem
from cnnc.compiler.ops import Lowering
from cnnc.dsl.diagnostics import CnncError, error

# what `fx.CnncModule` adds to a GraphModule's attributes (tests/test_lower.py checks the list)
NETWORK_ATTRIBUTES = frozenset({"cnnc_graph", "cnnc_summary", "cnnc_source", "_repr_svg_"})


class Block(nn.Module):
    """Holds the modules of one block instance; the network's forward calls them one by one."""

    def __init__(self, title: str):
        super().__init__()
        # `print(model)` shows the title: a control character in a string argument stays escaped
        if not title.isprintable():
            title = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in title)
        name, _, rest = title.partition("(")
        self.block_name = name
        self.block_args = rest.removesuffix(")")

    def _get_name(self) -> str:
        return self.block_name  # print(model) shows `(0): Bottleneck(` as torchvision does

    def extra_repr(self) -> str:
        return self.block_args

    def forward(self, *inputs):
        raise TypeError(
            f"`{self.block_name}` is a container of the network's modules, not a layer of "
            "its own: call the whole network"
        )


def class_name(network: str) -> str:
    """The class of a lowered network: `resnet50` → `Resnet50`, `mobilenet_v2` → `MobilenetV2`.
    Always an ASCII identifier that is no keyword (`network none` is `NetNone`, not `None`)."""
    parts = "".join(c if c.isascii() and c.isalnum() else "_" for c in network).split("_")
    name = "".join(p[:1].upper() + p[1:] for p in parts if p)
    usable = name[:1].isalpha() and not keyword.iskeyword(name)
    return name if usable else f"Net{name}"


@functools.cache
def reserved_names(top_level: bool) -> frozenset[str]:
    """Attribute names a submodule may not take: torch's own (`eval`, `forward`, `to`, …)."""
    names = set(dir(nn.Sequential())) | set(dir(Block("Block")))
    if top_level:
        names |= set(dir(fx.GraphModule(nn.Module(), fx.Graph()))) | NETWORK_ATTRIBUTES
    return frozenset(names)


def check_names(graph: Graph) -> None:
    """Each part of a module path must be a whitelisted name (E0208, E0209: torch.fx pastes it
    into `forward` unescaped, so this is what keeps a crafted graph from running code) and free to
    become a Python attribute of this torch (E0207)."""
    nested, top = reserved_names(False), reserved_names(True)
    for node in graph.nodes_in_order():
        if modules.kind(node) in (Lowering.INPUT, Lowering.MERGE):
            continue
        problem = path_problem(node.path)
        if problem is not None:
            raise CnncError(
                error(
                    problem.code,
                    problem.message,
                    node.span,
                    "lowered as a module named here",
                    helps=(problem.help,),
                )
            )
        for depth, part in enumerate(node.path):
            if part in (top if depth == 0 else nested):
                raise CnncError(
                    error(
                        "E0207",
                        f"the module name `{part}` (in `{node.name}`) is taken by nn.Module",
                        node.span,
                        "lowered as a module named here",
                        helps=(f"choose another label, e.g. `{part}_layer`",),
                    )
                )
