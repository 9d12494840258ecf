"""The settings and results of a study: what `cnnc search` asks for (`Settings`), what an evaluator
says of a member (`Outcome`), what a run hands back (`Result`), and the names they share.

Plain records with no behaviour of the study itself: the driver, its workers, the evaluators and the
results writer all build on them, and none of them imports another to reach them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cnnc.search import report
from cnnc.search.choices import trains

DIRECTIONS = {
    "accuracy": "maximize",
    "params": "minimize",
    "macs": "minimize",
    "latency": "minimize",  # milliseconds on the search's device (`search/latency.py`)
}
PROXIES = report.PROXY_NAMES
PROXY_BATCH = (
    64  # the minibatch the zero-cost proxies score (`evaluators.proxy.score_all`'s default)
)


@dataclass(frozen=True)
class Settings:
    file: str
    network: str | None = None
    args: tuple[str, ...] = ()  # `name=value`, .cnn syntax
    allow_import: tuple[str, ...] = ()  # directories the space's imports may reach (--allow-import)
    trials: int = 20  # until the study holds this many
    sampler: str = "tpe"
    seed: int = 0
    population: int | None = None  # NSGA-II's generation, evolution's population; None: the default
    sample_size: int = 5  # evolution's tournament: members sampled to pick a parent
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
    heartbeat: int = 10  # seconds between a trial's heartbeats; stale after three missed
    workers: int = 1  # processes on this machine (`cnnc search --workers`)
    worker: int = 0  # which of them this process is (seeds its sampler apart from the others)
    retrain_top: int = 0  # after a one-shot search, retrain the best K from scratch (`retrain.py`)
    # a one-shot search keeps its trained supernet in `out` for a resume (`evaluators/kept.py`):
    # `cnnc search` does; a caller building an evaluator of its own chooses
    keep_supernet: bool = False

    @property
    def storage_url(self) -> str:
        """`--storage`, else the folder's study: SQLite for one worker, a journal file for several
        (an existing one of either kind is kept, so a resume finds its trials)."""
        if self.storage:
            return self.storage
        out = Path(self.out).resolve()
        if (out / "study.db").exists() or (
            self.workers == 1 and not (out / "study.journal").exists()
        ):
            return f"sqlite:///{out / 'study.db'}"
        return f"journal:///{out / 'study.journal'}"

    @property
    def study_name(self) -> str:
        return self.study or Path(self.file).stem

    @property
    def names(self) -> tuple[str, ...]:
        """Objective names as shown: `accuracy` is the proxy's name under the proxy evaluator."""
        score = "accuracy" if trains(self.evaluator) else self.proxy
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
            "allow_import": list(self.allow_import),
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
    """What a run tells its caller. Optional too, looked up by name: `note(text)` (a worker's
    remark) and `planned(trials)` (the finished trials the run works toward)."""

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
    stopped: str = "done"  # done | timeout | exhausted | interrupted (`worker.Worker.work`)

    def __repr__(self) -> str:
        """One line (a notebook's echo), not every trial: the counts, the best trial, the files."""
        best = (
            f"best #{self.best[0].number} {list(self.best[0].values or ())}"
            if self.best
            else "no best"
        )
        files = ", ".join(str(f) for f in self.files)
        return f"<Result of study `{self.study.study_name}`: {report.counts_text(self.rows)}; {best}; {files}>"


class TrialFailed(Exception):
    """A candidate's run failed (NaN, out of memory): the trial is FAIL and the study goes on."""
