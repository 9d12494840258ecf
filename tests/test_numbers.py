"""`dsl/numbers.py`: the one place numbers are formatted, one line per case (the figures the tables,
diagrams, generated source and messages showed before they shared it)."""

from __future__ import annotations

import pytest

from cnnc.dsl import numbers


@pytest.mark.parametrize(
    ("call", "text"),
    [
        (lambda: numbers.grouped(138_357_544), "138,357,544"),
        (lambda: numbers.readable(1_200_000), "1,200,000"),
        (lambda: numbers.readable(10**40), "about 10^40"),
        (lambda: numbers.si(138_357_544), "138.36 M"),
        (lambda: numbers.si(15_470_000_000, "FLOPs"), "15.47 GFLOPs"),
        (lambda: numbers.si(2 * 10**12), "2.00 T"),
        (lambda: numbers.si(2 * 10**12, largest="G"), "2000.00 G"),
        (lambda: numbers.si(4_089_184_256, largest="G"), "4.09 G"),
        # a study is data: a crafted value is no 300-digit number, nor `inf T`
        (lambda: numbers.si(1e308), "1e+308"),
        (lambda: numbers.si(float("inf"), "B"), "inf B"),
        (lambda: numbers.si(-1e30, largest="G"), "-1e+30"),
        (lambda: numbers.si(999_999 * 10**12), "999999.00 T"),
        (lambda: numbers.si(812), "812"),
        (lambda: numbers.si(0.5, "s"), "0.5 s"),
        (lambda: numbers.si(-2500), "-2.50 K"),
        (lambda: numbers.short(9408), "9.41K"),
        (lambda: numbers.short(25_557_032), "25.6M"),
        (lambda: numbers.short(999), "999"),
        (lambda: numbers.short(5 * 10**15), "5e+03T"),
        (lambda: numbers.big(123_456), "123,456"),
        (lambda: numbers.big(1.5e12), "1.50e+12"),
        (lambda: numbers.big(12_345 * 10**400), "1.23e+404"),
        (lambda: numbers.mebibytes(3 * 2**19), "1.5 MiB"),
        (lambda: numbers.gibibytes(2**31), "2.0 GiB"),
        (lambda: numbers.memory(2**30), "1.0 GiB"),
        (lambda: numbers.memory(2**30 - 1), "1,024.0 MiB"),
        (lambda: numbers.in_unit(1_234_567_890, 1e6, "M"), "1,234.57 M"),
    ],
)
def test_numbers_read_as_before(call, text):
    assert call() == text
