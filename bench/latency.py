"""Benchmark (not a test): how well the latency objective's sum of layers predicts a member's
measured end-to-end latency (`compiler/lower/latency.py`, FBNet's lookup table).

For seeded random members of each space: the predicted latency (the sum of its layers, each timed
once) against the whole lowered network timed end to end, both at batch 1 on one CPU thread (as a
search times them). Printed per space: the mean and largest absolute % error, and Spearman's rank
correlation (a search ranks members; the ranks matter more than the milliseconds). The table lives
in a temporary cache folder, so every layer is timed here.

Read it with the load average it prints: on cores shared with other work, an end-to-end run of
several milliseconds is preempted where a layer's run of a few microseconds mostly is not (the
median drops the runs that were), so the sum then falls short of the measurement, the more the
busier the cores, while the ranks hold. On a 2-core machine at load 7–8: tiny 30 %, the MobileNet
and ResNet spaces (32×32) 75–85 % mean error, Spearman 0.85–0.90; there a ResNet member's sum of
1.45 ms met 5.8 ms of wall time but 2.4 ms of CPU time (`time.process_time`), the rest of the gap
being the forward's own work between layers.

    python bench/latency.py [--members 12] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile

from timing import ROOT, machine, table

SPACES = {  # space → the data's input shape
    "tiny": (ROOT / "zoo" / "spaces" / "tiny.cnn", (1, 8, 8)),
    "mobilenet": (ROOT / "zoo" / "spaces" / "mobilenet_space.cnn", (3, 32, 32)),
    "resnet": (ROOT / "zoo" / "spaces" / "resnet_space.cnn", (3, 32, 32)),
}


def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    for rank, i in enumerate(order):
        out[i] = float(rank)
    return out


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = ranks(a), ranks(b)
    return statistics.correlation(ra, rb) if len(a) > 2 else float("nan")


def members(path, shape, count: int, seed: int) -> list:
    from cnnc.search import driver
    from cnnc.search.space import uniform

    space = driver.space_for(driver.Settings(file=str(path)), shape, 10)
    rng = random.Random(seed)
    found = []
    for _ in range(count * 20):
        member = space.member(uniform(rng))
        if member.ok:
            found.append(member.graph)
        if len(found) == count:
            break
    return found


def measure(graphs: list) -> tuple[list[float], list[float]]:
    from cnnc.compiler.lower.latency import LatencyTable, end_to_end

    lookup = LatencyTable("cpu")
    predicted = [lookup.predict(g) for g in graphs]
    measured = [end_to_end(g, "cpu") for g in graphs]
    return predicted, measured


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--members", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="cnnc-latency-bench-")
    import torch

    torch.set_num_threads(1)
    rows = []
    for name, (path, shape) in SPACES.items():
        graphs = members(path, shape, args.members, args.seed)
        predicted, measured = measure(graphs)
        errors = [abs(p - m) / m * 100 for p, m in zip(predicted, measured)]
        rows.append(
            [
                name,
                str(len(graphs)),
                f"{statistics.median(measured):.3f}",
                f"{statistics.mean(errors):.1f} %",
                f"{max(errors):.1f} %",
                f"{spearman(predicted, measured):.2f}",
            ]
        )
    print(machine())
    header = ["space", "members", "median ms", "mean abs error", "largest", "Spearman"]
    print(table(header, rows))


if __name__ == "__main__":
    main()
