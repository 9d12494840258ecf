"""Standalone PyTorch source (`compiler/lower/source.py`): needs only torch, reads like hand-written
code, and builds the module `cnnc.load` builds: same names, same weights for a seed, same output."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cnnc
from cnnc import api
from cnnc.compiler.lower.fx import class_name, to_graph_module
from cnnc.compiler.lower.source import to_source

ROOT = Path(__file__).resolve().parents[1]

RESIDUAL = """
import "families/resnet.cnn"  # Basic: the residual block of ResNet-18/34

network tiny_resnet {
    input [3, 16, 16]
    return in -> conv1: Conv(8, 3, pad = 1, bias = false) -> bn1: BatchNorm -> relu: ReLU
              -> layer1: [Basic(8), Basic(16, stride = 2)]
              -> avgpool: GlobalAvgPool -> Flatten -> fc: Linear(10)
}
"""

MODERN = """
block CN(dim) {
    main = in -> body: (Conv(dim, 7, pad = 3, groups = dim) -> LayerNorm2d
                        -> PointwiseLinear(4 * dim) -> GELU -> PointwiseLinear(dim))
              -> layer_scale: LayerScale(0.5) -> stochastic_depth: StochasticDepth(0.1)
    return main + in
}
network modern {
    input [3, 16, 16]
    x = in -> stem: (Conv(8, 4, stride = 4) -> LayerNorm2d) -> stage: [CN(8) for i in range(2)]
    y = concat(x -> Chunk(2, 0), x -> Chunk(2, 1) -> Conv(4, 1) -> SiLU) -> ChannelShuffle(2)
    return (y -> Conv(8, 3, pad = 1) -> Scale(0.5)) * (y -> GlobalAvgPool -> Conv(8, 1) -> Sigmoid)
           -> GlobalAvgPool -> Flatten -> Dropout(0.2) -> Linear(10)
}
"""

FORWARD = """\
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, 3, 16, 16]
        x = self.conv1(x)  # [N, 8, 16, 16]
        x = self.bn1(x)  # [N, 8, 16, 16]
        x = self.relu(x)  # [N, 8, 16, 16]

        # layer1.0: Basic(8)
        y = self.layer1[0].conv1(x)  # [N, 8, 16, 16]
        y = self.layer1[0].bn1(y)  # [N, 8, 16, 16]
        y = self.layer1[0].relu(y)  # [N, 8, 16, 16]
        y = self.layer1[0].conv2(y)  # [N, 8, 16, 16]
        y = self.layer1[0].bn2(y)  # [N, 8, 16, 16]
        x = y.add_(x)  # [N, 8, 16, 16]
        x = self.layer1[0].relu_1(x)  # [N, 8, 16, 16]

        # layer1.1: Basic(16, stride = 2)
        y = self.layer1[1].conv1(x)  # [N, 16, 8, 8]
        y = self.layer1[1].bn1(y)  # [N, 16, 8, 8]
        y = self.layer1[1].relu(y)  # [N, 16, 8, 8]
        y = self.layer1[1].conv2(y)  # [N, 16, 8, 8]
        y = self.layer1[1].bn2(y)  # [N, 16, 8, 8]
        x = self.layer1[1].downsample(x)  # [N, 16, 8, 8]
        x = y.add_(x)  # [N, 16, 8, 8]
        x = self.layer1[1].relu_1(x)  # [N, 16, 8, 8]
        x = self.avgpool(x)  # [N, 16, 1, 1]
        x = self.flatten(x)  # [N, 16]
        x = self.fc(x)  # [N, 10]
        return x
"""


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest


def build(source: str, network: str, seed: int):
    """Execute generated source and instantiate its class."""
    namespace: dict = {}
    exec(compile(source, "<generated>", "exec"), namespace)  # noqa: S102  (our own output)
    return namespace[class_name(network)](seed=seed)


def assert_same_module(graph, seed: int = 3) -> None:
    ours = to_graph_module(graph, seed=seed).eval()
    theirs = build(to_source(graph), graph.network, seed).eval()
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(2, *graph.input_type.shape)  # [2, C, H, W]
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


@pytest.mark.parametrize("text", [RESIDUAL, MODERN], ids=["residual", "modern_ops"])
def test_generated_module_equals_load_for_the_same_seed(text):
    assert_same_module(api.graph("test.cnn", text=text))


def test_a_bare_parameter_in_an_unlabelled_list_is_registered_by_name():
    """Found by the fuzzer: LayerScale's parameter at `0` was written `getattr(self, '0') = …`."""
    text = (
        "network net {\n    input [16, 7, 7]\n    return in -> [LayerScale(2.0) -> Conv(4, 5, pad = 1) "
        "for i in range(2)] -> GlobalAvgPool -> Flatten -> fc: Linear(10)\n}\n"
    )
    graph = api.graph("test.cnn", text=text)
    assert "self.register_parameter('0', nn.Parameter(torch.full((16, 1, 1), 2.0)))" in to_source(
        graph
    )
    assert_same_module(graph)


@pytest.mark.parametrize(
    "model", ["resnet18", "shufflenet_v2_x1_0", "efficientnet_b0", "googlenet"]
)
def test_generated_module_equals_load_for_zoo_models(model):
    path = ROOT / "zoo" / f"{model}.cnn"
    if not path.exists():
        pytest.skip(f"zoo/{model}.cnn is not there yet")
    assert_same_module(api.graph(path, input=(3, 64, 64)))


def test_forward_reads_like_hand_written_code():
    source = to_source(api.graph("test.cnn", text=RESIDUAL))
    assert FORWARD in source
    assert "        self.layer1[1].downsample = nn.Sequential(\n" in source
    assert (
        "        self.layer1[1].conv1 = "
        "nn.Conv2d(8, 16, kernel_size=3, stride=2, padding=1, bias=False)\n" in source
    )
    assert "class TinyResnet(nn.Module):" in source


def test_every_forward_line_carries_its_shape_and_every_line_fits_100_columns():
    source = to_source(api.graph("test.cnn", text=MODERN))
    forward = source[source.index("    def forward") : source.index("        return")]
    calls = [line for line in forward.splitlines()[1:] if " = " in line]
    assert calls and all(line.rsplit("  # ", 1)[1].startswith("[N, ") for line in calls)
    assert max(map(len, source.splitlines())) <= 100


def test_imports_only_torch():
    tree = ast.parse(to_source(api.graph("test.cnn", text=MODERN)))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    }
    assert imported == {"__future__", "math", "torch"}


def test_imports_and_runs_where_cnnc_is_not_installed(tmp_path):
    (tmp_path / "modern.py").write_text(to_source(api.graph("test.cnn", text=MODERN), seed=0))
    script = (
        "import sys; sys.modules['cnnc'] = None\n"  # any `import cnnc` now fails
        "import torch; from modern import Modern\n"
        "print(tuple(Modern().eval()(torch.randn(2, 3, 16, 16)).shape))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(2, 10)"


def test_seed_given_at_compile_time_becomes_the_default():
    source = to_source(api.graph("test.cnn", text=RESIDUAL), seed=7)
    assert "def __init__(self, seed: int | None = 7):" in source
    a, b = (
        build(source, "tiny_resnet", 7).state_dict(),
        cnnc.compile_source(RESIDUAL, seed=7).state_dict(),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
