"""training/data.py: spec → normalised, stratified, seeded train/validation tensors.

Every fixture is written here into tmp_path: a CIFAR-10-format pickle directory, a folder of PNGs
and .npz files. Images carry their own id in a pixel, so a test can find each sample's original
after the shuffle and check the layout exactly.
"""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from cnnc.dsl.diagnostics import CnncError
from cnnc.training.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NORMALIZATIONS,
    load_dataset,
    normalised,
    val_count,
)

torch.set_num_threads(2)

DIGITS_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]  # sklearn's load_digits


# ---------------------------------------------------------------------------------------------
# Fixtures


def cifar_image(i: int) -> np.ndarray:
    """Image `i` as CIFAR stores it: [3, 32, 32] uint8, with its id at channel 0, pixel (0, 0)."""
    c, h, w = np.meshgrid(np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    img = (i * 7 + c * 50 + h * 3 + w) % 256  # [3, 32, 32]
    img[0, 0, 0] = i
    return img.astype(np.uint8)


@pytest.fixture
def cifar_dir(tmp_path):
    """data_batch_1 and _2 of 20 images each (labels i % 10), plus an ignored test_batch."""
    for b in (1, 2):
        ids = range((b - 1) * 20, b * 20)
        batch = {
            b"batch_label": f"training batch {b} of 2".encode(),
            b"data": np.stack([cifar_image(i).reshape(-1) for i in ids]),  # [20, 3072]
            b"labels": [i % 10 for i in ids],
        }
        (tmp_path / f"data_batch_{b}").write_bytes(pickle.dumps(batch))
    test = {b"data": np.zeros((5, 3072), np.uint8), b"labels": [0] * 5}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(test))
    return tmp_path


CLASS_COLORS = {"ant": (200, 10, 10), "bee": (10, 200, 10), "cat": (10, 10, 200)}


@pytest.fixture
def png_dir(tmp_path):
    """3 classes × 4 PNGs of 6×5 (W×H), one solid colour per class; bee/3 is 9×7 and greyscale."""
    root = tmp_path / "pngs"
    for name, color in CLASS_COLORS.items():
        (root / name).mkdir(parents=True)
        for k in range(4):
            Image.new("RGB", (6, 5), color).save(root / name / f"{k}.png")
    Image.new("L", (9, 7), 77).save(root / "bee" / "3.png")
    (root / "bee" / "notes.txt").write_text("not an image")
    return root


def unnormalise(data, x):
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)  # [1, C, 1, 1]
    std = torch.tensor(data.std).view(1, -1, 1, 1)  # [1, C, 1, 1]
    return x.double() * std + mean  # [N, C, H, W]


def codes(err: CnncError) -> list[str]:
    return [d.code for d in err.diagnostics]


# ---------------------------------------------------------------------------------------------
# digits


def test_digits_shapes_and_stratified_counts():
    data = load_dataset("digits")
    expected_val = [val_count(n, 0.2) for n in DIGITS_CLASS_COUNTS]
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10 and data.name == "digits"
    assert data.train_x.shape == (1438, 1, 8, 8) and data.val_x.shape == (359, 1, 8, 8)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    assert torch.bincount(data.val_y).tolist() == expected_val
    assert (
        torch.bincount(data.train_y) + torch.bincount(data.val_y)
    ).tolist() == DIGITS_CLASS_COUNTS


def test_digits_normalised_with_train_statistics():
    data = load_dataset("digits")
    assert abs(data.train_x.mean().item()) < 1e-5
    assert abs(data.train_x.std(correction=0).item() - 1) < 1e-5
    assert 4.5 < data.mean[0] < 5.3 and 5.8 < data.std[0] < 6.2  # digits pixels lie in 0..16
    raw_val = unnormalise(data, data.val_x)  # [359, 1, 8, 8]: the val images are integers again
    assert torch.allclose(raw_val, raw_val.round(), atol=1e-4)
    assert raw_val.min().round() == 0 and raw_val.max().round() == 16


def test_same_seed_same_split_and_different_seed_different_split():
    a, b, c = (
        load_dataset("digits", seed=3),
        load_dataset("digits", seed=3),
        load_dataset("digits", seed=4),
    )
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y)
    assert not torch.equal(a.val_x, c.val_x)
    assert (
        torch.bincount(a.val_y).tolist() == torch.bincount(c.val_y).tolist()
    )  # stratified either way


def test_val_fraction_changes_the_share():
    data = load_dataset("digits", val_fraction=0.5)
    assert len(data.val_y) == sum(val_count(n, 0.5) for n in DIGITS_CLASS_COUNTS) == 901


def test_size_resizes_bilinearly_before_statistics():
    data = load_dataset("digits", size=32)
    assert data.input_shape == (1, 32, 32) and data.train_x.shape == (1438, 1, 32, 32)
    assert abs(data.train_x.mean().item()) < 1e-5


