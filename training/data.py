"""Data sets for training and search: a spec string → normalised train/validation tensors.

Input: a spec (`digits`, `cifar10:DIR`, `folder:DIR`, `npz:FILE`), an optional `size` (a side, or
(height, width): the network's input), a seed and a validation fraction. Output: a `Dataset` whose
images are float32 `[N, C, H, W]`, standardised per channel with the *training* part's mean and std,
and whose labels are int64 in `0..num_classes-1`.

Invariants:
- the split is a pure function of (labels, seed, val_fraction): the same seed gives the same split;
- the split is stratified: each class with at least two samples puts `round(n * val_fraction)` of
  them (at least one, at most n - 1) into validation, so every such class appears in both parts;
  it costs a few sorts of the labels, whatever the number of classes;
- `size` resizes with bilinear interpolation before the statistics are taken; a folder's images are
  resized as they are read (without `size`, to the first image's size);
- `normalised(data, spec, "imagenet")` standardises with ImageNet's statistics instead (photos for
  weights trained on ImageNet; `auto`: for the kinds whose entry says so), undoing the data's own;
- a data set is untrusted data: its files are read by `training/datafiles.py`, which runs nothing from
  them (CIFAR's pickles go through a restricted unpickler), refuses links, FIFOs and devices, and
  checks every size against its budgets before the memory is spent; values must be finite.

Errors (all `CnncError`): E0601 a path that does not exist; E0602 a spec or file that cannot be read
as data, or is over a budget; E0603 an argument out of range.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
import torch.nn.functional as F

from cnnc.dsl import safefs
from cnnc.dsl.diagnostics import CnncError, error, printable
from cnnc.search.choices import DATA_KINDS, data_kind, data_specs
from cnnc.training import datafiles
from cnnc.training.datafiles import shown

SPEC_HELP = f"expected {data_specs()}"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
CIFAR_SIDE = 32  # CIFAR-10 rows are 3 × 32 × 32 bytes: all red, then all green, then all blue
RESIZE_CHUNK = 4096  # images resized at once; bounds the peak memory of interpolate
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # of pixels in [0, 1]
NORMALIZATIONS = ("auto", "data", "imagenet")  # `--normalize`


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
    paths: tuple[str, ...] = ()  # each sample's image file, for `folder:`


Size = int | tuple[int, int] | None  # a side, (height, width), or None: the images' own size


def load_dataset(spec: str, size: Size = None, seed: int = 0, val_fraction: float = 0.2) -> Dataset:
    """Load `spec`, resize to `size` if given, split by `seed`, and standardise."""
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


def check_trainable(data: Dataset, min_train: int, too_few: str, fix: str) -> None:
    """Training on `data` makes at least one step (`min_train` training images) and sees only finite
    values; else E0603 with `too_few` (the rule) and `fix`. A loader's own data passes the second."""
    n = len(data.train_x)
    if n < min_train or len(data.val_x) == 0:
        _fail(
            "E0603",
            f"`{printable(data.name)}` has {n:,} training and {len(data.val_x):,} validation images: "
            f"{too_few}",
            fix,
        )
    for part, x in (("training", data.train_x), ("validation", data.val_x)):
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            _fail(
                "E0603",
                f"`{printable(data.name)}`'s {part} images hold {bad:,} values that are NaN or "
                "infinite: training on them gives a NaN loss",
                "replace them with real values in the data set",
            )


# ---------------------------------------------------------------------------------------------
# Spec and options


MAX_CLASSES = 1_048_576  # as many outputs as cnnc allows a layer (E0415's bound on a size)


def _fail(code: str, message: str, *helps: str, notes: tuple[str, ...] = ()) -> NoReturn:
    raise CnncError(error(code, message, None, helps=helps, notes=notes))


def _check_options(size: Size, val_fraction: float) -> None:
    if size is not None and _side(size) is None:
        _fail(
            "E0603",
            f"`size` must be a positive integer or (height, width), but got size={size!r}",
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
    entry = DATA_KINDS.get(kind)
    if entry is not None and not entry.path and not sep:
        return kind, ""
    if entry is not None and entry.path:
        if not arg:
            _fail("E0602", f"data spec `{spec}` names no path after `{kind}:`", SPEC_HELP)
        return kind, arg
    _fail("E0602", f"unknown data spec `{spec}`", SPEC_HELP)


def _side(size: Size) -> tuple[int, int] | None:
    """`32` → (32, 32); `(24, 32)` stays; None for anything that is not one or two positive ints."""
    sides = (size, size) if isinstance(size, int) else size
    ok = isinstance(sides, tuple) and len(sides) == 2
    ok = ok and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in sides)
    return sides if ok else None


