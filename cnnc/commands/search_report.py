"""`cnnc search-report`: a stored study's trials as a table, its best trial(s), and its plots redrawn."""

from __future__ import annotations

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

examples:
  cnnc search-report runs/t
  cnnc search-report --storage sqlite:///runs/t/study.db --study tiny --out /tmp/report
  cnnc search-report --storage postgresql://search@db.lan/nas --study resnet
  cnnc search-report runs/t --export 7 -o trial7.cnn
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
    p.add_argument("-o", dest="output", type=Path, metavar="FILE",
                   help="where --export writes (default: trial_N.cnn in --out)")


def run(args) -> int:
    from cnnc.search import driver

    storage, out = _locations(args)
    files.check_storage(storage)
    with files.storage_errors(storage):  # a damaged or read-only study fails while being read
        study = driver.load_study(storage, args.study)
        if args.export is not None:
            return export(study, args.export, args.output or out / f"trial_{args.export}.cnn")
        return report_study(study, storage, out)


def export(study, number: int, path: Path) -> int:
    from cnnc.search import results

    with files.writing(path, "-o"):
        path.parent.mkdir(parents=True, exist_ok=True)
        written, flat = results.export_trial(study, number, path)
    print(f"wrote {written}")
    if flat:
        print(f"note: the layers are listed one by one (the space could not be kept: {flat})")
    return common.OK


def report_study(study, storage: str, out: Path) -> int:
    from cnnc.search import report, results

    recorded = study.user_attrs.get("settings", {})
    names = tuple(
        recorded.get("objectives") or [f"objective {i}" for i in range(len(study.directions))]
    )
    rows = report.rows(study.trials)
    print(
        f"study `{study.study_name}` in {storage}"
        + (f" · space {recorded['file']}" if "file" in recorded else "")
    )
    print(report.table(rows, names))
    print()
    print(report.counts_text(rows))
    print(report.progress_text(study.trials, study.user_attrs.get("trials")))
    best = report.best_rows(rows, names)
    if len(names) > 1 and best:
        print(f"Pareto front so far ({len(best)} trials):")
    for row in best:
        figures = "  ".join(report.value_text(n, v) for n, v in zip(names, row.values))
        lead = "best so far" if len(names) == 1 else " "
        print(f"{lead} #{row.number}: {figures}  [{row.decisions_text(' ')}]")
    failures = [r for r in rows if r.state == "FAIL"]
    if failures:
        print(f"failures ({len(failures)}):")
    for row in failures:
        print(f"  #{row.number} {row.status}: {row.reason or 'its worker stopped answering'}")
    out, moved = _report_folder(out)
    with files.writing(out, "--out"):
        out.mkdir(parents=True, exist_ok=True)
        report.write_csv(rows, out / "trials.csv")
        bests, notes = results.write_study_best(study, best, out / "best.cnn")
        written, plot_notes = report.plot_study(study, names, out)
    notes = moved + notes + plot_notes
    for path in [out / "trials.csv", *bests, *written]:
        print(f"wrote {path}")
    for note in notes:
        print(f"note: {note}")
    return common.OK


def _report_folder(out: Path) -> tuple[Path, list[str]]:
    """`out`, or its subfolder report/ while a search runs there (its files are the search's)."""
    from cnnc.search.results import search_running

    if not search_running(out):
        return out, []
    moved = out / "report"
    return moved, [f"a search is running in `{out}`: its files are left alone, this report went to `{moved}`"]


def _locations(args) -> tuple[str, Path]:
    from cnnc.api import is_file

    if args.storage is None and args.dir is None:
        raise common.UsageError(
            "give a search folder (`cnnc search-report runs/t`) or --storage URL"
        )
    if args.storage is None:
        db, journal = args.dir / "study.db", args.dir / "study.journal"
        if is_file(db):
            return f"sqlite:///{db.resolve()}", args.out or args.dir
        if is_file(journal):
            return f"journal:///{journal.resolve()}", args.out or args.dir
        raise common.UsageError(f"no study.db or study.journal in `{args.dir}`")
    if (
        args.storage.startswith("sqlite:///")
        and not is_file(args.storage.removeprefix("sqlite:///"))
    ):
        raise common.UsageError(f"no SQLite file at {args.storage.removeprefix('sqlite:///')}")
    return args.storage, args.out or args.dir or Path("runs") / (args.study or "report")
