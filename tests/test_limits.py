"""Budgets (compiler/limits.py): what a .cnn file may cost is checked before the cost is paid, and
every runaway ends in one located error (exit 1), never a hang, an out-of-memory or an internal
error. The figures of time and memory are measured by hand (`/usr/bin/time -v`), not asserted."""

from __future__ import annotations

import pytest
from conftest import ROOT, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnc.api import elaborate_file
from cnnc.compiler import limits
from cnnc.compiler.elaborate.builtins import _range_length


def net(body: str, defs: str = "", input_shape: str = "[3, 8, 8]") -> str:
    return f"{defs}\nnetwork N {{\n    input {input_shape}\n    {body}\n}}\n"


def errors(text: str) -> list[tuple[str, int]]:
    """(code, line) of each error."""
    result = elaborate_file("t.cnn", text=text)
    return [(d.code, d.span.line if d.span else 0) for d in result.diagnostics if d.is_error]


def codes(text: str) -> list[str]:
    return [code for code, _ in errors(text)]


def doubling(start: str, times: int) -> str:
    lines = [f"v0 = {start}"] + [f"v{i} = v{i - 1} + v{i - 1}" for i in range(1, times + 1)]
    return "\n    ".join(lines)


RESIDUAL = "block Res { return (in -> Conv(8, 3, pad = 1) -> ReLU) + in }"

# The resource cases of the issue, each with the budget that stops it and the line it points at.
RUNAWAYS = [
    pytest.param(
        net(
            "x = [[[i * j * k for i in range(1000)] for j in range(1000)] for k in range(1000)]\n"
            "    return in -> Conv(len(x), 1)"
        ),
        "E0706",
        4,
        id="nested-comprehension-product",
    ),
    pytest.param(
        net(
            "x = [[i for i in range(100000)] for j in range(100)]\n    return in -> Conv(len(x), 1)"
        ),
        "E0706",
        4,
        id="comprehension-product-over-the-steps",
    ),
    pytest.param(
        net(doubling("[0]", 28) + "\n    return in -> Conv(len(v28), 1)"),
        "E0702",
        24,
        id="list-doubling",
    ),
    pytest.param(
        net(doubling('"ab"', 28) + "\n    return in -> label(v28, ReLU)"),
        "E0703",
        20,
        id="string-doubling",
    ),
    pytest.param(
        net("x = pow(pow(pow(pow(10, 64), 64), 64), 64)\n    return in -> Conv(x, 1)"),
        "E0704",
        4,
        id="pow-tower",
    ),
    pytest.param(
        net(doubling("3", 40).replace(" + ", " * ") + "\n    return in -> Conv(v40, 1)"),
        "E0704",
        13,
        id="repeated-squaring",
    ),
    pytest.param(
        net("x = [0] * 600000 + [1] * 600000\n    return in -> Conv(len(x), 1)"),
        "E0702",
        4,
        id="list-plus",
    ),
    pytest.param(
        net(
            "big = range(999999)\n    x = [big + [i] for i in range(100)]\n"
            "    return in -> Conv(len(x), 1)"
        ),
        "E0707",
        5,
        id="copies-in-a-loop",
    ),
    pytest.param(
        net("return in -> [Res for i in range(200000)]", RESIDUAL, "[8, 8, 8]"),
        "E0701",
        4,
        id="list-of-blocks",
    ),
    pytest.param(net("return in -> [ReLU] * 300000"), "E0701", 4, id="repeated-list-applied"),
    pytest.param(
        net("return in -> [Conv(8, 1) for i in range(300000)]"),
        "E0701",
        4,
        id="comprehension-of-ops",
    ),
]


@pytest.mark.parametrize("text, code, line", RUNAWAYS)
def test_runaways_stop_with_one_located_error(text, code, line):
    assert errors(text) == [(code, line)]


def test_a_zoo_model_with_a_million_blocks_is_refused_before_building_them():
    text = 'import "families/resnet.cnn"\nnetwork r = ResNet([3, 1000000, 6, 3])\n'
    result = elaborate_file(ROOT / "zoo" / "x.cnn", text=text)
    (d,) = [d for d in result.diagnostics if d.is_error]
    assert d.code == "E0701"
    assert "1,000,000 layers needs at least 6,000,000 nodes" in d.message
    # refused by the estimate: only the stem and the first stage were built, not 250,000 nodes
    assert len(result.graph) < 100


