"""A .cnn file is data: nothing in it runs (STYLE.md rule 13).

Two independent walls. The label rule (`compiler/names.py`) rejects at check time every label that
is not an identifier or a number, or that Python or torch already uses (E0208, E0209). And the
emitters escape whatever reaches generated Python: the tests below build graphs whose labels,
block titles, network name and file name are arbitrary Unicode (quotes, backslashes, newlines,
surrogates, ESC, `__import__`, `\"\"\"`), bypassing the rule, and require the generated source and the
fx code to be, up to names and string contents, exactly what a harmless label gives.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT, run_cli
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnnc import api
from cnnc.compiler import names
from cnnc.compiler.ir import Graph
from cnnc.dsl import records
from cnnc.dsl.diagnostics import CnncError
from cnnc.dsl.literals import escape_string

torch = pytest.importorskip("torch")
from cnnc.compiler.lower import source  # torch-side: after the skip
from cnnc.compiler.lower.fx import class_name, to_graph_module

HOSTILE = [
    'x"); __import__("os").system("echo pwned"); ("',
    "x'); __import__('os').system('echo pwned'); ('",
    '"""\nimport os\nos.system("echo pwned")\n"""',
    "a\nimport os",
    "a\r__import__('os')",
    "\\",
    "a\\",
    "\x1b[2J",
    "\ud800",
    "\u2028__import__('os')",
    "\x00",
    "class",
    "__import__",
    "a.b",
    "é",
    "ﬁ",  # NFKC-normalises to `fi` as an identifier: must not be written `self.ﬁ`
    "__mangled",
    "",
]
CHECK_REJECTS = [h for h in HOSTILE if h not in ("a.b", "__mangled")]  # those two are fine labels
SPECIALS = st.sampled_from(
    [
        '"',
        "'",
        '"""',
        "\\",
        "\n",
        "\r",
        "\x1b",
        "\ud800",
        "\x00",
        "#",
        "__import__('os')",
        ")",
        "(",
        ".",
        "\u2028",
        "é",
        "ﬁ",
        " ",
    ]
)
TEXT = st.lists(st.one_of(SPECIALS, st.characters(blacklist_categories=())), max_size=12).map(
    "".join
)

BENIGN = """
block Unit(tag) {
    main = in -> conv: Conv(3, 3, pad = 1) -> ReLU
    return main + in
}
network net {
    input [3, 8, 8]
    return in -> lbl: Unit("t") -> head: (Conv(4, 1) -> ReLU) -> LayerScale(0.1) -> Flatten
        -> Linear(10)
}
"""
TOP_SIBLINGS = {"head", "layerscale", "flatten", "linear"}


@pytest.fixture(scope="module")
def benign() -> Graph:
    return api.graph("benign.cnn", text=BENIGN)


def hostile(graph: Graph, label="lbl", inner="conv", title='Unit("t")', network="net") -> Graph:
    """`graph` with `lbl` and `lbl.conv` renamed, the block's title and the network's name replaced:
    built directly, so no label rule stands between this text and the emitters."""

    def rename(path):
        if path[:1] == ("lbl",):
            path = (label,) + path[1:]
            if path[1:2] == ("conv",):
                path = path[:1] + (inner,) + path[2:]
        return path

    nodes = [records.replace(n, path=rename(n.path)) for n in graph.nodes_in_order()]
    scopes = [
        records.replace(s, path=rename(s.path), title=title if s.path == ("lbl",) else s.title)
        for s in graph.scopes.values()
    ]
    return Graph(network, nodes, graph.output, scopes, graph.input_type)


# -- canonical ASTs: what the emitter writes, up to names and string contents ------------------------


class Canon(ast.NodeTransformer):
    """`getattr(o, 'n')` and `o.add_module('n', v)` read as `o.n` and `o.n = v`; attribute names
    that are labels, names that are not Python's own, string contents and the network's class
    name become placeholders. Two sources with equal canonical dumps differ only in those."""

    def __init__(self, labels, cls):
        self.labels, self.cls = set(labels), cls

    def visit_Call(self, node):
        node = self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) == 2:
            return ast.Attribute(node.args[0], "<label>", ast.Load())
        return node

    def visit_Expr(self, node):
        call = node.value
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "add_module"
            and len(call.args) == 2
        ):
            target = ast.Attribute(self.visit(call.func.value), "<label>", ast.Store())
            return ast.Assign([target], self.visit(call.args[1]))
        return self.generic_visit(node)

    def visit_Attribute(self, node):
        node = self.generic_visit(node)
        if node.attr in self.labels and on_self(node.value):
            node.attr = "<label>"
        return node

    def visit_Name(self, node):
        if node.id == self.cls:
            node.id = "<class>"
        return node

    def visit_ClassDef(self, node):
        node = self.generic_visit(node)
        if node.name == self.cls:
            node.name = "<class>"
        return node

    def visit_Constant(self, node):
        return ast.Constant("<text>") if isinstance(node.value, str) else node


