"""The dense-prediction zoo (issue 10): segmentation, a detection backbone and U-Net.

Each model is exact to its reference (`tests/dense_reference.py`): the parameters and MACs cnnc
computes without torch equal the reference module's `numel` and FlopCounterMode, at the input the
file declares; the state_dict (keys, shapes, order) is the reference's; every output has the shape
the reference gives; and with the reference's weights loaded strictly, the outputs agree within 1e-5
on a non-square input of another size (the resizing to `in` and the crops happen at run time).
"""

from __future__ import annotations

import json

import pytest
from dense_reference import CASES, Dense, build, measure, outputs, unet_params
from zoo_support import ROOT, randomise_normalisation

from cnnc import api
from cnnc.compiler.analysis.summary import summarize

IDS = [c.name for c in CASES]
BY_NAME = {c.name: c for c in CASES}
# the smaller, non-square input each equality test runs on, so a forward costs a few GMACs (an
# unpadded U-Net takes 16k + 124 pixels a side, a padded one 16k)
EQUALITY_INPUT = {
    "resnet50_fpn": (3, 160, 224),
    "unet": (1, 188, 220),
    "unet_padded": (1, 64, 96),
    "lraspp_mobilenet_v3_large": (3, 200, 264),
}
SEGMENTATION_INPUT = (3, 72, 104)
OUTPUT_KEYS = {
    "fcn_resnet50": ["out"],
    "fcn_resnet50-aux": ["out", "aux"],
    "deeplabv3_resnet50": ["out"],
    "deeplabv3_resnet50-aux": ["out", "aux"],
    "lraspp_mobilenet_v3_large": ["out"],
    "resnet50_fpn": ["0", "1", "2", "3", "pool"],
    "unet": [None],
    "unet_padded": [None],
}


def require(case: Dense) -> Dense:
    """The model's zoo file (a missing one fails here, by name)."""
    assert case.path.exists(), f"zoo/{case.model}.cnn is missing"
    return case


def _graph(case: Dense):
    """The shaped graph of `case`'s network, bound to its arguments (as `--arg name=value`)."""
    return api.graph(require(case).path, args=api.parse_arg_values(list(case.args)))


def our_outputs(g) -> dict:
    """`{key: shape}` of a graph's outputs, keys as the module returns them ("" for one tensor)."""
    return {("" if k is None else str(k)): list(g.node(i).type.shape) for k, i in g.outputs}


# -- the backbones, dilated -------------------------------------------------------------------------

DILATED = [
    (
        "ResNet([3, 4, 6, 3], dilate = [false, true, true])",
        "resnet50",
        {"replace_stride_with_dilation": [False, True, True]},
    ),
    (
        "ResNet([2, 2, 2, 2], dilate = [true, false, true])",
        "ResNet-Bottleneck-2222",
        {"replace_stride_with_dilation": [True, False, True]},
    ),
    ("MobileNetV3(v3_large, 1280, dilated = true)", "mobilenet_v3_large", {"dilated": True}),
    ("MobileNetV3(v3_small, 1024, dilated = true)", "mobilenet_v3_small", {"dilated": True}),
]


def torchvision_backbone(name: str, kwargs: dict):
    torchvision = pytest.importorskip("torchvision")
    if name == "ResNet-Bottleneck-2222":
        from torchvision.models.resnet import Bottleneck, ResNet

        return ResNet(Bottleneck, [2, 2, 2, 2], **kwargs)
    return getattr(torchvision.models, name)(weights=None, **kwargs)


