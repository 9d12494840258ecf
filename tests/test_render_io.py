"""Diagrams of networks with several inputs and outputs: one input node per input (its name and shape),
one sink per output (its key and shape) with an edge from the output's box; a network of one unnamed
input and one tensor keeps its plain `input` and `output` nodes (the goldens hold those byte for byte).

The graphs are built by hand on `compiler.ir.Graph`'s contract (`inputs`, `outputs`), so the renderer
is checked apart from the language that makes them.
"""

from __future__ import annotations

import re

from cnnc.compiler.ir import Graph, Node, Scope
from cnnc.compiler.render.dot import to_dot
from cnnc.compiler.render.view import build_view
from cnnc.compiler.types import ERROR, TensorType


def node(
    i: int, op: str, inputs: tuple[int, ...], shape: tuple[int, ...], path: tuple[str, ...], **args
):
    return Node(i, op, args, inputs, TensorType(shape), path)


def two_inputs_two_outputs(keys=("out", "aux"), kind="dict") -> Graph:
    """image [3, 8, 8] → ReLU → out; depth [1, 8, 8] → Flatten → aux."""
    nodes = [
        node(0, "Input", (), (3, 8, 8), ("image",), name="image"),
        node(1, "Input", (), (1, 8, 8), ("depth",), name="depth"),
        node(2, "ReLU", (0,), (3, 8, 8), ("relu",)),
        node(3, "Flatten", (1,), (64,), ("flatten",)),
    ]
    return Graph("Two", nodes, ((keys[0], 2), (keys[1], 3)), output_kind=kind)


def statements(dot: str) -> dict[str, str]:
    """Node id → its attribute text, for the node statements of DOT text."""
    return dict(re.findall(r'^\t+("[^"]+"|[\w.]+) \[(.*)\]$', dot, flags=re.MULTILINE))


def edges(dot: str) -> list[tuple[str, str]]:
    return re.findall(r"^\t+([\w.]+) -> ([\w.]+)", dot, flags=re.MULTILINE)


def test_each_input_is_drawn_with_its_name_and_shape():
    nodes = statements(to_dot(two_inputs_two_outputs()))
    assert "<B>image</B>" in nodes["n0"] and "3×8×8" in nodes["n0"]
    assert "<B>depth</B>" in nodes["n1"] and "1×8×8" in nodes["n1"]
    assert not any("<B>input</B>" in attrs for attrs in nodes.values())


def test_each_named_output_gets_its_own_sink_with_its_key_and_shape():
    dot = to_dot(two_inputs_two_outputs())
    nodes = statements(dot)
    assert "output" not in nodes  # no single sink
    assert "<B>out</B>" in nodes["output_0"] and "3×8×8" in nodes["output_0"]
    assert "<B>aux</B>" in nodes["output_1"] and ">64<" in nodes["output_1"]
    assert ("n2", "output_0") in edges(dot) and ("n3", "output_1") in edges(dot)
    assert re.search(
        r"n3 -> output_1 \[label=64 ", dot
    )  # the shape sits on the edge as for one output


def test_tuple_outputs_are_labelled_by_position():
    nodes = statements(to_dot(two_inputs_two_outputs(keys=(0, 1), kind="tuple")))
    assert "<B>output 0</B>" in nodes["output_0"] and "<B>output 1</B>" in nodes["output_1"]


def test_a_tuple_of_one_is_still_a_tuple():
    g = Graph(
        "One",
        [node(0, "Input", (), (3, 8, 8), ("in",)), node(1, "ReLU", (0,), (3, 8, 8), ("relu",))],
        ((0, 1),),
        output_kind="tuple",
    )
    nodes = statements(to_dot(g))
    assert "<B>output 0</B>" in nodes["output_0"] and "output" not in nodes


def test_one_unnamed_input_and_one_tensor_keep_the_plain_nodes():
    g = Graph(
        "One",
        [node(0, "Input", (), (3, 8, 8), ("in",)), node(1, "ReLU", (0,), (3, 8, 8), ("relu",))],
        1,
    )
    dot = to_dot(g)
    nodes = statements(dot)
    assert nodes["n0"].startswith("label=<<B>input</B>> ")
    assert nodes["output"].startswith("label=<<B>output</B>> ")
    assert ("n1", "output") in edges(dot) and not any(k.startswith("output_") for k in nodes)


def chain_of_blocks() -> Graph:
    """Four identical blocks b1 → b2 → b3 → b4 (one ReLU each); b2 and b4 are the outputs 0 and 1."""
    nodes = [node(0, "Input", (), (3, 8, 8), ("in",))]
    nodes += [node(i, "ReLU", (i - 1,), (3, 8, 8), (f"b{i}", "relu")) for i in range(1, 5)]
    scopes = [Scope((f"b{i}",), "block", "B") for i in range(1, 5)]
    return Graph("Blocks", nodes, ((0, 2), (1, 4)), scopes=scopes, output_kind="tuple")


def test_folding_stops_at_a_box_that_holds_an_output():
    view = build_view(chain_of_blocks(), depth=0, fold=True)
    folded = [(b.key, b.names) for b in view.boxes if b.scope is not None]
    assert folded == [
        ("s_b1", ("b1", "b2")),
        ("s_b3", ("b3", "b4")),
    ]  # not one ×4 box hiding output 0
    assert [(key, box) for key, _, box in view.outputs] == [(0, "s_b1"), (1, "s_b3")]
    dot = to_dot(chain_of_blocks(), depth=0)
    assert ("s_b1", "output_0") in edges(dot) and ("s_b3", "output_1") in edges(dot)


def test_an_output_of_unknown_shape_is_drawn_dashed_with_a_question_mark():
    nodes = [
        node(0, "Input", (), (3, 8, 8), ("image",), name="image"),
        node(1, "ReLU", (0,), (3, 8, 8), ("relu",)),
    ]
    nodes.append(Node(2, "Flatten", {}, (1,), ERROR, ("flatten",), error="boom"))
    g = Graph("Bad", nodes, (("a", 1), ("b", 2)), output_kind="dict")
    dot = to_dot(g)
    assert ">?<" in statements(dot)["output_1"]
    assert re.search(r"n2 -> output_1 \[label=\"\" .*style=dashed", dot)
