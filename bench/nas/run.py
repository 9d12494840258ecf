"""Which search works: every method of `METHODS` against the tabular benchmark, several seeds each.

    .venv/bin/python bench/nas/run.py [--seeds 5] [--trials 100] [--proxy-seeds 1] [--only random,tpe]

Reads `table.json` (`build.py` makes it) and prints the regret tables: for each method, the mean
regret over the seeds (the table's best accuracy minus the best found, in percentage points) after
n trials and after t seconds, and the median time to reach a top-1 % member (`regret.py`).

Methods of two kinds (the `METHODS` table):
- *from scratch* (a sampler: random, TPE, evolution): a real `cnnc search` study (the driver,
  `search/driver.py`, with the sampler of `--sampler NAME` and its dedup of repeated members) whose
  evaluator looks the member up in the table instead of training it. A trial's accuracy and its
  seconds are the table's (CPU seconds of one thread; a member met again costs nothing), so a run
  is quick and exact; the driver's own time per trial is shown beside the table, not charged.
- *weight sharing* (supernet, DARTS: an `--evaluator` that trains something itself): run through
  `cnnc.search` in this process, charged their own time (CPU seconds of one thread, as the table's:
  the wall time on an idle core); the member they pick is looked up in the table.
A method whose choice is not in `search/choices.py` yet is skipped, and the runner says so.

Zero-cost proxies (`search/evaluators/proxy.py`) score every member untrained (`--proxy-seeds`
seeds of weights and minibatch); the runner prints each proxy's Kendall τ against the table's
accuracy, the regret of the member it ranks first, and the regret of the best of its top 10 (the
ten trained: charged their table seconds, plus the scoring of every member).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import regret
import table
from regret import Trial

TOP = 0.01  # top-1 % members
PROXY_TOP = 10  # a proxy's best members trained


@dataclass(frozen=True)
class Bench:
    members: dict  # key -> table.Entry
    by_hash: dict  # the graph's text hash (one member, not its isomorphism class) -> key
    trials: int
    workdir: Path


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # the choices table that must list `choice`: "sampler" or "evaluator"
    choice: str
    run: Callable  # (bench, method, seed) -> list[Trial]
    charged: str  # what a trial costs: the "table"'s seconds, or the method's "own" CPU time


def lookup_search(bench: Bench, method: Method, seed: int) -> list[Trial]:
    """A `cnnc search` study with the method's sampler, each member looked up in the table."""
    from cnnc.search import driver

    settings = driver.Settings(
        file=str(table.SPACE),
        trials=bench.trials,
        sampler=method.choice,
        seed=seed,
        pruner="none",
        device="cpu",
        out=bench.workdir / f"{method.name}-{seed}",
    )
    space = driver.space_for(settings, (1, 8, 8), 10)
    result = driver.run(settings, space, lookup_evaluator(bench), Quiet(), 10, write=False)
    rows = sorted(result.study.trials, key=lambda t: t.number)
    return [trial_of(t) for t in rows if t.state.name == "COMPLETE"]


def lookup_evaluator(bench: Bench):
    """The evaluator of the driver's contract, `(graph, report) -> Outcome`, reading the table."""
    from cnnc.search.driver import Outcome
    from cnnc.search.space import text_hash

    def evaluate(graph, report_epoch) -> Outcome:
        entry = bench.members[bench.by_hash[text_hash(graph)]]
        return Outcome(entry.accuracy, entry.seconds, None, {}, (entry.accuracy,))

    return evaluate


def trial_of(trial) -> Trial:
    """A finished trial as charged: a member met before (`reused`) cost no training."""
    accuracy = trial.values[0]
    trained = trial.user_attrs.get("status") == "trained"
    return Trial(accuracy, trial.user_attrs["seconds"] if trained else 0.0)


class Quiet:
    """The driver's `Events`, saying nothing."""

    def started(self, rows, notes) -> None:
        pass

    def trial_started(self, number: int) -> None:
        pass

    def epoch(self, number: int, epoch: int, accuracy: float) -> None:
        pass

    def finished(self, row) -> None:
        pass


def weight_sharing(bench: Bench, method: Method, seed: int) -> list[Trial]:
    """HOOK for `--evaluator supernet` / `--evaluator darts`: one `cnnc search` with the method's
    evaluator, in this process on one thread, charged its own time; the member it ranks best is
    looked up in the table. The lead adjusts the keywords (epochs, trials) to the evaluator's
    options when it lands.

    Its time is the CPU time of this process, the unit of the table's seconds: on an idle core it
    is the wall time, and on a shared machine the others' load does not stretch it."""
    import cnnc

    start = time.process_time()
    result = cnnc.search(
        table.SPACE,
        evaluator=method.choice,
        data="digits",
        seed=seed,
        trials=bench.trials,
        epochs=3,
        threads=1,
        device="cpu",
        out=bench.workdir / f"{method.name}-{seed}",
    )
    spent = time.process_time() - start
    key = table.key_of(result.best[0].decisions)
    return [Trial(bench.members[key].accuracy, spent)]


