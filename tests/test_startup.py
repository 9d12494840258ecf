"""Start-up: the analysis path imports nothing heavy, the grammar comes from lark's cache, and a
file parsed before comes from the AST cache (no lark at all).

How fast it starts is measured in bench/analysis.py, never asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT

from cnnc.dsl import astcache, syntax

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


def test_the_networkx_view_is_frozen_and_names_each_input_port():
    """`graph.nx` is the IR's graph for networkx's algorithms: built once, frozen, and an edge per
    input of each node carrying that input's position (`port`)."""
    import networkx as nx

    import cnnc.api

    graph = cnnc.api.graph(ROOT / "zoo" / "googlenet.cnn")
    assert graph.nx is graph.nx and nx.is_frozen(graph.nx)
    assert sorted(graph.nx.nodes) == [n.id for n in graph.nodes_in_order()]
    assert {(u, v): port for u, v, port in graph.nx.edges(data="port")} == {
        (i, n.id): k for n in graph.nodes_in_order() for k, i in enumerate(n.inputs)
    }


@pytest.fixture
def fresh_parser(monkeypatch, tmp_path):
    """The parser built anew, its cache under `tmp_path`, no AST remembered."""
    from cnnc.dsl import parse

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(parse, "_PARSED", {})
    syntax._parser.cache_clear()
    yield parse
    syntax._parser.cache_clear()


def test_the_second_start_loads_the_grammar_from_the_cache(fresh_parser, tmp_path, monkeypatch):
    import lark.lark

    first = fresh_parser.parse_text("network n { input [3, 8, 8] return in -> Conv(4, 3) }")
    (cached,) = (tmp_path / "cnnc").glob("grammar-*.lark")
    assert cached.stat().st_size > 0
    syntax._parser.cache_clear()
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
    syntax._parser.cache_clear()
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


# -- the AST cache: a file parsed before needs no lark --------------------------------------------

RESNET = ROOT / "zoo" / "resnet152.cnn"


# imported by nothing on the way of a `cnnc summary` of a file seen before: each costs milliseconds
# at start-up (lark and its parse most; `dataclasses` and `inspect`, `typing`, `fractions` with
# `decimal`, `tempfile` a few each), which is most of what such a process would spend
LIGHT = (
    "lark",
    "dataclasses",
    "inspect",
    "typing",
    "fractions",
    "decimal",
    "tempfile",
    "hashlib",
    "shutil",
    "json",
    "csv",  # argparse's terminal width (cli.Formatter), --format json and csv
)


def test_a_file_seen_before_is_checked_without_importing_lark(tmp_path):
    code = (
        "import sys; from cnnc.cli import main; code = main(['summary', 'zoo/resnet152.cnn']); "
        f"print([m for m in {LIGHT!r} if m in sys.modules], code)"
    )
    first = run_python(code, XDG_CACHE_HOME=str(tmp_path))
    second = run_python(code, XDG_CACHE_HOME=str(tmp_path))
    assert "'lark'" in first.stdout.splitlines()[-1], first.stderr
    assert second.stdout.splitlines()[-1] == "[] 0", second.stderr
    assert first.stdout.splitlines()[:-1] == second.stdout.splitlines()[:-1]  # the same summary
    assert len(list((tmp_path / "cnnc" / "ast").glob("*.ast"))) == 2  # resnet152.cnn and its family


def _texts():
    """Every zoo file, and one with comments, odd spacing and every kind of literal."""
    texts = [p.read_text() for p in sorted((ROOT / "zoo").rglob("*.cnn"))]
    texts.append(
        '# top\nnetwork n(a = 1e-4, b = "x\\ty", c = none) {  # note\n input image [3, 8, 8]\n'
        "  return {out: image -> c1: Conv(4, 3) -> ReLU, 0: (image,)}  # end\n}\n"
    )
    return texts


def test_a_kept_tree_equals_the_parsed_one_spans_and_comments_too(fresh_parser, tmp_path):
    from cnnc.dsl.source import SourceFile

    for i, text in enumerate(_texts()):
        source = SourceFile(f"f{i}.cnn", text)
        parsed = syntax.parse_source(source)
        astcache.store(source, parsed)
        again = SourceFile(f"g{i}.cnn", text)  # another path: the spans follow the new file
        kept = astcache.load(again)
        assert kept == parsed and kept.comments == parsed.comments
        assert _spans(kept) == _spans(parsed)
        assert all(s.file is again for s in _span_objects(kept))


def _span_objects(node):
    from cnnc.dsl.records import fields, is_record
    from cnnc.dsl.source import Span

    if isinstance(node, Span):
        yield node
    elif is_record(node):
        for f in fields(node):
            yield from _span_objects(getattr(node, f.name))
    elif isinstance(node, tuple):
        for x in node:
            yield from _span_objects(x)


def _spans(node):
    return [(s.start, s.end) for s in _span_objects(node)]


def test_an_entry_is_used_only_for_its_own_text(fresh_parser, tmp_path):
    from cnnc.dsl.source import SourceFile

    text = "network n { input [3, 8, 8] return in -> Conv(4, 3) }"
    source = SourceFile("a.cnn", text)
    astcache.store(source, syntax.parse_source(source))
    (entry,) = (tmp_path / "cnnc" / "ast").glob("*.ast")
    other = SourceFile("a.cnn", text.replace("4", "5"))
    entry.rename(entry.with_name(astcache._entry(other.text).name))  # as if the digests collided
    assert astcache.load(other) is None  # the stored text differs: a miss, never the wrong tree


