"""Features files (`.npz`, written by `cnnc features`, read by `cnnc neighbors`) as untrusted data.

A file holds `features` [N, D] float, `labels` [N] int, `split` [N] (0 train, 1 held out), `paths` [N]
text, `thumbs` [N, h, w, C] uint8 and `meta` (a JSON object: the program, network, arguments,
weights, label, input shape, preprocessing, class names). A file handed over may be hostile, so:
- `save` writes exactly the path given (no `.npz` appended), through `safefs.replacing`;
- `read` opens the file only if regular, reads the zip's directory and each array's `.npy` header,
  and refuses before expanding anything: members other than the six, object or structured dtypes,
  wrong ranks or lengths, declared sizes that disagree with the header or exceed `MAX_BYTES` (a zip
  bomb declares its size, and zipfile reads no further), non-finite features, bad labels or split,
  a `meta` that is not what `cnnc features` writes. Every failure is one user error (E0602);
- `embedding` turns `meta` into what a new image is embedded with, checking it as arguments are
  checked: the program and the weights must lie inside the features file's folder or the run
  folder the user names now (`--run`), or be a zoo model's name; the input within the budgets of
  `training.runs`; the statistics finite. Nothing in the file is followed outside those places.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnc.dsl import safefs
from cnnc.dsl.diagnostics import CnncError, error, printable
from cnnc.training import runs

KEYS = ("features", "labels", "split", "paths", "thumbs", "meta")
MAX_BYTES = 4 << 30  # all arrays together, expanded
# the JSON record of a features file: a few kB in practice; its decoded objects take ~10× its size,
# so a crafted one (millions of class names) is refused before it is parsed
MAX_META = 4 << 20
MAX_LABEL = runs.MAX_CLASSES
KINDS = {"features": "f", "labels": "iu", "split": "iu", "paths": "U", "thumbs": "u", "meta": "U"}
RANKS = {"features": 2, "labels": 1, "split": 1, "paths": 1, "thumbs": 4, "meta": 0}
LABEL = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")  # a module path, as `--at` takes it
READ_ERRORS = (
    OSError,
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    ValueError,
    KeyError,
    NotImplementedError,
    RuntimeError,
    UnicodeError,
    OverflowError,
    TypeError,
)


def save(path: Path, arrays: dict, meta: dict) -> safefs.Written:
    """Write the arrays and `meta` to exactly `path` (a temporary file, then `os.replace`)."""
    with safefs.replacing(path, "wb") as f:
        np.savez_compressed(f, **arrays, meta=np.array(json.dumps(meta)))
    return f.written


REWRITE = (
    (
        "write the file again with `cnnc features RUN_OR_PROGRAM --at LABEL --data DATA --out FILE`, or "
        "embed with a run folder's own record: `--run RUN`"
    ),
)


def fail(path, message: str):
    raise CnncError(
        error(
            "E0602",
            f"`{printable(str(path))}` is not a features file written by `cnnc features`: "
            f"{message}",
            None,
            helps=REWRITE[:1],
        )
    )


def read(path) -> dict:
    """The file's arrays (`meta` decoded to a dict), every one checked; a user error otherwise."""
    try:
        with safefs.open_regular(path) as f, zipfile.ZipFile(f) as z:
            arrays = _arrays(z, path)
    except CnncError:
        raise
    except safefs.NotRegular as exc:
        fail(path, f"it is a {exc.what}")
    except FileNotFoundError:
        raise CnncError(
            error("E0601", f"no features file `{printable(str(path))}`", None)
        ) from None
    except READ_ERRORS as exc:
        fail(path, printable(str(exc) or type(exc).__name__, 200))
    _check_arrays(arrays, path)
    arrays["meta"] = check_meta(_json(arrays["meta"], path), path)
    return arrays


