"""Resuming a study: what it remembers of its space, and the checks a resume must pass.

Input: a `Space` and a study (optuna's). Output: the space's fingerprint (sha256 of the modules'
syntax trees without positions or comments, the network, its arguments and the input shape), the
binding `search-report --export` rebuilds the space from, and the errors of a resume that would mix
results: other objectives (E0604) or another space (E0607), which includes a study whose trials
name decisions the space no longer has (`check_names`: a cnnc that named unnamed choices by their
place, `stage1.0@8:28`, before they were named from the label path, `stage1.0.conv.kernel_size`).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from cnnc.compiler import limits
from cnnc.dsl import records
from cnnc.dsl.diagnostics import CnncError, error
from cnnc.search.space import Space, fixed

# How the study's decisions are named; a study records it when created or found to agree (2: from
# the label path of the layer a choice stands in; a study without it may use the older names).
NAMING = 2
NAME_SETS = 64  # distinct sets of decision names a resume replays at most to compare the names

if TYPE_CHECKING:
    from cnnc.search.settings import Settings


def binding(space: Space) -> dict:
    """How the study elaborates its space (for `search-report --export`, which has no data set)."""
    args = {k: getattr(v, "span", None) and v.span.text for k, v in (space.args or {}).items()}
    return {
        "network": space.network,
        "args": [f"{k}={t}" for k, t in args.items() if t],
        "input_shape": list(space.input_shape) if space.input_shape else None,
    }


def space_of_study(study, file: str, allow_import: tuple[str, ...] = ()) -> Space:
    """The space a study was made from, read from `file` (with imports reaching `allow_import`: the
    caller's, never the study's), bound as the study records, refused (E0607) when the file changed
    since. A binding of other types than cnnc records (a crafted study) is E0608."""
    from cnnc.dsl.programs import load_program, parse_arg_values

    bound = _binding(study.user_attrs.get("binding"))
    if bound is None:
        raise CnncError(
            error(
                "E0608",
                f"study `{study.study_name}` does not record its space",
                None,
                helps=("studies made by an older cnnc cannot be exported; run the search again",),
            )
        )
    program = load_program(file, allow_import=allow_import)
    shape = tuple(bound["input_shape"]) if bound["input_shape"] else None
    space = Space(program, bound["network"], parse_arg_values(bound["args"]), shape)
    fingerprint = study.user_attrs.get("space")
    if fingerprint is not None and fingerprint != space_fingerprint(space):
        raise CnncError(
            error(
                "E0607",
                f"study `{study.study_name}` was made from another search space than "
                f"`{file}` is now",
                None,
                helps=("restore the space the study was made from to export its trials",),
            )
        )
    check_names(study, space, file)
    return space


def check_names(study, space: Space, file) -> bool:
    """Refuse (E0607) a study whose trials name decisions that replaying them does not meet: its
    decisions were named otherwise (an older cnnc), or a choice named by its place (`@line:col`:
    neither a `name` nor a label path) has moved since, which the fingerprint, blind to layout,
    does not see. Either way they would replay to other architectures. Each distinct set of names
    is replayed once, up to NAME_SETS; a study that records `NAMING` replays only the sets holding
    a place name. True when the study's names are the space's (so the study may record
    `NAMING`)."""
    current = study.user_attrs.get("naming") == NAMING
    seen: set[frozenset] = set()
    for trial in study.get_trials(deepcopy=False):
        recorded = trial.user_attrs.get("decisions")
        if not isinstance(recorded, dict) or not recorded or frozenset(recorded) in seen:
            continue
        if current and not any(PLACE.search(str(name)) for name in recorded):
            continue
        seen.add(frozenset(recorded))
        with limits.spending():  # a replay's nodes count apart from the search's
            met = space.member(fixed(recorded)).labels()
        unknown = [name for name in recorded if name not in met]
        if unknown:
            raise CnncError(renamed(study.study_name, file, unknown, list(met), moved=current))
        if len(seen) >= NAME_SETS:
            break
    return True


PLACE = re.compile(r"@\d+:\d+")  # a decision named by its place in the file (`stage1@8:28`)


def renamed(study_name: str, file, unknown: list[str], now: list[str], moved: bool = False):
    shown = ", ".join(f"`{n}`" for n in unknown[:3]) + (" …" if len(unknown) > 3 else "")
    listed = ", ".join(f"`{n}`" for n in now[:3]) + (" …" if len(now) > 3 else "")
    if moved:
        why = (
            "a choice with neither a `name` nor a labelled layer is named by its place in the "
            f"file, and lines have moved since; the space's decisions are {listed}"
        )
        fix = (
            "put the lines back where they were to go on with the study, or start another with "
            "`--study NAME` (or another --out); "
            '`choice(…, name = "k")` keeps a name where lines move'
        )
    else:
        why = (
            "cnnc now names a choice from the label path of the layer it stands in; the space's "
            f"decisions are {listed}"
        )
        fix = (
            "its trials would replay to other architectures: start another study with "
            "`--study NAME` (or another --out); the cnnc that made the study still reads it"
        )
    return error(
        "E0607",
        f"study `{study_name}` names decisions that `{file}` no longer has: {shown}",
        None,
        notes=(why,),
        helps=(fix,),
    )


MAX_SIDE = 1 << 16  # an input dimension a recorded binding may name


def _binding(bound) -> dict | None:
    """The study's `binding` attribute when it has the types `binding` writes, else None."""
    if not isinstance(bound, dict):
        return None
    network, args, shape = bound.get("network"), bound.get("args"), bound.get("input_shape")
    if type(network) is not str or not network.isidentifier():
        return None
    if not isinstance(args, list) or not all(type(a) is str for a in args):
        return None
    if shape is not None and not (
        isinstance(shape, list)
        and 1 <= len(shape) <= 4
        and all(type(d) is int and 0 < d <= MAX_SIDE for d in shape)
    ):
        return None
    return {"network": network, "args": args, "input_shape": shape}


