"""The classic zoo (issue 4): AlexNet to DenseNet, torchvision-exact where torchvision has the model.

For a reference model the parameter and MAC counts, the state_dict (keys, shapes, order) and the
output shape must equal `tests/reference/<model>.json`; with torchvision importable (the reference
venv), the reference's weights load strictly into our module and both give the same output.
Paper-only models are checked against figures worked out by hand below, layer by layer.
MACs are multiply-accumulates of Conv and Linear layers at batch 1: out_h·out_w·out_c·(in_c/groups)·k².
"""

from __future__ import annotations

import functools

import pytest
from zoo_support import check_same_output_as_reference, check_state_dict_and_output, reference, zoo

import cnnc.api as api
from cnnc.compiler.analysis.summary import summarize

REFERENCE_MODELS = [
    "alexnet",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "googlenet",
    "inception_v3",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "squeezenet1_0",
    "squeezenet1_1",
    "densenet121",
]
PAPER_MODELS = ["zfnet", "lenet5", "nin", "googlenet_2014", "inception_v2"]


@functools.cache
def graph(model: str):
    return api.graph(zoo(model))


# -- hand arithmetic for the paper-only models --------------------------------------------------------
# conv(cin, cout, k, out, bias) → (params, MACs) of a k×k convolution (k may be (kh, kw)) giving an
# out×out map; linear(fin, fout, bias) likewise. Each model's table lists its layers in order.


