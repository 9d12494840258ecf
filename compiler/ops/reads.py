"""Which input positions an op's output positions read, along one spatial axis: the receptive-field
rule of the registry, in exact integers.

A `Reads` is a pattern that repeats: output position o + period reads the positions o reads moved
by `advance` (a stride-2 conv: period 1, advance 2; nearest upsampling by 2: period 2, advance 1).
`at(r)`, for 0 ≤ r < period, gives what position r reads as `(first, last, step)` — every step-th
position from first to last — or None where it reads nothing. Positions outside the input are
positions of a larger input (padding is not special): the receptive field is the one a position
has where the input does not clip it. The constructors below give each op's pattern from its
arguments; `compiler/analysis/receptive_field.py` composes them.

No fractions anywhere: a ratio is a pair of integers, and every position is found by integer
division, so nothing grows with the depth of a network. torch computes a resize's ratio in floating
point: for a factor whose inverse is no short binary fraction (1.3) it may pick the neighbouring
input at a position where the exact ratio falls on a whole pixel.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from cnnc.dsl.records import record

Taps = tuple[int, int, int]  # (first, last, step): the positions first, first + step, …, last


@record
class Reads:
    """See the module docstring."""

    period: int  # output positions after which the pattern repeats
    advance: int  # input positions the pattern moves by in one period
    at: Callable  # (r) -> Taps | None, for 0 <= r < period


def window(kernel: int, stride: int, padding: int, dilation: int = 1) -> Reads:
    """A conv or pool: output o reads o·S − P + t·D for t in [0, K)."""
    taps = (-padding, -padding + (kernel - 1) * dilation, dilation)
    return Reads(1, stride, lambda r: taps)


def shift(offset: int) -> Reads:
    """Output o reads input o + offset (a crop's corner; a pad's border moves it the other way)."""
    return window(1, 1, -offset)


def nearest(num: int, den: int) -> Reads:
    """Output o reads ⌊o·num / den⌋: nearest resizing by in/out = num/den, pixel shuffle (1/r)."""
    g = math.gcd(num, den)
    num, den = num // g, den // g

    def at(r: int) -> Taps:
        i = r * num // den
        return (i, i, 1)

    return Reads(den, num, at)


def linear(num: int, den: int, align_corners: bool) -> Reads:
    """Bilinear resizing along one axis by in/out = num/den: output o interpolates between input i
    and i + 1 at src = (o + ½)·num/den − ½ (align_corners: o·num/den, num/den = (in − 1)/(out − 1)).
    Where src is a whole number the second weight is 0, so o reads input i alone."""
    g = math.gcd(num, den)
    num, den = num // g, den // g

    def at(r: int) -> Taps:
        top, bottom = (r * num, den) if align_corners else ((2 * r + 1) * num - den, 2 * den)
        i, exact = top // bottom, top % bottom == 0
        return (i, i, 1) if exact else (i, i + 1, 1)

    return Reads(den, num, at)


def transposed(kernel: int, stride: int, padding: int, dilation: int) -> Reads:
    """A transposed conv: input i adds into output i·S − P + t·D for t in [0, K), so output o reads
    every i with i·S + t·D = o + P. Those t form one class modulo S / gcd(D, S), if any; o + S reads
    the same taps moved by one input position."""
    g = math.gcd(dilation, stride)
    cycle = stride // g

    def at(r: int) -> Taps | None:
        target = r + padding
        if target % g:
            return None
        t0 = (target // g) * pow(dilation // g, -1, cycle) % cycle if cycle > 1 else 0
        if t0 > kernel - 1:
            return None
        t_last = t0 + (kernel - 1 - t0) // cycle * cycle
        return (
            (target - t_last * dilation) // stride,
            (target - t0 * dilation) // stride,
            dilation // g,
        )

    return Reads(stride, 1, at)


def adaptive(size: int, out: int) -> Reads:
    """Adaptive pooling from `size` to `out` positions: o reads ⌊o·size/out⌋ to ⌈(o + 1)·size/out⌉ − 1."""
    g = math.gcd(size, out)
    num, den = size // g, out // g

    def at(r: int) -> Taps:
        return (r * num // den, -(-(r + 1) * num // den) - 1, 1)

    return Reads(den, num, at)
