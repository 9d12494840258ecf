"""The Optuna driver: a study over a search space, one trial per sampled member.

Input: `Settings` (what the command line says) and a `Space`. Output: a `Result` — the study, its
trials as rows, the best trial(s) — with `best.cnn`, `trials.csv` and plots written to `settings.out`.
This module, `worker.py`, `storage.py` and `report.py` (its plots) are the ones of `search` that
import optuna.

Contract of one trial, in this order (nothing is lowered or trained before the checks pass):
1. elaborate the space with an Optuna decider: a decision whose options are an increasing arithmetic
   progression of ints is `suggest_int(name, lo, hi, step)`, any other `suggest_categorical(name,
   labels)`; the trial records `decisions` ({name: label}).
2. a member with an error, or whose output does not match the data's classes, is `invalid`; one
   over `max_params`/`max_macs` is `infeasible`. Both are recorded as PRUNED, the reason (for an
   error, its diagnostic's one-line form) in the user attribute `infeasible`.
   With the `latency` objective, the member's layers are then timed (`search/latency.py`): its
   predicted milliseconds in the user attribute `latency_ms`, the objective's value.
3. its `hash` (its architecture's key, equal for isomorphic graphs: `search/architecture.py`) is
   compared with the study's trials, every worker's, and a match confirmed exactly (the earlier
   trial's decisions elaborated again, the two graphs matched): an architecture met before reuses
   that trial's result (status `reused`, `reused_from`), is not evaluated again and does not count
   toward `--trials`; one that another worker is evaluating now is waited for, then reused.
4. the evaluator trains it (per-epoch validation accuracy feeds the pruner) or scores it with a
   zero-cost proxy. A member too large for the device's free memory, a failed run (NaN loss, out of
   memory) or any exception is recorded as FAIL with its reason, and the study goes on.
The study lives in `storage` (default `sqlite:///<out>/study.db`, or a journal file for several
workers; `storage.py`); opening it again resumes it, and `trials` counts the study's finished
trials over every worker (`worker.py`), so `trials = 12` after 8 runs 4 more. A resume with another
space (its fingerprint, kept in the study's user attributes) is refused (E0607).

A one-shot search (`--evaluator supernet` or `darts`: one process, its members scored in
milliseconds by a supernet it trains first) in the default storage works on a copy of the study in
memory (`storage.in_memory`) and writes its trials to the storage when it stops — done, out of
trials, interrupted by a signal, or stopped by an error. Optuna's storage costs ~30 ms a trial,
more than scoring a member. A process killed outright loses those trials, and nothing more: the
supernet is not kept either, so the next run trains it again and rescores. A `--storage` the user
names may be shared with other processes, and a study that holds unfinished trials (queued again,
or a live worker's) has to be claimed trial by trial: both are worked on in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import warnings
from collections.abc import Callable

import optuna

from cnnc.compiler import limits
from cnnc.compiler.analysis.summary import summarize
from cnnc.dsl.diagnostics import CnncError, error
from cnnc.search import report
from cnnc.search import storage as stores
from cnnc.search.choices import SAMPLERS, one_shot, trains
from cnnc.search.deciders import int_range  # noqa: F401  (driver.int_range: its old home)
from cnnc.search.results import finish, running
from cnnc.search.resume import (
    NAMING,
    binding,
    changes,
    check_names,
    check_same_study,
    space_fingerprint,
)
from cnnc.search.settings import (  # noqa: F401  (driver.Settings, driver.Result: their old home)
    DIRECTIONS,
    PROXIES,
    PROXY_BATCH,
    Evaluator,
    Events,
    Outcome,
    Result,
    Settings,
    TrialFailed,
)
from cnnc.search.space import Memo, Space, fixed, graph_hash, over_budget, walk

GRID_LIMIT = 100_000  # members a grid search may have
GRAPHS_KEPT = 256  # evaluated members' graphs an objective keeps for `same_as`

# ---------------------------------------------------------------------------------------------
# Decisions → Optuna parameters


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
    """Create the study, or load it when it exists (a resume); its objectives and space must not change."""
    from cnnc.search import studyfiles

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*heartbeat.*")
    if settings.storage is None or stores.kind(settings.storage_url) in ("sqlite", "journal"):
        stores.file_path(settings.storage_url).parent.mkdir(parents=True, exist_ok=True)

    def create():
        return optuna.create_study(
            storage=stores.open_storage(settings.storage_url, settings.heartbeat),
            study_name=settings.study_name,
            directions=[DIRECTIONS[o] for o in settings.objectives],
            pruner=make_pruner(settings),
            load_if_exists=True,
        )

    with studyfiles.reading(
        settings.storage_url
    ):  # a damaged or crafted study is the user's to fix
        study = stores.retrying(create, lambda text: None)
        studyfiles.parse_all(study)
    # a resume draws new random numbers: seeded by the trials already held; and two workers must
    # not propose the same sequence, nor two machines that start together (a shared --storage)
    salt = 1009 * settings.worker
    if settings.storage is not None:
        salt += int.from_bytes(
            hashlib.sha256(f"{stores.HOST}:{os.getpid()}".encode()).digest()[:3], "big"
        )
    study.sampler = make_sampler(settings, space, settings.seed + len(study.trials) + salt)
    fingerprint = space_fingerprint(space)
    with stores.StudyLock(
        settings.storage_url, settings.study_name
    ):  # two workers creating it at once
        recorded = study.user_attrs.get("settings")
        if recorded is None:
            study.set_user_attr("settings", settings.recorded())
            study.set_user_attr("space", fingerprint)
            study.set_user_attr("binding", binding(space))
            study.set_user_attr("naming", NAMING)
    if recorded is not None:
        check_same_study(settings, recorded, study.user_attrs.get("space"), fingerprint)
        if check_names(study, space, settings.file) and study.user_attrs.get("naming") != NAMING:
            study.set_user_attr("naming", NAMING)  # its names are the space's
    name_metrics(study, settings)
    if study.user_attrs.get("trials") != settings.trials:
        study.set_user_attr("trials", settings.trials)  # the latest --trials, for search-report
    return study


def name_metrics(study, settings: Settings) -> None:
    """The objectives' names in the study (`accuracy`, the proxy's, `params`, `macs`), as
    optuna-dashboard shows them; a study made by an older cnnc gets them on its resume."""
    names = list(settings.names)
    if study.metric_names != names:
        study.set_metric_names(names)


def make_sampler(settings: Settings, space: Space, seed: int):
    return SAMPLERS[settings.sampler].load()(settings, space, seed)


# the samplers of `search/choices.py`'s table: (settings, space, seed) -> an optuna sampler


def tpe_sampler(settings: Settings, space: Space, seed: int):
    # the constant liar: a running trial counts as a poor result, so that workers sharing a study
    # do not all propose the member that looks best now
    shared = settings.workers > 1 or settings.storage is not None
    return optuna.samplers.TPESampler(seed=seed, constant_liar=shared)


def random_sampler(settings: Settings, space: Space, seed: int):
    return optuna.samplers.RandomSampler(seed=seed)


NSGA2_POPULATION = 50  # Optuna's default generation
EVOLUTION_POPULATION = 20


def nsga2_sampler(settings: Settings, space: Space, seed: int):
    # its first generation is drawn at random: with --trials at most the population, it is random search
    size = settings.population or NSGA2_POPULATION
    return optuna.samplers.NSGAIISampler(population_size=size, seed=seed)


def evolution_sampler(settings: Settings, space: Space, seed: int):
    from cnnc.search.evolution import EvolutionSampler

    size = settings.population or EVOLUTION_POPULATION
    # its draws are seeded by (seed, trial number), unique per trial in any worker: the seed itself,
    # not `seed` (offset by the trials a resume finds), so a resume draws what one run would
    return EvolutionSampler(size, settings.sample_size, seed=settings.seed)


def grid_sampler(settings: Settings, space: Space, seed: int):
    return Grid(grid_space(space), seed=seed)


class Grid(optuna.samplers.GridSampler):
    """Optuna's grid, minus its `study.stop()` at the end (valid only inside `study.optimize`):
    the worker stops by itself when `is_exhausted`."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def grid_space(space: Space) -> dict:
    """Every decision with its values, for a grid; the space must be walked to its end."""
    from cnnc.search.space import decisions

    size, members = walk(space, limit=GRID_LIMIT, seconds=60.0)
    if not size.complete:
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
    """One trial's contract (module docstring), called by `worker.Worker` with each trial it claims."""

    failure = TrialFailed  # what a member's own failure raises (already recorded on the trial)

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
        # (trial, hash, same) -> the earlier trial to reuse, or None to evaluate; the worker sets it
        self.claims: Callable = lambda trial, digest, same: None
        self._seen: dict[int, object] = {}  # trial number → its architecture, for `same_as`
        self._graphs: dict[int, object] = {}  # trial number → the graph this process evaluated
        self.latency = None  # the table of layer latencies, opened at the first member it times

    def __call__(self, trial):
        self.events.trial_started(trial.number)
        with limits.spending():  # each trial its own budget, not the search command's
            member = self.space.member(optuna_decider(trial))
        attrs = {"decisions": member.labels()}  # written together: one storage transaction
        if not member.ok:
            return _reject(trial, "invalid", member.invalid, attrs)
        try:
            s = summarize(member.graph, fields=False)
            digest = graph_hash(member.graph)
        except Exception:
            stores.set_user_attrs(trial, attrs)  # a failed trial still says which member it was
            raise
        attrs.update(hash=digest, params=s.params, macs=s.macs)
        problem = self.output_problem(member.graph)
        if problem:
            return _reject(trial, "invalid", problem, attrs)
        budget = over_budget(s.params, s.macs, self.settings.max_params, self.settings.max_macs)
        if budget:
            return _reject(trial, "infeasible", budget, attrs)
        stores.set_user_attrs(trial, attrs)
        self.time_layers(trial, member.graph)
        earlier = self.claims(trial, digest, lambda t: self.same_as(t, member.graph))
        if earlier is not None:
            return self.reuse(trial, earlier, s)
        if len(self._graphs) >= GRAPHS_KEPT:  # the oldest let go (memory)
            del self._graphs[next(iter(self._graphs))]
        self._graphs[trial.number] = member.graph
        return self.run(trial, member.graph, s)

    def same_as(self, earlier, graph) -> bool:
        """Whether `earlier`'s architecture (its decisions elaborated again) is `graph`'s, up to
        isomorphism: a key shared by two architectures is never taken for a match."""
        from cnnc.search.architecture import labelled, matches

        known = self._seen.get(earlier.number)
        if known is None and earlier.number in self._graphs:  # evaluated here: no elaboration
            known = self._seen[earlier.number] = labelled(self._graphs[earlier.number]).nx()
        if known is None:
            with limits.spending():
                member = self.space.member(fixed(earlier.user_attrs.get("decisions", {})))
            if not member.ok:
                return False
            known = self._seen[earlier.number] = labelled(member.graph).nx()
        return matches(known, labelled(graph).nx())

    def output_problem(self, graph) -> str | None:
        shape = graph.output_type.shape
        if self.num_classes is not None and shape != (self.num_classes,):
            return f"the output is {list(shape)}, but the data has {self.num_classes} classes"
        return None

    def time_layers(self, trial, graph) -> None:
        """The `latency` objective: the member's predicted latency (`search/latency.py`)."""
        if "latency" not in self.settings.objectives:
            return
        from cnnc.search import latency

        if self.latency is None:
            self.latency = latency.open_table(self.settings, lambda text: _say(self.events, text))
        latency.record(self.latency, trial, graph)

    def values(self, score: float, s, latency: float | None = None) -> list[float]:
        figures = {"params": s.params, "macs": s.macs, "latency": latency}
        return [score if o == "accuracy" else float(figures[o]) for o in self.settings.objectives]

    def run(self, trial, graph, s):
        single = len(self.settings.objectives) == 1
        outcome = self.evaluate(graph, self.reporter(trial, prune=single))
        attrs = {"seconds": outcome.seconds, "history": list(outcome.history)}
        if outcome.proxies:
            attrs["proxies"] = outcome.proxies
        if outcome.failed or math.isnan(outcome.score):
            reason = outcome.failed or "the score is NaN"
            _set(trial, "failed", reason, attrs)
            raise TrialFailed(reason)
        evaluator = self.settings.evaluator  # a one-shot member is scored with shared weights
        attrs["status"] = "trained" if trains(evaluator) and not one_shot(evaluator) else "scored"
        stores.set_user_attrs(trial, attrs)
        return self.values(outcome.score, s, trial.user_attrs.get("latency_ms"))

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
        attrs = {
            k: earlier.user_attrs[k] for k in ("proxies", "history") if k in earlier.user_attrs
        }
        attrs["reused_from"] = earlier.number
        _set(trial, "reused", earlier.user_attrs.get("reason", ""), attrs)
        if earlier.state == optuna.trial.TrialState.PRUNED:
            raise optuna.TrialPruned()
        if earlier.state == optuna.trial.TrialState.FAIL:
            raise TrialFailed(earlier.user_attrs.get("reason", "failed"))
        return list(earlier.values)

    def after(self, study, frozen) -> None:
        """Called with each trial the worker recorded: tell the events."""
        self.events.finished(report.Row.of(frozen))


