"""Data sets and checkpoints are data: loading one runs nothing, blocks on nothing, and spends memory
within stated budgets, each refusal a user error (exit 1) before the cost (training/datafiles.py,
compiler/lower/weights.py, training/train.py's resume).

Bombs are crafted to *declare* sizes far above a budget, or the budget is lowered: a test never
allocates what it guards against, and the readers that would expand are made to fail if reached.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
import threading
import zipfile
import zlib

import numpy as np
import pytest
from conftest import run_cli

torch = pytest.importorskip("torch")
from PIL import Image

from cnnc.compiler.lower import weights
from cnnc.dsl.diagnostics import CnncError
from cnnc.training import data as datasets
from cnnc.training import datafiles
from cnnc.training.data import Dataset, load_dataset, split_indices

CANARY = "cnnc-data-canary"


def refusal(spec_or_call, *args, **kwargs) -> str:
    """The one E0602/E0603/E0902 message a load raises (within 30 s: a FIFO must not block it)."""
    result: dict = {}

    def run():
        try:
            call = spec_or_call if callable(spec_or_call) else load_dataset
            call(*((spec_or_call,) if not callable(spec_or_call) else ()), *args, **kwargs)
        except CnncError as exc:
            result["diags"] = exc.diagnostics
        except BaseException as exc:  # noqa: BLE001 — reported below as the test's failure
            result["other"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(30)  # a guard against a hang, not a measurement
    assert not worker.is_alive(), "the loader blocked"
    assert "other" not in result, repr(result.get("other"))
    assert "diags" in result, "the load was accepted"
    (diag,) = result["diags"]
    assert diag.code in ("E0602", "E0603", "E0902") and "\n" not in diag.message
    return diag.message


# ---------------------------------------------------------------------------------------------
# CIFAR-10 batches: a restricted unpickler


class Payload:
    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def cifar_batch(n: int = 4) -> dict:
    data = np.arange(n * 3072, dtype=np.int64).reshape(n, 3072) % 251
    return {
        b"batch_label": b"b",
        b"data": data.astype(np.uint8),
        b"labels": [i % 10 for i in range(n)],
    }


def write_cifar(folder, batch, protocol=pickle.DEFAULT_PROTOCOL, name="data_batch_1"):
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    return folder


def test_a_cifar_label_beyond_its_ten_classes_is_refused(tmp_path):
    """Found by the data fuzzer: label 105 reached the loss (exit 70)."""
    batch = cifar_batch()
    batch[b"labels"] = [0, 1, 105, 3]
    root = write_cifar(tmp_path / "c", batch)
    assert (
        refusal(f"cifar10:{root}")
        == f"labels in `cifar10:{root}` must lie in 0 … 9, but go up to 105"
    )


@pytest.mark.parametrize(
    "payload",
    [
        Payload(os.system, f"touch {CANARY}"),
        Payload(eval, f"open({CANARY!r}, 'w')"),
        Payload(open, CANARY, "w"),
        Payload(__import__("subprocess").call, ["touch", CANARY]),
    ],
)
@pytest.mark.parametrize("where", ["data", "labels", "extra"])
def test_a_cifar_payload_runs_nothing_and_is_a_one_line_error(
    tmp_path, monkeypatch, payload, where
):
    monkeypatch.chdir(tmp_path)
    batch = cifar_batch()
    if where == "labels":
        batch[b"labels"] = [0, 1, payload, 3]
    else:
        batch[b"data" if where == "data" else b"filenames"] = payload
    root = write_cifar(tmp_path / "c", batch)
    message = refusal(f"cifar10:{root}")
    assert message.startswith(
        f"`{root / 'data_batch_1'}` is not a CIFAR-10 python batch (UnpicklingError: `"
    )
    assert message.endswith("` is not allowed in a data file)")
    assert not (tmp_path / CANARY).exists()


def python2_style(blob: bytes) -> bytes:
    """A protocol-2 pickle naming numpy's modules as numpy 1 (and the CIFAR files) do."""
    return blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


@pytest.mark.parametrize("protocol", [2, 4, 5, "numpy1"])
@pytest.mark.parametrize("keys", [bytes, str])
def test_cifar_batches_of_every_protocol_and_key_kind_load_exactly(tmp_path, protocol, keys):
    batch = {k if keys is bytes else k.decode(): v for k, v in cifar_batch(20).items()}
    blob = pickle.dumps(batch, protocol=2 if protocol == "numpy1" else protocol)
    (tmp_path / "data_batch_1").write_bytes(python2_style(blob) if protocol == "numpy1" else blob)
    raw = datasets.load_cifar10(str(tmp_path))
    assert torch.equal(raw.x.reshape(20, 3072), torch.from_numpy(cifar_batch(20)[b"data"]).float())
    assert raw.y.tolist() == [i % 10 for i in range(20)]


