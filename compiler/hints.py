"""Help lines added to diagnostics after the fact: the smallest input a network accepts.

Elaboration reports that an input is too small (E0303: a spatial size shrinks to zero) at the layer
where it happens, but only the whole network knows which input would do. We find it by elaborating
square inputs of growing size: doubling to a size that works, then bisecting, within a fixed number
of tries, so the cost stays a few elaborations even for the largest zoo model. The tries charge the
command's budget (`limits.Ledger`); when it runs out, the hint is left out. `elaborate_file`
(`compiler/frontend.py`) adds it, so the command line and the Python API (`cnnc.graph`, `cnnc.check`)
say it alike; `cnnc check`, which elaborates each network itself, adds it the same way.
"""

from __future__ import annotations

from cnnc.dsl.records import replace

TOO_SMALL = "E0303"
MAX_TRIES = 24  # doubling reaches 2^11 from 1, bisecting then needs 11 more
MAX_SIDE = 4096  # no network of the zoo needs more; beyond it the hint would not help anyway


def with_smallest_input(result, program, network, values) -> tuple:
    """`result.diagnostics`, with a help line giving the smallest square input on each E0303 when
    the network fails only because its input is too small (and some larger input works)."""
    errors = [d for d in result.diagnostics if d.is_error]
    if not errors or any(d.code != TOO_SMALL for d in errors) or result.graph is None:
        return result.diagnostics
    declared = result.graph.input_type
    if declared is None or len(declared.shape) != 3:
        return result.diagnostics
    channels, height, width = declared.shape
    try:
        side = smallest_side(
            lambda s: _accepts(program, network, values, (channels, s, s)), min(height, width)
        )
    except _Spent:  # the command's budget ran out while trying: no hint
        return result.diagnostics
    if side is None:
        return result.diagnostics
    text = f"the smallest input this network accepts is [{channels}, {side}, {side}]"
    return tuple(_with_help(d, text) if d.code == TOO_SMALL else d for d in result.diagnostics)


def _with_help(d, text: str):
    """`text` before the `cnnc explain` pointer, which stays the last help line."""
    last = [h for h in d.helps if h.startswith("`cnnc explain")]
    return replace(d, helps=(*[h for h in d.helps if h not in last], text, *last))


def smallest_side(accepts, failing: int) -> int | None:
    """The smallest side that `accepts`, knowing `failing` does not (sizes assumed monotone: the
    square of the failing input's shorter side fails too)."""
    lo, hi, tries = max(failing, 1), None, 0
    side = lo
    while hi is None and tries < MAX_TRIES and side < MAX_SIDE:
        side, tries = min(side * 2, MAX_SIDE), tries + 1
        if accepts(side):
            hi = side
        else:
            lo = side
    while hi is not None and hi - lo > 1 and tries < MAX_TRIES:
        mid, tries = (lo + hi) // 2, tries + 1
        lo, hi = (lo, mid) if accepts(mid) else (mid, hi)
    return hi if hi is not None and hi - lo == 1 else None


class _Spent(Exception):
    """A try stopped on the command's budget (E0708), so its answer says nothing of the input."""


def _accepts(program, network, values, shape) -> bool:
    from cnnc.compiler.elaborate import elaborate

    result = elaborate(program, network, values, shape)
    if any(d.code == "E0708" for d in result.diagnostics):
        raise _Spent
    return result.ok
