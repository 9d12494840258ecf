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
- *weight sharing* (`supernet-E`, `darts-E`: `--evaluator supernet|darts` trained E epochs;
  `supernet-RULE-E` with another of the supernet's path rules, `supernet.RULES`): the
  evaluator `cnnc search` builds (`search/evaluators/`), run in this process on digits with the
  table's split and training recipe (SGD, lr 0.05, batch 64, one thread), seeded by the seed, and
  charged its own CPU time (the table's unit: the wall time on an idle core). The supernet scores
  every member with inherited weights (BatchNorm recalibrated): its trial 1 is the member it
  scores best, charged the training and the scoring; trials 2 … 10 its next best, each charged its
  table seconds (trained to check it). The runner prints the Kendall τ of its scores of all 729
  members against the table. DARTS's one trial is the member it derives (α's argmax), charged the
  search and the derivation.
Every method's member is looked up in the table for its accuracy. A method whose choice is not in
`search/choices.py` is skipped, and the runner says so. A third table gives, for each method, the
median trials and charged seconds to a top-1 % and a top-5 % member.

Zero-cost proxies (`search/evaluators/proxy.py`) score every member untrained (`--proxy-seeds`
seeds of weights and minibatch); the runner prints each proxy's Kendall τ against the table's
accuracy, the regret of the member it ranks first, and the regret of the best of its top 10 (the
ten trained: charged their table seconds, plus the scoring of every member).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import regret
import table
from regret import Trial

TOP = 0.01  # top-1 % members
PROXY_TOP = 10  # a proxy's (and the supernet's) best members trained
REACH = (0.01, 0.05)  # the top fractions whose time to reach is tabled
SUPERNET_EPOCHS = (5, 10, 20, 40)  # the supernet-E methods (the default path rule)
SUPERNET_RULES = ("uniform", "fair")  # supernet-RULE-E: the other path rules, at these epochs
RULE_EPOCHS = (10,)
DARTS_EPOCHS = (5, 10, 20)


@dataclass(frozen=True)
class Bench:
    members: dict  # key -> table.Entry
    by_hash: dict  # the graph's text hash (one member, not its isomorphism class) -> key
    trials: int
    workdir: Path
    graphs: tuple = ()  # (key, graph) of every member, in the walk's order
    one_shot: list = field(default_factory=list)  # OneShot rows, as the methods run
    scores: Path | None = None  # where each supernet run's scores go (`--scores`), if anywhere


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # the choices table that must list `choice`: "sampler" or "evaluator"
    choice: str
    run: Callable  # (bench, method, seed) -> list[Trial]
    charged: str  # what a trial costs: the "table"'s seconds, or the method's "own" CPU time
    epochs: int = 0  # a weight-sharing method's training epochs
    rule: str = ""  # the supernet's path rule (`supernet.RULES`); "": its default


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


# ---------------------------------------------------------------------------------------------
# Weight sharing


@dataclass(frozen=True)
class OneShot:
    """What a one-shot run measured besides its trials (the one-shot table's row)."""

    method: str
    seed: int
    train: float  # CPU seconds: building and training the supernet (DARTS: search and derivation)
    score: float  # CPU seconds: scoring every member with inherited weights (0 for DARTS)
    tau: float | None  # Kendall τ of the scores of every member against the table (None: DARTS)
    picked: str  # the key of the member it picked
    best_of: float | None = (
        None  # the table's best accuracy among its first `PROXY_TOP` (DARTS: None)
    )


def one_shot_settings(method: Method, seed: int, workdir: Path):
    """The evaluator's settings: the table's training recipe (SGD, lr 0.05, batch 64, one
    thread, CPU) and the method's own epochs and seed."""
    from cnnc.search.driver import Settings

    return Settings(
        file=str(table.SPACE),
        evaluator=method.choice,
        epochs=method.epochs,
        seed=seed,
        device="cpu",
        out=workdir / f"{method.name}-{seed}",
    )


def digits():
    """digits with the table's split (20 % validation, split seed 0), whatever the run's seed."""
    from cnnc.training.data import load_dataset

    return load_dataset("digits", None, 0)


def supernet_run(bench: Bench, method: Method, seed: int) -> list[Trial]:
    """`--evaluator supernet` trained once (the code `cnnc search` runs, in this process), then
    every member scored with inherited weights (BatchNorm recalibrated). Trial 1 is the member it
    scores best, charged the training and the scoring of every member; trials 2 … `PROXY_TOP` are
    its next best, each charged its table seconds (trained from scratch to check it)."""
    from cnnc.search.evaluators.supernet import RULE, supernet_evaluator

    settings = one_shot_settings(method, seed, bench.workdir)
    start = time.process_time()
    evaluate = supernet_evaluator(settings, digits(), method.rule or RULE)
    trained = time.process_time()
    scores = {key: evaluate(graph, None).score for key, graph in bench.graphs}
    scored = time.process_time()
    if any(math.isnan(v) for v in scores.values()):  # a member the supernet does not cover
        missed = [k for k, v in scores.items() if math.isnan(v)]
        raise SystemExit(f"{method.name}: the supernet scored no accuracy for {missed[:3]} …")
    if bench.scores is not None:  # for ceiling.py's columns
        from cnnc.dsl import safefs

        bench.scores.mkdir(parents=True, exist_ok=True)
        safefs.write_text(bench.scores / f"{method.name}-{seed}.json", json.dumps(scores))
    ranked = sorted(scores, key=lambda k: -scores[k])  # ties keep the walk's order
    tau = regret.kendall_tau(
        [scores[k] for k in ranked], [bench.members[k].accuracy for k in ranked]
    )
    bench.one_shot.append(
        OneShot(
            method.name,
            seed,
            trained - start,
            scored - trained,
            tau,
            ranked[0],
            max(bench.members[k].accuracy for k in ranked[:PROXY_TOP]),
        )
    )
    return charged_top(bench, ranked[:PROXY_TOP], scored - start)


def charged_top(bench: Bench, keys: list[str], searched: float) -> list[Trial]:
    """The members `keys` in order as trials: the first charged the search, the others their
    table seconds."""
    first = Trial(bench.members[keys[0]].accuracy, searched)
    return [first, *(Trial(bench.members[k].accuracy, bench.members[k].seconds) for k in keys[1:])]


def darts_run(bench: Bench, method: Method, seed: int) -> list[Trial]:
    """`--evaluator darts` (search and derivation, in this process): one trial, the member it
    derives, charged the whole search."""
    from cnnc.search.evaluators.darts import darts_evaluator

    settings = one_shot_settings(method, seed, bench.workdir)
    start = time.process_time()
    evaluate = darts_evaluator(settings, digits())
    spent = time.process_time() - start
    key = table.key_of(evaluate.derived)
    bench.one_shot.append(OneShot(method.name, seed, spent, 0.0, None, key))
    return [Trial(bench.members[key].accuracy, spent)]


METHODS = (
    Method("random", "sampler", "random", lookup_search, "table"),
    Method("tpe", "sampler", "tpe", lookup_search, "table"),
    Method("evolution", "sampler", "evolution", lookup_search, "table"),
    # weight sharing, charged their own CPU time. A supernet epoch is 22 steps of one random path
    # (a member's 3 epochs are 69 steps, ~1 s); building the supernet costs ~5 s besides
    *(
        Method(f"supernet-{e}", "evaluator", "supernet", supernet_run, "own", e)
        for e in SUPERNET_EPOCHS
    ),
    *(
        Method(f"supernet-{r}-{e}", "evaluator", "supernet", supernet_run, "own", e, r)
        for r in SUPERNET_RULES
        for e in RULE_EPOCHS
    ),
    *(Method(f"darts-{e}", "evaluator", "darts", darts_run, "own", e) for e in DARTS_EPOCHS),
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


def reach_table(results: dict, thresholds: dict[float, float]) -> str:
    """Per method and top fraction: the median trials and charged seconds to a member at or above
    its threshold, and how many runs reach one."""
    head = ["method"]
    for fraction in thresholds:
        top = f"top{100 * fraction:g}%"
        head += [f"{top} trials", f"{top} s", "reached"]
    lines = [head]
    for name, runs in results.items():
        row = [name]
        for threshold in thresholds.values():
            trials, seconds, reached = regret.median_time(runs, threshold)
            row += [
                "—" if trials is None else f"{trials:g}",
                "—" if seconds is None else f"{seconds:.1f}",
                f"{reached}/{len(runs)}",
            ]
        lines.append(row)
    return regret.layout(lines)


def one_shot_table(rows: list[OneShot], members: dict, best: float) -> str:
    """Per weight-sharing run: its CPU seconds, τ over every member, the pick and its regret,
    and the regret of the best of its first `PROXY_TOP`."""
    head = ["method", "seed", "train s", "score s", "Kendall τ", "regret", "top-10 regret"]
    lines = [[*head, "picked"]]
    for r in rows:
        tau = "—" if r.tau is None else f"{r.tau:.3f}"
        picked = regret.pp(best - members[r.picked].accuracy)
        best_of = "—" if r.best_of is None else regret.pp(best - r.best_of)
        times = [f"{r.train:.1f}", f"{r.score:.1f}"]
        lines.append([r.method, str(r.seed), *times, tau, picked, best_of, r.picked])
    return regret.layout(lines)


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

    graphs = tuple(table.space_members())
    by_hash = {text_hash(g): k for k, g in graphs}
    with tempfile.TemporaryDirectory(prefix="cnnc-nasbench-") as work:
        scores = Path(opts.scores) if opts.scores else None
        bench = Bench(members, by_hash, opts.trials, Path(work), graphs, scores=scores)
        results, overhead = run_methods(bench, opts)
    print(f"\n## Regret (pp) after n trials, mean over seeds; {opts.trials} trials a run\n")
    print(regret.regret_table(results, best, threshold))
    print("\n## Regret (pp) after t seconds charged, mean over seeds\n")
    print(regret.time_table(results, best, threshold))
    for name, seconds in overhead.items():
        print(f"{name}: the driver's own time {1e3 * seconds:.0f} ms a trial (not charged)")
    accuracies = [e.accuracy for e in members.values()]
    print("\n## Time to a top-k % member: median over the runs that reach one\n")
    print(reach_table(results, {f: regret.top_threshold(accuracies, f) for f in REACH}))
    if bench.one_shot:
        print("\n## Weight sharing: each run\n")
        print(one_shot_table(bench.one_shot, bench.members, best))
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
    p.add_argument("--scores", default="", help="a folder for each supernet run's scores (JSON)")
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