@pytest.mark.parametrize(
    "data, expected",
    [
        (np.array([[1] * 3072] * 2, dtype=object), "dtype 'O8' is not numeric"),
        (np.zeros((2, 3072), dtype=[("a", "u1")]), "dtype 'V1' is not numeric"),
        (np.zeros((2, 3072), dtype=np.float32), "holds float32 [2, 3072] `data`"),
        ([[0] * 3072] * 2, "holds a list of 2 `data`"),
    ],
)
def test_cifar_data_must_be_a_uint8_array(tmp_path, data, expected):
    root = write_cifar(tmp_path / "c", {b"data": data, b"labels": [0, 1]})
    assert expected in refusal(f"cifar10:{root}")


def test_a_cifar_batch_over_its_budget_is_refused_before_unpickling(tmp_path, monkeypatch):
    root = write_cifar(tmp_path / "c", cifar_batch())
    monkeypatch.setattr(datafiles, "MAX_PICKLE_BYTES", 1000)
    monkeypatch.setattr(datafiles._Restricted, "load", lambda self: pytest.fail("unpickled"))
    size = (root / "data_batch_1").stat().st_size
    assert refusal(f"cifar10:{root}").endswith(
        f"is {size:,} bytes, more than cnnc's 1,000 for a CIFAR batch"
    )


# ---------------------------------------------------------------------------------------------
# Entries that are not regular files: FIFOs, links, devices, folders


def special(path, what: str):
    if what == "fifo":
        os.mkfifo(path)
    elif what == "passwd":
        os.symlink("/etc/passwd", path)
    elif what == "dev":
        os.symlink("/dev/zero", path)
    else:
        path.mkdir()
    return path


