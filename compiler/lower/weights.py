"""Checkpoints → a compiled module's parameters, with a report a person can read.

Contract of `load_weights(model, path, strict=True) -> WeightReport`:
- `path` is a `state_dict` saved as `.pt`/`.pth` (read with `torch.load(weights_only=True)`: loading
  never runs code from the file), possibly nested under `"state_dict"` or `"model"`, or a
  `.safetensors` file.
- Keys are compared with the model's by name and shape. A `module.` prefix on every key
  (`nn.DataParallel`) is stripped; the auxiliary classifiers torchvision's GoogLeNet and Inception v3
  checkpoints carry for training (`aux1`, `aux2`, `AuxLogits`) are skipped. Both are said in `notes`.
- A checkpoint is untrusted data (`read_checkpoint`, `load_torch_file`): it is opened only when it is
  a regular file (a FIFO or device is refused by type, never waited on); a `.pt` zip's unpacked size
  (its members' declared sizes) is checked against a budget before anything is expanded; every
  tensor must be a plain dense tensor with data (sparse, meta, quantised or complex ones are refused).
  Each refusal is E0902, one line naming the file.
- `strict=True` (the default): any missing, unexpected or differently shaped key raises `CnncError`
  (E0901) whose notes group the keys by module and name the likely cause; nothing is loaded then.
  `strict=False` loads every key that matches and reports the rest: the model's own values stay
  (newly initialised) for missing or reshaped keys. A load that would load nothing is an error
  either way.
- `into=LABEL` loads the checkpoint into the part with that label (`body`): its keys are the part's
  own (`conv1.weight` → `body.conv1.weight`); the rest of the network is left alone, and the
  checkpoint's keys the part lacks (a classifier's `fc.*`) are skipped and reported, not an error.
- A mismatch in which the keys differ by one prefix (`body.` added, or `backbone.` to remove) is
  recognised and the fix named: `--weights body=FILE` (`weights={"body": FILE}`), or the strip.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnc.dsl import safefs
from cnnc.dsl.diagnostics import CnncError, error, printable

NESTED = ("state_dict", "model")  # where training scripts put the weights inside a checkpoint
AUXILIARY = ("aux1.", "aux2.", "AuxLogits.")  # torchvision's training-only heads
SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
LISTED = 6  # modules named one by one in a report before "and N more"
MAX_CHECKPOINT_BYTES = 1 << 34  # 16 GiB unpacked: the bound when no network sizes the checkpoint
MIN_BUDGET = 1 << 30  # a network's checkpoint may unpack to 4 × its own tensors, and at least 1 GiB
MAX_RATIO = (
    200  # unpacked / packed bytes past 256 MiB: torch.save stores its members, a bomb deflates
)


@dataclass(frozen=True)
class WeightReport:
    loaded: tuple[str, ...]
    missing: tuple[str, ...]  # the model has them, the checkpoint does not
    unexpected: tuple[str, ...]  # the checkpoint has them, the model does not
    reshaped: tuple[tuple[str, tuple, tuple], ...]  # (key, checkpoint shape, model shape)
    notes: tuple[str, ...]
    head: str = ""  # the network's last module with weights: where a replaced head shows
    replaced: tuple[str, ...] = ()  # keys of a derived network's replaced layers: new by design
    part: str = ""  # the label loaded into (`into`), or "" for the whole network
    skipped: tuple[str, ...] = ()  # the checkpoint's keys the part lacks (a classifier's `fc.*`)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.reshaped)

    @property
    def new(self) -> tuple[str, ...]:
        """Keys that keep the model's own (freshly initialised) values."""
        return tuple(sorted(self.missing + tuple(k for k, _, _ in self.reshaped) + self.replaced))

    def lines(self) -> list[str]:
        """The report as lines: what loaded, then each kind of mismatch grouped by module."""
        into = f" into `{self.part}`" if self.part else ""
        out = [f"loaded {len(self.loaded):,} tensors{into}", *self.notes]
        if self.skipped:
            out.append(f"not in `{self.part}`, skipped: " + _group_leaves(self.skipped))
        if self.reshaped:
            out.append("of another shape: " + _group_shapes(self.reshaped))
        if self.missing:
            out.append("missing from the checkpoint: " + _group(self.missing))
        if self.unexpected:
            out.append("in the checkpoint but not in the network: " + _group(self.unexpected))
        return out


