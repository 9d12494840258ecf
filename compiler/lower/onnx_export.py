"""A lowered network → an ONNX file (the `.onnx` artifact of `cnnc compile`).

`export_onnx(model, path, metadata)` exports `model` in eval mode through torch's ONNX exporter (the
torch.export-based one; the TorchScript-based one where that fails or onnxscript is missing, said in
the note) with the batch dimension dynamic, inputs named as the network's (`x` for the one unnamed
input) and outputs `y` (or the outputs' names: the TorchScript exporter cannot name a value `0`, so it
exports placeholders that are renamed in the file), and checks the file with `onnx.checker`.

The file is self-contained: the weights are inside it, unless they exceed what one protobuf holds
(2 GB), and only then do they go to `PATH.data` beside it (said in the note). `metadata` (text keys
and values: a run's class names and preprocessing) goes into the model's `metadata_props`. The file
is written to a temporary name and moved into place (`safefs.replacing_path`).

A network that no exporter can write (an `AdaptiveMaxPool` whose output size does not divide its
input: ONNX's MaxPool has one fixed window) is refused first with a user error (E0911).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings

import torch

from cnnc.dsl import safefs
from cnnc.dsl.diagnostics import CnncError, error

OPSET = 18  # what onnxruntime ≥ 1.16 runs, and the lowest the torch.export-based exporter writes
INLINE_LIMIT = (
    1_800_000_000  # bytes of weights kept inside the file: protobuf's 2 GB less the graph's room
)


def export_onnx(model, path: str, metadata: dict | None = None) -> str:
    """Write `model` to `path` as ONNX; return a one-line note naming how it was exported."""
    from cnnc.compiler.lower.fx import output_names

    graph = model.cnnc_graph
    check_exportable(graph)
    inputs = [graph.input_name(i) for i in graph.inputs]
    outputs = output_names(graph)
    external = weight_bytes(model) > INLINE_LIMIT
    if external:  # torch names the data file after the path it writes: write in place
        how = _export(model.eval(), path, inputs, outputs, external)
        _finish(path, outputs, metadata, external)
    else:
        with safefs.replacing_path(path) as (tmp, _):
            how = _export(model.eval(), tmp, inputs, outputs, external)
            _finish(tmp, outputs, metadata, external)

    def listed(names):
        return ", ".join(f"`{n}`" for n in names)

    what = f"input{'s' * (len(inputs) > 1)} {listed(inputs)}, output{'s' * (len(outputs) > 1)} {listed(outputs)}"
    where = (
        f"weights in {os.path.basename(path)}.data beside it (over protobuf's 2 GB: keep the two together)"
        if external
        else "weights inside"
    )
    return f"ONNX opset {OPSET}, batch dimension dynamic, {what}, {where} ({how})"


def check_exportable(graph) -> None:
    for node in graph.nodes_in_order():
        if not node.spec.onnx_divides:
            continue
        (_, h, w), (_, oh, ow) = graph.node(node.inputs[0]).type.shape, node.type.shape
        if h % oh or w % ow:
            raise CnncError(
                error(
                    "E0911",
                    f"ONNX cannot express {node.op} from {h}×{w} to {oh}×{ow}, a size that does not "
                    "divide its input",
                    node.span,
                    "windows of varying size here",
                    notes=(
                        (
                            "ONNX's MaxPool slides one fixed window; adaptive pooling to a size that does not divide "
                            "the input needs windows of two sizes"
                        ),
                    ),
                    helps=(
                        (
                            f"pool to a size that divides {h}×{w}, change the input (--input) so that {oh}×{ow} "
                            "divides the pooled map, or export a torch program instead (-o OUT.pt2)"
                        ),
                    ),
                )
            )


def weight_bytes(model) -> int:
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


SHARED_BATCH = r".*axis name: batch will not be used"  # inputs sharing a batch dimension, as meant


def _export(model, path: str, inputs, outputs, external: bool) -> str:
    """Run torch's exporter (the torch.export-based one, else the TorchScript-based one)."""
    from cnnc.compiler.lower.fx import example_inputs

    example = example_inputs(model.cnnc_graph)  # [2, C, H, W] each: batch 1 would be specialised
    try:
        batch = torch.export.Dim("batch")
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # the exporter prints its progress, and warns that several inputs share `batch`
            warnings.filterwarnings("ignore", message=SHARED_BATCH)
            torch.onnx.export(
                model,
                example,
                path,
                dynamo=True,
                opset_version=OPSET,
                input_names=inputs,
                output_names=outputs,
                dynamic_shapes=tuple({0: batch} for _ in example),
                external_data=external,
            )
        return "torch.export-based exporter"
    except Exception as exc:  # noqa: BLE001  any exporter failure: the older exporter, and say why
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    placeholders = [
        f"cnnc_output_{i}" for i in range(len(outputs))
    ]  # TorchScript refuses names like `0`
    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(
            model,
            example,
            path,
            dynamo=False,
            opset_version=OPSET,
            input_names=inputs,
            output_names=placeholders,
            dynamic_axes={n: {0: "batch"} for n in inputs + placeholders},
        )
    return f"TorchScript-based exporter (the torch.export-based one failed: {reason})"


def _finish(path: str, outputs, metadata: dict | None, external: bool) -> None:
    """Rename placeholder outputs, add `metadata_props`, save (weights inline), check."""
    import onnx

    proto = onnx.load(path, load_external_data=not external)
    rename_outputs(proto.graph, outputs)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    if external:
        onnx.save(proto, path)  # the external data stays as torch wrote it
        onnx.checker.check_model(path)
        return
    onnx.save(proto, path, save_as_external_data=False)
    onnx.checker.check_model(proto)


def rename_outputs(graph, names) -> None:
    """Give the graph's outputs `names` (the TorchScript exporter's placeholders, or names the
    exporter changed), renaming every use; a value already holding a wanted name is renamed first."""
    current = [o.name for o in graph.output]
    if current == list(names):
        return
    taken = {v for n in graph.node for v in n.output} | {i.name for i in graph.input}
    mapping = {}
    for old, new in zip(current, names):
        if new in taken and new not in current:
            mapping[new] = f"{new}_cnnc_renamed"
        mapping[old] = new
    _rename(graph, mapping)


def _rename(graph, mapping: dict) -> None:
    for node in graph.node:
        node.input[:] = [mapping.get(v, v) for v in node.input]
        node.output[:] = [mapping.get(v, v) for v in node.output]
    for value in list(graph.output) + list(graph.value_info):
        value.name = mapping.get(value.name, value.name)
