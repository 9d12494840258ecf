"""Shared measuring rules of the side-by-side benchmarks (not a benchmark itself).

- Interleaved: each round runs every contender once (or the least of a few back-to-back runs), the
  order rotating, so a burst of load from elsewhere hits all of them alike; the figure of each is its
  median over rounds.
- Whole processes run as a user's would: with bytecode caches (kept under a temporary prefix, so the
  working tree stays clean) and one untimed warm-up each.
- Every table is printed with the machine's load average, since other work on the cores skews it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(Path(sys.executable))


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(
    contenders: dict, rounds: int, repeat: int | dict[str, int] = 1
) -> dict[str, list[float]]:
    """{name: fn} → {name: seconds per round}; round i starts at contender i (mod count). With
    `repeat` > 1 a round's figure is the least of `repeat` back-to-back runs (timeit's rule: the
    slower ones measure the machine's other load, not the code); a dict gives each contender its
    own count (1 where it names none)."""
    runs = interleaved_runs(contenders, rounds, repeat)
    return {name: [min(r) for r in per_round] for name, per_round in runs.items()}


def interleaved_runs(
    contenders: dict, rounds: int, repeat: int | dict[str, int] = 1
) -> dict[str, list[list[float]]]:
    """As `interleaved`, every run kept: {name: [[seconds of each run] of each round]}."""
    names = list(contenders)
    times: dict[str, list[list[float]]] = {name: [] for name in names}
    counts = repeat if isinstance(repeat, dict) else dict.fromkeys(names, repeat)
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            times[name].append([seconds(contenders[name]) for _ in range(counts.get(name, 1))])
    return times


def median(values) -> float:
    return statistics.median(values)


def process_env() -> dict[str, str]:
    """The environment of a user's shell: bytecode caches on (under a temp prefix), no colour."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "cnnc-bench-pycache")
    env["NO_COLOR"] = "1"
    return env


def run_process(argv: list[str], **env: str) -> None:
    """Run a command to completion (`env`: variables added to `process_env()`); a failure stops
    the benchmark with its stderr."""
    done = subprocess.run(
        argv, env={**process_env(), **env}, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")


def process(argv: list[str], **env: str):
    """A contender for `interleaved` that runs `argv` as a whole process."""
    return lambda: run_process(argv, **env)


def machine() -> str:
    """`2 cores, AMD EPYC …, load 1.23 0.98 0.80` for the table's header."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, {model}, load average {load}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """Columns right-aligned but the first."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row):
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths))
        ]
        return "  ".join(cells)

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def ms(s: float) -> str:
    return f"{s * 1e3:,.1f} ms"


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.3f}"
