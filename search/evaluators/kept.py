"""The trained supernet kept in the study folder, so that a resumed one-shot search scores its new
trials with the weights that scored the old ones instead of training the supernet again.

Input: the study folder, a built `Supernet` and the `key` of what its training depends on. Output:
`save` writes `supernet.safetensors` (the store's tensors; in its metadata the key and what training
cost: its counts and seconds) through `safefs` (a temporary file and a rename: a planted link is replaced, never written
through); `load` fills the supernet from it and returns that training, or says why it cannot;
`load_or_train` is the two evaluators' use of both (the supernet's and DARTS').

Contract:
- `key` is a digest of everything the trained weights depend on: the space's fingerprint, the
  training split's tensors, the seed, epochs, batch size, learning rate, optimiser, label smoothing,
  budgets and the rule that draws the paths. Another key is another supernet: trained again.
- The file is a user's data (another person's study folder): it is read only if it is a regular
  file (not a link, FIFO or device) no larger than the supernet's own tensors and `HEADER_MOST`
  bytes of header, parsed by safetensors (no code runs), and used only if its key matches and it
  holds exactly the supernet's tensor names, shapes and dtypes, every value finite. Anything else
  is a reason, said in the search's note, to train again and replace it; never an error, never a
  partial load.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from dataclasses import fields, replace
from pathlib import Path

import torch

from cnnc.dsl import safefs
from cnnc.dsl.diagnostics import printable

FILE = "supernet.safetensors"
HEADER_MOST = 1 << 20  # bytes of header (names, shapes, metadata) a kept supernet may have
KEYED = ("seed", "epochs", "batch_size", "lr", "optimizer", "label_smoothing")
KEYED += ("max_params", "max_macs")


def key(settings, data, fingerprint: str, rule: str) -> str:
    """The digest of what the trained weights depend on (module docstring)."""
    h = hashlib.sha256()
    chosen = {name: getattr(settings, name) for name in KEYED}
    h.update(json.dumps([fingerprint, rule, chosen], sort_keys=True, default=str).encode())
    h.update(training_digest(data))
    return h.hexdigest()


_HASHED: list[tuple[object, object, bytes]] = []  # (train_x, train_y, digest): the last data set


def training_digest(data) -> bytes:
    """sha256 of the training split's tensors (their dtypes, shapes and bytes), once per data set:
    a search asks for its study's record and for its evaluator's file, and a CIFAR-sized split is
    hundreds of MB to hash."""
    for x, y, digest in _HASHED:
        if x is data.train_x and y is data.train_y:
            return digest
    h = hashlib.sha256()
    for tensor in (data.train_x, data.train_y):
        tensor = tensor.detach().cpu().contiguous()
        h.update(repr((str(tensor.dtype), tuple(tensor.shape))).encode())
        h.update(memoryview(tensor.view(torch.uint8).reshape(-1).numpy()))
    _HASHED[:] = [(data.train_x, data.train_y, h.digest())]
    return _HASHED[0][2]


def load_or_train(folder, module, digest: str, template, train, device, file: str = FILE):
    """(the training, whether it was loaded, what the note adds): `load` into `module` (then
    moved to `device`) when `folder` is given, else `train()`, then `save` into `folder` when
    given. A file not loaded is said, and so is one that cannot be written (the search goes on:
    its trials do not need it)."""
    training, why = load(folder, module, digest, template, file) if folder else (None, None)
    if training is not None:
        module.to(device)
        return training, True, ""
    training = train()
    said = f"; {why}, so not loaded" if why else ""
    if folder:
        try:
            save(folder, module, digest, training, file)
        except OSError as exc:
            said += f"; not kept in {file} ({printable(exc.strerror or type(exc).__name__)})"
    return training, False, said


def save(folder: Path, net: torch.nn.Module, digest: str, training, file: str = FILE) -> None:
    """Write the supernet's tensors (a `Supernet`, or DARTS' with its α) to `folder/file`, with
    `digest` and `training` (a dataclass) as metadata."""
    from safetensors.torch import save as to_bytes

    state = {name: t.detach().cpu().contiguous() for name, t in net.state_dict().items()}
    meta = {"cnnc": "supernet", "key": digest, "training": json.dumps(costs(training))}
    safefs.write_bytes(Path(folder) / file, to_bytes(state, metadata=meta))


def load(folder: Path, net: torch.nn.Module, digest: str, template, file: str = FILE):
    """(`template`, a dataclass, with the kept training's counts and seconds, None) after filling
    `net` from `folder/file`, or (None, why it was not used) — (None, None) when there is no
    file."""
    path = Path(folder) / file
    what = safefs.kind(path)
    if what == "missing":
        return None, None
    if what != "file":
        return None, f"{file} is a {what}, not a file"
    own = net.state_dict()
    most = HEADER_MOST + 8 + sum(t.numel() * t.element_size() for t in own.values())
    try:
        with safefs.open_regular(path, follow=False) as fh:
            if os.fstat(fh.fileno()).st_size > most:
                return None, f"{file} is larger than this supernet's weights"
            raw = fh.read(most + 1)
    except OSError as exc:
        return None, f"{file} cannot be read ({printable(exc.strerror or type(exc).__name__)})"
    meta = _metadata(raw)
    if meta is None or meta.get("cnnc") != "supernet":
        return None, f"{file} is not a supernet cnnc saved"
    if meta.get("key") != digest:
        return None, f"{file} holds the supernet of other settings, data or space"
    training = _training(meta.get("training"), template)
    state = _tensors(raw)
    if training is None or state is None or not _same(state, own):
        return None, f"{file} does not hold this supernet's weights"
    net.load_state_dict(state)
    return training, None


def _metadata(raw: bytes) -> dict | None:
    """The safetensors header's `__metadata__`, or None for bytes that are not safetensors'."""
    if len(raw) < 8:
        return None
    (size,) = struct.unpack("<Q", raw[:8])
    if size > HEADER_MOST or 8 + size > len(raw):
        return None
    try:
        header = json.loads(raw[8 : 8 + size])
    except (ValueError, RecursionError):
        return None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else None


MOST = 10**15  # a count or a number of seconds a kept training may say


def costs(training) -> dict:
    """The training's counts and seconds (its `int` and `float` fields): what the file keeps. The
    rest (the rule, whether the cover was sampled) is the run's own, never read from the file."""
    return {f.name: getattr(training, f.name) for f in fields(training) if f.type in NUMBERS}


NUMBERS = ("int", "float")  # field types as the dataclasses declare them (postponed annotations)


def _training(text, template):
    """`template` with the counts and seconds the file keeps (`costs`), each of its field's type,
    finite and within [0, MOST]; None for anything else."""
    try:
        values = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        return None
    types = {f.name: f.type for f in fields(template) if f.type in NUMBERS}
    if not isinstance(values, dict) or set(values) != set(types):
        return None
    for name, value in values.items():
        if not _number(value, types[name]):
            return None
    return replace(template, **values)


def _number(value, declared: str) -> bool:
    """A JSON number of the declared type (`int`, or `float`, which an int is too; a bool is
    neither), finite, within [0, MOST]."""
    if isinstance(value, bool) or not isinstance(value, int if declared == "int" else (int, float)):
        return False
    return math.isfinite(value) and 0 <= value <= MOST


def _tensors(raw: bytes) -> dict | None:
    from safetensors.torch import load as from_bytes

    try:
        return dict(from_bytes(raw))
    except Exception:  # noqa: BLE001 — a damaged or lying file is a reason to train again
        return None


def _same(state: dict, own: dict) -> bool:
    """The same names, shapes and dtypes as the supernet's own tensors, every value finite."""
    if set(state) != set(own):
        return False
    for name, tensor in state.items():
        mine = own[name]
        if type(tensor) is not torch.Tensor or tensor.layout != torch.strided:
            return False
        if tensor.shape != mine.shape or tensor.dtype != mine.dtype:
            return False
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return False
    return True
