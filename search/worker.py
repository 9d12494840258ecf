"""One worker of a study: claim a trial slot, run the trial, record it — until the study is done.

Any number of workers (processes on one machine, or machines sharing a database) run this loop on
one study. Input: the study, `Settings` and the trial's objective (`driver.Objective`). Output: the
trials it ran, recorded in the study, and why it stopped (`done`, `timeout`, `exhausted` or
`interrupted`).

Contracts:
- `--trials N` counts *finished* trials: COMPLETE, PRUNED (invalid, infeasible or pruned members),
  and FAIL when the member itself failed (`status` failed: NaN, out of memory, too large, an
  exception). A trial failed because its worker died, was stopped or lost the storage is not
  counted, and its parameters are enqueued again. A trial whose architecture was met before
  (`status` reused: isomorphic to an earlier trial's, whose result it takes) is not counted either:
  N trials are N distinct architectures. After a reused trial the next one is a member no trial
  has proposed, drawn at random (`explore.py`; a sampler that proposed a known architecture, TPE
  near its best, tends to propose it again), except under a grid or evolution, which keep their
  own proposals;
  when `EXHAUSTED_AFTER` proposals in a row are all reused, the space looks exhausted and the
  worker stops (`exhausted`); a space walked whole stops as soon as each of its distinct
  architectures has a trial (`done`, said), except under a grid, which proposes each point once.
- A slot is claimed under the `StudyLock`: stale trials are failed first, then a new trial starts
  only while finished + running < N. With finished < N ≤ finished + running the worker waits (a
  running trial may still die); with finished ≥ N it stops. So the study never overshoots N, and a
  trial lost with its worker is run again by the workers that remain.
- SIGINT/SIGTERM during a trial stop it: the trial is recorded FAIL (`status` interrupted), its
  parameters enqueued again, and the worker stops; between trials the worker just stops. A second
  signal exits at once (status 130).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable

import optuna

from cnnc.search import storage as stores
from cnnc.search.explore import Unproposed

TrialState = optuna.trial.TrialState
COUNTED_FAILURES = ("failed",)  # a FAIL that is the member's own result
EXHAUSTED_AFTER = 100  # reused proposals in a row after which the space is taken as exhausted
POLL_SECONDS = 0.5  # how often a waiting worker looks at the study again


def counts(trial) -> bool:
    """Whether a trial counts toward `--trials` (module docstring)."""
    if trial.user_attrs.get("status") == "reused":
        return False
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get("status") in COUNTED_FAILURES


def finished_count(trials) -> int:
    return sum(counts(t) for t in trials)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived during a trial (a BaseException: no `except Exception` eats it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
    """SIGINT/SIGTERM handling for a worker (module docstring); installed only in the main thread."""

    def __init__(self):
        self.stopping: int | None = None  # the signal that asked to stop
        self.in_trial = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)

    def _handle(self, signum, frame) -> None:
        if self.stopping is not None:
            os._exit(130)  # the second signal: at once, whatever is running
        self.stopping = signum
        if self.in_trial:
            raise Interrupted(signum)


class Heartbeat:
    """Records the trial's heartbeat every `interval` seconds while the trial runs (RDB storages)."""

    def __init__(self, study, trial, interval: float):
        self.storage, self.trial_id, self.interval = study._storage, trial._trial_id, interval
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if _beats(self.storage):
            self.storage.record_heartbeat(self.trial_id)
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # a dropped connection: the main thread says so
                self.storage.record_heartbeat(self.trial_id)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class Worker:
    """The loop of the module docstring for one process."""

    def __init__(self, study, settings, objective, say: Callable[[str], None]):
        self.study, self.settings, self.objective, self.say = study, settings, objective, say
        self.lock = stores.StudyLock(settings.storage_url, study.study_name)
        self.signals = Signals()
        self.repeats = 0  # reused trials in a row, this worker's
        self.waited_for: tuple[int, ...] = ()  # the running trials it last said it waits for
        self.explorer = Unproposed(objective.space, settings.seed + 7919 * settings.worker)
        objective.claims = self.claim_architecture

    def work(self) -> str:
        start = time.monotonic()
        with self.signals:
            while True:
                if self.signals.stopping is not None:
                    return "interrupted"
                if (
                    self.settings.timeout is not None
                    and time.monotonic() - start > self.settings.timeout
                ):
                    return "timeout"
                if self.repeats >= EXHAUSTED_AFTER:
                    return "exhausted"
                claim = self.retrying(self.claim_slot)
                if claim == "done":
                    return "done"
                if claim == "wait":
                    self.waiting()
                    time.sleep(POLL_SECONDS)
                    continue
                self.run(claim)

    def retrying(self, step):
        return stores.retrying(step, self.say)

    # -- slots -------------------------------------------------------------------------------

    def claim_slot(self):
        """A new trial, `wait` or `done` (module docstring), decided under the study lock."""
        with self.lock:
            self.fail_stale()
            trials = self.study.get_trials(deepcopy=False)
            done = finished_count(trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            if done >= self.settings.trials:
                return "done"
            if done + running >= self.settings.trials or self.grid_done(trials):
                return "wait" if running else "done"
            if not running and not self.gridded() and self.all_met(trials):
                return "done"
            trial = self.study.ask()
            trial.set_user_attr("worker", stores.this_worker())
            return trial

    def waiting(self) -> None:
        """Say once which running trials the worker waits for (they may hold the last slots), and
        where they run: a wait is never silent."""
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        numbers = tuple(t.number for t in running)
        if numbers == self.waited_for:
            return
        self.waited_for = numbers
        where = "; ".join(
            f"#{t.number} {stores.worker_text(t.user_attrs.get('worker'))}" for t in running[:3]
        )
        more = f" and {len(running) - 3} more" if len(running) > 3 else ""
        self.say(f"waiting for running trials to finish ({where}{more}); Ctrl-C stops the search")

    def fail_stale(self) -> None:
        for number in stores.fail_stale(self.study, self.settings.storage_url):
            self.say(
                f"trial {number}'s worker stopped answering: recorded FAIL, its parameters queued again"
            )

    def all_met(self, trials) -> bool:
        """Whether every distinct architecture of a space walked whole has a trial that counts
        (`Size.distinct`): nothing is left to propose, and proposals would all be reused (until
        `EXHAUSTED_AFTER` in a row). Said once."""
        counted = self.objective.space.counted
        size = counted[0] if counted else None
        if size is None or not size.complete or not size.distinct:
            return False
        met = {t.user_attrs.get("hash") for t in trials if counts(t)} - {None}
        if len(met) < size.distinct:
            return False
        self.say(
            f"every one of the space's {size.distinct:,} distinct architectures has a trial: "
            "nothing is left to propose"
        )
        return True

    def gridded(self) -> bool:
        """A grid proposes each of its points once and ends on its own (`grid_done`)."""
        return hasattr(self.study.sampler, "is_exhausted")

    def grid_done(self, trials) -> bool:
        """A grid sampler has started every point, and no failed trial waits to be run again."""
        exhausted = getattr(self.study.sampler, "is_exhausted", None)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        return exhausted is not None and not waiting and exhausted(self.study)

    def claim_architecture(self, trial, digest: str, same=lambda earlier: True):
        """The finished trial whose result `trial` reuses, or None once `trial` may evaluate `digest`.
        An earlier trial of the same key is reused only where `same(earlier)` confirms the match.

        While another live trial evaluates the same architecture, wait for its result: no
        architecture is evaluated twice at once."""
        waited = False
        while True:
            with self.lock:
                if waited:  # the trial waited for may have lost its worker
                    self.fail_stale()
                trials = self.study.get_trials(deepcopy=False)
                earlier = [t for t in trials if _evaluated(t) and t.user_attrs["hash"] == digest]
                confirmed = next((t for t in earlier if same(t)), None)
                if confirmed is not None:
                    return confirmed
                busy = any(
                    t.state == TrialState.RUNNING
                    and t.number != trial.number
                    and t.user_attrs.get("evaluating") == digest
                    for t in trials
                )
                if not busy:
                    # one write (`set_user_attrs`: one transaction where the storage has them;
                    # elsewhere `since` first): no `evaluating` mark without its start, which
                    # dates it for the others (seconds since the epoch)
                    stores.set_user_attrs(
                        trial, {"evaluating_since": time.time(), "evaluating": digest}
                    )
                    return None
            time.sleep(POLL_SECONDS)
            waited = True

    # -- one trial ---------------------------------------------------------------------------

    def run(self, trial) -> None:
        state, values = TrialState.FAIL, None
        interrupted = lost = None
        with Heartbeat(self.study, trial, self.settings.heartbeat):
            try:
                self.signals.in_trial = True
                if self.signals.stopping is not None:  # arrived while the slot was claimed
                    raise Interrupted(self.signals.stopping)
                with self.exploring():
                    values, state = self.objective(trial), TrialState.COMPLETE
            except optuna.TrialPruned:
                state = TrialState.PRUNED
            except Interrupted as exc:
                interrupted = exc
            except Exception as exc:  # noqa: BLE001 - the member failed, whatever it raised
                if stores.is_connection_error(exc):
                    lost = exc
                elif not isinstance(exc, self.objective.failure):
                    reason = f"{type(exc).__name__}: {stores.first_line(exc)}"
                    self.retrying(lambda: _fail(trial, reason))
            finally:
                self.signals.in_trial = False
        if interrupted is not None or lost is not None:
            self.abandon(trial, interrupted, lost)
            return
        frozen = self.retrying(lambda: self._tell(trial, state, values))
        reused = frozen is not None and frozen.user_attrs.get("status") == "reused"
        self.repeats = self.repeats + 1 if reused else 0
        if frozen is not None:
            self.objective.after(self.study, frozen)

    @contextlib.contextmanager
    def exploring(self):
        """After a reused trial, this one's suggestions come from a random sampler (module
        docstring); a grid keeps its own order, and evolution its own proposals."""
        tuned = self.study.sampler
        own = self.gridded() or getattr(tuned, "proposes_alone", False)
        if self.repeats == 0 or own:
            yield
            return
        self.study.sampler = self.explorer
        try:
            yield
        finally:
            self.study.sampler = tuned

    def _tell(self, trial, state, values):
        try:
            return self.study.tell(
                trial,
                values if state == TrialState.COMPLETE else None,
                state=state,
                skip_if_finished=False,
            )
        except optuna.exceptions.UpdateFinishedTrialError:
            return None  # found stale by another worker meanwhile: it was failed and queued again

    def abandon(self, trial, interrupted: Interrupted | None, lost: Exception | None) -> None:
        """A trial stopped by a signal or a lost storage: FAIL, not counted, its parameters queued again."""
        if interrupted is not None:
            status, reason = "interrupted", f"the worker was stopped ({interrupted})"
        else:
            self.say(f"trial {trial.number} lost the study's storage: {stores.first_line(lost)}")
            status, reason = "lost", f"the storage's connection dropped: {stores.first_line(lost)}"

        def record():
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                trial.set_user_attr("status", status)
                trial.set_user_attr("reason", reason)
                frozen = self.study.tell(trial, state=TrialState.FAIL)
                stores.requeue(self.study, frozen)
                self.objective.after(self.study, frozen)

        self.retrying(record)


def _beats(storage) -> bool:
    """Whether the storage keeps heartbeats (RDB storages with an interval; not journal files)."""
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    return isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)


def _fail(trial, reason: str) -> None:
    trial.set_user_attr("status", "failed")
    trial.set_user_attr("reason", reason)


def _evaluated(trial) -> bool:
    """A finished trial whose architecture went through the evaluator (its result may be reused)."""
    return (
        trial.state.is_finished()
        and trial.user_attrs.get("status") in ("trained", "scored", "pruned", "failed")
        and "hash" in trial.user_attrs
    )
