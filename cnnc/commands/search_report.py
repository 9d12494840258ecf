"""`cnnc search-report`: a stored study's trials as a table, its best trial(s), and its plots redrawn."""

from __future__ import annotations

import os
from pathlib import Path

from cnnc.commands import common, files

HELP = "print a search study's trials and redraw its plots"
DESCRIPTION = """\
Read a study that `cnnc search` stored — finished, or still running on any number of machines —
and print one row per trial (status, objectives, params, MACs, time, reason), the progress toward
--trials, the best trial so far (or the Pareto front), and the failures with their reasons; write
trials.csv, best.cnn (the best trial so far as a program) and redraw the plots (history.png,
pareto.png, importances.png) into --out; while a search runs in that folder, they go to its
subfolder report/ instead, leaving the search's own files alone. --export N writes trial N as a
program instead: the space with each choice replaced by the option taken.

A study folder is data: the report opens its study read-only and refuses a study file that is a
link or another database; what it writes replaces any link planted in --out (said on stderr). The
space --export reads is the one the study records only where it lies inside the study's folder
(or the zoo, or an --allow-import folder given now); elsewhere, name it with --space FILE.

examples:
  cnnc search-report runs/t
  cnnc search-report --storage sqlite:///runs/t/study.db --study tiny --out /tmp/report
  cnnc search-report --storage postgresql://search@db.lan/nas --study resnet
  cnnc search-report runs/t --export 7 -o trial7.cnn
  cnnc search-report shared/t --export 7 --space spaces/tiny.cnn -o trial7.cnn
"""


def configure(p) -> None:
    p.add_argument("dir", nargs="?", type=Path, help="a `cnnc search --out` folder (its study.db)")
    p.add_argument(
        "--storage", metavar="URL", help="Optuna storage (default: sqlite:///DIR/study.db)"
    )
    p.add_argument(
        "--study", metavar="NAME", help="study name (default: the only study in the storage)"
    )
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="where trials.csv and the plots go (default: DIR)"
    )
    p.add_argument(
        "--export",
        type=int,
        metavar="N",
        help="write trial N as a program: the space with each choice replaced by the option taken",
    )
    p.add_argument(
        "-o",
        dest="output",
        type=Path,
        metavar="FILE",
        help="where --export writes (default: trial_N.cnn in --out)",
    )
    p.add_argument(
        "--space",
        type=Path,
        metavar="FILE",
        help="with --export: the space the study was made from (default: the file the study "
        "records, when it lies inside the study's folder or the zoo)",
    )
    p.add_argument(
        "--allow-import",
        action="append",
        default=[],
        metavar="DIR",
        type=common.import_dir,
        help="with --export: a folder the space's imports may reach, and where a recorded "
        "space may lie (repeatable)",
    )


def run(args) -> int:
    from cnnc.search import driver, studyfiles
    from cnnc.search import storage as stores

    storage, out = _locations(args)
    files.check_storage(storage, read_only=True)
    with (
        files.study_refusals(),
        stores.storage_errors(storage),
    ):  # a damaged study fails while being read
        with studyfiles.reading(storage):
            study = driver.load_study(storage, args.study, read_only=True)
            trials, attrs, count = (
                study.trials,
                study.user_attrs,
                len(study.directions),
            )  # parsed here, once
        if args.export is not None:
            space = space_file(args, attrs, storage)
            return export(
                study, trials, args.export, args.output or out / f"trial_{args.export}.cnn", space
            )
        return report_study(
            study, trials, attrs, count, storage, out, _best_space(args, attrs, storage)
        )


def _best_space(args, attrs: dict, storage: str) -> tuple[str, tuple[str, ...]] | str:
    """The space best.cnn is written from, confined as `--export`'s (`space_file`), or why not."""
    try:
        return space_file(args, attrs, storage)
    except common.UserError as exc:
        return str(exc)


def space_file(args, attrs: dict, storage: str) -> tuple[str, tuple[str, ...]]:
    """The space `--export` reads and the folders its imports may reach: --space and --allow-import
    as given now; the study's recorded file only inside the study's folder, the zoo or those folders
    (a study is data: nothing it records chooses a path outside)."""
    from cnnc.dsl.programs import zoo_dir

    roots = tuple(args.allow_import)
    if args.space is not None:
        return str(args.space), roots
    recorded = attrs.get("settings") if isinstance(attrs.get("settings"), dict) else {}
    file = recorded.get("file")
    if type(file) is not str or not file:
        raise common.UserError(
            f"the study in `{storage}` does not record its space",
            "name the space it was made from with --space FILE",
        )
    folder = args.dir or _study_folder(storage)
    if not any(_inside(file, root) for root in (folder, zoo_dir(), *roots) if root is not None):
        raise common.UserError(
            f"the study records its space as `{file}`, outside the study's folder: cnnc opens a path a "
            "study records only inside its folder",
            f"name the space with --space {file} if you trust it (and --allow-import DIR for its imports)",
        )
    return file, roots


