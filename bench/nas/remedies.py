"""Remedies for the supernet's ranking, each against the table on a fixed sample of members.

    .venv/bin/python bench/nas/remedies.py [--only default,recalibrate-16] [--seeds 3] [--sample 243]

Each variant of `VARIANTS` builds and trains the supernet of `cell.cnn` as `--evaluator supernet`
does (digits with the table's split and recipe: SGD, lr 0.05, batch 64, one thread), seeded 0, 1,
2 …, with one thing changed, then scores a sample of the table's members drawn with seed 0 (the
same members for every variant: scoring all 729 costs ~30 s a run, a sample of 243 ~12 s). It
prints, per variant and seed, Kendall's τ of the scores against the table over the sample, the
regret of the member it ranks first and of the best of its first 10 (against the table's best,
which the default sample holds), and the CPU seconds of training and of scoring.

The variants (each named with the literature it comes from in BENCHMARKS.md):
- `default`: the evaluator as it is (10 epochs, one architecture a step, 4 recalibration batches);
- `recalibrate-N`: BatchNorm recalibrated on N training batches;
- `epochs-E`, `lr-X`: a longer or shorter training, another learning rate;
- `uniform-E`, `fair-E`: the supernet's other path rules (`supernet.RULES`);
- `paths-3`: three architectures a step, their gradients summed into one step;
- `few-shot`: one sub-supernet per option of the edge `e1_0` (Zhao et al., "Few-shot Neural
  Architecture Search", ICML 2021), each trained the epochs, a member scored by the one that holds
  it.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass

import regret
import table

SPLIT = "e1_0"  # few-shot's decision: the cell's first edge


@dataclass(frozen=True)
class Variant:
    name: str
    epochs: int = 10
    lr: float = 0.05
    rule: str = ""  # "": the default rule
    recalibrate: int = 0  # 0: the default
    paths: int = 1  # architectures a step
    few_shot: bool = False


VARIANTS = (
    Variant("default"),
    Variant("recalibrate-16", recalibrate=16),
    Variant("recalibrate-1", recalibrate=1),
    Variant("epochs-5", epochs=5),
    Variant("epochs-20", epochs=20),
    Variant("lr-0.02", lr=0.02),
    Variant("lr-0.1", lr=0.1),
    Variant("paths-3", paths=3),
    Variant("uniform-20", epochs=20, rule="uniform"),
    Variant("fair-20", epochs=20, rule="fair"),
    Variant("few-shot", few_shot=True),
)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    import torch

    torch.set_num_threads(1)  # as the table's members were trained
    _, members = table.read()
    graphs = random.Random(0).sample(table.space_members(), opts.sample)
    only = {n for n in opts.only.split(",") if n}
    lines = [
        ["variant", "seed", "Kendall τ", "top-1 regret", "top-10 regret", "train s", "score s"]
    ]
    for variant in VARIANTS:
        if only and variant.name not in only:
            continue
        for seed in range(opts.seeds):
            lines.append(run(variant, seed, graphs, members))
            print("  ".join(lines[-1]), file=sys.stderr, flush=True)
    print(regret.layout(lines))
    return 0


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--sample", type=int, default=243, help="members scored, drawn with seed 0")
    return p.parse_args(argv)


def run(variant: Variant, seed: int, graphs: list, members: dict) -> list[str]:
    """One row: the variant trained with `seed`, its scores of `graphs` against the table."""
    from cnnc.search.evaluators import supernet

    saved = supernet.RECALIBRATE, supernet.drawing
    supernet.RECALIBRATE = variant.recalibrate or supernet.RECALIBRATE
    if variant.paths > 1:
        supernet.drawing = several(variant.paths)
    try:
        start = time.process_time()
        score = trained(variant, seed)
        built = time.process_time()
        scores = {key: score(graph) for key, graph in graphs}
        scored = time.process_time()
    finally:
        supernet.RECALIBRATE, supernet.drawing = saved
    return row(variant, seed, scores, members, (built - start, scored - built))


def several(k: int):
    """`supernet.drawing` for the default rule with `k` architectures a step."""
    return lambda members, rule: lambda rng: [rng.choice(members) for _ in range(k)]


def trained(variant: Variant, seed: int):
    """`graph -> score` of the variant's supernet (or sub-supernets) trained with `seed`."""
    from cnnc.search.driver import Settings
    from cnnc.search.evaluators import supernet
    from cnnc.training.data import load_dataset

    data = load_dataset("digits", None, 0)
    settings = Settings(
        file=str(table.SPACE),
        evaluator="supernet",
        epochs=variant.epochs,
        lr=variant.lr,
        seed=seed,
        device="cpu",
    )
    if variant.few_shot:
        return few_shot(settings, data)
    evaluate = supernet.supernet_evaluator(settings, data, variant.rule or supernet.RULE)
    return lambda graph: evaluate(graph, None).score


def few_shot(settings, data):
    """One supernet per option of `SPLIT`, each over the members that take it; a member is
    scored by the one whose architectures hold it."""
    import torch

    from cnnc.search.driver import space_for
    from cnnc.search.evaluators import supernet
    from cnnc.search.evaluators.paths import Representatives

    cpu = torch.device("cpu")
    space = space_for(settings, data.input_shape, data.num_classes)
    fits = supernet.fits_data(settings, data)
    subs = []
    for option in table.OPS:

        def keep(member, option=option) -> bool:
            return fits(member) and member.labels()[SPLIT] == option

        net, held = supernet.build(space, settings.seed, cpu, settings.batch_size, "sgd", keep)
        supernet.train(net, held, data, settings, cpu)
        subs.append((Representatives(held), supernet.scorer(net, data, settings, cpu, held)))

    def score(graph) -> float:
        found = next(ev for reps, ev in subs if reps.of(graph)[1] is not None)
        return found(graph, None).score

    return score


def row(variant: Variant, seed: int, scores: dict, members: dict, seconds) -> list[str]:
    best = max(e.accuracy for e in members.values())
    ranked = sorted(scores, key=lambda k: -scores[k])  # ties keep the sample's order
    tau = regret.kendall_tau([scores[k] for k in ranked], [members[k].accuracy for k in ranked])
    top1 = best - members[ranked[0]].accuracy
    top10 = best - max(members[k].accuracy for k in ranked[:10])
    train, score = seconds
    return [
        variant.name,
        str(seed),
        f"{tau:.3f}",
        regret.pp(top1),
        regret.pp(top10),
        f"{train:.1f}",
        f"{score:.1f}",
    ]


if __name__ == "__main__":
    sys.exit(main())
