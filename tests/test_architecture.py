"""search/architecture.py: members are one architecture when their graphs are isomorphic (labels
on ops and arguments, commutative merges unordered, Concat ordered), counted by `cnnc space`."""

from __future__ import annotations

import networkx as nx
from conftest import run_cli

from cnnc.search import architecture
from cnnc.search.architecture import Architectures, key, labelled
from cnnc.search.space import graph_hash, load_space, walk

HEAD = "-> GlobalAvgPool -> Flatten -> Linear(10)"


def network(merge: str) -> str:
    return f"""
network order {{
    input [3, 8, 8]
    a = in -> Conv(4, 1)
    b = in -> Conv(4, 3, pad = 1)
    return {merge} {HEAD}
}}
"""


def size_of(text: str):
    return walk(load_space("order.cnn", text=text), keep=True)


def test_the_order_of_an_additions_operands_is_one_architecture():
    size, members = size_of(network("choice(a + b, b + a, a * b, b * a)"))
    assert (size.members, size.distinct) == (4, 2)  # a sum and a product
    one, two = (m.graph for m in members[:2])
    assert str(one) != str(two) and graph_hash(one) == graph_hash(two)


def test_the_order_of_a_concats_operands_is_another_architecture():
    size, _ = size_of(network("choice(concat(a, b), concat(b, a))"))
    assert (size.members, size.distinct) == (2, 2)


def test_labels_and_identities_do_not_make_another_architecture():
    text = network(
        "choice(a -> ReLU, a -> relu: ReLU, a -> Identity -> ReLU, a -> ReLU -> Identity, "
        "(a -> ReLU) + (b -> Zero), a -> ReLU6)"
    )
    size, _ = size_of(text)
    assert (size.members, size.distinct) == (6, 2)  # ReLU five ways, and ReLU6


def test_two_equal_pools_of_one_tensor_are_one_pool_and_two_convolutions_are_two():
    pools = "(a -> MaxPool(3, stride = 1, pad = 1))"
    convs = "(a -> Conv(4, 1))"
    size, _ = size_of(network(f"choice({pools} + {pools}, {pools} + a, a + a)"))
    assert size.distinct == 3  # pool + pool reads one pool twice: not `pool + a`
    _, members = size_of(network(f"choice({convs} + {convs}, a)"))
    ops = [label.split("(")[0] for label in labelled(members[0].graph).labels.values()]
    assert ops.count("Conv") == 3  # `a` and two convolutions of it, each with its own weights


def test_a_shared_key_is_never_taken_for_a_match():
    _, members = size_of(network("choice(a + b, concat(a, b) -> Conv(4, 1))"))
    seen = Architectures()
    first, second = (m.graph for m in members)
    assert seen.add(first) == (0, True) and seen.add(second) == (1, True)
    seen._buckets = {key(labelled(second)): seen._buckets[key(labelled(first))]}  # a collision
    assert seen.add(second) == (2, True)


def test_cnnc_space_reports_members_and_distinct_architectures(tmp_path, capsys):
    path = tmp_path / "order.cnn"
    path.write_text(network("choice(a + b, b + a, concat(a, b) -> Conv(4, 1))"))
    code, out, err = run_cli(["space", path, "--samples", "0"], capsys)
    assert code == 0, err
    assert "size: 3 members, 2 distinct architectures" in out


def labelled_cycle(n: int, parts: int) -> nx.DiGraph:
    """`parts` directed rings of `n // parts` equal nodes each: every node looks alike to the hash."""
    g = nx.DiGraph()
    size = n // parts
    for p in range(parts):
        for i in range(size):
            g.add_node(p * size + i, label="relu")
            g.add_edge(p * size + i, p * size + (i + 1) % size, label="0")
    return g


def test_an_exact_match_that_runs_out_of_steps_answers_two_architectures():
    one_ring, rotated = (
        labelled_cycle(12, 1),
        nx.relabel_nodes(labelled_cycle(12, 1), {i: (i + 5) % 12 for i in range(12)}),
    )
    assert architecture.matches(one_ring, rotated)
    assert not architecture.matches(one_ring, rotated, steps=3)  # bounded: taken as distinct
    # the hash cannot tell one ring of 12 from two of 6; the exact match can, within its steps
    two_rings = labelled_cycle(12, 2)
    g1, g2 = (
        architecture.Labelled(
            {n: d["label"] for n, d in g.nodes(data=True)},
            tuple((a, b, d["label"]) for a, b, d in g.edges(data=True)),
        )
        for g in (one_ring, two_rings)
    )
    assert key(g1) == key(g2)
    assert not architecture.matches(one_ring, two_rings)