def png_folder(tmp_path, count: int = 3, size=(6, 5)):
    root = tmp_path / "pngs"
    for name in ("ant", "bee"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            Image.new("RGB", size, (40 * k, 100, 200)).save(root / name / f"{k}.png")
    return root


@pytest.mark.parametrize(
    "what, said",
    [
        ("fifo", "a FIFO (named pipe)"),
        ("passwd", "a symbolic link"),
        ("dev", "a symbolic link"),
        ("dir", "a folder"),
    ],
)
def test_an_image_entry_that_is_no_regular_file_is_refused_by_type(tmp_path, what, said):
    root = png_folder(tmp_path)
    special(root / "bee" / "x.png", what)
    assert refusal(f"folder:{root}") == (
        f"`{root / 'bee' / 'x.png'}` is {said}, not an image file: cnnc "
        "reads only the regular files inside the data folder"
    )


@pytest.mark.parametrize("what", ["fifo", "passwd", "dev"])
def test_cifar_and_npz_entries_that_are_no_regular_file_are_refused(tmp_path, what):
    (tmp_path / "c").mkdir()
    special(tmp_path / "c" / "data_batch_1", what)
    assert "not a regular file" in refusal(f"cifar10:{tmp_path / 'c'}")
    if what == "fifo":
        assert refusal(f"npz:{special(tmp_path / 'd.npz', what)}").endswith(
            "is a FIFO (named pipe), not a regular file: cnnc reads only the data set's own files"
        )


def test_a_linked_class_folder_is_refused_and_named_printably(tmp_path, capsys):
    root = png_folder(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (6, 5)).save(outside / "0.png")
    os.symlink(outside, root / "cat\x1b[2J")
    message = refusal(f"folder:{root}")
    assert message == (
        f"class folder `cat\\x1b[2J` of `{root}` is a symbolic link: cnnc reads only the files "
        "inside the data folder"
    )
    net = tmp_path / "n.cnn"
    net.write_text("network n {\n  input [3, 5, 6]\n  return input -> Flatten -> Linear(3)\n}\n")
    code, _, err = run_cli(
        ["train", net, "--data", f"folder:{root}", "--epochs", "1", "--out", tmp_path / "r"], capsys
    )
    assert code == 1 and "cat\\x1b[2J" in err and "\x1b" not in err


def test_features_refuses_a_linked_class_folder_and_says_so(tmp_path, capsys):
    root = png_folder(tmp_path, size=(8, 8))
    os.symlink(root / "ant", root / "cat")
    code, _, err = run_cli(
        [
            "features",
            tiny_net(tmp_path, "[3, 8, 8]", classes=3),
            "--at",
            "fc",
            "--data",
            f"folder:{root}",
            "--out",
            tmp_path / "f.npz",
        ],
        capsys,
    )
    assert code == 1 and not (tmp_path / "f.npz").exists()
    assert f"error[E0602]: class folder `cat` of `{root}` is a symbolic link" in err


def test_an_eps_file_named_png_is_not_handed_to_ghostscript(tmp_path):
    root = png_folder(tmp_path)
    (root / "bee" / "x.png").write_bytes(
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    )
    assert refusal(f"folder:{root}").startswith(
        f"cannot read image `{root / 'bee' / 'x.png'}` (UnidentifiedImageError"
    )


# ---------------------------------------------------------------------------------------------
# Image budgets: headers before pixels, resized as they load, to the network's input


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width × height RGB pixels and carries almost none (a bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "width, height, why",
    [
        (6000, 6000, "its header declares 6,000 × 6,000 pixels"),
        (100_000, 100_000, "its header declares more pixels than even PIL allows"),
    ],
)
def test_a_png_bomb_is_refused_from_its_header(tmp_path, monkeypatch, width, height, why):
    root = png_folder(tmp_path)
    (root / "ant" / "bomb.png").write_bytes(png_header_only(width, height))
    convert = Image.Image.convert
    monkeypatch.setattr(
        Image.Image,
        "convert",
        lambda img, *a: pytest.fail("decoded") if img.size[0] > 100 else convert(img, *a),
    )
    assert refusal(f"folder:{root}", size=8) == (
        f"image `{root / 'ant' / 'bomb.png'}` is too large to read: "
        f"{why}, and cnnc reads at most 33,554,432 pixels an image"
    )


def test_images_are_resized_to_the_given_side_not_the_first_images(tmp_path):
    root = png_folder(tmp_path)
    Image.new("RGB", (300, 200), (9, 9, 9)).save(root / "ant" / "00-large.png")  # sorts first
    data = load_dataset(f"folder:{root}", size=(4, 6))
    assert data.input_shape == (3, 4, 6) and len(data.train_x) + len(data.val_x) == 7


def test_a_large_image_reaches_the_float_resize_reduced_per_axis(tmp_path, monkeypatch):
    root = png_folder(tmp_path)
    Image.new("RGB", (4000, 3), (9, 9, 9)).save(root / "ant" / "wide.png")
    Image.new("RGB", (2, 700), (9, 9, 9)).save(root / "bee" / "tall.png")
    seen, resize = [], datasets.resize
    monkeypatch.setattr(
        datasets, "resize", lambda x, *side: seen.append(tuple(x.shape[-2:])) or resize(x, *side)
    )
    load_dataset(f"folder:{root}", size=(8, 6))
    # box factors 4000 // 12 = 333 and 700 // 16 = 43, each axis its own: 4000 → 13, 700 → 17 (rounded up)
    assert sorted(set(seen)) == [(3, 13), (5, 6), (17, 2)]


def test_a_data_set_over_its_value_budget_is_refused_before_any_pixel(tmp_path, monkeypatch):
    root = png_folder(tmp_path)
    monkeypatch.setattr(datafiles, "MAX_DATA_VALUES", 6 * 3 * 32 * 32 - 1)
    monkeypatch.setattr(datafiles, "read_image", lambda *a, **k: pytest.fail("an image was read"))
    assert refusal(f"folder:{root}", size=32) == (
        f"`{root}` would load 18,432 values as 6 images of [3, 32, 32], "
        "more than cnnc's budget of 18,431 (4 GiB as float32)"
    )


def test_the_decoded_pixels_of_a_data_set_are_budgeted(tmp_path, monkeypatch):
    root = png_folder(tmp_path)  # 6 images of 6 × 5 pixels
    monkeypatch.setattr(datafiles, "MAX_DECODED_PIXELS", 5 * 30 + 29)
    assert refusal(f"folder:{root}", size=4) == (
        f"decoding `{root / 'bee' / '2.png'}` would pass cnnc's budget "
        "of 179 pixels for the images of one data set"
    )


# ---------------------------------------------------------------------------------------------
# npz: declared sizes before expansion; numbers only; finite


def npz_with_member(
    path, name: str, header_shape, dtype: str, body: bytes = b"", deflate: bool = False
):
    """An .npz whose member `name` has a hand-written .npy header (the declared shape) and `body`."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": dtype, "fortran_order": False, "shape": header_shape}
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as z:
        z.writestr(f"{name}.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + body)
        buf = io.BytesIO()
        np.save(buf, np.zeros(4, np.int64))
        z.writestr("y.npy" if name == "x" else "x.npy", buf.getvalue())
    return path


def test_an_npz_declaring_far_more_than_the_budget_is_refused_unread(tmp_path, monkeypatch):
    path = npz_with_member(tmp_path / "bomb.npz", "x", (1 << 20, 3, 1024, 1024), "<f4")
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: pytest.fail("expanded"))
    assert refusal(f"npz:{path}").startswith(
        f"`x` in `{path}` declares [1048576, 3, 1024, 1024] float32 ("
    )
    assert refusal(f"npz:{path}").endswith(
        "unpacked), more than cnnc's budget of 1,073,741,824 values"
    )


def test_an_npz_member_that_unpacks_beyond_its_header_is_a_zip_bomb(tmp_path, monkeypatch):
    path = npz_with_member(
        tmp_path / "bomb.npz", "x", (4, 2, 2), "|u1", b"\0" * (1 << 20), deflate=True
    )
    assert path.stat().st_size < 5000  # a megabyte of zeros, deflated
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: pytest.fail("expanded"))
    assert (
        "declares [4, 2, 2] uint8 (1,048,704 bytes unpacked), more than cnnc's budget"
        in refusal(f"npz:{path}")
    )


def test_an_npz_member_compressed_like_a_bomb_is_refused_unread(tmp_path, monkeypatch):
    path = npz_with_member(
        tmp_path / "bomb.npz", "x", (1 << 16, 1, 4, 4), "<f4", b"\0" * (1 << 20), deflate=True
    )
    monkeypatch.setattr(datafiles, "RATIO_FROM", 1 << 19)
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: pytest.fail("expanded"))
    message = refusal(f"npz:{path}")
    assert message.startswith(f"`x` in `{path}` unpacks ") and message.endswith(
        "packed bytes, more than the 200 times cnnc allows (a zip bomb?)"
    )


@pytest.mark.parametrize(
    "x, said",
    [
        (np.array([[[1]]] * 4, dtype=object), "`x` in `{path}` is object, not numbers"),
        (np.zeros((4, 0, 5, 5)), "`x` in `{path}` is float64 with shape [4, 0, 5, 5]"),
        (np.zeros((4, 5, 5, 0)), "`x` in `{path}` is float64 with shape [4, 5, 5, 0]"),
        (
            np.full((4, 3, 3), np.nan),
            "`x` in `{path}` holds 36 values that are NaN, infinite or beyond ±1e+30",
        ),
        (
            np.array([[[np.inf]]] * 4),
            "`x` in `{path}` holds 4 values that are NaN, infinite or beyond ±1e+30",
        ),
        (
            np.full((4, 2, 2), 1e300),
            "`x` in `{path}` holds 16 values that are NaN, infinite or beyond ±1e+30",
        ),
    ],
)
def test_npz_images_must_be_finite_numbers_of_some_size(tmp_path, x, said):
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=np.arange(4) % 2)
    assert refusal(f"npz:{path}").startswith(said.format(path=path))


def test_a_million_distinct_labels_split_linearly(tmp_path):
    y = np.repeat(np.arange(200_000), 2)  # 200 k classes of two samples
    np.savez(tmp_path / "d.npz", x=np.zeros((len(y), 1, 1), np.uint8), y=y)
    data = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert data.num_classes == 200_000 and len(data.train_y) == len(data.val_y) == 200_000
    assert sorted(data.val_y.tolist()) == list(range(200_000))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_the_split_is_stratified_seeded_and_shuffled_within_each_class(seed):
    y = torch.randint(0, 30, (500,), generator=torch.Generator().manual_seed(seed))
    y[:3] = torch.tensor([31, 32, 33])  # classes of one sample: training only
    train, val = split_indices(y, 0.2, seed)
    assert sorted(torch.cat([train, val]).tolist()) == list(range(500))
    counts = torch.bincount(y, minlength=34)
    assert torch.bincount(y[val], minlength=34).tolist() == [
        datasets.val_count(n, 0.2) for n in counts.tolist()
    ]
    again, other = split_indices(y, 0.2, seed), split_indices(y, 0.2, seed + 1)
    assert torch.equal(again[1], val) and not torch.equal(other[1], val)
    assert datasets.val_counts(counts, 0.2).tolist() == [
        datasets.val_count(n, 0.2) for n in counts.tolist()
    ]
    firsts = {
        int(v) for v in val if y[v] == y[val[0]]
    }  # held-out members are not the class's first ones
    assert firsts != set(torch.nonzero(y == y[val[0]]).flatten()[: len(firsts)].tolist())


# ---------------------------------------------------------------------------------------------
# Training that cannot train: no step, non-finite values


def tiny_net(tmp_path, shape="[1, 8, 8]", classes=2):
    net = tmp_path / "tiny.cnn"
    net.write_text(
        f"network tiny {{\n    input {shape}\n    return in -> Conv(4, 3, pad = 1) -> BatchNorm -> ReLU"
        f" -> GlobalAvgPool -> Flatten -> fc: Linear({classes})\n}}\n"
    )
    return net


def test_train_with_fewer_images_than_a_batch_is_a_user_error(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).random((10, 8, 8)), y=np.arange(10) % 2)
    code, _, err = run_cli(
        [
            "train",
            tiny_net(tmp_path),
            "--data",
            f"npz:{tmp_path / 'd.npz'}",
            "--epochs",
            "1",
            "--out",
            tmp_path / "run",
        ],
        capsys,
    )
    assert code == 1
    assert (
        f"error[E0603]: `npz:{tmp_path / 'd.npz'}` has 8 training and 2 validation images: fewer than "
        "--batch-size 64, so an epoch would make no training step"
    ) in err
    assert "= help: lower --batch-size to at most 8, or add images" in err


def nan_dataset() -> Dataset:
    x = torch.zeros(8, 1, 8, 8)
    x[3, 0, 2, 2] = float("nan")
    y = torch.arange(8) % 2
    return Dataset(x, y, x[:2].clone(), y[:2], 2, (1, 8, 8), "made", (0.0,), (1.0,))


def test_non_finite_inputs_are_user_errors_in_train_and_the_search_evaluator(tmp_path):
    import cnnc
    from cnnc.search.evaluators.train import train_and_evaluate
    from cnnc.training.train import TrainOptions, train_run

    said = "`made`'s training images hold 1 values that are NaN or infinite: training on them gives a NaN loss"
    model = cnnc.load(tiny_net(tmp_path), seed=0)
    assert (
        refusal(train_run, model, nan_dataset(), TrainOptions(epochs=1, batch_size=4), tmp_path)
        == said
    )
    assert refusal(train_and_evaluate, model, nan_dataset(), epochs=1) == said
    one = Dataset(
        torch.zeros(1, 1, 8, 8),
        torch.zeros(1, dtype=torch.int64),
        torch.zeros(1, 1, 8, 8),
        torch.zeros(1, dtype=torch.int64),
        2,
        (1, 8, 8),
        "one",
        (0.0,),
        (1.0,),
    )
    assert refusal(train_and_evaluate, model, one, epochs=1) == (
        "`one` has 1 training and 1 validation images: training needs two training images for one step "
        "(BatchNorm needs two a batch)"
    )


# ---------------------------------------------------------------------------------------------
# Checkpoints


def saved(tmp_path, state, name="w.pt"):
    torch.save(state, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize(
    "make, said",
    [
        (lambda: torch.eye(3).to_sparse(), "a sparse_coo tensor"),
        (lambda: torch.empty(3, device="meta"), "a tensor without data (on device `meta`)"),
        (
            lambda: torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.qint8),
            "a quantised tensor",
        ),
        (lambda: torch.ones(2, dtype=torch.complex64), "a complex tensor"),
    ],
)
def test_checkpoint_tensors_that_cannot_load_are_e0902(tmp_path, make, said):
    with pytest.warns() if "quantised" in said else _nothing():
        path = saved(tmp_path, {"fc.weight": make()})
    assert (
        refusal(weights.read_checkpoint, path)
        == f"`{path}` holds {said} at `fc.weight`: cnnc loads plain "
        "dense tensors only"
    )


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def declared_sizes(path, size: int) -> None:
    """Rewrite every central-directory entry's uncompressed size: what a bomb would declare."""
    blob = bytearray(path.read_bytes())
    at = blob.find(b"PK\x01\x02")
    while at != -1:
        blob[at + 24 : at + 28] = struct.pack("<I", size)
        at = blob.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(blob))


