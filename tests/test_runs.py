"""Run folders carry their context (`cnnc train` → features, compile, `cnnc.load` at the run's input
size and preprocessing), and features files are data: hostile ones end in one user error."""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import pytest
from conftest import ROOT

torch = pytest.importorskip("torch")

import cnnc
from cnnc.cli import main
from cnnc.training import features as feats
from cnnc.training.data import load_dataset

sys.path.insert(0, str(ROOT / "fuzz"))

import features_mutants as mutants
import worker as fuzz_worker

TINY = (
    "network tiny {\n    input [1, 8, 8]\n    return in -> conv: Conv(8, 3, pad = 1) -> bn: BatchNorm -> ReLU\n"
    "              -> body: (Conv(16, 3, stride = 2, pad = 1) -> ReLU) -> GlobalAvgPool -> Flatten"
    " -> fc: Linear(10)\n}\n"
)


@pytest.fixture(scope="module")
def run32(tmp_path_factory):
    """`cnnc train` of a tiny network on digits resized to 32×32, one epoch: the run folder."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("run32")
    (root / "tiny.cnn").write_text(TINY)
    assert (
        main(
            [
                "train",
                str(root / "tiny.cnn"),
                "--input",
                "1,32,32",
                "--data",
                "digits",
                "--epochs",
                "1",
                "--out",
                str(root / "run"),
            ]
        )
        == 0
    )
    return root / "run"


def test_run_json_records_input_preprocessing_and_classes(run32):
    record = json.loads((run32 / "run.json").read_text())
    data = load_dataset("digits", size=32, seed=0)
    assert record["input"] == [1, 32, 32] and record["seed"] == 0
    prep = record["preprocessing"]
    assert (
        prep["resize"] == [32, 32] and prep["interpolation"] == "bilinear" and prep["crop"] is None
    )
    assert (
        prep["mean"] == list(data.mean)
        and prep["std"] == list(data.std)
        and prep["pixel_max"] == 16
    )
    assert record["classes"] == [str(i) for i in range(10)]


def test_load_takes_the_run_folder(run32):
    model = cnnc.load(run32)
    assert model.cnnc_graph.input_type.shape == (1, 32, 32)
    assert model.cnnc_weights.ok and len(model.cnnc_weights.loaded) == 11
    assert model.cnnc_run.classes == tuple(str(i) for i in range(10))
    trained = torch.load(run32 / "model.pt", weights_only=True)
    assert torch.equal(model.state_dict()["fc.weight"], trained["fc.weight"])


def test_features_from_the_run_folder_alone(run32, tmp_path, capsys):
    out = tmp_path / "feats"  # no suffix: written exactly there
    assert (
        main(["features", str(run32), "--at", "body", "--out", str(out)]) == 0
    )  # the run's data set
    err = capsys.readouterr().err
    assert (
        f"using run `{run32}`: `tiny` at [1, 32, 32], weights model.pt, resize 32×32 bilinear, mean [4.887], "
        "std [5.181], 10 classes, data `digits`\n"
    ) in err
    assert out.is_file() and not (tmp_path / "feats.npz").exists()
    data = feats.read(out)
    record = json.loads((run32 / "run.json").read_text())
    assert data["meta"]["input"] == [1, 32, 32] and data["features"].shape == (1797, 16)
    model = cnnc.load(run32)
    prep = record["preprocessing"]
    images = feats.load_images("digits", 32, seed=0, mean=prep["mean"], std=prep["std"])
    assert np.allclose(
        data["features"][:64], feats.extract(model, "body", images.x[:64]), atol=1e-5
    )


def test_features_of_a_program_say_their_statistics(run32, tmp_path, capsys):
    out = tmp_path / "f.npz"
    assert (
        main(
            [
                "features",
                str(run32 / "network.cnn"),
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
    data = load_dataset("digits", seed=0)  # at the program's 8×8; the run's 32×32 has std 5.181
    assert (data.mean[0], data.std[0]) == pytest.approx((4.887, 6.019), abs=5e-4)
    assert (
        "standardised with the data set's own statistics: mean [4.887], std [6.019]"
        in capsys.readouterr().err
    )
    assert feats.read(out)["meta"]["input"] == [1, 8, 8]


def test_features_arguments(run32, tmp_path, capsys):
    assert (
        main(
            [
                "features",
                str(run32),
                "--at",
                "body",
                "--data",
                "digits",
                "-k",
                "0",
                "--out",
                str(tmp_path / "f.npz"),
            ]
        )
        == 2
    )
    assert "-k must be at least 1, but got 0" in capsys.readouterr().err
    assert (
        main(["features", str(run32), "--at", "body", "--data", "digits", "--out", "/dev/null"])
        == 1
    )
    assert "error: `/dev/null` is a device: --out needs a regular file" in capsys.readouterr().err
    assert (
        main(["features", str(run32), "--at", "body", "--data", "digits", "--out", str(tmp_path)])
        == 1
    )
    assert (
        f"error: `{tmp_path}` is a folder, but --out needs a file name" in capsys.readouterr().err
    )
    assert not list(tmp_path.iterdir())


def test_a_runs_program_named_as_a_file_is_noted(run32, tmp_path, capsys):
    assert main(["compile", str(run32 / "network.cnn"), "-o", str(tmp_path / "t.py")]) == 0
    captured = capsys.readouterr()
    assert "tiny: 1,434 params, 23.20 K MACs, [1, 8, 8] → [10]" in captured.out
    assert (
        f"note: `{run32 / 'network.cnn'}` is a run's program; its declared input and no weights are used here: "
        f"give the run folder `{run32}`"
    ) in captured.err
    assert main(["compile", str(run32), "-o", str(tmp_path / "t.py")]) == 0
    captured = capsys.readouterr()
    assert "[1, 32, 32] → [10]" in captured.out
    assert (
        "using run" in captured.err and "weights model.pt" not in captured.err
    )  # source holds no weights


def write_features(folder, arrays, meta):
    path = folder / "f.npz"
    path.write_bytes(mutants.pack(arrays, meta))
    return path


def test_class_names_show_escaped(tmp_path, capsys):
    arrays, meta = mutants.seed_arrays()
    meta["classes"] = ["\x1b[31mred\u202e", "b", "c"]
    path = write_features(tmp_path, arrays, meta)
    assert (
        main(["neighbors", str(path), "--query", "0", "-k", "2", "--out", str(tmp_path / "n.png")])
        == 0
    )
    out = capsys.readouterr().out
    assert "query #0 (label \\x1b[31mred\\u202e, digits#0)" in out
    assert "\x1b" not in out and "\u202e" not in out


def test_a_record_of_millions_of_class_names_is_refused_before_it_is_parsed(tmp_path, capsys):
    """Found by the fuzzer: 2 M names (10 MB of JSON, 40 MB as numpy text) grew the reader by 500 MB."""
    arrays, meta = mutants.seed_arrays()
    meta["classes"] = ["x"] * 2_000_000
    path = write_features(tmp_path, arrays, meta)
    assert main(["neighbors", str(path), "--query", "0"]) == 1
    err = capsys.readouterr().err
    assert "`meta` declares 40,000,700 bytes in a member of" in err


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "file",
            "/etc/passwd",
            "names the program `/etc/passwd`, outside its own folder: cnnc does not follow it",
        ),
        ("file", "../tiny.cnn", "names the program `../tiny.cnn`, outside its own folder"),
        ("weights", "/etc/shadow", "names the weights `/etc/shadow`, outside its own folder"),
        ("input", [3, 100_000, 100_000], "records an input of 3×100000×100000, over cnnc's budget"),
        ("std", [0.0], "`std` must be 1 positive numbers (one per channel), but got [0.0]"),
    ],
)
def test_a_features_file_is_not_followed_outside_its_folder(
    tmp_path, capsys, field, value, message
):
    (tmp_path / "tiny.cnn").write_text(mutants.PROGRAM)
    folder = tmp_path / "shared"
    folder.mkdir()
    mutants.seed_file(folder)
    arrays, meta = mutants.seed_arrays()
    path = write_features(folder, arrays, dict(meta, **{field: value}))
    assert main(["neighbors", str(path), "--query", str(folder / "q.png")]) == 1
    err = capsys.readouterr().err
    assert message in err and "root:" not in err


def test_a_query_image_embeds_with_the_recorded_program_or_the_run(run32, tmp_path, capsys):
    folder = tmp_path / "shared"
    folder.mkdir()
    mutants.seed_file(folder)
    arrays, meta = mutants.seed_arrays()
    path = write_features(folder, arrays, meta)
    assert main(["neighbors", str(path), "--query", str(folder / "q.png"), "-k", "2"]) == 0
    assert capsys.readouterr().out.startswith("query image\n")
    arrays["features"] = np.zeros((mutants.N, 16), np.float32)  # as wide as the run's `body`
    path = write_features(folder, arrays, dict(meta, file="/etc/passwd"))
    assert (
        main(
            [
                "neighbors",
                str(path),
                "--query",
                str(folder / "q.png"),
                "--run",
                str(run32),
                "-k",
                "2",
            ]
        )
        == 0
    )
    assert (
        f"embedding the query with `{run32 / 'network.cnn'}` at [1, 32, 32], weights `{run32 / 'model.pt'}`, "
        "mean [4.887], std [5.181], at `body`"
    ) in capsys.readouterr().err


@pytest.mark.parametrize("mutator", mutants.MUTATORS, ids=lambda f: f.__name__)
def test_malformed_features_files_are_user_errors(mutator, tmp_path, capsys):
    mutants.seed_file(tmp_path)
    path = tmp_path / "feats.npz"
    outcomes = set()
    for seed in range(6):
        rng = random.Random(seed)
        path.write_bytes(mutator(rng, *mutants.seed_arrays(rng)))
        outcome, detail = mutants.run_case(path, fuzz_worker.quiet_cli, fuzz_worker.stderr_problem)
        assert not outcome.startswith("bug"), f"{outcome}: {detail}"
        outcomes.add(outcome)
    assert "rejected" in outcomes


@pytest.mark.parametrize(
    ("mutator", "message"),
    [
        (mutants.huge_declared_size, "its arrays declare over 4 GiB"),  # most members at 4 GiB
        (mutants.object_array, "has dtype object"),
        (mutants.huge_header, "declares"),
    ],
)
def test_declared_sizes_are_checked_before_expanding(mutator, message, tmp_path, capsys):
    path = tmp_path / "f.npz"
    rng = random.Random(0)
    path.write_bytes(mutator(rng, *mutants.seed_arrays(rng)))
    assert main(["neighbors", str(path), "--query", "0"]) == 1
    err = capsys.readouterr().err
    assert (
        message in err and len([line for line in err.splitlines() if line.startswith("error")]) == 1
    )


def test_an_onnx_file_from_the_run_folder_runs_alone(run32, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    import shutil

    made = tmp_path / "made"
    made.mkdir()
    assert main(["compile", str(run32), "-o", str(made / "digits.onnx")]) == 0
    captured = capsys.readouterr()
    assert (
        f"using run `{run32}`: `tiny` at [1, 32, 32]" in captured.err
        and "weights: loaded 11 tensors" in captured.err
    )
    assert "[1, 32, 32] → [10]" in captured.out and "weights inside" in captured.out
    assert sorted(p.name for p in made.iterdir()) == ["digits.onnx"]
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    shutil.copy(made / "digits.onnx", alone)
    props = {p.key: p.value for p in onnx.load(str(alone / "digits.onnx")).metadata_props}
    record = json.loads((run32 / "run.json").read_text())
    assert json.loads(props["cnnc.classes"]) == record["classes"]
    assert json.loads(props["cnnc.preprocessing"]) == record["preprocessing"]
    assert json.loads(props["cnnc.input"]) == [1, 32, 32]
    session = ort.InferenceSession(str(alone / "digits.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 1, 32, 32)
    (y,) = session.run(None, {"x": x.numpy()})
    with torch.inference_mode():
        expected = cnnc.load(run32).eval()(x)
    assert torch.allclose(torch.from_numpy(y), expected, atol=1e-4)


def test_a_run_folder_does_not_lead_outside_itself(run32, tmp_path, capsys):
    import shutil

    copy = tmp_path / "shared-run"
    shutil.copytree(run32, copy)
    (copy / "network.cnn").unlink()
    (copy / "network.cnn").symlink_to("/etc/passwd")
    assert main(["compile", str(copy), "-o", str(tmp_path / "x.pt")]) == 1
    err = capsys.readouterr().err
    assert (
        f"`{copy / 'network.cnn'}` is a link out of its run folder: cnnc does not follow it" in err
    )
    assert "root:" not in err
    (copy / "network.cnn").unlink()
    shutil.copy(run32 / "network.cnn", copy)
    (copy / "model.pt").unlink()
    with pytest.raises(cnnc.CnncError, match="holds no model.pt: its training did not finish"):
        cnnc.load(copy)


def test_class_names_of_each_kind_of_data_set(tmp_path):
    from cnnc.training.runs import CIFAR10, class_names

    for name in ("dog", "cat", ".cache", "b\x1bird"):
        (tmp_path / name).mkdir()
    assert class_names(f"folder:{tmp_path}", 3) == (
        "b\x1bird",
        "cat",
        "dog",
    )  # escaped where printed
    assert class_names("cifar10:/data/cifar", 10) == CIFAR10
    assert class_names("digits", 10) == tuple("0123456789")
    assert class_names("npz:x.npz", 3) == ("0", "1", "2")
