"""Elaboration: naming (the contract lowering and weight loading rely on), values, errors."""

from __future__ import annotations

import pytest

from cnnc.api import elaborate_file, graph
from cnnc.compiler.analysis.summary import summarize


def net(body: str, input_shape: str = "[3, 32, 32]", defs: str = "") -> str:
    return f"{defs}\nnetwork N {{\n    input {input_shape}\n    {body}\n}}\n"


def names(text: str) -> list[str]:
    return [n.name for n in graph("t.cnn", text=text).nodes_in_order()]


def codes(text: str) -> list[str]:
    return [d.code for d in elaborate_file("t.cnn", text=text).diagnostics]


def test_labels_name_layers_and_unlabelled_ops_take_their_op_name():
    assert names(net("return in -> conv1: Conv(8, 3) -> ReLU -> ReLU -> MaxPool(2)")) == [
        "input",
        "conv1",
        "relu",
        "relu_1",
        "maxpool",
    ]


def test_sequences_number_their_members_like_nn_sequential():
    text = net(
        "return in -> features: (Conv(8, 3) -> ReLU -> (Conv(8, 3) -> ReLU) -> last: MaxPool(2))"
    )
    assert names(text) == [
        "input",
        "features.0",
        "features.1",
        "features.2",
        "features.3",
        "features.last",
    ]


def test_list_of_layers_with_bare_ops_is_a_sequence():
    assert names(net("return in -> f: [Conv(8, 3), ReLU, MaxPool(2)]")) == [
        "input",
        "f.0",
        "f.1",
        "f.2",
    ]


def test_block_instances_scope_their_layers():
    defs = (
        "block B(w, stride = 1) { return in -> conv: Conv(w, 3, stride = stride, pad = 1) -> ReLU }"
    )
    text = net(
        "return in -> layer1: [B(8, stride = if i == 0 then 2 else 1) for i in range(2)] -> B(8)",
        defs=defs,
    )
    assert names(text) == [
        "input",
        "layer1.0.conv",
        "layer1.0.relu",
        "layer1.1.conv",
        "layer1.1.relu",
        "b.conv",
        "b.relu",
    ]
    g = graph("t.cnn", text=text)
    assert g.scopes[("layer1", "0")].title == "B(8, stride = 2)"
    assert g.scopes[("layer1",)].kind == "seq"


def test_unlabelled_merge_adds_no_path_level():
    defs = "block L(g) { return in -> conv: Conv(g, 3, pad = 1) }"
    text = net(
        'return in -> block1: [concat(Identity, label("layer" + str(i + 1), L(4))) for i in range(2)]',
        defs=defs,
    )
    g = graph("t.cnn", text=text)
    assert "block1.layer2.conv" in [n.name for n in g.nodes_in_order()]
    assert g.output_type.shape == (3 + 4 + 4, 32, 32)


def test_dotted_label_makes_a_path():
    assert names(net('return in -> label("a.b.c", Conv(8, 3))')) == ["input", "a.b.c"]


def test_values_and_builtins():
    text = net("""w = make_divisible(32 * 0.75, 8)
    d = [x * 2 for x in range(4) if x % 2 == 1]
    assert d == [2, 6] and w == 24 and int(log(8, 2)) == 3 and pow(2, 5) == 32
    return in -> Conv(w + len(d), 1)""")
    assert graph("t.cnn", text=text).output_type.shape == (26, 32, 32)


def test_shapes_are_readable():
    text = net("return in -> Conv(in.channels * 2, 1) -> MaxPool(in.height // 16)", "[4, 32, 32]")
    assert graph("t.cnn", text=text).output_type.shape == (8, 16, 16)


def test_squeeze_excitation_broadcasts():
    defs = """block SE(r = 4) {
        gate = in -> GlobalAvgPool -> fc1: Conv(in.channels // r, 1) -> ReLU -> fc2: Conv(in.channels, 1) -> Sigmoid
        return in * gate
    }"""
    g = graph("t.cnn", text=net("return in -> se: SE", "[16, 8, 8]", defs))
    mul = [n for n in g.nodes_in_order() if n.op == "Mul"][0]
    assert mul.type.shape == (16, 8, 8)