def test_a_pt_declaring_more_than_its_budget_is_refused_before_torch_expands_it(
    tmp_path, monkeypatch
):
    path = saved(tmp_path, {"fc.weight": torch.zeros(4)})
    declared_sizes(path, 0xFFFF0000)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("expanded"))
    message = refusal(weights.read_checkpoint, path, budget=1 << 30)
    assert message.startswith(f"`{path}` unpacks to ") and message.endswith(
        " bytes, more than cnnc's budget of 1,073,741,824 bytes for this checkpoint"
    )


def test_a_pt_deflated_like_a_bomb_is_refused_before_torch_expands_it(tmp_path, monkeypatch):
    path = saved(tmp_path, {"fc.weight": torch.zeros(4)})
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data/9", b"\0" * (1 << 21))  # 2 MiB of zeros in a few kB
    monkeypatch.setattr(weights, "MIN_BUDGET", 1 << 22)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("expanded"))
    message = refusal(weights.read_checkpoint, path)
    assert message.startswith(f"`{path}` is not a checkpoint cnnc can read: it unpacks ")
    assert message.endswith("packed bytes (a zip bomb?)")


def test_a_pt_whose_end_record_names_another_disk_is_refused(tmp_path):
    """`zipfile.is_zipfile` itself raises on such an end record (found by the study fuzzer)."""
    path = saved(tmp_path, {"fc.weight": torch.zeros(4)})
    data = bytearray(path.read_bytes())
    locator = data.rindex(b"PK\x06\x07")  # torch writes zip64 end records
    data[locator + 16 : locator + 20] = struct.pack("<I", 2)  # the archive's disks: 2
    path.write_bytes(bytes(data))
    assert refusal(weights.read_checkpoint, path) == (
        f"`{path}` is not a checkpoint cnnc can read: zipfiles that span multiple disks are not supported"
    )


