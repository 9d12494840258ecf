"""Benchmark: cnnc's own cost per search trial, against the cost of training one.

For a ResNet-50-sized member of a space over `zoo/families/resnet.cnn` (depths around [3, 4, 6, 3],
Wide-ResNet widths) and for a typical small member (`zoo/spaces/tiny.cnn`), it times each stage
cnnc adds to a trial — sample (TPE suggestions), elaborate, check (lint), analyse (summary and
hash), lower — then the whole bookkeeping of one trial through a search worker on SQLite with a
no-op evaluator, and one epoch of training the small member on digits. Medians of `--repeat` runs.

Lowering is a search's: a `StepModule` (`compiler/lower/steps.py`: the modules of `cnnc.load`, run
node by node, no generated code). It is shown in two parts: torch's own `nn.Module` constructors
(the modules a hand-written model builds too, storage allocated and left for the initialisation),
and cnnc's part, the steps; a GraphModule's torch.fx graph and compiled `forward` are shown beside
it for comparison. Weight initialisation is the trial's (a hand-written model pays it alike) and is
not counted.

    .venv/bin/python bench/search.py [--repeat 7] [--threads 1]
    .venv/bin/python bench/search.py --one-shot 5

`--one-shot N` instead compares the two searches of `zoo/spaces/tiny.cnn` on digits that the
one-shot evaluator must beat: 24 members scored by a supernet (`--evaluator supernet --trials 24`)
against 6 members trained for 2 epochs each (`--epochs 2 --trials 6`), N runs of each, alternating;
cold (a `cnnc search` process each) and warm (`cnnc.search` in this process, imports done). It gives
medians of wall time and of CPU time (the process's own, with its children's for a cold run: on a
machine shared with other work, CPU time moves less than wall time), and the ratio one-shot / trained.

Goals: cnnc's own part of a trial (elaborate, check, analyse, fx graph and code) under 10 ms for the
ResNet-50-sized member (issue 12), and the whole overhead a small share of a trial.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import torch

from cnnc.compiler.analysis.summary import summarize
from cnnc.compiler.lower.fx import build_fx_graph, build_modules, class_name, graph_module
from cnnc.compiler.lower.steps import StepModule, to_step_module
from cnnc.search import driver
from cnnc.search.evaluators.train import train_and_evaluate
from cnnc.search.space import graph_hash, load_space, replay
from cnnc.search.worker import Worker
from cnnc.training.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]
RESNET_SPACE = """\
import "families/resnet.cnn"

network resnet50_space = ResNet([choice(2, 3, 4), choice(3, 4, 5), choice(5, 6, 7), choice(2, 3, 4)],
                                base_width = choice(64, 96, 128))
"""
TINY = ROOT / "zoo" / "spaces" / "tiny.cnn"
MOBILE = ROOT / "zoo" / "spaces" / "mobilenet_space.cnn"
TINY_MEMBER = {"width": "16", "depth": 2, "kernel0": 3, "kernel1": 3, "pool": "MaxPool(2)"}


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def warm_study(prior: int = 20):
    """An in-memory TPE study holding `prior` finished trials, as a search midway has."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    return study, prior


def stages(space, picks: dict, repeat: int) -> dict[str, float]:
    """Milliseconds per stage for the member `picks` (`{}`: the first option everywhere)."""
    study, prior = warm_study()
    fixed = optuna.trial.FixedTrial(picks) if picks else None
    member = space.member(driver.optuna_decider(fixed) if fixed else replay(()))
    graph = member.graph
    for _ in range(prior):  # give TPE a history of members to model
        trial = study.ask()
        space.member(driver.optuna_decider(trial))
        study.tell(trial, 0.5)
    elaborate = median_ms(
        lambda: space.member(driver.optuna_decider(fixed) if fixed else replay(())), repeat
    )

    def sample_and_elaborate():
        trial = study.ask()
        space.member(driver.optuna_decider(trial))
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)

    sampled = median_ms(sample_and_elaborate, repeat)
    return {
        "sample (TPE, 20 prior trials)": max(0.0, sampled - elaborate),
        "elaborate": elaborate,
        "check (lint)": median_ms(graph.lint, repeat),
        "analyse (summary + hash)": median_ms(
            lambda: (summarize(graph), graph_hash(graph)), repeat
        ),
        **lowering(graph, repeat),
    }, graph


