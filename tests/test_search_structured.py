"""best.cnn and `search-report --export`: a member written as its space with the choices resolved
(search/structured.py, concrete.write_member), and what reaches the file is always escaped."""

from __future__ import annotations

import random
import re

import pytest
from conftest import ROOT, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnc.api import elaborate_file
from cnnc.dsl.parse import parse_text
from cnnc.search import driver
from cnnc.search.concrete import comment_lines, layer_text, same_layers, write_member
from cnnc.search.space import fixed, uniform

SPACES = ROOT / "zoo" / "spaces"


def members(name: str, shape, n: int, seed: int = 0):
    space = driver.space_for(driver.Settings(file=str(SPACES / f"{name}.cnn")), shape, 10)
    rng = random.Random(seed)
    found = [space.member(uniform(rng)) for _ in range(n)]
    return space, [m for m in found if m.ok]


def state_dict_keys(graph) -> list[str]:
    from cnnc.compiler.lower.fx import to_graph_module

    return list(to_graph_module(graph, seed=0).state_dict())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_resnet_member_keeps_the_space_blocks_and_state_dict_keys(tmp_path, capsys, seed):
    space, found = members("resnet_space", (1, 16, 16), 1, seed)
    (member,) = found
    path = tmp_path / "best.cnn"
    text, flat = write_member(path, space, member, comments=("trial 3",))
    assert flat is None
    assert text.startswith("# trial 3\n# A ResNet space")
    assert 'import "families/resnet.cnn"' in text and "block Stage(" in text
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if "choice(" in line]
    assert "network best = resnet_space(classes = 10)" in code
    assert "input [1, 16, 16]" in text
    again = elaborate_file(path)
    assert again.ok and same_layers(member.graph, again.graph) == []
    assert state_dict_keys(again.graph) == state_dict_keys(member.graph)
    assert run_cli(["fmt", "--check", path], capsys)[0] == 0


def test_choices_met_with_several_options_become_conditionals_on_their_names(tmp_path):
    space = driver.space_for(driver.Settings(file=str(SPACES / "tiny.cnn")), (1, 8, 8), 10)
    member = space.member(fixed({"width": "16", "depth": "2", "kernel0": "3", "kernel1": "5"}))
    text, flat = write_member(tmp_path / "best.cnn", space, member)
    assert flat is None
    assert 'Unit(width, if "kernel" + str(i) == "kernel0" then 3 else 5)' in " ".join(text.split())
    assert "width = 16" in text and "range(2)" in text and "pool: MaxPool(2)" in text
    assert same_layers(member.graph, elaborate_file(tmp_path / "best.cnn").graph) == []


LIST_CHOICE = """\
network lists(classes = 10) {
    input [1, 8, 8]
    k = choice([[3, 3], [1, 1]], name = "k")
    s = choice(["same", "a\\nb"], name = "s")
    assert s == "same" or s == "a\\nb", "a chosen string reads back as itself"
    return in -> c: Conv(4 * len(k), k) -> Flatten -> fc: Linear(classes)
}
"""


def test_a_chosen_list_or_string_is_written_as_that_value(tmp_path):
    """`choice([[3, 3], …])` takes the list `[3, 3]` (it was written `3`, which `len` refused, so the
    member fell back to the flat form); a chosen string keeps its quotes (`"same"` was written as
    the bare word `same`)."""
    file = tmp_path / "lists.cnn"
    file.write_text(LIST_CHOICE)
    space = driver.space_for(driver.Settings(file=str(file)), (1, 8, 8), 10)
    member = space.member(fixed({"k": "[3, 3]", "s": '"same"'}))
    text, flat = write_member(tmp_path / "best.cnn", space, member)
    assert flat is None
    assert "k = [3, 3]" in text and 's = "same"' in text
    assert same_layers(member.graph, elaborate_file(tmp_path / "best.cnn").graph) == []


@pytest.mark.parametrize(
    "name, block", [("mobilenet_space", "SearchIR"), ("proxyless_space", "MBConv")]
)
def test_a_member_whose_block_choices_differ_keeps_the_space_and_states_its_decisions(
    tmp_path, capsys, name, block
):
    """An unnamed choice in a block differs between its instances: the choices cannot be replaced
    in place, so best.cnn is the space as written plus `network best = … decide { … }`."""
    from cnnc.compiler.analysis.summary import summarize
    from cnnc.search.space import graph_hash

    space, (member,) = members(name, (1, 16, 16), 1)
    path = tmp_path / "best.cnn"
    text, flat = write_member(path, space, member, comments=("trial 3",))
    assert flat is None
    source = (SPACES / f"{name}.cnn").read_text()
    as_searched = re.sub(r"input \[[^\]]*\]", "input [1, 16, 16]", source, count=1).rstrip()
    assert text.startswith(
        f"{as_searched}\n\n# trial 3\nnetwork best = {name}(classes = 10) decide {{\n"
    )  # the space verbatim but for the data's shape, then the member, as one more item
    assert f"block {block}(out, stride) {{" in text and "choice(3, 5, 7)" in text
    assert '    "stage1.0.k": ' in text
    assert text.count('": ') == len(member.picks)  # one entry a decision, nothing else
    assert run_cli(["check", f"{path}:best"], capsys)[0] == 0
    again = elaborate_file(path).graph
    assert graph_hash(again) == graph_hash(member.graph)
    s, t = summarize(member.graph), summarize(again)
    assert (s.params, s.macs) == (t.params, t.macs)
    assert same_layers(member.graph, again) == []


