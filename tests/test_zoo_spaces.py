"""The zoo's search spaces say their sizes in a comment (`# `cnnc space …`: N members, M distinct
architectures`); `cnnc space` must find the same numbers. The MobileNet and ProxylessNAS counts are
also checked by hand arithmetic: a product over blocks, a sum over stage depths."""

from __future__ import annotations

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