def read_checkpoint(
    path: str | Path, budget: int = MAX_CHECKPOINT_BYTES
) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file; a user error (E0902) for anything that is not one."""
    path = Path(path)
    if path.suffix == ".safetensors":
        data = _read_safetensors(path, budget)
    else:
        data = load_torch_file(path, budget)
    return checked_tensors(_state_dict(data, path), path)


def budget_for(model: nn.Module) -> int:
    """What a checkpoint for `model` may unpack to: its weights, an optimiser's state, some slack."""
    own = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return max(MIN_BUDGET, 4 * own)


def _unreadable(path: Path, reason: str) -> CnncError:
    return CnncError(
        error(
            "E0902",
            f"`{printable(str(path))}` is not a checkpoint cnnc can read: {reason}",
            None,
            notes=(
                (
                    "cnnc reads state_dicts only (torch.load with weights_only=True), "
                    "never pickled objects, so opening a checkpoint runs no code"
                ),
            ),
            helps=(
                (
                    "save the weights with torch.save(model.state_dict(), PATH) or "
                    "safetensors.torch.save_file"
                ),
            ),
        )
    )


def _opened(path: Path, follow: bool = True):
    """The checkpoint open for reading, only if it is a regular file (a FIFO would block); a link
    is followed only with `follow` (a file the user named, not an entry of a shared folder)."""
    try:
        return safefs.open_regular(path, follow=follow)
    except FileNotFoundError:
        raise CnncError(
            error(
                "E0902",
                f"no checkpoint file `{printable(str(path))}`",
                None,
                helps=("give the path of a .pt, .pth or .safetensors file",),
            )
        ) from None
    except safefs.NotRegular as exc:
        what = {"link": "symbolic link", "fifo": "FIFO (named pipe)"}.get(exc.what, exc.what)
        raise CnncError(
            error(
                "E0902",
                f"`{printable(str(path))}` is a {what}, not a checkpoint file",
                None,
                helps=("give the path of a .pt, .pth or .safetensors file",),
            )
        ) from None
    except OSError as exc:
        raise _unreadable(path, printable(exc.strerror or type(exc).__name__)) from None


def load_torch_file(path: Path, budget: int = MAX_CHECKPOINT_BYTES, follow: bool = True):
    """`torch.load(weights_only=True)` of a regular file whose unpacked size fits `budget` bytes."""
    with _opened(path, follow) as fh:
        _check_unpacked(fh, path, budget)
        try:
            with (
                warnings.catch_warnings()
            ):  # torch's advice on TorchScript and sparse files is not the user's
                warnings.simplefilter("ignore")
                return torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 — every reader failure is the file's, said in one line
            raise _unreadable(path, _first_line(exc)) from None


def _check_unpacked(fh, path: Path, budget: int) -> None:
    """A zip's members' declared sizes (torch's reader expands to those), else the file's size."""
    size = os.fstat(fh.fileno()).st_size
    try:  # is_zipfile itself raises on some damaged end records ("zipfiles that span multiple disks")
        infos = None
        if zipfile.is_zipfile(fh):
            with zipfile.ZipFile(fh) as archive:
                infos = archive.infolist()
    # NotImplementedError: a member made by a newer zip version ("zip file version 17.3")
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise _unreadable(path, _first_line(exc)) from None
    if infos is not None:
        size, packed = sum(i.file_size for i in infos), sum(i.compress_size for i in infos)
    else:
        packed = size
    fh.seek(0)
    if size > budget:
        raise CnncError(
            error(
                "E0902",
                f"`{printable(str(path))}` unpacks to {size:,} bytes, more than "
                f"cnnc's budget of {budget:,} bytes for this checkpoint",
                None,
                notes=(
                    (
                        "the budget is 4 × the network's own weights, at least 1 GiB: "
                        "checked before anything is expanded"
                    ),
                ),
                helps=("save only the network's weights: torch.save(model.state_dict(), PATH)",),
            )
        )
    if (
        size > MAX_RATIO * max(packed, 1) and size > MIN_BUDGET // 4
    ):  # torch.save stores, never deflates
        raise _unreadable(
            path,
            f"it unpacks {size // max(packed, 1):,} times its {packed:,} packed bytes "
            "(a zip bomb?)",
        )


