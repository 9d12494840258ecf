"""Mutants of a features file (`cnnc features`' `.npz`) and how the fuzz worker drives them through
`cnnc neighbors`: a file handed over may be hostile, and must end in exit 0, 1 or 2 with one
escaped message, never in exit 70, a traceback, a hang, a memory blow-up or a file read elsewhere.

`seed_file(folder)` writes a small valid file (and the program and the image it names) into
`folder`; `mutate(rng, data)` returns one mutant's bytes; `run_case(path, quiet_cli)` classifies
how `neighbors` ended, as `worker.run_case` does for `.cnn` files.
"""

from __future__ import annotations

import io
import json
import random
import re
import struct
import zipfile
from pathlib import Path

import numpy as np

KEYS = ("features", "labels", "split", "paths", "thumbs", "meta")
PROGRAM = (
    "network tiny {\n    input [1, 8, 8]\n    return in -> conv: Conv(4, 3, pad = 1) -> ReLU\n"
    "              -> body: (Conv(6, 3, pad = 1) -> ReLU) -> GlobalAvgPool -> Flatten -> fc: Linear(3)\n}\n"
)
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
N = 12


def seed_arrays(rng: random.Random | None = None) -> tuple[dict, dict]:
    gen = np.random.default_rng(0 if rng is None else rng.randrange(2**32))
    arrays = {
        "features": gen.standard_normal((N, 6)).astype(np.float32),
        "labels": np.arange(N) % 3,
        "split": (np.arange(N) % 4 == 0).astype(np.int8),
        "paths": np.array([f"digits#{i}" for i in range(N)]),
        "thumbs": gen.integers(0, 255, (N, 8, 8, 1), dtype=np.uint8),
    }
    meta = {
        "file": "tiny.cnn",
        "network": "tiny",
        "args": [],
        "input": [1, 8, 8],
        "weights": None,
        "at": "body",
        "mean": [0.0],
        "std": [1.0],
        "data": "digits",
        "classes": ["zero", "one", "two"],
        "run": None,
    }
    return arrays, meta


def seed_file(folder: Path) -> bytes:
    """A valid features file's bytes; the program it names and a query image go into `folder`."""
    from PIL import Image

    (folder / "tiny.cnn").write_text(PROGRAM)
    Image.fromarray(np.full((8, 8), 9, np.uint8)).convert("RGB").save(folder / "q.png")
    return pack(*seed_arrays())


def npy(array, allow_pickle: bool = False) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, np.asanyarray(array), allow_pickle=allow_pickle)
    return out.getvalue()


def pack(arrays: dict, meta, members: dict | None = None) -> bytes:
    """A zip of `.npy` members: the arrays, `meta` as JSON text (or given raw), and raw `members`."""
    out = io.BytesIO()
    raw = dict(members or {})
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for key, value in arrays.items():
            z.writestr(f"{key}.npy", raw.pop(key, None) or npy(value))
        if meta is not None:
            z.writestr(
                "meta.npy",
                raw.pop("meta", None)
                or npy(np.array(meta if isinstance(meta, str) else json.dumps(meta))),
            )
        for key, data in raw.items():
            z.writestr(f"{key}.npy", data)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Mutators: (rng, arrays, meta) → bytes


def drop_key(rng, a, m):
    key = rng.choice(KEYS)
    return pack({k: v for k, v in a.items() if k != key}, None if key == "meta" else m)


def extra_key(rng, a, m):
    return pack(a, m, {rng.choice(["extra", "../evil", "features.npy"]): npy(np.zeros(3))})


def object_array(rng, a, m):
    key = rng.choice(KEYS[:5])
    return pack(a, m, {key: npy(np.array([{"x": 1}, None], dtype=object), allow_pickle=True)})


def wrong_dtype(rng, a, m):
    key = rng.choice(KEYS[:5])
    kinds = [np.int32, np.float64, np.complex64, np.bool_, "U3", "S4", [("a", "i4"), ("b", "f4")]]
    return pack(dict(a, **{key: np.zeros(a[key].shape, dtype=rng.choice(kinds))}), m)


def wrong_shape(rng, a, m):
    key = rng.choice(KEYS[:5])
    shapes = [
        (),
        (N,),
        (N, 2, 2, 2, 2),
        (N - 1, *a[key].shape[1:]),
        (0, *a[key].shape[1:]),
        (N, 0, 8, 1),
        (N, 8, 8, 5),
    ]
    shape = rng.choice(shapes)
    return pack(dict(a, **{key: np.zeros(shape, dtype=a[key].dtype)}), m)


def few(rng, a, m):
    """A valid file of one to three images of one or two dimensions (maps and queries at the edge)."""
    n, d = rng.randint(1, 3), rng.randint(1, 2)
    small = {k: v[:n] for k, v in a.items()}
    small["features"] = a["features"][:n, :d]
    return pack(small, m)


def bad_values(rng, a, m):
    key, value = rng.choice(
        [
            ("features", np.nan),
            ("features", np.inf),
            ("labels", -1),
            ("labels", 2**40),
            ("split", 2),
            ("split", -1),
        ]
    )
    changed = a[key].astype(np.float32 if key == "features" else np.int64)
    changed.flat[rng.randrange(changed.size)] = value
    return pack(dict(a, **{key: changed}), m)


