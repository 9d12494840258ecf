"""Run folders (`cnnc train --out RUN`) as context: what a trained network expects of its images.

A run folder holds `network.cnn` (the program), `model.pt` (the weights) and `run.json`, which
records, as timm's `pretrained_cfg` and torchvision's `weights.transforms()` do, everything needed to
feed the network an image the way training did:
- `network`, `args`, `input` [C, H, W]: how the program was instantiated;
- `preprocessing`: `resize` [H, W] (or null: images taken at their size), `interpolation` and
  `antialias` of the resize, `crop` (null: none at evaluation), `mean` and `std` per channel in the
  data's raw pixel units (`pixel_max`: 255 for images, 16 for digits, null when unknown);
- `classes`: one name per output, in label order; `data` and `seed`: the data set and its split.

`read_run(folder) -> Run` reads it as untrusted data: the file is opened only if regular and
bounded in size, every field is checked for type and range (the input within `MAX_INPUT_ELEMENTS`),
and any failure is one located-less user error (E0602). Imports nothing heavy: `cnnc summary` stays
torch-free.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from cnnc.dsl import safefs
from cnnc.dsl.diagnostics import CnncError, error, printable
from cnnc.search.choices import data_kind

RUN_FILE, PROGRAM, WEIGHTS = "run.json", "network.cnn", "model.pt"
MAX_RUN_BYTES = 64 << 20  # a run.json with a million class names fits
MAX_SIDE = 16_384  # pixels a side of an input
MAX_CHANNELS = 4_096
MAX_INPUT_ELEMENTS = 3 * 4_096 * 4_096  # 50 M values: 200 MB an image in float32
MAX_CLASSES = 1_048_576  # as many outputs as cnnc allows a layer
MAX_NAME = 1_000  # characters of a class name
MAX_ARGS = 1_000
CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the network's input: resize, then (x - mean) / std per channel."""

    resize: tuple[int, int] | None
    mean: tuple[float, ...] | None  # None: the data set's own statistics (runs of older cnnc)
    std: tuple[float, ...] | None
    interpolation: str = "bilinear"
    antialias: bool = True
    crop: None = None
    pixel_max: float | None = None

    def to_json(self) -> dict:
        return {
            "resize": list(self.resize) if self.resize else None,
            "interpolation": self.interpolation,
            "antialias": self.antialias,
            "crop": self.crop,
            "mean": list(self.mean) if self.mean else None,
            "std": list(self.std) if self.std else None,
            "pixel_max": self.pixel_max,
        }

    def describe(self) -> str:
        size = (
            f"resize {self.resize[0]}×{self.resize[1]} {self.interpolation}"
            if self.resize
            else "no resize"
        )
        if self.mean is None:
            return f"{size}, the data set's own mean and std"
        return f"{size}, mean {numbers(self.mean)}, std {numbers(self.std)}"


@dataclass(frozen=True)
class Run:
    folder: Path
    network: str
    args: tuple[str, ...]
    input: tuple[int, int, int]
    preprocessing: Preprocessing
    classes: tuple[str, ...]
    data: str
    seed: int

    @property
    def program(self) -> Path:
        return self.folder / PROGRAM

    @property
    def weights(self) -> Path:
        return self.folder / WEIGHTS

    def describe(self, weights: bool = True) -> str:
        """One line: what a command takes from the run folder."""
        c, h, w = self.input
        named = f"{len(self.classes)} classes" if self.classes else "no class names"
        taken = f", weights {WEIGHTS}" if weights else ""
        return (
            f"using run `{printable(str(self.folder))}`: `{printable(self.network)}` at "
            f"[{c}, {h}, {w}]{taken}, {self.preprocessing.describe()}, {named}, data `{printable(self.data, 200)}`"
        )


def is_run(path) -> bool:
    """A folder holding a `run.json`: what `cnnc train --out` wrote."""
    path = Path(path)
    return (
        safefs.kind(path, follow=True) == "folder"
        and safefs.kind(path / RUN_FILE, follow=True) == "file"
    )


def read_run(folder) -> Run:
    folder = Path(folder)
    for name in (RUN_FILE, PROGRAM, WEIGHTS):
        _check_own(folder, name)
    record = _read_json(folder / RUN_FILE)
    where = f"`{folder / RUN_FILE}`"
    shape = check_input(record.get("input"), where)
    prep = record.get("preprocessing")
    return Run(
        folder,
        _name(record.get("network"), where),
        _strings(record.get("args", []), where, "args"),
        shape,
        _preprocessing(prep, shape, where) if prep is not None else Preprocessing(None, None, None),
        _strings(record.get("classes", []), where, "classes", MAX_CLASSES),
        _text(record.get("data", ""), where, "data"),
        _seed(record.get("seed", 0), where),
    )


def fail(message: str, *helps: str):
    raise CnncError(
        error(
            "E0602",
            message,
            None,
            helps=helps
            or ("train again with `cnnc train … --out DIR`, which writes a complete run folder",),
        )
    )


def _check_own(folder: Path, name: str) -> None:
    """A run folder's file must be a regular file inside it: a link that leads out of the folder (to
    `/etc/passwd`, say) is not followed, since a run folder may come from someone else."""
    path = folder / name
    what = safefs.kind(path, follow=True)
    if what == "missing" and name == WEIGHTS:
        fail(
            f"the run folder `{printable(str(folder))}` holds no {WEIGHTS}: its training did not finish",
            "train again, or go on with `cnnc train … --resume --out RUN`",
        )
    if what != "file":
        fail(
            f"`{printable(str(path))}` is {'missing' if what == 'missing' else 'a ' + what}: not a run folder's "
            f"{name}"
        )
    if not path.resolve().is_relative_to(folder.resolve()):
        fail(
            f"`{printable(str(path))}` is a link out of its run folder: cnnc does not follow it",
            "copy the file into the run folder",
        )


