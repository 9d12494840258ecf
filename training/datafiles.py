"""Data files are data: the readers behind `training/data.py`'s loaders, safe on a shared data set.

Contract. Reading a data set someone else made runs nothing from it, opens nothing but the entries
it names, never blocks on them, and spends memory and time within the budgets below, each refusal
made *before* the cost is spent and said in one line naming the file (a `CnncError`, E0602):
- entries of a data folder are opened only when they are regular files, never through a symbolic
  link (`safefs.open_regular`): a FIFO, device, socket or link named `x.png` is refused by type;
- CIFAR-10 batches are Python pickles: `unpickle` builds only dicts, lists, tuples, bytes, str,
  numbers and numeric numpy arrays, from a table of constructors (no module is imported, no other
  callable is reached), so a payload in a batch is refused without running;
- `.npz` archives: each member's declared size, its compression ratio and its `.npy` header (shape ×
  dtype) are checked before the member is expanded; object arrays are refused;
- images: the header (the size) is read before any pixel; an image holds at most MAX_IMAGE_PIXELS,
  the images of a data set at most MAX_DECODED_PIXELS together, and each is resized to the target
  as it is read (`read_image`: first by an integer box filter to within twice the target, then
  bilinearly with antialiasing), so that only the target-sized copy is kept;
- what a loader keeps (`[N, C, H, W]` float32) is at most MAX_DATA_VALUES values (`check_values`).
"""

from __future__ import annotations

import math
import os
import pickle
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import numpy as np

from cnnc.dsl import safefs
from cnnc.dsl.diagnostics import CnncError, error, printable

MAX_IMAGE_PIXELS = 1 << 25  # 33.5 M pixels (8192 × 4096) an image: 100 MB decoded, 400 MB as floats
MAX_DECODED_PIXELS = 1 << 33  # 8.6 G pixels decoded for one data set: ~80 k photos of 0.1 M pixels
MAX_DATA_VALUES = 1 << 30  # values a loaded data set holds: 4 GiB as float32
MAX_PICKLE_BYTES = 1 << 28  # 256 MiB a CIFAR batch file (CIFAR-10's are 31 MB, CIFAR-100's 155 MB)
# PIL's readers of the suffixes `folder:` takes; by content, PIL would also run Ghostscript on EPS
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float: what an image or a label may be
MAX_RATIO = (
    200  # unpacked / packed bytes of an .npz member: real images compress 2-10 times, bombs 1000
)
RATIO_FROM = 1 << 28  # members unpacking to less than 256 MiB may compress as well as they like


def fail(message: str, *helps: str) -> NoReturn:
    raise CnncError(error("E0602", message, None, helps=helps))


def shown(path) -> str:
    """A path as a message shows it: control and bidi characters escaped (`printable`)."""
    return printable(os.fspath(path))


def open_entry(path: Path, follow: bool = False):
    """A binary file open for reading: a regular file, and (unless `follow`) not through a link."""
    try:
        return safefs.open_regular(path, follow=follow)
    except safefs.NotRegular as exc:
        fail(
            f"`{shown(path)}` is {named(exc.what)}, not a regular file: cnnc reads only the data set's own files",
            "replace it with the file itself",
        )
    except OSError as exc:
        fail(
            f"cannot open `{shown(path)}` ({printable(exc.strerror or type(exc).__name__)})",
            "check that the file exists and is readable",
        )


NAMES = {
    "link": "a symbolic link",
    "fifo": "a FIFO (named pipe)",
    "socket": "a socket",
    "device": "a device",
    "folder": "a folder",
}


def named(what: str) -> str:
    """`safefs.kind`'s word for an entry, as a message says it: 'fifo' → 'a FIFO (named pipe)'."""
    return NAMES.get(what, f"a {what}")


def check_values(count: int, what: str, source) -> None:
    """`count` values (e.g. N × C × H × W) fit in MAX_DATA_VALUES."""
    if count > MAX_DATA_VALUES:
        fail(
            f"`{shown(source)}` would load {count:,} values as {what}, more than cnnc's budget of "
            f"{MAX_DATA_VALUES:,} (4 GiB as float32)",
            "use fewer images or a smaller input size",
        )