def check_same_study(
    settings: Settings, recorded: dict, space: str | None, fingerprint: str
) -> None:
    """A resume must keep the objectives and the space (E0604, E0607)."""
    objectives = recorded.get("objectives") if isinstance(recorded, dict) else None
    if objectives != list(settings.names):
        held = (
            ", ".join(map(str, objectives))
            if isinstance(objectives, list)
            else "objectives it does not record"
        )
        raise CnncError(
            error(
                "E0604",
                f"study `{settings.study_name}` optimises {held}, not {', '.join(settings.names)}",
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


SCORED_BY = "scored_by"  # the study's record of the shared weights that scored its trials


def same_weights(study, settings: Settings, data, space: Space) -> None:
    """A one-shot study's trials are scored by one supernet (or one DARTS search): a resume whose
    training would differ (`kept.key`: the evaluator, its settings, the training data, the space)
    would rank two supernets' scores together (E0604), before any training. A study with no
    scored trial takes this run's record."""
    from cnnc.search.evaluators import kept

    digest = kept.key(settings, data, space_fingerprint(space), settings.evaluator)
    recorded = study.user_attrs.get(SCORED_BY)
    scored = any(t.user_attrs.get("status") == "scored" for t in study.get_trials(deepcopy=False))
    if recorded == digest:
        return
    if recorded is None or not scored:
        study.set_user_attr(SCORED_BY, digest)
        return
    raise CnncError(
        error(
            "E0604",
            f"study `{settings.study_name}` was scored by weights trained with other settings "
            "(epochs, learning rate, batch size, optimiser, label smoothing, seed, budgets or "
            "data): its scores and this run's would not compare",
            None,
            notes=tuple(changes(study, settings)),
            helps=(
                "keep the settings the study was made with, or start another study with "
                "`--study NAME` or another --out",
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
    h.update(
        repr(
            (space.network, sorted((space.args or {}).items(), key=str), space.input_shape)
        ).encode()
    )
    return h.hexdigest()


def _tree(node):
    """An AST as nested tuples of what it means: the compared fields, spans left out."""
    if records.is_record(node):
        return (type(node).__name__,) + tuple(
            _tree(getattr(node, f.name))
            for f in records.fields(node)
            if f.compare and f.name != "span"
        )
    if isinstance(node, (list, tuple)):
        return tuple(_tree(x) for x in node)
    return node


def changes(study, settings: Settings) -> list[str]:
    """How this run's settings differ from those the study was created with (results may not compare)."""
    recorded = study.user_attrs.get("settings", {})
    if not isinstance(recorded, dict):  # a crafted study: `check_same_study` refuses it
        return []
    now = settings.recorded()
    return [
        f"the study was made with {key} = {recorded[key]}, this run has {now[key]}"
        for key in now
        if key in recorded and recorded[key] != now[key]
    ]