def test_a_pt_made_by_a_newer_zip_version_is_refused(tmp_path):
    """`zipfile` raises NotImplementedError for a member needing a newer version (found by the fuzzer)."""
    path = saved(tmp_path, {"fc.weight": torch.zeros(4)})
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")  # the first central directory entry
    data[central + 6 : central + 8] = struct.pack("<H", 173)  # version needed to extract: 17.3
    path.write_bytes(bytes(data))
    assert (
        refusal(weights.read_checkpoint, path)
        == f"`{path}` is not a checkpoint cnnc can read: zip file version 17.3"
    )


def test_a_network_sizes_its_checkpoint_budget(tmp_path):
    model = torch.nn.Linear(1000, 1000)  # 4 MB of weights: the floor of 1 GiB applies
    assert weights.budget_for(model) == 1 << 30
    assert weights.budget_for(torch.nn.Embedding(100_000, 1000)) == 4 * 4 * 10**8


@pytest.mark.parametrize("what", ["fifo", "passwd"])
def test_a_run_checkpoint_that_is_no_regular_file_is_refused_on_resume(resumable, what):
    from cnnc.training.train import restore

    model, opt, schedule, options, path = resumable
    path.unlink()
    special(path, what)
    said = "a FIFO (named pipe)" if what == "fifo" else "a symbolic link"
    assert (
        refusal(restore, path, model, opt, schedule, options)
        == f"`{path}` is {said}, not a checkpoint file"
    )