def _load_raw(kind: str, arg: str, size: Size) -> _Raw:
    side = None if size is None else _side(size)
    return DATA_KINDS[kind].load()(arg, side)


# the loaders of `search/choices.py`'s data-set kinds: (path, side or None) -> raw images of that side


def load_digits_kind(arg: str, side) -> _Raw:
    return _resized(load_digits(), side, arg or "digits")


def load_cifar10_kind(arg: str, side) -> _Raw:
    return _resized(load_cifar10(arg), side, arg)


def load_npz_kind(arg: str, side) -> _Raw:
    return _resized(load_npz(arg), side, arg)


def load_folder_kind(arg: str, side) -> _Raw:
    return load_folder(Path(arg), side)  # resizes each image as it reads it


def _resized(raw: _Raw, side, arg: str) -> _Raw:
    if side is None:
        return raw
    n, c = raw.x.shape[:2]
    datafiles.check_values(n * c * side[0] * side[1], f"{n:,} images of {[c, *side]}", arg)
    return _Raw(resize(raw.x, *side), raw.y, raw.num_classes)


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
    """scikit-learn's bundled 8×8 digits: 1797 grey images, pixel values 0..16, 10 classes.

    Read from scikit-learn's own file of them, as its `load_digits` reads it, without importing
    scikit-learn: that import was most of a cold `cnnc search --data digits`'s data loading
    (~0.7 s). Where the file is not where it has been, through scikit-learn."""
    path = _digits_file()
    if path is None:
        from sklearn.datasets import load_digits as sk_digits

        bunch = sk_digits()
        images, target = bunch.images, bunch.target
    else:
        table = np.loadtxt(path, delimiter=",")  # [1797, 65]: 64 pixels, then the label
        images, target = table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)
    x = torch.from_numpy(images).float().unsqueeze(1)  # [1797, 1, 8, 8]
    y = torch.from_numpy(target).long()  # [1797]
    return _Raw(x, y, 10)


def _digits_file() -> Path | None:
    """scikit-learn's `datasets/data/digits.csv.gz`, found without importing scikit-learn."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    for folder in (spec and spec.submodule_search_locations) or ():
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


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
    parts, rows = [], 0
    for f in files:
        parts.append(_read_cifar_batch(f))
        rows += len(parts[-1][1])
        datafiles.check_values(rows * 3 * CIFAR_SIDE**2, f"{rows:,} images of [3, 32, 32]", root)
    x = torch.cat([p[0] for p in parts])  # [N, 3, 32, 32]
    y = torch.cat([p[1] for p in parts])  # [N]
    labels = _checked_labels(y.numpy(), f"cifar10:{root}")
    if int(labels.max()) >= 10:  # CIFAR-10's classes are 0 … 9: a larger one has no output to train
        _fail(
            "E0602",
            f"labels in `cifar10:{root}` must lie in 0 … 9, but go up to {int(labels.max()):,}",
        )
    return _Raw(x, labels, 10)


def _read_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch, unpickled by `datafiles.unpickle` (nothing in it runs), checked field by field."""
    batch = datafiles.unpickle(path)
    data = _key(batch, "data", path)
    labels = _key(batch, "labels", path)
    if isinstance(labels, list) and all(type(v) is int for v in labels):
        labels = np.array(labels, dtype=np.int64) if labels else np.zeros(0, np.int64)
    ok = isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
    ok = ok and data.shape[1] == 3 * CIFAR_SIDE**2
    ok = ok and isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu"
    if not ok or len(labels) != len(data):
        _fail(
            "E0602",
            f"`{shown(path)}` holds {_described(data)} `data` and {_described(labels)} `labels`",
            "expected `data` [n, 3072] uint8 and `labels` [n] integers",
        )
    x = (
        torch.from_numpy(data.copy()).float().reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE)
    )  # [n, 3, 32, 32]
    return x, torch.from_numpy(labels.astype(np.int64))


