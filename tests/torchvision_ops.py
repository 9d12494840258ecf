"""torchvision's models beside a torch build its compiled ops were not made for.

Set-up installs torch's CPU build (about 1 GB where PyPI's default Linux wheel, a CUDA build, takes
about 6 GB). PyPI's torchvision wheel is built against the CUDA build, so its compiled ops (nms,
roi_align, deform_conv2d…) do not load beside the CPU one, and torchvision runs without them
(`torchvision.extension._has_ops()` is false). The tests and benchmarks use only torchvision's
models and Python layers, which call none of those ops.

torchvision 0.28 registers fake kernels for `torchvision::nms` and `torchvision::qnms` at import
without checking that the ops exist, so it does not import at all in that case. `prepare()`
declares those two schemas first, with no kernel: the import finishes, and a call of either op
still fails loudly. Where the compiled ops load, it declares nothing.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

_SCHEMAS = (  # as torchvision's compiled ops define them
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_declared = []  # the Library that holds the schemas lives as long as the process


def compiled_ops() -> Path | None:
    """torchvision's compiled-ops library, or None where torchvision is not installed."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if (folder / f"_C{suffix}").is_file():
            return folder / f"_C{suffix}"
    return None


def prepare() -> bool:
    """Make `import torchvision` work; True when its compiled ops are missing (the schemas were
    declared), False when they load or torchvision is not installed. Call before any import of
    torchvision, timm included; calling it again does nothing."""
    if _declared:
        return True
    path = compiled_ops()
    if path is None:
        return False
    import torch

    try:
        torch.ops.load_library(str(path))
    except OSError:
        pass
    else:
        return False
    library = torch.library.Library("torchvision", "DEF")  # kept in _declared
    for schema in _SCHEMAS:
        library.define(schema)
    _declared.append(library)
    return True