def _study_folder(storage: str) -> Path | None:
    return (
        Path(storage.split(":///", 1)[1]).parent
        if storage.startswith(("sqlite:///", "journal:///"))
        else None
    )


def _inside(file: str, root) -> bool:
    try:
        real, top = os.path.realpath(file), os.path.realpath(root)
    except (OSError, ValueError):  # a NUL in a recorded path
        return False
    return os.path.commonpath([real, top]) == top


def export(study, trials, number: int, path: Path, space) -> int:
    from cnnc.search import results

    with files.writing(path, "-o"):
        path.parent.mkdir(parents=True, exist_ok=True)
        written, flat = results.export_trial(study, trials, number, path, space)
    print(f"wrote {written}")
    if flat:
        from cnnc.dsl.diagnostics import printable

        print(
            f"note: the layers are listed one by one (the space could not be kept: {printable(flat)})"
        )
    return common.OK


def objective_names(attrs: dict, count: int) -> tuple[str, ...]:
    """The names the study recorded for its objectives, when they are `count` strings."""
    recorded = attrs.get("settings") if isinstance(attrs.get("settings"), dict) else {}
    names = recorded.get("objectives")
    if isinstance(names, list) and len(names) == count and all(type(n) is str for n in names):
        return tuple(names)
    return tuple(f"objective {i}" for i in range(count))


def report_study(
    study,
    trials,
    attrs: dict,
    count: int,
    storage: str,
    out: Path,
    space: tuple[str, tuple[str, ...]] | str,
) -> int:
    from cnnc.dsl.diagnostics import printable
    from cnnc.search import latency, report, results
    from cnnc.search.retrain import recalled

    recorded = attrs.get("settings") if isinstance(attrs.get("settings"), dict) else {}
    names = objective_names(attrs, count)
    rows = report.rows(trials)
    recorded_file = recorded.get("file")
    print(
        f"study `{printable(str(study.study_name))}` in {printable(storage)}"
        + (f" · space {printable(recorded_file)}" if type(recorded_file) is str else "")
    )
    print(report.table(rows, names))
    print()
    print(report.counts_text(rows))
    print(report.progress_text(trials, attrs.get("trials")))
    best = report.best_rows(rows, names)
    if len(names) > 1 and best:
        print(f"Pareto front so far ({len(best)} trials):")
    for row in best:
        figures = "  ".join(report.value_text(n, v) for n, v in zip(names, row.values))
        lead = "best so far" if len(names) == 1 else " "
        print(f"{lead} #{row.number}: {figures}  [{printable(row.decisions_text(' '))}]")
    failures = [r for r in rows if r.state == "FAIL"]
    if failures:
        print(f"failures ({len(failures)}):")
    for row in failures:
        print(
            f"  #{row.number} {printable(row.status)}: {printable(row.reason or 'its worker stopped answering')}"
        )
    out, moved = _report_folder(out)
    with files.writing(out, "--out"):
        out.mkdir(parents=True, exist_ok=True)
        report.write_csv(rows, out / "trials.csv")
        bests, notes = results.write_study_best(study, best, out / "best.cnn", space)
        written, plot_notes = report.plot_study(study, names, out)
    notes = moved + notes + plot_notes
    check = latency.check(rows)  # from the rows' checked figures, not the study's own attribute
    if check is not None:
        notes.append(latency.check_note(check))
    retrained = recalled(study, rows)  # a one-shot search's --retrain-top, recomputed
    if retrained is not None:
        notes.append(retrained.note())
    for path in [out / "trials.csv", *bests, *written]:
        print(f"wrote {printable(str(path))}")
    for note in notes:
        print(f"note: {printable(note)}")
    return common.OK


def _report_folder(out: Path) -> tuple[Path, list[str]]:
    """`out`, or its subfolder report/ while a search runs there (its files are the search's)."""
    from cnnc.search.results import search_running

    if not search_running(out):
        return out, []
    moved = out / "report"
    return moved, [
        f"a search is running in `{out}`: its files are left alone, this report went to `{moved}`"
    ]


def _locations(args) -> tuple[str, Path]:
    from cnnc.api import is_file

    if args.storage is None and args.dir is None:
        raise common.UsageError(
            "give a search folder (`cnnc search-report runs/t`) or --storage URL"
        )
    if args.storage is None:
        from cnnc.dsl.safefs import kind

        folder = args.dir.resolve()  # the folder, not its study file: a linked study.db is refused
        for name, scheme in (("study.db", "sqlite"), ("study.journal", "journal")):
            if kind(folder / name) != "missing":
                return f"{scheme}:///{folder / name}", args.out or args.dir
        raise common.UsageError(f"no study.db or study.journal in `{args.dir}`")
    if (
        args.storage.startswith("sqlite:///")
        and not is_file(args.storage.removeprefix("sqlite:///"))
        and not os.path.islink(args.storage.removeprefix("sqlite:///"))  # refused by check_storage
    ):
        raise common.UsageError(f"no SQLite file at {args.storage.removeprefix('sqlite:///')}")
    return args.storage, args.out or args.dir or Path("runs") / (args.study or "report")
