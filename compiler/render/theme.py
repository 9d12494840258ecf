"""Colours and fonts of a diagram: one frozen `Theme` per look, fills keyed by op family.

Families come from the op registry (`OpSpec.family`, a `Family`): conv | linear | norm | act | pool |
resize | merge | reshape | io. A family missing from `fills` is drawn with `fills["other"]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from cnnc.dsl.records import record


@record
class Theme:
    name: str
    background: str
    text: str
    muted: str  # secondary text: names, counts, edge shapes
    edge: str
    line: str  # node borders
    fills: Mapping[str, str]  # op family → node fill
    block_fill: str  # a collapsed scope drawn as one box
    cluster_fills: tuple[str, ...]  # cluster fill by nesting level (cycled)
    cluster_line: str
    error: str  # the failing node, its edges and its headline
    error_fill: str
    unknown: str  # nodes and edges downstream of a failure (no shape)
    font: str = "Helvetica,Arial,sans-serif"

    def fill(self, family: str) -> str:
        return self.fills.get(family, self.fills["other"])

    def cluster_fill(self, level: int) -> str:
        return self.cluster_fills[level % len(self.cluster_fills)]


LIGHT = Theme(
    name="light",
    background="white",
    text="#1a1a1a",
    muted="#5f6368",
    edge="#5f6368",
    line="#7a7a7a",
    fills=MappingProxyType(
        {
            "conv": "#cfe2f3",
            "linear": "#d9d2e9",
            "norm": "#fff2cc",
            "act": "#d9ead3",
            "pool": "#fce5cd",
            "resize": "#d0e0e3",
            "merge": "#ffffff",
            "reshape": "#eeeeee",
            "io": "#ffffff",
            "other": "#eeeeee",
        }
    ),
    block_fill="#dde7f0",
    cluster_fills=("#f6f8fa", "#eceff3"),
    cluster_line="#b0b7c0",
    error="#cc0000",
    error_fill="#fde0e0",
    unknown="#b0b0b0",
)

DARK = Theme(
    name="dark",
    background="#1e1e1e",
    text="#e6e6e6",
    muted="#a0a0a0",
    edge="#a0a0a0",
    line="#8a8a8a",
    fills=MappingProxyType(
        {
            "conv": "#1f3b57",
            "linear": "#3b2f57",
            "norm": "#4d4220",
            "act": "#23432a",
            "pool": "#553a20",
            "resize": "#20474d",
            "merge": "#2b2b2b",
            "reshape": "#3a3a3a",
            "io": "#2b2b2b",
            "other": "#3a3a3a",
        }
    ),
    block_fill="#2c3e50",
    cluster_fills=("#262a30", "#2e333a"),
    cluster_line="#5a626c",
    error="#ff5c5c",
    error_fill="#4a1f1f",
    unknown="#6a6a6a",
)

THEMES: Mapping[str, Theme] = MappingProxyType({t.name: t for t in (LIGHT, DARK)})