def conv(cin: int, cout: int, k, out: int, bias: bool = True, groups: int = 1) -> tuple[int, int]:
    kh, kw = (k, k) if isinstance(k, int) else k
    weights = cout * (cin // groups) * kh * kw
    return weights + (cout if bias else 0), out * out * weights


def linear(fin: int, fout: int, bias: bool = True) -> tuple[int, int]:
    return fin * fout + (fout if bias else 0), fin * fout


def bn(c: int) -> tuple[int, int]:
    return 2 * c, 0  # γ and β; the running statistics are buffers, not parameters


def total(layers) -> tuple[int, int]:
    return sum(p for p, _ in layers), sum(m for _, m in layers)


def zfnet() -> list:
    # 224 → conv1 7×7/2 pad 1 → 110 → pool 3/2 (ceil) → 55 → conv2 5×5/2 → 26 → pool → 13
    # → conv3..5 3×3 pad 1 → 13 → pool → 6; then 256·6·6 = 9216 features into fc6.
    return [
        conv(3, 96, 7, 110),  # 14,208 params
        conv(96, 256, 5, 26),  # 614,656
        conv(256, 384, 3, 13),  # 885,120
        conv(384, 384, 3, 13),  # 1,327,488
        conv(384, 256, 3, 13),  # 884,992
        linear(256 * 6 * 6, 4096),  # 37,752,832
        linear(4096, 4096),  # 16,781,312
        linear(4096, 1000),
    ]  # 4,097,000


# LeNet-5's Table 1: the S2 maps each C3 map is connected to.
C3_TABLE = [
    [0, 1, 2],
    [1, 2, 3],
    [2, 3, 4],
    [3, 4, 5],
    [0, 4, 5],
    [0, 1, 5],
    [0, 1, 2, 3],
    [1, 2, 3, 4],
    [2, 3, 4, 5],
    [0, 3, 4, 5],
    [0, 1, 4, 5],
    [0, 1, 2, 5],
    [0, 1, 3, 4],
    [1, 2, 4, 5],
    [0, 2, 3, 5],
    [0, 1, 2, 3, 4, 5],
]


def lenet5() -> list:
    # 32 → C1 5×5 → 28 → S2 → 14 → C3 5×5 → 10 → S4 → 5 → C5 5×5 → 1; the paper's counts on the right.
    return [
        conv(1, 6, 5, 28),  # C1: 156
        conv(6, 6, 1, 14, groups=6),  # S2: 12 (a coefficient and a bias per map)
        *[conv(len(s), 1, 5, 10) for s in C3_TABLE],  # C3: 6·76 + 9·101 + 151 = 1,516
        conv(16, 16, 1, 5, groups=16),  # S4: 32
        conv(16, 120, 5, 1),  # C5: 48,120
        linear(120, 84),  # F6: 10,164
        linear(84, 10, bias=False),
    ]  # output: 840 (the RBF units' weights)


def nin() -> list:
    # 224 → conv 11×11/4 → 54 → pool (ceil) → 27 → conv 5×5 pad 2 → 27 → pool → 13 → 3×3 pad 1 → 13
    # → pool → 6 → 3×3 pad 1 → 6; each conv followed by two 1×1 "cccp" convolutions.
    return [
        conv(3, 96, 11, 54),
        conv(96, 96, 1, 54),
        conv(96, 96, 1, 54),
        conv(96, 256, 5, 27),
        conv(256, 256, 1, 27),
        conv(256, 256, 1, 27),
        conv(256, 384, 3, 13),
        conv(384, 384, 1, 13),
        conv(384, 384, 1, 13),
        conv(384, 1024, 3, 6),
        conv(1024, 1024, 1, 6),
        conv(1024, 1000, 1, 6),
    ]


def inception_v1(cin, c1, c3r, c3, c5r, c5, proj, size) -> list:
    return [
        conv(cin, c1, 1, size),
        conv(cin, c3r, 1, size),
        conv(c3r, c3, 3, size),
        conv(cin, c5r, 1, size),
        conv(c5r, c5, 5, size),
        conv(cin, proj, 1, size),
    ]


def googlenet_2014() -> list:
    # Table 1 of the paper, with biases; input channels of each module = the previous one's output.
    return [
        conv(3, 64, 7, 112),
        conv(64, 64, 1, 56),
        conv(64, 192, 3, 56),
        *inception_v1(192, 64, 96, 128, 16, 32, 32, 28),  # 3a → 256
        *inception_v1(256, 128, 128, 192, 32, 96, 64, 28),  # 3b → 480
        *inception_v1(480, 192, 96, 208, 16, 48, 64, 14),  # 4a → 512
        *inception_v1(512, 160, 112, 224, 24, 64, 64, 14),  # 4b → 512
        *inception_v1(512, 128, 128, 256, 24, 64, 64, 14),  # 4c → 512
        *inception_v1(512, 112, 144, 288, 32, 64, 64, 14),  # 4d → 528
        *inception_v1(528, 256, 160, 320, 32, 128, 128, 14),  # 4e → 832
        *inception_v1(832, 256, 160, 320, 32, 128, 128, 7),  # 5a → 832
        *inception_v1(832, 384, 192, 384, 48, 128, 128, 7),  # 5b → 1024
        linear(1024, 1000),
    ]


def cbn(cin, cout, k, out) -> list:
    """BN-Inception's unit: a bias-free convolution and its batch norm."""
    return [conv(cin, cout, k, out, bias=False), bn(cout)]


def inception_bn(cin, c1, c3r, c3, d3r, d3, proj, size) -> list:
    return [
        *cbn(cin, c1, 1, size),
        *cbn(cin, c3r, 1, size),
        *cbn(c3r, c3, 3, size),
        *cbn(cin, d3r, 1, size),
        *cbn(d3r, d3, 3, size),
        *cbn(d3, d3, 3, size),
        *cbn(cin, proj, 1, size),
    ]


def reduction_bn(cin, c3r, c3, d3r, d3, size) -> list:
    """Stride-2 module: the reduces run at the input size, the strided 3×3s at half of it."""
    return [
        *cbn(cin, c3r, 1, size),
        *cbn(c3r, c3, 3, size // 2),
        *cbn(cin, d3r, 1, size),
        *cbn(d3r, d3, 3, size),
        *cbn(d3, d3, 3, size // 2),
    ]


def inception_v2() -> list:
    # Figure 5 of the BN paper; module outputs 256, 320, 576, 576, 576, 608, 608, 1056, 1024, 1024.
    return [
        *cbn(3, 64, 7, 112),
        *cbn(64, 64, 1, 56),
        *cbn(64, 192, 3, 56),
        *inception_bn(192, 64, 64, 64, 64, 96, 32, 28),  # 3a → 64+64+96+32 = 256
        *inception_bn(256, 64, 64, 96, 64, 96, 64, 28),  # 3b → 64+96+96+64 = 320
        *reduction_bn(320, 128, 160, 64, 96, 28),  # 3c → 160+96+320 = 576
        *inception_bn(576, 224, 64, 96, 96, 128, 128, 14),  # 4a → 224+96+128+128 = 576
        *inception_bn(576, 192, 96, 128, 96, 128, 128, 14),  # 4b → 192+128+128+128 = 576
        *inception_bn(576, 160, 128, 160, 128, 160, 128, 14),  # 4c → 160+160+160+128 = 608
        *inception_bn(608, 96, 128, 192, 160, 192, 128, 14),  # 4d → 96+192+192+128 = 608
        *reduction_bn(608, 128, 192, 192, 256, 14),  # 4e → 192+256+608 = 1056
        *inception_bn(1056, 352, 192, 320, 160, 224, 128, 7),  # 5a → 352+320+224+128 = 1024
        *inception_bn(1024, 352, 192, 320, 192, 224, 128, 7),  # 5b → 1024
        linear(1024, 1000),
    ]


PAPER = {
    name: total(layers())
    for name, layers in [
        ("zfnet", zfnet),
        ("lenet5", lenet5),
        ("nin", nin),
        ("googlenet_2014", googlenet_2014),
        ("inception_v2", inception_v2),
    ]
}


def test_hand_arithmetic_spot_checks():
    """The helpers agree with numbers printed in the papers."""
    assert conv(3, 96, 7, 110)[0] == 14_208
    assert total(lenet5()[2:18])[0] == 1_516  # LeNet-5 §II.B, layer C3
    assert PAPER["lenet5"][0] == 60_840  # 156 + 12 + 1,516 + 32 + 48,120 + 10,164 + 840
    assert 1.5e9 < PAPER["googlenet_2014"][1] < 1.6e9  # "1.5 billion multiply-adds" (GoogLeNet §5)


# -- every model ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", REFERENCE_MODELS)
def test_counts_match_reference(model):
    ref = reference(model)
    g = graph(model)
    s = summarize(g)
    assert (s.params, s.macs) == (ref["params"], ref["macs"])
    assert list(g.input_type.shape) == ref["input"]
    assert [1, *g.output_type.shape] == ref["output"]


@pytest.mark.parametrize("model", PAPER_MODELS)
def test_counts_match_hand_arithmetic(model):
    s = summarize(graph(model))
    assert (s.params, s.macs) == PAPER[model]


# -- lowering -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", REFERENCE_MODELS)
def test_state_dict_and_output_shape_match_reference(model):
    check_state_dict_and_output(model)


@pytest.mark.parametrize("model", PAPER_MODELS)
def test_paper_models_lower_and_run(model):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    g = graph(model)
    net = api.load(zoo(model), seed=0).eval()
    assert sum(p.numel() for p in net.parameters()) == PAPER[model][0]
    with torch.no_grad():
        out = net(torch.zeros(1, *g.input_type.shape))  # [1, classes]
    assert list(out.shape) == [1, *g.output_type.shape]


# -- torchvision as the oracle (where it is installed) ------------------------------------------------

EQUIVALENCE = [
    "resnet50",
    "googlenet",
    "inception_v3",
    "vgg16_bn",
    "alexnet",
    "vgg11",
    "squeezenet1_0",
    "squeezenet1_1",
    "densenet121",
    "resnext50_32x4d",
    "wide_resnet50_2",
]


@pytest.mark.parametrize("model", EQUIVALENCE)
def test_torchvision_weights_give_the_same_output(model):
    pytest.importorskip("torchvision")
    check_same_output_as_reference(model)