def test_the_exit_code_of_a_runaway_is_1(tmp_path, capsys):
    path = tmp_path / "big.cnn"
    path.write_text(net(doubling("[0]", 28) + "\n    return in -> Conv(len(v28), 1)"))
    code, _, err = run_cli(["check", path], capsys)
    assert code == 1
    assert "error[E0702]" in err


def test_a_comprehension_with_a_condition_is_not_refused_for_items_it_filters_out():
    text = net(
        "return concat([in -> Conv(8, 1) -> ReLU -> ReLU -> ReLU for i in range(70000) if i < 3])"
    )
    assert codes(text) == []


def test_a_hundred_thousand_layer_chain_fits_the_node_budget():
    assert limits.MAX_NODES >= 100_001


def test_integer_literals_and_results_are_bounded():
    assert codes(net("return in -> Conv(pow(pow(2, 60), 5) * pow(pow(2, 60), 5), 1)")) == ["E0704"]
    assert codes(net("return in -> Conv(int(1e300), 1)")) == ["E0704"]
    assert (
        codes(net("return in -> Conv(pow(pow(2, 60), 5) // pow(pow(2, 58), 5), 1)")) == []
    )  # 1024 channels


@pytest.mark.parametrize(
    "text, code",
    [
        ("network a = a", "E0215"),
        ("network a = b\nnetwork b = a", "E0215"),
        ("block P = P\n" + net("return in -> P"), "E0215"),
        (
            'import "families/mobilenet.cnn"\nnetwork MobileNetV2 = MobileNetV2(width = 1.0)',
            "E0216",
        ),
        ("block A(x = A()) { return in -> Conv(x, 1) }\n" + net("return in -> A()"), "E0217"),
        (
            "block A(x = B()) { return in -> Conv(x, 1) }\nblock B(y = A()) { return in }\n"
            + net("return in -> A()"),
            "E0217",
        ),
    ],
)
def test_cycles_among_definitions_are_located_errors(text, code):
    result = elaborate_file(
        ROOT / "zoo" / "x.cnn", text=text, network="a" if text.startswith("network a") else None
    )
    assert [d.code for d in result.diagnostics if d.is_error] == [code]


def blocks_nested(depth: int) -> str:
    defs = ["block B0 { return in -> ReLU }"] + [
        f"block B{i} {{ return in -> B{i - 1} }}" for i in range(1, depth)
    ]
    return net(f"return in -> B{depth - 1}", "\n".join(defs))


def lets_chained(count: int) -> str:
    lines = ["a0 = 1"] + [f"a{i} = a{i - 1} + 1" for i in range(1, count + 1)]
    return "\n".join(lines) + "\n" + net(f"return in -> Conv(a{count}, 1)")


def test_deep_but_reasonable_nesting_elaborates():
    assert codes(blocks_nested(200)) == []
    assert codes(lets_chained(300)) == []


def test_nesting_beyond_the_depth_budget_is_a_located_error():
    assert errors(blocks_nested(1200))[0][0] == "E0705"
    assert errors(lets_chained(700))[0][0] == "E0705"


def test_what_still_exhausts_the_stack_is_an_error_not_a_crash(monkeypatch):
    """A value nested by thousands of statements can outgrow the stack below MAX_DEPTH; Python's
    RecursionError is then reported as E0705 (simulated here with a small recursion limit)."""
    import sys

    monkeypatch.setattr(limits, "ensure_recursion_room", lambda: None)
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(600)
    try:
        found = codes(lets_chained(300))
    finally:
        sys.setrecursionlimit(before)
    assert found == ["E0705"]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["+", "-", "*", "//", "%"]),
    st.integers(-(2**600), 2**600),
    st.integers(-(2**600), 2**600),
)
def test_the_bits_bound_holds_for_every_operation(op, a, b):
    if op in ("//", "%") and b == 0:
        return
    result = {"+": a + b, "-": a - b, "*": a * b, "//": a // b if b else 0, "%": a % b if b else 0}[
        op
    ]
    assert abs(result).bit_length() <= limits.int_bits_after(op, a, b)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**40), st.integers(1, 64))
