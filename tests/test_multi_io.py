"""Networks with several inputs and outputs, and networks used as layers with taps by label.

Checked against torch: the compiled module's forward takes one argument per named input and returns
a dict or tuple; the standalone `.py`, the `.pt` export and the ONNX file agree with it; a ResNet-18
used as a backbone holds torchvision's keys under the label and its taps equal torchvision's
intermediate maps with the same weights.
"""

from __future__ import annotations

import json
import warnings

import pytest
from conftest import run_cli

import cnnc
from cnnc.dsl.format import format_module
from cnnc.dsl.parse import parse_text

torch = pytest.importorskip("torch")

TWO = """\
network fusion(classes = 5) {
    input image [3, 32, 24]
    input depth [1, 32, 24]
    a = image -> rgb: Conv(8, 3, pad = 1) -> ReLU
    b = depth -> d: Conv(8, 3, pad = 1)
    joined = a + b
    return {out: joined -> GlobalAvgPool -> Flatten -> head: Linear(classes), aux: b, 0: a}
}

network pyramid {
    input [3, 32, 32]
    c1 = in -> c1: Conv(4, 3, stride = 2, pad = 1)
    c2 = c1 -> c2: Conv(8, 3, stride = 2, pad = 1)
    return (c1, c2)
}
"""

BACKBONE = """\
import "families/resnet.cnn"

network taps {
    input [3, 64, 64]
    f = in -> backbone: ResNet([2, 2, 2, 2], unit = Basic)
    return {c3: f.layer3, c4: f.layer4 -> head: Conv(3, 1)}
}
"""


@pytest.fixture
def two(tmp_path):
    path = tmp_path / "two.cnn"
    path.write_text(TWO)
    return path


def test_inputs_tuples_and_records_format_canonically_and_round_trip():
    module = parse_text(TWO, path="two.cnn")
    assert format_module(module) == TWO
    assert parse_text(format_module(module), path="two.cnn") == module


def test_summary_lists_every_input_and_output(two):
    s = cnnc.summary(two, network="fusion").to_json()
    assert s["inputs"] == [
        {"name": "image", "shape": [3, 32, 24]},
        {"name": "depth", "shape": [1, 32, 24]},
    ]
    assert [(o["key"], o["shape"]) for o in s["outputs"]] == [
        ("out", [5]),
        ("aux", [8, 32, 24]),
        ("0", [8, 32, 24]),
    ]
    assert s["input"] is None and s["output"] is None  # kept for single-tensor networks only
    single = cnnc.summary(two, network="pyramid").to_json()
    assert single["inputs"] == [{"name": "x", "shape": [3, 32, 32]}]
    assert [o["key"] for o in single["outputs"]] == [0, 1]
    # params: two 3×3 convs and a Linear, counted by hand
    assert s["params"] == (8 * 3 * 9 + 8) + (8 * 1 * 9 + 8) + (8 * 5 + 5)


def reference_outputs(model, image, depth):
    """The network written by hand with the compiled model's own modules."""
    a = torch.relu(model.rgb(image))
    b = model.d(depth)
    joined = a + b
    out = model.head(joined.mean((2, 3)))
    return {"out": out, "aux": b, "0": a}


def test_two_inputs_and_a_dict_output_run_as_written(two):
    model = cnnc.load(two, network="fusion", seed=0).eval()
    image, depth = torch.randn(2, 3, 32, 24), torch.randn(2, 1, 32, 24)
    with torch.no_grad():
        got = model(image, depth)
        want = reference_outputs(model, image, depth)
    assert list(got) == ["out", "aux", "0"]
    for key in want:  # `aux` is also read by the sum: it must not be overwritten in place
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)
    assert model(image=image, depth=depth)["out"].shape == (2, 5)


def test_the_standalone_source_and_the_export_agree(two, tmp_path, capsys):
    model = cnnc.load(two, network="fusion", seed=0).eval()
    image, depth = torch.randn(3, 3, 32, 24), torch.randn(3, 1, 32, 24)
    with torch.no_grad():
        want = model(image, depth)
    namespace: dict = {}
    exec(compile(model.cnnc_source(seed=0), "fusion.py", "exec"), namespace)  # noqa: S102  our own output
    standalone = namespace["Fusion"](seed=0).eval()
    assert standalone.state_dict().keys() == model.state_dict().keys()
    with torch.no_grad():
        got = standalone(image, depth)
    for key in want:
        torch.testing.assert_close(got[key], want[key])
    code, _, _ = run_cli(
        ["compile", two, "-n", "fusion", "-o", tmp_path / "fusion.pt", "--seed", "0"], capsys
    )
    assert code == 0
    exported = torch.export.load(str(tmp_path / "fusion.pt")).module()
    with torch.no_grad():
        got = exported(image, depth)
    for key in want:
        torch.testing.assert_close(got[key], want[key])


