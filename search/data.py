"""Datasets for search: a spec string → normalised train/validation tensors.

Input: a spec (`digits`, `cifar10:DIR`, `folder:DIR`, `npz:FILE`), an optional square `size`, a
seed and a validation fraction. Output: a `Dataset` whose images are float32 `[N, C, H, W]`,
standardised per channel with the *training* part's mean and std, and whose labels are int64 in
`0..num_classes-1`.

Invariants:
- the split is a pure function of (labels, seed, val_fraction): the same seed gives the same split;
- the split is stratified: each class with at least two samples puts `round(n * val_fraction)` of
  them (at least one, at most n - 1) into validation, so every such class appears in both parts;
- `size` resizes with bilinear interpolation before the statistics are taken.

Errors (all `CnncError`): E0601 a path that does not exist; E0602 a spec or file that cannot be read
as data; E0603 an argument out of range. CIFAR-10 batches are Python pickles, as the format ships:
load them only from a directory you trust.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
import torch.nn.functional as F

from cnnc.dsl.diagnostics import CnncError, error

SPEC_HELP = "expected digits, cifar10:DIR, folder:DIR or npz:FILE"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
CIFAR_SIDE = 32  # CIFAR-10 rows are 3 × 32 × 32 bytes: all red, then all green, then all blue
RESIZE_CHUNK = 4096  # images resized at once; bounds the peak memory of interpolate


@dataclass(frozen=True, slots=True, eq=False)
class Dataset:
    """A normalised, split data set. `eq=False`: tensors have no single truth value to compare."""

    train_x: torch.Tensor = field(repr=False)  # [N_train, C, H, W] float32, standardised
    train_y: torch.Tensor = field(repr=False)  # [N_train] int64
    val_x: torch.Tensor = field(repr=False)  # [N_val, C, H, W] float32, with the train statistics
    val_y: torch.Tensor = field(repr=False)  # [N_val] int64
    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W), no batch
    name: str  # the spec it came from
    mean: tuple[float, ...]  # per channel, of the raw training images (after resizing)
    std: tuple[float, ...]  # per channel; 1.0 where a channel is constant


@dataclass(frozen=True, slots=True, eq=False)
class _Raw:
    """What a loader returns: every sample, unnormalised and unsplit."""

    x: torch.Tensor  # [N, C, H, W] float32, raw pixel values
    y: torch.Tensor  # [N] int64
    num_classes: int


def load_dataset(
    spec: str, size: int | None = None, seed: int = 0, val_fraction: float = 0.2
) -> Dataset:
    """Load `spec`, resize to `size`×`size` if given, split by `seed`, and standardise."""
    _check_options(size, val_fraction)
    kind, arg = _parse_spec(spec)
    raw = _load_raw(kind, arg, size)
    train_idx, val_idx = split_indices(raw.y, val_fraction, seed)
    if len(val_idx) == 0:
        _fail(
            "E0602",
            f"`{spec}` has too few samples to hold out a validation set",
            "give each class at least two samples",
        )
    mean, std = channel_stats(raw.x[train_idx])
    return Dataset(
        train_x=standardise(raw.x[train_idx], mean, std),  # [N_train, C, H, W]
        train_y=raw.y[train_idx],
        val_x=standardise(raw.x[val_idx], mean, std),  # [N_val, C, H, W]
        val_y=raw.y[val_idx],
        num_classes=raw.num_classes,
        input_shape=tuple(raw.x.shape[1:]),
        name=spec.strip(),
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
    )


# ---------------------------------------------------------------------------------------------
# Spec and options


MAX_CLASSES = 1_048_576  # as many outputs as cnnc allows a layer (E0415's bound on a size)


def _fail(code: str, message: str, *helps: str, notes: tuple[str, ...] = ()) -> NoReturn:
    raise CnncError(error(code, message, None, helps=helps, notes=notes))


def _check_options(size: int | None, val_fraction: float) -> None:
    if size is not None and (not isinstance(size, int) or size < 1):
        _fail(
            "E0603",
            f"`size` must be a positive integer, but got size={size!r}",
            "pass e.g. size=32, or leave it out to keep the images' own size",
        )
    if not 0.0 < val_fraction < 1.0:
        _fail(
            "E0603",
            f"`val_fraction` must lie strictly between 0 and 1, but got {val_fraction!r}",
            "pass e.g. val_fraction=0.2",
        )


def _parse_spec(spec: str) -> tuple[str, str]:
    """`"cifar10:/data"` → `("cifar10", "/data")`; `"digits"` → `("digits", "")`."""
    kind, sep, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "digits" and not sep:
        return kind, ""
    if kind in ("cifar10", "folder", "npz"):
        if not arg:
            _fail("E0602", f"data spec `{spec}` names no path after `{kind}:`", SPEC_HELP)
        return kind, arg
    _fail("E0602", f"unknown data spec `{spec}`", SPEC_HELP)


def _load_raw(kind: str, arg: str, size: int | None) -> _Raw:
    if kind == "folder":
        return load_folder(Path(arg), size)  # resizes each image as it reads it
    loaders = {"digits": lambda _: load_digits(), "cifar10": load_cifar10, "npz": load_npz}
    raw = loaders[kind](arg)
    if size is None:
        return raw
    return _Raw(resize(raw.x, size), raw.y, raw.num_classes)


def _existing(path: Path, kind: str, want_dir: bool) -> Path:
    what = "directory" if want_dir else "file"
    if not path.exists():
        _fail(
            "E0601",
            f"{kind} {what} `{path}` does not exist",
            SPEC_HELP,
            notes=(f"looked in `{path.resolve()}`",),
        )
    if want_dir != path.is_dir():
        _fail("E0602", f"{kind} expects a {what}, but `{path}` is not one", SPEC_HELP)
    return path


# ---------------------------------------------------------------------------------------------
# Loaders: each returns raw pixels [N, C, H, W] and labels [N]


def load_digits() -> _Raw:
    """scikit-learn's bundled 8×8 digits: 1797 grey images, pixel values 0..16, 10 classes."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = torch.from_numpy(bunch.images).float().unsqueeze(1)  # [1797, 1, 8, 8]
    y = torch.from_numpy(bunch.target).long()  # [1797]
    return _Raw(x, y, 10)


