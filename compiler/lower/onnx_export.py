"""A lowered network → an ONNX file (the `.onnx` artifact of `cnnc compile`).

`export_onnx(model, path)` exports `model` in eval mode through torch's ONNX exporter (the
torch.export-based one; the TorchScript-based one where that fails, said in the note) with the batch
dimension dynamic, inputs named as the network's (`x` for the one unnamed input) and outputs `y` (or the
outputs' names), and checks the file with `onnx.checker`.
"""

from __future__ import annotations

import contextlib
import io

import torch

OPSET = 18  # what onnxruntime ≥ 1.16 runs, and the lowest the torch.export-based exporter writes


def export_onnx(model, path: str) -> str:
    """Write `model` to `path` as ONNX; return a one-line note naming how it was exported."""
    from cnnc.compiler.lower.fx import example_inputs, output_names

    graph = model.cnnc_graph
    example = example_inputs(graph)  # [2, C, H, W] each: batch 1 would be specialised
    inputs = [graph.input_name(i) for i in graph.inputs]
    outputs = output_names(graph)
    model = model.eval()
    try:
        batch = torch.export.Dim("batch")
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
            torch.onnx.export(model, example, path, dynamo=True, opset_version=OPSET, input_names=inputs,
                              output_names=outputs, dynamic_shapes=tuple({0: batch} for _ in example))
        how = "torch.export-based exporter"
    except Exception as exc:  # noqa: BLE001  any exporter failure: the older exporter, and say why
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        torch.onnx.export(model, example, path, dynamo=False, opset_version=OPSET, input_names=inputs,
                          output_names=outputs, dynamic_axes={n: {0: "batch"} for n in inputs + outputs})
        how = f"TorchScript-based exporter (the torch.export-based one failed: {reason})"
    check(path)
    listed = lambda names: ", ".join(f"`{n}`" for n in names)  # noqa: E731
    what = f"input{'s' * (len(inputs) > 1)} {listed(inputs)}, output{'s' * (len(outputs) > 1)} {listed(outputs)}"
    return f"ONNX opset {OPSET}, batch dimension dynamic, {what} ({how})"


def check(path: str) -> None:
    import onnx

    onnx.checker.check_model(onnx.load(path))