BLOCK_SPACE = """\
# each unit's width: its own, or twice it (so no member takes one value for both units)
block Unit(w) {
    return in -> Conv(choice([w, 2 * w]), 3, pad = same) -> ReLU
}

network blocks(classes = 10) {
    input [1, 8, 8]
    return in -> units: [Unit(4), Unit(8)] -> Flatten -> fc: Linear(classes)
}
"""


def test_a_member_of_a_space_that_already_has_a_best_is_written_flat_and_says_why(tmp_path):
    file = tmp_path / "space.cnn"
    file.write_text(BLOCK_SPACE + "\nnetwork best = blocks(classes = 3)\n")
    space = driver.space_for(driver.Settings(file=str(file), network="blocks"), (1, 8, 8), 10)
    member = space.member(uniform(random.Random(0)))
    text, flat = write_member(tmp_path / "best.cnn", space, member)
    assert flat == (
        "the file already defines a network `best`, or the searched network is not its own"
    )
    assert "network best {" in text and 'label("fc", Linear(10))' in text
    assert same_layers(member.graph, elaborate_file(tmp_path / "best.cnn").graph) == []


def test_a_member_whose_choice_is_in_an_imported_file_imports_it_and_decides(tmp_path, capsys):
    (tmp_path / "blocks.cnn").write_text(BLOCK_SPACE.split("\n\nnetwork")[0] + "\n")
    (tmp_path / "space.cnn").write_text(
        'import "blocks.cnn"\n\nnetwork' + BLOCK_SPACE.split("\n\nnetwork")[1]
    )
    space = driver.space_for(driver.Settings(file=str(tmp_path / "space.cnn")), (1, 8, 8), 10)
    member = space.member(fixed({"units.0.conv.out_channels": "8"}))
    text, flat = write_member(tmp_path / "best.cnn", space, member)
    assert flat is None
    assert text.startswith('import "blocks.cnn"\n') and "block Unit" not in text
    assert text.endswith(
        "network best = blocks(classes = 10) decide {\n"
        '    "units.0.conv.out_channels": 8,\n    "units.1.conv.out_channels": 8,\n}\n'
    )
    assert run_cli(["check", tmp_path / "best.cnn"], capsys)[0] == 0
    assert same_layers(member.graph, elaborate_file(tmp_path / "best.cnn").graph) == []


def test_a_search_whose_block_choice_differs_writes_a_best_that_decides(tmp_path, capsys):
    file = tmp_path / "blocks.cnn"
    file.write_text(BLOCK_SPACE)
    out = tmp_path / "run"
    args = ["search", file, "--evaluator", "proxy", "--device", "cpu", "--trials", "4"]
    code, _, err = run_cli([*args, "--sampler", "random", "--out", out], capsys)
    assert code == 0, err
    best = (out / "best.cnn").read_text()
    assert best.startswith(BLOCK_SPACE)  # the space as written, then the trial and the member
    tail = best[len(BLOCK_SPACE) :]
    assert tail.startswith("\n# A member of the search space `blocks.cnn`, written by cnnc:\n")
    clause = tail[tail.index("network best = ") :].splitlines()
    assert clause[0] == "network best = blocks(classes = 10) decide {" and clause[-1] == "}"
    assert sorted(line.rpartition(":")[0].strip() for line in clause[1:-1]) == [
        '"units.0.conv.out_channels"',
        '"units.1.conv.out_channels"',
    ]
    assert run_cli(["check", out / "best.cnn"], capsys)[0] == 0


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=12))
def test_labels_and_comments_are_escaped_whatever_they_hold(text):
    class Node:
        name = text
        args: dict = {}  # noqa: RUF012 - a read-only stand-in

        class spec:
            name = "ReLU"
            params = ()

    module = parse_text(f"x = {layer_text(Node)}\n" + "\n".join(comment_lines([text, "b"])) + "\n")
    (let,) = module.items
    assert let.value.args[0].value == text  # the label reads back as written: nothing broke out
    assert len(module.comments) == 2
