"""Activation memory (`compiler/analysis/memory.py`): what cnnc's own module allocates in a forward
pass at batch 1. `verify.mismatches` checks the figure against the storages torch really fills for
every zoo model and random programs (tests/test_static_runtime.py); these are the cases by hand."""

from __future__ import annotations

import pytest

from cnnc import api
from cnnc.compiler.analysis.summary import summarize

RESIDUAL = """network r {
    input [4, 8, 8]
    a = in -> c1: Conv(4, 3, pad = 1) -> ReLU
    return (a -> c2: Conv(4, 3, pad = 1)) + a -> ReLU
}"""


def test_an_add_into_a_fresh_input_allocates_nothing():
    s = summarize(api.graph("r.cnn", text=RESIDUAL))
    rows = {r.name: r.activations for r in s.layers}
    # the input, c1 (its ReLU in place), c2 (the `+` accumulates into it, the last ReLU in place)
    assert s.activations == 3 * 4 * 8 * 8 == 768
    assert rows["add"] == 0


def test_a_flatten_of_a_crop_copies_and_a_flatten_of_a_conv_is_a_view():
    text = """network f {
        input [2, 6, 6]
        return in -> Crop(like = (in -> MaxPool(2))) -> Flatten
    }"""
    rows = {r.name: r.activations for r in summarize(api.graph("f.cnn", text=text)).layers}
    # the crop is a view of the input's storage, its flatten a copy (2·3·3), the pool a tensor
    assert (rows["crop"], rows["flatten"], rows["maxpool"]) == (0, 18, 18)


@pytest.mark.parametrize(
    "model, elements",
    [
        ("resnet50", 22_582_248),  # 16 residual additions in place: none allocates
        ("vgg16", 15_262_696),  # the lecture's table plus the 7×7×512 adaptive pool
        ("mobilenet_v2", 13_509_032),
    ],
)
def test_zoo_figures(model, elements):
    assert api.summary(f"zoo/{model}.cnn").activations == elements