def _set(trial, status: str, reason: str, attrs: dict | None = None) -> None:
    """`status` and `reason` (when given), after `attrs`, in one write (`storage.set_user_attrs`)."""
    attrs = {**(attrs or {}), "status": status}
    if reason:
        attrs["reason"] = reason
    stores.set_user_attrs(trial, attrs)


def _reject(trial, status: str, reason: str, attrs: dict):
    """Never evaluated: PRUNED, with the reason under the user attribute `infeasible` (written with
    `attrs`)."""
    stores.set_user_attrs(trial, {**attrs, "status": status, "infeasible": reason})
    raise optuna.TrialPruned(reason)


# ---------------------------------------------------------------------------------------------
# Running a study


def run(
    settings: Settings,
    space: Space,
    evaluator: Evaluator,
    events: Events,
    num_classes: int | None = None,
    write: bool = True,
    study=None,
) -> Result:
    """Work on the study until it holds `settings.trials` finished trials (counted over every worker,
    see `worker.py`), the timeout ends or a signal stops this worker; then write the results (unless
    `write` is false: a worker started by `--workers` leaves that to its parent).

    The results are written even when an error stops the run. `study`: the study `open_study` gave
    the caller (which opens it before building an evaluator that trains), else opened here.
    """
    from cnnc.search.worker import Worker

    study = open_study(settings, space) if study is None else study  # (opened by the caller)
    held = study.get_trials(deepcopy=False)  # read once: `study.trials` copies every trial
    events.started(report.rows(held), changes(study, settings))
    working = stores.in_memory(study) if in_memory(settings, held) else study
    settings, derived = derived_first(working, settings, evaluator)
    if derived:
        _say(events, derived)
    planned = getattr(events, "planned", None)
    if planned is not None:
        planned(settings.trials)
    objective = Objective(settings, space, evaluator, events, num_classes, working)
    stopped = "done"
    with running(settings.out) if write else contextlib.nullcontext():  # search-report keeps off
        try:
            stopped = Worker(working, settings, objective, lambda text: _say(events, text)).work()
        finally:
            if working is not study:
                stores.retrying(
                    lambda: stores.write_back(working, study, len(held)),
                    lambda text: _say(events, text),
                )
            result = (
                finish(settings, space, study, stopped)
                if write
                else Result(study, [], [], [], [], stopped)
            )
        if write:  # still under the folder's lock: retrain.csv is this search's file too
            result = retrained(result, settings, space, evaluator, lambda t: _say(events, t))
    return result


