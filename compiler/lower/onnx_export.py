"""A lowered network → an ONNX file (the `.onnx` artifact of `cnnc compile`).

`export_onnx(model, path)` exports `model` in eval mode through torch's ONNX exporter (the
torch.export-based one; the TorchScript-based one where that fails, said in the note) with the batch
dimension dynamic, input `x` and output `y`, and checks the file with `onnx.checker`.
"""

from __future__ import annotations

import contextlib
import io

import torch

OPSET = 18  # what onnxruntime ≥ 1.16 runs, and the lowest the torch.export-based exporter writes


def export_onnx(model, path: str) -> str:
    """Write `model` to `path` as ONNX; return a one-line note naming how it was exported."""
    example = torch.randn(2, *model.cnnc_graph.input_type.shape)  # [2, C, H, W]: batch 1 would be specialised
    model = model.eval()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
            torch.onnx.export(model, (example,), path, dynamo=True, opset_version=OPSET, input_names=["x"],
                              output_names=["y"], dynamic_shapes=({0: torch.export.Dim("batch")},))
        how = "torch.export-based exporter"
    except Exception as exc:  # noqa: BLE001  any exporter failure: the older exporter, and say why
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        torch.onnx.export(model, (example,), path, dynamo=False, opset_version=OPSET, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        how = f"TorchScript-based exporter (the torch.export-based one failed: {reason})"
    check(path)
    return f"ONNX opset {OPSET}, batch dimension dynamic, input `x`, output `y` ({how})"


def check(path: str) -> None:
    import onnx

    onnx.checker.check_model(onnx.load(path))