def test_dead_branches_are_pruned_and_warned():
    text = net("unused = in -> Conv(8, 1)\n    return in -> Conv(4, 1)")
    result = elaborate_file("t.cnn", text=text)
    assert [d.code for d in result.diagnostics] == ["W0101"]
    assert [n.op for n in result.graph.nodes_in_order()] == ["Input", "Conv"]
    assert summarize(result.graph).params == 16


def test_independent_errors_are_all_reported_once():
    text = net("""a = in -> Nope
    b = in -> Conv(8, 3, groups = 5)
    return concat(a, b) -> Conv(4, 1) -> Linear(3)""")
    assert codes(text) == ["E0201", "E0305"]  # nothing downstream of either


def test_error_node_poisons_downstream_silently():
    result = elaborate_file(
        "t.cnn",
        text=net(
            "return in -> a: Conv(8, 3, groups = 3) -> b: Conv(8, 3) -> Flatten -> c: Linear(2)"
        ),
    )
    failing = [n for n in result.graph.nodes_in_order() if n.error]
    assert [n.name for n in failing] == ["a"]
    assert [d.code for d in result.diagnostics] == ["E0305"]


@pytest.mark.parametrize(
    "body, code",
    [
        ("return in -> Conv(8, 3, stride = 0)", "E0405"),
        ("return in -> Conv(8, 3, bias = 1)", "E0404"),
        ("return in -> Conv(8.0, 3)", "E0404"),
        ("return in -> Conv(8, 3, stride = [1, 2, 3])", "E0404"),
        ("return in -> Conv(8, 3, kernel = 3)", "E0401"),
        ("return in -> Conv(8)", "E0402"),
        ("return in -> 3", "E0404"),
        ("return 1 + [1]", "E0404"),
        ("return in -> Conv(range(10)[20], 1)", "E0407"),
        ("return in -> Conv(8 // 0, 1)", "E0406"),
        ("return in -> Conv(8, 2, stride = 2, pad = same)", "E0405"),
        ("return in -> Conv(8, 64)", "E0303"),
        ("return in -> Flatten -> Conv(8, 1)", "E0304"),
        ("return in -> Flatten -> MaxPool(2)", "E0304"),
        ("return (in -> Conv(8, 1)) + (in -> Conv(4, 1))", "E0301"),
        ("return in -> [Conv(3, 1) for i in range(300000)]", "E0701"),
        ("return in -> Conv(sqrt(-1), 1)", "E0405"),
    ],
)
def test_errors(body, code):
    assert codes(net(body)) == [code]


def test_recursion_and_self_reference():
    assert codes(net("return in -> A(2)", defs="block A(n) { return in -> A(n) }")) == ["E0206"]
    assert codes("x = x + 1\nnetwork N { input [3, 8, 8] return in -> Conv(x, 1) }") == ["E0206"]


def test_choice_needs_a_decider_and_takes_one():
    text = net('return in -> Conv(choice(4, 8, name = "w"), 1) -> Conv(choice(range(1, 4)), 1)')
    assert codes(text) == ["E0501"]

    class Last:
        def decide(self, point):
            return len(point.labels) - 1

    g = elaborate_file("t.cnn", text=text, decider=Last()).graph
    assert g.output_type.shape == (3, 32, 32)


def test_named_network_instantiation_and_cli_args():
    text = "network Net(width, classes = 10) { input [3, 8, 8] return in -> Conv(width, 1) }\nnetwork small = Net(4)\n"
    assert graph("t.cnn", "small", text=text).output_type.shape == (4, 8, 8)
    from cnnc.api import parse_arg_values

    big = graph("t.cnn", "Net", parse_arg_values(["width=16"]), text=text)
    assert big.output_type.shape == (16, 8, 8)


def test_input_override():
    g = graph("t.cnn", text=net("return in -> Conv(8, 3, pad = 1)"), input=(3, 64, 48))
    assert g.output_type.shape == (8, 64, 48)


def test_graph_prints_one_line_per_node_and_lints():
    g = graph("t.cnn", text=net("return in -> c: Conv(8, 3, stride = 2, pad = 1)"))
    assert str(g).splitlines()[1] == (
        "%1 c = Conv(%0, out_channels=8, kernel_size=3, stride=2, padding=1, "
        "dilation=1, groups=1, bias=true, in_channels=3) : [8, 16, 16]"
    )
    assert g.lint() == []


