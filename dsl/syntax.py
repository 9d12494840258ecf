"""Text → AST (`ast.Module`) with lark. The only importer of lark; `dsl/parse.py` is the front that
skips this module for a text parsed before (in this process, or on disk: `dsl/astcache.py`).

lark's exceptions become `CnncError`s with E01xx diagnostics: the position comes from lark, the
terminal names are mapped to what a user types (`RPAR` → `)`), and an unclosed bracket is shown as a
secondary label.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import lark
from lark import Token, Transformer, v_args

from cnnc.dsl import ast
from cnnc.dsl.astcache import cache_dir, digest
from cnnc.dsl.diagnostics import CnncError, Label, error
from cnnc.dsl.literals import decode_string, float_value, int_value
from cnnc.dsl.source import SourceFile, Span

MAX_NESTING = 200  # deeper expressions are not written by hand; guard the recursive passes
GRAMMAR = Path(__file__).with_name("cnn.lark")

_COMMENTS: list[
    Token
] = []  # filled by the lexer during one parse; parse_source() copies and clears it


@functools.cache
def _parser() -> lark.Lark:
    grammar = GRAMMAR.read_text(encoding="utf-8")
    # LALR: linear time and a parser state per error, which the messages below rely on. The
    # analysed tables come from lark's cache (building them costs more than a whole `cnnc check`).
    return lark.Lark(
        grammar,
        start="module",
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        lexer="basic",
        lexer_callbacks={"COMMENT": _COMMENTS.append},
        cache=_cache_file(grammar),
    )


def _cache_file(grammar: str) -> str | bool:
    """A file in the user's cache dir named by the grammar's hash (so checkouts with different
    grammars do not overwrite each other); `False` (no cache) where that dir cannot be made. lark
    itself re-checks the hash and lark's version, and carries on silently when it cannot write.
    The file is a pickle: it lives beside the user's other caches, never beside a .cnn file."""
    folder = cache_dir()
    if folder is None:
        return False
    return str(folder / f"grammar-{digest(grammar + lark.__version__)}.lark")


def parse_source(source: SourceFile) -> ast.Module:
    """Parse one file with lark. Raises `CnncError` with one E01xx diagnostic on a syntax error."""
    _COMMENTS.clear()
    try:
        tree = _parser().parse(source.text)
    except lark.exceptions.UnexpectedInput as exc:
        raise CnncError(_syntax_diagnostic(source, exc)) from None
    comments = list(_COMMENTS)
    _COMMENTS.clear()
    _check_nesting(source, tree)
    try:
        module = _ToAst(source).transform(tree)
    except lark.exceptions.VisitError as exc:  # a literal refused by dsl/literals.py
        if isinstance(exc.orig_exc, CnncError):
            raise exc.orig_exc from None
        raise
    kept = tuple(ast.Comment(str(c), Span(source, c.start_pos, c.end_pos)) for c in comments)
    return ast.Module(module.items, kept, Span(source, 0, len(source.text)))


