"""`cnnc search-report`: a stored study's trials as a table, its best trial(s), and its plots redrawn."""

from __future__ import annotations

from pathlib import Path

from cnnc.commands import common, files

HELP = "print a search study's trials and redraw its plots"
DESCRIPTION = """\
Read a study that `cnnc search` stored, print one row per trial (status, objectives, params, MACs,
time, reason) and the best trial (or the Pareto front), write trials.csv and redraw the plots
(history.png, pareto.png, importances.png) into --out.

examples:
  cnnc search-report runs/t
  cnnc search-report --storage sqlite:///runs/t/study.db --study tiny --out /tmp/report
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


def run(args) -> int:
    from cnnc.search import driver

    storage, out = _locations(args)
    files.check_storage(storage)
    with files.storage_errors(storage):  # a damaged or read-only study fails while being read
        return report_study(driver.load_study(storage, args.study), storage, out)


def report_study(study, storage: str, out: Path) -> int:
    from cnnc.search import report

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
    for row in report.best_rows(rows, names):
        figures = "  ".join(report.value_text(n, v) for n, v in zip(names, row.values))
        print(f"best #{row.number}: {figures}  [{row.decisions_text(' ')}]")
    with files.writing(out, "--out"):
        out.mkdir(parents=True, exist_ok=True)
        report.write_csv(rows, out / "trials.csv")
        written, notes = report.plot_study(study, names, out)
    for path in [out / "trials.csv", *written]:
        print(f"wrote {path}")
    for note in notes:
        print(f"note: {note}")
    return common.OK


def _locations(args) -> tuple[str, Path]:
    from cnnc.api import is_file

    if args.storage is None and args.dir is None:
        raise common.UsageError(
            "give a search folder (`cnnc search-report runs/t`) or --storage URL"
        )
    if args.storage is None:
        db = args.dir / "study.db"
        if not is_file(db):
            raise common.UsageError(f"no study.db in `{args.dir}`")
        return f"sqlite:///{db.resolve()}", args.out or args.dir
    if (
        args.storage.startswith("sqlite:///")
        and not is_file(args.storage.removeprefix("sqlite:///"))
    ):
        raise common.UsageError(f"no SQLite file at {args.storage.removeprefix('sqlite:///')}")
    return args.storage, args.out or args.dir or Path("runs") / (args.study or "report")
