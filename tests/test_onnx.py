"""ONNX artifacts: `cnnc compile -o X.onnx` through torch's exporter, run by onnxruntime, equal to the
torch module within 1e-4 at several batch sizes (the batch dimension is dynamic)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import cnnc
from cnnc.cli import main


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x.numpy()})
    return torch.from_numpy(y)


@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v2"])
def test_onnx_matches_onnxruntime(model, tmp_path, one_thread, capsys):
    path = tmp_path / f"{model}.onnx"
    assert main(["compile", model, "--seed", "0", "-o", str(path)]) == 0
    assert "ONNX opset 18, batch dimension dynamic" in capsys.readouterr().out
    reference = cnnc.load(model, seed=0).eval()
    for batch in (1, 3):
        x = torch.randn(batch, 3, 224, 224)
        with torch.inference_mode():
            expected = reference(x)
        got = run_onnx(path, x)
        assert got.shape == expected.shape == (batch, 1000)
        assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_weights_go_into_the_artifact(tmp_path, one_thread, capsys):
    torch.manual_seed(0)
    tiny = tmp_path / "tiny.cnn"
    tiny.write_text(
        "network tiny {\n    input [3, 16, 16]\n    return in -> conv: Conv(4, 3) -> ReLU -> GlobalAvgPool"
        " -> Flatten -> fc: Linear(2)\n}\n"
    )
    weights = {k: torch.randn_like(v) for k, v in cnnc.load(tiny).state_dict().items()}
    torch.save(weights, tmp_path / "w.pt")
    out = tmp_path / "tiny.onnx"
    assert main(["compile", str(tiny), "--weights", str(tmp_path / "w.pt"), "-o", str(out)]) == 0
    assert "weights: loaded 4 tensors" in capsys.readouterr().err
    model = cnnc.load(tiny)
    model.load_state_dict(weights)
    x = torch.randn(2, 3, 16, 16)
    with torch.inference_mode():
        assert torch.allclose(run_onnx(out, x), model.eval()(x), atol=1e-5)


def test_weights_with_source_output_is_a_usage_error(tmp_path, capsys):
    assert main(["compile", "resnet18", "--weights", "w.pt", "-o", str(tmp_path / "r.py")]) == 2
    assert "--weights needs a .pt, .pt2 or .onnx output" in capsys.readouterr().err


def run_all(path, feeds: dict) -> dict:
    """Every output of an ONNX file by name."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {k: v.numpy() for k, v in feeds.items()})))


def expect_same_outputs(path, name, input_shape, atol=1e-4):
    """The file's outputs, by name, equal the torch module's (seed 0) at batch sizes 1 and 2."""
    model = cnnc.load(name, input=input_shape, seed=0).eval()
    for batch in (1, 2):
        x = torch.randn(batch, *input_shape)
        with torch.inference_mode():
            y = model(x)
        expected = y if isinstance(y, dict) else {"y": y}
        got = run_all(path, {"x": x})
        assert list(got) == [str(k) for k in expected]
        for key, value in expected.items():
            error = (torch.from_numpy(got[str(key)]) - value).abs().max().item()
            assert error <= atol * max(1.0, value.abs().max().item()), (
                key,
                error,
            )  # float32 sums in another order


HIDE_ONNXSCRIPT = """
import sys
class Hide:  # onnxscript absent: torch's torch.export-based exporter cannot run
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "onnxscript":
            raise ImportError("onnxscript is hidden")
sys.meta_path.insert(0, Hide())
from cnnc.cli import main
for argv in ARGS:
    assert main(argv) == 0, argv
"""


def compile_without_onnxscript(argvs):
    import os
    import subprocess
    import sys

    code = HIDE_ONNXSCRIPT.replace("ARGS", repr(argvs))
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def several_outputs():
    """The zoo's networks that return a dict or tuple of tensors (resnet50_fpn's five maps, the
    segmentation models' `out`)."""
    from cnnc.api import graph, zoo_dir

    names = [
        p.stem for p in zoo_dir().glob("*.cnn") if p.stem != "inception_module"
    ]  # two networks, one output each
    return sorted(n for n in names if graph(n).output_kind != "tensor")


