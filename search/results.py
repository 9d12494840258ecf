"""What a study leaves in `--out`: trials.csv, best.cnn, the plots — and any trial as a program.

Input: a study (optuna's), its `Settings` and `Space`. Output: `driver.Result` and the files. best.cnn
(and `search-report --export N`) is the trial's member written as its space with the choices resolved
(`concrete.write_member`), checked to rebuild the trial's exact layers.

A search holds `running(out)` while it runs: a shared `flock` on `out/.cnnc-search.lock`, released
by the system when the process ends, however it ends. `search_running(out)` tells `search-report`
to leave such a folder's files alone.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path

from cnnc.dsl import safefs
from cnnc.dsl.diagnostics import CnncError, error
from cnnc.search import report
from cnnc.search import storage as stores
from cnnc.search.choices import one_shot, trains
from cnnc.search.resume import space_of_study
from cnnc.search.settings import Result, Settings
from cnnc.search.space import Space, fixed, graph_hash, text_hash


def finish(settings: Settings, space: Space | None, study, stopped: str = "done") -> Result:
    """Rows, the best trial(s), and the files: trials.csv, best.cnn (when a space is given), plots."""
    rows = report.rows(stores.retrying(lambda: study.trials, lambda text: None))
    best = report.best_rows(rows, settings.names)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    report.write_csv(rows, out / "trials.csv")
    files, notes = [out / "trials.csv"], []
    if space is not None and best:
        path, flat = write_best(space, best[0], settings, study.study_name, out / "best.cnn")
        files.append(path)
        if flat:
            notes.append(
                f"best.cnn lists the layers one by one (the space could not be kept: {flat})"
            )
    plotted, plot_notes = report.plot_study(study, settings.names, out)
    notes += latency_notes(study, rows)
    return Result(study, rows, best, files + plotted, notes + plot_notes, stopped)


def latency_notes(study, rows) -> list[str]:
    """The `latency` objective's check (`search/latency.py`), recorded in the study's user
    attribute `latency_check` and said in a note."""
    from cnnc.search import latency

    figures = latency.check(rows)
    if figures is None:
        return []
    if study.user_attrs.get("latency_check") != figures:
        stores.retrying(lambda: study.set_user_attr("latency_check", figures), lambda text: None)
    return [latency.check_note(figures)]


def write_best(
    space: Space, row: report.Row, settings: Settings, study_name: str, path: Path
) -> tuple[Path, str | None]:
    """Replay a trial's decisions and write its architecture as the space with its choices resolved
    (or flat, saying why: `concrete.write_member`)."""
    from cnnc.search.concrete import write_member

    member = space.member(fixed(row.decisions))
    if not member.ok or row.hash not in (
        graph_hash(member.graph),
        text_hash(member.graph),
    ):  # a damaged or crafted study, or another space
        raise CnncError(
            error(
                "E0608",
                f"replaying trial {row.number}'s decisions gives another architecture "
                f"than study `{study_name}` records for it",
                None,
                helps=(
                    (
                        "the study's records of the trial do not match its space: export another "
                        "trial, or restore the study from a copy"
                    ),
                ),
            )
        )
    values = row.values or ()
    if row.state != "COMPLETE" or not values:
        score = f"{row.status}: {row.reason}" if row.reason else row.status
    elif one_shot(settings.evaluator):
        score = (
            f"validation accuracy {values[0]:.4f} on {settings.data} with the weights of a "
            f"{settings.evaluator} search ({settings.epochs} epochs, shared by every member)"
        )
    elif trains(settings.evaluator):
        score = (
            f"validation accuracy {values[0]:.4f} on {settings.data} after {settings.epochs} epochs"
        )
    else:
        score = f"{settings.proxy} score {values[0]:.4g} on {settings.data}"
    comments = (
        f"A member of the search space `{Path(settings.file).name}`, written by cnnc:",
        f"trial {row.number} of study `{study_name}`, {score};",
        f"{row.params or 0:,} params, {row.macs or 0:,} MACs.",
        "decisions: " + ", ".join(f"{k} = {v}" for k, v in row.decisions.items()),
        "",
    )
    _, flat = write_member(path, space, member, "best", comments)
    return path, flat


def export_trial(
    study, trials, number: int, path: Path, space: tuple[str, tuple[str, ...]]
) -> tuple[Path, str | None]:
    """Write trial `number` of `study` (whose `trials` were read) as its space with the choices
    resolved (`write_best`); `space` is the file of the space and the folders its imports may reach,
    as the user gives them now (`cnnc search-report --export`)."""
    rows = {r.number: r for r in report.rows(trials)}
    row = rows.get(number)
    if row is None or not row.hash:
        what = (
            "no such trial"
            if row is None
            else f"it is {row.status}: {row.reason or 'never elaborated'}"
        )
        raise CnncError(
            error(
                "E0608",
                f"study `{study.study_name}` has no architecture for trial {number} ({what})",
                None,
                helps=("`cnnc search-report` lists the trials and their status",),
            )
        )
    return write_best(
        space_of_study(study, *space), row, settings_for(study, space[0]), study.study_name, path
    )


def settings_for(study, file: str) -> Settings:
    """What best.cnn's comments need of the run that made `study`: `file` as the caller names it, the
    rest from what the study records (`recorded_settings`)."""
    recorded = recorded_settings(study.user_attrs)
    return Settings(
        file=file,
        evaluator=recorded.get("evaluator", "train"),
        data=recorded.get("data", "digits"),
        epochs=recorded.get("epochs", 2),
        proxy=(recorded.get("objectives") or ["naswot"])[0],
    )


def recorded_settings(attrs: dict) -> dict:
    """What a study records of its run (`Settings.recorded`), the entries of the types cnnc writes:
    a crafted study's others are left out (they reach only a comment of the exported file)."""
    recorded = attrs.get("settings") if isinstance(attrs.get("settings"), dict) else {}
    kinds = {"evaluator": str, "data": str, "epochs": int}
    out = {k: v for k, v in recorded.items() if k in kinds and type(v) is kinds[k]}
    objectives = recorded.get("objectives")
    if isinstance(objectives, list) and objectives and all(type(o) is str for o in objectives):
        out["objectives"] = objectives
    return out