def _read_json(path: Path) -> dict:
    try:
        with safefs.open_regular(path) as f:
            data = f.read(MAX_RUN_BYTES + 1)
    except OSError as exc:
        fail(f"cannot read `{printable(str(path))}`: {exc.strerror or exc}")
    if len(data) > MAX_RUN_BYTES:
        fail(f"`{printable(str(path))}` is over {MAX_RUN_BYTES >> 20} MiB: not a run record")
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        fail(f"`{printable(str(path))}` is not JSON: {printable(str(exc), 200)}")
    if not isinstance(record, dict):
        fail(f"`{printable(str(path))}` is not a run record (a JSON object)")
    return record


def check_input(value, where: str, helps=()) -> tuple[int, int, int]:
    """An input shape [C, H, W] read from a file, within the budgets (before anything is sized by it)."""
    ok = (
        isinstance(value, list)
        and len(value) == 3
        and all(type(v) is int and v >= 1 for v in value)
    )
    if not ok:
        fail(
            f"{where} records no input shape [C, H, W] of positive integers: {printable(repr(value), 100)}",
            *helps,
        )
    c, h, w = value
    if c > MAX_CHANNELS or h > MAX_SIDE or w > MAX_SIDE or c * h * w > MAX_INPUT_ELEMENTS:
        fail(
            f"{where} records an input of {c}×{h}×{w}, over cnnc's budget ({MAX_CHANNELS} channels, "
            f"{MAX_SIDE} pixels a side, {MAX_INPUT_ELEMENTS:,} values)",
            *helps,
        )
    return c, h, w


def check_stats(
    value, channels: int, where: str, what: str, positive: bool, helps=()
) -> tuple[float, ...]:
    ok = (
        isinstance(value, list)
        and len(value) == channels
        and all(
            type(v) in (int, float) and math.isfinite(v) and (v > 0 or not positive) for v in value
        )
    )
    if not ok:
        rule = "positive" if positive else "finite"
        fail(
            f"{where}: `{what}` must be {channels} {rule} numbers (one per channel), but got "
            f"{printable(repr(value), 100)}",
            *helps,
        )
    return tuple(float(v) for v in value)


def _preprocessing(value, shape, where: str) -> Preprocessing:
    if not isinstance(value, dict):
        fail(f"{where}: `preprocessing` must be an object")
    resize = value.get("resize")
    if resize is not None:
        resize = check_input([shape[0], *resize] if isinstance(resize, list) else None, where)[1:]
    interpolation = value.get("interpolation", "bilinear")
    if interpolation != "bilinear":
        fail(
            f"{where}: interpolation `{printable(str(interpolation), 40)}` is not one cnnc applies (bilinear)"
        )
    pixel_max = value.get("pixel_max")
    if pixel_max is not None and not (type(pixel_max) in (int, float) and math.isfinite(pixel_max)):
        fail(f"{where}: `pixel_max` must be a number or null")
    mean = check_stats(value.get("mean"), shape[0], where, "mean", positive=False)
    std = check_stats(value.get("std"), shape[0], where, "std", positive=True)
    return Preprocessing(resize, mean, std, pixel_max=pixel_max)


def _name(value, where: str) -> str:
    if not (isinstance(value, str) and value.isidentifier()):
        fail(f"{where} names no network (an identifier): {printable(repr(value), 100)}")
    return value


def _text(value, where: str, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME * 10:
        fail(f"{where}: `{what}` must be a string")
    return value


def _strings(value, where: str, what: str, limit: int = MAX_ARGS) -> tuple[str, ...]:
    ok = isinstance(value, list) and len(value) <= limit
    if not ok or not all(isinstance(v, str) and len(v) <= MAX_NAME for v in value):
        fail(
            f"{where}: `{what}` must be a list of at most {limit:,} strings of at most {MAX_NAME} characters"
        )
    return tuple(value)


def _seed(value, where: str) -> int:
    if type(value) is not int or not 0 <= value < 2**32:
        fail(f"{where}: `seed` must be a whole number from 0 to 2³² − 1")
    return value


def numbers(values) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


# ---------------------------------------------------------------------------------------------
# What `cnnc train` records


def class_names(spec: str, count: int) -> tuple[str, ...]:
    """The data set's class names in label order: folder names, CIFAR-10's, else the label numbers."""
    kind = data_kind(spec)
    names = None if kind is None else kind.class_names(spec.strip().partition(":")[2], count)
    return names or tuple(str(i) for i in range(count))


def folder_classes(arg: str, count: int) -> tuple[str, ...] | None:
    """A `folder:` data set's class sub-folders, sorted as its loader labels them."""
    root = Path(arg).expanduser()
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    return tuple(names) if len(names) == count else None


def cifar10_classes(arg: str, count: int) -> tuple[str, ...] | None:
    return CIFAR10 if count == len(CIFAR10) else None


def pixel_max(spec: str) -> float | None:
    kind = data_kind(spec)
    return None if kind is None else kind.pixel_max


def record(graph, data, args, resized: bool) -> dict:
    """run.json's content for a finished `cnnc train`."""
    _, h, w = graph.input_type.shape
    prep = Preprocessing(
        (h, w) if resized else None,
        tuple(data.mean),
        tuple(data.std),
        pixel_max=pixel_max(args.data),
    )
    return {
        "network": graph.network,
        "args": list(args.arg),
        "input": list(graph.input_type.shape),
        "preprocessing": prep.to_json(),
        "classes": list(class_names(args.data, data.num_classes)),
        "data": args.data,
        "seed": args.seed,
        "epochs": args.epochs,
        "weights": args.weights,
        "freeze": args.freeze,
    }
