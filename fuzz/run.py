"""`make fuzz`: mutate the zoo and the UI cases, generate programs, and drive each input through
check → summary → load → forward (and now and then the standalone .py) for a time budget.

    python fuzz/run.py --seconds 600 --workers 2 --seed 1 --out runs/fuzz

Every outcome is classified. Expected endings: `rejected` (a located diagnostic, exit 1), `accepted`
(checked and summarised; too large to run here), `ran` (the forward gave the predicted shape).
Failures of cnnc, each saved to `OUT/bugs/` with its input: `bug:internal` (exit 70 or an escaping
exception), `bug:summary`, `bug:run` (check accepted what does not run), `bug:source` (the .py artefact
differs), `bug:diagnostics` (raw control characters, a file's contents, huge lines), `bug:escape` (a
file opened outside the sandbox, a process or socket, a payload that ran), `bug:hang` (over
`--timeout` seconds), `bug:memory` (the worker grew more than `--memory` MB while one input ran).
Exit status 1 if any. A share of the inputs (`--studies`) are study and run folders instead (`fuzz/study_mutants.py`).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import data_mutants
from mutate import generate, mutate


def corpus() -> list[str]:
    files = sorted((ROOT / "zoo").rglob("*.cnn")) + sorted((ROOT / "tests" / "ui").glob("*.cnn"))
    return [f.read_text(encoding="utf-8") for f in files]


def op_names() -> list[str]:
    from cnnc.compiler.ops import dsl_names

    return sorted(dsl_names())


class Worker:
    """One worker process; restarted after a hang or a memory blow-up."""

    def __init__(self, sandbox: Path):
        self.sandbox = sandbox
        self.start()

    def start(self) -> None:
        env = dict(
            os.environ,
            TMPDIR=str(self.sandbox / "tmp"),
            XDG_CACHE_HOME=str(self.sandbox / "cache"),
            OMP_NUM_THREADS="1",
        )
        env.pop("CNNC_DEBUG", None)
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "worker.py"), str(self.sandbox)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=self.sandbox,
            env=env,
            text=True,
            encoding="utf-8",
            errors="surrogateescape",
        )
        assert json.loads(self.proc.stdout.readline()).get("ready"), "the fuzz worker did not start"
        self.baseline = rss_mb(self.proc.pid)

    def ask(self, request: dict, timeout: float, memory_mb: float) -> tuple[str, str]:
        """Send one input; wait for its answer while watching time and memory: what the worker
        adds while this input runs. A worker that has kept more than `HELD` × `memory_mb` from the
        inputs before (imports, the allocator's caches) starts afresh first."""
        if rss_mb(self.proc.pid) - self.baseline > HELD * memory_mb:
            self.restart()
        before = rss_mb(self.proc.pid)
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, True)
        deadline = time.monotonic() + timeout
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                if sel.select(timeout=0.05):
                    line = self.proc.stdout.readline()
                    if not line:
                        self.restart()
                        return "bug:internal", "the worker died (a crash in cnnc or torch)"
                    answer = json.loads(line)
                    return answer["outcome"], answer["detail"]
                if time.monotonic() > deadline:
                    self.restart()
                    return "bug:hang", f"no answer within {timeout:.0f} s"
                grown = rss_mb(self.proc.pid) - before
                if grown > memory_mb:
                    self.restart()
                    return "bug:memory", f"the worker grew by {grown:.0f} MB"

    def restart(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.start()

    def close(self) -> None:
        """Let the worker exit; one that does not within 10 s is killed (the run's report is kept)."""
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


HELD = 2  # × --memory: what a worker may keep from earlier inputs before it is restarted


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def make_sandbox(parent: Path, k: int) -> Path:
    """A copy of the zoo tree (so mutants' imports resolve) with room for the case file."""
    box = parent / f"worker{k}"
    shutil.copytree(ROOT / "zoo", box, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (box / "tmp").mkdir()
    (box / "cache").mkdir()
    return box


def inputs(rng: random.Random, texts: list[str], ops: list[str], data_share: float = 0.0):
    """An endless stream of (kind, text): three mutants for each generated program, and a share of
    data sets and checkpoints (`data_mutants`) trained on."""
    while True:
        if data_share and rng.random() < data_share:
            yield "data", data_mutants.request(rng)
        elif rng.random() < 0.25:
            yield "generated", generate(rng, ops)
        else:
            yield "mutant", mutate(rng, rng.choice(texts), texts, ops)


def fuzz(
    seconds: float,
    workers: int,
    seed: int,
    out: Path,
    timeout: float,
    memory_mb: float,
    limit: int | None = None,
    deep_every: int = 20,
    data_share: float = 0.0,
    features_every: int = 0,
    studies: float = 0.0,
) -> collections.Counter:
    """Run for `seconds` (or `limit` inputs); returns outcome counts; bugs are saved under `out`.
    A `data_share` of the inputs are data sets and checkpoints (`data_mutants.py`); every
    `features_every`-th input (0: none) is a features-file mutant (`features_mutants.py`); a
    `studies` share are study or run folders (`study_mutants.py`)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(seed)
    texts, ops = corpus(), op_names()
    stream = inputs(rng, texts, ops, data_share)
    counts: collections.Counter = collections.Counter()
    details: collections.Counter = collections.Counter()
    (out / "bugs").mkdir(parents=True, exist_ok=True)
    stop = time.monotonic() + seconds
    with tempfile.TemporaryDirectory(prefix="cnnc-fuzz-") as tmp:
        pool = [Worker(make_sandbox(Path(tmp), k)) for k in range(workers)]
        ids = iter(range(10**12))
        lock = threading.Lock()

        def next_request():
            with lock:  # one stream feeds every worker: the same seed gives the same inputs
                i = next(ids)
                if features_every and i % features_every == features_every - 1:
                    return features_request(rng, i)
                if rng.random() < studies:  # a study or run folder (fuzz/study_mutants.py)
                    seed = rng.randrange(2**32)
                    return {
                        "id": i,
                        "kind": "study",
                        "seed": seed,
                        "text": f"# study_mutants seed {seed}\n",
                    }
                kind, text = next(stream)
            return {
                "id": i,
                "name": "case.cnn",
                "text": text,
                "deep": i % deep_every == 0,
                "kind": kind,
            }

        def drive(worker: Worker):
            while time.monotonic() < stop and (limit is None or counts.total() < limit):
                request = next_request()
                # a study case trains or plots (and the first makes the seed folders): more time
                wait = max(timeout, 60.0) if request["kind"] == "study" else timeout
                outcome, detail = worker.ask(request, wait, memory_mb)
                counts[outcome] += 1
                details[
                    (outcome, detail if outcome.startswith("bug") else detail.split(":")[0])
                ] += 1
                if outcome.startswith("bug"):
                    save(out, request, outcome, detail)

        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(drive, pool))
        for w in pool:
            w.close()
    report(counts, details, out)
    return counts


def features_request(rng: random.Random, i: int) -> dict:
    import base64

    from features_mutants import mutate as mutate_features

    name, data = mutate_features(rng)
    return {
        "id": i,
        "kind": "features",
        "mutator": name,
        "data": base64.b64encode(data).decode("ascii"),
    }


def save(out: Path, request: dict, outcome: str, detail: str) -> None:
    stem = out / "bugs" / f"{request['id']:07d}-{outcome.split(':')[1]}"
    if request.get("kind") == "features":
        import base64

        stem.with_suffix(".npz").write_bytes(base64.b64decode(request["data"]))
        stem.with_suffix(".txt").write_text(
            f"{outcome} ({request['mutator']}): {detail}\n", encoding="utf-8"
        )
        return
    stem.with_suffix(".json" if request["kind"] == "data" else ".cnn").write_text(
        request["text"], encoding="utf-8", errors="surrogatepass"
    )
    stem.with_suffix(".txt").write_text(f"{outcome}: {detail}\n", encoding="utf-8")


def report(counts, details, out: Path) -> None:
    total = counts.total()
    lines = [f"fuzz: {total:,} inputs"]
    for outcome, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {outcome:<18} {n:>9,}  {100 * n / max(total, 1):5.1f} %")
    top = [(k, n) for k, n in details.most_common() if k[0] == "rejected"][:12]
    lines.append("most frequent diagnostics: " + ", ".join(f"{k[1]} {n:,}" for k, n in top))
    bugs = [(k, n) for k, n in details.most_common() if k[0].startswith("bug")]
    for (outcome, detail), n in bugs[:20]:
        lines.append(f"  {n:>6,} × {outcome}: {detail}")
    text = "\n".join(lines)
    (out / "summary.txt").write_text(text + "\n", encoding="utf-8")
    print(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--limit", type=int, default=None, help="stop after this many inputs")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds one input may take")
    p.add_argument("--memory", type=float, default=500.0, help="MB one input may add to a worker")
    p.add_argument("--out", type=Path, default=Path("runs/fuzz"))
    p.add_argument(
        "--data-share",
        type=float,
        default=0.25,
        help="share of inputs that are data sets and checkpoints trained on (fuzz/data_mutants.py)",
    )
    p.add_argument(
        "--features-every",
        type=int,
        default=10,
        metavar="N",
        help="every N-th input is a mutant features file driven through `cnnc neighbors` (0: none)",
    )
    p.add_argument(
        "--studies",
        type=float,
        default=0.05,
        help="the share of inputs that are study or run folders (fuzz/study_mutants.py)",
    )
    args = p.parse_args(argv)
    counts = fuzz(
        args.seconds,
        args.workers,
        args.seed,
        args.out,
        args.timeout,
        args.memory,
        args.limit,
        data_share=args.data_share,
        features_every=args.features_every,
        studies=args.studies,
    )
    return 1 if any(k.startswith("bug") for k in counts) else 0


if __name__ == "__main__":
    sys.exit(main())