def in_memory(settings: Settings, trials) -> bool:
    """Whether this run works on a copy in memory of the study holding `trials` (module docstring)."""
    return (
        one_shot(settings.evaluator)
        and settings.storage is None
        and all(t.state.is_finished() for t in trials)
    )


def derived_first(study, settings: Settings, evaluator) -> tuple[Settings, str | None]:
    """An evaluator that derives its member (`darts`, with `derived`: the Optuna parameters, and
    `derived_hash`: its architecture's) has that member as the study's next trial, and the run
    stops after it; a study that holds it already (a resume) runs nothing, and says so (a reused
    proposal would not count, and another member would be proposed in its place)."""
    derived = getattr(evaluator, "derived", None)
    if derived is None:
        return settings, None
    from dataclasses import replace

    from cnnc.search.worker import counts, finished_count

    trials = study.get_trials(deepcopy=False)
    digest = getattr(evaluator, "derived_hash", None)
    held = [
        t
        for t in trials
        if counts(t) and (t.params == derived or (digest and t.user_attrs.get("hash") == digest))
    ]
    if held:
        note = f"the derived member is trial {held[0].number}'s architecture: no trial to run"
        return replace(settings, trials=finished_count(trials)), note
    study.enqueue_trial(derived)
    return replace(settings, trials=finished_count(trials) + 1), None