def load_cifar10(arg: str) -> _Raw:
    """The python-pickle batches `data_batch_*` in a directory; `test_batch` is left alone."""
    root = _existing(Path(arg), "cifar10", want_dir=True)
    files = sorted(root.glob("data_batch_*"))
    if not files:
        _fail(
            "E0602",
            f"no `data_batch_*` files in cifar10 directory `{root}`",
            "point cifar10: at the extracted `cifar-10-batches-py` directory",
        )
    parts = [_read_cifar_batch(f) for f in files]
    x = torch.cat([p[0] for p in parts])  # [N, 3, 32, 32]
    y = torch.cat([p[1] for p in parts])  # [N]
    return _Raw(x, _checked_labels(y.numpy(), f"cifar10:{root}"), 10)


def _read_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        data = np.asarray(_key(batch, "data"), dtype=np.uint8)  # [n, 3072]
        labels = np.asarray(_key(batch, "labels"), dtype=np.int64)  # [n]
    except (
        pickle.UnpicklingError,
        EOFError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
    ) as exc:
        _fail(
            "E0602",
            f"`{path}` is not a CIFAR-10 python batch ({type(exc).__name__}: {exc})",
            "expected a pickled dict with `data` [n, 3072] uint8 and `labels` [n]",
        )
    if data.ndim != 2 or data.shape[1] != 3 * CIFAR_SIDE**2 or len(labels) != len(data):
        _fail(
            "E0602",
            f"`{path}` holds data {list(data.shape)} and {len(labels)} labels",
            "expected `data` [n, 3072] uint8 and `labels` [n]",
        )
    x = torch.from_numpy(data).float().reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE)  # [n, 3, 32, 32]
    return x, torch.from_numpy(labels)


def _key(batch: dict, name: str):
    """CIFAR pickles written by Python 2 have bytes keys; re-saved ones may have str keys."""
    return batch[name.encode()] if name.encode() in batch else batch[name]


def load_npz(arg: str) -> _Raw:
    """Arrays `x` ([N, H, W], [N, H, W, C] or [N, C, H, W]) and `y` ([N] integer labels)."""
    path = _existing(Path(arg), "npz", want_dir=False)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            x, y = arrays["x"], arrays["y"]
    except KeyError as exc:
        _fail(
            "E0602",
            f"`{path}` lacks the array {exc}",
            "save it with np.savez(path, x=images, y=labels)",
        )
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        _fail(
            "E0602",
            f"`{path}` is not a readable .npz file ({exc})",
            "save it with np.savez(path, x=images, y=labels)",
        )
    images = _channels_first(x, path)  # [N, C, H, W]
    if len(y) != len(images):
        _fail(
            "E0602",
            f"`{path}` has {len(images)} images but {len(y)} labels",
            "`x` and `y` must have the same first dimension",
        )
    labels = _checked_labels(np.asarray(y), f"npz:{path}")
    return _Raw(images, labels, int(labels.max()) + 1)


def _channels_first(x: np.ndarray, path: Path) -> torch.Tensor:
    """[N, H, W] → [N, 1, H, W]; [N, H, W, C] with C ≤ 4 < H → [N, C, H, W]; else taken as NCHW."""
    if x.dtype.kind not in "biuf" or x.ndim not in (3, 4):
        _fail(
            "E0602",
            f"`x` in `{path}` is {x.dtype} with shape {list(x.shape)}",
            "expected numbers shaped [N, H, W], [N, H, W, C] or [N, C, H, W]",
        )
    t = torch.from_numpy(x.astype(np.float32))
    if t.ndim == 3:
        return t.unsqueeze(1)  # [N, 1, H, W]
    if t.shape[-1] <= 4 < t.shape[1]:
        return t.permute(0, 3, 1, 2).contiguous()  # [N, H, W, C] → [N, C, H, W]
    return t  # [N, C, H, W]


