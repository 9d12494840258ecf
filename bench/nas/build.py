"""Build the tabular benchmark: train every member of `cell.cnn` once on digits, record the results.

    .venv/bin/python bench/nas/build.py            # all 729 members: ~12 min of one core's time
    .venv/bin/python bench/nas/build.py --limit 5 --out /tmp/few.json   # a quick look

Every member of the space (walked with the project's own enumeration, `search.space.walk`) is
trained in this process with the `train` evaluator of `cnnc search` (`search/evaluate.py`): weights
and shuffling seeded by `--seed`, `--epochs` epochs of SGD at cnnc search's defaults (batch 64, lr
0.05, cosine schedule), on one CPU thread, and scored on digits' fixed validation split (20 %,
stratified, split by seed 0: 1,438 training and 359 validation images). Each member is keyed by its
cell (`table.py`: NAS-Bench-201's arch string, the canonical form of a cell of this space); the
build stops before training anything if two members share a key or a graph hash, so each
distinct architecture is trained once. The seconds recorded are the CPU time of the training
(`train_one`): the last build took 701 CPU seconds, and 29 minutes of wall time on a shared machine
under a load of 4 to 5.

The results go to `table.partial.json` after each member, so a stopped build loses at most the
member it was training: run the same command again and it goes on where it stopped (with the same
options; other options start afresh). At the end the table is written to `--out` (default
`bench/nas/table.json`, versioned with the repository) and the partial file is removed.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import time
from pathlib import Path

import table
import torch

from cnnc.compiler.analysis.summary import summarize
from cnnc.dsl import safefs
from cnnc.search import driver
from cnnc.search.evaluate import train_evaluator
from cnnc.training.data import load_dataset


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    torch.set_num_threads(1)
    out = Path(opts.out)
    partial = out.with_name(out.stem + ".partial.json")
    meta = settings_meta(opts)
    members, wall = resume(partial, meta)
    todo = table.space_members()[: opts.limit]
    data = load_dataset("digits", None, 0)
    settings = driver.Settings(
        file=str(table.SPACE), epochs=opts.epochs, seed=opts.seed, device="cpu"
    )
    evaluate = train_evaluator(settings, data)
    if todo:  # untimed: the first run pays torch's one-time start-up, no member's own cost
        evaluate(todo[0][1], lambda epoch, accuracy: None)
    start = time.perf_counter()
    for n, (key, graph) in enumerate(todo, 1):
        if key in members:
            continue
        members[key] = train_one(graph, evaluate)
        spent = wall + time.perf_counter() - start
        safefs.write_text(partial, table.dump({**meta, "wall_seconds": round(spent, 1)}, members))
        print(f"{n}/{len(todo)} {key} {members[key].accuracy:.4f} {members[key].seconds:.2f} s")
    spent = wall + time.perf_counter() - start
    final = {**meta, "wall_seconds": round(spent, 1), **counts(todo, members)}
    safefs.write_text(out, table.dump(final, members))
    partial.unlink(missing_ok=True)
    print(f"wrote {out}: {len(members)} members in {spent:.0f} s")
    return 0


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument(
        "--seed", type=int, default=0, help="weights and shuffling (the split is seed 0)"
    )
    p.add_argument("--limit", type=int, default=None, help="train only the first N members")
    p.add_argument("--out", default=str(table.TABLE))
    return p.parse_args(argv)


def settings_meta(opts) -> dict:
    """What the table was built from: a resume goes on only under the same settings."""
    return {
        "space": "bench/nas/cell.cnn",
        "space_sha256": hashlib.sha256(table.SPACE.read_bytes()).hexdigest(),
        "data": "digits (val 20 %, split seed 0)",
        "epochs": opts.epochs,
        "seed": opts.seed,
        "batch_size": 64,
        "lr": 0.05,
        "optimizer": "sgd",
        "threads": 1,
        "seconds": "CPU time of training and evaluating the member, one thread",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "command": "bench/nas/build.py" + (f" --epochs {opts.epochs}" if opts.epochs != 3 else ""),
    }


def resume(partial: Path, meta: dict) -> tuple[dict, float]:
    """The members a stopped build with the same settings trained, and the time it spent."""
    if not partial.is_file():
        return {}, 0.0
    done_meta, members = table.read(partial)
    if {k: done_meta.get(k) for k in meta} != meta:
        print(f"{partial} was built with other settings: starting afresh", file=sys.stderr)
        return {}, 0.0
    print(f"going on from {partial}: {len(members)} members done")
    return members, float(done_meta.get("wall_seconds", 0.0))


def train_one(graph, evaluate) -> table.Entry:
    """Train one member; its seconds are the CPU time of the training (one thread), which other
    processes' load on a shared machine does not stretch as it stretches wall time."""
    s = summarize(graph, fields=False)
    cpu = time.process_time()
    outcome = evaluate(graph, lambda epoch, accuracy: None)
    cpu = time.process_time() - cpu
    if outcome.failed:
        print(f"  failed: {outcome.failed} (recorded as accuracy 0)", file=sys.stderr)
    accuracy = 0.0 if outcome.failed else outcome.score
    return table.Entry(accuracy, s.params, s.macs, cpu)


def counts(todo: list, members: dict) -> dict:
    """`distinct`: graphs (keys); `functions`: classes of members that compute the same function
    (`equivalence.py`), each trained as often as it has members."""
    import equivalence

    keys = [k for k, _ in todo]
    functions = len(equivalence.classes(keys))
    return {
        "members": len(todo),
        "distinct": len(set(keys)),
        "functions": functions,
        "trained": len(members),
    }


if __name__ == "__main__":
    sys.exit(main())