def _described(value) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {list(value.shape)}"
    return f"a {type(value).__name__}" + (
        f" of {len(value)}" if isinstance(value, (list, tuple)) else ""
    )


def _key(batch, name: str, path: Path):
    """CIFAR pickles written by Python 2 have bytes keys; re-saved ones may have str keys."""
    if isinstance(batch, dict):
        for key in (name.encode(), name):
            if key in batch:
                return batch[key]
    _fail(
        "E0602",
        f"`{shown(path)}` is not a CIFAR-10 python batch (no `{name}` in a {type(batch).__name__})",
        "expected a pickled dict with `data` [n, 3072] uint8 and `labels` [n]",
    )


def load_npz(arg: str) -> _Raw:
    """Arrays `x` ([N, H, W], [N, H, W, C] or [N, C, H, W]) and `y` ([N] integer labels)."""
    path = _existing(Path(arg), "npz", want_dir=False)
    limits = {"x": datafiles.MAX_DATA_VALUES, "y": datafiles.MAX_DATA_VALUES}
    arrays = datafiles.read_npz(path, ("x", "y"), limits)
    x, y = arrays["x"], arrays["y"]
    images = _channels_first(x, path)  # [N, C, H, W]
    if len(y) != len(images):
        _fail(
            "E0602",
            f"`{shown(path)}` has {len(images)} images but {len(y)} labels",
            "`x` and `y` must have the same first dimension",
        )
    labels = _checked_labels(np.asarray(y), f"npz:{path}")
    return _Raw(images, labels, int(labels.max()) + 1)


LARGEST = 1e30  # |value| an image may hold: far beyond any pixel, and standardising it stays finite


def _channels_first(x: np.ndarray, path: Path) -> torch.Tensor:
    """[N, H, W] → [N, 1, H, W]; [N, H, W, C] with C ≤ 4 < H → [N, C, H, W]; else taken as NCHW."""
    if x.dtype.kind not in "biuf" or x.ndim not in (3, 4) or 0 in x.shape[1:]:
        _fail(
            "E0602",
            f"`x` in `{shown(path)}` is {x.dtype} with shape {list(x.shape)}",
            "expected numbers shaped [N, H, W], [N, H, W, C] or [N, C, H, W], every size but N at least 1",
        )
    with np.errstate(over="ignore", invalid="ignore"):  # what overflows float32 is counted below
        t = torch.from_numpy(x.astype(np.float32))
    bad = int((~torch.isfinite(t) | (t.abs() > LARGEST)).sum())
    if bad:
        _fail(
            "E0602",
            f"`x` in `{shown(path)}` holds {bad:,} values that are NaN, infinite or beyond ±{LARGEST:g}",
            "replace them with real pixel values before training",
        )
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


def load_folder(root: Path, side: tuple[int, int] | None) -> _Raw:
    """One subfolder per class (sorted names = labels 0, 1, …); images read as RGB.

    Every image is resized to `side` (height, width) as it is read, or, without `side`, to the
    first image's size; the budgets are checked before a pixel is decoded."""
    root = _existing(root, "folder", want_dir=True)
    classes = class_folders(root)
    files = [(label, f) for label, class_dir in enumerate(classes) for f in _image_files(class_dir)]
    side = side or datafiles.image_size(files[0][1])
    n = len(files)
    datafiles.check_values(
        n * 3 * side[0] * side[1], f"{n:,} images of [3, {side[0]}, {side[1]}]", root
    )
    budget = datafiles.PixelBudget()
    x = torch.empty(n, 3, *side)  # [N, 3, H, W]
    for i, (_, f) in enumerate(files):
        x[i] = datafiles.read_image(f, side, budget, resize)
    y = torch.tensor([label for label, _ in files], dtype=torch.int64)
    return _Raw(x, y, len(classes), tuple(str(f) for _, f in files))


def read_image(path: Path, side: tuple[int, int] | None = None) -> torch.Tensor:
    """An image file the user named (a link is followed) as float32 `[3, H, W]` RGB, resized to
    `side` if given, within `datafiles`' budgets."""
    side = side or datafiles.image_size(path, follow=True)
    return datafiles.read_image(path, side, datafiles.PixelBudget(), resize, follow=True)


_read_image = read_image  # the name `cnnc neighbors` calls


