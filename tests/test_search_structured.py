"""best.cnn and `search-report --export`: a member written as its space with the choices resolved
(search/structured.py, concrete.write_member), and what reaches the file is always escaped."""

from __future__ import annotations

import random

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


def test_a_member_whose_space_cannot_be_kept_is_written_flat_and_says_why(tmp_path):
    space, found = members("mobilenet_space", (1, 16, 16), 1)
    text, flat = write_member(tmp_path / "best.cnn", space, found[0])
    assert (
        flat == "a choice in an imported file, or an unnamed choice that differs between its uses"
    )
    assert "network best {" in text and 'label("classifier", Linear(10))' in text
    assert same_layers(found[0].graph, elaborate_file(tmp_path / "best.cnn").graph) == []


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
