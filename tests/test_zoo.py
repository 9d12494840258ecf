"""The zoo's contract, over every model file: it checks without a diagnostic, names its paper and
reference, and `cnnc.load` forwards a batch on the CPU with the statically predicted shape."""

from __future__ import annotations

import pytest
from dense_reference import CASES as DENSE
from zoo_support import ROOT

from cnnc import api
from cnnc.compiler.elaborate import default_network, network_names

FILES = sorted((ROOT / "zoo").glob("*.cnn"))
# the dense models run in test_zoo_dense.py, at smaller inputs (a 520×520 forward costs 150 GMACs)
DENSE_FILES = {case.model for case in DENSE}
NETWORKS = [
    (f, n)
    for f in FILES
    for n in (
        [default_network(api.load_program(f))]
        if f.stem != "inception_module"
        else [name for name, _ in network_names(api.load_program(f))]
    )
]


@pytest.mark.parametrize("path, network", NETWORKS, ids=[f"{f.stem}:{n}" for f, n in NETWORKS])
def test_zoo_network_checks_and_runs(path, network):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    result = api.elaborate_file(path, network)
    assert result.diagnostics == ()
    g = result.graph
    assert g.network == network
    if path.stem in DENSE_FILES:
        return
    model = api.load(path, network, seed=0).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *g.input_type.shape))  # [2, *output]
    assert tuple(out.shape) == (2, *g.output_type.shape)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "path", [f for f in FILES if f.stem != "inception_module"], ids=lambda f: f.stem
)
def test_zoo_file_header_names_paper_reference_and_input(path):
    header = path.read_text().split("\n\n")[0]
    assert "Input" in header or "input" in header
    assert any(
        word in header
        for word in ("arXiv", "NeurIPS", "CVPR", "ICLR", "Proc.", "IEEE", "ECCV", "BMVC", "AAAI")
    )
