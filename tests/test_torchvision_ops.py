"""tests/torchvision_ops.py: torchvision's models import beside torch's CPU build, and its missing
compiled ops still fail loudly when called."""

from __future__ import annotations

import pytest
from torchvision_ops import compiled_ops, prepare

torch = pytest.importorskip("torch")


def test_torchvision_imports_and_builds_a_model():
    if compiled_ops() is None:
        pytest.skip("torchvision is not installed")
    prepare()
    import torchvision

    model = torchvision.models.resnet18()
    assert sum(p.numel() for p in model.parameters()) == 11_689_512  # torchvision's published count


def test_a_missing_compiled_op_still_fails_when_called():
    if compiled_ops() is None or not prepare():
        pytest.skip("torchvision's compiled ops load here (or torchvision is not installed)")
    import torchvision

    assert not torchvision.extension._has_ops()
    with pytest.raises(RuntimeError, match="Couldn't load custom C\\+\\+ ops"):
        torchvision.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)
    with pytest.raises((RuntimeError, NotImplementedError)):
        torch.ops.torchvision.nms(torch.rand(3, 4), torch.rand(3), 0.5)  # declared, no kernel