@pytest.mark.parametrize("call, name, kwargs", DILATED, ids=[d[1] + "-dilated" for d in DILATED])
def test_dilated_backbones_match_torchvision(tmp_path, call, name, kwargs):
    """The families' dilation (`replace_stride_with_dilation`, MobileNetV3's `dilated`): the same
    counts, state_dict and output as torchvision's, with its weights."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    torch.manual_seed(0)
    family = "resnet" if call.startswith("ResNet") else "mobilenet"
    path = tmp_path / "dilated.cnn"
    path.write_text(f'import "families/{family}.cnn"\n\nnetwork dilated = {call}\n')
    theirs = torchvision_backbone(name, kwargs).eval()
    randomise_normalisation(torch, theirs)
    s = summarize(api.graph(path))
    x = torch.randn(1, 3, 224, 224)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        expected = theirs(x)
    assert (s.params, s.macs) == (
        sum(p.numel() for p in theirs.parameters()),
        counter.get_total_flops() // 2,
    )
    ours = api.load(path, seed=0).eval()
    assert [[k, list(v.shape)] for k, v in ours.state_dict().items()] == [
        [k, list(v.shape)] for k, v in theirs.state_dict().items()
    ]
    ours.load_state_dict(theirs.state_dict(), strict=True)
    with torch.no_grad():
        assert (ours(x) - expected).abs().max().item() <= 1e-5


# -- counts and shapes, static ------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_counts_and_output_shapes_match_reference(case):
    g = _graph(case)
    s = summarize(g)
    shape = tuple(g.input_type.shape)
    count, mac, shapes = measure(pytest.importorskip("torch"), case, shape)
    assert (s.params, s.macs) == (count, mac)
    assert our_outputs(g) == shapes
    assert [None if k is None else str(k) for k, _ in g.outputs] == OUTPUT_KEYS[case.name]


def test_unet_is_the_papers():
    """572×572×1 in, 388×388×2 out; 31,030,658 parameters by the paper's arithmetic; the padded
    variant keeps the size."""
    s = summarize(_graph(BY_NAME["unet"]))
    assert [list(x[1]) for x in s.inputs] == [[1, 572, 572]]
    assert [list(x[2]) for x in s.outputs] == [[2, 388, 388]]
    assert s.params == unet_params() == 31_030_658
    padded = summarize(_graph(BY_NAME["unet_padded"]))
    assert [list(x[2]) for x in padded.outputs] == [[2, 512, 512]] and padded.params == s.params


def test_published_figures_of_the_segmentation_models():
    """torchvision's weights metadata for the models with their auxiliary heads (as trained): the
    parameters, and `_ops` in GMACs at 520×520 — the same figures cnnc computes."""
    figures = {
        "fcn_resnet50-aux": (35_322_218, 152.717),
        "deeplabv3_resnet50-aux": (42_004_074, 178.722),
        "lraspp_mobilenet_v3_large": (3_221_538, 2.086),
    }
    for name, (count, gmacs) in figures.items():
        s = summarize(_graph(BY_NAME[name]))
        assert s.params == count and round(s.macs / 1e9, 3) == gmacs, name


def test_fpn_freezes_conv1_and_layer1_as_trainable_layers_3_does():
    torch = pytest.importorskip("torch")  # noqa: F841 — the reference is a torch module
    case = BY_NAME["resnet50_fpn"]
    ref = build(case)
    s = summarize(_graph(case))
    assert (
        s.frozen_params
        == sum(p.numel() for p in ref.parameters() if not p.requires_grad)
        == 222_400
    )
    assert s.params - s.frozen_params == sum(p.numel() for p in ref.parameters() if p.requires_grad)


def test_fpn_summary_lists_five_outputs(capsys):
    from cnnc.cli import main

    require(BY_NAME["resnet50_fpn"])
    assert main(["summary", str(BY_NAME["resnet50_fpn"].path), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [o["key"] for o in report["outputs"]] == OUTPUT_KEYS["resnet50_fpn"]
    assert [o["shape"] for o in report["outputs"]] == [
        [256, 200, 200],
        [256, 100, 100],
        [256, 50, 50],
        [256, 25, 25],
        [256, 13, 13],
    ]


# -- lowering ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_dict_matches_reference(case):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    ours = api.load(require(case).path, args=list(case.args), seed=0)
    theirs = build(case)
    assert [[k, list(v.shape)] for k, v in ours.state_dict().items()] == [
        [k, list(v.shape)] for k, v in theirs.state_dict().items()
    ]
    frozen = {k for k, p in ours.named_parameters() if not p.requires_grad}
    assert frozen == {k for k, p in theirs.named_parameters() if not p.requires_grad}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_reference_weights_give_the_same_output(case):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    torch.manual_seed(0)
    theirs = build(require(case))
    randomise_normalisation(torch, theirs)
    ours = api.load(case.path, args=list(case.args), seed=0).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, *EQUALITY_INPUT.get(case.model, SEGMENTATION_INPUT))
    with torch.no_grad():
        expected, got = outputs(theirs(x)), outputs(ours(x))
    assert list(got) == list(expected)
    for key in expected:
        assert got[key].shape == expected[key].shape, key
        assert (got[key] - expected[key]).abs().max().item() <= 1e-5, key


@pytest.mark.parametrize("case", [c for c in CASES if not c.args], ids=lambda c: c.name)
def test_static_shapes_hold_at_the_declared_input(case):
    """A forward at the declared input (on the meta device: shapes only) gives the static shapes."""
    torch = pytest.importorskip("torch")
    ours = api.load(require(case).path, seed=0).eval().to("meta")
    g = ours.cnnc_graph
    with torch.no_grad():
        got = outputs(ours(torch.zeros(1, *g.input_type.shape, device="meta")))
    assert {k: list(v.shape[1:]) for k, v in got.items()} == our_outputs(g)


# -- drawing ---------------------------------------------------------------------------------------


def test_unet_drawing_shows_the_skip_connections():
    """Each level's encoder output is drawn as an edge into the crop of the decoder level that
    concatenates it (the long arrows of the paper's figure)."""
    import re

    from cnnc.compiler.render.dot import render

    dot = render(_graph(BY_NAME["unet"])).source
    names = dict(
        re.findall(r'(n\d+) \[label=.*?tooltip="%\d+ (\S+) =', dot)
    )  # node id → label path
    edges = {(names.get(a), names.get(b)) for a, b in re.findall(r"(n\d+) -> (n\d+)", dot)}
    for level in (1, 2, 3, 4):
        assert (f"enc{level}.3", f"dec{level}.crop") in edges, level
        assert (f"dec{level}.crop", f"dec{level}.concat") in edges, level


def test_zoo_files_name_paper_reference_and_input():
    for name in sorted({require(c).model for c in CASES}):
        header = (ROOT / "zoo" / f"{name}.cnn").read_text().split("\n\n")[0]
        assert "arXiv:" in header and "Reference:" in header and "Input: " in header, name


# -- `cnnc zoo` ------------------------------------------------------------------------------------


def test_cnnc_zoo_lists_the_dense_models_in_a_section_of_their_own(capsys, tmp_path):
    """Task, inputs, outputs, params and MACs, the figures computed from the graphs; the classifiers'
    table keeps its columns and leaves the dense models out, and so does the accuracy chart."""
    from cnnc.cli import main

    for case in CASES:
        require(case)
    assert main(["zoo", "--format", "json", "--plot", str(tmp_path / "zoo.png")]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    for case in CASES:
        if case.args:
            continue
        s = summarize(_graph(case))
        row = rows[case.model]
        assert row["task"] != "image classification" and "top1" not in row
        assert (row["params"], row["macs"]) == (s.params, s.macs)
        assert [o["key"] for o in row["outputs"]] == OUTPUT_KEYS[case.name]
        assert [o["shape"] for o in row["outputs"]] == [list(shape) for _, _, shape in s.outputs]
        assert [i["shape"] for i in row["inputs"]] == [list(_graph(case).input_type.shape)]
    assert rows["resnet50"]["task"] == "image classification" and rows["resnet50"]["top1"] == 76.13

    assert main(["zoo"]) == 0
    classifiers, _, dense = capsys.readouterr().out.partition("\ndense prediction\n")
    assert "resnet50 " in classifiers and "unet" not in classifiers
    lines = {line.split()[0]: line for line in dense.strip().splitlines()[2:]}
    assert set(lines) == {c.model for c in CASES}
    assert (
        "semantic segmentation" in lines["fcn_resnet50"]
        and "out 21×520×520" in lines["fcn_resnet50"]
    )
    assert "0 256×200×200" in lines["resnet50_fpn"] and "pool 256×13×13" in lines["resnet50_fpn"]
    assert (
        "1×572×572" in lines["unet"] and "2×388×388" in lines["unet"] and "31.03 M" in lines["unet"]
    )
