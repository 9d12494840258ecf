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
    tiny.write_text("network tiny {\n    input [3, 16, 16]\n    return in -> conv: Conv(4, 3) -> ReLU -> GlobalAvgPool"
                    " -> Flatten -> fc: Linear(2)\n}\n")
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