@pytest.mark.parametrize(
    "n, fraction, expected",
    [(1, 0.2, 0), (2, 0.2, 1), (4, 0.2, 1), (10, 0.2, 2), (12, 0.2, 2), (13, 0.2, 3), (2, 0.9, 1)],
)
def test_val_count_rounds_half_up_and_keeps_both_parts(n, fraction, expected):
    assert val_count(n, fraction) == expected


# ---------------------------------------------------------------------------------------------
# cifar10:DIR


def test_cifar10_reads_batches_in_channel_major_layout(cifar_dir):
    data = load_dataset(f"cifar10:{cifar_dir}")
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    assert len(data.train_y) == 30 and len(data.val_y) == 10  # 4 per class → 1 held out each
    assert torch.bincount(data.val_y, minlength=10).tolist() == [1] * 10
    ids = []
    for x, y in ((data.train_x, data.train_y), (data.val_x, data.val_y)):
        raw = unnormalise(data, x).round().to(torch.int64)  # [n, 3, 32, 32]
        for img, label in zip(raw, y.tolist(), strict=True):
            i = int(img[0, 0, 0])
            assert torch.equal(img, torch.from_numpy(cifar_image(i)).long()) and label == i % 10
            ids.append(i)
    assert sorted(ids) == list(range(40))  # disjoint, complete, test_batch ignored


def test_cifar10_split_is_seeded(cifar_dir):
    a, b = (
        load_dataset(f"cifar10:{cifar_dir}", seed=1),
        load_dataset(f"cifar10:{cifar_dir}", seed=1),
    )
    c = load_dataset(f"cifar10:{cifar_dir}", seed=2)
    assert torch.equal(a.val_x, b.val_x) and not torch.equal(a.val_x, c.val_x)