def _checked_labels(y: np.ndarray, source: str) -> torch.Tensor:
    """Labels must be a 1-D array of non-negative whole numbers."""
    ok = y.ndim == 1 and y.size > 0 and y.dtype.kind in "biuf"
    ok = ok and bool(np.all(y >= 0)) and bool(np.all(np.mod(y, 1) == 0))
    if not ok:
        _fail(
            "E0602",
            f"labels in `{source}` must be a non-empty 1-D array of integers >= 0",
            notes=(f"got dtype {y.dtype}, shape {list(y.shape)}",),
        )
    top = int(y.max())
    if top >= MAX_CLASSES:  # one output per label up to the largest: a classifier nobody meant
        _fail(
            "E0603",
            f"labels in `{source}` go up to {top:,}: that makes {top + 1:,} classes "
            f"({len(np.unique(y)):,} labels are used), more than cnnc's {MAX_CLASSES:,}",
            "number the classes 0, 1, …, K-1 (e.g. np.unique(y, return_inverse=True)[1])",
        )
    return torch.from_numpy(y.astype(np.int64))


def load_folder(root: Path, size: int | None) -> _Raw:
    """One subfolder per class (sorted names = labels 0, 1, …); images read as RGB.

    Every image is resized to `size`×`size`, or, without `size`, to the first image's size.
    """
    root = _existing(root, "folder", want_dir=True)
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        _fail(
            "E0602",
            f"folder `{root}` has no class subfolders",
            "lay it out as DIR/<class>/<image>.png",
        )
    images, labels = [], []
    for label, class_dir in enumerate(classes):
        files = _image_files(class_dir)
        images += [_read_image(f) for f in files]
        labels += [label] * len(files)
    side = (size, size) if size is not None else tuple(images[0].shape[-2:])
    x = torch.stack([resize(img.unsqueeze(0), *side)[0] for img in images])  # [N, 3, H, W]
    return _Raw(x, torch.tensor(labels, dtype=torch.int64), len(classes))


def _image_files(class_dir: Path) -> list[Path]:
    files = sorted(f for f in class_dir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        _fail(
            "E0602",
            f"class folder `{class_dir}` holds no images",
            f"images must end in one of {', '.join(IMAGE_SUFFIXES)}",
        )
    return files


def _read_image(path: Path) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB"))  # [H, W, 3] uint8
    except (OSError, UnidentifiedImageError) as exc:
        _fail("E0602", f"cannot read image `{path}` ({exc})", "remove or re-save the file")
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float()  # [3, H, W]


# ---------------------------------------------------------------------------------------------
# Resizing, splitting and standardising


def resize(x: torch.Tensor, height: int, width: int | None = None) -> torch.Tensor:
    """Bilinear resize of [N, C, H, W] to [N, C, height, width]; antialiased when shrinking."""
    width = height if width is None else width
    if tuple(x.shape[-2:]) == (height, width):
        return x
    chunks = [
        F.interpolate(c, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        for c in x.split(RESIZE_CHUNK)
    ]
    return torch.cat(chunks)  # [N, C, height, width]


def split_indices(
    y: torch.Tensor, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded stratified split: shuffle each class, hold out its share, shuffle each part again."""
    gen = torch.Generator().manual_seed(seed)
    train, val = [], []
    for cls in torch.unique(y).tolist():
        members = torch.nonzero(y == cls).flatten()  # [n_c]
        members = members[torch.randperm(len(members), generator=gen)]
        n_val = val_count(len(members), val_fraction)
        val.append(members[:n_val])
        train.append(members[n_val:])
    train_idx, val_idx = torch.cat(train), torch.cat(val)
    # a second shuffle so that neither part is ordered by class
    train_idx = train_idx[torch.randperm(len(train_idx), generator=gen)]
    val_idx = val_idx[torch.randperm(len(val_idx), generator=gen)]
    return train_idx, val_idx


def val_count(n: int, val_fraction: float) -> int:
    """How many of a class's `n` samples go to validation: round half up, kept in [1, n - 1]."""
    if n < 2:
        return 0
    return min(n - 1, max(1, int(n * val_fraction + 0.5)))


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population std of [N, C, H, W], in float64; std 0 becomes 1."""
    mean = torch.stack([x[:, c].double().mean() for c in range(x.shape[1])])  # [C]
    std = torch.stack([x[:, c].double().std(correction=0) for c in range(x.shape[1])])  # [C]
    return mean, torch.where(std > 0, std, torch.ones_like(std))


def standardise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std per channel; float32 out."""
    shift = mean.float().view(1, -1, 1, 1)  # [1, C, 1, 1]
    scale = std.float().view(1, -1, 1, 1)  # [1, C, 1, 1]
    return ((x - shift) / scale).contiguous()  # [N, C, H, W]
