"""Graph → latency: each layer timed once on a device, a network predicted as the sum of its layers.

The lookup-table model of FBNet (Wu et al., CVPR 2019): a layer's latency depends on what it
computes and where, not on the network around it, so a search measures each distinct layer once
and predicts a member's latency by adding up its layers' entries; `end_to_end` times the whole
lowered network, to check the sum against on a sample of members.

Contract:
- `layer_key(graph, node, batch, dtype, device)`: a node's entry name — its op, the torch call that
  runs it (`modules.layer`'s constructor and arguments, or a merge's function), its input shapes,
  the batch, dtype and device (with the CPU's thread count). Equal keys run the same computation.
  The input node has no key and costs nothing.
- `LatencyTable(device)`: {key: milliseconds}. `layers(graph)` gives each node's milliseconds,
  timing only the keys the table lacks (`measured` counts those timings); `predict(graph)` is their
  sum. A timing is the median of `REPEATS` runs after `WARMUP` runs (fewer for a slow one:
  `time_call`), each run synchronised on a GPU, at inference (`torch.inference_mode`, modules in eval mode), on random inputs.
- the table is kept in the user's cache folder (`$XDG_CACHE_HOME/cnnc/latency-<device>.json`,
  else `~/.cache/cnnc/…`; `CNNC_CACHE=off` keeps it in memory), written whole through `safefs`
  after each new timing. The file is untrusted data: it is read only when it is a regular file of
  at most `MAX_FILE_BYTES`, of JSON that is an object of cnnc's format with at most `MAX_ENTRIES`
  entries, each key a string of at most `MAX_KEY` characters and each value a finite number of
  milliseconds in (0, `MAX_MS`]. Anything else ignores the whole file with one note
  (`LatencyTable.notes`), and the next write replaces it. Nothing in it is run or evaluated: a key
  is only compared with the keys this module makes.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import statistics
import time
from pathlib import Path

import torch

from cnnc.compiler.ir import Graph, Node
from cnnc.compiler.lower import fx, modules
from cnnc.compiler.ops import Lowering
from cnnc.dsl import safefs

WARMUP = 3
REPEATS = 15
MIN_REPEATS = 3  # timed runs however slow each is
BUDGET_SECONDS = 1.0  # past this, a warm-up or a timing stops early (see `time_call`)
FORMAT = "cnnc-latency"
VERSION = 1
MAX_FILE_BYTES = 8 << 20
MAX_ENTRIES = 100_000
MAX_KEY = 2_000  # characters; a longer key is stored as its digest
MAX_MS = 600_000.0  # ten minutes: no layer of a network cnnc checks takes longer

_FUNCTIONS = {"operator.add": operator.add, "operator.mul": operator.mul}


class TimingFailed(Exception):
    """A layer did not run on the device (`layer` names it; `reason`: torch's first line)."""

    def __init__(self, layer: str, reason: str):
        super().__init__(f"`{layer}` did not run: {reason}")
        self.layer = layer
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Keys


def device_name(device: torch.device) -> str:
    """`cpu`, or `cuda-<the GPU's name>` (letters, digits and `-` only: it names the cache file)."""
    if device.type != "cuda":
        return device.type
    raw = torch.cuda.get_device_name(device)
    return "cuda-" + "".join(c if c.isascii() and c.isalnum() else "-" for c in raw).strip("-")


def device_text(device: torch.device) -> str:
    """The device part of a key: a CPU's latency depends on the threads torch runs on."""
    if device.type == "cpu":
        return f"cpu threads={torch.get_num_threads()}"
    return device_name(device)


def layer_key(graph: Graph, node: Node, batch: int, dtype: str, device: torch.device) -> str | None:
    """See the module docstring; None for the input."""
    kind = modules.kind(node)
    if kind is Lowering.INPUT:
        return None
    if kind is Lowering.MODULE:
        spec = modules.layer(graph, node)
        call = [spec.ctor, list(spec.args), dict(spec.kwargs)]
    elif kind is Lowering.MERGE:
        call = [modules.merge_function(node)]
    else:  # a LayerScale: the input times a parameter
        call = ["Parameter", list(modules.bare_parameter(node)[0])]
    shapes = [list(graph.node(i).type.shape) for i in node.inputs]
    text = json.dumps(
        [node.op, call, shapes, batch, dtype, device_text(device)], default=repr, sort_keys=True
    )
    return text if len(text) <= MAX_KEY else "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Timing


def time_call(run, device: torch.device) -> float:
    """Milliseconds `run()` takes: the median of `REPEATS` runs after `WARMUP`. A slow run
    shortens both: the warm-up ends past `BUDGET_SECONDS`, and so do the timed runs once
    `MIN_REPEATS` are done (a large network's end-to-end timing costs seconds, not minutes)."""
    with torch.inference_mode():
        spent = 0.0
        for _ in range(WARMUP):
            spent += _once(run, device)
            if spent > BUDGET_SECONDS:
                break
        times: list[float] = []
        while len(times) < REPEATS:
            times.append(_once(run, device))
            if len(times) >= MIN_REPEATS and sum(times) > BUDGET_SECONDS:
                break
    return statistics.median(times) * 1000.0


def _once(run, device: torch.device) -> float:
    """Seconds one `run()` takes, its GPU work included."""
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def node_call(graph: Graph, node: Node, batch: int, dtype: torch.dtype, device: torch.device):
    """A function that runs `node` once on random inputs of its input shapes."""
    inputs = [
        torch.randn(batch, *graph.node(i).type.shape, dtype=dtype, device=device)
        for i in node.inputs
    ]  # each [batch, *shape]
    kind = modules.kind(node)
    if kind is Lowering.MODULE:
        module = fx.instantiate(modules.layer(graph, node)).to(device=device, dtype=dtype).eval()
        return lambda: module(*inputs)
    if kind is Lowering.MERGE:
        function = modules.merge_function(node)
        if function == "torch.cat":
            return lambda: torch.cat(inputs, dim=1)
        fold = _FUNCTIONS[function]
        return lambda: _fold(fold, inputs)
    shape, value = modules.bare_parameter(node)
    scale = torch.full(shape, value, dtype=dtype, device=device)
    return lambda: inputs[0] * scale


def _fold(function, inputs):
    value = inputs[0]
    for other in inputs[1:]:  # a + b + c, folded left as the lowered forward does
        value = function(value, other)
    return value


def end_to_end(graph: Graph, device, batch: int = 1, dtype: str = "float32") -> float:
    """Milliseconds the whole lowered network (`to_graph_module`) takes per forward at `batch`."""
    device = torch.device(device)
    kind = getattr(torch, dtype)
    with own_random(device):
        model = fx.to_graph_module(graph, seed=0, device=device).to(dtype=kind).eval()
        inputs = fx.example_inputs(graph, batch, device=device)
        inputs = tuple(x.to(kind) for x in inputs)  # each [batch, *shape]
        return time_call(lambda: model(*inputs), device)


def own_random(device: torch.device):
    """Random inputs and weights drawn here leave torch's global generator as it was (a search's
    training draws from it after)."""
    devices = [device] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


# ---------------------------------------------------------------------------------------------
# The table


def cache_folder() -> Path | None:
    """cnnc's folder in the user's cache dir (as `dsl/astcache.py` finds it); None when caching
    is off."""
    if os.environ.get("CNNC_CACHE", "").lower() in ("0", "off", "no", "false"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnc"


class LatencyTable:
    """Measured layer latencies on one device (module docstring); `cache=False`: in memory only.
    A layer that fails to run raises `TimingFailed`."""

    def __init__(self, device, batch: int = 1, cache: bool = True):
        self.device = torch.device(device)
        self.batch = batch
        folder = cache_folder() if cache else None
        self.path = folder / f"latency-{device_name(self.device)}.json" if folder else None
        self.notes: list[str] = []
        self.measured = 0  # timings made by this table (the rest came from the file)
        self.entries: dict[str, float] = {}
        if self.path is not None:
            self.entries, note = read_table(self.path)
            if note:
                self.notes.append(note)

    def layers(self, graph: Graph, dtype: str = "float32") -> dict[int, float]:
        """{node id: milliseconds} for every node but the input, timing the keys not held."""
        out, new = {}, False
        with own_random(self.device):
            for node in graph.nodes_in_order():
                key = layer_key(graph, node, self.batch, dtype, self.device)
                if key is None:
                    continue
                if key not in self.entries:
                    self.entries[key] = self.time_node(graph, node, dtype)
                    self.measured += 1
                    new = True
                out[node.id] = self.entries[key]
        if new:
            self.save()
        return out

    def time_node(self, graph: Graph, node: Node, dtype: str) -> float:
        try:
            run = node_call(graph, node, self.batch, getattr(torch, dtype), self.device)
            return time_call(run, self.device)
        except (RuntimeError, MemoryError) as exc:  # a dtype the device lacks, out of memory
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TimingFailed(node.name, first) from None

    def predict(self, graph: Graph, dtype: str = "float32") -> float:
        """The network's latency as the sum of its layers' (milliseconds)."""
        return sum(self.layers(graph, dtype).values())

    def save(self) -> None:
        """Write the table, merged with what another process wrote meanwhile; a folder that
        cannot be written leaves the table in memory, with one note."""
        if self.path is None:
            return
        held, _ = read_table(self.path)
        merged = {**held, **self.entries}
        if len(merged) > MAX_ENTRIES:  # keep this run's entries, drop the file's oldest
            merged = dict(list(merged.items())[-MAX_ENTRIES:])
        data = {"format": FORMAT, "version": VERSION, "device": device_name(self.device)}
        text = json.dumps({**data, "entries": merged}, indent=0, sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            safefs.write_text(self.path, text)
        except OSError as exc:
            note = f"the latency table stays in memory: {self.path} cannot be written ({exc.strerror or exc})"
            if note not in self.notes:
                self.notes.append(note)
            self.path = None


def read_table(path: Path) -> tuple[dict[str, float], str | None]:
    """(the entries of the file at `path`, None), or ({}, why it is ignored); a missing file is
    an empty table without a note."""
    try:
        with safefs.open_regular(path, follow=False) as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):  # no table yet (or no folder to hold one)
        return {}, None
    except safefs.NotRegular as exc:
        return {}, _ignored(path, f"it is a {exc.what}, not a regular file")
    except OSError as exc:
        return {}, _ignored(path, str(exc.strerror or exc))
    if len(data) > MAX_FILE_BYTES:
        return {}, _ignored(path, f"it is larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {}, _ignored(path, "it is not JSON")
    problem = table_problem(value)
    if problem:
        return {}, _ignored(path, problem)
    return dict(value["entries"]), None


def table_problem(value) -> str | None:
    """What makes a parsed file no latency table of this format (module docstring), or None."""
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        return "it is not a cnnc latency table"
    if value.get("version") != VERSION:
        return "it is of another version"
    entries = value.get("entries")
    if not isinstance(entries, dict) or len(entries) > MAX_ENTRIES:
        return f"its entries are not an object of at most {MAX_ENTRIES:,} timings"
    for key, ms in entries.items():
        if len(key) > MAX_KEY:
            return f"a key is longer than {MAX_KEY:,} characters"
        if type(ms) not in (int, float) or not (math.isfinite(ms) and 0.0 < ms <= MAX_MS):
            return f"a timing is not a number of milliseconds in (0, {MAX_MS:g}]"
    return None


def _ignored(path: Path, why: str) -> str:
    return f"ignored the latency table {path}: {why}; it will be measured again and rewritten"
