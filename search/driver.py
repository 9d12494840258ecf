"""The Optuna driver: a study over a search space, one trial per sampled member.

Input: `Settings` (what the command line says) and a `Space`. Output: a `Result` — the study, its
trials as rows, the best trial(s) — with `best.cnn`, `trials.csv` and plots written to `settings.out`.
This module and `report.py` (its plots) are the only ones of `search` that import optuna.

Contract of one trial, in this order (nothing is lowered or trained before the checks pass):
1. elaborate the space with an Optuna decider: a decision whose options are an increasing arithmetic
   progression of ints is `suggest_int(name, lo, hi, step)`, any other `suggest_categorical(name,
   labels)`; the trial records `decisions` ({name: label}).
2. a member with an error, or whose output does not match the data's classes, is `invalid`; one
   over `max_params`/`max_macs` is `infeasible`. Both are recorded as PRUNED, the reason (for an
   error, its diagnostic's one-line form) in the user attribute `infeasible`.
3. its `hash` (sha256 of the graph's text) is compared with earlier trials': an architecture met
   before reuses that trial's result (status `reused`, `reused_from`) and is not evaluated again.
4. the evaluator trains it (per-epoch validation accuracy feeds the pruner) or scores it with a
   zero-cost proxy. A failed run (NaN loss, out of memory) is recorded as FAIL with its reason, and
   the study goes on.
The study lives in `storage` (default `sqlite:///<out>/study.db`); opening it again resumes it, and
`trials` counts every trial the study holds, so `trials = 12` after 8 runs 4 more.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import optuna

from cnnc.compiler.analysis.summary import summarize
from cnnc.dsl.diagnostics import CnncError, error
from cnnc.search import report
from cnnc.search.space import Memo, Space, fixed, graph_hash, over_budget, walk

DIRECTIONS = {"accuracy": "maximize", "params": "minimize", "macs": "minimize"}
PROXIES = report.PROXY_NAMES
GRID_LIMIT = 100_000  # members a grid search may have


@dataclass(frozen=True)
class Settings:
    file: str
    network: str | None = None
    args: tuple[str, ...] = ()  # `name=value`, .cnn syntax
    allow_import: tuple[str, ...] = ()  # directories the space's imports may reach (--allow-import)
    trials: int = 20  # until the study holds this many
    sampler: str = "tpe"
    seed: int = 0
    objectives: tuple[str, ...] = ("accuracy",)
    max_params: int | None = None
    max_macs: int | None = None
    evaluator: str = "train"
    proxy: str = "naswot"  # the score the proxy evaluator maximises
    epochs: int = 2
    batch_size: int = 64
    lr: float = 0.05
    optimizer: str = "sgd"
    label_smoothing: float = 0.0
    pruner: str = "median"
    device: str = "auto"
    data: str = "digits"
    size: int | None = None
    out: Path = Path("runs/search")
    storage: str | None = None
    study: str | None = None
    timeout: float | None = None
    threads: int | None = (
        1  # CPU threads for torch (`cnnc search` sets them); None: torch's default
    )

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(Path(self.out) / 'study.db').resolve()}"

    @property
    def study_name(self) -> str:
        return self.study or Path(self.file).stem

    @property
    def names(self) -> tuple[str, ...]:
        """Objective names as shown: `accuracy` is the proxy's name under the proxy evaluator."""
        score = self.proxy if self.evaluator == "proxy" else "accuracy"
        return tuple(score if o == "accuracy" else o for o in self.objectives)

    def recorded(self) -> dict:
        """What the study remembers of the run that created it (a resume compares with it)."""
        return {
            "file": str(self.file),
            "network": self.network,
            "objectives": list(self.names),
            "evaluator": self.evaluator,
            "data": self.data,
            "size": self.size,
            "epochs": self.epochs,
            "max_params": self.max_params,
            "max_macs": self.max_macs,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an evaluator says of one candidate."""

    score: float  # validation accuracy, or the proxy's score
    seconds: float
    failed: str | None = None
    proxies: dict = field(default_factory=dict)
    history: tuple[float, ...] = ()


Evaluator = Callable[..., Outcome]  # (graph, report(epoch, accuracy)) -> Outcome


class Events(Protocol):
    def started(self, rows: list[report.Row], notes: list[str]) -> None: ...
    def trial_started(self, number: int) -> None: ...
    def epoch(self, number: int, epoch: int, accuracy: float) -> None: ...
    def finished(self, row: report.Row) -> None: ...


@dataclass(frozen=True)
class Result:
    study: object  # optuna.Study
    rows: list[report.Row]
    best: list[report.Row]  # the best trial, or the Pareto front (best accuracy first)
    files: list[Path]
    notes: list[str]


class TrialFailed(Exception):
    """A candidate's run failed (NaN, out of memory): the trial is FAIL and the study goes on."""


# ---------------------------------------------------------------------------------------------
# Decisions → Optuna parameters


def int_range(values) -> tuple[int, int, int] | None:
    """(low, high, step) when `values` are ≥ 2 ints in increasing arithmetic progression."""
    if values is None or len(values) < 2 or any(type(v) is not int for v in values):
        return None
    step = values[1] - values[0]
    if step <= 0 or any(b - a != step for a, b in itertools.pairwise(values)):
        return None
    return values[0], values[-1], step


def optuna_decider(trial) -> Memo:
    """A decider whose choices are the trial's suggestions (see the module docstring)."""

    def choose(point) -> int:
        try:
            return suggest(trial, point.name, point)
        except ValueError:  # options that depend on other decisions: one parameter per option list
            return suggest(trial, f"{point.name}{{{'|'.join(point.labels)}}}", point)

    return Memo(choose)


def suggest(trial, name: str, point) -> int:
    """The index of the option `trial` suggests for `point`, asked under `name`."""
    bounds = int_range(point.values)
    if bounds is not None:
        low, high, step = bounds
        return (trial.suggest_int(name, low, high, step=step) - low) // step
    return point.labels.index(trial.suggest_categorical(name, point.labels))


def grid_values(decision) -> list:
    bounds = int_range(decision.values)
    if bounds is not None:
        return list(decision.values)
    return list(decision.labels)


# ---------------------------------------------------------------------------------------------
# The study


def open_study(settings: Settings, space: Space):
    """Create the study, or load it when it exists (a resume); its objectives must not change."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if settings.storage is None:
        Path(settings.out).mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        storage=storage(settings.storage_url),
        study_name=settings.study_name,
        directions=[DIRECTIONS[o] for o in settings.objectives],
        pruner=make_pruner(settings),
        load_if_exists=True,
    )
    # a resume draws new random numbers: seeded by the trials already held, not as the first run was
    study.sampler = make_sampler(settings, space, settings.seed + len(study.trials))
    recorded = study.user_attrs.get("settings")
    if recorded is None:
        study.set_user_attr("settings", settings.recorded())
    elif recorded.get("objectives") != list(settings.names):
        raise CnncError(
            error(
                "E0604",
                f"study `{settings.study_name}` optimises {', '.join(recorded['objectives'])}, "
                f"not {', '.join(settings.names)}",
                None,
                helps=("start another study with `--study NAME`, or keep its objectives",),
            )
        )
    return study


def changes(study, settings: Settings) -> list[str]:
    """How this run's settings differ from those the study was created with (results may not compare)."""
    recorded = study.user_attrs.get("settings", {})
    now = settings.recorded()
    return [
        f"the study was made with {key} = {recorded[key]}, this run has {now[key]}"
        for key in now
        if key in recorded and recorded[key] != now[key]
    ]


def storage(url: str):
    """Optuna's storage for `url`. SQLite runs in WAL mode with synchronous=NORMAL: each of a trial's
    dozen small writes then costs ~1 ms instead of an fsync (~20 ms); a crash of the process loses
    nothing, a power cut at most the last writes."""
    if not url.startswith("sqlite:///"):
        return url
    path = url.removeprefix("sqlite:///")

    def connect():
        connection = sqlite3.connect(path, check_same_thread=False, timeout=60)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    return optuna.storages.RDBStorage(url, engine_kwargs={"creator": connect})


def make_sampler(settings: Settings, space: Space, seed: int):
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if settings.sampler == "grid":
        return optuna.samplers.GridSampler(grid_space(space), seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def grid_space(space: Space) -> dict:
    """Every decision with its values, for a grid; the space must be walked to its end."""
    from cnnc.search.space import decisions

    size, members = walk(space, limit=GRID_LIMIT, seconds=60.0)
    if not size.exact:
        raise CnncError(
            error(
                "E0605",
                f"grid search needs a space it can enumerate, but this one has {size.text()}",
                None,
                helps=("use `--sampler tpe` or `random`",),
            )
        )
    return {d.name: grid_values(d) for d in decisions(members)}


def make_pruner(settings: Settings):
    if settings.pruner == "none" or len(settings.objectives) > 1:
        return optuna.pruners.NopPruner()
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=settings.epochs)
    # not before half the epochs: a deep net with batch norm can sit at chance after one epoch
    # and still win (MobileNet members on digits: 10 % → 96 % → 99.4 %)
    warmup = max(2, (settings.epochs + 1) // 2)  # the first epoch it may prune after
    return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=warmup)


# ---------------------------------------------------------------------------------------------
# One trial


class Objective:
    """`study.optimize`'s objective: one trial's contract (module docstring)."""

    def __init__(
        self,
        settings: Settings,
        space: Space,
        evaluator: Evaluator,
        events: Events,
        num_classes: int | None,
        study,
    ):
        self.settings, self.space, self.evaluate, self.events = settings, space, evaluator, events
        self.num_classes = num_classes
        self.seen = {t.user_attrs["hash"]: t for t in study.trials if _evaluated(t)}

    def __call__(self, trial):
        self.events.trial_started(trial.number)
        member = self.space.member(optuna_decider(trial))
        trial.set_user_attr("decisions", member.labels())
        if not member.ok:
            return _reject(trial, "invalid", member.invalid)
        s = summarize(member.graph)
        digest = graph_hash(member.graph)
        for key, value in (("hash", digest), ("params", s.params), ("macs", s.macs)):
            trial.set_user_attr(key, value)
        problem = self.output_problem(member.graph)
        if problem:
            return _reject(trial, "invalid", problem)
        budget = over_budget(s.params, s.macs, self.settings.max_params, self.settings.max_macs)
        if budget:
            return _reject(trial, "infeasible", budget)
        if digest in self.seen:
            return self.reuse(trial, self.seen[digest], s)
        return self.run(trial, member.graph, s)

    def output_problem(self, graph) -> str | None:
        shape = graph.output_type.shape
        if self.num_classes is not None and shape != (self.num_classes,):
            return f"the output is {list(shape)}, but the data has {self.num_classes} classes"
        return None

    def values(self, score: float, s) -> list[float]:
        return [
            score if o == "accuracy" else float(getattr(s, o)) for o in self.settings.objectives
        ]

    def run(self, trial, graph, s):
        single = len(self.settings.objectives) == 1
        outcome = self.evaluate(graph, self.reporter(trial, prune=single))
        trial.set_user_attr("seconds", outcome.seconds)
        trial.set_user_attr("history", list(outcome.history))
        if outcome.proxies:
            trial.set_user_attr("proxies", outcome.proxies)
        if outcome.failed or math.isnan(outcome.score):
            reason = outcome.failed or "the score is NaN"
            _set(trial, "failed", reason)
            raise TrialFailed(reason)
        trial.set_user_attr("status", "scored" if self.settings.evaluator == "proxy" else "trained")
        return self.values(outcome.score, s)

    def reporter(self, trial, prune: bool):
        def report_epoch(epoch: int, accuracy: float) -> None:
            self.events.epoch(trial.number, epoch, accuracy)
            if not prune or epoch >= self.settings.epochs:
                return  # the last epoch's accuracy is the result: nothing left to save by pruning
            trial.report(accuracy, epoch)
            if trial.should_prune():
                _set(trial, "pruned", f"pruned after epoch {epoch} at accuracy {accuracy:.4f}")
                raise optuna.TrialPruned()

        return report_epoch

    def reuse(self, trial, earlier, s):
        for key in ("proxies", "history"):
            if key in earlier.user_attrs:
                trial.set_user_attr(key, earlier.user_attrs[key])
        trial.set_user_attr("reused_from", earlier.number)
        _set(trial, "reused", earlier.user_attrs.get("reason", ""))
        if earlier.state == optuna.trial.TrialState.PRUNED:
            raise optuna.TrialPruned()
        if earlier.state == optuna.trial.TrialState.FAIL:
            raise TrialFailed(earlier.user_attrs.get("reason", "failed"))
        return list(earlier.values)

    def after(self, study, frozen) -> None:
        """`study.optimize`'s callback: remember what was evaluated, tell the events."""
        if _evaluated(frozen) and frozen.user_attrs["hash"] not in self.seen:
            self.seen[frozen.user_attrs["hash"]] = frozen
        self.events.finished(report.Row.of(frozen))


def _evaluated(trial) -> bool:
    """A trial whose architecture went through the evaluator (its result may be reused)."""
    return (
        trial.user_attrs.get("status") in ("trained", "scored", "pruned", "failed")
        and "hash" in trial.user_attrs
    )


def _set(trial, status: str, reason: str) -> None:
    trial.set_user_attr("status", status)
    if reason:
        trial.set_user_attr("reason", reason)


def _reject(trial, status: str, reason: str):
    """Never evaluated: PRUNED, with the reason under the user attribute `infeasible`."""
    trial.set_user_attr("status", status)
    trial.set_user_attr("infeasible", reason)
    raise optuna.TrialPruned(reason)


# ---------------------------------------------------------------------------------------------
# Running a study


def run(
    settings: Settings,
    space: Space,
    evaluator: Evaluator,
    events: Events,
    num_classes: int | None = None,
) -> Result:
    """Run trials until the study holds `settings.trials` (or the timeout ends); write the results.

    The results are written even when the run is interrupted (Ctrl-C) or an error stops it.
    """
    study = open_study(settings, space)
    objective = Objective(settings, space, evaluator, events, num_classes, study)
    remaining = settings.trials - len(study.trials)
    events.started(report.rows(study.trials), changes(study, settings))
    try:
        if remaining > 0:
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=settings.timeout,
                catch=(TrialFailed,),
                callbacks=[objective.after],
                gc_after_trial=False,
            )
    finally:
        result = finish(settings, space, study)
    return result


