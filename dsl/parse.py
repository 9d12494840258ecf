"""Text → AST (`ast.Module`): the front of the parser.

A text parsed before is not parsed again: in this process (`_PARSED`: a search or a benchmark
loads the same family files for every network it builds), and across processes for files read from
disk (`dsl/astcache.py`). Only a text met for the first time reaches `dsl/syntax.py`, the lark
parser, so a `cnnc check` of a file seen before never imports lark.
"""

from __future__ import annotations

from cnnc.dsl import ast, astcache
from cnnc.dsl.source import SourceFile

CACHED_TEXT = 1 << 16  # characters: zoo files are a few KiB; fuzzers' giants are not kept in memory


def parse(source: SourceFile, keep: bool = False) -> ast.Module:
    """Parse one file. Raises `CnncError` with one E01xx diagnostic on a syntax error.

    `keep`: the text came from a file, so its AST may be kept on disk for the next process. ASTs
    are frozen; one remembered in this process (same path, same text) has its spans pointing at the
    first `SourceFile` of that path and text, an equal one."""
    if len(source.text) > CACHED_TEXT:
        return _parse(source, keep)
    key = (source.path, source.text)
    if key not in _PARSED:
        _PARSED[key] = _parse(source, keep)
        while len(_PARSED) > 64:
            del _PARSED[next(iter(_PARSED))]  # the oldest
    return _PARSED[key]


_PARSED: dict[
    tuple[str, str], ast.Module
] = {}  # (path, text) → AST; SourceFile compares by identity


def _parse(source: SourceFile, keep: bool) -> ast.Module:
    module = astcache.load(source) if keep else None
    if module is None:
        from cnnc.dsl.syntax import parse_source

        module = parse_source(source)
        if keep:
            astcache.store(source, module)
    return module


def parse_text(text: str, path: str = "<string>") -> ast.Module:
    return parse(SourceFile(path, text))
