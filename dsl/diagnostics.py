"""Diagnostics: what went wrong, where, and how to fix it.

A `Diagnostic` carries a code (E0101…, W0101…), a headline that stands alone (lowercase, no final
period, facts in it), labelled spans (one primary), notes (what the snippet cannot show) and helps (the
only place a fix is proposed). `render` prints them in rustc's layout, in one line each (`concise`,
its help lines indented below), or as JSON for editors. User-facing code raises `CnncError` (one or
more diagnostics), never a bare `ValueError`; `str()` of one is what the CLI prints without colour
(headline, location, source lines with their marks, notes, helps and the closing count).

What a diagnostic prints comes from an untrusted file, so the terminal never receives it raw: control,
format and bidi characters (ESC, NUL, CR, U+202E, …) are shown as escapes (`\\x1b`, `\\u202e`), message
lines are cut at `MAX_TEXT` characters, and a source row wider than `MAX_SNIPPET_COLUMNS` is cut around
its marks with `…`. Tabs in a snippet are shown as `TAB_WIDTH` spaces; the carets follow the shown
text (wide characters take two columns), while `line:col` counts characters as editors do.
"""

from __future__ import annotations

import unicodedata
from enum import Enum

from cnnc.dsl.records import record, replace
from cnnc.dsl.source import Span

MAX_SNIPPET_COLUMNS = (
    120  # a wider source row is cut around its marks (a 1 MB line prints ~120 columns)
)
MAX_TEXT = 300  # characters of one message line (headline, label, note, help) before it is cut
TAB_WIDTH = 4  # a tab in a snippet shows as this many spaces, as rustc does
_UNSAFE = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))  # controls, format/bidi, surrogates, separators


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@record
class Label:
    span: Span
    message: str = ""
    primary: bool = False


@record
class Diagnostic:
    code: str
    message: str
    labels: tuple[Label, ...] = ()
    notes: tuple[str, ...] = ()
    helps: tuple[str, ...] = ()
    severity: Severity = Severity.ERROR

    @property
    def span(self) -> Span | None:
        """The primary span (the first label when none is marked primary)."""
        for label in self.labels:
            if label.primary:
                return label.span
        return self.labels[0].span if self.labels else None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple:
        span = self.span
        if span is None:
            return ("", 0, self.code)
        return (span.file.path, span.start, self.code)


def error(code: str, message: str, span: Span | None, label: str = "", **extra) -> Diagnostic:
    """A diagnostic whose primary label is `span` (skipped when there is no span)."""
    labels = (Label(span, label, primary=True),) if span is not None else ()
    labels += tuple(extra.pop("secondary", ()))
    return Diagnostic(code, message, labels, **extra)


def warning(code: str, message: str, span: Span | None, label: str = "", **extra) -> Diagnostic:
    return replace(error(code, message, span, label, **extra), severity=Severity.WARNING)


class CnncError(Exception):
    """One or more user-facing diagnostics, raised across a stage boundary."""

    def __init__(self, *diagnostics: Diagnostic):
        super().__init__(diagnostics[0].message if diagnostics else "error")
        self.diagnostics = tuple(diagnostics)

    def __str__(self) -> str:
        """The diagnostics in full, as the CLI renders them without colour (a traceback or a
        notebook shows the source line, the caret, the notes and the helps)."""
        return render(self.diagnostics, style="full") or "error"


class InternalError(Exception):
    """A bug in cnnc (not in the user's file); the CLI prints it and exits 70. `dump` is saved in the
    bug report (e.g. the graph whose lint failed)."""

    def __init__(self, message: str, dump: str = ""):
        super().__init__(message)
        self.dump = dump


# ---------------------------------------------------------------------------------------------
# Terminal safety


def escape_char(ch: str) -> str:
    """A character as a terminal may receive it: itself, or a visible escape (`\\x1b`, `\\u202e`)."""
    if unicodedata.category(ch) not in _UNSAFE:
        return ch
    n = ord(ch)
    if n < 0x100:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def printable(text: str, limit: int = MAX_TEXT) -> str:
    """`text` with every unsafe character escaped, cut to `limit` characters with `…`."""
    cut = len(text) > limit
    return "".join(map(escape_char, text[:limit])) + ("…" if cut else "")