def huge_header(rng, a, m):
    """A member whose header declares far more than it holds (memory must not be sized by it)."""
    key = rng.choice(KEYS[:5])
    shape = rng.choice([(10**12, 6), (2**31, 2**31), (N, 10**10)])[: a[key].ndim] or (10**12,)
    header = npy(a[key])
    text = header.decode("latin-1")
    start = text.index("'shape': (") + len("'shape': (")
    end = text.index(")", start)
    new = text[:start] + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + text[end:]
    return pack(a, m, {key: new.encode("latin-1")})


def huge_declared_size(rng, a, m):
    """The zip's directory declares members of 4 GiB each (a bomb's signature): refused unexpanded."""
    data = bytearray(pack(a, m))
    at = data.find(b"PK\x01\x02")  # the central directory's entries
    while at >= 0:
        if rng.random() < 0.8:
            struct.pack_into("<I", data, at + 24, 0xFFFF0000)  # the uncompressed size
        at = data.find(b"PK\x01\x02", at + 4)
    return bytes(data)


def zip_bomb(rng, a, m):
    """A real bomb, small: a member that expands 1000-fold, with a header that matches."""
    big = np.zeros((20_000, 50), np.float32)  # 4 MB of zeros, a few KB deflated
    return pack(dict(a, features=big), m)


def meta_field(rng, a, m):
    key, value = rng.choice(
        [
            ("file", "/etc/passwd"),
            ("file", "../../../../etc/passwd"),
            ("file", "tiny.cnn\x00"),
            ("weights", "/etc/shadow"),
            ("weights", "../model.pt"),
            ("input", [3, 100_000, 100_000]),
            ("input", [1, -8, 8]),
            ("input", "8x8"),
            ("input", [1, 8]),
            ("mean", [float("nan")]),
            ("std", [0.0]),
            ("mean", [1.0, 2.0]),
            ("at", "$\\frac{"),
            ("at", "conv\x1b[2J"),
            ("at", "nope"),
            ("network", "ti ny"),
            ("classes", ["\x1b[31mred\u202e", "b", "c"]),
            ("classes", ["$\\frac{", "$x^$", "\\"]),
            ("classes", [1, 2, 3]),
            ("classes", ["x"] * 2_000_000),
            ("args", ["classes=" + "9" * 100]),
            ("args", "x=1"),
            ("args", [["a"]]),
            ("run", 7),
            ("data", None),
        ]
    )
    return pack(a, json.dumps(dict(m, **{key: value}), allow_nan=True))


def meta_text(rng, a, m):
    return pack(
        a, rng.choice(["not json", "[1, 2]", "null", "{" * 100_000, '"x"', json.dumps(m)[:40]])
    )


def bytes_level(rng, a, m):
    data = bytearray(pack(a, m))
    how = rng.choice(["truncate", "flip", "garbage", "empty"])
    if how == "truncate":
        return bytes(data[: rng.randrange(len(data))])
    if how == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    return b"" if how == "empty" else bytes(rng.randrange(256) for _ in range(rng.randint(1, 500)))


MUTATORS = (
    drop_key,
    extra_key,
    object_array,
    wrong_dtype,
    wrong_shape,
    few,
    bad_values,
    huge_header,
    huge_declared_size,
    zip_bomb,
    meta_field,
    meta_text,
    bytes_level,
)


def mutate(rng: random.Random) -> tuple[str, bytes]:
    """(the mutator's name, a mutant features file's bytes)."""
    arrays, meta = seed_arrays(rng)
    fn = rng.choice(MUTATORS)
    return fn.__name__, fn(rng, arrays, meta)


# ---------------------------------------------------------------------------------------------
# Driving a mutant through `cnnc neighbors`


def run_case(path: Path, quiet_cli, stderr_problem) -> tuple[str, str]:
    """(outcome, detail): `rejected` (some query exit 1 or 2), `ran` (every query worked), or `bug:*`.
    Every query runs: one refused does not hide a failure of the next."""
    folder = path.parent
    refused = ""
    for argv in (
        ["neighbors", str(path), "--query", "0", "-k", "3", "--out", str(folder / "n.png")],
        [
            "neighbors",
            str(path),
            "--query",
            str(folder / "q.png"),
            "-k",
            "3",
            "--out",
            str(folder / "n.png"),
        ],
        ["neighbors", str(path), "--map", "--out", str(folder / "map.png")],
    ):
        rc, out, err = quiet_cli(argv)
        problem = stderr_problem(err) or (
            "raw control character on stdout" if RAW_CONTROL.search(out) else ""
        )
        if problem:
            return "bug:diagnostics", problem
        if rc in (-1, 70):
            return "bug:internal", (err.strip().splitlines() or ["no message"])[0][:300]
        if rc != 0 and not refused:
            codes = re.findall(r"error\[(\w+)\]", err)
            refused = codes[0] if codes else f"exit {rc}"
    return ("rejected", refused) if refused else ("ran", "")