def finish(settings: Settings, space: Space | None, study) -> Result:
    """Rows, the best trial(s), and the files: trials.csv, best.cnn (when a space is given), plots."""
    rows = report.rows(study.trials)
    best = report.best_rows(rows, settings.names)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    report.write_csv(rows, out / "trials.csv")
    files, notes = [out / "trials.csv"], []
    if space is not None and best:
        files.append(write_best(space, best[0], settings, study.study_name, out / "best.cnn"))
    plotted, plot_notes = report.plot_study(study, settings.names, out)
    return Result(study, rows, best, files + plotted, notes + plot_notes)


def write_best(
    space: Space, row: report.Row, settings: Settings, study_name: str, path: Path
) -> Path:
    """Replay the best trial's decisions and write its architecture as a concrete program."""
    from cnnc.search.concrete import write_program

    member = space.member(fixed(row.decisions))
    if not member.ok or graph_hash(member.graph) != row.hash:
        raise RuntimeError(f"replaying trial {row.number}'s decisions gave another architecture")
    score = (
        f"validation accuracy {row.values[0]:.4f} on {settings.data} after {settings.epochs} epochs"
        if settings.evaluator == "train"
        else f"{settings.proxy} score {row.values[0]:.4g} on {settings.data}"
    )
    comments = (
        f"The best member of the search space `{settings.file}`, written by `cnnc search`:",
        f"trial {row.number} of study `{study_name}`, {score};",
        f"{row.params:,} params, {row.macs:,} MACs.",
        "",
        "decisions:",
        *(f"  {k} = {v}" for k, v in row.decisions.items()),
    )
    write_program(path, member.graph, "best", comments)
    return path