# ---------------------------------------------------------------------------------------------
# CIFAR-10 pickles


def _reconstruct(subtype, shape, dtype):
    """numpy's `_reconstruct`, for plain arrays only and always empty: the data comes with BUILD."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy arrays are allowed")
    return np.ndarray((0,), dtype=np.uint8)


def _dtype(spec, align=False, copy=True):
    """numpy's `dtype`, for numbers only (an object or structured dtype could smuggle objects)."""
    if not isinstance(spec, str):
        raise pickle.UnpicklingError("only numeric dtypes are allowed")
    kind = np.dtype(spec)
    if kind.kind not in NUMERIC_KINDS or kind.fields is not None:
        raise pickle.UnpicklingError(f"dtype {spec!r} is not numeric")
    return np.dtype(spec, align=bool(align), copy=bool(copy))


def _frombuffer(buffer, dtype, shape, order):
    """numpy's `_frombuffer` (pickle protocol 5): the bytes are the file's own, so they bound it."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in NUMERIC_KINDS:
        raise pickle.UnpicklingError("only numeric arrays are allowed")
    count = (
        math.prod(shape)
        if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape)
        else -1
    )
    if count < 0 or count * dtype.itemsize != len(memoryview(buffer).cast("B")):
        raise pickle.UnpicklingError("the array's shape does not match its bytes")
    return (
        np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if order == "F" else "C").copy()
    )


def _encode(text, encoding):
    """`_codecs.encode`, as Python 3 pickles bytes at protocols < 3: latin-1 text to bytes only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only latin-1 byte strings are allowed")
    return text.encode("latin-1")


