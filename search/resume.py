"""Resuming a study: what it remembers of its space, and the checks a resume must pass.

Input: a `Space` and a study (optuna's). Output: the space's fingerprint (sha256 of the modules'
syntax trees without positions or comments, the network, its arguments and the input shape), the
binding `search-report --export` rebuilds the space from, and the errors of a resume that would mix
results: other objectives (E0604) or another space (E0607).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from cnnc.dsl import records
from cnnc.dsl.diagnostics import CnncError, error
from cnnc.search.space import Space

if TYPE_CHECKING:
    from cnnc.search.driver import Settings


def binding(space: Space) -> dict:
    """How the study elaborates its space (for `search-report --export`, which has no data set)."""
    args = {k: getattr(v, "span", None) and v.span.text for k, v in (space.args or {}).items()}
    return {"network": space.network, "args": [f"{k}={t}" for k, t in args.items() if t],
            "input_shape": list(space.input_shape) if space.input_shape else None}


def space_of_study(study) -> Space:
    """The space a study was made from, bound as it was, refused (E0607) when the file changed since."""
    from cnnc.dsl.programs import load_program, parse_arg_values

    recorded, bound = study.user_attrs.get("settings", {}), study.user_attrs.get("binding")
    if bound is None or "file" not in recorded:
        raise CnncError(error("E0608", f"study `{study.study_name}` does not record its space", None,
                              helps=("studies made by an older cnnc cannot be exported; run the search again",)))
    program = load_program(recorded["file"], allow_import=tuple(recorded.get("allow_import") or ()))
    shape = tuple(bound["input_shape"]) if bound["input_shape"] else None
    space = Space(program, bound["network"], parse_arg_values(bound["args"]), shape)
    fingerprint = study.user_attrs.get("space")
    if fingerprint is not None and fingerprint != space_fingerprint(space):
        raise CnncError(error("E0607", f"study `{study.study_name}` was made from another search space than "
                              f"`{recorded['file']}` is now", None,
                              helps=("restore the space the study was made from to export its trials",)))
    return space


def check_same_study(settings: Settings, recorded: dict, space: str | None, fingerprint: str) -> None:
    """A resume must keep the objectives and the space (E0604, E0607)."""
    if recorded.get("objectives") != list(settings.names):
        raise CnncError(
            error(
                "E0604",
                f"study `{settings.study_name}` optimises {', '.join(recorded['objectives'])}, "
                f"not {', '.join(settings.names)}",
                None,
                helps=("start another study with `--study NAME`, or keep its objectives",),
            )
        )
    if space is not None and space != fingerprint:
        raise CnncError(
            error(
                "E0607",
                f"study `{settings.study_name}` was made from another search space than "
                f"`{settings.file}` is now (the space's text, imports or arguments changed)",
                None,
                helps=(
                    (
                        "its trials' decisions would mean other architectures: start another study "
                        "with `--study NAME` (or another --out), or restore the space it was made from"
                    ),
                ),
            )
        )


def space_fingerprint(space: Space) -> str:
    """sha256 of what decides the members: every module's syntax tree (without source positions and
    comments: layout and comments do not count), the network, its arguments and the input shape."""
    h = hashlib.sha256()
    program = space.program
    for key in sorted(program.modules, key=lambda k: (k != program.main, k)):
        h.update(repr(_tree(program.modules[key])).encode())
    h.update(repr((space.network, sorted((space.args or {}).items(), key=str), space.input_shape)).encode())
    return h.hexdigest()


def _tree(node):
    """An AST as nested tuples of what it means: the compared fields, spans left out."""
    if records.is_record(node):
        return (type(node).__name__,) + tuple(
            _tree(getattr(node, f.name)) for f in records.fields(node) if f.compare and f.name != "span"
        )
    if isinstance(node, (list, tuple)):
        return tuple(_tree(x) for x in node)
    return node


def changes(study, settings: Settings) -> list[str]:
    """How this run's settings differ from those the study was created with (results may not compare)."""
    recorded = study.user_attrs.get("settings", {})
    now = settings.recorded()
    return [
        f"the study was made with {key} = {recorded[key]}, this run has {now[key]}"
        for key in now
        if key in recorded and recorded[key] != now[key]
    ]