@pytest.mark.parametrize("damage", [b"", b"garbage", b"\xe3\x00", None])
def test_a_damaged_entry_is_a_miss_and_is_rewritten(fresh_parser, tmp_path, damage):
    import marshal

    from cnnc.dsl.source import SourceFile

    text = "network n { input [3, 8, 8] return in -> Conv(4, 3) }"
    source = SourceFile("a.cnn", text)
    astcache.store(source, syntax.parse_source(source))
    (entry,) = (tmp_path / "cnnc" / "ast").glob("*.ast")
    if damage is None:  # well-formed, but naming a class that is not an AST class
        damage = marshal.dumps(
            (astcache.FORMAT, text, [("Span", ("file", "start", "end"))], [0, None, 1, 2])
        )
    entry.write_bytes(damage)
    assert astcache.load(source) is None
    assert fresh_parser.parse(source, keep=True) == syntax.parse_source(source)
    assert astcache.load(source) is not None  # written again, whole


def test_the_cache_can_be_turned_off_and_an_unwritable_dir_is_skipped(
    fresh_parser, tmp_path, monkeypatch
):
    from cnnc.dsl.source import SourceFile

    source = SourceFile("a.cnn", "network n { input [3] return in }")
    monkeypatch.setenv("CNNC_CACHE", "off")
    fresh_parser.parse(source, keep=True)
    assert not (tmp_path / "cnnc" / "ast").exists()
    monkeypatch.delenv("CNNC_CACHE")
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    fresh_parser._PARSED.clear()
    assert len(fresh_parser.parse(source, keep=True).items) == 1


def test_the_folder_keeps_at_most_its_limits(fresh_parser, tmp_path, monkeypatch):
    from cnnc.dsl.source import SourceFile

    folder = tmp_path / "cnnc" / "ast"
    monkeypatch.setattr(astcache, "MAX_ENTRIES", 6)
    for i in range(12):
        source = SourceFile("a.cnn", f"network n{i} {{ input [3] return in }}")
        astcache.store(source, syntax.parse_source(source))
        assert len(list(folder.iterdir())) <= 6
    assert astcache.load(source) is not None  # the newest stays
    monkeypatch.setattr(astcache, "MAX_ENTRIES", 1000)
    size = max(p.stat().st_size for p in folder.iterdir())
    monkeypatch.setattr(astcache, "MAX_BYTES", 4 * size)
    for i in range(12):
        source = SourceFile("a.cnn", f"network m{i} {{ input [3] return in }}")
        astcache.store(source, syntax.parse_source(source))
        assert sum(p.stat().st_size for p in folder.iterdir()) <= 4 * size


def run_script(*args: str, **env) -> subprocess.CompletedProcess:
    """The `cnnc` console script's function, `cli.entry`, as a process, its output buffered as a
    user's is (PYTHONUNBUFFERED unset)."""
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env=user_env(**env),
    )


ENTRY = "import sys; from cnnc.cli import entry; sys.argv[0] = 'cnnc'; entry()"


def user_env(**env) -> dict[str, str]:
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return {**buffered, "NO_COLOR": "1", **env}


def test_the_console_script_is_entry():
    assert 'cnnc = "cnnc.cli:entry"' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("command", ["summary", "check"])
def test_a_quick_exit_loses_no_output(command, capsys):
    """`check` and `summary` end without the interpreter's teardown: their output, block-buffered
    into a pipe, is still written whole, and the exit code is main's."""
    from conftest import run_cli

    args = [command, "zoo/resnet152.cnn", "--format", "json"]
    code, out, err = run_cli(args, capsys)
    done = run_script(*args)
    assert code == 0 and out
    assert (done.returncode, done.stdout, done.stderr) == (code, out, err)
    if command == "summary":
        assert len(out) > 65536  # many buffers full; entry flushes the last one


def test_a_quick_exit_keeps_a_user_errors_code_and_diagnostic(tmp_path):
    bad = tmp_path / "bad.cnn"
    bad.write_text("network n {\n  input [3, 8, 8]\n  Conv(4, k = 3) -> Linear(q)\n}\n")
    for command in ("check", "summary"):
        done = run_script(command, str(bad))
        assert done.returncode == 1
        assert f"{bad}:3:" in done.stderr and "found 1 error" in done.stderr


def test_a_closed_pipe_ends_a_summary_quietly():
    """`cnnc summary X | head -1`: the reader goes away; cnnc exits 0 and says nothing."""
    proc = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "summary", "zoo/resnet152.cnn"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=user_env(),
    )
    assert proc.stdout.read(20).startswith(b"resnet152")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert (proc.wait(timeout=60), err) == (0, "")


def test_help_is_as_wide_as_argparse_makes_it(monkeypatch):
    """cli.Formatter measures the terminal as shutil does ($COLUMNS first) without importing it:
    the help is argparse's own, character for character, at any width."""
    import argparse

    from cnnc import cli

    def summary_help() -> str:
        parser = cli.build_parser("summary")
        return parser._subparsers._group_actions[0].choices["summary"].format_help()

    texts = set()
    for columns in ("50", "120"):
        monkeypatch.setenv("COLUMNS", columns)
        ours = summary_help()
        with monkeypatch.context() as m:
            m.setattr(cli, "Formatter", argparse.RawDescriptionHelpFormatter)
            assert summary_help() == ours
        texts.add(ours)
    assert len(texts) == 2  # the width was followed