@pytest.mark.parametrize("what", ["fifo", "dev"])
def test_a_checkpoint_that_is_no_regular_file_is_refused(tmp_path, what):
    path = special(tmp_path / "w.pt", what)
    said = "FIFO (named pipe)" if what == "fifo" else "device"
    assert refusal(weights.read_checkpoint, path) == f"`{path}` is a {said}, not a checkpoint file"


def test_a_torchscript_archive_and_a_lying_safetensors_header_are_e0902(tmp_path):
    script = tmp_path / "ts.pt"
    with pytest.warns(FutureWarning):
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), script)
    assert refusal(weights.read_checkpoint, script).startswith(
        f"`{script}` is not a checkpoint cnnc can read: "
    )
    lying = tmp_path / "w.safetensors"
    header = b'{"w":{"dtype":"F32","shape":[1000000000],"data_offsets":[0,4000000000]}}'
    lying.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    assert refusal(weights.read_checkpoint, lying).startswith(
        f"`{lying}` is not a checkpoint cnnc can read: "
    )


# ---------------------------------------------------------------------------------------------
# train --resume: a checkpoint.pt of another run


@pytest.fixture
def resumable(tmp_path):
    """A network, its optimiser and schedule as `train_run` makes them, and a real checkpoint."""
    import cnnc
    from cnnc.training.loop import Schedule, make_optimizer
    from cnnc.training.train import METRICS, TrainOptions, save_checkpoint

    model = cnnc.load(tiny_net(tmp_path), seed=0)
    options = TrainOptions(epochs=3, batch_size=4)
    opt = make_optimizer(model, options)
    model(torch.ones(4, 1, 8, 8)).sum().backward()
    opt.step()
    schedule = Schedule(opt, options, steps_per_epoch=2)
    schedule.step_count = 2
    row = dict.fromkeys(METRICS, 1.0) | {"epoch": 1}  # a history row as `train_run` records it
    save_checkpoint(tmp_path / "checkpoint.pt", model, opt, schedule, options, [row])
    return model, opt, schedule, options, tmp_path / "checkpoint.pt"


def test_a_real_checkpoint_resumes(resumable):
    from cnnc.training.train import restore

    model, opt, schedule, options, path = resumable
    rows, epoch = restore(path, model, opt, schedule, options)
    assert epoch == 1 and len(rows) == 1 and schedule.step_count == 2


FOREIGN = [
    (lambda s: s["model"], "it lacks the fields `cnnc train` writes"),
    (lambda s: s | {"epoch": True}, "it lacks the fields `cnnc train` writes"),
    (lambda s: s | {"rows": []}, "its history (0 rows) does not match its epoch (1)"),
    (
        lambda s: s | {"rows": [s["rows"][0] | {"lr": "x"}]},
        "its history (1 rows) does not match its epoch (1)",
    ),
    (
        lambda s: s | {"step": 5},
        "it is after epoch 1, step 5, but this run has 3 epochs of 2 steps",
    ),
    (lambda s: s | {"epoch": 4, "rows": s["rows"] * 4, "step": 8}, "it is after epoch 4, step 8"),
    (lambda s: s | {"model": {"w": torch.zeros(2)}}, "its weights are not this network's"),
    (
        lambda s: s | {"model": s["model"] | {"fc.bias": torch.zeros(7)}},
        "its weights are not this network's",
    ),
    (
        lambda s: s | {"optimizer": {"state": {}, "param_groups": []}},
        "its optimiser is not this run's",
    ),
    (
        lambda s: (
            s
            | {
                "optimizer": s["optimizer"]
                | {"param_groups": [s["optimizer"]["param_groups"][0] | {"lr": "x"}]}
            }
        ),
        "its optimiser is not this run's",
    ),
    (
        lambda s: (
            s | {"optimizer": s["optimizer"] | {"state": {0: {"momentum_buffer": torch.zeros(9)}}}}
        ),
        "its optimiser's state does not fit",
    ),
    (
        lambda s: s | {"optimizer": s["optimizer"] | {"state": {99: {}}}},
        "its optimiser's state does not fit",
    ),
]