# ---------------------------------------------------------------------------------------------
# Evaluators (torch is imported here, inside the functions)


def train_evaluator(settings: Settings, data) -> Evaluator:
    """Lower the graph (weights seeded by `settings.seed`) and train it; the score is accuracy."""
    from cnnc.compiler.lower.fx import to_graph_module
    from cnnc.search.evaluators.train import train_and_evaluate

    def evaluate(graph, report_epoch) -> Outcome:
        model = to_graph_module(graph, seed=settings.seed)
        r = train_and_evaluate(
            model,
            data,
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            lr=settings.lr,
            optimizer=settings.optimizer,
            label_smoothing=settings.label_smoothing,
            device=settings.device,
            seed=settings.seed,
            report=report_epoch,
        )
        return Outcome(r.accuracy, r.seconds, r.failed, {}, r.history)

    return evaluate


def proxy_evaluator(settings: Settings, data) -> Evaluator:
    """Lower the graph and score it untrained; the score is `settings.proxy`, all proxies recorded."""
    from cnnc.compiler.lower.fx import to_graph_module
    from cnnc.search.evaluators.proxy import score_all
    from cnnc.search.evaluators.train import is_out_of_memory, resolve_device

    device = resolve_device(settings.device)

    def evaluate(graph, report_epoch) -> Outcome:
        start = time.perf_counter()
        model = to_graph_module(graph, seed=settings.seed, device=device)
        try:
            scores = score_all(model, data, seed=settings.seed)
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
            return Outcome(
                math.nan, time.perf_counter() - start, f"out of memory: {exc}".splitlines()[0]
            )
        proxies = {k: v for k, v in scores.items() if k in PROXIES}
        return Outcome(scores[settings.proxy], time.perf_counter() - start, None, proxies)

    return evaluate


