"""The budgets of one elaboration: what a .cnn file may cost, checked before the cost is paid.

A .cnn file is untrusted data (STYLE.md rule 13): a few lines must not exhaust memory or time. Each
limit below is checked from the sizes of the operands, before the list, string, integer or node
is made, and breaking one is a located user error (exit 1) with its own code and explain page:

- `MAX_NODES` (E0701): nodes of one network. Real networks have a few thousand; a 100k-layer chain
  still fits. Checked as each node is made, and earlier from a lower bound (`estimate`): a list of
  layers, a comprehension that makes layers and a sequence about to be applied are refused at once
  when they need more nodes than are left, before any is built (`ResNet([3, 1000000, 6, 3])`), and
  so is a block instance (blocks that double at each level); a sequence may not have more layers
  than nodes are left, even layers that make none.
- `MAX_LIST` (E0702): items of one list, from a list literal, `range`, a comprehension, `+` or `*`.
- `MAX_STRING` (E0703): characters of one string, checked before `+` joins two.
- `MAX_INT_BITS` (E0704): the size of an integer; `+ - * // %` and `pow` are checked from their
  operands' sizes, so repeated squaring and `pow` towers stop before the big number is computed.
- `MAX_DEPTH` (E0705): how deeply evaluation nests — blocks inside blocks, values defined through
  other values. Deeper programs stop with a located error instead of Python's RecursionError; a
  value nested by thousands of statements that still exhausts the stack is E0705 without a place.
- `MAX_STEPS` (E0706): comprehension steps of one elaboration in all (the repeat counts), charged
  before each comprehension iterates; where an inner comprehension's range is known before the
  outer one iterates, their product is checked at once.
- `MAX_ITEMS` (E0707): list items and string characters one elaboration makes in all, charged before
  they are made, so a loop that copies a long list or string at each step is bounded by the copies.

The budgets above hold per elaboration. A command elaborates many times (the networks of a file,
the members `cnnc space` samples, the inputs a hint tries), so what its elaborations spend together
is a `Ledger`'s, bounded per command (`cnnc check`: per file) by the `COMMAND_*` totals (E0708):
`spending()` opens one around the command; the elaborations inside it charge it, and an elaboration
outside any (the Python API, a search trial) gets its own.

What a network needs to run is bounded too (E0709): its parameters and the activations of a forward
pass at batch 1, as float32, must fit in `max_memory()`, half this machine's physical memory
(or of its cgroup's limit, a container's, when less), overridden by `CNNC_MAX_MEMORY` (bytes, or
with a K, M, G or T suffix): what checks, runs.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

MAX_NODES = 250_000
MAX_LIST = 1_000_000
MAX_ITEMS = 4_000_000
MAX_STRING = 100_000
MAX_INT_BITS = 512
MAX_DEPTH = 1_000
MAX_STEPS = 500_000

COMMAND_NODES = 2 * MAX_NODES  # nodes all the elaborations of a command make (~10 s of work)
COMMAND_STEPS = 2 * MAX_STEPS
COMMAND_ITEMS = 2 * MAX_ITEMS
BYTES_PER_VALUE = 4  # float32, the dtype lowering builds
MEMORY_ENV = "CNNC_MAX_MEMORY"
MEMORY_FALLBACK = 8 * 2**30  # where the machine's memory cannot be read


class Ledger:
    """What the elaborations of one command (or one file of `cnnc check`) have spent together;
    `whose` names them in the error, `help` says what the user can do when a total runs out."""

    __slots__ = ("exhausted", "help", "items", "nodes", "steps", "whose")

    def __init__(self, help: str = "", whose: str = "this command's networks"):
        self.nodes = self.steps = self.items = 0
        self.help, self.whose = help, whose
        self.exhausted = False  # a total ran out: later elaborations stop at once

    def __repr__(self) -> str:  # by what was spent (an elaboration's record shows it in its repr)
        return f"Ledger(nodes={self.nodes}, steps={self.steps}, items={self.items}, exhausted={self.exhausted})"

    def room(self) -> int:
        """Nodes the command may still make."""
        return COMMAND_NODES - self.nodes

    def over(self) -> tuple[str, int] | None:
        """(what, total) of the first total spent beyond its bound, or None."""
        for what, spent, bound in (
            ("nodes", self.nodes, COMMAND_NODES),
            ("comprehension steps", self.steps, COMMAND_STEPS),
            ("list items and characters", self.items, COMMAND_ITEMS),
        ):
            if spent > bound:
                self.exhausted = True
                return what, bound
        return None


_open: list[Ledger] = []  # the ledgers of the commands (and files) being run, innermost last


class spending:
    """`with spending(help, whose):` — the elaborations inside charge one new `Ledger` (returned by
    `as`), not the ledgers around it."""

    def __init__(self, help: str = "", whose: str = "this command's networks"):
        self.ledger = Ledger(help, whose)

    def __enter__(self) -> Ledger:
        _open.append(self.ledger)
        return self.ledger

    def __exit__(self, *exc) -> None:
        _open.remove(self.ledger)


def ledger() -> Ledger:
    """The innermost open ledger, or a new one of its own for an elaboration outside any."""
    return _open[-1] if _open else Ledger()


def max_memory(environ=None) -> int:
    """Bytes a network's parameters and activations may take: `CNNC_MAX_MEMORY`, else half of
    this machine's physical memory (`machine_memory`)."""
    text = (os.environ if environ is None else environ).get(MEMORY_ENV, "").strip()
    if text:
        value = parse_bytes(text)
        if value is not None:
            return value
    return machine_memory() // 2