def class_folders(root: Path) -> list[Path]:
    """The class subfolders of `root`, sorted; a linked one is refused (it would read elsewhere)."""
    classes = []
    for entry in sorted(d for d in root.iterdir() if not d.name.startswith(".")):
        what = safefs.kind(entry)
        if what == "link" and safefs.kind(entry, follow=True) == "folder":
            _fail(
                "E0602",
                f"class folder `{shown(entry.name)}` of `{shown(root)}` is a symbolic link: cnnc reads "
                "only the files inside the data folder",
                "copy the images into the data folder, or point folder: at a folder that holds them",
            )
        if what == "folder":
            classes.append(entry)
    if not classes:
        _fail(
            "E0602",
            f"folder `{shown(root)}` has no class subfolders",
            "lay it out as DIR/<class>/<image>.png",
        )
    return classes


def _image_files(class_dir: Path) -> list[Path]:
    """The images of a class folder, by suffix; anything but a regular file is refused by type."""
    files = sorted(f for f in class_dir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    for f in files:
        what = safefs.kind(f)
        if what != "file":
            _fail(
                "E0602",
                f"`{shown(f)}` is {datafiles.named(what)}, not an image file: "
                "cnnc reads only the regular files inside the data folder",
                "replace it with the image itself, or remove it",
            )
    if not files:
        _fail(
            "E0602",
            f"class folder `{shown(class_dir)}` holds no images",
            f"images must end in one of {', '.join(IMAGE_SUFFIXES)}",
        )
    return files


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
    """Seeded stratified split: shuffle each class, hold out its share, shuffle each part again.

    Vectorised, so that its cost does not grow with the number of classes: one random key per
    sample orders each class at random (a stable sort by class after a sort by key), and a sample's
    rank in its class decides its part."""
    gen = torch.Generator().manual_seed(seed)
    by_key = torch.argsort(torch.rand(len(y), generator=gen, dtype=torch.float64))  # [N]
    grouped = by_key[torch.sort(y[by_key], stable=True).indices]  # [N]: by class, random within
    _, inverse, counts = torch.unique_consecutive(
        y[grouped], return_inverse=True, return_counts=True
    )
    starts = torch.cumsum(counts, 0) - counts  # [K]: where each class begins in `grouped`
    rank = torch.arange(len(y)) - starts[inverse]  # [N]: position within the class
    held = rank < val_counts(counts, val_fraction)[inverse]  # [N]
    train_idx, val_idx = grouped[~held], grouped[held]
    # a second shuffle so that neither part is ordered by class
    train_idx = train_idx[torch.randperm(len(train_idx), generator=gen)]
    val_idx = val_idx[torch.randperm(len(val_idx), generator=gen)]
    return train_idx, val_idx


def val_counts(n: torch.Tensor, val_fraction: float) -> torch.Tensor:
    """`val_count` of every class size in `n` [K] at once."""
    share = torch.floor(n.double() * val_fraction + 0.5).long()
    return torch.where(n < 2, 0, torch.minimum(n - 1, share.clamp_min(1)))


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


def normalised(data: Dataset, spec: str, how: str) -> Dataset:
    """The data standardised as `how` says (`NORMALIZATIONS`): `data` keeps the training part's own
    statistics, `imagenet` takes ImageNet's, `auto` is `imagenet` for a kind whose entry says so."""
    kind = data_kind(spec)
    if how == "imagenet" or (how == "auto" and kind is not None and kind.imagenet):
        return imagenet_normalised(data)
    return data


def imagenet_normalised(data: Dataset) -> Dataset:
    """Undo the data set's own standardisation and apply ImageNet's (on pixels scaled to [0, 1]);
    a data set of other than three channels is left as it is."""
    if data.input_shape[0] != 3:
        return data
    own_m, own_s = (torch.tensor(v).view(1, 3, 1, 1) for v in (data.mean, data.std))
    m, s = (torch.tensor(v).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))

    def renorm(x):  # [N, 3, H, W]
        return ((x * own_s + own_m) / 255 - m) / s

    return replace(
        data,
        train_x=renorm(data.train_x),
        val_x=renorm(data.val_x),
        mean=tuple(255 * v for v in IMAGENET_MEAN),
        std=tuple(255 * v for v in IMAGENET_STD),
    )
