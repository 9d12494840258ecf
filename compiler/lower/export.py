"""A lowered network → a saved `torch.export` program (the `.pt` artifact of `cnnc compile`).

`export_program(model, path)` traces `model` in eval mode with the batch dimension dynamic (the
other dimensions are those of the IR's inputs; one argument per input) and writes the archive `torch.export.load` reads.
Where torch.export cannot trace the model it falls back to TorchScript (`torch.jit.trace`, loaded
with `torch.jit.load`), and says so in the returned note.
"""

from __future__ import annotations

import torch


def export_program(model, path: str) -> str:
    """Write `model` to `path`; return a one-line note naming the format and how to load it."""
    from cnnc.compiler.lower.fx import example_inputs

    example = example_inputs(model.cnnc_graph)  # batch 2: 1 would be specialised
    batch = torch.export.Dim("batch")
    model = model.eval()
    try:
        program = torch.export.export(
            model, example, dynamic_shapes=tuple({0: batch} for _ in example)
        )
    except Exception as exc:  # noqa: BLE001  any tracing failure: fall back, and say why
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(model, example, strict=False), path)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"TorchScript (torch.export failed: {reason}); load with torch.jit.load"
    with open(path, "wb") as f:  # a file object: torch.export warns about suffixes other than .pt2
        torch.export.save(program, f)
    return (
        "torch.export program, batch dimension dynamic; load with torch.export.load(path).module()"
    )
