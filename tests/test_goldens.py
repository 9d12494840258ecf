"""Goldens for generated text: the standalone PyTorch source and the DOT of a diagram.

A change to either shows up as a diff of these files; `pytest --bless` rewrites them, and the diff
is reviewed like code.
"""

from __future__ import annotations

import pytest
from conftest import ROOT

from cnnc import api

GOLDEN = ROOT / "tests" / "golden"

CASES = [
    ("resnet18.py", lambda: _source("zoo/resnet18.cnn")),
    ("inception_bottleneck.py", lambda: _source("zoo/inception_module.cnn", "bottleneck")),
    ("inception_bottleneck.dot", lambda: _dot("zoo/inception_module.cnn", "bottleneck", None)),
    ("resnet50_depth1.dot", lambda: _dot("zoo/resnet50.cnn", None, 1)),
]


def _source(path: str, network: str | None = None) -> str:
    pytest.importorskip("torch")
    from cnnc.compiler.lower.source import to_source

    return to_source(api.graph(path, network), seed=0, origin=path)


def _dot(path: str, network: str | None, depth: int | None) -> str:
    from cnnc.compiler.render.dot import to_dot

    return to_dot(api.graph(path, network), depth=depth)


@pytest.mark.parametrize("name, make", CASES, ids=[c[0] for c in CASES])
def test_generated_text_matches_golden(name, make, in_root, bless):
    text = make()
    golden = GOLDEN / name
    if bless or not golden.exists():
        golden.write_text(text)
    assert text == golden.read_text(), f"{name} changed: review the diff, then `pytest --bless`"
