"""The zoo's search spaces say their sizes in a comment (`# `cnnc space …`: N members, M distinct
architectures`); `cnnc space` must find the same numbers. The MobileNet and ProxylessNAS counts are
also checked by hand arithmetic: a product over blocks, a sum over stage depths."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from conftest import ROOT, run_cli

SPACES = ROOT / "zoo" / "spaces"
CLAIM = re.compile(
    r"`cnnc space(?P<args>[^`]*)`: (?P<members>[\d,]+) members"
    r"(?:, (?P<distinct>[\d,]+) distinct architectures)?"
)


def claim(name: str) -> dict:
    comments = " ".join(
        line.lstrip("# ").strip()
        for line in (SPACES / name).read_text().splitlines()
        if line.startswith("#")
    )
    found = CLAIM.search(comments)
    assert found, f"{name} states no `cnnc space` count"
    number = lambda text: int(text.replace(",", "")) if text else None  # noqa: E731
    return {
        "args": found["args"].split(),
        "members": number(found["members"]),
        "distinct": number(found["distinct"]),
    }


def measured(name: str, args: list[str], seconds: float, capsys) -> dict:
    command = ["space", SPACES / name, *args, "--samples", "0", "--format", "json"]
    code, out, err = run_cli([*command, "--walk-seconds", seconds], capsys)
    assert code == 0, err
    return json.loads(out)["size"]


@pytest.mark.parametrize(
    "name, members",
    [
        ("mobilenet_space.cnn", (12 + 12**2 + 12**3) ** 3),  # 2 × 3 × 2 a block, 1-3 blocks a stage
        ("proxyless_space.cnn", 6**21),  # 3 kernels × 2 expansions, 21 blocks
        ("nasbench201.cnn", 5**6),  # 5 ops on 6 edges
    ],
)
def test_each_space_has_the_size_its_comment_states(name, members, capsys):
    stated = claim(name)
    # a space whose distinct architectures are stated is walked to its end (NAS-Bench-201's
    # 15,625 members: the slowest test here, ~20 s); the others are composed after a short walk
    seconds = 600 if stated["distinct"] is not None else 0.1
    size = measured(name, stated["args"], seconds, capsys)
    assert size["exact"] and size["members"] == stated["members"] == members
    assert size["distinct"] == stated["distinct"]
    if stated["distinct"] is None:  # too many to walk: composed
        assert size["counted_by"] == "composed"


POOL = "AvgPool(3, stride = 1, pad = 1, count_include_pad = false)"
NB201 = {
    "Zero": "none",
    "Identity": "skip_connect",
    "ReLUConvBN(c, 1)": "nor_conv_1x1",
    "ReLUConvBN(c, 3)": "nor_conv_3x3",
    POOL: "avg_pool_3x3",
}
EDGES = ("edge0_1", "edge0_2", "edge1_2", "edge0_3", "edge1_3", "edge2_3")  # (i, j) by j, then i


def unique_str(ops: dict) -> str:
    """NAS-Bench-201's `CellStructure.to_unique_str(consider_zero=True)`, on cnnc's edge names."""
    nodes, edges = {0: "0"}, iter(EDGES)
    for j in (1, 2, 3):
        terms = []
        for i in range(j):
            op = NB201[ops[next(edges)]]
            if op == "none" or nodes[i] == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(nodes[i])
            else:
                terms.append(f"({nodes[i]})@{op}")
        nodes[j] = "+".join(sorted(terms))
    return nodes[3]


def test_nasbench201s_own_count_is_6466_unique_strings():
    cells = itertools.product(NB201, repeat=6)
    assert len({unique_str(dict(zip(EDGES, ops))) for ops in cells}) == 6_466


def test_nasbench201_reads_a_shared_node_and_a_fresh_layer_alike_and_cnnc_does_not():
    """The comment's first difference: node 3 = node 1 + pool(node 1), node 1 = conv1x1(in), or
    node 3 = a conv1x1(in) of its own + pool(node 1): one string, two architectures."""
    from cnnc.search.space import fixed, graph_hash, load_space

    space = load_space(SPACES / "nasbench201.cnn", "cell")
    conv = "ReLUConvBN(c, 1)"
    shared = dict(zip(EDGES, (conv, "Zero", POOL, "Zero", "Identity", "Identity")))
    fresh = dict(zip(EDGES, (conv, "Zero", POOL, conv, "Zero", "Identity")))
    assert unique_str(shared) == unique_str(fresh)
    one, two = (space.member(fixed(ops)).graph for ops in (shared, fresh))
    assert graph_hash(one) != graph_hash(two)
