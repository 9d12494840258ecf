"""Literal tokens → values, each checked before it is converted.

A .cnn file is untrusted text: `int()` of 5,000 digits raises, `float("1e999")` is infinite, and a
`\\ud800` escape makes a string that cannot be encoded. So:

- strings know exactly these escapes: `\\\\ \\" \\' \\n \\t \\r \\0 \\xHH \\uHHHH \\UHHHHHHHH`.
  Any other character after a backslash is E0110, an escape without its hex digits E0114, and an
  escape naming a surrogate or a code point past U+10FFFF is E0111. Everything else is taken as
  written, non-ASCII included (`"é\\n"` is two characters).
- a number literal has at most `MAX_DIGITS` digits (E0112), counted before `int()` or `float()`.
- a float literal must be a finite, faithful value: one that overflows to infinity (`1e999`) or a
  nonzero one that underflows to 0 (`1e-999`) is E0113, not a silent inf or 0.

`escape_string` is the inverse the formatter uses: `decode_string(escape_string(s)) == s` for every
string without surrogates. `write_literal` is the one writer of a Python value as .cnn text (the
API's `args`, search's programs): parsing what it writes gives the value back, tuples as lists.
"""

from __future__ import annotations

import math

from cnnc.dsl.diagnostics import CnncError, error
from cnnc.dsl.source import SourceFile, Span

MAX_DIGITS = 100  # digits in one number literal; no layer needs more, and int() refuses > 4,300

ESCAPES = "`\\\\` `\\\"` `\\'` `\\n` `\\t` `\\r` `\\0` `\\xHH` `\\uHHHH` `\\UHHHHHHHH`"
_SIMPLE = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r", "0": "\0"}
_HEX_DIGITS = {"x": 2, "u": 4, "U": 8}


def decode_string(source: SourceFile, start: int, token: str) -> str:
    """The value of the string literal `token` (quotes included) found at offset `start`."""
    body = token[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        backslash = body.find("\\", i)
        if backslash < 0:
            out.append(body[i:])
            break
        out.append(body[i:backslash])
        char, i = _escape(source, start + 1, body, backslash)
        out.append(char)
    return "".join(out)


def _escape(source: SourceFile, base: int, body: str, at: int) -> tuple[str, int]:
    """The character the escape at `body[at]` stands for, and where the text goes on."""
    kind = body[at + 1]  # the grammar guarantees a character after every backslash
    if kind in _SIMPLE:
        return _SIMPLE[kind], at + 2
    if kind not in _HEX_DIGITS:
        span = Span(source, base + at, base + at + 2)
        raise CnncError(
            error(
                "E0110",
                f"unknown escape `\\{kind}` in a string",
                span,
                "not an escape",
                helps=(f"the escapes are {ESCAPES}; write `\\\\` for a backslash",),
            )
        )
    n = _HEX_DIGITS[kind]
    digits = body[at + 2 : at + 2 + n]
    width = len(digits) - len(digits.lstrip("0123456789abcdefABCDEF"))
    if width < n:
        span = Span(source, base + at, base + at + 2 + width)
        raise CnncError(
            error(
                "E0114",
                f"`\\{kind}` needs {n} hex digits, but {width} follow it",
                span,
                f"{n} hex digits expected",
                helps=(f"write e.g. `\\{kind}{'0' * (n - 1)}a`",),
            )
        )
    code = int(digits, 16)
    if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        span = Span(source, base + at, base + at + 2 + n)
        what = (
            "a surrogate, half of a UTF-16 pair"
            if code <= 0xDFFF
            else "past U+10FFFF, the last one"
        )
        raise CnncError(
            error(
                "E0111",
                f"`\\{kind}{digits}` is not a Unicode character: {what}",
                span,
                "no such character",
                helps=("write the character itself, or its code point, e.g. `\\U0001F600`",),
            )
        )
    return chr(code), at + 2 + n


def escape_string(value: str) -> str:
    """`value` as a double-quoted literal: backslash, quote and every character Python does not
    call printable (controls, bidi marks, no-break and other odd spaces) escaped; a file the formatter
    writes shows every character of its strings."""
    out = []
    for ch in value:
        if ch == "\\" or ch == '"':
            out.append("\\" + ch)
        elif ch in _SHORT:
            out.append(_SHORT[ch])
        elif not ch.isprintable():  # controls, format and bidi marks, odd spaces, unassigned
            out.append(_hex_escape(ord(ch)))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _hex_escape(code: int) -> str:
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


def write_literal(value) -> str:
    """`value` as .cnn text: `true`, `none`, `3`, `-0.5`, `1e+300`, `"a\\nb"`, `[1, [2, "x"]]`.

    Holds for every bool, None, int, finite float, string without surrogates, and list or tuple of
    them (a tuple is written as a list). Anything else no literal can say: TypeError, or ValueError
    for an infinite or NaN float."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, int):
        return str(int(value))  # an int subclass (an enum) as its number
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a .cnn number is finite, but got {value}")
        return repr(float(value))  # shortest round-trip digits; `1e+300` is a .cnn float too
    if isinstance(value, str):
        return escape_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(write_literal(v) for v in value) + "]"
    kind = type(value).__name__
    raise TypeError(f"a .cnn value is a number, bool, string, none or list, but got {kind}")


def comment_lines(comments) -> list[str]:
    """`# …` lines: one per comment, never broken by a newline in it, control characters escaped
    (a comment is the one place text of the user's reaches best.cnn without a literal's quotes)."""
    out = []
    for c in comments:
        text = "".join(ch if ch.isprintable() else escape_string(ch)[1:-1] for ch in str(c))
        out.append(f"# {text}" if text else "#")
    return out


def int_value(span: Span, text: str) -> int:
    _check_digits(span, text)
    return int(text.replace("_", ""))


def float_value(span: Span, text: str) -> float:
    _check_digits(span, text)
    value = float(text.replace("_", ""))
    mantissa = text.lower().split("e")[0]
    if math.isinf(value) or (value == 0.0 and any(c in "123456789" for c in mantissa)):
        way = "infinite" if math.isinf(value) else "0"
        raise CnncError(
            error(
                "E0113",
                f"the number `{text}` is out of range: as a float it would be {way}",
                span,
                f"becomes {way}",
                helps=(
                    "nonzero floats run from about 5e-324 to 1.8e308: write a value in that range",
                ),
            )
        )
    return value


def _check_digits(span: Span, text: str) -> None:
    digits = sum(c.isdigit() for c in text)
    if digits > MAX_DIGITS:
        raise CnncError(
            error(
                "E0112",
                f"number literal with {digits} digits, over the limit of {MAX_DIGITS}",
                span,
                "too many digits",
                helps=(f"write at most {MAX_DIGITS} digits; a float takes an exponent: `1e30`",),
            )
        )