def test_the_pow_bound_holds(base, exponent):
    assert (base**exponent).bit_length() <= limits.pow_bits(base, exponent) or base < 2


@settings(max_examples=200, deadline=None)
@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(-7, 7).filter(bool))
def test_range_length_matches_len(start, stop, step):
    assert _range_length(range(start, stop, step)) == len(range(start, stop, step))


def test_a_list_shared_at_every_level_is_refused_before_it_is_spread():
    lines = ["a0 = [ReLU] * 64"] + [f"a{i} = [a{i - 1}] * 64" for i in range(1, 11)]  # 64¹¹ layers
    assert errors(net("\n    ".join(lines) + "\n    return in -> a10")) == [("E0701", 15)]


def test_long_values_are_shown_cut():
    from cnnc.compiler.elaborate.values import SHOW_LIMIT, show

    shared = (1,) * 64
    for _ in range(10):
        shared = (shared,) * 64
    assert len(show(shared)) <= SHOW_LIMIT + 1
    assert show(tuple(range(3))) == "[0, 1, 2]"


def test_blocks_that_double_at_each_level_are_refused_before_building():
    defs = ["block B0 { return in -> ReLU }"] + [
        f"block B{i} {{ return in -> B{i - 1} -> B{i - 1} }}" for i in range(1, 31)
    ]  # 2³⁰ ReLUs
    result = elaborate_file("t.cnn", text=net("return in -> B30", "\n".join(defs)))
    (d,) = [d for d in result.diagnostics if d.is_error]
    assert d.code == "E0701"
    assert "at least 1,073,741,824 nodes" in d.message
    assert len(result.graph) <= 2


def test_a_repeated_op_is_bound_once_and_still_checked_per_kind_of_value():
    assert codes(net("return in -> [Conv(8, 1) for i in range(3)] -> Conv(8.0, 1)")) == ["E0404"]
    assert codes(
        net("return in -> [Conv(8, 1, bias = true) for i in range(2)] -> Conv(8, 1, bias = 1)")
    ) == ["E0404"]


ZOO_MODELS = sorted(p for p in (ROOT / "zoo").glob("*.cnn"))


@pytest.mark.parametrize("path", ZOO_MODELS, ids=lambda p: p.stem)
def test_the_node_estimate_of_every_zoo_block_is_a_lower_bound(path):
    """The estimate may refuse a program only if it errs low: every block instance of every zoo
    model makes at least as many nodes as its estimate says."""
    from cnnc.api import graph, load_program
    from cnnc.compiler.elaborate import network_names
    from cnnc.compiler.elaborate.estimate import block_nodes
    from cnnc.compiler.elaborate.scopes import module_scopes
    from cnnc.compiler.elaborate.values import BlockRef
    from cnnc.dsl import ast

    program = load_program(path)
    bounds: dict[str, set[int]] = {}
    cache: dict = {}
    for scope in module_scopes(program).values():
        for item in scope.module.items:
            if isinstance(item, ast.BlockDef):
                bounds.setdefault(item.name, set()).add(block_nodes(BlockRef(item, scope), cache))
    for network, concrete in network_names(program):
        if concrete:
            _check_bounds(graph(path, network=network), bounds)


def _check_bounds(g, bounds: dict) -> None:
    made: dict[tuple, int] = {}
    for node in g.nodes_in_order():
        for k in range(1, len(node.path)):
            made[node.path[:k]] = made.get(node.path[:k], 0) + 1
    checked = 0
    for scope_path, scope in g.scopes.items():
        name = scope.title.split("(")[0]
        if scope.kind == "block" and len(bounds.get(name, ())) == 1:
            (bound,) = bounds[name]
            assert made.get(scope_path, 0) >= bound, (scope_path, scope.title)
            checked += 1
    assert checked or not any(s.kind == "block" for s in g.scopes.values())


# -- what a command spends in all (limits.Ledger, E0708) --------------------------------------------


def chains(count: int, length: int) -> str:
    """`count` networks of a `length`-layer chain each."""
    return "\n".join(
        f"network N{i} {{ input [3, 8, 8] return in -> [ReLU for i in range({length})] }}"
        for i in range(count)
    )