def on_self(node) -> bool:
    """Is `node` `self`, or a chain of attributes and indices on it (a module path)?"""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return isinstance(node, ast.Name) and node.id == "self"


class FxCanon(Canon):
    """fx also names its variables after the labels: those become placeholders too, but not the
    names of Python's builtins (`getattr`, `__import__`, `exec`, `open` must stay visible)."""

    def visit_Name(self, node):
        if node.id not in dir(builtins) and node.id not in (
            "self",
            "torch",
            "operator",
            "os",
            "sys",
        ):
            node.id = "<name>"
        return node


def canonical(text: str, labels, cls: str, canon=Canon) -> str:
    return ast.dump(canon(labels, cls).visit(ast.parse(text)))


def emitted(graph: Graph, origin: str, monkeypatch) -> str:
    monkeypatch.setattr(source, "check_names", lambda graph: None)  # the emitter on its own
    return source.to_source(graph, seed=0, origin=origin)


# -- 1. the rule -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_a_label_part_is_accepted_exactly_when_it_is_an_identifier_or_a_number(text):
    problem = names.part_problem(text, top_level=False)
    # an identifier in ASCII (a hyphen allowed after the first character: RegNet's `block1-0`)
    identifier = text.replace("-", "_").isidentifier() and not text.startswith("-")
    if not (text.isascii() and (identifier or text.isdigit())):
        assert problem is not None and problem.code == "E0208"
        assert names.RULE in problem.message
    elif problem is None:
        assert names.is_part(text) and not names.is_reserved(text, top_level=False)
    else:
        assert problem.code == "E0209"


@pytest.mark.parametrize(
    "label",
    CHECK_REJECTS + ["lambda", "None", "True", "forward", "training", "state_dict", "__init__"],
)
def test_check_rejects_a_hostile_label_at_its_place(label, tmp_path, capsys):
    path = tmp_path / "n.cnn"
    path.write_text(
        f"network n {{\n    input [3, 8, 8]\n    return in -> label({escape_string(label)},"
        " Conv(4, 3))\n}\n",
        errors="surrogatepass",
    )
    code, _, err = run_cli(["check", path, "--format", "concise"], capsys)
    assert code == 1
    line = err.splitlines()[0]  # at the label, or at the escape a string cannot hold (E0111)
    assert line.startswith(f"{path}:3:") and line.split("]")[0][-5:] in (
        "E0208",
        "E0209",
        "E0405",
        "E0111",
    )


LABELS = st.one_of(
    TEXT,
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}(\.[A-Za-z0-9_-]{1,4}){0,2}", fullmatch=True),
    st.sampled_from(keyword.kwlist + sorted(names.MODULE_ATTRIBUTES | names.NETWORK_ATTRIBUTES)),
)


@settings(max_examples=120, deadline=None)
@given(LABELS)
def test_whatever_label_check_accepts_lowers_and_the_rest_is_a_located_error(text):
    program = (
        f"network n {{ input [3, 8, 8] return in -> label({escape_string(text)}, Conv(4, 3)) }}"
    )
    try:
        graph = api.graph("n.cnn", text=program)
    except CnncError as err:
        first = err.diagnostics[0]
        assert first.code in ("E0208", "E0209", "E0405", "E0111") and first.labels
        return
    assert all(names.path_problem(n.path) is None for n in graph.nodes_in_order())
    model = to_graph_module(graph, device="meta")
    assert model(torch.empty(1, 3, 8, 8, device="meta")).shape == (1, 4, 6, 6)
    compile(source.to_source(graph), "<generated>", "exec")


@pytest.mark.parametrize("label", ["class", "lambda", "None", "forward", "training"])
def test_a_keyword_or_torch_name_written_as_a_label_is_e0209(label, tmp_path, capsys):
    path = tmp_path / "n.cnn"
    path.write_text(
        f"network n {{\n    input [3, 8, 8]\n    return in -> {label}: Conv(4, 3)\n}}\n"
    )
    code, _, err = run_cli(["check", path, "--format", "concise"], capsys)
    assert code == 1
    assert f"{path}:3:" in err and "error[E0209]" in err and f"`{label}`" in err


