"""`cnnc search`: explore a search space with Optuna, training (or scoring) each sampled member.

Prints one line per trial on stdout and a live progress line on stderr; writes the study (SQLite),
`best.cnn`, `trials.csv` and plots to `--out`. The trial contract is `search/driver.py`'s.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from cnnc.commands import common, files
from cnnc.dsl.diagnostics import printable
from cnnc.search import choices

HELP = "search a space of networks with Optuna (train or score each member)"
DESCRIPTION = """\
Sample members of a search space (a .cnn file with `choice(…)`), check each statically, and train
the valid ones on a data set (or score them with a zero-cost proxy). Shape-invalid members and
members over --max-params/--max-macs are recorded with the reason and never trained; an
architecture sampled twice reuses its first result. The study is kept in SQLite: running again
resumes it, and --trials N runs until the study holds N finished trials.

Writes to --out (default runs/<file stem>): study.db, best.cnn (the winner: the space with each
choice replaced by the option taken, for `cnnc check` and `cnnc compile`), trials.csv and PNG plots.

--workers K runs K processes on one study (kept in a journal file, study.journal, when they start
it); --storage postgresql://… --study NAME shares one study between machines, each running the same
command. --trials counts finished trials over every worker. A worker killed mid-trial loses only that
trial: the others find it stale after three missed --heartbeat beats and run it again.

examples:
  cnnc search zoo/spaces/tiny.cnn --trials 8 --epochs 2 --out runs/t
  cnnc search zoo/spaces/tiny.cnn --trials 12 --out runs/t             # 4 more in the same study
  cnnc search zoo/spaces/mobilenet_space.cnn --size 32 --max-params 200K --objective accuracy,params
  cnnc search zoo/spaces/resnet_space.cnn --evaluator proxy --trials 100
  cnnc search zoo/spaces/tiny.cnn --sampler evolution --population 10 --trials 40
  cnnc search zoo/spaces/tiny.cnn --objective accuracy,latency --trials 20   # ms on this machine
  cnnc search zoo/spaces/tiny.cnn --evaluator supernet --trials 36 --retrain-top 4
  cnnc search zoo/spaces/tiny.cnn --evaluator darts
  cnnc search zoo/spaces/tiny.cnn --workers 4 --trials 40 --out runs/t4
  cnnc search zoo/spaces/resnet_space.cnn --storage postgresql://search@db.lan/nas --study r --trials 200
