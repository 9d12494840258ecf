"""Data sets and checkpoints for the fuzzer: a small valid one of each kind, given one hostile edit,
then trained on with `cnnc train` (the worker's audit hook watching).

A case is JSON text, `{"kind": …, "mutation": …, "seed": …}` (`request(rng)`); `run_case` rebuilds
its files from it under `SANDBOX/data` (so a saved case reproduces) and runs `cnnc train` in the
worker's process. Expected endings: `trained` (exit 0) and `rejected` (exit 1 with a diagnostic).
Anything else is a bug: `bug:internal` (exit 70 or an escaping exception), `bug:usage` (exit 2),
`bug:diagnostics` (raw control characters or a file's contents on the terminal); the worker adds
`bug:escape`, `bug:hang` and `bug:memory`.

Kinds: `folder` (PNGs in class folders), `npz`, `cifar` (pickled batches), `weights` (`--weights`:
.pt and .safetensors) and `resume` (a run's `checkpoint.pt` under `--resume`).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import re
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

CANARY = "cnnc-fuzz-canary"  # the worker reports a payload that ran by this file in the sandbox
NETWORK = """network tiny(classes = 2) {
    input [3, 8, 8]
    return in -> conv: Conv(4, 3, pad = 1) -> bn: BatchNorm -> ReLU -> GlobalAvgPool -> Flatten -> fc: Linear(classes)
}
"""


class Payload:
    """What a hostile pickle carries: a call made on loading (the canary shows it ran)."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


# ---------------------------------------------------------------------------------------------
# Byte-level edits, shared by every kind


def flip(rng: random.Random, blob: bytes) -> bytes:
    data = bytearray(blob)
    for _ in range(rng.choice((1, 2, 8, 64))):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def truncate(rng: random.Random, blob: bytes) -> bytes:
    return blob[: rng.randrange(len(blob) + 1)]


def declare(rng: random.Random, blob: bytes) -> bytes:
    """A zip whose central directory declares huge unpacked sizes (what a bomb declares)."""
    data = bytearray(blob)
    at = data.find(b"PK\x01\x02")
    while at != -1:
        if rng.random() < 0.7:
            data[at + 24 : at + 28] = struct.pack("<I", rng.choice((0xFFFFFFFF, 1 << 31, 0)))
        at = data.find(b"PK\x01\x02", at + 4)
    return bytes(data)


def png_header(width: int, height: int) -> bytes:
    """A PNG declaring width × height pixels, holding almost none."""

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


def special(rng: random.Random, path: Path, named: bool = False) -> None:
    """Something at `path` that is no regular file: a FIFO, a folder, a link to a device or (for an
    entry of a folder, not a file the user `named`) a link out of the folder."""
    what = rng.choice(
        ("fifo", "dev", "dir") if named else ("fifo", "passwd", "dev", "dir", "outside")
    )
    if what == "fifo":
        os.mkfifo(path)
    elif what == "dir":
        path.mkdir()
    else:
        os.symlink(
            {"passwd": "/etc/passwd", "dev": "/dev/zero", "outside": "../../../outside.png"}[what],
            path,
        )


# ---------------------------------------------------------------------------------------------
# folder:DIR


def make_folder(rng: random.Random, root: Path, mutation: str) -> str:
    from PIL import Image

    for name in ("ant", "bee"):
        (root / name).mkdir(parents=True)
        for k in range(4):
            Image.new("RGB", (8, 8), (60 * k, 90, 200 if name == "bee" else 20)).save(
                root / name / f"{k}.png"
            )
    target = root / rng.choice(("ant", "bee")) / f"{rng.randrange(4)}.png"
    if mutation == "bomb":
        side = rng.choice((5000, 6000, 20_000, 100_000, 1 << 31))
        target.write_bytes(png_header(side, rng.choice((1, side))))
    elif mutation == "bytes":
        target.write_bytes(rng.choice((flip, truncate))(rng, target.read_bytes()))
    elif mutation == "special":
        target.unlink()
        special(rng, target)
    elif mutation == "linked_class":
        outside = root.parent / "elsewhere"
        shutil.copytree(root / "ant", outside)
        os.symlink(outside, root / rng.choice(("cat", "\x1b[31mred", "\u202eevil", "ant2")))
    elif mutation == "format":
        mode = rng.choice(("1", "L", "P", "RGBA", "CMYK", "I", "F", "LA", "I;16"))
        kind = rng.choice(("PNG", "GIF", "BMP", "TIFF", "JPEG", "WEBP", "EPS"))
        try:
            Image.new(mode, (rng.choice((1, 3, 8, 300)), rng.choice((1, 8, 2000))), 7).save(
                target, format=kind
            )
        except (OSError, ValueError, KeyError):
            target.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    elif mutation == "names":
        (root / "bee").rename(root / rng.choice(("b\x1b[2Jee", "b\nee", "\u202ebee", "bee\x07")))
    elif mutation == "empty":
        shutil.rmtree(root / rng.choice(("ant", "bee")))
        (root / "ant").mkdir(exist_ok=True)
    return f"folder:{root}"


