"""Benchmark (not a test): cnnc's static analysis against the tools that measure a built model.

1. Whole processes, as a user types them: `cnnc summary zoo/resnet152.cnn` against torchinfo's
   `summary` of torchvision's resnet152 (goal: ≥ 50× faster), with `cnnc check`, a bare Python and
   `import torch` as floors. A file seen before comes from the AST cache (`dsl/astcache.py`), as a
   user's second look at a model does; `CNNC_CACHE=off` shows a file's first parse (lark).
2. The same MAC count in one process: cnnc (parse, elaborate, analyse) against torch's
   `FlopCounterMode` over a forward pass, and fvcore's `FlopCountAnalysis` where it is installed.
3. `cnnc check` of every zoo model in one warm process: the work after start-up (goal: < 150 ms),
   for a file seen before (its AST from the cache) and for its first parse (`CNNC_CACHE=off`).

    python bench/analysis.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

from timing import (
    PYTHON,
    ROOT,
    interleaved,
    interleaved_runs,
    machine,
    median,
    ms,
    process,
    seconds,
    table,
)

RESNET152 = "zoo/resnet152.cnn"
CNNC = "cnnc summary resnet152"
TORCHINFO_ROW = "torchinfo summary(resnet152)"
TORCHINFO = (
    "import torchvision; from torchinfo import summary; "
    "print(summary(torchvision.models.resnet152(), (1, 3, 224, 224), verbose=0))"
)


# what a `cnnc summary` process imports before it reads a file: the floor of its own start-up
IMPORTS = (
    "import cnnc.cli, cnnc.api, cnnc.commands.summary, cnnc.compiler.analysis.summary, "
    "cnnc.compiler.elaborate, cnnc.dsl.parse"
)


def cnnc_command() -> list[str]:
    script = Path(PYTHON).with_name("cnnc")
    return [str(script)] if script.exists() else [PYTHON, "-m", "cnnc.cli"]


def whole_processes(rounds: int) -> None:
    cnnc = cnnc_command()
    contenders = {
        CNNC: process([*cnnc, "summary", RESNET152]),
        "cnnc check resnet152": process([*cnnc, "check", RESNET152]),
        "cnnc summary, first parse": process([*cnnc, "summary", RESNET152], CNNC_CACHE="off"),
        TORCHINFO_ROW: process([PYTHON, "-c", TORCHINFO]),
        "python -c pass": process([PYTHON, "-c", "pass"]),
        "python -c 'import <summary's modules>'": process([PYTHON, "-c", IMPORTS]),
        "python -c 'import torch'": process([PYTHON, "-c", "import torch"]),
    }
    for fn in contenders.values():
        fn()  # warm-up: bytecode caches, lark's grammar and the AST caches, the OS's file cache
    # Two statistics of the same runs. A round's least of a few back-to-back runs (timeit's rule)
    # measures the process; the median of single runs adds what the machine's other load costs,
    # which for a 0.1 s process on a shared machine is ±40 % from run to run, for a 5 s one ±10 %.
    repeat = {name: 2 if "torch" in name else 5 for name in contenders}
    runs = interleaved_runs(contenders, rounds, repeat)
    least = {name: median([min(r) for r in per_round]) for name, per_round in runs.items()}
    every = {name: median([t for r in per_round for t in r]) for name, per_round in runs.items()}
    rows = [
        [
            name,
            rounds * repeat[name],
            ms(least[name]),
            ms(every[name]),
            f"{least[name] / least[CNNC]:.1f}×",
            f"{every[name] / every[CNNC]:.1f}×",
        ]
        for name in contenders
    ]
    print(
        f"\n## Whole processes (interleaved, {rounds} rounds; `least`: the median over the rounds "
        "of each round's least run; `median`: the median of all runs)\n"
    )
    print(table(["process", "runs", "least", "median", "÷ cnnc", "÷ cnnc (median)"], rows))
    print()
    for name, times in (("least", least), ("median", every)):
        speedup = times[TORCHINFO_ROW] / times[CNNC]
        print(
            f"cnnc summary is {speedup:.1f}× faster than torchinfo by the {name} "
            f"(goal ≥ 50×: {'met' if speedup >= 50 else 'not met'})"
        )


def mac_counters(rounds: int) -> None:
    import torch
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    import cnnc.api
    from cnnc.compiler.analysis.summary import summarize
    from cnnc.dsl import parse

    torch.set_num_threads(2)
    model = torchvision.models.resnet152().eval()
    x = torch.randn(1, 3, 224, 224)  # [1, 3, 224, 224]
    found: dict[str, int] = {}

    def ours():
        parse._PARSED.clear()  # parse each time, as a new process would
        found["cnnc (parse, elaborate, analyse)"] = summarize(cnnc.api.graph(ROOT / RESNET152)).macs

    def flop_counter():
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
        found["torch FlopCounterMode (forward)"] = counter.get_total_flops() // 2

    contenders = {
        "cnnc (parse, elaborate, analyse)": ours,
        "torch FlopCounterMode (forward)": flop_counter,
    }
    fvcore = _fvcore_counter(model, x, found)
    if fvcore is not None:
        contenders["fvcore FlopCountAnalysis (trace)"] = fvcore
    for fn in contenders.values():
        fn()
    times = {name: median(t) for name, t in interleaved(contenders, rounds).items()}
    base = times["cnnc (parse, elaborate, analyse)"]
    rows = [[name, f"{found[name]:,}", ms(t), f"{t / base:.1f}×"] for name, t in times.items()]
    print(f"\n## MACs of ResNet-152 in one process (median of {rounds}; the model already built)\n")
    print(table(["counter", "MACs", "time", "÷ cnnc"], rows))
    if fvcore is None:
        print("(fvcore is not installed: `pip install fvcore` adds its row)")


def _fvcore_counter(model, x, found):
    try:
        from fvcore.nn import FlopCountAnalysis
    except ImportError:
        return None

    def count():
        analysis = FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
        found["fvcore FlopCountAnalysis (trace)"] = int(
            analysis.total()
        )  # fvcore's "flop" is a MAC

    return count


def zoo_checks(rounds: int) -> None:
    import os

    from cnnc.cli import main

    files = sorted((ROOT / "zoo").glob("*.cnn"))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for f in files:  # imports, lark's grammar and every file's AST cache entry, once
            _check_seconds(main, f)
        cached = {f.stem: median([_check_seconds(main, f) for _ in range(rounds)]) for f in files}
        os.environ["CNNC_CACHE"] = "off"
        try:
            first = {
                f.stem: median([_check_seconds(main, f) for _ in range(rounds)]) for f in files
            }
        finally:
            del os.environ["CNNC_CACHE"]
    slowest = sorted(files, key=lambda f: -max(cached[f.stem], first[f.stem]))[:5]
    print(
        f"\n## cnnc check in a warm process: {len(files)} zoo files, median of {rounds} "
        "(goal < 150 ms each)\n"
    )
    print(
        "seen before: the file's AST from cnnc's cache; first parse: `CNNC_CACHE=off`, lark "
        "already imported\n"
    )
    rows = [[f.stem, ms(cached[f.stem]), ms(first[f.stem])] for f in slowest]
    print(table(["file", "seen before", "first parse"], rows))
    print(
        f"\nslowest {ms(max(cached.values()))} seen before, {ms(max(first.values()))} first "
        f"parse; median {ms(median(list(cached.values())))} and {ms(median(list(first.values())))}"
    )


def _check_seconds(main, path: Path) -> float:
    from cnnc.dsl import parse

    parse._PARSED.clear()  # the file and its family read again, as a new process would
    return seconds(lambda: main(["check", str(path)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of each contender"
    )
    args = parser.parse_args()
    print(f"# Analysis benchmark · {machine()}")
    whole_processes(args.rounds)
    mac_counters(args.rounds)
    zoo_checks(args.rounds)


if __name__ == "__main__":
    main()
