"""The mobile/efficient and timm zoo (issue 4): MobileNets to ConvNeXt, Inception-v4 and the SENets.

Each model's parameter and MAC counts, state_dict (keys, shapes, order) and output shape must equal
`tests/reference/<model>.json` (torchvision 0.29.1 / timm 1.0.31). With torchvision and timm
importable (the reference venv), the reference's weights load strictly into our module and both give
the same output on random input.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnc import api
from cnnc.compiler.analysis.summary import summarize

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference"

MODELS = [
    "mobilenetv1_100", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
    "shufflenet_v2_x1_0", "mnasnet1_0", "efficientnet_b0", "regnet_y_400mf", "convnext_tiny",
    "inception_v4", "inception_resnet_v2", "seresnet50", "senet154",
]
# The exact figures the issue asks for (params, MACs at batch 1), independent of the JSON files.
FIGURES = {
    "mobilenetv1_100": (4_231_976, 568_740_352),
    "mobilenet_v2": (3_504_872, 300_774_272),
    "mobilenet_v3_small": (2_542_856, 56_510_400),
    "mobilenet_v3_large": (5_483_032, 216_589_760),
    "shufflenet_v2_x1_0": (2_278_604, 144_907_992),
    "mnasnet1_0": (4_383_312, 314_415_872),
    "efficientnet_b0": (5_288_548, 385_814_752),
    "regnet_y_400mf": (4_344_144, 401_842_848),
    "convnext_tiny": (28_589_128, 4_455_531_264),
    "inception_v4": (42_679_816, 12_253_974_624),
    "inception_resnet_v2": (55_843_464, 13_155_794_016),
    "seresnet50": (28_088_024, 4_091_699_200),
    "senet154": (115_088_984, 20_688_363_520),
}
# Too slow to initialise and run on two CPU threads within this file's budget (≈ 115 M weights,
# 20.7 G MACs; 13.2 G for Inception-ResNet): their state_dicts are checked on the meta device.
NO_FORWARD = {"senet154", "inception_resnet_v2"}


def reference(model: str) -> dict:
    return json.loads((REFERENCE / f"{model}.json").read_text())


def zoo(model: str) -> Path:
    return ROOT / "zoo" / f"{model}.cnn"


# -- elaboration and counts -----------------------------------------------------------------------

@pytest.mark.parametrize("model", MODELS)
def test_elaborates_without_diagnostics(model):
    result = api.elaborate_file(zoo(model))
    assert result.graph is not None
    assert result.diagnostics == ()
    assert result.graph.network == model


@pytest.mark.parametrize("model", MODELS)
def test_counts_match_reference(model):
    ref = reference(model)
    g = api.graph(zoo(model))
    s = summarize(g)
    assert (s.params, s.macs) == FIGURES[model] == (ref["params"], ref["macs"])
    assert list(g.input_type.shape) == ref["input"]
    assert [1, *g.output_type.shape] == ref["output"]


def test_every_model_file_names_its_paper_and_reference():
    for model in MODELS:
        header = zoo(model).read_text().split("\n\n")[0]
        assert "arXiv:" in header and "Reference:" in header and "Input: 3×" in header, model


# -- lowering -------------------------------------------------------------------------------------

def _load():
    load = getattr(api, "load", None)
    if load is None:
        pytest.skip("cnnc.api.load is not there yet")
    return load


@pytest.mark.parametrize("model", MODELS)
def test_state_dict_and_output_shape_match_reference(model):
    torch = pytest.importorskip("torch")
    load = _load()
    ref = reference(model)
    torch.set_num_threads(2)
    if model in NO_FORWARD:  # keys and shapes only: lowered on the meta device, nothing initialised
        from cnnc.compiler.lower.fx import to_graph_module

        net = to_graph_module(api.graph(zoo(model)), device="meta")
    else:
        net = load(zoo(model), seed=0)
    assert [[k, list(v.shape)] for k, v in net.state_dict().items()] == ref["state_dict"]
    if model in NO_FORWARD:
        return
    net.eval()
    with torch.no_grad():
        out = net(torch.zeros(1, *ref["input"]))
    assert list(out.shape) == ref["output"] == [1, *api.graph(zoo(model)).output_type.shape]


# -- torchvision and timm as the oracle (reference venv only) -------------------------------------

def build_reference(model: str):
    """The reference model, by the constructor call recorded in its JSON file."""
    ctor = reference(model)["ctor"]
    lib = pytest.importorskip(ctor.split(".")[0])
    if ctor.startswith("timm.create_model("):
        name = ctor.split("'")[1]
        return lib.create_model(name, pretrained=False)
    assert ctor.startswith("torchvision.models.") and ctor.endswith("(weights=None)")
    return getattr(lib.models, ctor.removeprefix("torchvision.models.").split("(")[0])(weights=None)


def randomise_normalisation(torch, net) -> None:
    """Non-trivial norm statistics and affine terms, and layer scales away from ConvNeXt's 1e-6, so
    a swapped or mis-configured normalisation (an eps of 1e-5 for 1e-3) would show in the output."""
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_mean":
                tensor.uniform_(-0.1, 0.1)
            elif leaf == "running_var" or leaf == "layer_scale":
                tensor.uniform_(0.5, 1.5)
            elif tensor.is_floating_point() and tensor.dim() == 1 and leaf in ("weight", "bias"):
                tensor.add_(torch.empty_like(tensor).uniform_(-0.1, 0.1))


@pytest.mark.parametrize("model", MODELS)
def test_reference_weights_give_the_same_output(model):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    pytest.importorskip("timm")
    load = _load()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    theirs = build_reference(model).eval()
    randomise_normalisation(torch, theirs)
    ours = load(zoo(model), seed=0).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, *reference(model)["input"])
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-5