def _arrays(z: zipfile.ZipFile, path) -> dict:
    members = {i.filename: i for i in z.infolist()}
    wanted = {f"{k}.npy" for k in KEYS}
    if set(members) != wanted:
        missing, extra = sorted(wanted - set(members)), sorted(set(members) - wanted)
        fail(
            path,
            "; ".join(
                filter(
                    None,
                    [
                        f"missing {', '.join(missing)}" if missing else "",
                        f"unexpected {printable(', '.join(extra), 200)}" if extra else "",
                    ],
                )
            ),
        )
    if sum(i.file_size for i in members.values()) > MAX_BYTES:
        fail(path, f"its arrays declare over {MAX_BYTES >> 30} GiB")
    return {k: _array(z, members[f"{k}.npy"], k, path) for k in KEYS}


def _array(z: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, path) -> np.ndarray:
    """One member, its header checked against its declared size before the body is read."""
    with z.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            fail(path, f"`{key}` has .npy version {version}")
        reader = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = reader(f)
        if dtype.hasobject or dtype.fields is not None or dtype.kind not in KINDS[key]:
            fail(path, f"`{key}` has dtype {printable(str(dtype), 60)}")
        if len(shape) != RANKS[key]:
            fail(path, f"`{key}` has {len(shape)} dimensions, not {RANKS[key]}")
        size = math.prod(shape) * dtype.itemsize
        if size != info.file_size - f.tell() or (key == "meta" and size > MAX_META):
            fail(path, f"`{key}` declares {size:,} bytes in a member of {info.file_size:,}")
        body = f.read(size)
        if len(body) != size:
            fail(path, f"`{key}` is cut short")
    array = np.frombuffer(body, dtype=dtype)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _check_arrays(a: dict, path) -> None:
    n = a["features"].shape[0]
    if n == 0 or a["features"].shape[1] == 0:
        fail(path, "it holds no features")
    for key in ("labels", "split", "paths", "thumbs"):
        if a[key].shape[0] != n:
            fail(path, f"`{key}` has {a[key].shape[0]:,} rows, `features` {n:,}")
    if a["thumbs"].shape[3] not in (1, 3) or a["thumbs"].dtype != np.uint8:
        fail(path, "`thumbs` must be uint8 images with 1 or 3 channels")
    if not np.isfinite(a["features"]).all():
        fail(path, "`features` holds NaN or infinite values")
    if a["labels"].min() < 0 or a["labels"].max() >= MAX_LABEL:
        fail(path, f"`labels` must lie in 0 … {MAX_LABEL - 1:,}")
    if not np.isin(a["split"], (0, 1)).all():
        fail(path, "`split` must hold 0 (train) and 1 (held out) only")
    a["features"] = a["features"].astype(np.float32)
    a["labels"] = a["labels"].astype(np.int64)


def _json(meta: np.ndarray, path) -> dict:
    try:
        value = json.loads(str(meta))
    except (ValueError, RecursionError) as exc:
        fail(path, f"`meta` is not JSON: {printable(str(exc), 200)}")
    if not isinstance(value, dict):
        fail(path, "`meta` is not a JSON object")
    return value


def check_meta(meta: dict, path) -> dict:
    """The fields `neighbors` reads, with their types and ranges (missing ones become null)."""
    where = f"the `meta` of `{printable(str(path))}`"
    out = {
        "at": meta.get("at"),
        "file": meta.get("file"),
        "weights": meta.get("weights"),
        "network": meta.get("network"),
        "run": meta.get("run"),
        "data": meta.get("data"),
    }
    for key in ("at", "file", "weights", "network", "run", "data"):
        if out[key] is not None and not (isinstance(out[key], str) and len(out[key]) <= 4096):
            fail(path, f"`meta.{key}` must be a string")
    if out["at"] is not None and not LABEL.fullmatch(out["at"]):
        fail(path, f"`meta.at` is no label path: {printable(repr(out['at']), 100)}")
    if out["network"] is not None and not out["network"].isidentifier():
        fail(path, f"`meta.network` is no network name: {printable(repr(out['network']), 100)}")
    out["args"] = list(runs._strings(meta.get("args") or [], where, "args"))
    out["classes"] = list(
        runs._strings(meta.get("classes") or [], where, "classes", runs.MAX_CLASSES)
    )
    out["input"] = meta.get("input")
    out["mean"], out["std"] = meta.get("mean"), meta.get("std")
    return out