def _check_nesting(source: SourceFile, tree: lark.Tree) -> None:
    """Reject absurd nesting before the recursive passes meet it (no RecursionError, ever)."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            span = (
                Span(source, node.meta.start_pos, node.meta.end_pos)
                if not node.meta.empty
                else None
            )
            raise CnncError(
                error(
                    "E0104",
                    f"expressions nest deeper than {MAX_NESTING} levels",
                    span,
                    "nested too deeply",
                    helps=("name the inner parts with `x = …`",),
                )
            )
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, lark.Tree))


# ---------------------------------------------------------------------------------------------
# Syntax errors

_TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "$END": "end of file",
}
_CLOSERS = {"(": ")", "[": "]", "{": "}"}
_OPERATORS = {
    f"`{op}`"
    for op in [
        "or",
        "and",
        "not",
        "+",
        "-",
        "*",
        "/",
        "//",
        "%",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        ".",
        "(",
        "[",
        "if",
    ]
}
_PREFERRED = [",", ")", "]", "}", "->", "=", ":"]


def _terminal_text(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    term = next((t for t in _parser().terminals if t.name == name), None)
    if term is not None and term.pattern.type == "str":
        return f"`{term.pattern.value}`"
    return name.lower()


def _expected_phrase(expected: set[str], open_bracket: str | None) -> str:
    words = {_terminal_text(name) for name in expected}
    # LALR merges states, so every closer may look acceptable; only the innermost open one is.
    wanted = _CLOSERS.get(open_bracket or "", "")
    words -= {f"`{c}`" for c in _CLOSERS.values() if c != wanted}
    preferred = [f"`{p}`" for p in _PREFERRED if f"`{p}`" in words]
    starts_expression = "a name" in words and "an integer" in words
    if starts_expression and not preferred:
        return "an expression"
    structural = words - _OPERATORS
    words = structural or words
    if wanted and {f"`{wanted}`", "`,`"} <= words:
        return f"`,` or `{wanted}`"
    if len(words) <= 4:
        return _or_list(sorted(words, key=lambda w: (not w.startswith("`"), w)))
    shown = preferred[:4] + (["an expression"] if starts_expression else [])
    return _or_list(shown or sorted(words)[:4])


def _or_list(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def _found_text(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    return f"`{token}`"


def _syntax_diagnostic(source: SourceFile, exc: lark.exceptions.UnexpectedInput):
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        offset = exc.pos_in_stream
        char = source.text[offset]
        span = Span(source, offset, offset + 1)
        hint = ()
        if char in "\"'":
            hint = ("strings end on the line they start: close it with a matching quote",)
        opened = tuple(lb for lb in _unclosed(source, offset) if lb.span.text != "{")
        return error(
            "E0102",
            f"unexpected character `{char}`",
            span,
            "not part of the language",
            secondary=opened,
            helps=hint,
        )
    token = exc.token
    expected = set(getattr(exc, "expected", ()) or getattr(exc, "accepts", ()) or ())
    at = len(source.text.rstrip()) if token.type == "$END" else token.start_pos
    opened = _unclosed(source, at)
    bracket = opened[0].span.text if opened else None
    phrase = _expected_phrase(expected, bracket) if expected else "something else"
    if token.type == "$END":
        span = Span(source, max(0, at - 1), max(0, at))
        return error(
            "E0103",
            f"unexpected end of file: expected {phrase}",
            span,
            "the file ends here",
            secondary=opened,
        )
    span = Span(source, token.start_pos, token.end_pos)
    shown = tuple(lb for lb in opened if lb.span.text != "{")  # an open `{` is only noise mid-body
    return error(
        "E0101",
        f"expected {phrase}, found {_found_text(token)}",
        span,
        f"found {_found_text(token)}",
        secondary=shown,
        helps=_syntax_help(source, token, expected),
    )


def _syntax_help(source: SourceFile, token: Token, expected: set[str]) -> tuple[str, ...]:
    before = source.text[: token.start_pos].rstrip()
    if str(token) == "=" and re.search(r"->\s*[A-Za-z_]\w*$", before):
        return ("a layer's label is written with `:`, e.g. `conv1: Conv(64, 3)`",)
    if str(token) == "->" and before.endswith("->"):
        return ("remove one of the two `->`",)
    if str(token) == ":" and "NAME" not in expected:
        return ("a label names one layer of a chain: `name: Layer(...)`",)
    return ()


def _unclosed(source: SourceFile, offset: int) -> tuple[Label, ...]:
    """The innermost bracket still open at `offset`, as a secondary label."""
    stack: list[int] = []
    text = source.text
    i = 0
    while i < offset:
        ch = text[i]
        if ch == "#":
            newline = text.find("\n", i)
            i = offset if newline < 0 else newline
            continue
        if ch in "\"'":
            i = _string_end(text, i, offset)
            continue
        if ch in _CLOSERS:
            stack.append(i)
        elif ch in _CLOSERS.values() and stack and _CLOSERS[text[stack[-1]]] == ch:
            stack.pop()
        i += 1
    if not stack:
        return ()
    start = stack[-1]
    return (Label(Span(source, start, start + 1), f"this `{text[start]}` is not closed"),)


def _string_end(text: str, start: int, limit: int) -> int:
    """Where the string literal opened at `start` ends (escapes skipped; it ends at its line)."""
    i = start + 1
    while i < limit:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == text[start]:
            return i + 1
        if ch == "\n":
            return i
        i += 1
    return limit


# ---------------------------------------------------------------------------------------------
# Tree → AST

_BINOPS = {
    "or_": "or",
    "and_": "and",
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "add": "+",
    "sub": "-",
    "mul": "*",
    "div": "/",
    "floordiv": "//",
    "mod": "%",
}


@v_args(meta=True)
class _ToAst(Transformer):
    """One method per grammar alias; each builds one AST node with its span."""

    def __init__(self, source: SourceFile):
        super().__init__()
        self.source = source

    def _span(self, meta) -> Span:
        return Span(self.source, meta.start_pos, meta.end_pos)

    def _tok(self, token: Token) -> Span:
        return Span(self.source, token.start_pos, token.end_pos)

    def _unquote(self, token: Token) -> str:
        return decode_string(self.source, token.start_pos, str(token))

    # definitions
    def module(self, meta, items):
        return ast.Module(tuple(items))

    def import_stmt(self, meta, children):
        return ast.Import(self._unquote(children[0]), self._span(meta))

    def params(self, meta, children):
        return tuple(children)

    def param(self, meta, children):
        name, default = children
        return ast.Param(str(name), default, self._span(meta))

    def body(self, meta, children):
        return tuple(children)

    def block_def(self, meta, children):
        name, params, body = children
        return ast.BlockDef(str(name), params or (), body, self._span(meta), self._tok(name))

    def network_def(self, meta, children):
        name, params, body = children
        return ast.NetworkDef(str(name), params, body, self._span(meta), self._tok(name))

    def network_alias(self, meta, children):
        name, value, *derive = children
        return ast.NetworkAlias(str(name), value, self._span(meta), self._tok(name), tuple(derive))

    # derived networks
    def label_path(self, meta, children):
        parts = []
        for child in children:
            text = str(child)
            if child.type == "FLOAT":  # `.1` of `layer4.1`: a numbered part
                if not text[1:].isdigit() or not text.startswith("."):
                    raise CnncError(
                        error(
                            "E0101",
                            f"`{text}` is not part of a label path",
                            self._tok(child),
                            helps=("write numbered parts as `layer4.1.conv2`",),
                        )
                    )
                text = text[1:]
            parts.append(text)
        return ast.LabelPath(tuple(parts), self._span(meta))

    def replacement(self, meta, children):
        path, value = children
        return ast.Replacement(path, value, self._span(meta))

    def derive_with(self, meta, children):
        return ast.Derive("with", replacements=tuple(children), span=self._span(meta))

    def freeze_until(self, meta, children):
        return ast.Derive("freeze_until", paths=tuple(children), span=self._span(meta))

    def freeze_list(self, meta, children):
        return ast.Derive("freeze", paths=tuple(children), span=self._span(meta))

    def cut_after(self, meta, children):
        return ast.Derive("cut_after", paths=tuple(children), span=self._span(meta))

    def decision(self, meta, children):
        name, value = children
        key = ast.String(self._unquote(name), span=self._tok(name))
        return ast.Decision(key, value, self._span(meta))

    def decisions(self, meta, children):
        return tuple(children)

    def derive_decide(self, meta, children):
        found = children[0] or ()
        return ast.Derive("decide", decisions=tuple(found), span=self._span(meta))

    def block_alias(self, meta, children):
        name, value = children
        return ast.BlockAlias(str(name), value, self._span(meta), self._tok(name))

    def let_stmt(self, meta, children):
        name, value = children
        return ast.Let(str(name), value, self._span(meta), self._tok(name))

    def return_stmt(self, meta, children):
        return ast.Return(children[0], self._span(meta))

    def input_stmt(self, meta, children):
        return ast.InputDecl(children[0], self._span(meta))

    def input_named(self, meta, children):
        name, items = children
        span = self._span(meta)
        start = self._tok(name).end
        shape = ast.ListExpr(
            items or (), span=Span(span.file, span.file.text.index("[", start), span.end)
        )
        return ast.InputDecl(shape, span, str(name), self._tok(name))

    def assert_stmt(self, meta, children):
        cond, message = children
        return ast.Assert(
            cond, self._unquote(message) if message is not None else None, self._span(meta)
        )

    # expressions
    def if_expr(self, meta, children):
        return ast.If(*children, span=self._span(meta))

    def chain(self, meta, children):
        return ast.Chain(tuple(children), span=self._span(meta))

    def label_name(self, meta, children):
        return children[0]

    def labeled(self, meta, children):
        name, value = children
        return ast.Labeled(str(name), value, self._tok(name), span=self._span(meta))

    def not_(self, meta, children):
        return ast.UnaryOp("not", children[0], span=self._span(meta))

    def neg(self, meta, children):
        return ast.UnaryOp("-", children[0], span=self._span(meta))

    def call(self, meta, children):
        func, args = children
        positional, keywords = _split_args(args)
        return ast.Call(func, positional, keywords, span=self._span(meta))

    def choice(self, meta, children):
        positional, keywords = _split_args(children[0])
        return ast.Choice(positional, keywords, span=self._span(meta))

    def kwarg(self, meta, children):
        name, value = children
        return ast.Kwarg(str(name), value, self._span(meta))

    def args(self, meta, children):
        return tuple(children)

    def items(self, meta, children):
        return tuple(children)

    def index(self, meta, children):
        return ast.Index(*children, span=self._span(meta))

    def attr(self, meta, children):
        value, name = children
        return ast.Attr(value, str(name), self._tok(name), span=self._span(meta))

    def attr_number(self, meta, children):
        """`features.4`: a numbered part, taken by its number (the lexer read `.4` as a float)."""
        value, number = children
        text = str(number)
        if re.fullmatch(r"\.[0-9]+", text) is None:
            raise CnncError(
                error(
                    "E0101",
                    f"`{text}` cannot follow a value",
                    self._tok(number),
                    helps=("a numbered part is written `features.4`",),
                )
            )
        span = self._tok(number)
        return ast.Attr(
            value, text[1:], Span(span.file, span.start + 1, span.end), span=self._span(meta)
        )

    def int_(self, meta, children):
        text = str(children[0])
        return ast.Number(int_value(self._span(meta), text), text, span=self._span(meta))

    def float_(self, meta, children):
        text = str(children[0])
        return ast.Number(float_value(self._span(meta), text), text, span=self._span(meta))

    def string(self, meta, children):
        return ast.String(self._unquote(children[0]), span=self._span(meta))

    def true(self, meta, children):
        return ast.Bool(True, span=self._span(meta))

    def false(self, meta, children):
        return ast.Bool(False, span=self._span(meta))

    def none(self, meta, children):
        return ast.NoneLit(span=self._span(meta))

    def name(self, meta, children):
        return ast.Name(str(children[0]), span=self._span(meta))

    def input_ref(self, meta, children):
        span = self._span(meta)
        return ast.InputRef(span.text, span=span)

    def list_(self, meta, children):
        return ast.ListExpr(children[0] or (), span=self._span(meta))

    def tuple_(self, meta, children):
        first, rest = children
        return ast.TupleExpr((first, *(rest or ())), span=self._span(meta))

    def record(self, meta, children):
        return ast.RecordExpr(children[0] or (), span=self._span(meta))

    def fields(self, meta, children):
        return tuple(children)

    def field(self, meta, children):
        key, value = children
        return ast.Field(str(key), value, self._span(meta), self._tok(key))

    def comprehension(self, meta, children):
        elt, var, iterable, cond = children
        return ast.Comprehension(elt, str(var), iterable, cond, span=self._span(meta))


def _binop_method(symbol: str):
    def build(self, meta, children):
        left, right = children
        op_span = _operator_span(self.source, left.span, right.span, symbol)
        return ast.BinOp(symbol, left, right, op_span, span=self._span(meta))

    return build


for _alias, _symbol in _BINOPS.items():
    setattr(_ToAst, _alias, v_args(meta=True)(_binop_method(_symbol)))


def _operator_span(source: SourceFile, left: Span, right: Span, symbol: str) -> Span:
    """Where the operator itself is written between its operands."""
    gap = source.text[left.end : right.start]
    at = gap.find(symbol)
    start = left.end + (max(at, 0))
    return Span(source, start, start + len(symbol))


def _split_args(args) -> tuple[tuple, tuple]:
    args = args or ()
    positional = tuple(a for a in args if not isinstance(a, ast.Kwarg))
    keywords = tuple(a for a in args if isinstance(a, ast.Kwarg))
    return positional, keywords