def test_the_networks_of_a_file_share_one_budget(tmp_path, capsys, monkeypatch):
    """Each network is within its own budget; the third is refused before it is built, and the
    networks after it are not elaborated at all."""
    monkeypatch.setattr(limits, "COMMAND_NODES", 50)
    path = tmp_path / "many.cnn"
    path.write_text(chains(40, 20))
    code, out, err = run_cli(["check", path, "--format", "concise"], capsys)
    assert code == 1
    assert out.splitlines() == [
        "ok: N0: [3, 8, 8] → [3, 8, 8], 21 nodes",
        "ok: N1: [3, 8, 8] → [3, 8, 8], 21 nodes",
    ]
    assert err.splitlines() == [
        (
            f"{path}:3:43: error[E0708]: the networks of this file need at least 63 nodes, more than the 50 "
            "allowed in all"
        ),
        "  help: check the networks of a large file one at a time: `cnnc check FILE:NETWORK`",
        "found 1 error in 1 file",
    ]


def test_nodes_made_one_by_one_are_charged_as_they_are_made(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(limits, "COMMAND_NODES", 50)
    path = tmp_path / "many.cnn"
    path.write_text(
        "\n".join(
            f"network N{i} {{ input [3, 8, 8] return in -> " + " -> ".join(["ReLU"] * 20) + " }"
            for i in range(5)
        )
    )
    code, out, err = run_cli(["check", path, "--format", "concise"], capsys)
    assert code == 1
    assert len(out.splitlines()) == 2
    assert "error[E0708]: the networks of this file make more than 50 nodes in all" in err
    assert err.count("error[") == 1


def test_each_file_of_a_check_has_its_own_budget(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(limits, "COMMAND_NODES", 50)
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.cnn").write_text(chains(2, 20))
    code, out, _ = run_cli(["check", *sorted(tmp_path.glob("*.cnn"))], capsys)
    assert code == 0
    assert len(out.splitlines()) == 6


def test_the_python_api_gives_each_elaboration_its_own_budget(monkeypatch):
    monkeypatch.setattr(limits, "COMMAND_NODES", 50)
    for _ in range(5):
        assert codes(chains(1, 40)) == []


def test_the_hint_stops_trying_inputs_when_the_budget_runs_out(tmp_path, capsys, monkeypatch):
    """The smallest-input hint elaborates the network again at other sizes: those tries are
    charged too, and the hint is left out rather than guessed from a try the budget stopped."""
    text = net("return in -> [Conv(4, 3) for i in range(30)]", input_shape="[3, 40, 40]")
    path = tmp_path / "small.cnn"
    path.write_text(text)
    code, _, err = run_cli(["check", path], capsys)
    assert code == 1 and "the smallest input this network accepts is [3, 61, 61]" in err
    monkeypatch.setattr(limits, "COMMAND_NODES", 60)
    code, _, err = run_cli(["check", path], capsys)
    assert code == 1 and "error[E0303]" in err and "smallest input" not in err


def test_the_members_cnnc_space_samples_share_one_budget(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(limits, "COMMAND_NODES", 200)
    path = tmp_path / "space.cnn"
    path.write_text(net("return in -> [ReLU for i in range(choice(40, 39))]"))
    code, out, err = run_cli(["space", path], capsys)
    assert code == 1
    assert out == ""
    assert (
        err.splitlines()[0]
        == "error[E0708]: the sampled members need at least 201 nodes, more than the 200 allowed in all"
    )
    assert "help: analyse fewer random members: `--samples N` (asked: 200)" in err
    code, out, _ = run_cli(["space", path, "--samples", "3"], capsys)
    assert code == 0 and "3 random members" in out


def test_a_memory_error_is_one_line_not_a_traceback(capsys, monkeypatch):
    from cnnc.commands import check

    def exhausted(args):
        raise MemoryError

    monkeypatch.setattr(check, "run", exhausted)
    code, _, err = run_cli(["check", ROOT / "zoo" / "lenet5.cnn"], capsys)
    assert code == 1
    assert err.splitlines()[0] == "error: `cnnc check` ran out of memory"
    assert "Traceback" not in err


# -- what a network needs to run (E0709) ----------------------------------------------------------

HUGE = net(
    "return in -> Linear(32767, bias = false) -> Linear(65535, bias = false)\n"
    "        -> Linear(32767, bias = false) -> Linear(65535, bias = false)",
    input_shape="[65536]",
)


@pytest.mark.parametrize("command", ["check", "summary", "compile", "render"])
def test_a_network_of_32_gib_fails_every_command_with_the_budget_in_the_message(
    tmp_path, capsys, command
):
    path = tmp_path / "huge.cnn"
    path.write_text(HUGE)
    code, _, err = run_cli(
        [command, path, *(["-o", tmp_path / "out.py"] if command == "compile" else [])], capsys
    )
    assert code == 1
    assert (
        "error[E0709]: the network would not fit in memory: its 6,442,188,802 parameters up to here take "
        "24.0 GiB, over the 16.0 GiB cnnc allows" in err
    )


def test_activations_count_toward_the_memory_budget(monkeypatch):
    monkeypatch.setenv(
        "CNNC_MAX_MEMORY", "1M"
    )  # 262,144 float32 values: the input and 15 maps of 16,384
    assert codes(net("return in -> [ReLU for i in range(15)]", input_shape="[4, 64, 64]")) == []
    result = elaborate_file(
        "t.cnn", text=net("return in -> [ReLU for i in range(16)]", input_shape="[4, 64, 64]")
    )
    (d,) = result.diagnostics
    assert d.code == "E0709"
    assert d.message == (
        "the network would not fit in memory: its parameters and activations at batch 1 up to "
        "here take 1.1 MiB, over the 1.0 MiB cnnc allows"
    )


def test_the_memory_budget_is_half_the_machine_unless_set():
    assert limits.max_memory({}) == limits.machine_memory() // 2
    assert 2**28 <= limits.machine_memory() < 2**50
    assert limits.max_memory({"CNNC_MAX_MEMORY": "3G"}) == 3 * 2**30
    assert limits.max_memory({"CNNC_MAX_MEMORY": "lots"}) == limits.machine_memory() // 2


@pytest.mark.parametrize(
    "text, value",
    [
        ("12000000", 12_000_000),
        ("512M", 2**29),
        ("8g", 2**33),
        ("8GiB", 2**33),
        ("1.5K", 1536),
        ("0", None),
        ("-1G", None),
        ("inf", None),
        ("nan", None),
        ("", None),
        ("G", None),
        ("1e300", None),
    ],
)
def test_memory_sizes_parse(text, value):
    assert limits.parse_bytes(text) == value


def test_a_tiny_upsampling_scale_is_summarised(tmp_path, capsys):
    """A scale below one two-millionth (a very wide input made one pixel wide) is checked, and
    its receptive field is measured from the sizes, not from a scale rounded to zero."""
    import json

    path = tmp_path / "tiny.cnn"
    path.write_text(
        net("return in -> Upsample(scale_factor = [1, 0.0000003])", input_shape="[1, 4, 4000000]")
    )
    code, out, _ = run_cli(["summary", path, "--format", "json"], capsys)
    assert code == 0
    summary = json.loads(out)
    assert summary["output"] == [1, 4, 1]
    assert [(layer["name"], layer["rf"]) for layer in summary["layers"]] == [
        ("input", 1),
        ("upsample", 1),
    ]


def test_a_file_is_scanned_once_however_many_networks_it_has(tmp_path, capsys, monkeypatch):
    """Its names and static warnings are made once per file, not once per network (a file of n
    networks cost n² before: 3,000 of them took minutes)."""
    from cnnc.compiler.elaborate import scopes, unused

    calls = {"names": 0, "warnings": 0}

    def counted(name, real):
        def wrapper(*args):
            calls[name] += 1
            return real(*args)

        return wrapper

    monkeypatch.setattr(scopes, "_names_table", counted("names", scopes._names_table))
    monkeypatch.setattr(unused, "_static_warnings", counted("warnings", unused._static_warnings))
    path = tmp_path / "many.cnn"
    path.write_text(chains(30, 2) + "\nnetwork M { input [3, 8, 8]\n unused = 3\n return in }\n")
    code, out, err = run_cli(["check", path, "--format", "concise"], capsys)
    assert code == 0
    assert len(out.splitlines()) == 31
    assert err.count("warning[W0101]") == 1
    assert calls == {"names": 1, "warnings": 1}


@pytest.mark.parametrize(
    "total, bound, what",
    [
        ("COMMAND_STEPS", 100, "comprehension steps"),
        ("COMMAND_ITEMS", 150, "list items and characters"),
    ],
)
def test_steps_and_items_are_totals_of_the_file_too(
    tmp_path, capsys, monkeypatch, total, bound, what
):
    monkeypatch.setattr(limits, total, bound)
    path = tmp_path / "steps.cnn"
    path.write_text(
        "\n".join(
            f"network N{i} {{ input [3, 8, 8]\n x = [i for i in range(40)]\n"
            " return in -> Conv(len(x), 1) }"
            for i in range(5)
        )
    )
    code, out, err = run_cli(["check", path, "--format", "concise"], capsys)
    assert code == 1
    assert len(out.splitlines()) == (2 if total == "COMMAND_STEPS" else 1)
    assert f"error[E0708]: the networks of this file make more than {bound} {what} in all" in err
    assert err.count("error[") == 1


# A container's memory: its cgroup's limit, which the machine's figures do not show

G, M = 2**30, 2**20


def cgroup_tree(tmp_path, proc_line: str, groups: dict[str, dict[str, str]]):
    """A /proc/self/cgroup of one line and a cgroup mount holding `groups` (folder -> files)."""
    proc = tmp_path / "cgroup"
    proc.write_text(proc_line + "\n")
    root = tmp_path / "sys"
    root.mkdir()
    for folder, files in groups.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (root / folder / name).write_text(text)
    return str(proc), str(root)


@pytest.mark.parametrize(
    "proc_line, groups, expected",
    [
        (  # v2: limit less usage, the inactive page cache reclaimable
            "0::/a/b",
            {
                "a": {"memory.max": "max", "memory.current": str(3 * G)},
                "a/b": {
                    "memory.max": str(G),
                    "memory.current": str(512 * M),
                    "memory.stat": f"anon 1\ninactive_file {128 * M}\nactive_file 5\n",
                },
            },
            (G, 640 * M),
        ),
        (  # v2: a parent's limit is the tighter
            "0::/a/b",
            {
                "a": {"memory.max": str(768 * M), "memory.current": str(700 * M)},
                "a/b": {"memory.max": str(G), "memory.current": str(100 * M)},
            },
            (768 * M, 68 * M),
        ),
        (  # v1 in a container: the host's path is absent, the mount is the container's cgroup
            "4:memory:/docker/abc",
            {
                "memory": {
                    "memory.limit_in_bytes": str(2 * G),
                    "memory.usage_in_bytes": str(G),
                    "memory.stat": f"cache 9\ntotal_inactive_file {G // 2}\n",
                },
            },
            (2 * G, 3 * G // 2),
        ),
        (  # v1 without a limit (the largest page-aligned long)
            "4:memory:/",
            {
                "memory": {
                    "memory.limit_in_bytes": "9223372036854771712",
                    "memory.usage_in_bytes": "5",
                }
            },
            (None, None),
        ),
        ("0::/", {"": {"memory.current": "5"}}, (None, None)),  # v2 root: no memory.max
        ("0::/a", {"a": {"memory.max": "lots", "memory.current": "5"}}, (None, None)),
        ("0::/a", {"a": {"memory.max": str(G), "memory.current": str(2 * G)}}, (G, 0)),
    ],
)
def test_cgroup_memory_reads_the_tightest_limit_and_room(tmp_path, proc_line, groups, expected):
    assert limits.cgroup_memory(*cgroup_tree(tmp_path, proc_line, groups)) == expected


def test_no_cgroup_file_is_no_limit(tmp_path):
    assert limits.cgroup_memory(str(tmp_path / "absent"), str(tmp_path)) == (None, None)


def test_the_memory_budget_and_a_members_room_follow_the_cgroup(monkeypatch):
    from cnnc.search.evaluators import fit

    monkeypatch.setattr(limits, "cgroup_limit", lambda: 2 * G)
    assert limits.machine_memory() == 2 * G and limits.max_memory({}) == G
    monkeypatch.setattr(fit, "_system_available", lambda: 20 * G)
    monkeypatch.setattr(limits, "cgroup_memory", lambda: (2 * G, 300 * M))
    assert fit.available_bytes("cpu") == 300 * M
    monkeypatch.setattr(limits, "cgroup_memory", lambda: (None, None))
    assert fit.available_bytes("cpu") == 20 * G
