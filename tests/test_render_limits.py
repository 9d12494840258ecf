"""`cnnc render` draws an image only when Graphviz lays it out in seconds (compiler/render/dot.py's
`MAX_IMAGE_*`), says which `--depth` would do, and reports `dot` crashing, failing or running out of
time as what it is (exit 1). The figures behind the bounds are measured by hand, not asserted."""

from __future__ import annotations

import os
import stat

import pytest
from conftest import ROOT, run_cli

from cnnc.api import elaborate_file, load_program
from cnnc.compiler.elaborate import network_names
from cnnc.compiler.render import dot
from cnnc.compiler.render.view import build_view

RESIDUAL = "block R { return (in -> Conv(3, 1) -> ReLU) + in }\n"


def write(tmp_path, body: str, defs: str = "") -> str:
    path = tmp_path / "n.cnn"
    path.write_text(f"{defs}network N {{\n    input [3, 8, 8]\n    return {body}\n}}\n")
    return str(path)


def test_a_concat_too_wide_for_graphviz_is_refused_before_dot_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", "")  # `dot` is never looked for: the size is known first
    path = write(tmp_path, "concat([in -> Conv(3, 1) for i in range(5000)])")
    code, _, err = run_cli(["render", path, "-o", tmp_path / "n.svg"], capsys)
    assert code == 1
    assert err.splitlines() == [
        "error: the diagram drawn layer by layer has 5,002 boxes, more than the 1,500 Graphviz lays out in seconds",
        "  = help: no depth makes it small enough: write DOT text instead with `-o FILE.dot`",
    ]
    assert not (tmp_path / "n.svg").exists()


def test_the_refusal_names_the_depth_that_fits(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dot, "MAX_IMAGE_BOXES", 40)
    path = write(tmp_path, "in -> s: [R for i in range(20)]", RESIDUAL)
    code, _, err = run_cli(["render", path, "-o", tmp_path / "n.svg"], capsys)
    assert code == 1
    assert "has 61 boxes, more than the 40 Graphviz lays out in seconds" in err
    assert "help: collapse the blocks: `--depth 1` draws it within bounds" in err


def test_dot_text_is_written_up_to_its_own_bound(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, "concat([in -> Conv(3, 1) for i in range(2000)])")
    code, out, _ = run_cli(["render", path], capsys)
    assert code == 0
    assert out.count(" -> ") == 4001
    monkeypatch.setattr(dot, "MAX_TEXT_BOXES", 1000)
    code, out, err = run_cli(["render", path, "-o", tmp_path / "n.dot"], capsys)
    assert code == 1
    assert err.splitlines()[0] == (
        "error: the diagram drawn layer by layer has 2,002 boxes, more than the 1,000 "
        "a diagram can show"
    )
    assert not (tmp_path / "n.dot").exists()


def test_the_deepest_depth_that_fits_is_named(tmp_path, monkeypatch):
    """Stages of blocks of blocks: depth 1 draws 3 boxes (the stage's blocks folded ×4), depth 2
    draws 10, every layer 54."""
    defs = RESIDUAL + "block S { return in -> [R for i in range(4)] -> Conv(3, 1) }\n"
    graph = elaborate_file(
        write(tmp_path, "in -> t: [S for i in range(4)] -> Conv(3, 1)", defs)
    ).graph
    monkeypatch.setattr(dot, "MAX_IMAGE_BOXES", 12)
    with pytest.raises(dot.TooLarge) as caught:
        dot.render(graph, bound="image")
    assert caught.value.help == "collapse the blocks: `--depth 2` draws it within bounds"
    monkeypatch.setattr(dot, "MAX_IMAGE_BOXES", 8)
    with pytest.raises(dot.TooLarge) as caught:
        dot.render(graph, depth=2, bound="image")
    assert (
        str(caught.value)
        == "the diagram at this depth has 10 boxes, more than the 8 Graphviz lays out in seconds"
    )
    assert caught.value.help == "collapse the blocks: `--depth 1` draws it within bounds"


def test_too_many_nested_blocks_or_edges_at_one_box(tmp_path, monkeypatch):
    graph = elaborate_file(write(tmp_path, "concat([in -> R for i in range(30)])", RESIDUAL)).graph
    view = build_view(graph)
    assert dot.size_problem(view) is None
    monkeypatch.setattr(dot, "MAX_IMAGE_FAN", 25)
    assert dot.size_problem(view) == "60 edges at one box, more than the 25"
    monkeypatch.setattr(dot, "MAX_IMAGE_CLUSTERS", 20)
    assert dot.size_problem(view) == "30 nested blocks, more than the 20"


def fake_dot(tmp_path, monkeypatch, script: str) -> None:
    """A `dot` on PATH that runs `script` (sh) instead of Graphviz."""
    folder = tmp_path / "bin"
    folder.mkdir()
    program = folder / "dot"
    program.write_text(f"#!/bin/sh\ncat > /dev/null\n{script}\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.mark.parametrize(
    "script, message",
    [
        ("kill -SEGV $$", "error: Graphviz's `dot` crashed (SIGSEGV) on the .svg image"),
        (
            "echo 'Error: trouble in init_rank' >&2; exit 1",
            "error: Graphviz's `dot` failed (exit status 1) on the .svg image: Error: trouble in init_rank",
        ),
    ],
)
def test_a_dot_that_crashes_or_fails_is_reported_as_such(
    tmp_path, capsys, monkeypatch, script, message
):
    fake_dot(tmp_path, monkeypatch, script)
    code, _, err = run_cli(
        ["render", write(tmp_path, "in -> Conv(3, 1)"), "-o", tmp_path / "n.svg"], capsys
    )
    assert code == 1
    assert err.splitlines()[0] == message
    assert "--depth" in err.splitlines()[1]
    assert not (tmp_path / "n.svg").exists()


def test_a_dot_that_does_not_finish_is_stopped(tmp_path, capsys, monkeypatch):
    fake_dot(tmp_path, monkeypatch, "exec sleep 30")
    monkeypatch.setattr(dot, "DOT_SECONDS", 0.2)
    code, _, err = run_cli(
        ["render", write(tmp_path, "in -> Conv(3, 1)"), "-o", tmp_path / "n.svg"], capsys
    )
    assert code == 1
    assert (
        err.splitlines()[0] == "error: Graphviz's `dot` did not finish the .svg image within 0.2 s"
    )


def test_a_folded_run_of_thousands_keeps_its_tooltip_short(tmp_path):
    graph = elaborate_file(write(tmp_path, "in -> s: [R for i in range(3000)]", RESIDUAL)).graph
    source = dot.render(graph, depth=1, bound="image").source
    assert 'tooltip="s.0–2999: R()"' in source
    assert max(len(line) for line in source.splitlines()) < 2_000


ZOO = sorted((ROOT / "zoo").glob("*.cnn"))


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_every_zoo_network_is_drawable_layer_by_layer(path):
    for name in [n for n, concrete in network_names(load_program(path)) if concrete]:
        view = build_view(elaborate_file(path, name).graph)
        assert dot.size_problem(view) is None, name
