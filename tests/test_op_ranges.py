"""Op arguments: cnnc accepts a layer exactly when torch does.

For each op family, hypothesis draws argument values on both sides of every bound (zero, negative,
fractional, non-finite) and an input; "torch accepts" means its constructor and a forward pass on a
batch of two, in training mode, both succeed and give a non-empty, finite output. cnnc must accept
exactly then — except where cnnc is stricter on purpose, each case named in `stricter` with its
reason
(torch accepts a value that makes a model silently wrong).

The first arguments are written by position, in the op's documented order, the rest by name: the
test also pins the positional order to torch's (less the argument cnnc infers).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnc import api
from cnnc.compiler.ops import MAX_ELEMENTS, MAX_SIZE
from cnnc.dsl.diagnostics import CnncError

SETTINGS = settings(max_examples=60, deadline=None)
pytestmark = pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # out = 0 cases


def cnn_number(x: float) -> str:
    """A .cnn expression for x, non-finite values included."""
    if math.isnan(x):
        return "(1e300 * 1e300 - 1e300 * 1e300)"
    if math.isinf(x):
        return "(1e300 * 1e300)" if x > 0 else "(-1e300 * 1e300)"
    return repr(x)


def pair_text(v: tuple[int, int]) -> str:
    return str(v[0]) if v[0] == v[1] else f"[{v[0]}, {v[1]}]"


def cnnc_accepts(layer: str, shape) -> bool:
    text = f"network n {{ input [{', '.join(map(str, shape))}] return in -> {layer} }}"
    try:
        api.graph("ranges.cnn", text=text)
    except CnncError:
        return False
    return True


def torch_accepts(build, shape) -> bool:
    torch.manual_seed(0)
    try:
        module = build().train()
        with torch.no_grad():
            out = module(torch.randn(2, *shape))  # [2, *shape]: two samples, as BatchNorm needs
    except (RuntimeError, ValueError, IndexError, TypeError, ZeroDivisionError):
        return False
    return out.numel() > 0 and bool(torch.isfinite(out).all())


def agree(layer: str, build, shape, stricter: str = "") -> None:
    """cnnc accepts iff torch does, unless `stricter` names why cnnc rejects what torch takes."""
    expected = torch_accepts(build, shape) and not stricter
    assert cnnc_accepts(layer, shape) == expected, (layer, shape, stricter)


maps = st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6))
small = st.integers(-1, 4)
pairs = st.tuples(small, small)
floats = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-5, math.inf, -math.inf, math.nan]),
    st.floats(-2.0, 2.0, allow_nan=False),
)


@SETTINGS
@given(shape=maps, out=small, k=pairs, s=pairs, p=pairs, d=pairs, groups=small)
def test_conv(shape, out, k, s, p, d, groups):
    layer = (
        f"Conv({out}, {pair_text(k)}, {pair_text(s)}, pad = {pair_text(p)}, "
        f"dilation = {pair_text(d)}, groups = {groups})"
    )
    agree(layer, lambda: nn.Conv2d(shape[0], out, k, s, p, d, groups), shape)


@SETTINGS
@given(n=st.integers(1, 8), out=small, bias=st.booleans())
def test_linear(n, out, bias):
    layer = f"Linear({out}, bias = {str(bias).lower()})"
    agree(layer, lambda: nn.Linear(n, out, bias), (n,))


@SETTINGS
@given(
    shape=maps,
    k=pairs,
    s=pairs,
    p=pairs,
    d=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    ceil=st.booleans(),
    avg=st.booleans(),
)
def test_window_pools(shape, k, s, p, d, ceil, avg):
    args = f"{pair_text(k)}, {pair_text(s)}, pad = {pair_text(p)}, ceil_mode = {str(ceil).lower()}"
    if avg:
        agree(f"AvgPool({args})", lambda: nn.AvgPool2d(k, s, p, ceil_mode=ceil), shape)
    else:
        agree(
            f"MaxPool({args}, dilation = {pair_text(d)})",
            lambda: nn.MaxPool2d(k, s, p, d, ceil_mode=ceil),
            shape,
        )


@SETTINGS
@given(shape=maps, size=pairs, avg=st.booleans())
def test_adaptive_pools(shape, size, avg):
    op, build = (
        ("AdaptiveAvgPool", nn.AdaptiveAvgPool2d)
        if avg
        else ("AdaptiveMaxPool", nn.AdaptiveMaxPool2d)
    )
    agree(f"{op}({pair_text(size)})", lambda: build(size), shape)


@SETTINGS
@given(eps=floats, momentum=floats, vector=st.booleans())
def test_batchnorm(eps, momentum, vector):
    shape, build = ((6,), nn.BatchNorm1d) if vector else ((3, 4, 4), nn.BatchNorm2d)
    layer = f"BatchNorm(eps = {cnn_number(eps)}, momentum = {cnn_number(momentum)})"
    # torch never checks momentum: outside [0, 1] the running statistics diverge (or are NaN);
    # an infinite eps runs and zeroes every output
    stricter = "" if 0 <= momentum <= 1 else "momentum outside [0, 1]"
    stricter = stricter or ("" if math.isfinite(eps) else "eps not finite")
    agree(layer, lambda: build(shape[0], eps=eps, momentum=momentum), shape, stricter)


@SETTINGS
@given(eps=floats)
def test_layer_norm_2d(eps):
    from cnnc.compiler.lower.layers import LayerNorm2d

    # torch's layer_norm never checks eps: eps <= 0 gives NaN or inf wherever a position's variance
    # is at most -eps (equal channels: a constant input), an infinite eps zeroes every output
    stricter = "" if 0 < eps < math.inf else "eps <= 0 or infinite"
    agree(
        f"LayerNorm2d(eps = {cnn_number(eps)})",
        lambda: LayerNorm2d(3, eps=eps),
        (3, 4, 4),
        stricter,
    )


# LRN's output divides by (k + α·mean x²)^β in float32: a tiny k underflows there, so the values
# are drawn from sign-and-bound cases only, not from the whole float line
lrn_floats = st.sampled_from([-1.0, 0.0, 1e-4, 0.5, 0.75, 1.0, 2.0, math.inf, math.nan])


@SETTINGS
@given(size=small, alpha=lrn_floats, beta=lrn_floats, k=lrn_floats)
def test_local_response_norm(size, alpha, beta, k):
    layer = f"LocalResponseNorm({size}, {cnn_number(alpha)}, {cnn_number(beta)}, {cnn_number(k)})"
    # a negative alpha or a k ≤ 0 can make the base (k + α·mean x²) zero or negative: NaN or inf
    # on some inputs, finite on others; cnnc takes no infinite float anywhere (inf ** 0 runs)
    finite = all(math.isfinite(v) for v in (alpha, beta, k))
    stricter = "" if alpha >= 0 and k > 0 and finite else "alpha < 0, k <= 0 or not finite"
    agree(layer, lambda: nn.LocalResponseNorm(size, alpha, beta, k), (4, 3, 3), stricter)


@SETTINGS
@given(p=floats)
def test_dropout(p):
    agree(f"Dropout({cnn_number(p)})", lambda: nn.Dropout(p), (3, 4, 4))


@SETTINGS
@given(slope=floats)
def test_leaky_relu(slope):
    agree(f"LeakyReLU({cnn_number(slope)})", lambda: nn.LeakyReLU(slope), (3, 4, 4))


@SETTINGS
@given(dim=st.integers(-3, 4))
def test_softmax(dim):
    # the DSL does not count the batch: cnnc's dim 0 is torch's dim 1
    agree(f"Softmax({dim})", lambda: nn.Softmax(dim + 1 if dim >= 0 else dim), (3, 4, 4))


@SETTINGS
@given(channels=st.integers(1, 6), groups=small)
def test_channel_shuffle(channels, groups):
    agree(f"ChannelShuffle({groups})", lambda: nn.ChannelShuffle(groups), (channels, 2, 2))


# -- the ops of resizing, and the newer norms and activations -------------------------------------

FEWER = settings(max_examples=30, deadline=None)  # the file stays well under 30 s on two cores


@FEWER
@given(shape=maps, out=small, k=pairs, s=pairs, p=pairs, op=pairs, d=pairs, groups=small)
def test_conv_transpose(shape, out, k, s, p, op, d, groups):
    layer = (
        f"ConvTranspose({out}, {pair_text(k)}, {pair_text(s)}, pad = {pair_text(p)}, "
        f"output_padding = {pair_text(op)}, groups = {groups}, dilation = {pair_text(d)})"
    )
    stricter = "dilation 0 (torch's transposed convolution takes it)" if min(d) <= 0 else ""
    agree(
        layer,
        lambda: nn.ConvTranspose2d(shape[0], out, k, s, p, op, groups, True, d),
        shape,
        stricter,
    )


scales = st.sampled_from([0.0, -1.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, math.inf, math.nan])


@FEWER
@given(
    shape=maps,
    size=st.none() | pairs,
    scale=st.none() | scales,
    bilinear=st.booleans(),
    corners=st.booleans(),
)
def test_upsample(shape, size, scale, bilinear, corners):
    mode = "bilinear" if bilinear else "nearest"
    args = [f"size = {pair_text(size)}"] if size is not None else []
    args += [f"scale_factor = {cnn_number(scale)}"] if scale is not None else []
    args += [f'mode = "{mode}"', f"align_corners = {str(corners).lower()}"]
    layer = f"Upsample({', '.join(args)})"
    ac = (
        corners if bilinear else (True if corners else None)
    )  # torch refuses align_corners with nearest
    # nn.Upsample reads a scale factor of 0 as none given (`if scale_factor`)
    stricter = "scale_factor 0" if scale == 0 and size is not None else ""
    agree(layer, lambda: nn.Upsample(size, scale, mode, ac), shape, stricter)


@FEWER
@given(shape=maps, t=maps, crop=st.booleans(), flat=st.booleans())
def test_resize_and_crop_to_another_tensor(shape, t, crop, flat):
    like = "in -> AdaptiveAvgPool([{}, {}])".format(*t[1:]) + (" -> Flatten" if flat else "")
    op = "Crop(like = t)" if crop else "Upsample(like = t)"
    text = f"network n {{ input [{', '.join(map(str, shape))}] t = {like} return in -> {op} }}"
    try:
        api.graph("ranges.cnn", text=text)
        accepted = True
    except CnncError:
        accepted = False
    # torch's truth: the crop's slices, or interpolate, give the size of `t`, a [N, C, H, W] map
    fits = not flat and (not crop or (t[1] <= shape[1] and t[2] <= shape[2]))
    assert accepted == fits, text


@FEWER
@given(
    shape=maps,
    sides=st.one_of(small, st.tuples(small, small, small, small)),
    mode=st.sampled_from(["constant", "reflect", "replicate"]),
    value=floats,
)
def test_pad(shape, sides, mode, value):
    written = str(sides) if isinstance(sides, int) else f"[{', '.join(map(str, sides))}]"
    layer = f'Pad({written}, mode = "{mode}", value = {cnn_number(value)})'
    build = {
        "constant": lambda: nn.ConstantPad2d(sides, value),
        "reflect": lambda: nn.ReflectionPad2d(sides),
        "replicate": lambda: nn.ReplicationPad2d(sides),
    }[mode]
    values = (sides,) * 4 if isinstance(sides, int) else sides
    # torch crops on a negative side (that is `Crop`'s work); and a value has no meaning beyond
    # mode constant, where torch's module for the mode ignores it
    stricter = "negative padding" if min(values) < 0 else ""
    stricter = stricter or (
        "a value for a mode without one" if mode != "constant" and value != 0 else ""
    )
    # torch pads with an infinite value (finite output when no side pads); cnnc takes no such float
    stricter = stricter or ("" if math.isfinite(value) else "a value that is not finite")
    agree(layer, build, shape, stricter)


# a norm's eps is added in float32: a positive eps below float32's range is 0 there, and a group of
# one element then divides by it; eps is drawn from sign-and-bound cases
eps_floats = st.sampled_from([-1.0, 0.0, 1e-5, 0.1, 1.0, math.inf, math.nan])


@FEWER
@given(channels=st.integers(1, 6), groups=small, eps=eps_floats, vector=st.booleans())
def test_group_norm(channels, groups, eps, vector):
    shape = (channels,) if vector else (channels, 3, 3)
    stricter = "" if 0 < eps < math.inf else "eps <= 0 or infinite"  # NaN on a constant group
    agree(
        f"GroupNorm({groups}, eps = {cnn_number(eps)})",
        lambda: nn.GroupNorm(groups, channels, eps),
        shape,
        stricter,
    )


@FEWER
@given(shape=maps, eps=eps_floats, momentum=floats, track=st.booleans(), affine=st.booleans())
def test_instance_norm(shape, eps, momentum, track, affine):
    layer = (
        f"InstanceNorm(eps = {cnn_number(eps)}, momentum = {cnn_number(momentum)}, "
        f"affine = {str(affine).lower()}, track_running_stats = {str(track).lower()})"
    )
    stricter = "" if 0 < eps < math.inf else "eps <= 0 or infinite"
    stricter = stricter or ("" if 0 <= momentum <= 1 else "momentum outside [0, 1]")
    agree(layer, lambda: nn.InstanceNorm2d(shape[0], eps, momentum, affine, track), shape, stricter)


@FEWER
@given(eps=eps_floats, vector=st.booleans(), affine=st.booleans(), bias=st.booleans())
def test_layer_norm(eps, vector, affine, bias):
    from cnnc.compiler.lower.layers import LayerNorm2d

    shape = (5,) if vector else (3, 4, 4)
    build = nn.LayerNorm if vector else LayerNorm2d
    layer = f"LayerNorm(eps = {cnn_number(eps)}, elementwise_affine = {str(affine).lower()}, bias = {str(bias).lower()})"
    stricter = "" if 0 < eps < math.inf else "eps <= 0 or infinite"
    agree(layer, lambda: build(shape[0], eps, affine, bias), shape, stricter)


@FEWER
@given(eps=eps_floats)
def test_frozen_batch_norm(eps):
    import torchvision

    # torchvision's module computes (var + eps)^(-1/2): a negative eps above -1 runs on its
    # unit variance, and gives NaN on any real one below |eps|
    stricter = "" if 0 < eps < math.inf else "eps <= 0 or infinite"
    agree(
        f"FrozenBatchNorm(eps = {cnn_number(eps)})",
        lambda: torchvision.ops.misc.FrozenBatchNorm2d(3, eps),
        (3, 4, 4),
        stricter,
    )


@FEWER
@given(channels=st.integers(1, 6), n=small, init=floats, vector=st.booleans())
def test_prelu(channels, n, init, vector):
    shape = (channels,) if vector else (channels, 3, 3)
    agree(f"PReLU({n}, init = {cnn_number(init)})", lambda: nn.PReLU(n, init), shape)


@FEWER
@given(alpha=floats)
def test_elu(alpha):
    agree(f"ELU({cnn_number(alpha)})", lambda: nn.ELU(alpha), (3, 4, 4))


# softplus divides by beta in float32: a tiny positive beta overflows there, so beta is drawn from
# sign-and-bound cases, as LRN's floats are
@FEWER
@given(beta=lrn_floats, threshold=floats)
def test_softplus(beta, threshold):
    # a negative beta runs and is no softplus (it is bounded above); cnnc takes no infinite float
    stricter = "" if beta > 0 and math.isfinite(beta) else "beta <= 0 or not finite"
    stricter = stricter or ("" if math.isfinite(threshold) else "threshold not finite")
    agree(
        f"Softplus({cnn_number(beta)}, {cnn_number(threshold)})",
        lambda: nn.Softplus(beta, threshold),
        (3, 4, 4),
        stricter,
    )


@FEWER
@given(c=st.integers(1, 3), r=small, side=st.integers(1, 3))
def test_pixel_shuffle(c, r, side):
    channels = c * max(r, 1) ** 2 + (c - 1)  # sometimes a multiple of r², sometimes not
    agree(f"PixelShuffle({r})", lambda: nn.PixelShuffle(r), (channels, side, side + 1))


@FEWER
@given(shape=maps, target=st.lists(st.integers(-2, 8), min_size=0, max_size=4))
def test_reshape(shape, target):
    from cnnc.compiler.lower.layers import Reshape

    # torch takes a 0-sized or a rank-2/4 target; cnnc's ops take [N] or [C, H, W] of positive sizes
    ok_rank = len(target) in (1, 3) and 0 not in target
    stricter = "" if ok_rank else "a target other than [N] or [C, H, W] of positive sizes"
    agree(f"Reshape([{', '.join(map(str, target))}])", lambda: Reshape(target), shape, stricter)


# -- bounds torch does not have: checked before anything is allocated ---------------------------


@pytest.mark.parametrize(
    "layer, code",
    [
        (f"Conv({MAX_SIZE + 1}, 1)", "E0415"),
        ("Conv(3000000000, 1, groups = 3)", "E0415"),  # was a divisor loop up to the gcd
        (f"Conv(8, 1, stride = {MAX_SIZE + 1})", "E0415"),
        (f"AdaptiveAvgPool({MAX_SIZE})", "E0308"),  # 3·2**40 elements
        ("Conv(1000000, 1) -> Conv(1000000, 1)", "E0308"),  # 10**12 weights
        ("Conv(4096, 1) -> Flatten -> Linear(600000)", "E0308"),  # 262,144 · 600,000 weights
        ("Dropout(1e300 * 1e300)", "E0405"),
        ("Dropout(2.0)", "E0405"),
        ("BatchNorm(eps = 0)", "E0405"),
        ("LeakyReLU(1e300 * 1e300 - 1e300 * 1e300)", "E0405"),
        ("StochasticDepth(1.5)", "E0405"),
        ("Scale(1e300 * 1e300)", "E0405"),
        ("LayerScale(-1e300 * 1e300)", "E0405"),
    ],
)
def test_out_of_range_is_a_located_error(layer, code):
    text = f"network n {{ input [3, 8, 8] return in -> {layer} }}"
    with pytest.raises(CnncError) as info:
        api.graph("ranges.cnn", text=text)
    codes = [d.code for d in info.value.diagnostics]
    assert codes == [code], codes


def test_bounds_are_what_the_explain_pages_say():
    assert (MAX_SIZE, MAX_ELEMENTS) == (2**20, 2**31)


@pytest.mark.parametrize(
    "layer, code, help",
    [
        (
            "BatchNorm(64)",
            "E0411",
            "write `BatchNorm`; set the rest by name, e.g. `BatchNorm(eps = 1e-05)`",
        ),
        (
            "BN(64)",
            "E0411",
            "write `BatchNorm`; set the rest by name, e.g. `BatchNorm(eps = 1e-05)`",
        ),
        (
            "LayerNorm2d(1e-6)",
            "E0411",
            "write `LayerNorm2d`; set the rest by name, e.g. `LayerNorm2d(eps = 1e-06)`",
        ),
        ("Flatten -> Linear(192, 10)", "E0412", "write `Linear(10)`"),
        ("PointwiseLinear(3, 16)", "E0412", "write `PointwiseLinear(16)`"),
        (
            "Conv(3, 64, 3)",
            "E0413",
            "write `Conv(64, 3)`; for a kernel that large, give it by name: `kernel_size = 64`",
        ),
        ("Conv(64, 3, in_channels = 3)", "E0414", "remove `in_channels = 3`; the input decides it"),
        (
            "Flatten -> Linear(10, in_features = 192)",
            "E0414",
            "remove `in_features = 192`; the input decides it",
        ),
        ("BatchNorm(num_features = 3)", "E0414", "remove `num_features = 3`; the input decides it"),
    ],
)
def test_pytorch_habits_get_the_fix(layer, code, help):
    text = f"network n {{ input [3, 8, 8] return in -> {layer} }}"
    with pytest.raises(CnncError) as info:
        api.graph("habits.cnn", text=text)
    (d,) = info.value.diagnostics
    assert (d.code, d.helps) == (code, (help,))
    assert "infers" in d.message


@pytest.mark.parametrize(
    "layer",
    [
        "Conv(64, 3, 2)",  # out_channels, kernel_size, stride: cnnc's own order
        "Conv(96, 11, 4)",  # AlexNet's first layer: a kernel of 11 is still a kernel
        "Conv(8, kernel_size = 15, stride = 2)",
        "BatchNorm(eps = 1e-3, momentum = 0.01)",
        "LocalResponseNorm(5, 1e-4, 0.75, 2.0)",
    ],
)
def test_what_looks_like_a_habit_but_is_not(layer):
    text = f"network n {{ input [3, 32, 32] return in -> {layer} }}"
    api.graph("habits.cnn", text=text)


def test_a_dilated_max_pool_window_wholly_in_the_padding_is_rejected():
    # taps at −1 and 1 around a 1-pixel input: torch runs and outputs -inf
    text = "network n { input [1, 1, 1] return in -> MaxPool(2, 1, pad = 1, dilation = 2) }"
    with pytest.raises(CnncError) as info:
        api.graph("ranges.cnn", text=text)
    (d,) = info.value.diagnostics
    assert d.code == "E0405" and "wholly in the padding" in d.message