ALLOWED = {  # (module, name) as a pickle names them → what is built instead
    **{
        (m, "_reconstruct"): _reconstruct
        for m in ("numpy.core.multiarray", "numpy._core.multiarray")
    },
    **{(m, "_frombuffer"): _frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
}


class _Restricted(pickle.Unpickler):
    """An unpickler that looks classes up in ALLOWED and nowhere else (no import happens)."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"`{module}.{name}` is not allowed in a data file"
            ) from None


def unpickle(path: Path, follow: bool = False):
    """The object a CIFAR batch holds, read with `_Restricted` from a regular file."""
    with open_entry(path, follow=follow) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > MAX_PICKLE_BYTES:
            fail(
                f"`{shown(path)}` is {size:,} bytes, more than cnnc's {MAX_PICKLE_BYTES:,} for a CIFAR batch",
                "split it into batches of at most 256 MiB",
            )
        try:
            return _Restricted(fh, encoding="bytes").load()
        except Exception as exc:  # noqa: BLE001 — whatever the bytes make pickle raise is the file's fault
            fail(
                f"`{shown(path)}` is not a CIFAR-10 python batch ({_reason(exc)})",
                "expected a pickled dict with `data` [n, 3072] uint8 and `labels` [n]",
            )


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return printable(f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__, 160)


# ---------------------------------------------------------------------------------------------
# .npz archives


def read_npz(path: Path, names: tuple[str, ...], limits: dict[str, int]) -> dict[str, np.ndarray]:
    """The arrays `names` of an .npz file, each at most `limits[name]` elements, checked before read."""
    with open_entry(path, follow=True) as fh:
        try:
            with zipfile.ZipFile(fh) as archive:
                return {name: _member(archive, name, limits[name], path) for name in names}
        except CnncError:
            raise
        except Exception as exc:  # noqa: BLE001 — a broken archive or header is the file's fault
            fail(
                f"`{shown(path)}` is not a readable .npz file ({_reason(exc)})",
                "save it with np.savez(path, x=images, y=labels)",
            )


def _member(archive: zipfile.ZipFile, name: str, limit: int, path: Path) -> np.ndarray:
    try:
        info = archive.getinfo(f"{name}.npy")
    except KeyError:
        fail(
            f"`{shown(path)}` lacks the array `{name}`",
            "save it with np.savez(path, x=images, y=labels)",
        )
    with archive.open(info) as member:
        shape, dtype = _header(member)
    count = math.prod(shape)
    if dtype.hasobject or dtype.kind not in NUMERIC_KINDS:
        fail(
            f"`{name}` in `{shown(path)}` is {printable(str(dtype))}, not numbers",
            "store numbers (integers or floats); cnnc never reads pickled objects",
        )
    if count > limit or info.file_size > count * dtype.itemsize + (1 << 16):
        fail(
            f"`{name}` in `{shown(path)}` declares {list(shape)} {dtype} ({info.file_size:,} bytes "
            f"unpacked), more than cnnc's budget of {limit:,} values",
            "use fewer or smaller images",
        )
    if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > RATIO_FROM:
        fail(
            f"`{name}` in `{shown(path)}` unpacks {info.file_size // max(info.compress_size, 1):,} times its "
            f"{info.compress_size:,} packed bytes, more than the {MAX_RATIO} times cnnc allows (a zip bomb?)",
            "save it uncompressed, with np.savez",
        )
    with archive.open(info) as member:
        return np.lib.format.read_array(member, allow_pickle=False)


def _header(member) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype a `.npy` member declares, read from its header only."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    return tuple(shape), dtype


# ---------------------------------------------------------------------------------------------
# Images


class PixelBudget:
    """The pixels a data set's images may decode together (MAX_DECODED_PIXELS)."""

    def __init__(self, limit: int | None = None):
        self.left = MAX_DECODED_PIXELS if limit is None else limit

    def spend(self, pixels: int, path: Path) -> None:
        if pixels > self.left:
            fail(
                f"decoding `{shown(path)}` would pass cnnc's budget of {MAX_DECODED_PIXELS:,} pixels "
                "for the images of one data set",
                "use fewer or smaller images",
            )
        self.left -= pixels


def image_size(path: Path, follow: bool = False) -> tuple[int, int]:
    """(height, width) from an image's header, with no pixel decoded."""
    with _opened_image(path, follow) as img:
        return img.size[1], img.size[0]


def read_image(
    path: Path, side: tuple[int, int], budget: PixelBudget, resize, follow: bool = False
):
    """An image as float32 `[3, side[0], side[1]]` (RGB), read within the budgets, then resized;
    `follow`: the path may be a link (a file the user named, not an entry of a data folder)."""
    import torch

    with _opened_image(path, follow) as img:
        budget.spend(img.size[0] * img.size[1], path)
        try:
            rgb = img.convert("RGB")
            factor = (max(1, rgb.width // (2 * side[1])), max(1, rgb.height // (2 * side[0])))
            if (
                max(factor) >= 2
            ):  # a box filter per axis in PIL first: floats of large images cost 4×
                rgb = rgb.reduce(factor)
            pixels = np.asarray(rgb)  # [H, W, 3] uint8
        except Exception as exc:  # noqa: BLE001 — a decoder's complaint is the file's fault
            fail(
                f"cannot read image `{shown(path)}` ({_reason(exc)})", "remove or re-save the file"
            )
    x = torch.from_numpy(pixels.copy()).permute(2, 0, 1).unsqueeze(0).float()  # [1, 3, H, W]
    return resize(x, *side)[0]  # [3, side]


@contextmanager
def _opened_image(path: Path, follow: bool):
    """`PIL.Image.open` on a regular file, its header's size checked against MAX_IMAGE_PIXELS."""
    from PIL import Image

    with open_entry(path, follow) as fh:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(fh, formats=FORMATS)
        except Image.DecompressionBombError:
            _too_large(path, "its header declares more pixels than even PIL allows")
        except Exception as exc:  # noqa: BLE001 — every opener's complaint is the file's fault
            fail(
                f"cannot read image `{shown(path)}` ({_reason(exc)})", "remove or re-save the file"
            )
        with img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                _too_large(path, f"its header declares {width:,} × {height:,} pixels")
            if width < 1 or height < 1:
                fail(
                    f"image `{shown(path)}` declares {width} × {height} pixels",
                    "remove or re-save the file",
                )
            yield img


def _too_large(path: Path, why: str) -> NoReturn:
    fail(
        f"image `{shown(path)}` is too large to read: {why}, and cnnc reads at most "
        f"{MAX_IMAGE_PIXELS:,} pixels an image",
        "shrink the image, or remove it from the data set",
    )
