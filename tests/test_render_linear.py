"""Rendering is linear in the nodes (issue 12): no step scans every node or cluster once per cluster.

Timing belongs in `bench/scaling.py`; here the work is counted. A stack of residual blocks (one
cluster each) is drawn while the calls that would make drawing quadratic are counted: a walk over all
the graph's nodes, and graphviz's `subgraph(name=…)` context, which copies the whole body drawn so far
into every new cluster.
"""

from __future__ import annotations

import graphviz
import pytest

from cnnc.compiler.elaborate import elaborate
from cnnc.compiler.ir import Graph
from cnnc.compiler.render.dot import to_dot
from cnnc.dsl.imports import load


def residual(blocks: int) -> Graph:
    text = (
        "block Res {\n    return (in -> Conv(8, 3, pad = 1) -> ReLU) + in\n}\n"
        f"network N {{\n    input [8, 8, 8]\n    return in -> [Res for i in range({blocks})]\n}}\n"
    )
    result = elaborate(load(f"residual_{blocks}.cnn", text=text))
    assert result.ok
    return result.graph


@pytest.mark.parametrize("depth", [None, 1])
def test_drawing_walks_the_nodes_a_fixed_number_of_times(monkeypatch, depth):
    walks = []
    original = Graph.nodes_in_order
    monkeypatch.setattr(Graph, "nodes_in_order", lambda self: walks.append(1) or original(self))
    counts = []
    for blocks in (20, 80):
        graph = residual(blocks)
        walks.clear()
        to_dot(graph, depth=depth)
        counts.append(len(walks))
    assert counts[0] == counts[1], f"nodes walked {counts} times for 20 and 80 clusters"


def test_clusters_are_not_drawn_through_the_copying_subgraph_context(monkeypatch):
    contexts = []
    original = graphviz.Digraph.subgraph

    def subgraph(self, graph=None, **kwargs):
        contexts.append(graph is None)
        return original(self, graph, **kwargs)

    monkeypatch.setattr(graphviz.Digraph, "subgraph", subgraph)
    to_dot(residual(10))
    assert contexts and not any(contexts)
