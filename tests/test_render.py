"""`cnnc render` and `compiler/render`: the DOT structure checked against the IR, images, the CLI.

DOT text is parsed with a few regexes (graphviz's Python package writes one statement per line);
SVG with xml.etree. Tests that run Graphviz's `dot` are skipped where it is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cnnc.api import elaborate_file, load_program
from cnnc.api import render as api_render
from cnnc.cli import main
from cnnc.compiler.analysis.counts import params
from cnnc.compiler.elaborate import network_names
from cnnc.compiler.render.dot import Diagram, render, write
from cnnc.compiler.render.labels import human, op_label, range_name, shown_name
from cnnc.compiler.render.view import build_view

REPO = Path(__file__).resolve().parents[1]
HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz's `dot` is not installed")

RESNET = """
block Bottleneck(width, stride = 1) {
    out = width * 4
    main = in -> conv1: Conv(width, 1, bias = false) -> bn1: BatchNorm -> ReLU
              -> conv2: Conv(width, 3, stride = stride, pad = 1, bias = false) -> bn2: BatchNorm -> ReLU
              -> conv3: Conv(out, 1, bias = false) -> bn3: BatchNorm
    skip = if stride != 1 or in.channels != out
           then in -> downsample: (Conv(out, 1, stride = stride, bias = false) -> BatchNorm)
           else in
    return (main + skip) -> ReLU
}
block stage(width, n, stride) {
    return in -> [Bottleneck(width, stride = if i == 0 then stride else 1) for i in range(n)]
}
network resnet50 {
    input [3, 224, 224]
    return input -> conv1: Conv(64, 7, stride = 2, pad = 3, bias = false) -> bn1: BatchNorm -> relu: ReLU
                 -> maxpool: MaxPool(3, stride = 2, pad = 1)
                 -> layer1: stage(64, 3, 1) -> layer2: stage(128, 4, 2)
                 -> layer3: stage(256, 6, 2) -> layer4: stage(512, 3, 2)
                 -> avgpool: GlobalAvgPool -> Flatten -> fc: Linear(1000)
}
"""

INCEPTION = """
block Inception(c1, c3r, c3, c5r, c5, pool_proj) {
    return concat(in -> b1: (Conv(c1, 1) -> ReLU),
                  in -> b2: (Conv(c3r, 1) -> ReLU -> Conv(c3, 3, pad = 1) -> ReLU),
                  in -> b3: (Conv(c5r, 1) -> ReLU -> Conv(c5, 5, pad = 2) -> ReLU),
                  in -> b4: (MaxPool(3, stride = 1, pad = 1) -> Conv(pool_proj, 1) -> ReLU))
}
network tiny_googlenet {
    input [3, 64, 64]
    return in -> stem: Conv(64, 7, stride = 2, pad = 3) -> ReLU -> MaxPool(3, stride = 2, pad = 1)
              -> inception3a: Inception(64, 96, 128, 16, 32, 32)
              -> inception3b: Inception(128, 128, 192, 32, 96, 64)
              -> MaxPool(3, stride = 2, pad = 1)
              -> inception4a: Inception(192, 96, 208, 16, 48, 64)
              -> GlobalAvgPool -> Flatten -> fc: Linear(10)
}
"""

MOBILE = """
block SE(r = 4) {
    s = in -> GlobalAvgPool -> fc1: Conv(in.channels // r, 1) -> ReLU -> fc2: Conv(in.channels, 1) -> Sigmoid
    return in * s
}
block InvertedResidual(out, stride = 1, t = 6) {
    hidden = in.channels * t
    main = in -> expand: (Conv(hidden, 1, bias = false) -> BatchNorm -> ReLU6)
              -> dw: (Conv(hidden, 3, stride = stride, pad = 1, groups = hidden, bias = false) -> BatchNorm -> ReLU6)
              -> se: SE() -> project: (Conv(out, 1, bias = false) -> BatchNorm)
    return if stride == 1 and in.channels == out then main + in else main
}
network mbnet {
    input [3, 64, 64]
    return in -> stem: (Conv(16, 3, stride = 2, pad = 1) -> BatchNorm -> ReLU6)
              -> features: [InvertedResidual(if i < 2 then 24 else 32, stride = if i % 2 == 0 then 2 else 1)
                            for i in range(4)]
              -> GlobalAvgPool -> Flatten -> classifier: Linear(10)
}
"""

BROKEN = """
block Basic(width, stride = 1) {
    main = in -> conv1: Conv(width, 3, stride = stride, pad = 1) -> ReLU -> conv2: Conv(width, 3, pad = 1)
    return (main + in) -> ReLU
}
network broken {
    input [3, 32, 32]
    return in -> stem: Conv(64, 3, pad = 1) -> layer1: Basic(64) -> layer2: Basic(128, stride = 2)
              -> GlobalAvgPool -> Flatten -> fc: Linear(10)
}
"""


def elaborate_text(text: str, name: str = "prog.cnn"):
    return elaborate_file(name, text=text)


def graph_of(text: str):
    result = elaborate_text(text)
    assert result.ok, [d.message for d in result.diagnostics]
    return result.graph


@pytest.fixture(scope="module")
def resnet():
    return graph_of(RESNET)


@pytest.fixture
def program(tmp_path):
    def write_program(text: str, name: str = "prog.cnn") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write_program


# -- a small DOT reader -----------------------------------------------------------------------

ID = r'("[^"]+"|[\w.]+)'


@dataclass
class Dot:
    nodes: dict[str, str] = field(default_factory=dict)  # id → its attribute text
    node_cluster: dict[str, str] = field(
        default_factory=dict
    )  # id → innermost cluster ('' for none)
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (src, dst, attribute text)
    clusters: dict[str, str] = field(default_factory=dict)  # cluster → parent cluster ('' for none)
    cluster_attrs: dict[str, str] = field(default_factory=dict)

    def edge_label(self, attrs: str) -> str:
        m = re.search(r'(?<!\w)label="([^"]*)"', attrs) or re.search(r"(?<!\w)label=(\S+)", attrs)
        return m.group(1) if m else ""


def parse_dot(source: str) -> Dot:
    dot, stack = Dot(), [""]
    for line in source.splitlines()[1:]:
        line = line.strip()
        if m := re.match(rf"subgraph {ID} {{", line):
            name = m.group(1).strip('"')
            dot.clusters[name] = stack[-1]
            stack.append(name)
        elif line == "}":
            stack.pop()
        elif m := re.match(rf"{ID} -> {ID}(?: \[(.*)\])?$", line):
            dot.edges.append((m.group(1).strip('"'), m.group(2).strip('"'), m.group(3) or ""))
        elif (m := re.match(rf"{ID} \[(.*)\]$", line)) and m.group(1) not in (
            "graph",
            "node",
            "edge",
        ):
            dot.nodes[m.group(1).strip('"')] = m.group(2)
            dot.node_cluster[m.group(1).strip('"')] = stack[-1]
        elif len(stack) > 1 and "label=" in line:
            dot.cluster_attrs[stack[-1]] = line
    return dot


def cluster(path) -> str:
    return "cluster_" + ".".join(path)


# -- the full graph ---------------------------------------------------------------------------


def test_full_depth_draws_one_node_per_layer_and_one_edge_per_ir_edge(resnet):
    dot = parse_dot(render(resnet).source)
    assert len(dot.nodes) == len(resnet) + 1  # + the output sink
    assert len(dot.edges) == resnet.nx.number_of_edges() + 1
    expected = {(f"n{u}", f"n{v}") for u, v in resnet.nx.edges} | {(f"n{resnet.output}", "output")}
    assert {(a, b) for a, b, _ in dot.edges} == expected


def test_every_edge_carries_its_producers_shape(resnet):
    dot = parse_dot(render(resnet, shapes="all").source)
    for src, _dst, attrs in dot.edges:
        assert dot.edge_label(attrs) == resnet.node(int(src[1:])).type.short()


def test_changes_mode_still_shows_every_shape_once_at_least(resnet):
    dot = parse_dot(render(resnet).source)
    labels = {dot.edge_label(a) for _, _, a in dot.edges}
    assert {n.type.short() for n in resnet.nodes_in_order()} <= labels
    quiet = [a for _, _, a in dot.edges if dot.edge_label(a) == ""]
    assert quiet, "shape-keeping steps (BatchNorm → ReLU) are left unlabelled"
    assert all("tooltip=" in a for a in quiet)


def test_clusters_nest_as_the_scopes_do(resnet):
    dot = parse_dot(render(resnet).source)
    assert set(dot.clusters) == {cluster(p) for p in resnet.scopes}
    for path in resnet.scopes:
        assert dot.clusters[cluster(path)] == (cluster(path[:-1]) if len(path) > 1 else "")
    for node in resnet.nodes_in_order():
        inner = max(
            (p for p in resnet.scopes if node.path[: len(p)] == p and len(p) < len(node.path)),
            key=len,
            default=None,
        )
        assert dot.node_cluster[f"n{node.id}"] == (cluster(inner) if inner else "")
    assert (
        "<B>layer2.0</B>: Bottleneck(128, stride = 2)"
        in dot.cluster_attrs[cluster(("layer2", "0"))]
    )
    assert "<B>downsample</B>" in dot.cluster_attrs[cluster(("layer2", "0", "downsample"))]


def test_nodes_show_op_attributes_names_and_params(resnet):
    dot = parse_dot(render(resnet).source)
    conv1 = dot.nodes["n1"]
    assert "<B>Conv</B> 7×7/2, 64" in conv1 and "conv1 · 9.41K params" in conv1
    relu = dot.nodes["n3"]
    assert "params" not in relu and "fillcolor" in relu
    fills = {
        re.search(r'fillcolor="([^"]+)"', dot.nodes[f"n{n.id}"]).group(1): n.spec.family
        for n in resnet.nodes_in_order()
    }
    assert len(fills) == len(set(fills.values())), "one fill per op family"


# -- depth ------------------------------------------------------------------------------------


def test_depth_0_collapses_each_stage_into_a_box(resnet):
    dot = parse_dot(render(resnet, depth=0).source)
    assert dot.clusters == {}
    stages = [f"s_layer{i}" for i in range(1, 5)]
    assert [k for k in dot.nodes if k.startswith("s_")] == stages
    outside = [n for n in resnet.nodes_in_order() if len(n.path) == 1]
    assert len(dot.nodes) == len(outside) + 4 + 1
    assert "64×56×56 → 256×56×56" in dot.nodes["s_layer1"]
    layer1 = sum(p for i, p in params(resnet).items() if resnet.node(i).path[0] == "layer1")
    assert f"{human(layer1)} params" in dot.nodes["s_layer1"]
    assert ("n4", "s_layer1") in {(a, b) for a, b, _ in dot.edges}


def test_depth_1_has_stage_clusters_of_folded_blocks(resnet):
    dot = parse_dot(render(resnet, depth=1).source)
    assert dot.clusters == {cluster((f"layer{i}",)): "" for i in range(1, 5)}
    boxes = {k: v for k, v in dot.nodes.items() if k.startswith("s_")}
    assert list(boxes) == [
        "s_layer1.0",
        "s_layer1.1",
        "s_layer2.0",
        "s_layer2.1",
        "s_layer3.0",
        "s_layer3.1",
        "s_layer4.0",
        "s_layer4.1",
    ]
    assert "<B>layer3.1–5</B>: Bottleneck(256)  <B>×5</B>" in boxes["s_layer3.1"]
    per_block = sum(
        p for i, p in params(resnet).items() if resnet.node(i).path[:2] == ("layer3", "1")
    )
    assert f"{human(per_block)} params" in boxes["s_layer3.1"] and "each" in boxes["s_layer3.1"]
    assert all(dot.node_cluster[k] == cluster((k[2:].split(".")[0],)) for k in boxes)


def test_no_fold_draws_every_block(resnet):
    dot = parse_dot(render(resnet, depth=1, fold=False).source)
    assert len([k for k in dot.nodes if k.startswith("s_")]) == 3 + 4 + 6 + 3


def test_view_puts_every_node_in_exactly_one_box(resnet):
    for depth in (None, 0, 1, 2, 3):
        view = build_view(resnet, depth)
        members = sorted(i for b in view.boxes for i in b.members)
        assert members == [n.id for n in resnet.nodes_in_order()]
        assert len({b.key for b in view.boxes}) == len(view.boxes)
        assert sum(b.params for b in view.boxes) == sum(params(resnet).values())


def test_sequences_collapse_to_what_they_hold():
    dot = parse_dot(render(graph_of(MOBILE), depth=0).source)
    assert "<B>stem</B>: Conv → BatchNorm → ReLU6" in dot.nodes["s_stem"]
    assert "<B>features</B>: 4 × InvertedResidual" in dot.nodes["s_features"]


# -- merges -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, op, glyph",
    [(INCEPTION, "Concat", "‖"), (MOBILE, "Add", "⊕"), (MOBILE, "Mul", "⊗"), (RESNET, "Add", "⊕")],
)
def test_merges_are_small_circles_with_a_glyph(text, op, glyph):
    graph = graph_of(text)
    dot = parse_dot(render(graph).source)
    merges = [n for n in graph.nodes_in_order() if n.op == op]
    assert merges
    for n in merges:
        attrs = dot.nodes[f"n{n.id}"]
        assert re.search(rf"label=\"?{glyph}\"? ", attrs) and "shape=circle" in attrs


def test_googlenet_like_dot_has_the_concat_of_every_inception_module(program, tmp_path):
    out = tmp_path / "g.dot"
    assert main(["render", str(program(INCEPTION)), "-o", str(out)]) == 0
    graph, dot = graph_of(INCEPTION), parse_dot(out.read_text())
    concats = [n for n in graph.nodes_in_order() if n.op == "Concat"]
    assert [n.path[0] for n in concats] == ["inception3a", "inception3b", "inception4a"]
    for n in concats:
        assert dot.node_cluster[f"n{n.id}"] == cluster(n.path[:1])
        assert len([e for e in dot.edges if e[1] == f"n{n.id}"]) == 4


# -- errors -----------------------------------------------------------------------------------


def test_a_shape_error_is_drawn_in_red_up_to_the_failure():
    result = elaborate_text(BROKEN)
    assert not result.ok
    graph, failing = result.graph, result.graph.first_error()
    dot = parse_dot(render(graph).source)
    assert len(dot.nodes) == len(graph) + 1
    drawn = dot.nodes[f"n{failing.id}"]
    assert "shape mismatch" in drawn and "#cc0000" in drawn
    into = [a for _, b, a in dot.edges if b == f"n{failing.id}"]
    assert sorted(dot.edge_label(a) for a in into) == ["128×16×16", "64×32×32"]
    assert all("#cc0000" in a for a in into)
    downstream = [n for n in graph.nodes_in_order() if n.id > failing.id]
    assert downstream and all("dashed" in dot.nodes[f"n{n.id}"] for n in downstream)
    assert "#cc0000" in dot.cluster_attrs[cluster(("layer2",))]


def test_a_collapsed_box_holding_the_failure_shows_the_headline():
    dot = parse_dot(render(elaborate_text(BROKEN).graph, depth=0).source)
    assert "shape mismatch" in dot.nodes["s_layer2"] and "64×32×32 → ?" in dot.nodes["s_layer2"]
    assert "shape mismatch" not in dot.nodes["s_layer1"]


def test_cli_still_writes_the_diagram_of_a_broken_program_and_exits_1(program, tmp_path, capsys):
    out = tmp_path / "b.dot"
    assert main(["render", str(program(BROKEN)), "-o", str(out)]) == 1
    assert "shape mismatch" in out.read_text()
    assert "E0301" in capsys.readouterr().err


# -- labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer, label",
    [
        ("Conv(64, 3, stride = 2, pad = 1)", "Conv 3×3/2, 64"),
        ("Conv(8, 3, pad = 1, groups = 8)", "Conv 3×3, 8, dw"),
        ("Conv(16, 3, pad = 2, dilation = 2, groups = 2)", "Conv 3×3, 16, g2, d2"),
        ("Conv(16, [1, 7], pad = [0, 3])", "Conv 1×7, 16"),
        ("MaxPool(3, stride = 2)", "MaxPool 3×3/2"),
        ("MaxPool(2)", "MaxPool 2×2/2"),
        ("AvgPool(3, stride = 2, ceil_mode = true)", "AvgPool 3×3/2 ceil"),
        ("AdaptiveAvgPool(4)", "AdaptiveAvgPool 4×4"),
        ("GlobalAvgPool -> Flatten -> Linear(10)", "Linear, 10"),
        ("Dropout(0.2)", "Dropout 0.2"),
        ("LocalResponseNorm(5)", "LRN 5"),
        ("BatchNorm", "BatchNorm"),
    ],
)
def test_op_labels(layer, label):
    graph = graph_of(f"network n {{ input [8, 16, 16] return in -> {layer} }}")
    assert op_label(graph.node(graph.output)) == label


@pytest.mark.parametrize(
    "count, text",
    [
        (0, "0"),
        (999, "999"),
        (9408, "9.41K"),
        (25_557_032, "25.6M"),
        (4_089_184_256, "4.09G"),
        (1000, "1K"),
    ],
)
def test_human_counts(count, text):
    assert human(count) == text


def test_names_and_ranges(resnet):
    names = {n.name: shown_name(n) for n in resnet.nodes_in_order()}
    assert names["layer1.0.conv2"] == "conv2" and names["layer1.0.relu_1"] == ""
    assert names["layer1.0.downsample.0"] == "" and names["fc"] == "fc"
    assert range_name(("layer3.1", "layer3.2", "layer3.5")) == "layer3.1–5"
    assert range_name(("a.x", "a.y")) == "a.x … a.y"


# -- options ----------------------------------------------------------------------------------


def test_direction_and_theme(resnet):
    source = render(resnet, depth=0, direction="LR", theme="dark").source
    assert "rankdir=LR" in source and 'bgcolor="#1e1e1e"' in source
    with pytest.raises(ValueError, match="direction"):
        render(resnet, direction="BT")
    with pytest.raises(ValueError, match="theme"):
        render(resnet, theme="solarized")


# -- images and the command line -------------------------------------------------------------


@needs_dot
def test_svg_has_one_cluster_per_stage_and_the_shapes(program, tmp_path):
    out = tmp_path / "r.svg"
    assert main(["render", str(program(RESNET)), "--depth", "1", "-o", str(out)]) == 0
    ns = {"svg": "http://www.w3.org/2000/svg"}
    root = ET.parse(out).getroot()
    groups = root.findall(".//svg:g", ns)
    clusters = [g.find("svg:title", ns).text for g in groups if g.get("class") == "cluster"]
    assert clusters == [f"cluster_layer{i}" for i in range(1, 5)]
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"64×56×56", "256×56×56", "512×28×28", "2048×7×7", "1000"} <= texts
    nodes = [g for g in groups if g.get("class") == "node"]
    assert len(nodes) == len(parse_dot(render(graph_of(RESNET), depth=1).source).nodes)


@needs_dot
@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF")])
def test_images(program, tmp_path, suffix, magic):
    out = tmp_path / f"r{suffix}"
    assert main(["render", str(program(INCEPTION)), "--depth", "0", "-o", str(out)]) == 0
    assert out.read_bytes().startswith(magic)


def test_without_dot_images_fail_with_the_install_hint_and_dot_text_works(
    program, tmp_path, monkeypatch, capsys
):
    path = program(RESNET)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["render", str(path), "-o", str(tmp_path / "r.png")]) == 1
    err = capsys.readouterr().err
    assert "`dot`" in err and "apt-get install graphviz" in err
    assert not (tmp_path / "r.png").exists()
    assert main(["render", str(path), "-o", str(tmp_path / "r.dot")]) == 0
    assert (tmp_path / "r.dot").read_text().startswith("digraph resnet50 {")


def test_dot_text_goes_to_stdout_without_output(program, capsys):
    assert main(["render", str(program(INCEPTION)), "--depth", "0"]) == 0
    assert capsys.readouterr().out.startswith("digraph tiny_googlenet {")


@pytest.mark.parametrize("argv", [["-o", "r.jpg"], ["--depth", "-1"], ["--direction", "BT"]])
def test_usage_errors_exit_2(program, argv, capsys):
    path = str(program(INCEPTION))
    try:
        code = main(["render", path, *argv])
    except SystemExit as exc:  # argparse rejects the value itself
        code = exc.code
    assert code == 2


def test_api_render_and_diagram(program):
    path = program(INCEPTION)
    digraph = api_render(path, depth=0)
    assert "inception3a" in digraph.source
    import cnnc
    from cnnc.api import diagram

    assert cnnc.render(graph_of(INCEPTION), depth=0).source == digraph.source
    d = diagram(path, depth=0)
    assert isinstance(d, Diagram) and d.source == digraph.source
    if HAS_DOT:
        assert "<svg" in d._repr_svg_()


def test_api_render_binds_network_arguments(program):
    path = program("network wide(width) { input [3, 8, 8] return in -> Conv(width, 3) }")
    assert "Conv</B> 3×3, 24" in api_render(path, "wide", args={"width": 24}).source


def test_render_imports_graphviz_but_not_torch():
    code = "import sys, cnnc.compiler.render.dot; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the zoo ----------------------------------------------------------------------------------

ZOO = sorted((REPO / "zoo").glob("*.cnn"))


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_every_zoo_network_renders_at_depth_1(path, tmp_path):
    names = [name for name, concrete in network_names(load_program(path)) if concrete]
    if not names:
        pytest.skip("no concrete network")
    for name in names:
        result = elaborate_file(path, name)
        assert result.ok, [d.message for d in result.diagnostics]
        digraph = render(result.graph, depth=1)
        dot = parse_dot(digraph.source)
        view = build_view(result.graph, 1)
        assert len(dot.nodes) == len(view.boxes) + len(result.graph.outputs)  # a sink per output
        if HAS_DOT:
            write(digraph, tmp_path / f"{name}.svg")


def test_graphs_and_compiled_models_show_their_diagram_in_notebooks():
    import xml.etree.ElementTree as ET

    import cnnc

    g = cnnc.graph("resnet18")
    svg = g._repr_svg_()
    assert ET.fromstring(svg.encode()).tag.endswith("svg")
    pytest.importorskip("torch")
    model = cnnc.load("resnet18", seed=0)
    assert model._repr_svg_() == svg
