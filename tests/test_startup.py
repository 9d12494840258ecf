"""Start-up: the analysis path imports nothing heavy, and the grammar comes from lark's cache.

How fast it starts is measured in bench/analysis.py, never asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT

HEAVY = ("torch", "networkx", "optuna", "graphviz", "numpy", "matplotlib", "sklearn")


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={**os.environ, **env},
    )


@pytest.mark.parametrize("command", ["check", "summary"])
def test_check_and_summary_import_no_heavy_package(command):
    code = (
        f"import sys; from cnnc.cli import main; code = main(['{command}', 'zoo/resnet152.cnn']); "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), code)"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[] 0"


def test_users_without_networkx_equal_networkx_successors():
    import cnnc.api

    graph = cnnc.api.graph(ROOT / "zoo" / "googlenet.cnn")
    assert [graph.users(n.id) for n in graph.nodes_in_order()] == [
        sorted(graph.nx.successors(n.id)) for n in graph.nodes_in_order()
    ]


@pytest.fixture
def fresh_parser(monkeypatch, tmp_path):
    """The parser built anew, its cache under `tmp_path`, no AST remembered."""
    from cnnc.dsl import parse

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(parse, "_PARSED", {})
    parse._parser.cache_clear()
    yield parse
    parse._parser.cache_clear()


def test_the_second_start_loads_the_grammar_from_the_cache(fresh_parser, tmp_path, monkeypatch):
    import lark.lark

    first = fresh_parser.parse_text("network n { input [3, 8, 8] return in -> Conv(4, 3) }")
    (cached,) = (tmp_path / "cnnc").glob("grammar-*.lark")
    assert cached.stat().st_size > 0
    fresh_parser._parser.cache_clear()
    fresh_parser._PARSED.clear()

    def no_grammar_building(*args, **kwargs):
        raise AssertionError("the grammar was rebuilt instead of read from the cache")

    monkeypatch.setattr(lark.lark, "load_grammar", no_grammar_building)
    second = fresh_parser.parse_text("network n { input [3, 8, 8] return in -> Conv(4, 3) }")
    assert second == first


def test_an_unwritable_cache_dir_falls_back_silently(fresh_parser, tmp_path, monkeypatch, capfd):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # `cnnc/` cannot be made under a file
    module = fresh_parser.parse_text("network n { input [3, 8, 8] return in -> Conv(4, 3) }")
    assert len(module.items) == 1
    assert capfd.readouterr().err == ""


def test_a_corrupt_cache_file_is_rebuilt(fresh_parser, tmp_path, capfd):
    fresh_parser.parse_text("network n { input [3] return in }")
    (cached,) = (tmp_path / "cnnc").glob("grammar-*.lark")
    cached.write_bytes(b"garbage\n")
    fresh_parser._parser.cache_clear()
    fresh_parser._PARSED.clear()
    module = fresh_parser.parse_text("network n { input [3, 8, 8] return in -> Conv(4, 3) }")
    assert len(module.items) == 1
    assert capfd.readouterr().err == ""
    assert cached.read_bytes() != b"garbage\n"  # written again, whole


def test_a_file_parsed_before_in_the_process_is_not_parsed_again():
    from cnnc.dsl.diagnostics import CnncError
    from cnnc.dsl.parse import parse_text

    text = "network cached { input [3, 8, 8] return in -> Conv(4, 3) }"
    first = parse_text(text, path="cached.cnn")
    assert parse_text(text, path="cached.cnn") is first
    assert parse_text(text, path="other.cnn") is not first  # spans name the path
    assert parse_text(text + "\n", path="cached.cnn") is not first
    for _ in range(2):  # errors are raised each time, never remembered as results
        with pytest.raises(CnncError):
            parse_text("network broken { input [3] return in -> }", path="broken.cnn")
