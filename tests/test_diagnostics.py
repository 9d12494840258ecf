"""Diagnostics never leak: control and bidi characters are escaped, long lines are cut around the
caret, and the caret stays under the character it marks (dsl/diagnostics.py)."""

from __future__ import annotations

import json
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from cnnc.dsl.diagnostics import (
    MAX_SNIPPET_COLUMNS,
    CnncError,
    Label,
    error,
    escape_char,
    render,
    snippet,
)
from cnnc.dsl.source import SourceFile, Span

UNSAFE = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))


def diag(text: str, start: int, end: int, message: str = "m", label: str = "here", helps=()):
    src = SourceFile("t.cnn", text)
    return error("E0201", message, Span(src, start, end), label, helps=helps)


def leaks(output: str) -> set[str]:
    """Characters a terminal would act on (newline is the renderer's own)."""
    return {ch for ch in output if ch != "\n" and unicodedata.category(ch) in UNSAFE}


def caret_row(output: str) -> tuple[str, str]:
    """The numbered source row and the marker row below it, without their gutters."""
    lines = output.splitlines()
    i = next(k for k, line in enumerate(lines) if line.lstrip()[:1].isdigit() and " | " in line)
    return lines[i].split(" | ", 1)[1], lines[i + 1].split(" | ", 1)[1]


# -- escaping ----------------------------------------------------------------------------------


def test_escape_table():
    cases = {
        "\x1b": "\\x1b",
        "\x00": "\\x00",
        "\x07": "\\x07",
        "\r": "\\x0d",
        "\x7f": "\\x7f",
        "\x9b": "\\x9b",
        "\u202e": "\\u202e",
        "\u2066": "\\u2066",
        "\u200b": "\\u200b",
        "\ud800": "\\ud800",
        "\u2028": "\\u2028",
        "\U000e0001": "\\U000e0001",
        "é": "é",
        "宽": "宽",
    }
    assert {ch: escape_char(ch) for ch in cases} == cases


def test_a_raw_esc_in_a_comment_and_a_headline_reaches_the_terminal_escaped():
    text = "# \x1b]0;pwned\x07 \x1b[2J\u202e\nx = Bogus\n"
    d = diag(text, 0, 1, message="unknown op `Bo\x1b[31mgus\u202e`", label="not \x1b defined")
    out = render([d])
    assert leaks(out) == set()
    assert "# \\x1b]0;pwned\\x07 \\x1b[2J\\u202e" in out
    assert "error[E0201]: unknown op `Bo\\x1b[31mgus\\u202e`" in out and "not \\x1b defined" in out


def test_help_note_and_path_are_escaped_line_by_line():
    src = SourceFile("evil\x1b[2J.cnn", "x\n")
    d = error("E0201", "m", Span(src, 0, 1), notes=("a\rb",), helps=("first\nsecond \x07",))
    out = render([d])
    assert leaks(out) == set()
    assert "--> evil\\x1b[2J.cnn:1:1" in out and "= note: a\\x0db" in out
    assert "= help: first\n" in out and "second \\x07" in out


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300), st.text(max_size=40), st.data())
def test_nothing_unsafe_ever_reaches_the_terminal(text, message, data):
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    d = diag(text, start, end, message=message, label=message, helps=(message,))
    for style in ("full", "concise"):
        assert leaks(render([d], style=style)) == set()
    assert leaks(str(CnncError(d))) == set()


def test_json_keeps_the_exact_text_for_tools():
    d = diag("x\n", 0, 1, message="name `a\x1bb`")
    assert json.loads(render([d], style="json"))[0]["message"] == "name `a\x1bb`"


# -- cutting long lines --------------------------------------------------------------------------


def test_a_one_megabyte_line_is_cut_around_the_caret():
    line = "a" * 500_000 + "Bogus" + "b" * 500_000
    out = render([diag(line + "\n", 500_000, 500_005)])
    assert len(out) < 1_000
    shown, marks = caret_row(out)
    assert shown.startswith("…") and shown.endswith("…") and len(shown) <= MAX_SNIPPET_COLUMNS
    assert shown[marks.index("^") :].startswith("Bogus") and marks.strip().startswith("^^^^^ here")