def class_name(data: dict, label: int) -> str:
    """A label as the file names it (the run's class name, escaped), or its number."""
    classes = data["meta"]["classes"]
    return printable(classes[label], 40) if 0 <= label < len(classes) else str(label)


# ---------------------------------------------------------------------------------------------
# Embedding a new image the way the file's images were


@dataclass(frozen=True)
class Embedding:
    program: str  # a path inside an allowed folder, or a zoo model's name
    network: str | None
    args: tuple[str, ...]
    input: tuple[int, int, int]
    weights: str | None
    at: str
    mean: tuple[float, ...]
    std: tuple[float, ...]


def embedding(data: dict, path: Path, run_folder: Path | None) -> Embedding:
    """What `meta` says to embed with, checked; `run_folder` (`--run`) overrides the program,
    weights, input and statistics with the run's own."""
    meta, where = data["meta"], f"the `meta` of `{printable(str(path))}`"
    if not meta["at"]:
        fail(path, "`meta` names no label (`at`)")
    if run_folder is not None:
        run = runs.read_run(run_folder)
        prep = run.preprocessing
        if prep.mean is None:
            runs.fail(
                f"the run `{printable(str(run_folder))}` records no preprocessing (an older cnnc)"
            )
        return Embedding(
            str(run.program),
            run.network,
            run.args,
            run.input,
            str(run.weights),
            meta["at"],
            prep.mean,
            prep.std,
        )
    shape = runs.check_input(meta["input"], where, REWRITE)
    mean = runs.check_stats(meta["mean"], shape[0], where, "mean", positive=False, helps=REWRITE)
    std = runs.check_stats(meta["std"], shape[0], where, "std", positive=True, helps=REWRITE)
    base = Path(path).parent
    program = confined(meta["file"], base, "program", path, zoo=True)
    weights = confined(meta["weights"], base, "weights", path) if meta["weights"] else None
    return Embedding(
        program, meta["network"], tuple(meta["args"]), shape, weights, meta["at"], mean, std
    )


def confined(recorded, base: Path, what: str, path, zoo: bool = False) -> str:
    """A path recorded in the file, taken relative to the file's folder and allowed only inside it
    (links resolved); a zoo model's bare name where `zoo`."""
    if not recorded:
        fail(path, f"`meta` names no {what}")
    if zoo and _zoo_name(recorded):
        return recorded
    try:
        target = (base / recorded).resolve()
    except (ValueError, OSError) as exc:  # a NUL byte, a loop of links
        fail(
            path,
            f"`meta` names the {what} `{printable(recorded, 200)}`: {printable(str(exc), 100)}",
        )
    if not target.is_relative_to(base.resolve()):
        raise CnncError(
            error(
                "E0602",
                f"the features file `{printable(str(path))}` names the {what} `{printable(recorded, 200)}`, "
                "outside its own folder: cnnc does not follow it",
                None,
                helps=(
                    "give the run folder the features came from: `cnnc neighbors FILE --query IMAGE --run RUN`",
                    "or keep the program and weights in the features file's folder (or below it)",
                ),
            )
        )
    return str(target)


def _zoo_name(name: str) -> bool:
    from cnnc.dsl.programs import zoo_dir

    stem, _, network = name.partition(":")
    return (
        stem.isidentifier()
        and (not network or network.isidentifier())
        and (zoo_dir() / f"{stem}.cnn").is_file()
    )


def portable(path, base: Path) -> str | None:
    """How a features file records a program or weights file: relative to its own folder when inside
    it (the folder can move), else as given (and then not followed without `--run`)."""
    if path is None:
        return None
    text = str(path)
    if _zoo_name(text) and not Path(text).exists():
        return text
    resolved, root = Path(text).resolve(), base.resolve()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)
