"""The formatter's layout, one case per rule, and the canonical form of the zoo and the README.

Each case gives the input and the exact output; every case is also checked to parse to the same
program and to be a fixed point (`tests/test_properties.py` checks both for random programs).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from cnnc.dsl.diagnostics import CnncError
from cnnc.dsl.format import format_module
from cnnc.dsl.parse import parse_text


def fmt(text: str) -> str:
    out = format_module(parse_text(text))
    assert parse_text(out) == parse_text(text)
    assert format_module(parse_text(out)) == out
    return out


CASES = {
    "a long chain breaks before `->`, aligned under the first `->`": (
        "block B {\n    return in -> conv1: Conv(64, 3, stride = 2, pad = 1, bias = false)"
        " -> bn1: BatchNorm -> relu: ReLU -> pool: MaxPool(2)\n}\n",
        "block B() {\n"
        "    return in -> conv1: Conv(64, 3, stride = 2, pad = 1, bias = false) -> bn1: BatchNorm\n"
        "              -> relu: ReLU -> pool: MaxPool(2)\n"
        "}\n",
    ),
    "the author's breaks are kept, re-aligned": (
        "block B {\n    return in -> a: Conv(8, 3)\n        -> b: ReLU -> c: Conv(8, 1)\n}\n"
        "x = [1, 2,\n 3]\n",
        "block B() {\n    return in -> a: Conv(8, 3)\n              -> b: ReLU -> c: Conv(8, 1)\n}\n\n"
        "x = [1, 2,\n     3]\n",
    ),
    "a short program stays on one line": (
        "x = Conv( 64 ,3,stride=2 )\n",
        "x = Conv(64, 3, stride = 2)\n",
    ),
    "arguments continue after their `(`": (
        "block B(a) {\n    return in -> conv_dw: Conv(in.channels, 3, stride = a, pad = 1,"
        " groups = in.channels, bias = false, dilation = 1)\n}\n",
        "block B(a) {\n"
        "    return in -> conv_dw: Conv(in.channels, 3, stride = a, pad = 1, groups = in.channels,\n"
        "                               bias = false, dilation = 1)\n"
        "}\n",
    ),
    "arguments hang when their column leaves too little room": (
        "x = some_function_with_a_very_long_name_indeed(another_function_name_that_is_long("
        '"a string that is rather long to fit"), 2)\n',
        "x = some_function_with_a_very_long_name_indeed(\n"
        '    another_function_name_that_is_long("a string that is rather long to fit"),\n'
        "    2,\n"
        ")\n",
    ),
    "a long list is packed row by row": (
        "rows = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],"
        " [6, 160, 3, 2],\n        [6, 320, 1, 1]]\n",
        "rows = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],\n"
        "        [6, 320, 1, 1]]\n",
    ),
    "long arithmetic breaks before its operator": (
        "total = first_stage_width * expansion_factor + second_stage_width * expansion_factor"
        " + third_stage_width * expansion_factor\n",
        "total = first_stage_width * expansion_factor + second_stage_width * expansion_factor\n"
        "        + third_stage_width * expansion_factor\n",
    ),
    "parameters continue after their `(`": (
        "network RegNet(depths, widths, group_width, bottleneck = 1.0, se_ratio = 0.25, stem = 32,"
        " classes = 1000) {\n    input [3, 224, 224]\n    return in\n}\n",
        "network RegNet(depths, widths, group_width, bottleneck = 1.0, se_ratio = 0.25, stem = 32,\n"
        "               classes = 1000) {\n    input [3, 224, 224]\n    return in\n}\n",
    ),
    "a trailing comment counts in the width": (
        "block B {\n    return in -> conv1: Conv(64, 3, stride = 2, pad = 1, bias = false)"
        " -> bn1: BatchNorm -> ReLU  # the stem: [64, 16, 16]\n}\n",
        "block B() {\n"
        "    return in -> conv1: Conv(64, 3, stride = 2, pad = 1, bias = false) -> bn1: BatchNorm\n"
        "              -> ReLU  # the stem: [64, 16, 16]\n"
        "}\n",
    ),
    "a column of comments stays a column": (
        "block B {\n    return in -> Conv(8, 3)      # [8, 30, 30]\n"
        "              -> MaxPool(2)      # [8, 15, 15]\n}\n",
        "block B() {\n    return in -> Conv(8, 3)      # [8, 30, 30]\n"
        "              -> MaxPool(2)      # [8, 15, 15]\n}\n",
    ),
    "a `#` in a string is no comment": (
        'x = f("#1", "say \\"#\\"")  # a real one\n',
        'x = f("#1", "say \\"#\\"")  # a real one\n',
    ),
    "a comment between arguments keeps its line": (
        "y = f(a = 1, # first\n  b = 2)\n",
        "y = f(a = 1,  # first\n      b = 2)\n",
    ),
    "a comment with no room left moves in to two spaces": (
        "x = Conv(8, 3)" + " " * 80 + "# far out\n",
        "x = Conv(8, 3)  # far out\n",
    ),
    "an `if` breaks before `then` and `else`; `else if` keeps the column": (
        "x = if stride != 1 or channels != width then in -> downsample: (Conv(width, 1, stride = stride)"
        " -> BatchNorm) else in\n"
        'z = if v == "M" then MaxPool(2) else if batch_norm then Conv(v, 3, pad = 1) -> BatchNorm'
        " -> ReLU else Conv(v, 3, pad = 1) -> ReLU\n",
        "x = if stride != 1 or channels != width\n"
        "    then in -> downsample: (Conv(width, 1, stride = stride) -> BatchNorm)\n"
        "    else in\n"
        'z = if v == "M" then MaxPool(2)\n'
        "    else if batch_norm then (Conv(v, 3, pad = 1) -> BatchNorm -> ReLU)\n"
        "    else Conv(v, 3, pad = 1) -> ReLU\n",
    ),
    "a chain in a one-line `if` and arithmetic in a chain get parentheses": (
        "y = if a then b -> c else d\nz = (x + y) -> ReLU\n",
        "y = if a then (b -> c) else d\nz = (x + y) -> ReLU\n",
    ),
    "a comprehension breaks before `for`": (
        "block stage(unit, width, n, stride, groups, base_width) {\n    return in -> [unit(width, stride ="
        " if i == 0 then stride else 1, groups = groups) for i in range(n)]\n}\n",
        "block stage(unit, width, n, stride, groups, base_width) {\n"
        "    return in -> [unit(width, stride = if i == 0 then stride else 1, groups = groups)\n"
        "                  for i in range(n)]\n"
        "}\n",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_layout(case):
    text, expected = CASES[case]
    assert fmt(text) == expected


@pytest.mark.parametrize(
    ("written", "canonical", "value"),
    [
        ('"é\\n"', '"é\\n"', "é\n"),  # escapes and non-ASCII in one string (was mojibake)
        ("'say \"hi\"'", '"say \\"hi\\""', 'say "hi"'),
        ('"\\x1b[31m\\u202e\\t\\\\"', '"\\x1b[31m\\u202e\\t\\\\"', "\x1b[31m\u202e\t\\"),
        ('"\\U0001F600 \\0"', '"😀 \\0"', "😀 \0"),
        ('"\u00a0"', '"\\xa0"', "\u00a0"),  # a raw no-break space is shown as an escape
    ],
)
def test_strings(written, canonical, value):
    module = parse_text(f"x = {written}\n")
    assert module.items[0].value.value == value
    assert fmt(f"x = {written}\n") == f"x = {canonical}\n"


@pytest.mark.parametrize(
    ("text", "code", "column"),
    [
        ('x = "ab\\q"', "E0110", 8),
        ('x = "\\ud800"', "E0111", 6),
        ('x = "\\U00110000"', "E0111", 6),
        ("x = " + "1" * 101, "E0112", 5),
        ("x = 1e999", "E0113", 5),
        ("x = 1e-999", "E0113", 5),
        ('x = "\\x4"', "E0114", 6),
        ('x = "\\u00g1"', "E0114", 6),
    ],
)
def test_literal_errors(text, code, column):
    with pytest.raises(CnncError) as exc:
        parse_text(text + "\n")
    (diagnostic,) = exc.value.diagnostics
    assert (diagnostic.code, diagnostic.span.col) == (code, column)


def test_literal_limits_are_exact():
    assert parse_text("x = " + "9" * 100 + "\n").items[0].value.value == int("9" * 100)
    assert parse_text("x = 1e-320\n").items[0].value.value == 1e-320  # subnormal, but not 0
    assert parse_text("x = 0.0e-999\n").items[0].value.value == 0.0  # zero written as zero


def test_deep_nesting_formats_without_recursion_error():
    text = "x = " + "(a -> " * 190 + "b" + ")" * 190 + "\n"
    assert parse_text(fmt(text)) == parse_text(text)


# ---------------------------------------------------------------------------------------------
# The project's own files are canonical (CI runs this)

ZOO = sorted((ROOT / "zoo").rglob("*.cnn"))


def test_zoo_is_canonical(in_root, capsys):
    code, out, err = run_cli(["fmt", "--check", *(p.relative_to(ROOT) for p in ZOO)], capsys)
    assert (code, out) == (0, ""), err


@pytest.mark.parametrize("path", ZOO, ids=lambda p: str(p.relative_to(ROOT / "zoo")))
def test_zoo_file_fits_in_100_columns(path):
    assert [n for n, line in enumerate(path.read_text().splitlines(), 1) if len(line) > 100] == []


def readme_snippets() -> list[str]:
    return re.findall(r"```cnn\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_has_cnn_snippets():
    assert len(readme_snippets()) >= 2


@pytest.mark.parametrize("snippet", readme_snippets(), ids=lambda s: s.split("\n")[0][:40])
def test_readme_snippet_is_canonical(snippet):
    assert format_module(parse_text(snippet, "README.md")) == snippet
    assert all(len(line) <= 100 for line in snippet.splitlines())


def test_fmt_check_reports_a_file_that_is_not_canonical(tmp_path, capsys):
    path = Path(tmp_path) / "m.cnn"
    path.write_text("x = Conv( 64 ,3 )\n")
    code, out, err = run_cli(["fmt", "--check", path], capsys)
    assert code == 1
    assert "+x = Conv(64, 3)" in out
    assert "1 file would be reformatted" in err


def test_fmt_prints_every_file_in_order(tmp_path, capsys):
    files = []
    for name, text in (("a.cnn", "x=1\n"), ("b.cnn", "y = 2\n"), ("c.cnn", "z=3\n")):
        (tmp_path / name).write_text(text)
        files.append(tmp_path / name)
    code, out, _err = run_cli(["fmt", *files], capsys)
    assert (code, out) == (0, "x = 1\ny = 2\nz = 3\n")


def test_an_escaped_quote_does_not_end_a_string_for_the_unclosed_bracket_label():
    text = 'network N {\n    input [3, 8, 8]\n    return in -> label("a\\"b(", ReLU\n}\n'
    with pytest.raises(CnncError) as exc:
        parse_text(text)
    (diagnostic,) = exc.value.diagnostics
    opened = [label for label in diagnostic.labels if not label.primary]
    assert [(label.span.line, label.span.col) for label in opened] == [(3, 23)]