def test_a_long_headline_is_cut():
    out = render([diag("x\n", 0, 1, message="unknown name `" + "n" * 10_000 + "`")])
    assert len(out.splitlines()[0]) < 400 and out.splitlines()[0].endswith("…")


def test_short_lines_are_shown_whole():
    assert snippet("return in -> Bogus", [(13, 5)]) == ("return in -> Bogus", [(13, 5)])


# -- the caret lands under what it marks ------------------------------------------------------------


def test_tabs_show_as_four_spaces_and_the_caret_follows():
    out = render([diag("\treturn in ->\tBogus\n", 14, 19)])
    shown, marks = caret_row(out)
    assert shown == "    return in ->    Bogus" and marks == " " * 20 + "^^^^^ here"
    assert "--> t.cnn:1:15" in out  # columns count characters: the tab is one


def test_wide_characters_take_two_columns():
    shown, marks = snippet("宽宽 Bogus", [(3, 5)])
    assert shown == "宽宽 Bogus" and marks == [(5, 5)]


def test_escapes_widen_the_row_and_the_caret_follows():
    shown, marks = snippet("\x1b\x1b Bogus", [(3, 5)])
    assert shown == "\\x1b\\x1b Bogus" and marks == [(9, 5)]


def test_cr_only_line_endings_place_the_caret():
    out = render([diag("network N {\r    input [3, 8, 8]\r    return in -> Bogus\r}\r", 49, 54)])
    assert "--> t.cnn:3:18" in out and caret_row(out) == (
        "    return in -> Bogus",
        " " * 17 + "^^^^^ here",
    )


LINE_CHARS = st.sampled_from("ab =()->\t\x1b\x00\u202e\x7f\x9b")


@settings(max_examples=200, deadline=None)
@given(st.lists(LINE_CHARS, max_size=400).map("".join), st.data())
def test_the_caret_is_always_under_the_marked_character(line, data):
    """With a unique `@` marked anywhere in a line of tabs, controls and spaces, the shown row has
    `@` exactly at the marked column, and never exceeds the width limit."""
    at = data.draw(st.integers(0, len(line)))
    line = line[:at] + "@" + line[at:]
    shown, [(column, width)] = snippet(line, [(at, 1)])
    assert shown[column] == "@" and width == 1
    assert len(shown) <= MAX_SNIPPET_COLUMNS  # every cell here is as long as it is wide


# -- CnncError and the concise form ------------------------------------------------------------------


def test_cnnc_error_stringifies_as_the_cli_renders_it():
    src = SourceFile("m.cnn", "network N {\n    return in -> Bogus\n}\n")
    exc = CnncError(
        error(
            "E0201",
            "unknown op or block `Bogus`",
            Span(src, 29, 34),
            "not defined here",
            helps=("a similar name exists: `BatchNorm`",),
        ),
        error("E0202", "no file `x`", None),
    )
    assert str(exc) == (
        "error[E0202]: no file `x`\n"
        "error[E0201]: unknown op or block `Bogus`\n"
        " --> m.cnn:2:18\n"
        "  |\n"
        "2 |     return in -> Bogus\n"
        "  |                  ^^^^^ not defined here\n"
        "  |\n"
        "  = help: a similar name exists: `BatchNorm`\n"
        "\n"
        "found 2 errors in 1 file"
    )
    assert str(exc) == render(exc.diagnostics, style="full", color=False)


def test_concise_keeps_the_help_lines_indented_below():
    d = diag(
        "x = Bogus\n",
        4,
        9,
        message="unknown op `Bogus`",
        helps=("a similar name exists: `BatchNorm`", "one\ntwo"),
    )
    assert render([d], style="concise").splitlines() == [
        "t.cnn:1:5: error[E0201]: unknown op `Bogus`",
        "  help: a similar name exists: `BatchNorm`",
        "  help: one",
        "        two",
        "found 1 error in 1 file",
    ]


def test_secondary_labels_share_the_cut_of_a_long_line():
    src = SourceFile("t.cnn", "a" * 400 + "(x + y)" + "b" * 400 + "\n")
    d = error(
        "E0301", "m", Span(src, 403, 404), "plus", secondary=(Label(Span(src, 401, 402), "left"),)
    )
    shown, marks = caret_row(render([d]))
    assert shown[marks.index("^")] == "+" and shown[marks.index("-")] == "x"
