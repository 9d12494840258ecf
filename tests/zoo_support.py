"""What the zoo tests share: reference data, the reference models, and the two equality checks.

`tests/reference/<model>.json` holds the reference's params, MACs, output and state_dict (keys and
shapes in order), dumped by `tests/reference/dump_reference.py` from torchvision 0.29.1 / timm 1.0.31.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from cnnc import api

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference"


def reference(model: str) -> dict:
    return json.loads((REFERENCE / f"{model}.json").read_text())


def zoo(model: str) -> Path:
    return ROOT / "zoo" / f"{model}.cnn"


def build_reference(model: str):
    """The reference model, built by the constructor call its JSON file records."""
    ctor = reference(model)["ctor"]
    lib = pytest.importorskip(ctor.split(".")[0])
    call = ast.parse(ctor, mode="eval").body
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    args = [ast.literal_eval(a) for a in call.args]
    if ctor.startswith("timm.create_model("):
        return lib.create_model(*args, **kwargs)
    return getattr(lib.models, call.func.attr)(*args, **kwargs)


def randomise_normalisation(torch, net) -> None:
    """Non-trivial norm statistics and affine terms, and layer scales away from ConvNeXt's 1e-6, so a
    swapped or mis-configured normalisation (an eps of 1e-5 for 1e-3) would show in the output."""
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_mean":
                tensor.uniform_(-0.1, 0.1)
            elif leaf in ("running_var", "layer_scale"):
                tensor.uniform_(0.5, 1.5)
            elif tensor.is_floating_point() and tensor.dim() == 1 and leaf in ("weight", "bias"):
                tensor.add_(torch.empty_like(tensor).uniform_(-0.1, 0.1))


def check_state_dict_and_output(model: str) -> None:
    """Keys and shapes of `state_dict()` equal the reference's; a forward pass on the CPU (batch 1)
    gives the statically predicted output shape."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    ref = reference(model)
    g = api.graph(zoo(model))
    net = api.load(zoo(model), seed=0)
    assert [[k, list(v.shape)] for k, v in net.state_dict().items()] == ref["state_dict"]
    net.eval()
    with torch.no_grad():
        out = net(torch.zeros(1, *ref["input"]))  # [1, classes]
    assert list(out.shape) == ref["output"] == [1, *g.output_type.shape]


def check_same_output_as_reference(model: str) -> None:
    """The reference's weights load strictly into ours, and both give the same output (≤ 1e-5)."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    torch.manual_seed(0)
    theirs = build_reference(model).eval()
    randomise_normalisation(torch, theirs)
    ours = api.load(zoo(model), seed=0).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, *reference(model)["input"])  # [1, 3, H, W]
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-5