def retrained(result: Result, settings: Settings, space: Space, evaluator, say) -> Result:
    """`--retrain-top K` of a one-shot evaluator (one with `retrain`): the best K trained from
    scratch, Kendall τ in the notes and retrain.csv among the files (`retrain.py`)."""
    retrain = getattr(evaluator, "retrain", None)
    if not settings.retrain_top or retrain is None or result.stopped != "done":
        return result
    from dataclasses import replace

    from cnnc.search.retrain import retrain_top

    study, k = result.study, settings.retrain_top
    figures, path = retrain_top(study, space, retrain, k, settings.out, say)
    return replace(result, files=[*result.files, path], notes=[*result.notes, figures.note()])


def _say(events, text: str) -> None:
    note = getattr(events, "note", None)
    if note is not None:
        note(text)


_LAST_SPACE: list = []  # [(key, files' stamps, Space)]: `space_for`'s last answer


def space_for(settings: Settings, input_shape, num_classes: int | None) -> Space:
    """The space of `settings.file` at the data's input shape; a network parameter `classes` not
    given with `--arg` is bound to the data's number of classes.

    Asked again for the same file, network, arguments and shape while none of the program's files
    changed (size and modification time), it is the same `Space`, so what it remembers (a complete
    walk: the command's header and a supernet's cover) is computed once."""
    key = (
        str(settings.file),
        settings.network,
        tuple(settings.args),
        tuple(settings.allow_import),
        input_shape,
        num_classes,
    )
    if _LAST_SPACE:
        known, stamps, space = _LAST_SPACE[0]
        if known == key and stamps is not None and stamps == _stamps(space):
            return space
    space = _load_space(settings, input_shape, num_classes)
    _LAST_SPACE[:] = [(key, _stamps(space), space)]
    return space


