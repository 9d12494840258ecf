"""Numbers as cnnc prints them: one module for every table, summary, diagram and message.

Pure text, no imports, usable from every layer (like `records` and `safefs`). Each function is one
style, named for what it shows:
- `grouped(1234567)` → `1,234,567`; `readable(n)`: the same, or `about 10^40` from 10^15 up;
- `si(138357544)` → `138.36 M` (two decimals, a space, an SI prefix up to `largest`; `unit` after it);
- `short(9408)` → `9.41K` (three significant digits, no space: diagram labels);
- `big(x)` → `1,234` below 10^9, else `1.23e+40` (sizes of search spaces, ints past a float's range);
- `mebibytes(n)`, `gibibytes(n)`, `memory(n)` (GiB from 1 GiB, else MiB): bytes, one decimal;
- `in_unit(n, 1e6, "M")` → `138.36 M`: a fixed unit, for columns that compare.
"""

from __future__ import annotations

import math

_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))


def grouped(n: int) -> str:
    """`138,357,544`."""
    return f"{n:,}"


def readable(n: int) -> str:
    """`1,200,000`, or `about 10^40` for a number too long to read."""
    return f"{n:,}" if n < 10**15 else f"about 10^{len(str(n)) - 1}"


def si(n: float, unit: str = "", largest: str = "T") -> str:
    """`138.36 M`, `15.47 G`; below 1000 as it is (`812`, `0.5`). Prefixes stop at `largest`
    (`2000.00 G` with `largest="G"`); a million times that, or not finite: `1.23e+30`, `inf`."""
    usable = _PREFIXES[[p for _, p in _PREFIXES].index(largest) :]
    if not math.isfinite(n) or abs(n) >= 1e6 * usable[0][0]:  # past any prefix: 1.23e+30
        return f"{n:.3g} {unit}".strip()
    for factor, prefix in usable:
        if abs(n) >= factor:
            return f"{n / factor:.2f} {prefix}{unit}"
    return f"{n:g} {unit}".strip()


def short(count: int) -> str:
    """3 significant digits with a K/M/G/T suffix: 9408 → `9.41K`, 25_557_032 → `25.6M`."""
    value = float(count)
    for suffix in ("", "K", "M", "G", "T"):
        if abs(value) < 1000 or suffix == "T":
            return f"{value:.3g}{suffix}" if suffix else str(count)
        value /= 1000
    raise AssertionError("unreachable")


def big(x: float | int) -> str:
    """`123,456` below 10^9, else `1.23e+40` (an int past a float's range from its digits)."""
    if x < 1e9:
        return f"{x:,.0f}"
    if isinstance(x, int):  # beyond a float's range: the digits give the exponent
        digits = str(x)
        return f"{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"
    return f"{x:.2e}"


def mebibytes(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def gibibytes(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def memory(n: int) -> str:
    """`1.5 GiB` from one GiB up, else `300.0 MiB`."""
    return gibibytes(n) if n >= 2**30 else mebibytes(n)


def in_unit(n: float, scale: float, unit: str) -> str:
    """`n / scale` with two decimals and thousands grouped: `1,234.57 M`."""
    return f"{n / scale:,.2f} {unit}"