METHODS = (
    Method("random", "sampler", "random", lookup_search, "table"),
    Method("tpe", "sampler", "tpe", lookup_search, "table"),
    # HOOK: the evolution sampler (`--sampler evolution`), a from-scratch search like TPE
    Method("evolution", "sampler", "evolution", lookup_search, "table"),
    # HOOKS: weight-sharing evaluators, charged their own training (`weight_sharing`)
    Method("supernet", "evaluator", "supernet", weight_sharing, "own"),
    Method("darts", "evaluator", "darts", weight_sharing, "own"),
)


def available(method: Method) -> bool:
    from cnnc.search.choices import EVALUATORS, SAMPLERS

    return method.choice in (SAMPLERS if method.kind == "sampler" else EVALUATORS)


# ---------------------------------------------------------------------------------------------
# Zero-cost proxies


def proxy_scores(seed: int) -> tuple[dict[str, dict[str, float]], float]:
    """{proxy: {key: score}} over every member (weights and minibatch seeded by `seed`), and the
    CPU seconds the scoring took (one thread, as the table's seconds)."""
    from cnnc.compiler.lower.steps import to_step_module
    from cnnc.search.evaluators.proxy import score_all
    from cnnc.training.data import load_dataset

    data = load_dataset("digits", None, 0)
    scores: dict[str, dict[str, float]] = {}
    start = time.process_time()
    for key, graph in table.space_members():
        model = to_step_module(graph, seed=seed)
        for name, value in score_all(model, data, seed=seed).items():
            scores.setdefault(name, {})[key] = value
    return scores, time.process_time() - start


def proxy_rows(bench: Bench, seeds: int) -> list[tuple]:
    """Per proxy and seed: τ, the top member's regret, the best of the top 10's, and its cost."""
    best = max(e.accuracy for e in bench.members.values())
    rows = []
    for seed in range(seeds):
        scores, seconds = proxy_scores(seed)
        for name, by_key in scores.items():
            keys = sorted(by_key, key=lambda k: -by_key[k])
            accuracies = [bench.members[k].accuracy for k in by_key]
            tau = regret.kendall_tau(list(by_key.values()), accuracies)
            top = [bench.members[k] for k in keys[:PROXY_TOP]]
            cost = seconds + sum(e.seconds for e in top)
            picked = best - top[0].accuracy
            rows.append((name, seed, tau, picked, best - max(e.accuracy for e in top), cost))
    return rows


# ---------------------------------------------------------------------------------------------
# Tables


def proxy_table(rows: list[tuple]) -> str:
    lines = [
        ["proxy", "seed", "Kendall τ", "top-1 regret", f"best-of-{PROXY_TOP} regret", "cost s"]
    ]
    for name, seed, tau, picked, best_of, cost in rows:
        lines.append(
            [name, str(seed), f"{tau:.3f}", regret.pp(picked), regret.pp(best_of), f"{cost:.1f}"]
        )
    return regret.layout(lines)


# ---------------------------------------------------------------------------------------------
# Main


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    import torch

    torch.set_num_threads(1)  # as the table's members were trained, and off the other core
    meta, members = table.read(opts.table)
    best = max(e.accuracy for e in members.values())
    threshold = regret.top_threshold([e.accuracy for e in members.values()], TOP)
    print(header(meta, members, best, threshold))
    from cnnc.search.space import text_hash

    by_hash = {text_hash(g): k for k, g in table.space_members()}
    with tempfile.TemporaryDirectory(prefix="cnnc-nasbench-") as work:
        bench = Bench(members, by_hash, opts.trials, Path(work))
        results, overhead = run_methods(bench, opts)
    print(f"\n## Regret (pp) after n trials, mean over seeds; {opts.trials} trials a run\n")
    print(regret.regret_table(results, best, threshold))
    print("\n## Regret (pp) after t seconds charged, mean over seeds\n")
    print(regret.time_table(results, best, threshold))
    for name, seconds in overhead.items():
        print(f"{name}: the driver's own time {1e3 * seconds:.0f} ms a trial (not charged)")
    if opts.proxy_seeds:
        print("\n## Zero-cost proxies over every member\n")
        print(proxy_table(proxy_rows(bench, opts.proxy_seeds)))
    return 0


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--proxy-seeds", type=int, default=1)
    p.add_argument("--only", default="", help="comma-separated method names (default: all)")
    p.add_argument("--table", default=str(table.TABLE))
    return p.parse_args(argv)


def header(meta: dict, members: dict, best: float, threshold: float) -> str:
    return (
        f"table {meta['space']}: {len(members)} members, {meta['epochs']} epochs, seed "
        f"{meta['seed']}; best accuracy {best:.4f}, top-1 % from {threshold:.4f}"
    )


def run_methods(bench: Bench, opts) -> tuple[dict, dict]:
    """{method: [run of each seed]}, and the driver's own seconds a trial of each table method."""
    only = {n for n in opts.only.split(",") if n}
    results, overhead = {}, {}
    for method in METHODS:
        if only and method.name not in only:
            continue
        if not available(method):
            print(
                f"skipped {method.name}: no {method.kind} `{method.choice}` in search/choices.py yet"
            )
            continue
        start, runs = time.perf_counter(), []
        for seed in range(opts.seeds):
            runs.append(method.run(bench, method, seed))
        results[method.name] = runs
        if method.charged == "table":
            count = sum(len(r) for r in runs)
            overhead[method.name] = (time.perf_counter() - start) / max(1, count)
    return results, overhead


if __name__ == "__main__":
    sys.exit(main())
