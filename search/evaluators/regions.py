"""Mixed regions: a DARTS decision whose options are small subgraphs (NAS-Bench-201's edge ops).

Input: the members a decision's options give (`darts.variants`: every other decision the same).
Output: its `Site`s, the places in the network where the options differ, or None when it does not
mix this way; and, for a member, a `MixedSteps` network that runs each site's options side by side.

Contract of `sites(members)`:
- a node *differs* when its label path is not in every member's graph: each option has nodes of its
  own (`cell.e1_0.avgpool`). A node on a path of every graph whose op, arguments or type change
  (a width, a kernel size) is no site's: such a decision does not mix here (a width's change
  reaches every later layer; one changed layer alone is `darts.mixed_path`'s case). In each graph
  the differing nodes fall into connected
  parts; each part must read exactly one node outside it (its *source*) and have exactly one node
  read outside it or returned (its *output*). A part is named by its source's path and its
  output's readers' paths: every member must have the same names, one part each.
- every other node is the same in every member (op, arguments, type, and its inputs, a part's
  output counting as that part's name), the parts' outputs have one type in every member, and
  their nodes lower to modules or merges (no bare parameters).
- a decision named in several places (NAS-Bench-201's cell used twice, one genotype) has one site
  per place; a decision that changes one layer is `darts.mixed_path`'s case, not this one.

A site runs as Σ softmax(α)ᵢ · regionᵢ(source), each region the option's own nodes (their weights
the supernet's shared ones, nothing in place: every option reads the same source).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
from torch import nn

from cnnc.compiler.lower import modules
from cnnc.compiler.lower.steps import ADD_INTO, CAT, MODULE, StepModule, StepWalk, with_frees
from cnnc.compiler.ops import Lowering

OUTPUT = ("<output>",)  # a part's output that the network returns, as a reader


@dataclass(frozen=True)
class Site:
    """One place a decision changes: its nodes in each option's graph (in the options' order)."""

    source: tuple[str, ...]  # the path of the node it reads
    readers: frozenset  # the paths of the nodes that read its output (OUTPUT: returned)
    nodes: tuple[frozenset, ...]  # per option: the ids of its nodes in that option's graph
    sources: tuple[int, ...]  # per option: the id of its source
    outputs: tuple[int, ...]  # per option: the id of its output node


def sites(members: list) -> tuple[Site, ...] | None:
    """The sites of a decision over `members`, its options' members (module docstring); None
    when the decision does not mix as regions."""
    if len(members) < 2 or not all(m.ok for m in members):
        return None
    graphs = [m.graph for m in members]
    differ, changed = differing_paths(graphs)
    if not differ or changed:
        return None
    parts = [named_parts(g, differ) for g in graphs]
    if any(p is None for p in parts) or any(p.keys() != parts[0].keys() for p in parts):
        return None
    if not same_outside(graphs, parts) or not lowerable(graphs, parts):
        return None
    found = []
    for name in sorted(parts[0], key=str):
        ids, sources, outs = zip(*(p[name] for p in parts))
        if len({g.node(o).type for g, o in zip(graphs, outs)}) != 1:
            return None
        found.append(Site(name[0], name[1], ids, sources, outs))
    return tuple(found)


def differing_paths(graphs: list) -> tuple[set, set]:
    """The label paths not in every graph, and those in every graph whose node's op, arguments
    or type change between them."""
    by_path = [{n.path: n for n in g.nodes_in_order()} for g in graphs]
    common = set(by_path[0]).intersection(*by_path[1:])
    changed = {
        path
        for path in common
        if len({(b[path].op, repr(b[path].args), b[path].type) for b in by_path}) > 1
    }
    return set().union(*by_path) - common, changed


def readers_of(graph) -> dict[int, list]:
    """{node id: the nodes that read it}."""
    readers: dict[int, list] = {}
    for node in graph.nodes_in_order():
        for i in node.inputs:
            readers.setdefault(i, []).append(node)
    return readers


def named_parts(graph, differ: set) -> dict | None:
    """{(source path, reader paths): (node ids, source id, output id)} of the connected parts of the nodes of
    `graph` on the paths `differ`; None when a part reads or is read at more than one node, or
    two parts have one name."""
    ids = {n.id for n in graph.nodes_in_order() if n.path in differ}
    readers = readers_of(graph)
    returned = {i for _, i in graph.outputs}
    named = {}
    for part in connected(graph, ids, readers):
        sources = {i for n in part for i in graph.node(n).inputs if i not in part}
        outs = [
            n for n in part if n in returned or any(r.id not in part for r in readers.get(n, ()))
        ]
        if len(sources) != 1 or len(outs) != 1:
            return None
        (source,) = sources
        paths = {r.path for r in readers.get(outs[0], ()) if r.id not in part}
        name = (
            graph.node(source).path,
            frozenset(paths | ({OUTPUT} if outs[0] in returned else set())),
        )
        if name in named:
            return None
        named[name] = (frozenset(part), source, outs[0])
    return named


def connected(graph, ids: set[int], readers: dict) -> list[set[int]]:
    """The connected parts of the nodes `ids` (edges between two of them, either way)."""
    parts, seen = [], set()
    for start in sorted(ids):
        if start in seen:
            continue
        part, todo = set(), [start]
        while todo:
            n = todo.pop()
            if n in part:
                continue
            part.add(n)
            near = [*graph.node(n).inputs, *(r.id for r in readers.get(n, ()))]
            todo.extend(i for i in near if i in ids and i not in part)
        seen |= part
        parts.append(part)
    return parts


def same_outside(graphs: list, parts: list) -> bool:
    """Whether the nodes outside the parts are the same in every graph, a part's output read as
    the part's name."""
    seen = None
    for graph, named in zip(graphs, parts):
        inside = {i for ids, _, _ in named.values() for i in ids}
        name_of = {out: name for name, (_, _, out) in named.items()}

        def ref(i, graph=graph, name_of=name_of):
            return ("part", name_of[i]) if i in name_of else graph.node(i).path

        nodes = {
            (n.path, n.op, repr(n.args), n.type, tuple(ref(i) for i in n.inputs))
            for n in graph.nodes_in_order()
            if n.id not in inside
        }
        outputs = tuple((k, ref(i)) for k, i in graph.outputs)
        if seen is not None and seen != (nodes, outputs):
            return False
        seen = (nodes, outputs)
    return True


