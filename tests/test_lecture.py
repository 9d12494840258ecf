"""The lecture's figures as test cases: the CNN-architectures lecture the project started from,
described in README's "The lecture's figures".

Where a printed total does not follow from the lecture's own rows, the test asserts the true figure
and says which lecture figure is off and why (README, "What the lecture gets wrong").
"""

from __future__ import annotations

import pytest

from cnnc import api
from cnnc.api import graph
from cnnc.compiler.analysis.summary import summarize
from cnnc.compiler.ops.conv import output_size


def rows(path, network=None, **args):
    from cnnc.api import parse_arg_values

    values = parse_arg_values([f"{k}={v}" for k, v in args.items()])
    s = summarize(graph(path, network, values))
    return s, {r.name: r for r in s.layers}


# W' = (W − F + 2P) / S + 1
@pytest.mark.parametrize(
    "w, f, p, s, out",
    [
        (227, 11, 0, 4, 55),  # AlexNet CONV1
        (55, 3, 0, 2, 27),  # POOL1
        (27, 5, 2, 1, 27),  # CONV2
        (27, 3, 0, 2, 13),  # POOL2
        (13, 3, 1, 1, 13),  # CONV3-5: stride 1, pad 1 keeps the size
        (13, 3, 0, 2, 6),  # POOL3
        (224, 2, 0, 2, 112),  # VGG's 2×2 pools halve
    ],
)
def test_output_size_formula(w, f, p, s, out):
    assert output_size(w, f, s, p) == out


# The full (simplified) AlexNet: [shape] NAME, and the lecture's 35K for CONV1.
ALEXNET = [
    ("input", (3, 227, 227), 0),
    ("conv1", (96, 55, 55), (11 * 11 * 3 + 1) * 96),  # = 34,944 ("35K")
    ("pool1", (96, 27, 27), 0),  # "Parameters: 0!"
    ("norm1", (96, 27, 27), 0),
    ("conv2", (256, 27, 27), (5 * 5 * 96 + 1) * 256),
    ("pool2", (256, 13, 13), 0),
    ("norm2", (256, 13, 13), 0),
    ("conv3", (384, 13, 13), (3 * 3 * 256 + 1) * 384),
    ("conv4", (384, 13, 13), (3 * 3 * 384 + 1) * 384),
    ("conv5", (256, 13, 13), (3 * 3 * 384 + 1) * 256),
    ("pool3", (256, 6, 6), 0),
    ("fc6", (4096,), (6 * 6 * 256 + 1) * 4096),
    ("fc7", (4096,), (4096 + 1) * 4096),
    ("fc8", (1000,), (4096 + 1) * 1000),  # class scores
]


@pytest.mark.parametrize("name, shape, params", ALEXNET, ids=[r[0] for r in ALEXNET])
def test_alexnet_2012_rows(name, shape, params):
    _, by_name = rows("zoo/alexnet_2012.cnn")
    assert by_name[name].shape == shape
    assert by_name[name].params == params


def test_alexnet_conv1_has_34944_params():
    _, by_name = rows("zoo/alexnet_2012.cnn")
    assert by_name["conv1"].params == 34_944


