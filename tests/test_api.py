"""The Python API (`cnnc.*`): the same figures and text as the command line, one keyword per idea,
program text as well as files, and graphs or modules summarised as they were built."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import warnings

import pytest
from conftest import ROOT, run_cli

import cnnc
from cnnc.dsl.diagnostics import CnncError

TINY = "network t { input [3, 8, 8] return in -> c: Conv(4, 3, pad = 1) -> ReLU -> Flatten -> fc: Linear(10) }"
TINY_TABLE = """\
t · input [3, 8, 8] · batch 1 · float32 (4 bytes)

name     op           output  memory  params   MACs           RF
───────  ───────────  ──────  ──────  ──────  ─────  ───────────
input    Input        3×8×8      192       0      0            1
c        Conv 3×3, 4  4×8×8      256     112  6,912            3
flatten  Flatten      256          0       0      0  whole input
fc       Linear, 10   10          10   2,570  2,560  whole input

output       [10]
params       2,682  (2.68 K)
MACs         9,472  (9.47 KMAC; FLOPs = 2 × MACs = 18.94 K)
activations  458 elements = 0.0 MiB forward, ≈ 0.0 MiB to train (×2, kept for the backward pass)
weights      0.0 MiB
(1 in-place activation and view rows hidden; --all shows them)"""


def test_str_of_a_summary_is_the_table_the_cli_prints(in_root, capsys):
    code, out, _ = run_cli(["summary", "resnet18"], capsys)
    assert code == 0
    summary = cnnc.summary("resnet18")
    assert str(summary) + "\n" == out
    assert (
        str(summary).splitlines()[0]
        == "resnet18 · input [3, 224, 224] · batch 1 · float32 (4 bytes)"
    )
    assert repr(summary) == str(summary)


def test_a_summary_of_text_is_the_exact_table(tmp_path, capsys):
    assert str(cnnc.summary(text=TINY)) == TINY_TABLE
    (tmp_path / "t.cnn").write_text(TINY)
    assert run_cli(["summary", tmp_path / "t.cnn"], capsys)[1] == TINY_TABLE + "\n"


def test_a_notebook_shows_the_table_escaped():
    html = cnnc.summary(text=TINY)._repr_html_()
    assert html == "<pre>" + TINY_TABLE.replace("&", "&amp;") + "</pre>"
    assert html.count("<") == 2  # nothing of the table is markup


def test_to_dict_is_the_cli_json(in_root, capsys):
    code, out, _ = run_cli(["summary", "resnet18", "--format", "json"], capsys)
    assert code == 0
    data = cnnc.summary("resnet18").to_dict()
    assert data == json.loads(out)
    assert (data["params"], data["macs"], data["batch"]) == (11_689_512, 1_814_073_344, 1)


def test_batch_scales_macs_and_memory_not_params(tmp_path, capsys):
    one, four = cnnc.summary(text=TINY), cnnc.summary(text=TINY, batch=4)
    assert (four.params, four.macs, four.activations, four.batch) == (2_682, 4 * 9_472, 4 * 458, 4)
    assert [r.macs for r in four.layers] == [0, 4 * 6_912, 0, 0, 4 * 2_560]
    assert [r.rf for r in four.layers] == [r.rf for r in one.layers]
    (tmp_path / "t.cnn").write_text(TINY)
    code, out, _ = run_cli(["summary", tmp_path / "t.cnn", "--batch", "4"], capsys)
    assert code == 0
    assert out == str(four) + "\n"
    assert out.splitlines()[0] == "t · input [3, 8, 8] · batch 4 · float32 (4 bytes)"
    assert (
        out.splitlines()[5] == "c        Conv 3×3, 4  4×8×8    1,024     112  27,648            3"
    )
    code, out, _ = run_cli(
        ["summary", tmp_path / "t.cnn", "--batch", "4", "--format", "json"], capsys
    )
    assert json.loads(out) == four.to_dict()


@pytest.mark.parametrize("batch", [0, -1, 1.5, True])
def test_a_batch_below_one_or_not_whole_is_refused(batch):
    with pytest.raises(ValueError, match="`batch` must be a whole number of 1 or more"):
        cnnc.summary(text=TINY, batch=batch)


def test_a_graph_is_summarised_without_parsing_again(monkeypatch):
    import cnnc.api

    graph = cnnc.graph(text=TINY)

    def no_parsing(*args, **kwargs):
        raise AssertionError("the program was read again")

    monkeypatch.setattr(cnnc.api, "elaborate_file", no_parsing)
    assert str(cnnc.summary(graph)) == TINY_TABLE


def test_a_graph_takes_none_of_the_options_that_build_one():
    graph = cnnc.graph(text=TINY)
    with pytest.raises(TypeError, match="`args`, `input` apply to a path or program text"):
        cnnc.summary(graph, args={"classes": 3}, input=(3, 16, 16))
    with pytest.raises(TypeError, match="got dict"):
        cnnc.summary({"network": "t"})


def test_a_module_from_load_is_summarised_from_the_graph_it_keeps(monkeypatch):
    pytest.importorskip("torch")
    import cnnc.api

    model = cnnc.load(text=TINY, seed=0)
    monkeypatch.setattr(cnnc.api, "elaborate_file", None)  # reading the program again would fail
    assert str(cnnc.summary(model)) == TINY_TABLE
    assert cnnc.summary(model, batch=2).macs == 2 * 9_472


def test_load_takes_program_text_as_compile_source_does():
    torch = pytest.importorskip("torch")
    model = cnnc.load(text=TINY, seed=0)
    same = cnnc.compile_source(TINY, seed=0)
    assert model(torch.zeros(2, 3, 8, 8)).shape == (2, 10)
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values())
    )


def test_text_imports_resolve_beside_the_path_it_is_given(tmp_path):
    (tmp_path / "blocks.cnn").write_text(
        "block Unit(c) { return in -> conv: Conv(c, 3, pad = 1) }\n"
    )
    text = 'import "blocks.cnn"\nnetwork n { input [3, 8, 8] return in -> u: Unit(5) }\n'
    assert cnnc.graph(tmp_path / "main.cnn", text=text).output_type.shape == (5, 8, 8)


def test_no_path_and_no_text_is_a_type_error():
    with pytest.raises(TypeError, match="give a .cnn path or zoo name, or the program as `text=`"):
        cnnc.graph()


def test_input_is_the_one_keyword_for_shapes_and_input_shape_still_works_with_a_warning():
    assert cnnc.graph(text=TINY, input=(3, 16, 16)).node(0).type.shape == (3, 16, 16)
    assert cnnc.summary(text=TINY, input=(3, 16, 16)).input == (3, 16, 16)
    with pytest.warns(
        DeprecationWarning, match=r"cnnc.graph\(input_shape=…\) is now cnnc.graph\(input=…\)"
    ):
        old = cnnc.graph(text=TINY, input_shape=(3, 16, 16))
    assert old.node(0).type.shape == (3, 16, 16)
    with pytest.raises(TypeError, match="both `input` and its old name"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cnnc.graph(text=TINY, input=(3, 8, 8), input_shape=(3, 16, 16))


def test_args_are_taken_alike_by_graph_summary_and_load():
    text = "network n(classes = 10) { input [3, 8, 8] return in -> Flatten -> fc: Linear(classes) }"
    assert cnnc.graph(text=text, args={"classes": 3}).output_type.shape == (3,)
    assert cnnc.graph(text=text, args=["classes=4"]).output_type.shape == (4,)
    assert cnnc.summary(text=text, args={"classes": 5}).output == (5,)
    with pytest.raises(TypeError, match="takes a dict or a list"):
        cnnc.graph(text=text, args="classes=4")


STRING_ARG = """\
network n(s = "x", sizes = [1]) {
    input [3, 8, 8]
    assert s == "a\\nb \\"q\\" \\\\ \\u202e é", "s came through changed"
    assert sizes == [2, -3, 0.5], "sizes came through changed"
    return in -> ReLU
}
"""


def test_args_of_any_text_reach_the_network_as_given():
    """A string argument with a newline, quotes, a backslash or a bidi mark is written as a .cnn
    literal the network reads back (it was cut at the newline: `unexpected character`)."""
    args = {"s": 'a\nb "q" \\ \u202e é', "sizes": (2, -3, 0.5)}
    assert cnnc.graph(text=STRING_ARG, args=args).network == "n"
    with pytest.raises(CnncError, match="s came through changed"):
        cnnc.graph(text=STRING_ARG, args={**args, "s": "a\\nb"})
    with pytest.raises(TypeError, match="but got dict"):
        cnnc.graph(text=STRING_ARG, args={"s": {"a": 1}})
    with pytest.raises(ValueError, match="finite"):
        cnnc.graph(text=STRING_ARG, args={"sizes": [float("inf")]})


def test_a_program_error_raises_the_rendered_diagnostic():
    with pytest.raises(CnncError) as info:
        cnnc.summary(text="network n { input [3, 8, 8] return in -> Conv(4, 9) }")
    text = str(info.value)
    assert text.splitlines()[0].startswith("error[E0303]: `Conv` shrinks the height to 0")
    assert (
        " --> <source>.cnn:1:" in text and "^" in text and text.endswith("found 1 error in 1 file")
    )


def test_dir_and_all_list_the_public_api():
    public = {
        "check",
        "graph",
        "summary",
        "load",
        "render",
        "diagram",
        "compile_source",
        "search",
        "train",
        "CnncError",
        "Diagnostic",
    }
    assert public <= set(dir(cnnc))
    assert set(cnnc.__all__) == public | {"__version__"}
    assert "annotations" not in dir(cnnc)
    for name in cnnc.__all__:
        assert getattr(cnnc, name) is not None


@pytest.mark.parametrize(
    "name",
    [
        "check",
        "graph",
        "summary",
        "load",
        "render",
        "diagram",
        "compile_source",
        "runs.search",
        "runs.train",
    ],
)
def test_every_public_function_has_a_docstring_and_type_hints(name):
    import cnnc.runs

    fn = (
        cnnc.runs.search
        if name == "runs.search"
        else cnnc.runs.train
        if name == "runs.train"
        else getattr(cnnc, name)
    )
    assert fn.__doc__ and len(fn.__doc__) > 40
    signature = inspect.signature(fn)
    assert signature.return_annotation is not inspect.Signature.empty
    unhinted = [
        p.name
        for p in signature.parameters.values()
        if p.annotation is inspect.Parameter.empty
        and p.kind is not p.VAR_KEYWORD
        and p.name != "decider"
    ]
    assert unhinted == []


def test_importing_cnnc_and_summarising_imports_no_torch():
    code = (
        "import sys, cnnc; lazy = 'cnnc.api' not in sys.modules; s = str(cnnc.summary('resnet18')); "
        "print(lazy, 'torch' in sys.modules, s.splitlines()[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip()
        == "True False resnet18 · input [3, 224, 224] · batch 1 · float32 (4 bytes)"
    )


def test_check_returns_every_diagnostic_without_raising():
    assert cnnc.check(text=TINY) == []
    found = cnnc.check(text="network n { input [3, 8, 8] return in -> Conv(4, 9) -> Bogus }")
    assert [(d.code, d.span.where()) for d in found] == [
        ("E0303", "<source>.cnn:1:42"),
        ("E0201", "<source>.cnn:1:56"),
    ]
    assert [d.code for d in cnnc.check(text="network n { input [3, 8, 8] return in -> }")] == [
        "E0101"
    ]


@pytest.mark.parametrize(
    "first",
    [
        "import cnnc",
        "import cnnc.search.space",
        "from cnnc.search import space",
        "from cnnc import search",
    ],
)
def test_cnnc_search_is_the_room_and_callable_however_it_was_first_imported(first):
    code = (
        f"{first}\nimport cnnc, cnnc.search.space\nfrom cnnc import search\n"
        "print(callable(cnnc.search), search is cnnc.search, cnnc.search.space.walk.__module__, "
        "cnnc.search.__call__.__doc__.startswith('`cnnc.search(path'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True True cnnc.search.space True"


def test_the_api_names_the_smallest_input_as_the_cli_does(capsys):
    """`cnnc.graph` and `cnnc.check` carry the same help line as `cnnc check` (compiler/hints.py)."""
    hint = "the smallest input this network accepts is [3, 32, 32]"
    with pytest.raises(CnncError) as info:
        cnnc.graph("vgg16", input=(3, 16, 16))
    assert [d.code for d in info.value.diagnostics] == ["E0303"] and hint in info.value.diagnostics[
        0
    ].helps
    assert hint in cnnc.check("vgg16", input=(3, 16, 16))[0].helps
    code, _, err = run_cli(["check", "vgg16", "--input", "3,16,16"], capsys)
    assert code == 1 and err.count(hint) == 1 and str(info.value).split("\n\nfound")[0] in err


NO_GLOBALS = """
import sys, types
import cnnc.compiler.ir, cnnc.compiler.frontend, cnnc.compiler.render.dot, cnnc.dsl.programs
def state():
    return {
        name: {k: id(v) for k, v in vars(m).items() if not isinstance(v, types.ModuleType)}
        for name, m in list(sys.modules.items())
        if name.startswith("cnnc.") and name != sys.argv[1]
    }
before = state()
__import__(sys.argv[1])
after = state()
print(sorted(n for n in before if before[n] != after[n]))
"""


@pytest.mark.parametrize("module", ["cnnc.api", "cnnc.cli", "cnnc.runs"])
def test_importing_the_top_sets_no_global_of_the_rooms_below(module):
    """Graphs draw themselves in notebooks by a renderer handed to them, not by a hook that importing
    `cnnc.api` would plug into the IR: no module imported before it changes when it is imported."""
    done = subprocess.run(
        [sys.executable, "-c", NO_GLOBALS, module],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_apis_graphs_draw_themselves_and_the_elaborators_stay_as_they_are():
    from cnnc.compiler.frontend import elaborate_file

    bare = elaborate_file("t.cnn", text=TINY).graph
    assert bare._repr_svg_() is None  # no renderer: the IR draws nothing by itself
    drawn = cnnc.graph(text=TINY)
    assert str(drawn) == str(bare) and drawn.network == bare.network
    assert drawn._diagram is not None and bare._diagram is None
    assert cnnc.elaborate_file("t.cnn", text=TINY).graph._diagram is drawn._diagram
