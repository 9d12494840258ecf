"""Whether a member fits in the memory of the device that would run it — asked before building it.

A member with 10⁸ channels (or a data set whose labels say 10⁹ classes) would take the process down
with it when its weights are allocated; measured from the graph's static figures first, it is recorded
as a failed trial ("too large for this machine") and the study goes on.

The estimate is deliberately simple and generous (float32): the weights, their gradients and the
optimiser's state (`params × 3`, ×4 for Adam-like optimisers), plus every activation of the batch kept
for the backward pass and its gradient (`activations × batch × 2`). A member is refused when that
exceeds `SHARE` of the memory available now.
"""

from __future__ import annotations

import os

from cnnc.compiler import limits
from cnnc.dsl.numbers import gibibytes

BYTES = 4  # float32
SHARE = 0.8  # of the memory available now, the most one member may plan to use


def needed_bytes(params: int, activations: int, batch_size: int, optimizer: str = "sgd") -> int:
    states = 4 if optimizer in ("adamw", "rmsprop") else 3
    return BYTES * (params * states + activations * batch_size * 2)


def available_bytes(device) -> int | None:
    """Free memory on `device` (a torch.device) now; None when it cannot be told. On the CPU the
    system's available memory, or what this process's control group may still take when that is
    less (a container's limit, which the system's figure does not show)."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    system = _system_available()
    group = limits.cgroup_memory()[1]
    known = [b for b in (system, group) if b is not None]
    return min(known) if known else None


def _system_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def too_large(graph, device, batch_size: int, optimizer: str = "sgd") -> str | None:
    """Why the member cannot run on `device`, or None (module docstring)."""
    from cnnc.compiler.analysis.summary import summarize

    s = summarize(graph, fields=False)
    need = needed_bytes(s.params, s.activations, batch_size, optimizer)
    free = available_bytes(device)
    if free is None or need <= SHARE * free:
        return None
    return (
        f"too large for this machine: needs about {gibibytes(need)} ({s.params:,} params, "
        f"{s.activations:,} activations per sample × batch {batch_size}), {gibibytes(free)} free on {device}"
    )
