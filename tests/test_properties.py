"""Rules that hold for all inputs (hypothesis).

- the formatter: parse(format(x)) == parse(x), and format is idempotent, also with the line breaks
  an author may put between parts; any string survives format → parse (escapes, control characters,
  quotes, backslashes, non-ASCII), and a number literal means what its digits say;
- the shape rule: for random conv and pool arguments and input sizes, the inferred shape equals the
  shape torch produces, and cnnc rejects exactly when torch raises.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnc.dsl.format import format_module
from cnnc.dsl.parse import parse_text

names = st.sampled_from(["a", "b", "width", "x1", "stride", "k"])
numbers = st.one_of(st.integers(0, 999).map(str), st.sampled_from(["0.5", "1e-4", "2.0", "1_000"]))
atoms = st.one_of(names, numbers, st.sampled_from(["in", "true", "false", "none", '"M"', "same"]))


def expressions(depth: int = 3):
    if depth == 0:
        return atoms
    sub = expressions(depth - 1)
    return st.one_of(
        atoms,
        st.tuples(
            sub, st.sampled_from(["+", "-", "*", "//", "%", "==", "<", "and", "or"]), sub
        ).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(
            st.sampled_from(["Conv", "B", "MaxPool", "concat"]),
            st.lists(sub, max_size=3),
            st.lists(st.tuples(names, sub), max_size=2),
        ).map(lambda t: f"{t[0]}({', '.join(t[1] + [f'{k} = {v}' for k, v in t[2]])})"),
        st.lists(sub, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(st.one_of(st.none(), names), sub), min_size=2, max_size=4).map(
            lambda xs: "(" + " -> ".join(f"{lab}: {e}" if lab else e for lab, e in xs) + ")"
        ),
        st.tuples(sub, sub, sub).map(lambda t: f"(if {t[0]} then {t[1]} else {t[2]})"),
        st.tuples(sub, names, sub).map(lambda t: f"[{t[0]} for {t[1]} in {t[2]}]"),
        st.tuples(sub, st.sampled_from(["channels", "height"])).map(lambda t: f"({t[0]}).{t[1]}"),
        st.tuples(sub, sub).map(lambda t: f"({t[0]})[{t[1]}]"),
        st.lists(sub, min_size=1, max_size=3).map(lambda xs: f"choice({', '.join(xs)})"),
        sub.map(lambda e: f"(-{e})"),
        sub.map(lambda e: f"(not {e})"),
    )


programs = st.tuples(st.lists(st.tuples(names, expressions()), max_size=4), expressions()).map(
    lambda t: (
        "block B(a, b = 1) {\n"
        + "".join(f"    {n} = {e}  # c\n" for n, e in t[0])
        + f"    return {t[1]}\n}}\n\nblock C = B(b = 2)\nnetwork N = C(1)\n"
    )
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs)
def test_format_round_trips(text):
    module = parse_text(text)
    once = format_module(module)
    assert parse_text(once) == module
    assert format_module(parse_text(once)) == once
    assert once.count("# c") == text.count("# c")  # comments are kept


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs, st.data())
def test_format_keeps_author_breaks(text, data):
    """Newlines are insignificant: wherever an author breaks a line between parts, fmt keeps the
    meaning, and its output is a fixed point."""
    separators = (" -> ", ", ", " + ", " - ", " and ", " then ", " else ", " for ")
    pieces = re.split("(" + "|".join(re.escape(s) for s in separators) + ")", text)
    broken = "".join(
        p + "\n        " if p in separators and data.draw(st.booleans()) else p for p in pieces
    )
    module = parse_text(broken)
    assert module == parse_text(text)
    once = format_module(module)
    assert parse_text(once) == module
    assert format_module(parse_text(once)) == once


# strings: any text but lone surrogates (which no file can hold)
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_strings_round_trip_through_escapes(value):
    from cnnc.dsl.literals import escape_string

    literal = escape_string(value)
    module = parse_text(
        f"x = {literal}\nblock B {{\n    assert true, {literal}\n    return in\n}}\n"
    )
    assert module.items[0].value.value == value
    once = format_module(module)
    assert parse_text(once) == module
    assert format_module(parse_text(once)) == once
    assert all(ch == "\n" or ch.isprintable() or ch == " " for ch in once)  # nothing invisible


@settings(max_examples=200, deadline=None)
@given(any_text.filter(lambda s: not set(s) & set('"\\\n\r')))
def test_strings_as_written_keep_their_text(value):
    """Text between quotes is taken as written, non-ASCII and controls included (`"é"` is é)."""
    module = parse_text(f'x = "{value}"\n')
    assert module.items[0].value.value == value
    assert parse_text(format_module(module)) == module


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**120), st.booleans())
def test_integer_literals_mean_their_digits(n, underscores):
    from cnnc.dsl.diagnostics import CnncError
    from cnnc.dsl.literals import MAX_DIGITS

    text = f"{n:_}" if underscores else str(n)
    if len(str(n)) > MAX_DIGITS:
        with pytest.raises(CnncError) as exc:
            parse_text(f"x = {text}\n")
        assert exc.value.diagnostics[0].code == "E0112"
        return
    module = parse_text(f"x = {text}\n")
    assert module.items[0].value.value == n
    assert format_module(module) == f"x = {text}\n"


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, allow_nan=False, allow_infinity=False))
def test_float_literals_mean_their_digits(x):
    text = repr(x) if "e" in repr(x) or "." in repr(x) else repr(x) + ".0"
    assert parse_text(f"x = {text}\n").items[0].value.value == x


# every value a .cnn literal can hold: bool, none, int, finite float, string, lists of them
scalars = st.one_of(
    st.booleans(),
    st.none(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e300, -0.0, 5e-324, 1e16, -1.5e-7]),
    any_text,
    st.sampled_from(["a\nb", '"', "\\", "\u202e\u2066x", "é\u00a0", "\x00\x1b[31m"]),
)
cnn_values = st.recursive(
    scalars, lambda sub: st.one_of(st.lists(sub, max_size=3), st.tuples(sub, sub)), max_leaves=8
)


def literal_value(expr):
    """The value of a literal expression as parsed (a negative number is `-` on its magnitude)."""
    from cnnc.dsl import ast

    if isinstance(expr, ast.UnaryOp) and expr.op == "-":
        return -literal_value(expr.operand)
    if isinstance(expr, ast.ListExpr):
        return [literal_value(item) for item in expr.items]
    if isinstance(expr, ast.NoneLit):
        return None
    assert isinstance(expr, (ast.Number, ast.String, ast.Bool)), expr
    return expr.value


def as_written(value):
    """What a value reads back as: a tuple becomes a list."""
    if isinstance(value, (list, tuple)):
        return [as_written(v) for v in value]
    return value


@settings(max_examples=300, deadline=None)
@given(cnn_values)
def test_written_literals_read_back_as_their_value(value):
    """`write_literal` (the API's `args`, search's programs) then parsing gives the value back:
    exactly, `-0.0` and the last digit of a float included (`repr` tells 0.0 from -0.0, 1 from 1.0)."""
    from cnnc.dsl.literals import write_literal
    from cnnc.dsl.programs import parse_arg_values

    text = write_literal(value)
    parsed = parse_arg_values([f"v={text}"])["v"]
    assert repr(literal_value(parsed)) == repr(as_written(value))


def test_zoo_files_round_trip():
    from pathlib import Path

    for path in sorted(Path(__file__).resolve().parent.parent.joinpath("zoo").rglob("*.cnn")):
        module = parse_text(path.read_text(), str(path))
        once = format_module(module)
        assert parse_text(once) == module, path
        assert format_module(parse_text(once)) == once, path


# ---------------------------------------------------------------------------------------------
# The shape rule against torch

torch = pytest.importorskip("torch")

from cnnc.api import elaborate_file  # noqa: E402


def cnnc_shape(layer: str, shape):
    text = f"network N {{\n    input [{', '.join(map(str, shape))}]\n    return in -> {layer}\n}}\n"
    result = elaborate_file("p.cnn", text=text)
    if not result.ok:
        return None
    return result.graph.output_type.shape


def torch_shape(module, shape):
    try:
        with torch.no_grad():
            return tuple(module(torch.zeros(1, *shape)).shape[1:])
    except (RuntimeError, ValueError):
        return None


conv_args = st.fixed_dictionaries(
    {
        "c_in": st.sampled_from([1, 2, 3, 4, 6]),
        "c_out": st.sampled_from([1, 2, 4, 6]),
        "k": st.integers(1, 7),
        "s": st.integers(1, 4),
        "p": st.integers(0, 4),
        "d": st.integers(1, 3),
        "g": st.sampled_from([1, 2, 3]),
        "h": st.integers(1, 24),
        "w": st.integers(1, 24),
    }
)


@settings(max_examples=200, deadline=None)
@given(conv_args)
def test_conv_shape_matches_torch(a):
    layer = f"Conv({a['c_out']}, {a['k']}, stride = {a['s']}, pad = {a['p']}, dilation = {a['d']}, groups = {a['g']})"
    ours = cnnc_shape(layer, (a["c_in"], a["h"], a["w"]))
    try:
        module = torch.nn.Conv2d(a["c_in"], a["c_out"], a["k"], a["s"], a["p"], a["d"], a["g"])
    except ValueError:
        assert ours is None  # torch refuses the groups: so does cnnc
        return
    assert ours == torch_shape(module, (a["c_in"], a["h"], a["w"]))


pool_args = st.fixed_dictionaries(
    {
        "k": st.integers(1, 6),
        "s": st.integers(1, 4),
        "p": st.integers(0, 3),
        "ceil": st.booleans(),
        "h": st.integers(1, 20),
        "w": st.integers(1, 20),
        "kind": st.sampled_from(["MaxPool", "AvgPool"]),
    }
)


@settings(max_examples=200, deadline=None)
@given(pool_args)
def test_pool_shape_matches_torch(a):
    ceil = "true" if a["ceil"] else "false"
    layer = f"{a['kind']}({a['k']}, stride = {a['s']}, pad = {a['p']}, ceil_mode = {ceil})"
    ours = cnnc_shape(layer, (2, a["h"], a["w"]))
    cls = torch.nn.MaxPool2d if a["kind"] == "MaxPool" else torch.nn.AvgPool2d
    module = cls(a["k"], a["s"], a["p"], ceil_mode=a["ceil"])
    assert ours == torch_shape(module, (2, a["h"], a["w"]))


# ---------------------------------------------------------------------------------------------
# Robustness: any text gets diagnostics, never a crash (an internal error is a bug in cnnc)

source_text = st.lists(
    st.sampled_from(
        list("abcin0123456789 \n()[]{}->:=,.+-*/%<>#\"'_")
        + [
            "network N ",
            "block B",
            "input ",
            "return ",
            "if ",
            " then ",
            " else ",
            "Conv",
            "choice",
            " for ",
            " in ",
        ]
    ),
    max_size=60,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(source_text)
def test_parser_never_crashes(text):
    from cnnc.dsl.diagnostics import CnncError

    try:
        parse_text(text)
    except CnncError as exc:
        assert all(d.code.startswith("E01") for d in exc.diagnostics)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs)
def test_elaboration_never_crashes(text):
    """Random programs are mostly wrong: each must give diagnostics (or a graph), never an exception."""
    result = elaborate_file("p.cnn", text=text)
    assert result.graph is None or result.graph.lint() == []
    assert result.ok or any(d.is_error for d in result.diagnostics)