def test_alexnet_two_towers_are_grouped_convolutions():
    """CONV2, CONV4, CONV5 connect only within a GPU: groups = 2 halves their weights."""
    one, a = rows("zoo/alexnet_2012.cnn")
    two, b = rows("zoo/alexnet_2012.cnn", towers=2)
    for name, k, cin in (("conv2", 5, 96), ("conv4", 3, 384), ("conv5", 3, 384)):
        cout = a[name].shape[0]
        assert b[name].params == k * k * (cin // 2) * cout + cout
        assert b[name].shape == a[name].shape
    assert b["conv3"].params == a["conv3"].params  # CONV3 talks across GPUs
    assert one.params == 62_378_344
    assert two.params == 60_965_224  # the paper's "60 million parameters"


# VGG-16: [shape] memory (elements) and params from the lecture's table. The lecture counts weights
# without biases ("(3*3*3)*64 = 1,728"); torchvision's layers have biases, one per output channel.
VGG = [
    ("features.0", (64, 224, 224), 224 * 224 * 64, 3 * 3 * 3 * 64),
    ("features.2", (64, 224, 224), 224 * 224 * 64, 3 * 3 * 64 * 64),
    ("features.4", (64, 112, 112), 112 * 112 * 64, 0),
    ("features.5", (128, 112, 112), 112 * 112 * 128, 3 * 3 * 64 * 128),
    ("features.7", (128, 112, 112), 112 * 112 * 128, 3 * 3 * 128 * 128),
    ("features.9", (128, 56, 56), 56 * 56 * 128, 0),
    ("features.10", (256, 56, 56), 56 * 56 * 256, 3 * 3 * 128 * 256),
    ("features.12", (256, 56, 56), 56 * 56 * 256, 3 * 3 * 256 * 256),
    ("features.14", (256, 56, 56), 56 * 56 * 256, 3 * 3 * 256 * 256),
    ("features.16", (256, 28, 28), 28 * 28 * 256, 0),
    ("features.17", (512, 28, 28), 28 * 28 * 512, 3 * 3 * 256 * 512),
    ("features.19", (512, 28, 28), 28 * 28 * 512, 3 * 3 * 512 * 512),
    ("features.21", (512, 28, 28), 28 * 28 * 512, 3 * 3 * 512 * 512),
    ("features.23", (512, 14, 14), 14 * 14 * 512, 0),
    ("features.24", (512, 14, 14), 14 * 14 * 512, 3 * 3 * 512 * 512),
    ("features.26", (512, 14, 14), 14 * 14 * 512, 3 * 3 * 512 * 512),
    ("features.28", (512, 14, 14), 14 * 14 * 512, 3 * 3 * 512 * 512),
    ("features.30", (512, 7, 7), 7 * 7 * 512, 0),
    ("classifier.0", (4096,), 4096, 7 * 7 * 512 * 4096),
    ("classifier.3", (4096,), 4096, 4096 * 4096),
    ("classifier.6", (1000,), 1000, 4096 * 1000),
]


@pytest.mark.parametrize("name, shape, memory, weights", VGG, ids=[r[0] for r in VGG])
def test_vgg16_rows(name, shape, memory, weights):
    _, by_name = rows("zoo/vgg16.cnn")
    row = by_name[name]
    bias = shape[0] if weights else 0
    assert row.shape == shape
    assert row.activations == memory
    assert row.params == weights + bias


def test_vgg16_totals():
    s, by_name = rows("zoo/vgg16.cnn")
    assert s.params == 138_357_544  # "TOTAL params: 138M parameters"
    assert s.macs == 15_470_264_320
    # The lecture's rows, input included, sum to 15,237,608 elements ≈ 15.2 M = 61 MB in float32 —
    # not the "24M * 4 bytes ~= 96MB" it prints.
    lecture_rows = by_name["input"].activations + sum(r[2] for r in VGG)
    assert lecture_rows == 15_237_608
    assert lecture_rows * 4 == 60_950_432
    # torchvision's VGG adds an AdaptiveAvgPool (7×7 → 7×7) before the classifier: one more map.
    assert s.activations == lecture_rows + 7 * 7 * 512


def test_vgg_most_memory_early_most_params_late():
    """The lecture's note: most memory is in early CONV, most params are in late FC."""
    s, _ = rows("zoo/vgg16.cnn")
    convs = [r for r in s.layers if r.op == "Conv"]
    fcs = [r for r in s.layers if r.op == "Linear"]
    assert max(convs, key=lambda r: r.activations).name == "features.0"
    assert sum(r.params for r in fcs) > sum(r.params for r in convs)


def test_three_stacked_3x3_convs_see_7x7():
    text = """network N {
        input [16, 32, 32]
        return in -> a: Conv(16, 3, pad = 1) -> b: Conv(16, 3, pad = 1) -> c: Conv(16, 3, pad = 1)
    }"""
    s = summarize(graph("stack.cnn", text=text))
    assert [r.rf for r in s.layers] == [1, 3, 5, 7]
    single = summarize(
        graph(
            "single.cnn", text="network N { input [16, 32, 32] return in -> Conv(16, 7, pad = 3) }"
        )
    )
    assert single.layers[-1].rf == 7
    # ...with fewer parameters: 3·(3²C²) vs 7²C² (biases aside)
    assert s.params - 3 * 16 == 3 * 9 * 16 * 16 < single.params - 16 == 49 * 16 * 16


# GoogLeNet's Inception module on 28×28×256 (conv ops = multiply-accumulates).
def test_naive_inception_ops():
    s, _ = rows("zoo/inception_module.cnn", "naive")
    expected = (
        28 * 28 * 128 * 1 * 1 * 256 + 28 * 28 * 192 * 3 * 3 * 256 + 28 * 28 * 96 * 5 * 5 * 256
    )
    assert s.macs == expected == 854_196_224  # "Total: 854M ops"
    assert s.output == (128 + 192 + 96 + 256, 28, 28)  # the pool passes 256 channels: 672


def test_bottleneck_inception_ops():
    s, _ = rows("zoo/inception_module.cnn", "bottleneck")
    lecture_terms = [
        28 * 28 * 64 * 1 * 1 * 256,  # [1×1 conv, 64] before the 3×3
        28 * 28 * 64 * 1 * 1 * 256,  # [1×1 conv, 64] before the 5×5
        28 * 28 * 128 * 1 * 1 * 256,  # [1×1 conv, 128]
        28 * 28 * 192 * 3 * 3 * 64,  # [3×3 conv, 192]
        28 * 28 * 96 * 5 * 5 * 64,  # [5×5 conv, 96]
        28 * 28 * 64 * 1 * 1 * 256,  # [1×1 conv, 64] after the pool
    ]
    # The lecture's own terms sum to 271 M, not the "Total: 358M ops" it prints.
    assert sum(lecture_terms) == 271_351_808
    assert s.macs == sum(lecture_terms)
    assert s.output == (128 + 192 + 96 + 64, 28, 28)


def test_receptive_field_meets_at_merges():
    """Where paths meet, each position sees the union of what it sees on each: a ResNet block's
    skip path (maxpool's 11) lies inside its main path's field, so the sum sees the main path's."""
    _, by_name = rows("zoo/resnet18.cnn")
    add = by_name["layer1.0.add"]
    # two 3×3 convs at jump 4 (strides 2·2) add 2·(3 − 1)·4 = 16 to maxpool's 11; every position
    # alike (measured as the input gradient's support, tests/test_receptive_field.py)
    assert (by_name["maxpool"].rf, add.rf_min, add.rf) == (11, 27, 27)


def test_googlenet_has_9x_not_12x_fewer_parameters_than_alexnet():
    """The "12× fewer parameters than AlexNet" of the GoogLeNet paper: the zoo gives 8.7× to 9.4×."""
    alexnet = [
        api.summary(f"zoo/{m}.cnn", args=a).params
        for m, a in (("alexnet_2012", {"towers": 2}), ("alexnet_2012", None), ("alexnet", None))
    ]
    googlenet = [api.summary(f"zoo/{m}.cnn").params for m in ("googlenet_2014", "googlenet")]
    assert (alexnet, googlenet) == ([60_965_224, 62_378_344, 61_100_840], [6_998_552, 6_624_904])
    ratios = sorted(a / g for a in alexnet for g in googlenet)
    assert (round(ratios[0], 1), round(ratios[-1], 1)) == (8.7, 9.4)