def _cell(ch: str) -> tuple[str, int]:
    """How one source character is shown in a snippet, and how many columns it takes."""
    if ch == "\t":
        return " " * TAB_WIDTH, TAB_WIDTH
    shown = escape_char(ch)
    if shown is not ch:
        return shown, len(shown)
    if unicodedata.combining(ch):
        return ch, 0
    return ch, 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def snippet(line: str, marks: list[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    """`line` as shown, and each mark's (start, width) in its columns; marks are (char, chars).

    Only characters near the first mark are looked at, so a 1 MB line costs a few hundred cells.
    """
    focus = min((s for s, _ in marks), default=0)
    first = max(0, focus - MAX_SNIPPET_COLUMNS)
    last = min(len(line), first + 3 * MAX_SNIPPET_COLUMNS)
    cells = [_cell(ch) for ch in line[first:last]]
    cols = [0]
    for _, w in cells:
        cols.append(cols[-1] + w)
    at = [(_clamp(s - first, len(cells)), _clamp(s + w - first, len(cells))) for s, w in marks]
    if cols[-1] <= MAX_SNIPPET_COLUMNS and first == 0 and last == len(line):
        return "".join(c for c, _ in cells), [(cols[a], max(1, cols[b] - cols[a])) for a, b in at]
    lo, hi = _window(cols, at)
    left, right = (
        "…" if lo > 0 or first > 0 else "",
        "…" if hi < len(cells) or last < len(line) else "",
    )
    shift = cols[lo] - len(left)
    end = cols[hi] - shift
    placed = []
    for a, b in at:
        start = min(max(cols[a] - shift, len(left)), end)
        placed.append((start, max(1, min(cols[b] - shift, end) - start)))
    return left + "".join(c for c, _ in cells[lo:hi]) + right, placed


def _clamp(i: int, n: int) -> int:
    return max(0, min(i, n))


def _window(cols: list[int], at: list[tuple[int, int]]) -> tuple[int, int]:
    """Cells [lo, hi) to show: the marks centred in `MAX_SNIPPET_COLUMNS - 2` columns (room for `…`)."""
    room = MAX_SNIPPET_COLUMNS - 2
    a = cols[min((s for s, _ in at), default=0)]
    b = cols[max((e for _, e in at), default=0)]
    start = a - (room - (b - a)) // 2 if b - a < room else a - 8
    start = max(0, min(start, cols[-1] - room))
    lo = next(i for i, c in enumerate(cols) if c >= start)
    hi = lo
    while hi < len(cols) - 1 and cols[hi + 1] - cols[lo] <= room:
        hi += 1
    return lo, hi


# ---------------------------------------------------------------------------------------------
# Rendering


class _Style:
    def __init__(self, color: bool):
        self.color = color

    def paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and text else text

    def severity(self, d: Diagnostic) -> str:
        word = f"{d.severity.value}[{d.code}]"
        return self.paint(word, "1;31" if d.is_error else "1;33")


def render(diagnostics, style: str = "full", color: bool = False) -> str:
    """All diagnostics in one text (`full`, `concise` or `json`), sorted by position, with a count."""
    diags = sorted(dedupe(diagnostics), key=Diagnostic.sort_key)
    if style == "json":
        import json  # here: only --format json needs it

        return json.dumps([to_json(d) for d in diags], indent=2)
    painter = _Style(color)
    if style == "concise":
        body = [render_concise(d, helps=True) for d in diags]
    else:
        body = [render_full(d, painter) for d in diags]
    tail = count_line(diags)
    return "\n".join(body + ([tail] if tail else []))


def dedupe(diagnostics) -> list[Diagnostic]:
    """Merge diagnostics with the same code at the same primary span (a block's many instances)."""
    seen: dict[tuple, Diagnostic] = {}
    for d in diagnostics:
        span = d.span
        key = (
            d.code,
            span.file.path if span else None,
            span.start if span else None,
            span.end if span else None,
        )
        if key not in seen:
            seen[key] = d
    return list(seen.values())


def count_line(diags) -> str:
    errors = sum(d.is_error for d in diags)
    warnings = len(diags) - errors
    files = {d.span.file.path for d in diags if d.span is not None}
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    if not parts:
        return ""
    n = len(files)
    where = f" in {n} file{'s' if n != 1 else ''}" if n else ""
    return f"found {' and '.join(parts)}{where}"


def render_concise(d: Diagnostic, helps: bool = False) -> str:
    """`file:line:col: error[CODE]: message` (rustc's short form); with `helps`, each help follows on
    lines indented by two spaces, so a line starting with a path is always a diagnostic's first."""
    where = printable(d.span.where()) + ": " if d.span is not None else ""
    head = f"{where}{d.severity.value}[{d.code}]: {printable(d.message)}"
    if not helps:
        return head
    return "\n".join([head] + [_tagged(" ", "help", h, sep=" ") for h in d.helps])


def to_json(d: Diagnostic) -> dict:
    def place(span: Span) -> dict:
        line, col = span.file.line_col(span.start)
        end_line, end_col = span.file.line_col(span.end)
        return {
            "file": span.file.path,
            "line": line,
            "column": col,
            "end_line": end_line,
            "end_column": end_col,
        }

    out = {"severity": d.severity.value, "code": d.code, "message": d.message}
    if d.span is not None:
        out.update(place(d.span))
    out["labels"] = [
        dict(place(lb.span), message=lb.message, primary=lb.primary) for lb in d.labels
    ]
    out["notes"] = list(d.notes)
    out["helps"] = list(d.helps)
    return out


def render_full(d: Diagnostic, painter: _Style | None = None) -> str:
    painter = painter or _Style(False)
    lines = [f"{painter.severity(d)}{painter.paint(': ' + printable(d.message), '1')}"]
    primary = d.span
    if primary is None:
        lines += [_tagged(" ", "note", n) for n in d.notes] + [
            _tagged(" ", "help", h) for h in d.helps
        ]
        return "\n".join(lines)
    same_file = [lb for lb in d.labels if lb.span.file is primary.file]
    elsewhere = [lb for lb in d.labels if lb.span.file is not primary.file]
    by_line = _labels_by_line(same_file)
    width = len(str(max(by_line)))
    pad = " " * width
    lines.append(f"{pad}--> {printable(primary.where())}")
    lines.append(f"{pad} |")
    previous = None
    for line_no in sorted(by_line):
        if previous is not None and line_no > previous + 1:
            lines.append(
                f"{pad} ..."
                if line_no > previous + 2
                else _source_row(primary, previous + 1, width)
            )
        lines += _marked_rows(primary, line_no, by_line[line_no], width)
        previous = line_no
    notes = [f"{lb.message} at {lb.span.where()}" for lb in elsewhere] + list(d.notes)
    if notes or d.helps:
        lines.append(f"{pad} |")
    lines += [_tagged(pad, "note", n) for n in notes]
    lines += [_tagged(pad, "help", h) for h in d.helps]
    return "\n".join(lines) + "\n"


def _tagged(pad: str, tag: str, text: str, sep: str = " = ") -> str:
    """`= help: text`, its further lines indented under the text; every line made printable."""
    first, *rest = text.split("\n")
    head = f"{pad}{sep}{tag}: "
    indent = " " * len(head)
    return "\n".join([head + printable(first)] + [indent + printable(r) for r in rest])


def _source_row(primary: Span, line_no: int, width: int) -> str:
    shown, _ = snippet(primary.file.line_text(line_no), [])
    return f"{line_no:>{width}} | {shown}".rstrip()


def _marked_rows(primary: Span, line_no: int, labels: list[Label], width: int) -> list[str]:
    """A source row and its marker rows, which share one cut of the line."""
    shown, marks = snippet(primary.file.line_text(line_no), [_extent(lb, line_no) for lb in labels])
    rows = _marker_rows([(s, w, lb) for (s, w), lb in zip(marks, labels)])
    pad = " " * width
    return [f"{line_no:>{width}} | {shown}".rstrip()] + [f"{pad} | {row}".rstrip() for row in rows]


def _labels_by_line(labels) -> dict[int, list[Label]]:
    out: dict[int, list[Label]] = {}
    for lb in labels:
        out.setdefault(lb.span.line, []).append(lb)
    return out


def _extent(label: Label, line_no: int) -> tuple[int, int]:
    """0-based start character and width in characters of a label's marks on its first line."""
    span = label.span
    line_text = span.file.line_text(line_no)
    start = span.col - 1
    end_line, end_col = span.file.line_col(span.end)
    stop = end_col - 1 if end_line == line_no else len(line_text)
    return start, max(1, stop - start)


def _marker_rows(marks: list[tuple[int, int, Label]]) -> list[str]:
    """rustc-style rows: all marks on one row, the rightmost message beside them, the rest hung below.
    `marks` are (start column, width, label) in the shown row's columns."""
    placed = sorted(marks, key=lambda t: t[0])
    row = [" "] * (max(s + w for s, w, _ in placed) + 1)
    for start, width, lb in placed:
        mark = "^" if lb.primary else "-"
        for i in range(start, start + width):
            row[i] = mark
    first = "".join(row).rstrip()
    last_msg = printable(placed[-1][2].message)
    rows = [first + (" " + last_msg if last_msg else "")]
    hanging = [(s, lb) for s, _, lb in placed[:-1] if lb.message]
    for k in range(len(hanging) - 1, -1, -1):
        cols = [s for s, _ in hanging[: k + 1]]
        rows.append(_pipes(cols))
        message = printable(hanging[k][1].message)
        rows.append(_pipes(cols[:-1]) + " " * (cols[-1] - len(_pipes(cols[:-1]))) + message)
    return rows


def _pipes(cols: list[int]) -> str:
    row = [" "] * (max(cols) + 1 if cols else 0)
    for c in cols:
        row[c] = "|"
    return "".join(row)
