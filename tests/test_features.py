"""`cnnc features` and `cnnc neighbors` on real data (scikit-learn's digits): embeddings at a label,
kNN accuracy against scikit-learn's classifier, L2 neighbours against brute force, pictures."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import cnnc
from cnnc.cli import main
from cnnc.training import features as feats
from cnnc.training.data import load_dataset
from cnnc.training.train import TrainOptions, train_run

TINY = (
    "network tiny {\n    input [1, 8, 8]\n    return in -> conv: Conv(16, 3, pad = 1) -> bn: BatchNorm -> ReLU\n"
    "              -> body: (Conv(32, 3, pad = 1) -> ReLU) -> GlobalAvgPool -> Flatten -> fc: Linear(10)\n}\n"
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small network trained for a few epochs on digits; its program and weights on disk."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("feat")
    (root / "tiny.cnn").write_text(TINY)
    model = cnnc.load(root / "tiny.cnn", seed=0)
    train_run(
        model,
        load_dataset("digits", seed=0),
        TrainOptions(epochs=4, batch_size=32, lr=0.05),
        root,
        log=lambda text: None,
    )
    return root


@pytest.fixture(scope="module")
def features_file(trained):
    out = trained / "feats.npz"
    assert (
        main(
            [
                "features",
                str(trained / "tiny.cnn"),
                "--weights",
                str(trained / "model.pt"),
                "--at",
                "body",
                "--data",
                "digits",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def test_features_file_and_knn_accuracy_agree_with_scikit_learn(features_file, capsys):
    from sklearn.neighbors import KNeighborsClassifier

    data = feats.read(features_file)
    assert data["features"].shape == (1797, 32) and data["thumbs"].shape == (1797, 8, 8, 1)
    assert data["split"].sum() == 359 and data["meta"]["at"] == "body"
    train, held = data["split"] == 0, data["split"] == 1
    knn = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(
        data["features"][train], data["labels"][train]
    )
    expected = knn.score(data["features"][held], data["labels"][held])
    ours = feats.knn_accuracy(data["features"], data["labels"], data["split"], k=5)
    assert (
        abs(ours - expected) <= 2 / 359
    )  # ties between equally distant neighbours may break apart
    assert ours > 0.5  # chance is 10 %


def test_the_tap_is_the_labelled_layers_output(trained, one_thread):
    model = cnnc.load(trained / "tiny.cnn", weights=trained / "model.pt").eval()
    x = torch.randn(4, 1, 8, 8)
    seen = {}
    model.get_submodule("body.1").register_forward_hook(lambda m, i, o: seen.setdefault("body", o))
    with torch.inference_mode():
        logits = model(x)
    assert np.allclose(
        feats.extract(model, "body", x), seen["body"].mean(dim=(2, 3)).numpy(), atol=1e-6
    )
    assert np.allclose(feats.extract(model, "fc", x), logits.numpy(), atol=1e-6)


def test_neighbours_are_the_nearest_training_images(features_file, capsys, tmp_path):
    out = tmp_path / "grid.png"
    assert (
        main(["neighbors", str(features_file), "--query", "17", "-k", "5", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out.splitlines()
    data = feats.read(features_file)
    train = np.flatnonzero(data["split"] == 0)
    train = train[train != 17]
    d = np.linalg.norm(data["features"][train] - data["features"][17], axis=1)
    expected = train[np.argsort(d, kind="stable")[:5]]
    rows = [line.split() for line in printed[2:]]
    assert [int(r[1]) for r in rows] == list(expected)
    distances = [float(r[3]) for r in rows]
    assert distances == sorted(distances)
    assert out.stat().st_size > 5_000


def test_an_outside_image_is_embedded_like_the_file(features_file, tmp_path, capsys):
    from PIL import Image
    from sklearn.datasets import load_digits

    image = (
        load_digits().images[17].astype(np.uint8)
    )  # [8, 8], the file's image #17, pixels 0…16 as digits has them
    Image.fromarray(image).convert("RGB").save(tmp_path / "q.png")
    assert (
        main(
            [
                "neighbors",
                str(features_file),
                "--query",
                str(tmp_path / "q.png"),
                "-k",
                "3",
                "--out",
                str(tmp_path / "g.png"),
            ]
        )
        == 0
    )
    data = feats.read(features_file)
    first = int(capsys.readouterr().out.splitlines()[2].split()[1])
    assert data["labels"][first] == data["labels"][17]


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_maps(features_file, tmp_path, method):
    out = tmp_path / f"{method}.png"
    assert (
        main(["neighbors", str(features_file), "--map", "--method", method, "--out", str(out)]) == 0
    )
    assert out.stat().st_size > 20_000


def test_mistakes(trained, features_file, tmp_path, capsys):
    assert (
        main(
            [
                "features",
                str(trained / "tiny.cnn"),
                "--at",
                "bdoy",
                "--data",
                "digits",
                "--out",
                str(tmp_path / "f.npz"),
            ]
        )
        == 1
    )
    assert "--at names no layer `bdoy` of `tiny`" in capsys.readouterr().err
    assert main(["neighbors", str(features_file), "--query", "5000"]) == 2
    assert "out of range: the file holds 1,797 images" in capsys.readouterr().err
    (tmp_path / "x.npz").write_bytes(b"nope")
    assert main(["neighbors", str(tmp_path / "x.npz"), "--query", "1"]) == 1
