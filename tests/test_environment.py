"""One environment where everything imports: torch, torchvision with its compiled ops, timm and
onnxruntime, in a fresh interpreter where nothing declares an op schema by hand (set-up pins the
pair whose torchvision ops load beside its torch; Makefile, TORCH)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import torch, torchvision, timm, onnxruntime
boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
print(torchvision.extension._has_ops())
print(torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist())
print(timm.create_model("resnet18").fc.out_features)
print("CPUExecutionProvider" in onnxruntime.get_available_providers())
"""


def test_torch_torchvision_timm_and_onnxruntime_import_together():
    done = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # the second box overlaps the first by 81 % and goes; torchvision's compiled nms ran
    assert done.stdout.split("\n") == ["True", "[0, 2]", "1000", "True", ""]