@pytest.mark.parametrize("change, said", FOREIGN)
def test_a_foreign_checkpoint_on_resume_is_a_user_error(resumable, change, said):
    from cnnc.training.train import restore

    model, opt, schedule, options, path = resumable
    torch.save(change(torch.load(path, weights_only=True)), path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    message = refusal(restore, path, model, opt, schedule, options)
    assert (
        message.startswith(f"--resume: `{path}` is not a checkpoint of this run: ")
        and said in message
    )
    assert all(
        torch.equal(before[k], v) for k, v in model.state_dict().items()
    )  # nothing half-loaded


# ---------------------------------------------------------------------------------------------
# The audit: loading each kind of data and checkpoint runs no process, opens nothing outside the
# files it was pointed at, and imports nothing (the same kind, loaded once before, did the lazy
# imports); a hostile file of each kind is refused on the way.

AUDIT = r"""
import json, os, sys
from pathlib import Path
import numpy as np, torch
from cnnc.compiler.lower.weights import read_checkpoint
from cnnc.dsl.diagnostics import CnncError
from cnnc.training.data import load_dataset
from cnnc.training.features import read
from cnnc.training.loop import Schedule, make_optimizer
from cnnc.training.train import TrainOptions, restore


def refuse(call):
    try:
        call()
    except CnncError:
        return
    raise AssertionError("a hostile file was accepted")


def resume(run):
    model = torch.nn.Linear(4, 2)
    options = TrainOptions(epochs=2, batch_size=2)
    opt = make_optimizer(model, options)
    restore(run / "checkpoint.pt", model, opt, Schedule(opt, options, 1), options)


ACTS = {
    "digits": lambda d: load_dataset("digits"),
    "cifar10": lambda d: (load_dataset(f"cifar10:{d}/cifar"), refuse(lambda: load_dataset(f"cifar10:{d}/cifar_evil"))),
    "folder": lambda d: (load_dataset(f"folder:{d}/pngs", size=8),
                         refuse(lambda: load_dataset(f"folder:{d}/hostile", size=8))),
    "npz": lambda d: (load_dataset(f"npz:{d}/d.npz"), refuse(lambda: load_dataset(f"npz:{d}/evil.npz"))),
    "pt": lambda d: (read_checkpoint(d / "w.pt"), refuse(lambda: read_checkpoint(d / "evil.pt"))),
    "safetensors": lambda d: (read_checkpoint(d / "w.safetensors"),
                              refuse(lambda: read_checkpoint(d / "evil.safetensors"))),
    "resume": lambda d: (resume(d / "run"), refuse(lambda: resume(d / "run_evil"))),
    "features": lambda d: (read(d / "f.npz"), refuse(lambda: read(d / "evil.npz"))),
    "sanity": lambda d: (__import__("tabnanny" if d.name == "act" else "pyclbr"), os.system("true")),
}
WATCHED = ("open", "os.", "subprocess.", "shutil.", "socket.", "ctypes.", "pty.", "webbrowser.", "import", "exec")
events, active = [], [False]
sys.addaudithook(lambda event, args: events.append((event, repr(args[0] if event == "import" else args)[:300]))
                 if active[0] and event.startswith(WATCHED) else None)
result = {}
for kind, act in ACTS.items():
    act(Path(sys.argv[1]))  # warm: the kind's lazy imports, on a copy
    events.clear()
    active[0] = True
    act(Path(sys.argv[2]))
    active[0] = False
    result[kind] = list(events)
print(json.dumps(result))
"""


def hostile_files(d):
    """Every kind of good file the audit loads, and a hostile one beside it, in folder `d`."""
    d.mkdir()
    write_cifar(d / "cifar", cifar_batch(20))
    write_cifar(
        d / "cifar_evil", cifar_batch(4) | {b"filenames": Payload(os.system, f"touch {CANARY}")}
    )
    png_folder(d)
    hostile = png_folder(d / "h")
    os.symlink("/etc/passwd", hostile / "bee" / "x.png")
    hostile.rename(d / "hostile")
    np.savez(
        d / "d.npz", x=np.arange(10 * 16, dtype=np.uint8).reshape(10, 4, 4), y=np.arange(10) % 2
    )
    np.savez(
        d / "evil.npz",
        x=np.array([[[Payload(os.system, "true")]]] * 4, dtype=object),
        y=np.zeros(4),
    )
    torch.save({"w": torch.ones(3)}, d / "w.pt")
    (d / "evil.pt").write_bytes(pickle.dumps({"w": Payload(os.system, f"touch {CANARY}")}))
    from safetensors.torch import save_file

    save_file({"w": torch.ones(3)}, str(d / "w.safetensors"))
    header = b'{"w":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}'
    (d / "evil.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    run_checkpoint(d / "run")
    run_checkpoint(d / "run_evil", epoch=True)
    np.savez_compressed(
        d / "f.npz",
        features=np.ones((2, 3), np.float32),
        labels=np.zeros(2, np.int64),
        split=np.zeros(2, np.int8),
        paths=np.array(["a", "b"]),
        thumbs=np.zeros((2, 2, 2, 3), np.uint8),
        meta=np.array("{}"),
    )
    np.savez(d / "evil.npz", features=np.array([Payload(os.system, "true")], dtype=object))


def run_checkpoint(run, epoch=False):
    from cnnc.training.loop import Schedule, make_optimizer
    from cnnc.training.train import METRICS, TrainOptions, save_checkpoint

    run.mkdir()
    model = torch.nn.Linear(4, 2)
    options = TrainOptions(epochs=2, batch_size=2)
    opt = make_optimizer(model, options)
    schedule = Schedule(opt, options, 1)
    schedule.step_count = 1
    row = dict.fromkeys(METRICS, 0.5) | {"epoch": True if epoch else 1}
    save_checkpoint(run / "checkpoint.pt", model, opt, schedule, options, [row])


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    """Per kind, the audited events while a good file loads and a hostile one is refused."""
    import json
    import subprocess
    import sys

    from conftest import ROOT

    base = tmp_path_factory.mktemp("audit")
    for name in ("warm", "act"):
        hostile_files(base / name)
    done = subprocess.run(
        [sys.executable, "-c", AUDIT, str(base / "warm"), str(base / "act")],
        cwd=base,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (base / CANARY).exists()
    return base / "act", json.loads(done.stdout.strip().splitlines()[-1])


KINDS = ["digits", "cifar10", "folder", "npz", "pt", "safetensors", "resume", "features"]


@pytest.mark.parametrize("kind", KINDS)
def test_loading_runs_nothing_and_opens_only_what_it_was_pointed_at(audit, kind):
    act, events = audit
    import sklearn

    allowed = (str(act),) + ((os.path.dirname(sklearn.__file__),) if kind == "digits" else ())
    opened = [
        args for e, args in events[kind] if e == "open" and not re.match(r"\(\d+, ", args)
    ]  # not fdopen
    assert (
        opened and [a for a in opened if not a.startswith(tuple(f"('{p}" for p in allowed))] == []
    )
    assert [e for e, _ in events[kind] if e not in ("open", "os.listdir", "os.scandir")] == []


def test_the_audit_sees_an_import_and_a_process(audit):
    _, events = audit
    seen = {e for e, _ in events["sanity"]}
    assert {
        "import",
        "exec",
        "os.system",
    } <= seen  # a module's import is `import`, then its code's `exec`


# ---------------------------------------------------------------------------------------------
# Through `cnnc train`: each case is exit 1 with one error line


def bomb_folder(tmp_path):
    root = png_folder(tmp_path, size=(8, 8))
    (root / "ant" / "bomb.png").write_bytes(png_header_only(50_000, 50_000))
    return f"folder:{root}"


def fifo_folder(tmp_path):
    root = png_folder(tmp_path, size=(8, 8))
    os.mkfifo(root / "bee" / "x.png")
    return f"folder:{root}"


def no_channels(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((8, 0, 8, 8)), y=np.arange(8) % 2)
    return f"npz:{tmp_path / 'd.npz'}"


def cifar_payload(tmp_path):
    return f"cifar10:{write_cifar(tmp_path / 'c', cifar_batch() | {b'data': Payload(os.system, 'touch ' + CANARY)})}"


@pytest.mark.parametrize(
    "make, said",
    [
        (bomb_folder, "is too large to read: its header declares more pixels than even PIL allows"),
        (fifo_folder, "is a FIFO (named pipe), not an image file"),
        (no_channels, "is float64 with shape [8, 0, 8, 8]"),
        (
            cifar_payload,
            "is not a CIFAR-10 python batch (UnpicklingError: `posix.system` is not allowed",
        ),
    ],
)
def test_train_refuses_hostile_data_with_one_error_line(tmp_path, monkeypatch, capsys, make, said):
    monkeypatch.chdir(tmp_path)
    spec = make(tmp_path)
    code, _, err = run_cli(
        [
            "train",
            tiny_net(tmp_path, "[3, 8, 8]"),
            "--data",
            spec,
            "--epochs",
            "1",
            "--out",
            tmp_path / "run",
        ],
        capsys,
    )
    assert code == 1 and said in err
    assert [line for line in err.splitlines() if line.startswith("error")] == [err.splitlines()[0]]
    assert not (tmp_path / CANARY).exists() and not (tmp_path / "run" / "checkpoint.pt").exists()


def test_train_resume_from_a_foreign_checkpoint_is_exit_1(tmp_path, capsys):
    net = tiny_net(tmp_path, classes=10)
    (tmp_path / "run").mkdir()
    torch.save(
        cnnc_load(net).state_dict(), tmp_path / "run" / "checkpoint.pt"
    )  # model.pt, not a checkpoint
    code, _, err = run_cli(
        ["train", net, "--data", "digits", "--epochs", "1", "--out", tmp_path / "run", "--resume"],
        capsys,
    )
    assert code == 1
    assert err.splitlines()[-3].startswith(
        f"error[E0603]: --resume: `{tmp_path / 'run' / 'checkpoint.pt'}` is not "
        "a checkpoint of this run: it lacks the fields `cnnc train` writes"
    )


def cnnc_load(path):
    import cnnc

    return cnnc.load(path, seed=0)


def test_a_short_data_fuzz_run_finds_no_bug(tmp_path):
    """fuzz/data_mutants.py through the fuzzer's worker: every data kind, each edited, trained on."""
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "fuzz"))
    import run as fuzz_run

    counts = fuzz_run.fuzz(
        seconds=600,
        workers=1,
        seed=3,
        out=tmp_path,
        timeout=30.0,
        memory_mb=800.0,
        limit=16,
        data_share=1.0,
    )
    saved = sorted(p.read_text() for p in (tmp_path / "bugs").glob("*.txt"))
    assert {k: n for k, n in counts.items() if k.startswith("bug")} == {}, "".join(saved[:10])
    assert counts["rejected"] > 0 and counts["trained"] > 0 and counts.total() == 16