def lowerable(graphs: list, parts: list) -> bool:
    """Whether every node of every part lowers to a module or a merge."""
    bare = (Lowering.INPUT, Lowering.PARAMETER)
    return all(
        modules.kind(graph.node(i)) not in bare
        for graph, named in zip(graphs, parts)
        for ids, _, _ in named.values()
        for i in ids
    )


# ---------------------------------------------------------------------------------------------
# Running them


class Region(nn.Module):
    """One option of a site: its nodes run on the source, with the layers `layer(graph, path)`
    makes (the supernet's shared weights; nothing in place). A sum the IR would accumulate in
    place is added anew: the source is every option's."""

    def __init__(self, graph, ids: frozenset, source: int, out: int, layer):
        super().__init__()
        self.layers = nn.ModuleDict()
        steps = []
        for kind, node_id, ins, target in StepWalk(graph).run():
            if node_id not in ids:
                continue
            if kind == MODULE:
                key = str(len(self.layers))
                self.layers[key] = layer(graph, graph.node(node_id).path)
                target = key
            elif kind == ADD_INTO:
                kind, target = None, operator.add  # folded left, out of place
            steps.append((kind, node_id, ins, target))
        self._steps = tuple(steps)
        self._source, self._out = source, out

    def forward(self, x):
        values = {self._source: x}
        for kind, out, ins, target in self._steps:
            args = [values[i] for i in ins]
            if kind == MODULE:
                value = self.layers[target](*args)
            elif kind == CAT:
                value = torch.cat(args, dim=1)
            else:
                value = args[0]
                for other in args[1:]:
                    value = target(value, other)
            values[out] = value
        return values[self._out]


MIXED = "darts-mixed"  # where the sites' modules live in a network (no label has a `-`)


class MixedSteps(StepModule):
    """A member's network whose sites (`(node ids, source id, output id)` in its graph, one per
    module of `root.get_submodule(MIXED)`) run as one module step each, at the place of the site's
    first node: the site's own nodes are not run."""

    def __init__(self, root: nn.Module, graph, placed: list[tuple[frozenset, int, int]]):
        super().__init__(root, graph)
        site_of = {i: k for k, (ids, _, _) in enumerate(placed) for i in ids}
        order, done = [], set()
        for kind, out, ins, target, _ in self._steps:
            k = site_of.get(out)
            if k is None:
                order.append((kind, out, ins, target))
            elif k not in done:
                done.add(k)
                _, source, site_out = placed[k]
                order.append((MODULE, site_out, (source,), f"{MIXED}.{k}"))
        self._steps = with_frees(order, graph)
