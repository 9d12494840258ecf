"""Weights into a part (`weights={"body": FILE}`, `--weights body=FILE`): a torchvision ResNet-50
checkpoint (made here, no download) loads into resnet50_fpn's `body`, and the mismatch report names a
prefix that every key differs by."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import cnnc
from cnnc.cli import main
from cnnc.training.features import extract

SMALL = (3, 64, 64)


@pytest.fixture(scope="module")
def r50(tmp_path_factory):
    torch.manual_seed(0)
    model = torchvision.models.resnet50().eval()
    path = tmp_path_factory.mktemp("r50") / "r50.pth"
    torch.save(model.state_dict(), path)
    return model, path


def trunk(model, x):
    """torchvision ResNet-50 up to layer4: [N, 2048, H/32, W/32]."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


def test_a_resnet50_checkpoint_loads_into_the_fpn_body(r50, one_thread):
    reference, path = r50
    fpn = cnnc.load("resnet50_fpn", input=SMALL, seed=0, weights={"body": path}).eval()
    report = fpn.cnnc_weights["body"]
    assert len(report.loaded) == 265 and report.ok
    assert report.lines() == [
        "loaded 265 tensors into `body`",
        "not in `body`, skipped: `num_batches_tracked` of 53 modules; `fc` (weight, bias)",
    ]
    new = cnnc.load("resnet50_fpn", input=SMALL, seed=0).state_dict()
    assert all(
        torch.equal(fpn.state_dict()[k], new[k]) for k in new if k.startswith("fpn.")
    )  # left alone
    x = torch.randn(2, *SMALL)
    with torch.inference_mode():
        expected = trunk(reference, x).mean(dim=(2, 3))  # [2, 2048]
    assert torch.allclose(torch.from_numpy(extract(fpn, "body.layer4", x)), expected, atol=1e-4)


def test_the_command_line_loads_into_a_part_and_reports_once(r50, tmp_path, capsys):
    _, path = r50
    assert (
        main(
            [
                "compile",
                "resnet50_fpn",
                "--input",
                "3,64,64",
                "--weights",
                f"body={path}",
                "-o",
                str(tmp_path / "fpn.pt"),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "weights: loaded 265 tensors into `body`",
        "weights: not in `body`, skipped: `num_batches_tracked` of 53 modules; `fc` (weight, bias)",
    ]


@pytest.mark.parametrize("partial", [[], ["--weights-partial"]])
def test_a_prefix_the_keys_differ_by_is_named(r50, tmp_path, capsys, partial):
    _, path = r50
    assert (
        main(
            [
                "compile",
                "resnet50_fpn",
                "--input",
                "3,64,64",
                "--weights",
                str(path),
                *partial,
                "-o",
                str(tmp_path / "fpn.pt"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    headline = (
        "no tensor of the checkpoint `r50.pth` fits the network: 320 in the checkpoint, 281 here, none loaded"
        if partial
        else "the checkpoint `r50.pth` does not fit the network: 281 missing, 320 unexpected"
    )
    assert f"error[E0901]: {headline}" in err
    assert (
        "likely cause: the network's keys are the checkpoint's with `body.` in front (265 tensors"
        in err
    )
    assert (
        "help: load the checkpoint into that part: `--weights body=FILE` on the command line" in err
    )
    assert not (tmp_path / "fpn.pt").exists()


def test_a_prefix_to_strip_is_named(tmp_path, capsys):
    tiny = tmp_path / "tiny.cnn"
    tiny.write_text(
        "network tiny {\n    input [3, 8, 8]\n    return in -> conv: Conv(4, 3) -> GlobalAvgPool"
        " -> Flatten -> fc: Linear(2)\n}\n"
    )
    state = {f"backbone.{k}": v for k, v in cnnc.load(tiny, seed=0).state_dict().items()}
    torch.save({**state, "rpn.weight": torch.zeros(2)}, tmp_path / "det.pt")
    with pytest.raises(cnnc.CnncError) as caught:
        cnnc.load(tiny, weights=tmp_path / "det.pt")
    (d,) = caught.value.diagnostics
    assert (
        "likely cause: the checkpoint's keys are the network's with `backbone.` in front (4 tensors"
        in d.notes[-1]
    )
    assert d.helps[0].startswith(
        'strip the prefix: state = torch.load(FILE); torch.save({k.removeprefix("backbone.")'
    )


def test_a_part_that_does_not_exist(r50, capsys, tmp_path):
    _, path = r50
    assert (
        main(
            [
                "compile",
                "resnet50_fpn",
                "--input",
                "3,64,64",
                "--weights",
                f"bdoy={path}",
                "-o",
                str(tmp_path / "fpn.pt"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "no part `bdoy` to load weights into" in err and "labels near it: body" in err