def _stamps(space: Space) -> tuple | None:
    """(path, size, mtime) of each file of the space's program; None where one cannot be read."""
    try:
        return tuple(
            (path, os.stat(path).st_size, os.stat(path).st_mtime_ns)
            for path in sorted(space.program.modules)
        )
    except (OSError, TypeError, ValueError):
        return None


def _load_space(settings: Settings, input_shape, num_classes: int | None) -> Space:
    from cnnc.compiler.elaborate import default_network
    from cnnc.dsl.programs import load_program, parse_arg_values

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


def load_study(url: str, name: str | None, read_only: bool = False):
    """An existing study (`cnnc search-report`); the only one in `url` when `name` is None.
    `read_only`: opened to be read only (`studyfiles.open_read_only`)."""
    from cnnc.search import studyfiles

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    opener = (
        (lambda: studyfiles.open_read_only(url))
        if read_only
        else (lambda: stores.open_storage(url, 10))
    )
    storage = stores.retrying(opener, lambda text: None)
    names = optuna.get_all_study_names(storage=storage)
    if name is None and len(names) == 1:
        name = names[0]
    if name not in names:
        listed = ", ".join(f"`{n}`" for n in names) or "none"
        raise CnncError(
            error(
                "E0604",
                f"no study `{name}` in {url} (studies there: {listed})",
                None,
                helps=("name one with `--study NAME`",),
            )
        )
    return optuna.load_study(study_name=name, storage=storage)
