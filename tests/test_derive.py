"""Derived networks: `network pets = r18 with { fc: Linear(37) } freeze until layer4 cut after …`,
checked against torchvision's ResNet-18 with the same surgery done by hand."""

from __future__ import annotations

import pytest

import cnnc
from cnnc.dsl.format import format_module
from cnnc.dsl.parse import parse_text

PROGRAM = """\
import "families/resnet.cnn"

network r18 = ResNet([2, 2, 2, 2], unit = Basic)
network pets = r18 with {
    fc: Linear(37)  # a new head
} freeze until layer4
network trunk = r18 cut after layer4
network pets_trunk = pets cut after layer4
network light = r18 with {
    layer4.1: Identity
    layer3: Conv(256, 1, stride = 2) -> BatchNorm -> ReLU
} freeze conv1, bn1, layer1.0
"""


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "derived.cnn"
    path.write_text(PROGRAM)
    return path


def summary(path, network):
    return cnnc.summary(path, network=network).to_json()


def test_the_clauses_format_canonically_and_round_trip():
    module = parse_text(PROGRAM, path="derived.cnn")
    assert format_module(module) == PROGRAM
    assert parse_text(format_module(module), path="derived.cnn") == module


def test_a_new_head_and_a_frozen_trunk_against_torchvision(program):
    tv = pytest.importorskip("torchvision.models")
    torch = pytest.importorskip("torch")
    reference = tv.resnet18()
    reference.fc = torch.nn.Linear(512, 37)
    frozen = sum(
        p.numel()
        for name, p in reference.named_parameters()
        if not name.startswith(("layer4", "fc"))
    )
    s = summary(program, "pets")
    assert s["params"] == sum(p.numel() for p in reference.parameters()) == 11_195_493
    assert (
        (s["frozen_params"], s["trainable_params"])
        == (frozen, 11_195_493 - frozen)
        == (2_782_784, 8_412_709)
    )
    assert s["output"] == [37]
    model = cnnc.load(program, network="pets")
    assert model.state_dict().keys() == reference.state_dict().keys()
    assert sum(p.numel() for p in model.parameters() if not p.requires_grad) == frozen


def test_cut_after_a_label_ends_the_network_there(program):
    s = summary(program, "trunk")
    assert s["output"] == [512, 7, 7] and s["params"] == 11_689_512 - 513_000
    assert s["layers"][-1]["name"].startswith("layer4.1")
    assert (
        summary(program, "pets_trunk")["frozen_params"] == 2_782_784
    )  # the parent's freeze is kept


def test_replacing_a_block_and_a_stage_rechecks_the_shapes(program):
    s = summary(program, "light")
    names = [row["name"] for row in s["layers"]]
    assert not any(n.startswith("layer4.1.") for n in names)
    assert (
        "layer3.0" in names
        and "layer3.1" in names
        and not any(n.startswith("layer3.0.") for n in names)
    )
    assert s["output"] == [1000]
    assert s["frozen_params"] == 64 * 3 * 49 + 2 * 64 + 2 * (64 * 64 * 9 + 2 * 64)


def test_the_parents_checkpoint_loads_strictly_with_the_head_reported_new(program, tmp_path):
    tv = pytest.importorskip("torchvision.models")
    torch = pytest.importorskip("torch")
    torch.save(tv.resnet18().state_dict(), tmp_path / "r18.pth")
    model = cnnc.load(program, network="pets", weights=tmp_path / "r18.pth")
    report = model.cnnc_weights
    assert report.ok and report.new == ("fc.bias", "fc.weight") and len(report.loaded) == 120
    assert report.notes == ("replaced layers, newly initialised: fc.bias, fc.weight",)


def test_a_replacement_that_does_not_fit_is_located_in_the_derived_program(tmp_path):
    from cnnc.dsl.diagnostics import CnncError

    path = tmp_path / "bad.cnn"
    path.write_text(PROGRAM + "network broken = r18 with {\n    fc: Conv(10, 3)\n}\n")
    with pytest.raises(CnncError) as caught:
        cnnc.graph(path, network="broken")
    (d,) = caught.value.diagnostics
    assert d.code == "E0304" and d.span.line == 14 and d.span.text == "Conv(10, 3)"


def test_render_marks_the_frozen_blocks(program):
    dot = cnnc.render(program, network="pets", depth=1).source
    assert dot.count("❄ frozen") >= 4  # layer1, layer2, layer3 and their blocks; not layer4 or fc
    layer4 = next(line for line in dot.splitlines() if "layer4</B>" in line)
    assert "frozen" not in layer4