def test_graph_is_reserved_at_the_top_only():
    graph = api.graph(
        "n.cnn", text="network n { input [3, 8, 8] return in -> box: (graph: Conv(4, 3) -> ReLU) }"
    )
    assert [n.name for n in graph.nodes_in_order()][1] == "box.graph"
    with pytest.raises(CnncError) as err:
        api.graph("n.cnn", text="network n { input [3, 8, 8] return in -> graph: Conv(4, 3) }")
    assert err.value.diagnostics[0].code == "E0209"


def test_cnnc_names_are_reserved_on_the_network():
    problem = names.path_problem(("cnnc_weights",))
    assert problem.code == "E0209" and "the compiled network" in problem.message
    assert names.path_problem(("box", "cnnc_weights")) is None


def test_a_block_named_like_a_keyword_is_numbered_usably():
    text = """
        block Class { return in -> ReLU }
        block Forward { return in -> ReLU }
        network n { input [3, 8, 8] return in -> Class -> Forward -> Class }
    """
    graph = api.graph("n.cnn", text=text)
    assert [n.path[0] for n in graph.nodes_in_order()][1:] == ["class_", "forward_", "class__1"]
    model = to_graph_module(graph)
    assert model(torch.ones(1, 3, 8, 8)).shape == (1, 3, 8, 8)
    namespace = {}
    exec(compile(source.to_source(graph), "<n>", "exec"), namespace)  # noqa: S102  the point
    assert namespace["N"]()(torch.ones(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_the_static_reserved_names_cover_what_this_torch_reserves():
    from cnnc.compiler.lower.fx import reserved_names

    assert {n for n in reserved_names(False) if not names.is_reserved(n, top_level=False)} == set()
    assert {n for n in reserved_names(True) if not names.is_reserved(n, top_level=True)} == set()


@pytest.mark.parametrize(
    "network, expected",
    [
        ("none", "NetNone"),
        ("true", "NetTrue"),
        ("résumé", "RSum"),
        ("9lives", "Net9lives"),
        ("", "Net"),
        ("mobilenet_v2", "MobilenetV2"),
    ],
)
def test_the_class_name_is_an_ascii_identifier_and_no_keyword(network, expected):
    assert class_name(network) == expected


# -- 2. the emitters escape, whatever the rule lets through -------------------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(label=TEXT, inner=TEXT, title=TEXT, network=TEXT, origin=TEXT)
def test_generated_source_is_the_benign_source_whatever_the_text(
    benign, monkeypatch, label, inner, title, network, origin
):
    assume(label not in TOP_SIBLINGS and inner != "relu" and label and inner)
    text = emitted(hostile(benign, label, inner, title, network), origin, monkeypatch)
    reference = emitted(benign, "benign.cnn", monkeypatch)
    got = canonical(text, {label, inner}, class_name(network))
    assert got == canonical(reference, {"lbl", "conv"}, class_name("net"))
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert all(line.isprintable() for line in comments)


@pytest.mark.parametrize("label", HOSTILE)
def test_the_fx_lowering_refuses_a_label_it_cannot_name(benign, label):
    graph = hostile(benign, label=label, title=label, network=label or "n")
    try:
        model = to_graph_module(graph, device="meta")
    except CnncError as err:
        assert err.diagnostics[0].code in ("E0207", "E0208", "E0209")
        return
    assert names.path_problem((label,)) is None
    reference = to_graph_module(benign, device="meta")
    assert canonical(model.code, {label}, "", FxCanon) == canonical(
        reference.code, {"lbl"}, "", FxCanon
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(label=TEXT, title=TEXT)
def test_fx_code_is_the_benign_code_or_a_located_refusal(benign, label, title):
    assume(label not in TOP_SIBLINGS and label)
    try:
        model = to_graph_module(hostile(benign, label, title=title), device="meta")
    except CnncError as err:
        assert err.diagnostics[0].code in ("E0207", "E0208", "E0209")
        assert err.diagnostics[0].labels  # located
        return
    reference = to_graph_module(benign, device="meta")
    assert canonical(model.code, {label}, "", FxCanon) == canonical(
        reference.code, {"lbl"}, "", FxCanon
    )


@settings(max_examples=40, deadline=None)
@given(TEXT)
def test_a_string_argument_reaches_the_source_only_inside_comments(text):
    program = BENIGN.replace('Unit("t")', f"Unit({escape_string(text)})")
    try:
        graph = api.graph("b.cnn", text=program)
    except CnncError:  # e.g. a surrogate, which a .cnn string cannot hold (E0111)
        return
    generated = source.to_source(graph)
    reference = source.to_source(api.graph("b.cnn", text=BENIGN))
    assert canonical(generated, {"lbl", "conv"}, "Net") == canonical(
        reference, {"lbl", "conv"}, "Net"
    )


# -- 3. the programs, and nothing touches the file system ----------------------------------

INJECTED_LABEL = """network n {
    input [3, 8, 8]
    return in -> label("x\\"); __import__(\\"os\\").system(\\"echo pwned\\"); (\\"", Conv(4, 3))
}
"""

INJECTED_STRING = """block B(note) {
    return in -> conv: Conv(4, 3)
}
network n {
    input [3, 8, 8]
    return in -> b: B("x\\n__import__('os').system('echo pwned')\\n\\"\\"\\"")
}
"""


def test_the_injected_label_is_rejected_by_check(tmp_path, capsys):
    path = tmp_path / "injected.cnn"
    path.write_text(INJECTED_LABEL)
    code, out, err = run_cli(["check", path], capsys)
    assert code == 1 and "error[E0208]" in err and "pwned" not in out


def test_the_injected_string_compiles_to_source_that_runs_only_the_model(tmp_path, capsys):
    path = tmp_path / "injected.cnn"
    path.write_text(INJECTED_STRING)
    target = tmp_path / "injected.py"
    code, _, err = run_cli(["compile", path, "-o", target], capsys)
    assert code == 0, err
    text = target.read_text()
    assert "__import__('os')" in text  # the title is shown, escaped, in comments only
    calls = {ast.unparse(n.func) for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Call)}
    assert not any("import" in c or "system" in c for c in calls)
    assert (
        audited(
            f"exec(open({str(target)!r}).read(), ns := {{}}); ns['N'](seed=0)"
            "(torch.ones(1, 3, 8, 8))",
            warm=WARM,
        )
        == []
    )


AUDIT = """
import sys
{warm}
events = []
WATCHED = ("open", "os.", "subprocess.", "shutil.", "socket.", "ctypes.", "pty.", "webbrowser.")
{prepare}
sys.addaudithook(lambda event, args: events.append((event, repr(args)[:200]))
                 if event.startswith(WATCHED) else None)
{act}
print(repr(events))
"""


WARM = "import math, torch; torch.nn.Conv2d(3, 4, 3)(torch.ones(1, 3, 8, 8))"


def audited(act: str, warm: str = "", prepare: str = "", **env) -> list:
    """The file-system, process and network events while `act` runs, in a fresh interpreter."""
    script = AUDIT.format(warm=warm, prepare=textwrap.dedent(prepare), act=act)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT / "tests",
        timeout=300,
        check=False,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    events = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    return [e for e in events if e[0] != "open" or "injected" not in e[1]]  # the file `act` runs


def test_building_and_running_a_hostile_graph_touches_no_file(tmp_path):
    """fx and the standalone source, from a graph with every hostile text at once (the rule
    bypassed), built, instantiated and run: no open, no process, no socket."""
    prepare = f"""
        import torch, test_safety as t
        from cnnc import api
        from cnnc.compiler.lower import source
        from cnnc.compiler.lower.fx import to_graph_module
        benign = api.graph("benign.cnn", text=t.BENIGN)
        to_graph_module(benign, seed=0)(torch.ones(1, 3, 8, 8))  # torch's lazy imports, done now
        titled = t.hostile(benign, title={HOSTILE[2]!r}, network={HOSTILE[0]!r})
        source.check_names = lambda graph: None
        text = source.to_source(t.hostile(benign, {NO_DOT!r}, {HOSTILE[3]!r}, {HOSTILE[2]!r}),
                                origin={HOSTILE[1]!r})
        code = compile(text, "<generated>", "exec")
    """
    act = (
        "model = to_graph_module(titled, seed=0); model(torch.ones(2, 3, 8, 8)); "
        "ns = {}; exec(code, ns); ns['Net'](seed=0)(torch.ones(2, 3, 8, 8))"
    )
    assert audited(act, prepare=prepare) == []


def test_loading_a_file_opens_that_file_only(tmp_path):
    """`cnnc.load` of the injected-string program, a forward and a summary: the one open is the
    file itself (torch and cnnc's lazy imports are done beforehand, on another file), and what else
    is touched lies in cnnc's cache dir: the file's parsed tree, looked up and then kept."""
    (tmp_path / "warm.cnn").write_text(BENIGN)
    (tmp_path / "injected.cnn").write_text(INJECTED_STRING)
    warm = (
        f"import torch, cnnc; w = cnnc.load({str(tmp_path / 'warm.cnn')!r}, seed=0); "
        "w(torch.ones(1, 3, 8, 8)); w.cnnc_summary()"
    )
    act = (
        f"m = cnnc.load({str(tmp_path / 'injected.cnn')!r}, seed=0); m(torch.ones(1, 3, 8, 8)); "
        "m.cnnc_summary()"
    )
    cache = str(tmp_path / "cache")
    events = audited(act, warm=warm, XDG_CACHE_HOME=cache)
    assert [e for e in events if cache not in e[1]] == []
    assert {e for e, _ in events} <= {"open", "os.mkdir", "os.rename", "os.scandir", "os.utime"}
    assert any(e == "open" and ".ast" in args for e, args in events)


def test_the_audit_sees_a_file_opened():
    assert [event for event, _ in audited("open('/dev/null').close()")] == ["open"]


def test_print_of_a_model_shows_control_characters_escaped(benign):
    model = to_graph_module(hostile(benign, title='Unit("\x1b[2J\n")'), device="meta")
    assert '"\\x1b[2J\\n"' in str(model) and "\x1b" not in str(model)


NO_DOT = 'x"); __import__("os"); ("'  # torch refuses a module name with a dot


@pytest.mark.parametrize(
    "text, comment, docstring",
    [
        ("a\nb", "a\\nb", "a\\nb"),
        ('say """hi"""', 'say """hi"""', 'say \\"\\"\\"hi\\"\\"\\"'),
        ("end\\", "end\\\\", "end\\\\"),
        ("\x1b[2J\u2028\ud800\x00", "\\x1b[2J\\u2028\\ud800\\x00", "\\x1b[2J\\u2028\\ud800\\x00"),
        ("é ✓", "é ✓", "é ✓"),
    ],
)
def test_text_in_comments_and_docstrings_is_one_printable_line(text, comment, docstring):
    assert source.plain(text) == comment
    assert source.in_docstring(text) == docstring


@pytest.mark.parametrize(
    "value, text",
    [
        (float("inf"), "float('inf')"),
        (float("-inf"), "float('-inf')"),
        (float("nan"), "float('nan')"),
        ((1,), "(1,)"),
        ([1.5, None, True], "[1.5, None, True]"),
        ('a"\n', "'a\"\\n'"),
        ((2, (float("inf"),)), "(2, (float('inf'),))"),
    ],
)
def test_literals_are_python_that_evaluates_to_the_value(value, text):
    assert source.literal(value) == text
    assert repr(eval(text, {"__builtins__": {"float": float}})) == repr(value)


EDGE_LABELS = """
block Unit {
    return in -> __mangled: Conv(3, 3, pad = 1) -> label("a-b", ReLU)
}
network edge {
    input [3, 8, 8]
    return in -> label("stage.007", Unit) -> label("x-1.0", Conv(4, 1)) -> _: ReLU -> match: Flatten
}
"""


def test_labels_at_the_edge_of_the_rule_run_alike_in_fx_the_source_and_the_export(tmp_path):
    """`__x` (mangled in a class body), hyphens, `007` and soft keywords: check accepts them, so
    cnnc.load, the standalone class and the torch.export program must all build and agree."""
    from cnnc.compiler.lower.export import export_program

    graph = api.graph("edge.cnn", text=EDGE_LABELS)
    model = to_graph_module(graph, seed=0).eval()
    namespace = {}
    exec(compile(source.to_source(graph), "<edge>", "exec"), namespace)  # noqa: S102  the point
    standalone = namespace["Edge"](seed=0).eval()
    export_program(model, str(tmp_path / "edge.pt2"))
    exported = torch.export.load(str(tmp_path / "edge.pt2")).module()
    x = torch.randn(2, 3, 8, 8)
    assert list(model.state_dict()) == list(standalone.state_dict())
    assert "stage.007.__mangled.weight" in model.state_dict()
    with torch.no_grad():
        assert torch.equal(model(x), standalone(x))
        assert torch.allclose(model(x), exported(x))