def _read_safetensors(path: Path, budget: int) -> dict:
    from safetensors.torch import load

    with _opened(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > budget:
            raise CnncError(
                error(
                    "E0902",
                    f"`{printable(str(path))}` is {size:,} bytes, more than cnnc's "
                    f"budget of {budget:,} bytes for this checkpoint",
                    None,
                    helps=("save only the network's weights",),
                )
            )
        try:
            return dict(load(fh.read()))
        except Exception as exc:  # noqa: BLE001 — a lying header is the file's fault, said in one line
            raise _unreadable(path, _first_line(exc)) from None


def _state_dict(data, path: Path) -> dict[str, torch.Tensor]:
    for key in NESTED:
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CnncError(
            error(
                "E0902",
                f"`{printable(str(path))}` holds no state_dict (a mapping of names to tensors)",
                None,
                helps=("save the weights with torch.save(model.state_dict(), PATH)",),
            )
        )
    return {str(k): v for k, v in data.items()}


def checked_tensors(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Every tensor plain, dense and holding data: anything else cannot be loaded into a module."""
    for key, t in state.items():
        problem = ""
        if type(t) not in (torch.Tensor, nn.Parameter):
            problem = f"a {type(t).__name__}"
        elif t.layout != torch.strided:
            problem = f"a {str(t.layout).removeprefix('torch.')} tensor"
        elif t.device.type != "cpu":
            problem = f"a tensor without data (on device `{t.device.type}`)"
        elif t.is_quantized:
            problem = "a quantised tensor"
        elif t.is_complex():
            problem = "a complex tensor"
        if problem:
            raise CnncError(
                error(
                    "E0902",
                    f"`{printable(str(path))}` holds {problem} at `{printable(key)}`: "
                    "cnnc loads plain dense tensors only",
                    None,
                    helps=(
                        "save dense weights: `.to_dense()` a sparse tensor, `.dequantize()` a quantised one",
                    ),
                )
            )
    return state


def load_weights(
    model: nn.Module, path: str | Path, strict: bool = True, into: str = ""
) -> WeightReport:
    """Load a checkpoint into `model`, or into its part labelled `into` (see the module docstring);
    returns what happened.

    A derived network (`network pets = resnet50 with { fc: Linear(37) }`) loads its parent's
    checkpoint strictly: the tensors of the layers it replaced are expected to differ, and are
    reported as newly initialised instead of as a mismatch."""
    own = part_state(model, into)
    state, notes = normalise(read_checkpoint(path, budget_for(model)), own if not into else {})
    if into:
        state = {f"{into}.{k}": v for k, v in state.items()}
    report = compare(own, state, notes)
    graph = getattr(model, "cnnc_graph", None)
    replaced = tuple(".".join(p) + "." for p in getattr(graph, "replaced", ()))
    if replaced:
        report = set_aside(report, replaced)
    if into:
        report = _set_skipped(report, into)
    if strict and not report.ok:
        raise CnncError(mismatch_error(report, path))
    if not report.loaded and (state or own):
        raise CnncError(nothing_loaded(report, path))
    matching = {k: state[k] for k in report.loaded}
    with torch.no_grad():
        model.load_state_dict(matching, strict=False)
    return report


def part_state(model: nn.Module, into: str) -> dict:
    """The state_dict keys a load compares against: the whole network's, or one part's (full keys)."""
    if not into:
        return model.state_dict()
    modules = dict(model.named_modules())
    if into not in modules:
        from difflib import get_close_matches

        near = get_close_matches(into, [n for n in modules if n and "." not in n], n=3)
        raise CnncError(
            error(
                "E0901",
                f"no part `{into}` to load weights into: the network has no module with that label",
                None,
                helps=(f"labels near it: {', '.join(near)}",)
                if near
                else ("`cnnc summary FILE` lists the labels",),
            )
        )
    return {f"{into}.{k}": v for k, v in modules[into].state_dict().items()}


def _set_skipped(report: WeightReport, into: str) -> WeightReport:
    """A part's load: the checkpoint's keys the part lacks are skipped (said), not unexpected."""
    from dataclasses import replace

    skipped = tuple(k.removeprefix(f"{into}.") for k in report.unexpected)
    return replace(report, unexpected=(), skipped=skipped, part=into)


def nothing_loaded(report: WeightReport, path) -> object:
    where = f"`{report.part}`" if report.part else "the network"
    theirs = len(report.unexpected) + len(report.skipped) + len(report.reshaped)
    return error(
        "E0901",
        f"no tensor of the checkpoint `{Path(path).name}` fits {where}: {theirs:,} in the "
        f"checkpoint, {len(report.missing) + len(report.reshaped):,} here, none loaded",
        None,
        notes=tuple(report.lines()[1:]) + tuple(causes(report)),
        helps=prefix_helps(report) or ("check that the checkpoint is of this architecture",),
    )


def set_aside(report: WeightReport, replaced: tuple[str, ...]) -> WeightReport:
    """Mismatches under the replaced layers are what replacing means: new, not an error."""

    def mine(key: str) -> bool:
        return key.startswith(replaced)

    new = tuple(k for k in report.missing if mine(k)) + tuple(
        k for k, _, _ in report.reshaped if mine(k)
    )
    dropped = tuple(k for k in report.unexpected if mine(k))
    notes = report.notes + (
        (
            f"replaced layers, newly initialised: {', '.join(sorted(new))}"
            + (f"; the parent's {', '.join(dropped)} not used" if dropped else ""),
        )
        if new or dropped
        else ()
    )
    return WeightReport(
        report.loaded,
        tuple(k for k in report.missing if not mine(k)),
        tuple(k for k in report.unexpected if not mine(k)),
        tuple(r for r in report.reshaped if not mine(r[0])),
        notes,
        report.head,
        new,
    )


def normalise(state: dict, own: dict) -> tuple[dict, tuple[str, ...]]:
    """Strip DataParallel's `module.` prefix and drop training-only auxiliary heads, saying so."""
    notes = []
    if (
        state
        and all(k.startswith("module.") for k in state)
        and not any(k.startswith("module.") for k in own)
    ):
        state = {k.removeprefix("module."): v for k, v in state.items()}
        notes.append("stripped the `module.` prefix nn.DataParallel writes")
    aux = [k for k in state if k.startswith(AUXILIARY) and k not in own]
    if aux:
        heads = sorted({k.split(".")[0] for k in aux})
        notes.append(
            f"skipped {len(aux)} tensors of the training-only auxiliary classifiers "
            f"{', '.join(f'`{h}`' for h in heads)}"
        )
        state = {k: v for k, v in state.items() if k not in set(aux)}
    return state, tuple(notes)


def compare(own: dict, state: dict, notes: tuple[str, ...]) -> WeightReport:
    loaded, reshaped = [], []
    for key, value in state.items():
        if key in own:
            if tuple(own[key].shape) == tuple(value.shape):
                loaded.append(key)
            else:
                reshaped.append((key, tuple(value.shape), tuple(own[key].shape)))
    missing = tuple(k for k in own if k not in state)
    unexpected = tuple(k for k in state if k not in own)
    head = next(reversed(own)).rpartition(".")[0] if own else ""
    return WeightReport(tuple(loaded), missing, unexpected, tuple(reshaped), notes, head)


def mismatch_error(report: WeightReport, path) -> object:
    counts = [
        f"{len(report.missing)} missing" if report.missing else "",
        f"{len(report.unexpected)} unexpected" if report.unexpected else "",
        f"{len(report.reshaped)} of another shape" if report.reshaped else "",
    ]
    where = f"the part `{report.part}`" if report.part else "the network"
    headline = f"the checkpoint `{Path(path).name}` does not fit {where}: " + ", ".join(
        c for c in counts if c
    )
    return error(
        "E0901",
        headline,
        None,
        notes=tuple(report.lines()[1:]) + tuple(causes(report)),
        helps=prefix_helps(report) or (PARTIAL_HELP,),
    )


PARTIAL_HELP = (
    "load what matches and keep the rest newly initialised with strict=False "
    "(`--weights-partial` on the command line)"
)


def causes(report: WeightReport) -> list[str]:
    """The likely reasons, from the shape of the mismatch."""
    out = []
    if report.reshaped and {k.rpartition(".")[0] for k, _, _ in report.reshaped} == {report.head}:
        (key, theirs, ours) = report.reshaped[0]
        out.append(
            f"likely cause: a replaced head — `{key}` is {list(theirs)} in the checkpoint and "
            f"{list(ours)} here (another number of classes)"
        )
    prefix = uniform_prefix(report)
    if prefix is not None:
        added, p, count = prefix
        where = (
            "the network's keys are the checkpoint's"
            if added
            else "the checkpoint's keys are the network's"
        )
        out.append(
            f"likely cause: {where} with `{p}` in front ({count:,} tensors differ by that prefix alone)"
        )
    elif report.missing and report.unexpected:
        out.append(
            "likely cause: the checkpoint names modules differently (another architecture, or "
            "labels that differ from the reference's)"
        )
    return out


def uniform_prefix(report: WeightReport) -> tuple[bool, str, int] | None:
    """(added, prefix, count) when most of the mismatch is one prefix: the network's keys are the
    checkpoint's with `prefix` added (added=True), or the checkpoint's are the network's with it;
    None otherwise. "Most": at least half of the smaller side's keys."""
    missing, unexpected = set(report.missing), set(report.unexpected) | set(report.skipped)
    best = None
    for added, longer, shorter in ((True, missing, unexpected), (False, unexpected, missing)):
        for p in _prefixes(longer):
            count = sum(1 for k in shorter if p + k in longer)
            if count and (best is None or count > best[2]):
                best = (added, p, count)
    if best is None or best[2] * 2 < min(len(missing), len(unexpected)):
        return None
    return best


def _prefixes(keys, depth: int = 3, most: int = 64) -> list[str]:
    """The dotted prefixes (`body.`, `backbone.body.`) of the keys, up to `depth` parts."""
    found: dict[str, None] = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, min(depth, len(parts) - 1) + 1):
            found.setdefault(".".join(parts[:n]) + ".", None)
            if len(found) >= most:
                return list(found)
    return list(found)


def prefix_helps(report: WeightReport) -> tuple[str, ...]:
    """The fix of a uniform prefix difference, as text to paste."""
    prefix = uniform_prefix(report)
    if prefix is None:
        return ()
    added, p, _ = prefix
    label = p.rstrip(".")
    if added:
        return (
            (
                f"load the checkpoint into that part: `--weights {label}=FILE` on the command line, "
                f'weights={{"{label}": FILE}} in cnnc.load'
            ),
        )
    return (
        (
            f'strip the prefix: state = torch.load(FILE); torch.save({{k.removeprefix("{p}"): v for k, v in '
            f'state.items() if k.startswith("{p}")}}, "stripped.pth"), then load stripped.pth'
        ),
    )


def _group(keys) -> str:
    modules: dict[str, list[str]] = {}
    for key in keys:
        module, _, leaf = key.rpartition(".")
        modules.setdefault(module or "(top)", []).append(leaf)
    shown = [f"`{m}` ({', '.join(leaves)})" for m, leaves in list(modules.items())[:LISTED]]
    more = len(modules) - LISTED
    return "; ".join(shown) + (f"; and {more} more modules" if more > 0 else "")


def _group_leaves(keys) -> str:
    """Like `_group`, with a name many modules share said once (`num_batches_tracked` of 53 modules)."""
    from collections import Counter

    leaves = Counter(k.rpartition(".")[2] for k in keys)
    common = [leaf for leaf, n in leaves.items() if n > LISTED]
    shown = [f"`{leaf}` of {leaves[leaf]} modules" for leaf in common]
    rest = [k for k in keys if k.rpartition(".")[2] not in common]
    return "; ".join(shown + ([_group(rest)] if rest else []))


def _group_shapes(items) -> str:
    shown = [
        f"`{k}` {list(theirs)} in the checkpoint, {list(ours)} here"
        for k, theirs, ours in items[:LISTED]
    ]
    more = len(items) - LISTED
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