def memory_help(environ=None) -> str:
    """Where the memory budget comes from, and how to change it."""
    if (
        parse_bytes((os.environ if environ is None else environ).get(MEMORY_ENV, "").strip())
        is not None
    ):
        return (
            f"the budget was set by {MEMORY_ENV}; raise it only on a machine with that much memory"
        )
    return (
        f"the budget is half this machine's memory; on a larger machine set {MEMORY_ENV} "
        f"(float32 bytes, e.g. {MEMORY_ENV}=64G)"
    )


def parse_bytes(text: str) -> int | None:
    """`12000000`, `512M`, `8G`, `8GiB`, `1.5T` as bytes (powers of 1024); None when not a positive size."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    text = text.upper().removesuffix("B").removesuffix("I")
    scale = units.get(text[-1:], 1)
    number = text[:-1] if scale != 1 else text
    try:
        value = float(number) if len(number) < 30 else -1.0
    except ValueError:
        return None
    return int(value * scale) if 0 < value * scale < 2**62 else None


def machine_memory() -> int:
    """Physical memory in bytes (`os.sysconf`), or this process's cgroup limit when less (a
    container's; read once, `cgroup_limit`)."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        physical = 0
    physical = physical if physical > 0 else MEMORY_FALLBACK
    limit = cgroup_limit()
    return physical if limit is None else max(1, min(physical, limit))


@functools.cache
def cgroup_limit() -> int | None:
    return cgroup_memory()[0]


UNLIMITED = 1 << 60  # a cgroup v1 limit at or above this is no limit ("max" in v2)
# (limit, usage, the reclaimable page cache's key in memory.stat) of cgroup v2, then v1
CGROUP_FILES = (
    ("memory.max", "memory.current", "inactive_file"),
    ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
)


def cgroup_memory(
    proc: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup"
) -> tuple[int | None, int | None]:
    """(limit, room) of this process's memory cgroups (v2, or v1's `memory` hierarchy under
    `root/memory`) and their parents: the tightest limit, and the least any of them may still take
    (its limit less its usage, the reclaimable page cache not counted as used); None where no limit
    is set or none can be read. A container's limit, which the machine's figures do not show."""
    try:
        with open(proc) as f:
            lines = f.read(1 << 16).splitlines()
    except OSError:
        return None, None
    tightest = least = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        ids, controllers, path = parts
        if ids == "0" and not controllers:
            mount, files = Path(root), CGROUP_FILES[0]
        elif "memory" in controllers.split(","):
            mount, files = Path(root) / "memory", CGROUP_FILES[1]
        else:
            continue
        for group in _groups(mount, path):
            figures = _room(group, *files)
            if figures is not None:
                limit, room = figures
                tightest = limit if tightest is None else min(tightest, limit)
                least = room if least is None else min(least, room)
    return tightest, least


def _groups(mount: Path, path: str) -> list[Path]:
    """The cgroup's folder, then its parents' up to the mount. A container sees its own cgroup at
    the mount while the path names it on the host: the path's tails are tried, longest first."""
    parts = [p for p in path.split("/") if p and p not in (".", "..")]
    for start in range(len(parts) + 1):
        own = mount.joinpath(*parts[start:])
        if own.is_dir():
            break
    else:
        return []
    found = [own]
    while own != mount:
        own = own.parent
        found.append(own)
    return found


def _room(group: Path, limit_file: str, usage_file: str, cache_key: str) -> tuple[int, int] | None:
    """(limit, room) of one cgroup folder, None when it sets no limit or cannot be read."""
    try:
        limit_text = (group / limit_file).read_text()[:64].strip()
        usage = int((group / usage_file).read_text()[:64].strip())
    except (OSError, ValueError):
        return None
    if limit_text == "max":
        return None
    try:
        limit = int(limit_text)
    except ValueError:
        return None
    if limit >= UNLIMITED:
        return None
    cache = 0
    try:
        for line in (group / "memory.stat").read_text()[: 1 << 16].splitlines():
            key, _, value = line.partition(" ")
            if key == cache_key:
                cache = int(value)
                break
    except (OSError, ValueError):
        pass
    return limit, max(0, limit - max(0, usage - cache))


# Python frames one level of evaluation takes at most (a block instance: evaluate → chain → apply →
# instantiate → body → guard → …; 11 measured for labelled nested blocks), so that MAX_DEPTH levels
# fit under the interpreter's recursion limit.
FRAMES_PER_LEVEL = 16


def ensure_recursion_room() -> None:
    """Raise the interpreter's recursion limit so that MAX_DEPTH, not Python, is what stops a deep
    program (CPython ≥ 3.11 runs Python-to-Python calls without growing the C stack)."""
    need = MAX_DEPTH * FRAMES_PER_LEVEL + 2_000
    if sys.getrecursionlimit() < need:
        sys.setrecursionlimit(need)


def int_bits_after(op: str, left: int, right: int) -> int:
    """An upper bound on the bits of `left op right` for integers, without computing it."""
    a, b = abs(left).bit_length(), abs(right).bit_length()
    if op == "*":
        return a + b
    if op in ("+", "-"):
        return max(a, b) + 1
    if op == "//":
        return a + 1  # |a // b| ≤ |a| + 1 (flooring a negative quotient adds one)
    return max(a, b)  # `%`: smaller than the divisor, or the dividend when it is smaller


def pow_bits(base: int, exponent: int) -> int:
    """An upper bound on the bits of `base ** exponent` (exponent ≥ 0)."""
    return abs(base).bit_length() * exponent