def test_a_tuple_output(two):
    model = cnnc.load(two, network="pyramid", seed=0)
    c1, c2 = model(torch.randn(2, 3, 32, 32))
    assert (c1.shape, c2.shape) == ((2, 4, 16, 16), (2, 8, 8, 8))


def test_the_onnx_file_of_a_two_input_two_output_network_matches_onnxruntime(two, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "fusion.onnx"
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        code, _, _ = run_cli(["compile", two, "-n", "fusion", "-o", path, "--seed", "0"], capsys)
    assert code == 0
    # the two inputs share their batch dimension, as meant: torch's warning of it is not shown
    assert not [w for w in warned if "axis name" in str(w.message)]
    model = cnnc.load(two, network="fusion", seed=0).eval()
    image, depth = torch.randn(3, 3, 32, 24), torch.randn(3, 1, 32, 24)
    with torch.no_grad():
        want = model(image, depth)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "depth"]
    assert [o.name for o in session.get_outputs()] == ["out", "aux", "0"]
    got = session.run(None, {"image": image.numpy(), "depth": depth.numpy()})
    for value, key in zip(got, ["out", "aux", "0"]):
        torch.testing.assert_close(torch.from_numpy(value), want[key], rtol=1e-4, atol=1e-4)


def test_input_by_name_on_the_command_line(two, capsys):
    code, out, _ = run_cli(
        [
            "summary",
            two,
            "-n",
            "fusion",
            "-i",
            "image=3,64,48",
            "-i",
            "depth=1,64,48",
            "--format",
            "json",
        ],
        capsys,
    )
    assert code == 0
    s = json.loads(out)
    assert [i["shape"] for i in s["inputs"]] == [[3, 64, 48], [1, 64, 48]]
    code, _, err = run_cli(["summary", two, "-n", "fusion", "-i", "imag=3,64,48"], capsys)
    assert code == 1 and "`--input imag=…` names no input" in err and "`depth`, `image`" in err
    code, _, err = run_cli(["summary", two, "-n", "fusion", "-i", "3,64,48"], capsys)
    assert code == 1 and "give each input by name: `image=C,H,W`, `depth=C,H,W`" in err


@pytest.mark.parametrize(
    "text, code, words",
    [
        (
            "input a [3, 8, 8]\n    input b [3, 8, 8]\n    return in -> ReLU",
            "E0201",
            "`in` is ambiguous",
        ),
        (
            "input torch [3, 8, 8]\n    return torch -> ReLU",
            "E0209",
            "the input name `torch` is taken",
        ),
        ("input a [3, 8, 8]\n    input [3, 8, 8]\n    return a", "E0307", "names each of them"),
        ("input a [3, 8, 8]\n    return (a, ReLU)", "E0404", "but this is a layer"),
        ("input a [3, 8, 8]\n    return {x: a, x: a}", "E0204", "the key `x` is used twice"),
        ("input a [3, 8, 8]\n    return {}", "E0404", "`{}` names no tensor"),
    ],
)
def test_mistakes_with_inputs_and_outputs(tmp_path, capsys, text, code, words):
    path = tmp_path / "bad.cnn"
    path.write_text(f"network bad {{\n    {text}\n}}\n")
    status, _, err = run_cli(["check", path], capsys)
    assert status == 1
    assert f"error[{code}]" in err and words in err


@pytest.fixture
def backbone(tmp_path):
    path = tmp_path / "taps.cnn"
    path.write_text(BACKBONE)
    return path


def test_a_network_used_as_a_layer_keeps_torchvision_keys_under_its_label(backbone):
    tv = pytest.importorskip("torchvision.models")
    reference = tv.resnet18().eval()
    model = cnnc.load(backbone, seed=0).eval()
    trunk = [
        k for k in reference.state_dict() if not k.startswith("fc.")
    ]  # the unused head is pruned
    assert [k for k in model.state_dict() if k.startswith("backbone.")] == [
        f"backbone.{k}" for k in trunk
    ]
    state = {f"backbone.{k}": v for k, v in reference.state_dict().items() if k in trunk}
    state |= {k: v for k, v in model.state_dict().items() if k.startswith("head.")}
    model.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got = model(x)
        y = reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))
        c3 = reference.layer3(reference.layer2(reference.layer1(y)))
        c4 = reference.layer4(c3)
    torch.testing.assert_close(got["c3"], c3)
    torch.testing.assert_close(got["c4"], model.head(c4))


def test_a_backbone_runs_at_other_sizes_and_checks_only_its_channels(backbone, tmp_path, capsys):
    s = cnnc.summary(backbone, input=(3, 96, 128)).to_json()
    assert [o["shape"] for o in s["outputs"]] == [[256, 6, 8], [3, 3, 4]]
    gray = tmp_path / "gray.cnn"
    gray.write_text(BACKBONE.replace("input [3, 64, 64]", "input [1, 64, 64]"))
    status, _, err = run_cli(["check", gray], capsys)
    assert status == 1
    assert (
        "error[E0307]: `ResNet` takes 3 channels (its `input [3, 224, 224]`), but receives [1, 64, 64]"
        in err
    )