TORCH_STAGE = "torch's module constructors"


FX_STAGE = "(a GraphModule's fx code instead)"


def lowering(graph, repeat: int) -> dict[str, float]:
    """The parts of `to_step_module` before initialisation: torch's constructors (`build_modules`)
    and cnnc's steps (`StepModule`); and, for comparison, what `to_graph_module` spends instead of
    the steps (the fx graph and its generated, compiled `forward`)."""
    constructors = median_ms(lambda: build_modules(graph), repeat)
    roots = iter([build_modules(graph) for _ in range(repeat)])
    steps = median_ms(lambda: StepModule(next(roots), graph), repeat)
    roots = iter([build_modules(graph) for _ in range(repeat)])
    code = median_ms(
        lambda: graph_module(next(roots), build_fx_graph(graph), class_name(graph.network)), repeat
    )
    return {"lower: steps": steps, TORCH_STAGE: constructors, FX_STAGE: code}


def bookkeeping_ms(settings_file: str, text_space, repeat: int) -> float:
    """One whole trial through a worker on SQLite with an evaluator that does nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = driver.Settings(file=settings_file, trials=10**6, out=Path(tmp), pruner="none")
        study = driver.open_study(settings, text_space)

        class Quiet:
            def started(self, rows, notes): ...
            def trial_started(self, number): ...
            def epoch(self, number, epoch, accuracy): ...
            def finished(self, row): ...

        objective = driver.Objective(
            settings, text_space, lambda g, r: driver.Outcome(0.5, 0.0), Quiet(), None, study
        )
        worker = Worker(study, settings, objective, lambda text: None)
        # a slot claimed under the study lock, the trial run and recorded: what each worker pays
        return median_ms(lambda: worker.run(worker.claim_slot()), repeat)


def epoch_seconds(data, graph, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        model = to_step_module(graph, seed=0)
        times.append(train_and_evaluate(model, data, epochs=1, device="cpu").seconds)
    return statistics.median(times)


SEARCHES = {  # the one-shot search and the trained one it must beat (module docstring)
    "trained: 6 members, 2 epochs": ["--epochs", "2", "--trials", "6"],
    "one-shot: 24 members, supernet": ["--evaluator", "supernet", "--trials", "24"],
}


def cold_seconds(options: list[str], out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one `cnnc search` process, from nothing."""
    import os
    import shutil
    import subprocess
    import sys

    shutil.rmtree(out, ignore_errors=True)
    argv = [sys.executable, "-m", "cnnc.cli", "search", str(TINY), "--data", "digits", *options]
    before, start = os.times(), time.perf_counter()
    subprocess.run([*argv, "--out", str(out)], check=True, capture_output=True)
    after = os.times()
    cpu = (
        after.children_user - before.children_user + after.children_system - before.children_system
    )
    return time.perf_counter() - start, cpu