def load_data(settings: Settings):
    from cnnc.search.data import load_dataset

    return load_dataset(settings.data, settings.size, settings.seed)


def space_for(settings: Settings, input_shape, num_classes: int | None) -> Space:
    """The space of `settings.file` at the data's input shape; a network parameter `classes` not
    given with `--arg` is bound to the data's number of classes."""
    from cnnc.api import load_program, parse_arg_values
    from cnnc.compiler.elaborate import default_network

    program = load_program(settings.file, allow_import=settings.allow_import)
    network = settings.network or default_network(program)
    args = list(settings.args)
    given = {a.partition("=")[0].strip() for a in args}
    if (
        num_classes is not None
        and "classes" not in given
        and "classes" in _network_params(program, network)
    ):
        args.append(f"classes={num_classes}")
    return Space(program, network, parse_arg_values(args), input_shape)


def _network_params(program, network: str) -> set[str]:
    from cnnc.dsl import ast

    for item in program.main_module.items:
        if isinstance(item, ast.NetworkDef) and item.name == network:
            return {p.name for p in item.params or ()}
    return set()


def load_study(storage: str, name: str | None):
    """An existing study (`cnnc search-report`); the only one in `storage` when `name` is None."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    names = optuna.get_all_study_names(storage=storage)
    if name is None and len(names) == 1:
        name = names[0]
    if name not in names:
        listed = ", ".join(f"`{n}`" for n in names) or "none"
        raise CnncError(
            error(
                "E0604",
                f"no study `{name}` in {storage} (studies there: {listed})",
                None,
                helps=("name one with `--study NAME`",),
            )
        )
    return optuna.load_study(study_name=name, storage=storage)