SMALL = (3, 64, 64)  # the zoo's detection and segmentation inputs are 520–800 a side: too slow here


def test_the_zoo_has_networks_with_several_outputs():
    assert several_outputs() == [
        "deeplabv3_resnet50",
        "fcn_resnet50",
        "lraspp_mobilenet_v3_large",
        "resnet50_fpn",
    ]


def test_several_outputs_through_the_torchscript_exporter(tmp_path, one_thread):
    names = several_outputs()
    argvs = [
        [
            "compile",
            n,
            "--seed",
            "0",
            "--input",
            ",".join(map(str, SMALL)),
            "-o",
            str(tmp_path / f"{n}.onnx"),
        ]
        for n in names
    ]
    printed = compile_without_onnxscript(argvs)
    assert printed.count("(TorchScript-based exporter (the torch.export-based one failed") == len(
        names
    )
    assert "outputs `0`, `1`, `2`, `3`, `pool`, weights inside" in printed
    for n in names:
        expect_same_outputs(tmp_path / f"{n}.onnx", n, SMALL)


def test_several_outputs_through_the_torch_export_exporter(tmp_path, one_thread, capsys):
    path = tmp_path / "fpn.onnx"
    assert (
        main(["compile", "resnet50_fpn", "--seed", "0", "--input", "3,64,64", "-o", str(path)]) == 0
    )
    assert (
        "outputs `0`, `1`, `2`, `3`, `pool`, weights inside (torch.export-based exporter)"
        in capsys.readouterr().out
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fpn.onnx"]  # no .onnx.data beside it
    expect_same_outputs(path, "resnet50_fpn", SMALL)


def test_adaptive_max_pool_that_onnx_cannot_express_is_a_user_error(tmp_path, capsys):
    net = tmp_path / "amp.cnn"
    net.write_text(
        "network amp {\n    input [3, 10, 10]\n    return in -> c: Conv(4, 3) -> AdaptiveMaxPool(3)"
        " -> Flatten -> fc: Linear(2)\n}\n"
    )
    assert main(["compile", str(net), "-o", str(tmp_path / "amp.onnx")]) == 1
    err = capsys.readouterr().err
    assert "error[E0911]: ONNX cannot express AdaptiveMaxPool from 8×8 to 3×3" in err
    assert not (tmp_path / "amp.onnx").exists()
    assert (
        main(["compile", str(net), "--input", "3,11,11", "-o", str(tmp_path / "amp.onnx")]) == 0
    )  # 9×9 → 3×3


def test_weights_over_protobufs_limit_go_beside_the_file_and_it_is_said(
    tmp_path, monkeypatch, capsys
):
    from cnnc.compiler.lower import onnx_export

    monkeypatch.setattr(onnx_export, "INLINE_LIMIT", 0)  # as if the weights were over 2 GB
    tiny = tmp_path / "tiny.cnn"
    tiny.write_text(
        "network tiny {\n    input [3, 16, 16]\n    return in -> conv: Conv(4, 3) -> ReLU -> GlobalAvgPool"
        " -> Flatten -> fc: Linear(2)\n}\n"
    )
    out = tmp_path / "tiny.onnx"
    assert main(["compile", str(tiny), "--seed", "0", "-o", str(out)]) == 0
    assert (
        "weights in tiny.onnx.data beside it (over protobuf's 2 GB: keep the two together)"
        in capsys.readouterr().out
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.cnn", "tiny.onnx", "tiny.onnx.data"]
    x = torch.randn(2, 3, 16, 16)
    with torch.inference_mode():
        assert torch.allclose(run_onnx(out, x), cnnc.load(tiny, seed=0).eval()(x), atol=1e-5)