def warm_seconds(options: list[str], out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of the same search run by `cnnc.search` in this process."""
    import contextlib
    import io
    import shutil

    from cnnc.runs import search

    shutil.rmtree(out, ignore_errors=True)
    pairs = dict(zip(options[::2], options[1::2]))
    keywords = {k.removeprefix("--"): v for k, v in pairs.items()}
    keywords = {k: int(v) if v.isdigit() else v for k, v in keywords.items()}
    start, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        search(TINY, data="digits", out=out, **keywords)
    return time.perf_counter() - start, time.process_time() - cpu


def one_shot(repeat: int) -> None:
    """The table of the module docstring's `--one-shot`."""
    with tempfile.TemporaryDirectory() as tmp:
        warm_seconds(SEARCHES["trained: 6 members, 2 epochs"], Path(tmp) / "warm-up")
        figures = {(mode, label): [] for mode in ("cold", "warm") for label in SEARCHES}
        for _ in range(repeat):
            for label, options in SEARCHES.items():
                out = Path(tmp) / label.split(":")[0]
                figures["cold", label].append(cold_seconds(options, out))
                figures["warm", label].append(warm_seconds(options, out))
    print(f"one-shot vs trained search of tiny.cnn on digits, median of {repeat} runs each")
    print(f"  {'':<10}{'search':<34}{'wall s':>8}{'CPU s':>8}")
    for mode in ("cold", "warm"):
        medians = {}
        for label in SEARCHES:
            runs = figures[mode, label]
            medians[label] = [statistics.median(r[k] for r in runs) for k in (0, 1)]
            wall, cpu = medians[label]
            print(f"  {mode:<10}{label:<34}{wall:>8.2f}{cpu:>8.2f}")
        trained, shot = medians.values()
        ratio = f"{shot[0] / trained[0]:.2f}", f"{shot[1] / trained[1]:.2f}"
        print(f"  {mode:<10}{'ratio one-shot / trained':<34}{ratio[0]:>8}{ratio[1]:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one-shot", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.one_shot:
        one_shot(args.one_shot)
        return
    torch.set_num_threads(args.threads)
    big = load_space(ROOT / "bench" / "resnet50_space.cnn", text=RESNET_SPACE)
    tiny = load_space(TINY)
    mobile = load_space(MOBILE)
    resnet_picks = {
        "network@3:34": 3,
        "network@3:51": 4,
        "network@3:68": 6,
        "network@3:85": 3,
        "network@4:46": 64,
    }  # ResNet-50's depths and width
    columns = {}
    for label, space, picks, file in (
        ("ResNet-50-sized", big, resnet_picks, "resnet50_space.cnn"),
        ("tiny", tiny, TINY_MEMBER, "tiny.cnn"),
        ("mobilenet_space", mobile, {}, "mobilenet_space.cnn"),
    ):
        times, graph = stages(space, picks, args.repeat)
        whole = bookkeeping_ms(file, space, args.repeat)
        times["study storage (SQLite)"] = max(
            0.0,
            whole
            - times["sample (TPE, 20 prior trials)"]
            - times["elaborate"]
            - times["analyse (summary + hash)"],
        )
        columns[label] = (times, graph)
    data = load_dataset("digits")
    epochs = {
        label: 1e3 * epoch_seconds(data, columns[label][1], 3)
        for label in ("tiny", "mobilenet_space")
    }
    report(columns, epochs, args)


def report(columns, epochs, args) -> None:
    print(
        f"cnnc's overhead per search trial, median of {args.repeat} runs (torch threads: {args.threads})"
    )
    for label, (_, graph) in columns.items():
        s = summarize(graph)
        print(
            f"  {label + ' member:':<25}{s.params / 1e6:7.3f} M params {s.macs / 1e6:9.2f} M MACs  {len(graph)} nodes"
        )
    print()
    print(f"  {'stage':<32}" + "".join(f"{label:>18}" for label in columns))
    for name in next(iter(columns.values()))[0]:
        print(
            f"  {name:<32}" + "".join(f"{times[name]:>15.1f} ms" for times, _ in columns.values())
        )
    cnnc = {
        label: sum(
            v
            for k, v in times.items()
            if not k.startswith(("sample", "study", TORCH_STAGE, FX_STAGE))
        )
        for label, (times, _) in columns.items()
    }
    total = {
        label: sum(v for k, v in times.items() if k != FX_STAGE)
        for label, (times, _) in columns.items()
    }
    print(f"  {'cnnc (elaborate … steps)':<32}" + "".join(f"{cnnc[k]:>15.1f} ms" for k in columns))
    print(
        f"  {'all (with Optuna and SQLite)':<32}"
        + "".join(f"{total[k]:>15.1f} ms" for k in columns)
    )
    print()
    for label, epoch in epochs.items():
        trial = 2 * epoch + total[label]
        print(
            f"one epoch on digits, {label} member: {epoch:.0f} ms; a 2-epoch trial ≈ {trial:.0f} ms, of which "
            f"cnnc {100 * cnnc[label] / trial:.1f} % and all overhead {100 * total[label] / trial:.1f} %"
        )
    big = cnnc["ResNet-50-sized"]
    print(
        f"goal < 10 ms of cnnc's own work for the ResNet-50-sized member: {big:.1f} ms "
        f"({'met' if big < 10 else 'not met'}); with torch's constructors, Optuna and SQLite "
        f"{total['ResNet-50-sized']:.1f} ms"
    )


if __name__ == "__main__":
    main()