"""


def configure(p) -> None:
    common.add_program_args(p, input_option=False)
    p.add_argument(
        "--trials",
        type=int,
        default=20,
        metavar="N",
        help="run until the study holds N finished trials, over every worker (default: 20)",
    )
    p.add_argument(
        "--sampler",
        choices=tuple(choices.SAMPLERS),
        default="tpe",
        help="how members are chosen: " + choices.choices_help(choices.SAMPLERS, "tpe"),
    )
    p.add_argument(
        "--population",
        type=int,
        metavar="P",
        help="nsga2: members per generation (default: 50); evolution: members kept, the oldest "
        "leaving as each child joins (default: 20); the first P trials (evolution: complete "
        "ones) are drawn at random, so with --trials at most P either sampler is random search",
    )
    p.add_argument(
        "--sample-size",
        type=int,
        default=5,
        metavar="S",
        help="evolution: members sampled from the population to pick each parent (default: 5)",
    )
    p.add_argument(
        "--seed",
        type=common.seed,
        default=0,
        help="seeds the sampler, the data split and the weights",
    )
    p.add_argument(
        "--objective",
        default="accuracy",
        metavar="LIST",
        help="accuracy, or accuracy,params / accuracy,macs / accuracy,latency for a Pareto front; "
        "latency: milliseconds at batch 1 on --device, each member's layers timed once (cached "
        "in ~/.cache/cnnc) and summed, checked end to end on a sample (default: accuracy)",
    )
    p.add_argument(
        "--max-params",
        type=count,
        metavar="N",
        help="skip members with more parameters (e.g. 200K)",
    )
    p.add_argument(
        "--max-macs", type=count, metavar="N", help="skip members with more MACs (e.g. 5M)"
    )
    p.add_argument(
        "--evaluator",
        choices=tuple(choices.EVALUATORS),
        default="train",
        help=choices.choices_help(choices.EVALUATORS, "train"),
    )
    p.add_argument(
        "--proxy",
        choices=("naswot", "synflow", "grad_norm"),
        default="naswot",
        help="the proxy --evaluator proxy maximises (default: naswot); all are recorded",
    )
    p.add_argument(
        "--data",
        default="digits",
        help=f"{choices.data_specs()} (default: digits)",
    )
    p.add_argument(
        "--retrain-top",
        type=int,
        default=0,
        metavar="K",
        help="after --evaluator supernet or darts, train the best K from scratch and print Kendall τ "
        "between their supernet and stand-alone accuracies (default: 0, none)",
    )
    p.add_argument("--size", type=int, metavar="S", help="resize images to S×S (digits are 8×8)")
    p.add_argument("--epochs", type=int, default=2, help="training epochs per member (default: 2)")
    p.add_argument("--batch-size", type=int, default=64, help="(default: 64)")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default: 0.05 sgd, 0.001 otherwise)",
    )
    p.add_argument(
        "--optimizer", choices=("sgd", "adamw", "rmsprop"), default="sgd", help="(default: sgd)"
    )
    p.add_argument("--label-smoothing", type=float, default=0.0, help="(default: 0)")
    p.add_argument(
        "--pruner",
        choices=("median", "hyperband", "none"),
        default="median",
        help="stop poor runs early from their per-epoch accuracy (default: median, from half the "
        "epochs on; one objective only)",
    )
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="(default: auto)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default: 1; small members train fastest on one)",
    )
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="where results go (default: runs/<file stem>)"
    )
    p.add_argument(
        "--storage", metavar="URL", help="Optuna storage (default: sqlite:///<out>/study.db)"
    )
    p.add_argument("--study", metavar="NAME", help="study name (default: the file's stem)")
    p.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="start no trial after this long"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="K",
        help="worker processes on this machine, one study (default: 1; one GPU each when several)",
    )
    p.add_argument(
        "--heartbeat",
        type=int,
        default=10,
        metavar="SECONDS",
        help="a running trial's heartbeat; one silent for 3 beats is failed and run again (default: 10)",
    )
    p.add_argument("--worker-settings", help=argparse.SUPPRESS)  # a `--workers` process's settings


def count(text: str) -> int:
    """`200K`, `1.5M`, `2e6`, `1_000_000` → an int."""
    import argparse

    factors = {"k": 10**3, "m": 10**6, "g": 10**9}
    t = text.strip().lower().replace("_", "").replace(",", "")
    factor = factors.get(t[-1:], 1)
    try:
        value = float(t[:-1] if factor != 1 else t) * factor
    except ValueError:
        value = math.nan
    if not math.isfinite(value):  # `inf` reads as a float, but no count is infinite
        raise argparse.ArgumentTypeError(
            f"expected a count such as 200K, 1.5M or 2000000, but got {text!r}"
        )
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive count, but got {text!r}")
    return int(value)


def settings_from(args):
    from cnnc.search.driver import DIRECTIONS, Settings

    objectives = tuple(o.strip() for o in args.objective.split(","))
    if (
        objectives[0] != "accuracy"
        or any(o not in DIRECTIONS for o in objectives)
        or len(set(objectives)) < len(objectives)
    ):
        raise common.UsageError(
            f"--objective must be accuracy, optionally followed by params, macs and/or latency "
            f"(accuracy,params), but got {args.objective!r}"
        )
    _check_numbers(args)
    _check_population(args)
    if args.retrain_top < 0:
        raise common.UsageError("--retrain-top must be 0 or more")
    if args.workers > 1 and args.evaluator in ONE_SHOT:
        raise common.UsageError(
            f"--evaluator {args.evaluator} trains one supernet in one process: --workers must be 1"
        )
    if args.retrain_top and args.evaluator not in ONE_SHOT:
        raise common.UsageError(
            f"--retrain-top checks a one-shot search: it needs --evaluator "
            f"{' or '.join(ONE_SHOT)}, but got --evaluator {args.evaluator}"
        )
    lr = args.lr if args.lr is not None else (0.05 if args.optimizer == "sgd" else 1e-3)
    out = args.out or Path("runs") / Path(args.file).stem
    return Settings(
        file=args.file,
        network=args.network,
        args=tuple(args.arg),
        allow_import=tuple(args.allow_import),
        trials=args.trials,
        sampler=args.sampler,
        seed=args.seed,
        population=args.population,
        sample_size=args.sample_size,
        objectives=objectives,
        max_params=args.max_params,
        max_macs=args.max_macs,
        evaluator=args.evaluator,
        proxy=args.proxy,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=lr,
        optimizer=args.optimizer,
        label_smoothing=args.label_smoothing,
        pruner=args.pruner,
        device=args.device,
        data=args.data,
        size=args.size,
        out=out,
        storage=args.storage,
        study=args.study,
        timeout=args.timeout,
        threads=args.threads,
        heartbeat=args.heartbeat,
        workers=args.workers,
        retrain_top=args.retrain_top,
        keep_supernet=True,
    )


MAX_HEARTBEAT = 86_400  # a day; far larger beats overflow the storage's clock arithmetic


def _check_numbers(args) -> None:
    """The counts, rates and times: in range before any work (the trainers would fail each trial,
    crash, or train nothing)."""
    for name in ("trials", "epochs", "heartbeat"):
        common.at_least(f"--{name}", getattr(args, name), 1)
    common.threads(
        args.workers, "--workers"
    )  # each a process holding torch: a typo forks thousands
    if args.heartbeat > MAX_HEARTBEAT:
        raise common.UsageError(
            f"--heartbeat must be at most {MAX_HEARTBEAT:,} seconds (a day), but got "
            f"{args.heartbeat:,}"
        )
    common.batch_size(args.batch_size)
    common.threads(args.threads)
    if args.lr is not None:
        common.positive("--lr", args.lr)
    common.below_one("--label-smoothing", args.label_smoothing)
    if args.timeout is not None:
        common.positive("--timeout", args.timeout)


def _check_population(args) -> None:
    """--population and --sample-size: positive, the sample within the population, and only for
    the samplers that read them."""
    if args.population is not None and args.sampler not in ("nsga2", "evolution"):
        raise common.UsageError(
            f"--population is read by --sampler nsga2 and evolution, not {args.sampler}"
        )
    if args.sample_size != 5 and args.sampler != "evolution":
        raise common.UsageError("--sample-size is read by --sampler evolution only")
    if args.population is not None and args.population < 2:
        raise common.UsageError(f"--population must be at least 2, but got {args.population}")
    population = args.population or 20
    if args.sampler == "evolution" and not 1 <= args.sample_size <= population:
        raise common.UsageError(
            f"--sample-size must be between 1 and the population ({population}), but got "
            f"{args.sample_size}"
        )


ONE_SHOT = tuple(n for n in choices.EVALUATORS if choices.one_shot(n))  # `--retrain-top` checks


def run(args) -> int:
    return search(args)[1]


def search(args):
    """`cnnc search`'s work on its parsed arguments (`cnnc.runs.search` builds them from keywords):
    (the study's `driver.Result`, the exit status)."""
    import torch

    from cnnc.api import resolve_path
    from cnnc.dsl.diagnostics import CnncError
    from cnnc.search import driver, evaluate, launch, storage
    from cnnc.search.resume import same_weights
    from cnnc.search.space import walk

    args.file = str(resolve_path(args.file))
    child = args.worker_settings is not None  # one of the processes `--workers` started
    if child:
        launch.watch_parent()  # it stops when the parent ends, however the parent ends
    settings = (
        launch.settings_from_json(args.worker_settings, driver.Settings)
        if child
        else settings_from(args)
    )
    files.make_folder(settings.out, "--out")  # before the work: the storage and the folder must do
    check_outputs(settings.out)
    files.check_storage(settings.storage_url)
    torch.set_num_threads(settings.threads)
    data = evaluate.load_data(settings)
    space = driver.space_for(settings, data.input_shape, data.num_classes)
    # a one-shot evaluator builds its supernet from this walk's graphs when it is complete
    size, walked = walk(space, seconds=1.0, keep=choices.one_shot(settings.evaluator))
    if size.complete and not any(m.ok for m in walked):  # not a choice that fails: the program does
        raise CnncError(*walked[0].diagnostics)
    console = Console(settings, child)
    if not child:
        console.header(settings, data, size)
    if settings.workers > 1 and not child:
        return run_workers(settings, space, console)
    # opened (a resume: checked) before the evaluator, whose set-up may train a supernet for hours:
    # a damaged study, or one of another space, is refused before that work
    with files.study_refusals(), storage.storage_errors(settings.storage_url):
        study = driver.open_study(settings, space)
        if choices.one_shot(settings.evaluator):
            same_weights(study, settings, data, space)
    evaluator = choices.EVALUATORS[settings.evaluator].load()(settings, data)
    if getattr(evaluator, "note", None):  # what a one-shot evaluator's training cost
        print(printable(evaluator.note), flush=True)
    if getattr(evaluator, "warning", None):  # how far to trust it (darts: α near uniform)
        print(f"note: {printable(evaluator.warning)}", flush=True)
    try:
        with (
            files.study_refusals(),
            storage.storage_errors(settings.storage_url),
            files.writing(settings.out, "--out", MOVE_AWAY),
        ):
            result = driver.run(
                settings, space, evaluator, console, data.num_classes, not child, study
            )
    finally:
        console.close()
    if not child:
        print_result(result, settings)
    return result, INTERRUPTED if result.stopped == "interrupted" else common.OK


INTERRUPTED = 130  # as a shell reports a process stopped by SIGINT
OUTPUTS = ("trials.csv", "best.cnn", "retrain.csv")  # the files a search must write when it stops
MOVE_AWAY = "move it away, or choose another --out"


def check_outputs(out) -> None:
    """Refuse, before any work, a folder standing where the search writes a file it must write
    (the trials would be run, then the summary lost)."""
    for name in OUTPUTS:
        path = Path(out) / name
        if path.is_dir() and not path.is_symlink():
            raise common.UserError(
                f"`{printable(str(path))}` is a folder, where the search writes its {name}",
                MOVE_AWAY,
            )


def run_workers(settings, space, console):
    """`--workers K`: the study is opened here first (so K processes do not race to create it),
    then K worker processes share it (`search/launch.py`); the results are written when all stop.
    Returns (the `driver.Result`, the exit status)."""
    from cnnc.search import driver, launch, report, results, storage
    from cnnc.search.worker import finished_count

    with files.study_refusals(), storage.storage_errors(settings.storage_url):
        study = driver.open_study(settings, space)
    console.started(report.rows(study.trials), driver.changes(study, settings))
    with results.running(settings.out):  # search-report leaves the folder's files alone meanwhile
        codes = launch.run_workers(settings, console.note)
        result = results.finish(settings, space, study)
    print_result(result, settings)
    done = finished_count(study.trials)
    if INTERRUPTED in codes or -2 in codes:
        return result, INTERRUPTED
    if done < settings.trials and not any(code == 0 for code in codes):
        print(
            f"the study holds {done} of {settings.trials} finished trials: run the same command "
            "again to go on",
            file=sys.stderr,
        )
        return result, common.USER_ERROR
    return result, common.OK


# ---------------------------------------------------------------------------------------------
# Output


def _counts(row) -> bool:
    """Whether a finished trial counts toward `--trials` (`search.worker.counts`, on a row)."""
    if row.status == "reused":
        return False
    return row.state in ("COMPLETE", "PRUNED") or (row.state == "FAIL" and row.status == "failed")


class Console:
    """Trial lines on stdout; the live progress line on stderr (rewritten in place on a terminal)."""

    def __init__(self, settings, child: bool = False):
        self.settings, self.child = settings, child
        self.live = sys.stderr.isatty() and not child  # a worker process shows no progress line
        self.start = time.perf_counter()
        self.done = 0  # trials finished in this run
        self.held = 0  # trials the study held at the start
        self.number = 0
        self.best: tuple[float, int] | None = None
        self.rows = []  # every finished trial of the study
        self.shown = False
        self.total = settings.trials  # what the run works toward (`planned`: the driver's count)
        self.first: float | None = None  # when this run's first trial started (after any set-up)
        self.said = -1  # the count of trials done that the log last said

    def header(self, settings, data, size) -> None:
        shape = "×".join(map(str, data.input_shape))
        print(f"search space {printable(str(settings.file))}: {size.text()}")
        print(
            f"data {data.name} {shape}, {data.num_classes} classes, {len(data.train_y):,} train / "
            f"{len(data.val_y):,} validation · {settings.evaluator} · {settings.sampler} sampler, seed "
            f"{settings.seed} · study `{printable(settings.study_name)}` in {printable(where(settings))}",
            flush=True,
        )

    def started(self, rows, notes) -> None:
        from cnnc.search.report import best_rows

        self.held = len(rows)
        self.rows = list(rows)
        best = best_rows(rows, self.settings.names)
        if best:
            self.best = (best[0].values[0], best[0].number)
        if rows and not self.child:
            print(
                f"resuming: the study holds {len(rows)} trial{'s' if len(rows) != 1 else ''}",
                flush=True,
            )
        for note in notes:
            print(f"note: {printable(note)}", flush=True)

    def planned(self, trials: int) -> None:
        """The finished trials the study will hold: `--trials`, or, for an evaluator that derives
        its one member (darts), the trials held and that one."""
        self.total = trials

    def trial_started(self, number: int) -> None:
        self.number = number
        if self.first is None:
            self.first = time.perf_counter()
        self.status(self.progress())

    def progress(self) -> str:
        """`trial 5/24`: the trial that would count next (a reused one does not count)."""
        counted = sum(_counts(r) for r in self.rows)
        return f"trial {min(counted + 1, self.total)}/{self.total}"

    def epoch(self, number: int, epoch: int, accuracy: float) -> None:
        if self.live:
            self.status(
                f"{self.progress()} · epoch {epoch}/{self.settings.epochs} ({accuracy:.4f})"
            )

    def finished(self, row) -> None:
        from cnnc.search.report import best_rows, trial_line

        self.done += 1
        self.rows.append(row)
        best = best_rows(self.rows, self.settings.names)  # as the final report ranks them
        if best:
            self.best = (best[0].values[0], best[0].number)
        self.clear()
        print(trial_line(row, self.settings.names), flush=True)
        counted = sum(_counts(r) for r in self.rows)  # a reused architecture is not a trial
        # on a terminal the line is redrawn; in a log, a count said once (a reuse leaves it)
        self.status(f"trial {counted}/{self.total} done", final=counted != self.said)
        self.said = counted

    def note(self, text: str) -> None:
        self.clear()
        print(f"note: {printable(text)}", file=sys.stderr, flush=True)

    def status(self, what: str, final: bool = False) -> None:
        if not (self.live or final) or self.child:
            return
        elapsed = time.perf_counter() - self.start
        best = f" · best {self.best[0]:.4f} (#{self.best[1]})" if self.best else ""
        text = f"{what}{best} · {clock(elapsed)} elapsed{self.eta(elapsed)}"
        sys.stderr.write(("\r\x1b[K" + text) if self.live else text + "\n")
        sys.stderr.flush()
        self.shown = self.live

    def eta(self, elapsed: float) -> str:
        """The time the trials still to count take at this run's pace so far, timed from its first
        trial: a one-shot evaluator's training before it is done once."""
        counted = sum(_counts(r) for r in self.rows[self.held :])
        if not counted or self.first is None:
            return ""
        left = max(0, self.total - sum(_counts(r) for r in self.rows))
        seconds = (time.perf_counter() - self.first) / counted * left
        if self.settings.timeout is not None:
            seconds = min(seconds, max(0.0, self.settings.timeout - elapsed))
        return f" · ETA {clock(seconds)}"

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False

    def close(self) -> None:
        self.clear()


def where(settings) -> str:
    url = settings.storage_url
    return url.split(":///", 1)[1] if url.startswith(("sqlite:///", "journal:///")) else url


def clock(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def print_result(result, settings) -> None:
    from cnnc.search.report import counts_text, si, value_text

    print()
    print(f"{counts_text(result.rows)} in study `{printable(settings.study_name)}`")
    if result.stopped == "exhausted":
        from cnnc.search.worker import EXHAUSTED_AFTER

        print(
            f"the space looks exhausted: the last {EXHAUSTED_AFTER} proposals were all "
            "architectures already evaluated"
        )
    if not result.best:
        print("no member completed: nothing to call best")
    if len(settings.names) > 1 and result.best:
        n = len(result.best)
        print(f"Pareto front ({n} trial{'s' if n != 1 else ''}; best.cnn is the first):")
    for row in result.best:
        figures = "  ".join(
            value_text(n, v)
            for n, v in zip(settings.names, row.values)
            if n not in ("params", "macs")
        )
        lead = "best: " if len(settings.names) == 1 else "  "
        print(
            f"{lead}#{row.number:<4}{figures}  {si(row.params)} params  {si(row.macs)} MACs  "
            f"[{printable(row.decisions_text(' '))}]"
        )
    for path in result.files:
        print(f"wrote {printable(str(path))}")
    for note in result.notes:
        print(f"note: {printable(note)}")
