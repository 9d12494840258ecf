"""Checkpoints: torchvision's reference modules saved to files (nothing can be downloaded here) load into
cnnc's zoo models by key, with a readable report of whatever does not fit."""

from __future__ import annotations

import pickle

import pytest

torch = pytest.importorskip("torch")
tv = pytest.importorskip("torchvision.models")

import cnnc
from cnnc.compiler.lower.weights import load_weights, read_checkpoint
from cnnc.dsl.diagnostics import CnncError


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    torch.manual_seed(0)
    reference = tv.resnet18().eval()
    path = tmp_path_factory.mktemp("ckpt") / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    return reference, path


def same_output(a, b, shape=(2, 3, 64, 64)) -> bool:
    x = torch.randn(*shape)
    with torch.inference_mode():
        return torch.allclose(a.eval()(x), b.eval()(x), atol=1e-5, rtol=1e-5)


def test_torchvision_checkpoint_loads_strictly_and_gives_the_same_outputs(
    resnet18_file, one_thread
):
    reference, path = resnet18_file
    model = cnnc.load("resnet18", seed=1)
    report = load_weights(model, path)
    assert report.ok and report.new == () and report.notes == ()
    assert len(report.loaded) == len(reference.state_dict()) == 122
    assert same_output(model, reference)


@pytest.mark.parametrize("wrap", ["state_dict", "model"])
def test_nested_checkpoints_are_found(resnet18_file, tmp_path, wrap):
    reference, _ = resnet18_file
    path = tmp_path / "nested.pt"
    torch.save({wrap: reference.state_dict(), "epoch": 90}, path)
    assert read_checkpoint(path).keys() == reference.state_dict().keys()


def test_dataparallel_prefix_is_stripped_and_said(resnet18_file, tmp_path, one_thread):
    reference, _ = resnet18_file
    path = tmp_path / "dp.pt"
    torch.save({f"module.{k}": v for k, v in reference.state_dict().items()}, path)
    model = cnnc.load("resnet18")
    report = load_weights(model, path)
    assert report.ok
    assert report.notes == ("stripped the `module.` prefix nn.DataParallel writes",)
    assert same_output(model, reference)


def test_safetensors(resnet18_file, tmp_path, one_thread):
    safetensors = pytest.importorskip("safetensors.torch")
    reference, _ = resnet18_file
    path = tmp_path / "r18.safetensors"
    safetensors.save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    model = cnnc.load("resnet18")
    assert load_weights(model, path).ok
    assert same_output(model, reference)


def test_a_replaced_head_is_named_and_strict_loading_refuses(resnet18_file, tmp_path, one_thread):
    _, path = resnet18_file
    source = tmp_path / "pets.cnn"
    source.write_text(
        'import "families/resnet.cnn"\n\nnetwork pets = ResNet([2, 2, 2, 2], unit = Basic, classes = 37)\n'
    )
    model = cnnc.load(source)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CnncError) as caught:
        load_weights(model, path)
    (d,) = caught.value.diagnostics
    assert d.code == "E0901"
    assert d.message == "the checkpoint `resnet18.pth` does not fit the network: 2 of another shape"
    assert (
        "of another shape: `fc.weight` [1000, 512] in the checkpoint, [37, 512] here; "
        "`fc.bias` [1000] in the checkpoint, [37] here" in d.notes
    )
    assert any(n.startswith("likely cause: a replaced head") for n in d.notes)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing loaded


def test_partial_loading_keeps_the_new_head(resnet18_file, tmp_path, one_thread):
    reference, path = resnet18_file
    source = tmp_path / "pets.cnn"
    source.write_text(
        'import "families/resnet.cnn"\n\nnetwork pets = ResNet([2, 2, 2, 2], unit = Basic, classes = 37)\n'
    )
    model = cnnc.load(source, seed=3)
    head = model.state_dict()["fc.weight"].clone()
    report = load_weights(model, path, strict=False)
    assert report.new == ("fc.bias", "fc.weight")
    assert torch.equal(model.state_dict()["fc.weight"], head)
    assert torch.equal(
        model.state_dict()["layer4.1.conv2.weight"], reference.state_dict()["layer4.1.conv2.weight"]
    )


def test_googlenet_auxiliary_classifiers_are_skipped(tmp_path, one_thread):
    torch.manual_seed(0)
    reference = tv.googlenet(aux_logits=True, init_weights=False)
    path = tmp_path / "googlenet.pth"
    torch.save(reference.state_dict(), path)
    model = cnnc.load("googlenet")
    report = load_weights(model, path)
    assert report.ok
    (note,) = report.notes
    assert note.startswith("skipped ") and note.endswith("auxiliary classifiers `aux1`, `aux2`")


def test_unrelated_checkpoint_reports_missing_and_unexpected_grouped_by_module(
    tmp_path, one_thread
):
    path = tmp_path / "vgg.pt"
    torch.save(tv.vgg11().state_dict(), path)
    with pytest.raises(CnncError) as caught:
        load_weights(cnnc.load("resnet18"), path)
    (d,) = caught.value.diagnostics
    assert d.message.startswith(
        "the checkpoint `vgg.pt` does not fit the network: 122 missing, 22 unexpected"
    )
    missing = next(n for n in d.notes if n.startswith("missing from the checkpoint: "))
    assert missing.startswith(
        "missing from the checkpoint: `conv1` (weight); `bn1` (weight, bias, running_mean, "
        "running_var, num_batches_tracked);"
    )
    assert missing.endswith("and 35 more modules")
    assert any("names modules differently" in n for n in d.notes)


class Payload:
    def __reduce__(self):
        return (open, ("cnnc-weights-canary", "w"))


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"fc.weight": Payload()}, f)
    with pytest.raises(CnncError) as caught:
        read_checkpoint(path)
    assert caught.value.diagnostics[0].code == "E0902"
    assert not (tmp_path / "cnnc-weights-canary").exists()


@pytest.mark.parametrize("content", [None, b"not a checkpoint", "tensor"])
def test_unreadable_checkpoints_are_user_errors(tmp_path, content):
    path = tmp_path / "w.pt"
    if content == "tensor":
        torch.save(torch.zeros(3), path)  # a tensor, not a state_dict
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(CnncError) as caught:
        read_checkpoint(path)
    assert caught.value.diagnostics[0].code == "E0902"


def test_load_takes_weights(resnet18_file, one_thread):
    reference, path = resnet18_file
    model = cnnc.load("resnet18", weights=path)
    assert model.cnnc_weights.ok and len(model.cnnc_weights.loaded) == 122
    assert same_output(model, reference)