# ---------------------------------------------------------------------------------------------
# npz:FILE


def npy(array, shape=None, descr=None) -> bytes:
    """`.npy` bytes of `array`, its header optionally lying about the shape or dtype."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    blob = buf.getvalue()
    if shape is None and descr is None:
        return blob
    header = io.BytesIO()
    fields = {
        "descr": descr or np.lib.format.dtype_to_descr(array.dtype),
        "fortran_order": False,
        "shape": shape if shape is not None else array.shape,
    }
    np.lib.format.write_array_header_1_0(header, fields)
    body = blob[len(blob) - array.nbytes :] if array.dtype != object else b""
    return header.getvalue() + body


def make_npz(rng: random.Random, path: Path, mutation: str) -> str:
    import numpy as np

    x = np.random.default_rng(rng.randrange(1 << 30)).random((12, 3, 8, 8)).astype(np.float32)
    y = np.arange(12) % 2
    members = {"x": npy(x), "y": npy(y)}
    if mutation == "values":
        bad = rng.choice((np.nan, np.inf, -np.inf, 1e300, 1e38))
        x64 = x.astype(np.float64)
        x64.flat[rng.randrange(x64.size)] = bad
        members["x"] = npy(x64)
    elif mutation == "shape":
        shape = rng.choice(
            (
                (12, 0, 8, 8),
                (12, 8, 8, 0),
                (0, 3, 8, 8),
                (12,),
                (12, 3, 8, 8, 1),
                (1 << 40, 3, 8, 8),
                (12, 1 << 20, 1 << 20, 3),
            )
        )
        members["x"] = npy(x, shape=shape)
    elif mutation == "dtype":
        members["x"] = npy(np.array([[[Payload(os.system, f"touch {CANARY}")]]] * 12, dtype=object))
    elif mutation == "labels":
        labels = rng.choice(
            (
                np.array([0, 1, -1] * 4),
                np.arange(12) * 10**9,
                np.arange(12) + 0.5,
                np.zeros((12, 1)),
                np.arange(7),
                np.array(["a"] * 12),
                np.arange(12) % 3,
            )
        )
        members["y"] = npy(labels)
    elif mutation == "layout":
        members["x"] = npy(
            rng.choice(
                (
                    x.transpose(0, 2, 3, 1),
                    x[:, 0],
                    (x * 255).astype(np.uint8),
                    x > 0.5,
                    x.astype(np.float16),
                    (x * 1000).astype(np.int16),
                )
            )
        )
    with zipfile.ZipFile(path, "w", rng.choice((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED))) as z:
        for name, blob in members.items():
            if mutation == "bomb" and name == "x":
                blob += b"\0" * (1 << 22)
            if not (mutation == "missing" and name == rng.choice("xy")):
                z.writestr(f"{name}.npy", blob)
    if mutation == "bytes":
        path.write_bytes(rng.choice((flip, truncate, declare))(rng, path.read_bytes()))
    elif mutation == "special":
        path.unlink()
        special(rng, path, named=True)
    return f"npz:{path}"


# ---------------------------------------------------------------------------------------------
# cifar10:DIR


def make_cifar(rng: random.Random, root: Path, mutation: str) -> str:
    import numpy as np

    root.mkdir()
    data = np.random.default_rng(rng.randrange(1 << 30)).integers(
        0, 256, (12, 3072), dtype=np.uint8
    )
    batch = {b"batch_label": b"fuzz", b"data": data, b"labels": [i % 2 for i in range(12)]}
    if mutation == "payload":
        call = rng.choice(
            ((os.system, f"touch {CANARY}"), (open, CANARY, "w"), (eval, f"open({CANARY!r}, 'w')"))
        )
        batch[rng.choice((b"data", b"labels", b"filenames"))] = Payload(*call)
    elif mutation == "types":
        key = rng.choice((b"data", b"labels"))
        batch[key] = rng.choice(
            (
                data.astype(np.float32),
                data.tolist(),
                "text",
                None,
                np.array([1.5] * 12),
                np.zeros((12, 3072), dtype=[("a", "u1")]),
                data[:, :100],
                {"a": 1},
            )
        )
    elif mutation == "container":
        batch = rng.choice(([data], (data,), data, "batch", 12))
    blob = pickle.dumps(batch, protocol=rng.randrange(6))
    if mutation == "numpy1":
        blob = pickle.dumps(batch, protocol=2).replace(b"numpy._core.", b"numpy.core.")
    if mutation == "bytes":
        blob = rng.choice((flip, truncate))(rng, blob)
    path = root / "data_batch_1"
    path.write_bytes(blob)
    if mutation == "special":
        path.unlink()
        special(rng, path)
    return f"cifar10:{root}"


# ---------------------------------------------------------------------------------------------
# --weights FILE and --resume


def state_dict(rng: random.Random):
    import torch

    return {
        "conv.weight": torch.randn(4, 3, 3, 3),
        "conv.bias": torch.zeros(4),
        "bn.weight": torch.ones(4),
        "bn.bias": torch.zeros(4),
        "bn.running_mean": torch.zeros(4),
        "bn.running_var": torch.ones(4),
        "bn.num_batches_tracked": torch.tensor(0),
        "fc.weight": torch.randn(2, 4),
        "fc.bias": torch.zeros(2),
    }


def make_weights(rng: random.Random, folder: Path, mutation: str) -> str:
    import torch

    state = state_dict(rng)
    key = rng.choice(sorted(state))
    if mutation == "tensors":
        state[key] = rng.choice(
            (
                lambda: state[key].to_sparse(),
                lambda: torch.empty(state[key].shape, device="meta"),
                lambda: state[key].to(torch.complex64),
                lambda: torch.zeros(7),
                lambda: state[key].half(),
                lambda: "text",
            )
        )()
    elif mutation == "payload":
        state[key] = Payload(os.system, f"touch {CANARY}")
    if rng.random() < 0.3 and mutation != "payload":
        from safetensors.torch import save

        path = folder / "w.safetensors"
        try:
            path.write_bytes(
                save({k: v.contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)})
            )
        except (ValueError, RuntimeError, TypeError):
            path.write_bytes(b"\x10\0\0\0\0\0\0\0" + b'{"a":1}' + b"\0" * 9)
    else:
        path = folder / "w.pt"
        wrapped = rng.choice((state, {"state_dict": state}, {"model": state}, [state]))
        if mutation == "payload":
            path.write_bytes(pickle.dumps(wrapped))
        else:
            torch.save(wrapped, path)
    if mutation == "bytes":
        path.write_bytes(rng.choice((flip, truncate, declare))(rng, path.read_bytes()))
    elif mutation == "special":
        path.unlink()
        special(rng, path, named=True)
    return str(path)


def mutate_checkpoint(rng: random.Random, path: Path, mutation: str) -> None:
    """Edit a real `checkpoint.pt` of `cnnc train`: a field, the optimiser, its bytes, or its kind."""
    import torch

    if mutation == "bytes":
        path.write_bytes(rng.choice((flip, truncate, declare))(rng, path.read_bytes()))
        return
    if mutation == "special":
        path.unlink()
        special(rng, path)
        return
    state = torch.load(path, weights_only=True)
    if mutation == "field":
        field = rng.choice(("model", "optimizer", "step", "epoch", "rows", "options"))
        state[field] = rng.choice((None, "text", -1, 10**12, True, [], {}, 1.5, state["model"]))
    elif mutation == "plain":
        state = state["model"]
    elif state["optimizer"].get("state"):
        entry = next(iter(state["optimizer"]["state"].values()))
        for k in entry:
            entry[k] = rng.choice((torch.zeros(5), torch.zeros(3, dtype=torch.int64), None, "x"))
    torch.save(state, path)


KINDS = {
    "folder": ("bomb", "bytes", "special", "linked_class", "format", "names", "empty", "none"),
    "npz": (
        "values",
        "shape",
        "dtype",
        "labels",
        "layout",
        "bomb",
        "missing",
        "bytes",
        "special",
        "none",
    ),
    "cifar": ("payload", "types", "container", "numpy1", "bytes", "special", "none"),
    "weights": ("tensors", "payload", "bytes", "special", "none"),
    "resume": ("field", "optimizer", "plain", "bytes", "special"),
}


def request(rng: random.Random) -> str:
    """The next case, as the text the driver saves with a bug."""
    kind = rng.choice(sorted(KINDS))
    return json.dumps(
        {"kind": kind, "mutation": rng.choice(KINDS[kind]), "seed": rng.randrange(1 << 30)}
    )


# ---------------------------------------------------------------------------------------------
# In the worker


def prepare(sandbox: Path) -> None:
    """Before the audit starts: matplotlib's settings in the sandbox and its fonts found, PIL's readers
    loaded, so that `cnnc train`'s own lazy work is not taken for an escape."""
    os.environ["MPLCONFIGDIR"] = str(sandbox / "cache" / "matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig = plt.figure()
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)
    Image.init()
    import safetensors.torch  # noqa: F401


