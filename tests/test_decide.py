"""`network best = space decide { "name": option, … }`: a member of a search space stated as the
space with its decisions given (compiler/elaborate/decided.py). Its errors have golden cases in
tests/ui/E0504–E0507; here, what it elaborates to and how the clause reads and formats."""

from __future__ import annotations

import json
import random

import pytest
from conftest import run_cli

from cnnc.api import elaborate_file
from cnnc.dsl.format import format_module
from cnnc.dsl.parse import parse_text
from cnnc.search.concrete import same_layers
from cnnc.search.space import fixed, load_space, uniform

SPACE = """\
block Unit(w) {
    k = choice(3, 5)
    act = choice(ReLU, GELU)
    return in -> conv: Conv(w, k, pad = same) -> act: act -> pool: MaxPool(2)
}

network space(classes = 10) {
    input [1, 8, 8]
    width = choice(range(4, 13, 4), name = "width")
    shape = choice([[1, 1], [3, 3]], name = "shape")
    return in -> stem: Conv(width, shape, pad = same) -> stage: [Unit(width), Unit(2 * width)]
              -> Flatten -> fc: Linear(classes)
}
"""


def write(tmp_path, alias: str):
    path = tmp_path / "member.cnn"
    path.write_text(SPACE + "\n" + alias)
    return path


def labels_of(member) -> dict[str, str]:
    return {p.name: p.labels[i] for p, (_, i) in zip(member.points, member.picks)}


def test_the_clause_formats_canonically_and_round_trips():
    text = (
        'network best = space(classes = 3) decide {\n    "width": 8,\n    "stage.0.k": 5,\n'
        '    "stage.0.act": GELU,\n    "shape": [3, 3],\n}\n'
    )
    module = parse_text(text, path="best.cnn")
    assert format_module(module) == text
    assert parse_text(format_module(module), path="best.cnn") == module
    written = 'network best = space decide { "a\\tb": AvgPool( 2 ) , "k" : 3 }\n'
    assert format_module(parse_text(written, path="b.cnn")) == (
        'network best = space decide {\n    "a\\tb": AvgPool(2),\n    "k": 3,\n}\n'
    )


@pytest.mark.parametrize("seed", range(4))
def test_every_member_stated_by_its_decisions_elaborates_to_the_member(tmp_path, seed):
    path = write(tmp_path, "")
    member = load_space(path).member(uniform(random.Random(seed)))
    entries = []
    for point, (name, index) in zip(member.points, member.picks):
        written = point.labels[index].replace("(", "( ")  # spacing aside, the same option
        entries.append(f'"{name}": {written}')
    path = write(tmp_path, f"network best = space decide {{ {', '.join(entries)} }}\n")
    again = elaborate_file(path, network="best")
    assert again.ok, again.diagnostics
    assert same_layers(member.graph, again.graph) == []


def test_options_match_by_structure_or_by_constant_value(tmp_path):
    path = write(
        tmp_path,
        'network best = space decide { "width": 4 + 4, "shape": [1, 1], "stage.0.k": 5,\n'
        '  "stage.0.act": GELU, "stage.1.k": 3, "stage.1.act": ReLU }\n',
    )
    graph = elaborate_file(path, network="best").graph
    convs = {n.name: n.args["kernel_size"] for n in graph.nodes_in_order() if n.op == "Conv"}
    assert convs == {"stem": (1, 1), "stage.0.conv": (5, 5), "stage.1.conv": (3, 3)}
    acts = [n.op for n in graph.nodes_in_order() if n.op in ("ReLU", "GELU")]
    assert acts == ["GELU", "ReLU"]
    assert graph.node(graph.output).type.shape == (10,)
    member = load_space(write(tmp_path, "")).member(
        fixed({"width": "8", "shape": "[1, 1]", "stage.0.k": "5", "stage.0.act": "GELU"})
    )
    assert same_layers(member.graph, graph) == []


@pytest.mark.parametrize(
    "value, code",
    [
        ("8.0", "E0505"),  # 8 is an option; 8.0 is a float, not the same value
        ("true", "E0505"),
        ("nonesuch", "E0505"),  # an unknown name is no option (not a second error)
        ("8", None),
    ],
)
def test_a_constant_matches_only_an_option_of_its_own_type(tmp_path, capsys, value, code):
    path = write(
        tmp_path,
        f'network best = space decide {{ "width": {value}, "shape": [1, 1], "stage.0.k": 5,\n'
        '  "stage.0.act": GELU, "stage.1.k": 3, "stage.1.act": ReLU }\n',
    )
    status, _, err = run_cli(["check", f"{path}:best", "--format", "concise"], capsys)
    codes = [line.split("[")[1][:5] for line in err.splitlines() if "error[" in line]
    assert (status, codes) == ((1, [code]) if code else (0, []))


def test_check_summary_compile_and_render_accept_a_member(tmp_path, capsys):
    path = write(
        tmp_path,
        'network best = space decide { "width": 12, "shape": [3, 3], "stage.0.k": 3,\n'
        '  "stage.0.act": ReLU, "stage.1.k": 5, "stage.1.act": GELU }\n',
    )
    code, out, err = run_cli(["check", f"{path}:best"], capsys)
    assert (code, out, err) == (0, "ok: best: [1, 8, 8] → [10], 10 nodes\n", "")
    code, out, _ = run_cli(["summary", f"{path}:best", "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["params"] == 9622
    code, _, err = run_cli(["compile", f"{path}:best", "-o", tmp_path / "best.py"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["render", f"{path}:best", "-o", tmp_path / "best.dot"], capsys)
    assert code == 0, err


def test_a_member_of_a_member_overrides_its_parents_decisions(tmp_path):
    path = write(
        tmp_path,
        'network best = space decide { "width": 12, "shape": [3, 3], "stage.0.k": 3,\n'
        '  "stage.0.act": ReLU, "stage.1.k": 5, "stage.1.act": GELU }\n'
        'network other = best decide { "width": 4 }\n',
    )
    graph = elaborate_file(path, network="other").graph
    assert [n.args["out_channels"] for n in graph.nodes_in_order() if n.op == "Conv"] == [4, 4, 8]


def test_a_member_is_no_layer(tmp_path, capsys):
    path = write(
        tmp_path,
        'network best = space decide { "width": 12, "shape": [3, 3], "stage.0.k": 3,\n'
        '  "stage.0.act": ReLU, "stage.1.k": 5, "stage.1.act": GELU }\n'
        "network user {\n    input [1, 8, 8]\n    return in -> best\n}\n",
    )
    code, _, err = run_cli(["check", f"{path}:user", "--format", "concise"], capsys)
    assert code == 1
    assert "`best` changes its parent's layers (`decide`), so it cannot be used as a layer" in err