def write_study_best(
    study,
    best: list[report.Row],
    path: Path,
    space: tuple[str, tuple[str, ...]] | str,
) -> tuple[list[Path], list[str]]:
    """best.cnn for `search-report`: the first of `best`, from `space` (the file and import roots the
    caller confined, or why there is none); a study whose space cannot be rebuilt (older, changed,
    moved) gets a note instead."""
    if not best:
        return [], []
    if isinstance(space, str):
        return [], [f"best.cnn not written: {space}"]
    try:
        _, flat = write_best(
            space_of_study(study, *space),
            best[0],
            settings_for(study, space[0]),
            study.study_name,
            path,
        )
    except CnncError as exc:
        return [], [f"best.cnn not written: {exc.diagnostics[0].message}"]
    notes = (
        [f"best.cnn lists the layers one by one (the space could not be kept: {flat})"]
        if flat
        else []
    )
    return [path], notes


# ---------------------------------------------------------------------------------------------
# A search running in a folder

RUNNING = ".cnnc-search.lock"


@contextlib.contextmanager
def running(out):
    """Held by a search while it works with `out` as its folder (module docstring). A link or a
    FIFO planted in the lock file's place is removed first (it would keep the lock from being
    taken, and `search-report` from seeing the search); a folder that cannot hold the lock file is
    searched without it."""
    path = Path(out) / RUNNING
    if safefs.kind(path) in ("link", "fifo", "socket"):
        with contextlib.suppress(OSError):
            path.unlink()
    try:
        lock = safefs.open_lock(path)
    except OSError:
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_SH)  # shared: several searches may share one folder and study
        yield


def search_running(out) -> bool:
    """Whether a search holds `running(out)` now; where something else stands in the lock file's
    place (a folder, a link, a FIFO) it cannot tell, and answers True: a report then leaves the
    folder's files alone."""
    path = Path(out) / RUNNING
    try:
        lock = safefs.open_lock(path, create=False)
    except FileNotFoundError:  # no search has run here
        return False
    except OSError:  # not a lock file of ours
        return safefs.kind(path) != "missing"
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False
