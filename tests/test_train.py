"""`cnnc train`: the lecture's transfer-learning recipe on real data (scikit-learn's digits) and on a
generated image folder: a zoo-family network with a new head, its trunk frozen, trained and resumed."""

from __future__ import annotations

import csv
import json

import pytest

torch = pytest.importorskip("torch")

import cnnc
from cnnc.cli import main
from cnnc.training.data import load_dataset
from cnnc.training.train import TrainOptions, train_run

SMALL = 'import "families/resnet.cnn"\n\nnetwork small = ResNet([1, 1, 1, 1], unit = Basic, classes = 10)\n'
SEVEN = "network seven = ResNet([1, 1, 1, 1], unit = Basic, classes = 7)\n"
TRUNK = ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.cnn"
    path.write_text(SMALL + SEVEN)
    return path


def freeze_args(labels):
    return [w for label in labels for w in ("--freeze", label)]


def test_frozen_trunk_is_bit_identical_and_the_head_learns(small, tmp_path, one_thread, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            str(small),
            "-n",
            "small",
            "--input",
            "1,16,16",
            "--data",
            "digits",
            "--epochs",
            "3",
            "--optimizer",
            "adamw",
            "--lr",
            "0.01",
            "--out",
            str(out),
            *freeze_args(TRUNK),
        ]
    )
    out_text, err = capsys.readouterr()
    assert rc == 0, err
    assert "small: 4,904,650 params, 5,130 trainable, 4,899,520 frozen (36 tensors)" in out_text
    before = cnnc.load(small, network="small", input=(1, 16, 16), seed=0).state_dict()
    after = torch.load(out / "model.pt", weights_only=True)
    assert after.keys() == before.keys()
    trunk = [k for k in before if k.split(".")[0] in TRUNK]
    assert (
        len(trunk) == 72
    )  # BatchNorm statistics included: frozen BatchNorm layers stay in eval mode
    assert all(torch.equal(before[k], after[k]) for k in trunk)
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert (
        float(rows[-1]["val_acc"]) > 0.2
    )  # random features, a trained linear head: twice chance at least
    assert (out / "curves.png").stat().st_size > 10_000
    assert json.loads((out / "run.json").read_text())["freeze"] == TRUNK


def test_the_trained_program_rebuilds(small, tmp_path, one_thread, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                str(small),
                "-n",
                "small",
                "--input",
                "1,16,16",
                "--data",
                "digits",
                "--epochs",
                "1",
                "--out",
                str(out),
                *freeze_args(TRUNK),
            ]
        )
        == 0
    )
    assert (out / "network.cnn").read_text() == SMALL + SEVEN
    model = cnnc.load(
        out / "network.cnn", network="small", input=(1, 16, 16), weights=out / "model.pt"
    )
    assert model.cnnc_weights.ok


def test_digits_are_read_from_scikit_learns_file_as_its_loader_reads_them():
    # the file is read without importing scikit-learn (a second of a cold command); the images
    # and labels must be exactly the loader's
    from sklearn.datasets import load_digits as sk_digits

    from cnnc.training.data import _digits_file, load_digits

    raw, bunch = load_digits(), sk_digits()
    assert _digits_file() is not None  # the file is read, not the loader called
    assert torch.equal(raw.x, torch.from_numpy(bunch.images).float().unsqueeze(1))
    assert torch.equal(raw.y, torch.from_numpy(bunch.target).long())
    assert (raw.x.shape, raw.y.dtype, raw.num_classes) == ((1797, 1, 8, 8), torch.int64, 10)


def test_resume_continues_where_the_run_stopped(tmp_path, one_thread):
    data = load_dataset("digits", size=8, seed=0)
    net = tmp_path / "tiny.cnn"
    net.write_text(
        "network tiny {\n    input [1, 8, 8]\n    return in -> Conv(8, 3, pad = 1) -> BatchNorm -> ReLU"
        " -> GlobalAvgPool -> Flatten -> fc: Linear(10)\n}\n"
    )
    options = TrainOptions(epochs=3, batch_size=32, lr=0.05, warmup=1.0)
    whole = cnnc.load(net, seed=0)
    (tmp_path / "a").mkdir()
    train_run(whole, data, options, tmp_path / "a", log=lambda text: None)

    class Stop(Exception):
        pass

    def interrupt_in_second_epoch(text):  # epoch 1 is saved; epoch 2's work is lost
        if text.startswith("epoch 2/3"):
            raise Stop

    (tmp_path / "b").mkdir()
    with pytest.raises(Stop):
        train_run(
            cnnc.load(net, seed=0), data, options, tmp_path / "b", log=interrupt_in_second_epoch
        )
    resumed = cnnc.load(net, seed=0)
    rows = train_run(resumed, data, options, tmp_path / "b", resume=True, log=lambda text: None)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for k, v in whole.state_dict().items():
        assert torch.allclose(v.float(), resumed.state_dict()[k].float(), atol=1e-6), k


def test_generated_image_folder_with_imagenet_normalisation(tmp_path, one_thread, capsys):
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for k, colour in enumerate(("red", "blue")):
        folder = tmp_path / "images" / colour
        folder.mkdir(parents=True)
        for i in range(12):
            pixels = torch.randint(0, 60, (24, 24, 3), generator=gen, dtype=torch.uint8)
            pixels[..., 0 if k == 0 else 2] += 150
            Image.fromarray(pixels.numpy()).save(folder / f"{i}.png")
    net = tmp_path / "pets.cnn"
    net.write_text(
        'import "families/resnet.cnn"\n\nnetwork pets = ResNet([1, 1, 1, 1], unit = Basic, classes = 2)\n'
    )
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            str(net),
            "--input",
            "3,32,32",
            "--data",
            f"folder:{tmp_path / 'images'}",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--out",
            str(out),
            *freeze_args(TRUNK),
        ]
    )
    out_text, err = capsys.readouterr()
    assert rc == 0, err
    assert (
        "folder:" in out_text
        and "20 train / 4 validation images of [3, 32, 32], 2 classes" in out_text
    )
    assert (out / "model.pt").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["-n", "small", "--input", "1,16,16", "--freeze", "layer9"],
            "--freeze names no module `layer9`",
        ),
        (
            ["-n", "small", "--input", "3,16,16"],
            "takes [3, 16, 16], but the images of `digits` are [1, 16, 16]",
        ),
        (["--input", "1,16,16", "--network", "seven"], "outputs [7], but `digits` has 10 classes"),
    ],
)
def test_mistakes_are_user_errors(small, tmp_path, capsys, extra, message):
    args = ["train", str(small), "--data", "digits", "--out", str(tmp_path / "r"), *extra]
    assert main(args) == 1
    assert message in capsys.readouterr().err


def test_a_derived_network_trains_with_its_trunk_frozen_by_the_language(
    tmp_path, one_thread, capsys
):
    path = tmp_path / "head.cnn"
    path.write_text(
        SMALL.replace("classes = 10", "classes = 7")
        + "network head = small with {\n    fc: Linear(10)\n} freeze until fc\n"
    )
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                str(path),
                "-n",
                "head",
                "--input",
                "1,16,16",
                "--data",
                "digits",
                "--epochs",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (
        "4,904,650 params, 5,130 trainable, 4,899,520 frozen (36 tensors)"
        in capsys.readouterr().out
    )
    before = cnnc.load(path, network="head", input=(1, 16, 16), seed=0).state_dict()
    after = torch.load(out / "model.pt", weights_only=True)
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("fc."))
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