def test_cifar10_statistics_are_per_channel(cifar_dir):
    data = load_dataset(f"cifar10:{cifar_dir}")
    train_ids = unnormalise(data, data.train_x)[:, 0, 0, 0].round().long().tolist()  # [30]
    originals = np.stack([cifar_image(i) for i in train_ids]).astype(np.float64)  # [30, 3, 32, 32]
    assert np.allclose(data.mean, originals.mean(axis=(0, 2, 3)))
    assert np.allclose(data.std, originals.std(axis=(0, 2, 3)))  # population std
    per_channel = data.train_x.double().mean(dim=(0, 2, 3))  # [3]
    assert torch.allclose(per_channel, torch.zeros(3, dtype=torch.float64), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# folder:DIR


def test_folder_labels_follow_sorted_class_names(png_dir):
    data = load_dataset(f"folder:{png_dir}")
    assert data.input_shape == (3, 5, 6) and data.num_classes == 3
    assert len(data.train_y) == 9 and len(data.val_y) == 3
    assert torch.bincount(data.val_y).tolist() == [1, 1, 1]
    colors = list(CLASS_COLORS.values())
    raw = unnormalise(data, torch.cat([data.train_x, data.val_x])).round()  # [12, 3, 5, 6]
    for img, label in zip(raw, torch.cat([data.train_y, data.val_y]).tolist(), strict=True):
        rgb = tuple(int(v) for v in img[:, 2, 3])
        assert rgb == colors[label] or rgb == (77, 77, 77)  # the grey, resized bee
    assert sum(tuple(int(v) for v in img[:, 2, 3]) == (77, 77, 77) for img in raw) == 1


@pytest.mark.parametrize(
    "how, spec, imagenet",
    [("auto", "folder:{}", True), ("imagenet", "folder:{}", True), ("data", "folder:{}", False)]
    + [("auto", "FOLDER:{}", True), ("auto", "npz:{}", False), ("imagenet", "npz:{}", True)],
)
def test_normalisation_by_the_data_sets_statistics_or_imagenets(png_dir, how, spec, imagenet):
    """`--normalize`: ImageNet's statistics replace the data's own on the same raw pixels."""
    data = load_dataset(f"folder:{png_dir}")
    out = normalised(data, spec.format(png_dir), how)
    if not imagenet:
        assert out is data
        return
    assert out.mean == tuple(255 * v for v in IMAGENET_MEAN)
    assert out.std == tuple(255 * v for v in IMAGENET_STD)
    raw = unnormalise(data, data.train_x)  # [9, 3, 5, 6], pixels 0 … 255
    assert torch.allclose(unnormalise(out, out.train_x), raw, atol=1e-3)
    assert torch.allclose(unnormalise(out, out.val_x), unnormalise(data, data.val_x), atol=1e-3)


def test_imagenet_normalisation_leaves_a_grey_data_set_alone():
    data = load_dataset("digits")
    assert normalised(data, "digits", "imagenet") is data


def test_the_commands_normalize_choices_are_the_data_rooms():
    from cnnc.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    [action] = [a for a in train._actions if a.dest == "normalize"]
    assert action.choices == NORMALIZATIONS and action.default == "auto"


def test_folder_size_resizes_every_image(png_dir):
    data = load_dataset(f"folder:{png_dir}", size=4)
    assert data.input_shape == (3, 4, 4) and data.train_x.shape == (9, 3, 4, 4)


# ---------------------------------------------------------------------------------------------
# npz:FILE


def npz_images() -> np.ndarray:
    """[12, 3, 5, 7] with a distinct value per element."""
    return np.arange(12 * 3 * 5 * 7, dtype=np.float32).reshape(12, 3, 5, 7)


@pytest.mark.parametrize(
    "layout, shape",
    [
        ("nhw", (1, 5, 7)),
        ("nhwc", (3, 5, 7)),
        ("nchw", (3, 5, 7)),
    ],
)
def test_npz_layouts(tmp_path, layout, shape):
    nchw = npz_images()
    x = {"nhw": nchw[:, 0], "nhwc": nchw.transpose(0, 2, 3, 1), "nchw": nchw}[layout]
    y = np.arange(12) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert data.input_shape == shape and data.num_classes == 3
    assert len(data.train_y) + len(data.val_y) == 12
    raw = unnormalise(data, data.train_x).round()  # [n, C, 5, 7]
    expected = torch.from_numpy(nchw[:, : shape[0]]).double()  # [12, C, 5, 7]
    for img, label in zip(raw, data.train_y.tolist(), strict=True):
        i = int(img[0, 0, 0]) // (3 * 5 * 7)  # element (0, 0, 0) of image i is i * 105
        assert torch.equal(img, expected[i]) and label == i % 3


# ---------------------------------------------------------------------------------------------
# Errors


def write_garbage(path):
    path.write_bytes(b"this is not the file you are looking for")
    return path


ERROR_CASES = [
    ("cifar10:{tmp}/missing", "E0601"),
    ("folder:{tmp}/missing", "E0601"),
    ("npz:{tmp}/missing.npz", "E0601"),
    ("mnist", "E0602"),
    ("digits:extra", "E0602"),
    ("cifar10:", "E0602"),
    ("cifar10:{tmp}/empty", "E0602"),
    ("cifar10:{tmp}/bad_cifar", "E0602"),
    ("folder:{tmp}/empty", "E0602"),
    ("folder:{tmp}/garbage.npz", "E0602"),
    ("npz:{tmp}/garbage.npz", "E0602"),
    ("npz:{tmp}/no_y.npz", "E0602"),
    ("npz:{tmp}/empty", "E0602"),
]


@pytest.mark.parametrize("spec, code", ERROR_CASES)
def test_bad_specs_raise_cnnc_errors_with_help(tmp_path, spec, code):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad_cifar").mkdir()
    write_garbage(tmp_path / "bad_cifar" / "data_batch_1")
    write_garbage(tmp_path / "garbage.npz")
    np.savez(tmp_path / "no_y.npz", x=np.zeros((4, 2, 2)))
    with pytest.raises(CnncError) as info:
        load_dataset(spec.format(tmp=tmp_path))
    assert codes(info.value) == [code]
    assert info.value.diagnostics[0].helps or info.value.diagnostics[0].notes


def test_missing_path_error_names_the_path_and_the_accepted_specs(tmp_path):
    with pytest.raises(CnncError) as info:
        load_dataset(f"cifar10:{tmp_path}/nowhere")
    diag = info.value.diagnostics[0]
    assert diag.code == "E0601" and "nowhere" in diag.message and "does not exist" in diag.message
    assert diag.helps == ("expected digits, cifar10:DIR, folder:DIR or npz:FILE",)


@pytest.mark.parametrize("y", [np.array([0, 1, -1, 2]), np.array([0.5, 1, 1, 0]), np.zeros((4, 1))])
def test_npz_rejects_bad_labels(tmp_path, y):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 3, 3)), y=y)
    with pytest.raises(CnncError) as info:
        load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert codes(info.value) == ["E0602"]


@pytest.mark.parametrize(
    "kwargs", [{"size": 0}, {"size": 2.5}, {"val_fraction": 0.0}, {"val_fraction": 1.0}]
)
def test_bad_options_raise_e0603(kwargs):
    with pytest.raises(CnncError) as info:
        load_dataset("digits", **kwargs)
    assert codes(info.value) == ["E0603"]


def test_npz_labels_beyond_any_classifier_are_e0603_before_any_model(tmp_path):
    y = np.zeros(4, dtype=np.int64)
    y[1] = 10**9  # one stray label would make a billion-way Linear
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 3, 3)), y=y)
    with pytest.raises(CnncError) as info:
        load_dataset(f"npz:{tmp_path / 'd.npz'}")
    d = info.value.diagnostics[0]
    assert d.code == "E0603"
    assert d.message.endswith(
        "go up to 1,000,000,000: that makes 1,000,000,001 classes (2 labels are used), "
        "more than cnnc's 1,048,576"
    )