def test_block_alias_fixes_some_arguments():
    defs = """block Unit(c, k = 3, act = ReLU) { return in -> conv: Conv(c, k, pad = same) -> act }
    block Unit5 = Unit(k = 5)
    block Wide = Unit5(64)"""
    g = graph(
        "t.cnn",
        text=net(
            "return in -> a: Unit5(8) -> b: Unit5(8, k = 7) -> c: Wide -> Unit5(4)", defs=defs
        ),
    )
    convs = [n for n in g.nodes_in_order() if n.op == "Conv"]
    assert [(n.name, n.args["kernel_size"], n.args["out_channels"]) for n in convs] == [
        ("a.conv", (5, 5), 8),
        ("b.conv", (7, 7), 8),
        ("c.conv", (5, 5), 64),
        ("unit.conv", (5, 5), 4),
    ]
    assert g.scopes[("b",)].title == "Unit(8, k = 7)"  # what the call gave, defaults left out


def test_block_alias_errors():
    defs = "block U(c) { return in -> Conv(c, 1) }\nblock V = U(nope = 3)"
    assert codes(net("return in -> V", defs=defs)) == ["E0401"]
    assert codes(net("return in -> W", defs="block W = 7")) == ["E0404"]
    assert codes(
        net("return in -> X(1)", defs="block U(c) { return in -> Conv(c, 1) }\nblock X = U(4)")
    ) == ["E0403"]


def test_numbering_resumes_and_skips_names_taken_by_labels():
    text = net("return in -> relu_2: ReLU -> ReLU -> ReLU -> ReLU -> ReLU")
    assert names(text) == ["input", "relu_2", "relu", "relu_1", "relu_3", "relu_4"]


def test_two_unlabelled_sequences_in_one_scope_number_on():
    """`0_1` could name no module: the second sequence's members continue the numbering."""
    from cnnc import api

    text = (
        "network n {\n    input [4, 8, 8]\n"
        "    return in -> [Conv(4, 1) for i in range(3)] -> [BatchNorm for i in range(2)]\n}\n"
    )
    names = [node.name for node in api.graph("n.cnn", text=text).nodes_in_order()]
    assert names == ["input", "0", "1", "2", "3", "4"]


@pytest.mark.parametrize("declaration", ["input input [65536]", "input image [in.channels]"])
def test_an_input_whose_shape_reads_the_input_is_an_error(declaration):
    """`input input [65536]` reads as an unnamed input shaped `input[65536]`: the input itself, which
    does not exist yet. Found by the fuzzer: it was checked as a network of no nodes."""
    import cnnc

    found = cnnc.check(text=f"network n {{\n    {declaration}\n    return in -> Linear(10)\n}}\n")
    assert [d.code for d in found if d.is_error][:1] == ["E0201"]


def test_sum_of_a_list_of_branches_is_one_add():
    """NAS-Bench-201's node: the sum of its incoming edges, however many a cell gives it."""
    text = net("""edges = [in -> Conv(4, 1), in -> Conv(4, 3, pad = 1), in -> Conv(4, 5, pad = 2)]
    return sum(edges) -> ReLU""")
    g = graph("t.cnn", text=text)
    add = next(n for n in g.nodes_in_order() if n.op == "Add")
    assert [g.node(i).name for i in add.inputs] == ["conv", "conv_1", "conv_2"]
    assert add.type.shape == (4, 32, 32)
    layers = net("return in -> sum([Conv(4, 1), Conv(4, 1)]) -> sum([ReLU])")
    assert [n.op for n in graph("t.cnn", text=layers).nodes_in_order()] == [
        *("Input", "Conv", "Conv", "Add", "ReLU")
    ]
    assert graph("t.cnn", text=net("assert sum([1, 2.5]) == 3.5\n    return in")).ok


@pytest.mark.parametrize(
    "body, code",
    [
        ("return sum([in, 1])", "E0404"),  # a branch and a number
        ("return sum([in -> Conv(4, 1), in -> Conv(5, 1)])", "E0301"),  # the Add's own rule
        # a sum of edges that are all undecided choices: the choice's error alone, not a second
        # one calling the poisoned edges numbers
        ("return sum([in -> choice(ReLU, Identity), in -> choice(ReLU, Identity)])", "E0501"),
    ],
)
def test_sum_of_branches_errors(body, code):
    assert codes(net(body)) == [code]