def test_an_unknown_tap_names_the_parts_there_are(backbone, tmp_path, capsys):
    bad = tmp_path / "bad.cnn"
    bad.write_text(BACKBONE.replace("f.layer3", "f.layer5"))
    status, _, err = run_cli(["check", bad], capsys)
    assert status == 1
    assert "error[E0219]: `backbone` has no part labelled `layer5`" in err
    assert "did you mean `layer1` or `layer2` or `layer3`?" in err or "did you mean" in err


DERIVED = """\
import "families/resnet.cnn"

network r18 = ResNet([2, 2, 2, 2], unit = Basic)
network trunk = r18 cut after layer4
network pets = r18 with {
    fc: Linear(37)
}

network seg {
    input [3, 64, 64]
    return in -> backbone: trunk -> head: Conv(5, 1)
}

network bad {
    input [3, 64, 64]
    return in -> backbone: pets
}
"""


def test_a_network_cut_after_a_label_is_a_layer_without_its_head(tmp_path, capsys):
    path = tmp_path / "derived.cnn"
    path.write_text(DERIVED)
    s = cnnc.summary(path, network="seg").to_json()
    assert s["output"] == [5, 2, 2]
    assert not any(r["name"].startswith(("backbone.fc", "backbone.avgpool")) for r in s["layers"])
    status, _, err = run_cli(["check", path, "-n", "bad"], capsys)
    assert status == 1
    assert (
        "`pets` changes its parent's layers (`with`, `freeze`), so it cannot be used as a layer"
        in err
    )


def test_a_tap_cannot_reach_what_cut_after_removed(tmp_path, capsys):
    """`trunk` ends at `layer4`: its `fc` and `avgpool` are gone, also for a tap; `layer4`
    itself and what is inside it stay."""
    path = tmp_path / "taps.cnn"
    path.write_text(
        DERIVED
        + """
network tapped {
    input [3, 64, 64]
    f = in -> backbone: trunk
    return (f, f.layer4, f.layer3.1.conv2)
}

network past_the_cut {
    input [3, 64, 64]
    f = in -> backbone: trunk
    return (f, f.fc)
}
"""
    )
    s = cnnc.summary(path, network="tapped").to_json()
    assert [o["shape"] for o in s["outputs"]] == [[512, 2, 2], [512, 2, 2], [256, 4, 4]]
    status, _, err = run_cli(["check", path, "-n", "past_the_cut", "--format", "concise"], capsys)
    assert status == 1
    assert (
        err.splitlines()[0] == f"{path}:28:18: error[E0219]: `backbone` has no part labelled `fc`"
    )


def test_numbered_taps_tuple_fields_and_freezing_a_network_with_several_outputs(tmp_path):
    path = tmp_path / "numbered.cnn"
    path.write_text("""\
network n {
    input [3, 16, 16]
    f = in -> trunk: [Conv(4, 3), ReLU, Conv(8, 3)]
    y = (f.0, f.2)
    return {a: y.0 -> ReLU, b: f.1 -> head: Conv(2, 1)}
}

network frozen = n freeze until head
""")
    s = cnnc.summary(path, network="n").to_json()
    assert [(o["key"], o["shape"]) for o in s["outputs"]] == [
        ("a", [4, 14, 14]),
        ("b", [2, 14, 14]),
    ]
    frozen = cnnc.summary(path, network="frozen").to_json()
    assert [o["key"] for o in frozen["outputs"]] == ["a", "b"]
    assert frozen["frozen_params"] == 4 * 3 * 9 + 4 and frozen["trainable_params"] == 4 * 2 + 2
    assert format_module(parse_text(path.read_text(), path="n.cnn")) == path.read_text()


def test_a_network_with_several_inputs_is_no_layer(tmp_path, capsys):
    path = tmp_path / "two.cnn"
    path.write_text("""\
network two {
    input p [3, 8, 8]
    input q [3, 8, 8]
    return p + q
}

network user {
    input [3, 8, 8]
    return in -> t: two
}
""")
    status, _, err = run_cli(["check", path, "-n", "user"], capsys)
    assert status == 1
    assert err.count("error[") == 1
    assert "error[E0307]: `two` has several inputs, so it cannot be used as a layer" in err


def test_chaining_after_several_outputs_says_to_take_one(tmp_path, capsys):
    path = tmp_path / "multi.cnn"
    path.write_text("""\
network multi {
    input [3, 8, 8]
    return {a: in, b: in -> ReLU}
}

network user {
    input [3, 8, 8]
    return in -> m: multi -> ReLU
}
""")
    status, _, err = run_cli(["check", path, "-n", "user"], capsys)
    assert status == 1
    assert "but its left side is named tensors" in err and "`y = …`, then `y.a -> …`" in err
