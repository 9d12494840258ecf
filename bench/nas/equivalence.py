"""Which cells of `cell.cnn` compute the same function: classes of members by what they compute.

The members are pairwise distinct as graphs (the cell's DAG with every edge present has one
topological order), but some compute the same thing: with `skip_connect` on edge 1←0, node 1 *is*
node 0, so the ops on 2←0 and 2←1 may swap, and so may those on 3←0 and 3←1. `computation(key)`
builds what a cell computes as a networkx DiGraph: each conv an op node of its own (its weights), a
pool one node per input (no weights: equal inputs give equal values), a skip its input itself, and
a node of several terms a `sum` node (a term that comes twice weighs 2). Two members are
equivalent when those graphs are isomorphic (op labels and term weights kept). `classes(keys)`
groups the keys so: Weisfeiler-Lehman hashes bucket them, `is_isomorphic` decides inside a bucket.

NAS-Bench-201's own `to_unique_str` merges more: it compares text, so a conv reached through a
skip from node 1 and a conv of its own on another edge read alike although their weights differ
(it makes 496 classes of these 729 members, 24 of which mix members of different parameter
counts).
"""

from __future__ import annotations

import warnings

import networkx as nx
import table


def computation(key: str) -> nx.DiGraph:
    """What the cell of `key` computes (module docstring)."""
    g = nx.DiGraph()
    g.add_node("x0", op="input")
    values = ["x0"]  # the graph node that holds each cell node's value
    for j, incoming in enumerate(table.parse_key(key), 1):
        terms = [_term(g, op, values[i], f"{j}_{i}") for op, i in incoming]
        values.append(terms[0] if len(terms) == 1 else _sum(g, terms, f"sum{j}"))
    g.add_node("out", op="output")
    g.add_edge(values[-1], "out", weight=1)
    return g


def _term(g: nx.DiGraph, op: str, source: str, edge: str) -> str:
    if op == "skip_connect":
        return source
    name = f"pool({source})" if op == "avg_pool_3x3" else f"conv{edge}"
    if name not in g:
        g.add_node(name, op=op)
        g.add_edge(source, name, weight=1)
    return name


def _sum(g: nx.DiGraph, terms: list[str], name: str) -> str:
    g.add_node(name, op="sum")
    for term in terms:
        weight = g.edges[term, name]["weight"] + 1 if g.has_edge(term, name) else 1
        g.add_edge(term, name, weight=weight)
    return name


def classes(keys) -> list[list[str]]:
    """The keys grouped by equivalence, each group in the order of `keys`."""
    buckets: dict[str, list[tuple[str, nx.DiGraph]]] = {}
    for key in keys:
        g = computation(key)
        with warnings.catch_warnings():  # networkx 3.5 changed directed graphs' hashes: only
            warnings.simplefilter("ignore", UserWarning)  # buckets here, any version's will do
            digest = nx.weisfeiler_lehman_graph_hash(g, node_attr="op", edge_attr="weight")
        buckets.setdefault(digest, []).append((key, g))
    found = []
    for members in buckets.values():
        found += _split(members)
    return found


def _split(members: list[tuple[str, nx.DiGraph]]) -> list[list[str]]:
    """The keys of one hash bucket, grouped by isomorphism."""
    groups: list[tuple[nx.DiGraph, list[str]]] = []
    for key, g in members:
        for first, keys in groups:
            if nx.is_isomorphic(first, g, node_match=_same_op, edge_match=_same_weight):
                keys.append(key)
                break
        else:
            groups.append((g, [key]))
    return [keys for _, keys in groups]


def _same_op(a: dict, b: dict) -> bool:
    return a["op"] == b["op"]


def _same_weight(a: dict, b: dict) -> bool:
    return a["weight"] == b["weight"]
