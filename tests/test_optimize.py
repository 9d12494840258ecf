"""The inference rewrite (`compiler/lower/optimize.py`): same outputs, fewer modules, frozen."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from conftest import ROOT

import cnnc
from cnnc.compiler.lower.optimize import for_inference

# Zoo models with every rewrite between them: BN after conv (all), BN after a pointwise conv that a
# residual add reads (mobilenet_v2), Dropout (vgg11_bn, googlenet, mobilenet_v2), concat branches
# (googlenet), SE gates and Hardswish (mobilenet_v3_small). Small inputs keep the suite fast.
ZOO = [
    ("resnet18", 64),
    ("mobilenet_v2", 64),
    ("googlenet", 64),
    ("vgg11_bn", 32),
    ("mobilenet_v3_small", 64),
    ("densenet121", 64),
]


def trained_looking(model):
    """Non-trivial BatchNorm statistics, so folding them changes the weights."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)  # [C]
                m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)  # [C]
                m.weight.copy_(torch.rand(n, generator=generator) + 0.5)  # [C]
                m.bias.copy_(torch.rand(n, generator=generator) - 0.5)  # [C]
    return model.eval()


def relative_error(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("name,side", ZOO)
def test_zoo_outputs_equal_the_plain_models_within_1e_4(name, side, one_thread):
    plain = trained_looking(cnnc.load(ROOT / "zoo" / f"{name}.cnn", input=[3, side, side], seed=0))
    fast = for_inference(plain)
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))  # [N, 3, H, W]
    with torch.inference_mode():
        assert relative_error(fast(x), plain(x)) < 1e-4
    norms = [m for m in fast.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    dropped = [m for m in fast.modules() if isinstance(m, (torch.nn.Dropout, torch.nn.Identity))]
    assert dropped == []
    assert len(norms) < sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())


def test_resnet18_folds_every_batchnorm_and_keeps_the_convolutions(one_thread):
    plain = cnnc.load(ROOT / "zoo" / "resnet18.cnn", seed=0).eval()
    fast = for_inference(plain)
    modules = dict(fast.named_modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in modules.values())
    assert "layer1.0.bn1" not in modules and "layer1.0.conv1" in modules
    assert modules["layer1.0.conv1"].bias is not None  # the folded shift
    assert "layer1.0.bn1.weight" in plain.state_dict()  # the original is left alone
    assert all(not p.requires_grad for p in fast.parameters())
    assert not fast.training


def test_a_batchnorm_whose_convolution_has_another_reader_is_kept(one_thread):
    model = cnnc.compile_source(
        """network n { input [3, 8, 8]
        a = in -> c: Conv(4, 3, pad = 1)
        return (a -> b: BatchNorm) + a }""",
        seed=0,
    )
    fast = for_inference(trained_looking(model))
    assert isinstance(fast.get_submodule("b"), torch.nn.BatchNorm2d)
    x = torch.randn(2, 3, 8, 8)  # [N, 3, 8, 8]
    assert relative_error(fast(x), model(x)) < 1e-6


def test_batchnorm_after_linear_folds_too(one_thread):
    model = cnnc.compile_source(
        "network n { input [6] return in -> l: Linear(5) -> b: BatchNorm -> ReLU }", seed=0
    )
    fast = for_inference(trained_looking(model))
    assert "b" not in dict(fast.named_modules())
    x = torch.randn(3, 6)  # [N, 6]
    assert relative_error(fast(x), model(x)) < 1e-5


def test_channels_last_is_chosen_for_convolutions_only(one_thread):
    conv = for_inference(
        cnnc.compile_source("network n { input [3, 8, 8] return in -> c: Conv(4, 3) }", seed=0)
    )
    assert conv.c.weight.is_contiguous(memory_format=torch.channels_last)
    assert "channels_last" in conv.code
    dense = for_inference(
        cnnc.compile_source("network n { input [6] return in -> l: Linear(5) }", seed=0)
    )
    assert "channels_last" not in dense.code
    plain = for_inference(
        cnnc.compile_source("network n { input [3, 8, 8] return in -> c: Conv(4, 3) }", seed=0),
        channels_last=False,
    )
    assert "channels_last" not in plain.code


def test_load_with_optimize_inference_is_the_rewrite_of_load(one_thread):
    plain = cnnc.load("resnet18", input=[3, 32, 32], seed=0).eval()
    fast = cnnc.load("resnet18", input=[3, 32, 32], seed=0, optimize="inference")
    assert type(fast).__name__ == "Resnet18"
    assert "layer1.0.bn1" not in dict(fast.named_modules())
    x = torch.randn(2, 3, 32, 32)  # [N, 3, 32, 32]
    with torch.inference_mode():
        assert relative_error(fast(x), plain(x)) < 1e-4


def test_load_rejects_an_unknown_optimize_value():
    with pytest.raises(
        ValueError, match="`optimize` must be None or \"inference\", but got 'fast'"
    ):
        cnnc.load("resnet18", optimize="fast")


SMALL = (
    "network small { input [3, 16, 16] return in -> c: Conv(8, 3, pad = 1, bias = false) "
    "-> b: BatchNorm -> ReLU -> GlobalAvgPool -> Flatten -> Dropout(0.5) -> fc: Linear(4) }"
)


def test_compile_optimize_inference_writes_the_rewritten_program(tmp_path, capsys, one_thread):
    from conftest import run_cli

    source = tmp_path / "small.cnn"
    source.write_text(SMALL)
    out = tmp_path / "small.pt2"
    code, stdout, _ = run_cli(
        ["compile", source, "--optimize", "inference", "--seed", "0", "-o", out], capsys
    )
    assert code == 0
    assert stdout.splitlines()[-1].endswith("; optimised for inference")
    program = torch.export.load(str(out)).module()
    assert not any("b." in key for key in program.state_dict())  # the BatchNorm is folded away
    plain = cnnc.compile_source(SMALL, seed=0).eval()
    x = torch.randn(2, 3, 16, 16)  # [N, 3, 16, 16]
    with torch.no_grad():
        assert relative_error(program(x), plain(x)) < 1e-4


@pytest.mark.parametrize("output", [[], ["-o", "-"], ["-o", "small.py"]])
def test_compile_optimize_to_source_is_a_usage_error(output, tmp_path, capsys, monkeypatch):
    from conftest import run_cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.cnn").write_text(SMALL)
    code, _, err = run_cli(["compile", "small.cnn", "--optimize", "inference", *output], capsys)
    assert code == 2
    assert "--optimize needs a .pt, .pt2 or .onnx output" in err
    assert not (tmp_path / "small.py").exists()