def build(case: dict, sandbox: Path) -> list[str]:
    """Write the case's files under `sandbox/data`; the `cnnc train` arguments that use them."""
    rng = random.Random(case["seed"])
    box = sandbox / "data"
    shutil.rmtree(box, ignore_errors=True)
    box.mkdir()
    (box / "tiny.cnn").write_text(NETWORK)
    (sandbox / "outside.png").write_bytes(png_header(8, 8))
    run = [
        "train",
        str(box / "tiny.cnn"),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--out",
        str(box / "run"),
    ]
    kind, mutation = case["kind"], case["mutation"]
    if kind == "folder":
        return [*run, "--data", make_folder(rng, box / "images", mutation)]
    if kind == "npz":
        return [*run, "--data", make_npz(rng, box / "d.npz", mutation)]
    if kind == "cifar":
        return [*run, "--arg", "classes=10", "--data", make_cifar(rng, box / "cifar", mutation)]
    data = make_npz(rng, box / "d.npz", "none")
    if kind == "weights":
        return [*run, "--data", data, "--weights", make_weights(rng, box, mutation)]
    return [*run, "--data", data, "--resume"]


def run_case(sandbox: Path, text: str, quiet_cli, stderr_problem) -> tuple[str, str]:
    """(outcome, detail) of one case: its files built, then `cnnc train` on them."""
    case = json.loads(text)
    argv = build(case, sandbox)
    if case["kind"] == "resume":  # a real first epoch, then its checkpoint edited and resumed
        rc, _, err = quiet_cli(argv[:-1])
        if rc != 0:
            return "bug:internal", f"the first run failed: {_first(err)}"
        mutate_checkpoint(
            random.Random(case["seed"]),
            sandbox / "data" / "run" / "checkpoint.pt",
            case["mutation"],
        )
        argv[argv.index("--epochs") + 1] = "2"
    rc, _, err = quiet_cli(argv)
    problem = stderr_problem(err)
    if problem:
        return "bug:diagnostics", problem
    if rc == 0:
        return "trained", case["kind"]
    if rc == 1:
        codes = re.findall(r"error\[(\w+)\]", err)
        return "rejected", f"{case['kind']} {codes[0] if codes else 'error:'}"
    if rc == 2:
        return "bug:usage", _first(err)
    return "bug:internal", f"{case['kind']}/{case['mutation']}: {_first(err)}"


def _first(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else ""
